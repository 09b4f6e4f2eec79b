"""Cascade: the task network stays frozen (parameters and batch-norm buffers bit-identical, eval mode kept) while
the denoiser learns, and the task loss's gradients reach the denoiser through the frozen network."""

from __future__ import annotations

import torch
from torch import nn

from dmh.cascade import Cascade, freeze
from dmh.losses import JointLoss
from dmh.noise import add_noise
from dmh.training import TrainConfig, train


def _state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _batch(gen: torch.Generator, n: int = 4, size: int = 16):
    clean = torch.rand(n, 1, size, size, generator=gen)
    noisy = add_noise(clean, 40, gen)
    labels = torch.randint(0, 4, (n,), generator=gen)
    return clean, noisy, labels


def test_bn_stats_would_move_without_the_cascade(make_bn_classifier, gen):
    """Control: the task net's buffers do move in train mode, so the frozen check below has teeth."""
    task = make_bn_classifier().train()
    before = _state(task)
    task(torch.rand(4, 1, 16, 16, generator=gen))
    assert not torch.equal(before["1.running_mean"], task.state_dict()["1.running_mean"])


def test_task_net_bit_identical_after_optimizer_steps(make_denoiser, make_bn_classifier, gen):
    den, task = make_denoiser(), make_bn_classifier()
    den_before, task_before = _state(den), _state(task)
    cascade = Cascade(den, task)
    cascade.train()
    assert cascade.training and den.training
    assert not task.training and not any(m.training for m in task.modules())
    opt = torch.optim.Adam(cascade.trainable_parameters(), lr=1e-2)
    loss_fn = JointLoss(0.5, "classification")
    for _ in range(4):
        clean, noisy, labels = _batch(gen)
        den_out, logits = cascade(noisy)
        loss, parts = loss_fn(den_out, clean, logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        cascade.train()  # calling train() again must not unfreeze the task net
    after = task.state_dict()
    assert after.keys() == task_before.keys()
    assert any("running_var" in k for k in after)
    for k, v in task_before.items():
        assert torch.equal(v, after[k]), k  # parameters AND buffers (running stats, num_batches_tracked)
    assert all(p.grad is None and not p.requires_grad for p in task.parameters())
    moved = [k for k, v in den.state_dict().items() if not torch.equal(v, den_before[k])]
    assert any(k.endswith("weight") for k in moved)
    assert any("running_mean" in k for k in moved)  # the denoiser itself trains normally (BN in train mode)
    assert not task.training


def test_train_loop_with_cascade_keeps_task_frozen(make_denoiser, make_bn_classifier, tmp_path):
    den, task = make_denoiser(), make_bn_classifier()
    task_before, den_before = _state(task), _state(den)
    cascade = Cascade(den, task)
    loss_fn = JointLoss(1.0, "classification")

    def step(model: Cascade, g: torch.Generator):
        clean, noisy, labels = _batch(g, n=2)
        den_out, logits = model(noisy)
        return loss_fn(den_out, clean, logits, labels)

    cfg = TrainConfig(max_steps=3, lr=1e-2, log_every=1, progress=False)
    hist = train(cascade, step, cfg, params=cascade.trainable_parameters(), ckpt_dir=tmp_path)
    assert len(hist) == 3 and all("task" in r and "rec" in r for r in hist)
    for k, v in task_before.items():
        assert torch.equal(v, task.state_dict()[k]), k
    assert not task.training
    assert any(not torch.equal(v, den.state_dict()[k]) for k, v in den_before.items())


def test_eval_and_train_toggle(make_denoiser, make_bn_classifier):
    cascade = Cascade(make_denoiser(), make_bn_classifier())
    assert cascade.train() is cascade
    cascade.eval()
    assert not cascade.denoiser.training and not cascade.task_net.training
    cascade.train(True)
    assert cascade.denoiser.training and not cascade.task_net.training


def test_trainable_parameters_are_the_denoisers(make_denoiser, make_bn_classifier):
    den = make_denoiser()
    cascade = Cascade(den, make_bn_classifier())
    ids = {id(p) for p in cascade.trainable_parameters()}
    assert ids == {id(p) for p in den.parameters()}
    assert all(not p.requires_grad for p in cascade.task_net.parameters())


def test_forward_returns_denoised_and_logits(make_denoiser, make_bn_classifier):
    cascade = Cascade(make_denoiser(), make_bn_classifier())
    den, logits = cascade(torch.rand(3, 1, 12, 12))
    assert den.shape == (3, 1, 12, 12) and logits.shape == (3, 4)


def _denoiser_grads(cascade: Cascade, lam: float, clean, noisy, labels) -> list[torch.Tensor]:
    cascade.zero_grad(set_to_none=True)
    den, logits = cascade(noisy)
    loss, _ = JointLoss(lam, "classification")(den, clean, logits, labels)
    loss.backward()
    return [p.grad.clone() for p in cascade.denoiser.parameters()]


def test_gradients_reach_denoiser_through_task_net(make_denoiser, make_bn_classifier, gen):
    cascade = Cascade(make_denoiser(), make_bn_classifier()).train()
    clean, noisy, labels = _batch(gen)
    g_mse = _denoiser_grads(cascade, 0.0, clean, noisy, labels)
    g_joint = _denoiser_grads(cascade, 1.0, clean, noisy, labels)
    diff = sum((a - b).abs().sum().item() for a, b in zip(g_mse, g_joint))
    assert diff > 0  # the task term changes the denoiser's gradients
    # The task term alone: nonzero gradients on the denoiser, none on the frozen net.
    cascade.zero_grad(set_to_none=True)
    den, logits = cascade(noisy)
    nn.functional.cross_entropy(logits, labels).backward()
    assert sum(p.grad.abs().sum().item() for p in cascade.denoiser.parameters()) > 0
    assert all(p.grad is None for p in cascade.task_net.parameters())


def test_freeze_in_place(make_bn_classifier):
    net = make_bn_classifier().train()
    assert freeze(net) is net
    assert not net.training and all(not p.requires_grad for p in net.parameters())
