"""The thin core's numbers and messages pinned exactly, written against the survivors of `make mutate`
(bench/MUTATION.md): metrics against independent numpy references, error messages as whole lines, the training
loop's checkpoint contents and resume rules, and `evaluate_many`'s process-pool path (run in-process by a stand-in
executor) and progress bar."""

from __future__ import annotations

import math
import re
import time
import warnings

import numpy as np
import pytest
import torch
from torch import nn

# ---------------------------------------------------------------------------------------------------------------
# dmh.metrics


def _gms_reference(image: np.ndarray, reference: np.ndarray, c: float = 0.0026) -> float:
    """GMS (Xue et al. 2014) in plain numpy: grey = channel mean of the [0, 1]-clipped images, Prewitt / 3 on the
    valid part, similarity averaged."""

    def mag(x: np.ndarray) -> np.ndarray:
        g = np.clip(x, 0, 1).mean(axis=1)  # (N, H, W)
        kx = np.array([[1.0, 0.0, -1.0]] * 3) / 3.0
        h, w = g.shape[1] - 2, g.shape[2] - 2
        gx, gy = np.zeros((len(g), h, w)), np.zeros((len(g), h, w))
        for i in range(3):
            for j in range(3):
                window = g[:, i : i + h, j : j + w]
                gx += kx[i, j] * window
                gy += kx.T[i, j] * window
        return np.sqrt(gx**2 + gy**2)

    a, b = mag(image), mag(reference)
    return float(((2 * a * b + c) / (a**2 + b**2 + c)).mean())


def test_gradient_similarity_equals_a_numpy_reference_on_colour_images_out_of_range():
    from dmh.metrics import gradient_similarity

    rng = np.random.default_rng(0)
    x = rng.uniform(-0.4, 1.4, (2, 3, 9, 11))  # channels differ; values outside [0, 1] are clipped first
    ref = rng.uniform(-0.4, 1.4, (2, 3, 9, 11))
    got = gradient_similarity(torch.tensor(x, dtype=torch.float32), torch.tensor(ref, dtype=torch.float32))
    assert got == pytest.approx(_gms_reference(x, ref), abs=1e-5)
    one = gradient_similarity(torch.tensor(x[:1], dtype=torch.float32), torch.tensor(x[:1], dtype=torch.float32))
    assert one == pytest.approx(1.0, abs=1e-6)


def _hf_reference(image: np.ndarray, reference: np.ndarray, cutoff: float) -> float:
    def energy(x: np.ndarray) -> float:
        g = x.mean(axis=1)
        fy, fx = np.fft.fftfreq(g.shape[-2])[:, None], np.fft.fftfreq(g.shape[-1])[None, :]
        mask = np.sqrt(fx**2 + fy**2) > cutoff
        return float((np.abs(np.fft.fft2(g - g.mean())) ** 2)[..., mask].sum())

    return energy(image) / max(energy(reference), 1e-12)


@pytest.mark.parametrize("shape, cutoff", [((1, 3, 8, 8), 0.25), ((2, 1, 6, 10), 0.2), ((1, 1, 5, 20), 0.25)])
def test_high_frequency_ratio_equals_a_numpy_reference(shape, cutoff):
    """8 x 8 at cutoff 0.25: frequencies exactly at the cutoff are not counted (strictly above)."""
    from dmh.metrics import high_frequency_ratio

    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, shape).astype(np.float32)  # images are float32 (`dmh.images.to_nchw`)
    ref = (0.5 + 0.001 * rng.standard_normal(shape)).astype(np.float32)  # a reference of tiny energy
    got = high_frequency_ratio(torch.tensor(x), torch.tensor(ref), cutoff=cutoff)
    assert got == pytest.approx(_hf_reference(x.astype(np.float64), ref.astype(np.float64), cutoff), rel=1e-9)


def test_psnr_is_infinite_for_equal_images_without_a_warning_and_48_13_db_for_an_mse_of_one():
    from dmh.metrics import psnr, to_uint8

    a = torch.zeros(1, 1, 1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert psnr(a, a) == math.inf
    assert psnr(a, torch.full((1, 1, 1, 1), 1 / 255)) == pytest.approx(10 * math.log10(255**2), abs=1e-9)
    u = to_uint8(torch.tensor([[[[0.0, 0.5, 1.2]]]]))
    assert u.dtype == np.uint8 and u.tolist() == [[[[0, 128, 255]]]]


def test_ssim_is_scikit_images_gaussian_ssim_on_8_bit_values():
    from skimage.metrics import structural_similarity

    from dmh.metrics import ssim, to_uint8

    rng = np.random.default_rng(2)
    x, ref = torch.tensor(rng.uniform(0, 1, (1, 3, 24, 24))), torch.tensor(rng.uniform(0, 1, (1, 3, 24, 24)))
    a, b = to_uint8(x)[0].transpose(1, 2, 0), to_uint8(ref)[0].transpose(1, 2, 0)
    want = structural_similarity(a, b, data_range=255, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)  # fmt: skip
    assert ssim(x, ref) == pytest.approx(want, abs=1e-12)


def test_topk_accuracy_refuses_bad_shapes_and_labels_with_the_values():
    from dmh.metrics import topk_accuracy

    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.3]])
    assert topk_accuracy(logits, torch.tensor([1, 2]), ks=(1, 2)) == {1: 0.5, 2: 1.0}
    with pytest.raises(ValueError, match=r"^expected logits \(N, K\) and target \(N,\), got \(2, 3\) and \(3,\)$"):
        topk_accuracy(logits, torch.tensor([0, 1, 2]))
    msg = r"^class labels must lie in \[0, 3\) for 3 classes; got values from 0 to 3 \(labels of another numbering\?\)$"
    with pytest.raises(ValueError, match=msg):
        topk_accuracy(logits, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"got values from -1 to 1 "):
        topk_accuracy(logits, torch.tensor([-1, 1]))


def test_confusion_matrix_counts_exactly_and_refuses_labels_by_name():
    from dmh.metrics import ConfusionMatrix

    cm = ConfusionMatrix(3).update(torch.tensor([[2]]), torch.tensor([[2]]))  # one pixel: union 1 for class 2
    assert cm.mat.dtype == torch.int64  # exact counts (float32 would round past 2^24 pixels)
    assert cm.pixel_accuracy() == 1.0 and cm.iou()[2].item() == 1.0
    assert math.isnan(cm.iou()[0].item()) and cm.mean_iou() == 1.0
    with pytest.raises(ValueError, match=r"^pred and target shapes differ: \(1, 2\) vs \(2, 1\)$"):
        cm.update(torch.zeros(1, 2, dtype=torch.long), torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^target labels must be in \[0, 3\) or ignore_index, got 0\.\.3$"):
        cm.update(torch.tensor([[0, 1]]), torch.tensor([[0, 3]]))
    with pytest.raises(ValueError, match=r"^prediction labels must be in \[0, 3\) or ignore_index, got -1\.\.1$"):
        cm.update(torch.tensor([[-1, 1]]), torch.tensor([[0, 1]]))
    cm.update(torch.tensor([[7]]), torch.tensor([[255]]))  # ignored pixel: its prediction is not checked


# ---------------------------------------------------------------------------------------------------------------
# dmh.losses, dmh.steps, dmh.noise, dmh.stats


@pytest.mark.filterwarnings("error")
def test_label_free_loss_is_the_kl_over_the_class_dimension():
    from dmh.losses import label_free_loss

    g = torch.Generator().manual_seed(0)
    for shape in ((4, 5), (2, 3, 4, 4)):
        a, b = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
        q, logp = b.softmax(1), a.log_softmax(1)
        want = (q * (q.log() - logp)).sum(1).mean()
        assert float(label_free_loss(a, b)) == pytest.approx(float(want), rel=1e-5)


def test_a_label_free_step_at_lambda_zero_never_runs_the_task_network_and_kind_defaults_to_classification():
    from dmh.steps import joint_step

    class Plain(nn.Module):  # a task network without `kind`
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return self.body(x)

    clean = torch.rand(2, 1, 4, 4)
    plain = Plain()
    joint_step(lambda g: clean, plain, lam=0.0, sigma=10.0, kind="label_free")(nn.Identity(), torch.Generator())
    assert plain.calls == 0
    y = torch.tensor([0, 2])
    _, parts = joint_step(lambda g: (clean, y), plain, lam=1.0, sigma=0.0)(nn.Identity(), torch.Generator())
    from dmh.losses import classification_loss

    assert parts["task"] == pytest.approx(float(classification_loss(plain.body(clean), y)), rel=1e-5)


def test_noisy_batch_draws_its_sigmas_from_the_given_generator():
    from dmh.steps import noisy_batch

    clean = torch.rand(3, 1, 4, 4)
    torch.manual_seed(1)
    a = noisy_batch(clean, (0.0, 50.0), torch.Generator().manual_seed(5))
    torch.manual_seed(2)
    assert torch.equal(a, noisy_batch(clean, (0.0, 50.0), torch.Generator().manual_seed(5)))


def test_messages_of_the_core_are_whole_lines():
    from dmh.noise import sample_sigma
    from dmh.stats import choose_lambda, summary
    from dmh.training import TrainConfig, train

    sigma_msg = r"^sigma_range must be finite and >= 0 \(0-255 scale\), got \(-1\.0, 10\.0\)$"
    with pytest.raises(ValueError, match=sigma_msg):
        sample_sigma(2, (-1.0, 10.0), torch.Generator())
    with pytest.raises(ValueError, match=r"^summary needs at least one value$"):
        summary([])
    with pytest.raises(ValueError, match=r"^choose_lambda needs the separate point \(lam = 0\)$"):
        choose_lambda([{"lam": 0.1, "psnr": [20.0], "metric": [0.5]}])
    with pytest.raises(ValueError, match=r"^ckpt_every > 0 needs a ckpt_dir$"):
        train(nn.Linear(1, 1), lambda m, g: (m.weight.sum(), {}), TrainConfig(max_steps=1, ckpt_every=1))
    rule = choose_lambda([{"lam": 0.0, "psnr": [20.0], "metric": [0.5]}])["rule"]
    assert rule.endswith("separate (lambda = 0); ties to the smaller lambda")


# ---------------------------------------------------------------------------------------------------------------
# dmh.training


class _Wrapped(nn.Module):
    """A wrapper with `.module`, as DistributedDataParallel has: checkpoints hold the inner model's weights."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.module = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 1, 1))


def _step(model: nn.Module, g: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    x = torch.rand(2, 1, 4, 4, generator=g)
    return ((model(x) - x) ** 2).mean(), {}


def test_train_writes_the_inner_models_weights_and_its_wall_time(tmp_path):
    """Checkpoints hold the inner model's weights and the seconds of training summed over resumptions (ms)."""
    from dmh.checkpoint import load_checkpoint
    from dmh.training import TrainConfig, train

    def slow(model: nn.Module, g: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        time.sleep(0.1)
        return _step(model, g)

    model = _Wrapped(_net())
    t0 = time.perf_counter()
    train(model, slow, TrainConfig(max_steps=3, progress=False), ckpt_dir=tmp_path)
    elapsed = time.perf_counter() - t0
    ckpt = load_checkpoint(tmp_path / "step_0000003.pt")
    assert set(ckpt["model"]) == set(model.module.state_dict())  # no "module." prefix
    assert 0.3 <= ckpt["seconds"] <= elapsed and round(ckpt["seconds"], 3) == ckpt["seconds"]
    t1 = time.perf_counter()
    train(model, _step, TrainConfig(max_steps=5, progress=False), ckpt_dir=tmp_path, resume=True)
    resumed = load_checkpoint(tmp_path / "step_0000005.pt")
    assert ckpt["seconds"] <= resumed["seconds"] <= ckpt["seconds"] + (time.perf_counter() - t1)
    other = _Wrapped(_net())
    train(other, _step, TrainConfig(max_steps=5, progress=False), ckpt_dir=tmp_path, resume=True)  # loads step 5
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), model.state_dict().values()))


def test_train_starts_afresh_unless_asked_to_resume(tmp_path):
    from dmh.training import TrainConfig, train

    cfg = TrainConfig(max_steps=2, log_every=1, progress=False)
    train(_net(), _step, cfg, ckpt_dir=tmp_path)
    assert [r["step"] for r in train(_net(), _step, cfg, ckpt_dir=tmp_path)] == [1, 2]


def test_resume_refuses_a_moved_milestone_at_the_checkpoints_step_and_names_the_difference(tmp_path):
    from dmh.training import TrainConfig, train

    train(_net(), _step, TrainConfig(max_steps=2, milestones=(2,), progress=False), ckpt_dir=tmp_path)
    msg = (r"^cannot resume from .*step_0000002\.pt: config differs \(checkpoint, now\): "
           r"\{'milestones': \(\[2\], \[3\]\)\}$")  # fmt: skip
    with pytest.raises(ValueError, match=msg):
        train(_net(), _step, TrainConfig(max_steps=4, milestones=(3,), progress=False), ckpt_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match=r": \{'lr': \(0\.001, 0\.002\)\}$"):
        train(_net(), _step, TrainConfig(max_steps=4, lr=2e-3, milestones=(2,), progress=False), ckpt_dir=tmp_path,
              resume=True)  # fmt: skip
    train(_net(), _step, TrainConfig(max_steps=4, milestones=(2, 3), progress=False), ckpt_dir=tmp_path, resume=True)


def test_resume_of_a_checkpoint_missing_fields(tmp_path):
    """A checkpoint whose config lacks a field is refused naming it (None, now); one without history or seconds
    (written before they were kept) resumes from an empty history and zero seconds."""
    from dmh.checkpoint import load_checkpoint, save_checkpoint
    from dmh.training import TrainConfig, train

    cfg, more = TrainConfig(max_steps=2, log_every=1, progress=False), TrainConfig(max_steps=3, log_every=1,
                                                                                    progress=False)  # fmt: skip
    train(_net(), _step, cfg, ckpt_dir=tmp_path / "run")
    ckpt = load_checkpoint(tmp_path / "run" / "step_0000002.pt")

    def folder(name: str, state: dict) -> object:
        save_checkpoint(tmp_path / name / "step_0000002.pt", state)
        return tmp_path / name

    no_field = folder("no_field", {**ckpt, "config": {k: v for k, v in ckpt["config"].items() if k != "channels_last"}})
    with pytest.raises(ValueError, match=r": \{'channels_last': \(None, False\)\}$"):
        train(_net(), _step, more, ckpt_dir=no_field, resume=True)
    with pytest.raises(ValueError, match=r"config differs \(checkpoint, now\): \{"):
        train(_net(), _step, more, ckpt_dir=folder("no_config", {k: v for k, v in ckpt.items() if k != "config"}),
              resume=True)  # fmt: skip
    old = folder("old", {k: v for k, v in ckpt.items() if k not in ("history", "seconds")})
    t0 = time.perf_counter()
    hist = train(_net(), _step, more, ckpt_dir=old, resume=True)
    assert [r["step"] for r in hist] == [3]
    assert load_checkpoint(old / "step_0000003.pt")["seconds"] <= time.perf_counter() - t0


def test_resume_refuses_another_architecture_with_both_names(tmp_path):
    from dmh.checkpoint import arch_of
    from dmh.nets import DenoiseNet
    from dmh.training import TrainConfig, train

    cfg = TrainConfig(max_steps=1, progress=False)
    train(DenoiseNet(1, width=0.125), _step, cfg, ckpt_dir=tmp_path)
    other = DenoiseNet(1, width=0.25)
    msg = r"^cannot resume from .*: it holds \{.*'width': 0\.125.*\}, the model is \{.*'width': 0\.25.*\}$"
    with pytest.raises(ValueError, match=msg):
        train(other, _step, TrainConfig(max_steps=2, progress=False), ckpt_dir=tmp_path, resume=True)
    assert arch_of(other)["width"] == 0.25


def test_a_non_finite_loss_stops_training_naming_the_run_and_step():
    from dmh.training import TrainConfig, train

    def bad(model: nn.Module, g: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        return model.weight.sum() * math.nan, {}

    with pytest.raises(FloatingPointError, match=r"^train: loss became nan at step 0$"):
        train(nn.Linear(1, 1), bad, TrainConfig(max_steps=1, progress=False))


def test_only_rank_zero_writes_checkpoints_under_torch_distributed(tmp_path, monkeypatch):
    from dmh.training import TrainConfig, train

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    for rank, written in ((1, []), (0, ["step_0000001.pt"])):
        monkeypatch.setattr(torch.distributed, "get_rank", lambda rank=rank: rank)
        folder = tmp_path / f"rank{rank}"
        folder.mkdir()
        train(_net(), _step, TrainConfig(max_steps=1, progress=False), ckpt_dir=folder)
        assert sorted(p.name for p in folder.iterdir()) == written


def test_channels_last_training_keeps_the_weights_channels_last():
    from dmh.training import TrainConfig, train

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 1, 3, padding=1))
    train(net, _step, TrainConfig(max_steps=1, progress=False, channels_last=True))
    w = net[1].weight
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()


def test_optimizers_get_the_weight_decay_and_schedules_stretch_to_one_step():
    from dmh.training import TrainConfig, build_optimizer

    p = [nn.Parameter(torch.zeros(2))]
    for opt in ("adam", "sgd"):
        o = build_optimizer(p, TrainConfig(optimizer=opt, weight_decay=0.01, momentum=0.5))
        assert o.param_groups[0]["weight_decay"] == 0.01
    assert build_optimizer(p, TrainConfig(optimizer="sgd", momentum=0.5)).param_groups[0]["momentum"] == 0.5
    assert TrainConfig(max_steps=1).with_steps(1).max_steps == 1
    assert TrainConfig(max_steps=10, milestones=(5,)).with_steps(20).milestones == (10,)
    with pytest.raises(ValueError, match=r"^cannot stretch a 1-step schedule to 0 steps$"):
        TrainConfig(max_steps=1).with_steps(0)
    with pytest.raises(ValueError, match=r"^cannot stretch a 0-step schedule to 2 steps$"):
        TrainConfig(max_steps=0).with_steps(2)


def test_pruning_keeps_the_newest_checkpoints_by_step_and_leaves_other_files(tmp_path):
    from dmh.training import TrainConfig, train

    (tmp_path / "step_notes.pt").write_text("not a checkpoint")
    train(_net(), _step, TrainConfig(max_steps=4, ckpt_every=1, keep_last=2, progress=False), ckpt_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000003.pt", "step_0000004.pt", "step_notes.pt"]


# ---------------------------------------------------------------------------------------------------------------
# dmh.evaluate


class _Sigma(nn.Module):
    """A deepinv-style denoiser: forward(x, sigma) returns x + sigma (sigma on [0, 1] per image)."""

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
        self.seen = s.flatten()
        return x * 0 + s


def test_evaluation_gives_a_sigma_taking_denoiser_the_noise_level_and_runs_denoisenet_through_its_fast_copy(
    monkeypatch,
):
    from dmh import fast
    from dmh.evaluate import as_denoise
    from dmh.nets import DenoiseNet

    den = _Sigma()
    out = as_denoise(den)(torch.zeros(2, 1, 4, 4), 51.0)
    assert torch.allclose(out, torch.full((2, 1, 4, 4), 0.2)) and torch.allclose(den.seen, torch.full((2,), 0.2))
    used = []
    real = fast.prepare
    monkeypatch.setattr(fast, "prepare", lambda net, **kw: used.append(net) or real(net, **kw))
    net = DenoiseNet(1, width=0.125)
    as_denoise(net)
    assert used == [net]


class _Pool:
    """Stands in for ProcessPoolExecutor: records its arguments, runs the initializer and the jobs in-process."""

    made: list[dict] = []

    def __init__(self, max_workers, mp_context, initializer, initargs) -> None:
        _Pool.made.append({"max_workers": max_workers, "start": mp_context.get_start_method()})
        self.init = (initializer, initargs)

    def __enter__(self) -> _Pool:
        threads = torch.get_num_threads()
        self.init[0](*self.init[1])
        torch.set_num_threads(threads)
        return self

    def __exit__(self, *exc) -> None:
        from dmh import evaluate

        evaluate._WORKER.clear()

    def map(self, fn, items):
        return map(fn, list(items))


@pytest.mark.parametrize("cache", [False, True])
def test_evaluate_many_in_worker_processes_equals_one_process_with_the_other_classifiers(
    cache, monkeypatch, tmp_path, capsys, make_tiny_task
):
    """Jobs to compute go to min(workers, jobs) spawned processes when there are 2 or more of them and workers > 1;
    the results equal `evaluate_task`'s, with the other classifiers' scores; the bar ends at its count."""
    import concurrent.futures

    from dmh import evalcache
    from dmh.evaluate import evaluate_many, evaluate_task

    monkeypatch.setenv("DMH_CACHE", str(tmp_path) if cache else "off")
    task, other = make_tiny_task(), make_tiny_task()
    nn.init.normal_(other.net[1].weight, generator=torch.Generator().manual_seed(4))
    images, labels = torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    also = {"C": other}
    jobs = [{"sigma": s, "seed": 0, "n": n} for s, n in ((10.0, 6), (30.0, 4), (50.0, 6), (70.0, 5), (90.0, 6))]
    want = [evaluate_task(task, images[: j["n"]], labels[: j["n"]], also=also, sigma=j["sigma"], seed=0) for j in jobs]
    assert all("also" in w for w in want)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", _Pool)
    _Pool.made = []
    got = evaluate_many(task, images, labels, jobs[:3], workers=4, also=also, progress=True, desc="mine")
    assert got == want[:3] and _Pool.made == [{"max_workers": 3, "start": "spawn"}]
    err = capsys.readouterr().err
    assert "mine: 100%" in err and "3/3" in err and "6/3" not in err
    assert evaluate_many(task, images, labels, jobs[3:], workers=2, also=also, progress=True) == want[3:]
    assert _Pool.made[1:] == [{"max_workers": 2, "start": "spawn"}] and "eval: 100%" in capsys.readouterr().err
    _Pool.made = []
    one = evaluate_many(task, images, labels, jobs[:1], workers=2, also=also)  # one job: no processes
    assert one == want[:1] and _Pool.made == [] and capsys.readouterr().err == ""  # no bar unless asked
    if not cache:
        assert evaluate_many(task, images, labels, jobs[1:3], workers=1, also=also) == want[1:3] and _Pool.made == []
    else:  # another set of other classifiers is another key: computed, not loaded
        before = evalcache.COUNTS["computed"]
        evaluate_many(task, images, labels, jobs[:1], also={"C": task})
        assert evalcache.COUNTS["computed"] == before + 1


# ---------------------------------------------------------------------------------------------------------------
# dmh.nets: the builder


def test_denoisenet_builds_a_released_model_with_its_architecture_and_refuses_another():
    from dmh.checkpoint import load_checkpoint
    from dmh.nets import denoisenet
    from dmh.pretrained import verify_pretrained

    net = denoisenet(weights="grey-blind")
    assert net.arch == {"name": "DenoiseNet", "in_channels": 1, "width": 0.5}
    shipped = load_checkpoint(verify_pretrained("grey-blind"))["model"]
    assert all(torch.equal(v, shipped[k]) for k, v in net.state_dict().items())
    assert denoisenet(weights="grey-blind", in_channels=1, width=0.5).arch == net.arch
    with pytest.raises(ValueError, match=r"^grey-blind is a DenoiseNet with width=0\.5, not 0\.25$"):
        denoisenet(weights="grey-blind", width=0.25)
    with pytest.raises(ValueError, match=r"^grey-blind is a DenoiseNet with in_channels=1, not 3$"):
        denoisenet(weights="grey-blind", in_channels=3)
    fresh = denoisenet()
    assert fresh.arch == {"name": "DenoiseNet", "in_channels": 3, "width": 1.0}
    assert denoisenet(in_channels=1, width=0.25).arch["width"] == 0.25


def test_weights_meta_names_what_is_released_and_what_is_not(tmp_path, monkeypatch):
    from dmh import pretrained
    from dmh.nets import RELEASED, weights_meta

    assert weights_meta("grey-blind")["arch"]["width"] == 0.5 and weights_meta("grey-dncnn")["arch"]
    with pytest.raises(ValueError, match=rf"^unknown weights 'grey'; released names: {', '.join(RELEASED)} \("):
        weights_meta("grey")
    (tmp_path / "manifest.json").write_text("{}")
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"^the denoiser .grey-blind. is not released yet: "):
        weights_meta("grey-blind")


def test_denoisenet_from_a_checkpoint_path_takes_its_architecture(tmp_path):
    from dmh.checkpoint import save_checkpoint
    from dmh.nets import DenoiseNet, denoisenet

    torch.manual_seed(0)
    small = DenoiseNet(1, width=0.125)
    save_checkpoint(tmp_path / "small.pt", {"model": small.state_dict(), "arch": small.arch})
    got = denoisenet(weights=tmp_path / "small.pt")
    assert got.arch == small.arch and all(torch.equal(v, small.state_dict()[k]) for k, v in got.state_dict().items())
    default = DenoiseNet()  # in_channels 3, width 1.0: what a checkpoint without `arch` is taken for
    save_checkpoint(tmp_path / "bare.pt", {"model": default.state_dict()})
    assert denoisenet(weights=tmp_path / "bare.pt").arch == default.arch
    save_checkpoint(tmp_path / "bare_small.pt", {"model": small.state_dict()})
    with pytest.raises(ValueError, match=r"bare_small\.pt: its weights do not fit .*\(Error\(s\) in loading"):
        denoisenet(weights=tmp_path / "bare_small.pt")
    save_checkpoint(tmp_path / "other.pt", {"model": {}, "arch": {"name": "DnCNN", "depth": 17}})
    with pytest.raises(ValueError, match=r"other\.pt holds a DnCNN, not a DenoiseNet$"):
        denoisenet(weights=tmp_path / "other.pt")


# ---------------------------------------------------------------------------------------------------------------
# dmh.training: a run trained once, then loaded


def test_train_once_keeps_its_inputs_then_only_loads_and_trains_anew_from_other_inputs(tmp_path, capsys):
    from dmh.checkpoint import fingerprint, load_checkpoint
    from dmh.training import TrainConfig, load_trained, train_once, training_minutes

    calls = []

    def step(model: nn.Module, g: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        calls.append(1)
        return _step(model, g)

    cfg = TrainConfig(max_steps=8, log_every=2, progress=False)
    net = _net()
    init = fingerprint(net)
    hist = train_once(net, step, cfg, tmp_path, "demo", depends_on={"preset": "x", "n": (1, 2)})
    assert len(calls) == 8 and [r["step"] for r in hist] == [2, 4, 6, 8]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000006.pt", "step_0000008.pt"]  # every 8 // 4
    ckpt = load_checkpoint(tmp_path / "step_0000008.pt")
    assert ckpt["inputs"] == {"init": init, "preset": "x", "n": [1, 2]} and ckpt["threads"] == torch.get_num_threads()
    assert training_minutes(tmp_path) == ckpt["seconds"] / 60 and math.isnan(training_minutes(tmp_path / "none"))
    again = _net()
    assert train_once(again, step, cfg, tmp_path, "demo", depends_on={"preset": "x", "n": (1, 2)}) == hist
    assert len(calls) == 8 and capsys.readouterr().out == ""  # loaded, not trained
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), net.state_dict().values()))
    loaded = load_trained(_net(), tmp_path, 8, "00_demo.ipynb")
    assert not loaded.training and torch.equal(loaded[0].weight, net[0].weight)
    with pytest.raises(FileNotFoundError, match=r"step_0000009\.pt is missing: run 00_demo\.ipynb first"):
        load_trained(_net(), tmp_path, 9, "00_demo.ipynb")
    train_once(_net(), step, cfg, tmp_path, "demo", depends_on={"preset": "y"})
    assert len(calls) == 16
    assert capsys.readouterr().out.startswith(f"demo: the checkpoints in {tmp_path} were made from other inputs")
    assert load_checkpoint(tmp_path / "step_0000008.pt")["inputs"] == {"init": init, "preset": "y"}


def test_train_once_resumes_an_interrupted_run_to_the_same_weights(tmp_path):
    from dmh.training import TrainConfig, train_once

    whole = _net()
    train_once(whole, _step, TrainConfig(max_steps=8, progress=False), tmp_path / "whole", "demo")
    train_once(_net(), _step, TrainConfig(max_steps=4, progress=False), tmp_path / "part", "demo")
    part = _net()  # the same starting weights: the same inputs, so the run at step 4 goes on
    train_once(part, _step, TrainConfig(max_steps=8, progress=False, ckpt_every=3), tmp_path / "part", "demo")
    assert all(torch.equal(a, b) for a, b in zip(part.state_dict().values(), whole.state_dict().values()))
    assert sorted(p.name for p in (tmp_path / "part").iterdir()) == ["step_0000006.pt", "step_0000008.pt"]


def test_the_denoising_step_is_the_mse_of_the_noisy_input():
    """The step of a denoiser trained alone: a denoiser that returns its input scores the noise's MSE."""
    from dmh.noise import add_noise
    from dmh.steps import denoising_step

    clean = torch.rand(3, 1, 8, 8)
    loss, parts = denoising_step(lambda g: clean, 25.5)(nn.Identity(), torch.Generator().manual_seed(2))
    noisy = add_noise(clean, torch.full((3,), 25.5), torch.Generator().manual_seed(2))
    assert float(loss) == pytest.approx(float(((noisy - clean) ** 2).mean()), rel=1e-6) and parts["rec"] == float(loss)


# ---------------------------------------------------------------------------------------------------------------
# dmh.metrics.perceptual_distance, dmh.evaluate.noise_degradation


def test_perceptual_distance_equals_a_reference_and_does_not_depend_on_the_batch_size():
    from dmh.metrics import perceptual_distance

    conv = nn.Conv2d(3, 4, 3)
    nn.init.normal_(conv.weight, generator=torch.Generator().manual_seed(0))

    def features(x: torch.Tensor) -> torch.Tensor:
        return conv(x)

    g = torch.Generator().manual_seed(1)
    x, ref = torch.rand(5, 3, 8, 8, generator=g) * 1.5, torch.rand(5, 3, 8, 8, generator=g)
    with torch.no_grad():
        fa, fb = conv(x.clamp(0, 1)), conv(ref)  # the denoised side is clipped to [0, 1]
        fa, fb = fa / fa.norm(dim=1, keepdim=True), fb / fb.norm(dim=1, keepdim=True)
        want = float(((fa - fb) ** 2).sum(1).mean((1, 2)).mean())
    assert perceptual_distance(features, x, ref) == pytest.approx(want, rel=1e-5)
    assert perceptual_distance(features, x, ref, batch_size=2) == pytest.approx(want, rel=1e-5)
    assert perceptual_distance(features, ref, ref) == pytest.approx(0.0, abs=1e-6)
    zero = perceptual_distance(lambda t: torch.zeros(len(t), 2, 3, 3), x, ref)  # zero features: no division by 0
    assert zero == 0.0
    with pytest.raises(ValueError, match=r"^x \(5, 3, 8, 8\) and ref \(4, 3, 8, 8\) must have the same shape$"):
        perceptual_distance(features, x, ref[:4])


def test_noise_degradation_averages_seeded_draws_per_sigma(make_tiny_task):
    from dmh.evaluate import evaluate_task, noise_degradation

    task = make_tiny_task()
    images, labels = torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    rows = noise_degradation(task, images, labels, [20.0, 60.0], draws=3, seed=5)
    for row, s in zip(rows, (20.0, 60.0)):
        runs = [evaluate_task(task, images, labels, sigma=s, seed=5 + d) for d in range(3)]
        assert row["sigma"] == s
        for k in ("top1", "psnr"):
            vals = np.array([r[k] for r in runs])
            assert row[k] == pytest.approx(vals.mean()) and row[f"{k}_std"] == pytest.approx(vals.std())
    assert noise_degradation(task, images, labels, [20.0])[0]["top1_std"] == 0.0


# ---------------------------------------------------------------------------------------------------------------
# Refusals of the core, each a whole line naming its argument


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"max_steps": -1}, "max_steps must be >= 0, got -1"),
        ({"log_every": 0}, "log_every must be >= 1, got 0"),
        ({"ckpt_every": -1}, "ckpt_every must be >= 0, got -1"),
        ({"keep_last": 0}, "keep_last must be >= 1, got 0"),
        ({"seed": -1}, "seed must be >= 0, got -1"),
        ({"lr": 0.0}, "lr must be a finite number > 0, got 0.0"),
        ({"momentum": 1.0}, "momentum must be a finite number >= 0 and < 1, got 1.0"),
        ({"momentum": -0.1}, "momentum must be a finite number >= 0 and < 1, got -0.1"),
        ({"weight_decay": -0.001}, "weight_decay must be a finite number >= 0, got -0.001"),
        ({"gamma": 0.0}, "gamma must be a finite number > 0, got 0.0"),
        ({"grad_clip": 0.0}, "grad_clip must be a finite number > 0, got 0.0"),
        ({"grad_clip": -1.0}, "grad_clip must be a finite number > 0, got -1.0"),
        ({"milestones": (0,)}, "milestones must be >= 1, got 0"),
        ({"milestones": (5, 3)}, "milestones must be increasing, got (5, 3)"),
    ],
)
def test_train_config_refuses_each_field_by_name(kw, msg):
    from dmh.training import TrainConfig

    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        TrainConfig(**kw)


def test_train_config_accepts_the_boundaries():
    from dmh.training import TrainConfig

    ok = TrainConfig(max_steps=0, ckpt_every=0, seed=0, momentum=0.0, weight_decay=0.0, gamma=1.5, grad_clip=None,
                     milestones=(1,))  # fmt: skip
    assert ok.momentum == 0.0 and TrainConfig(momentum=0.999, grad_clip=1e-9).grad_clip == 1e-9


def test_denoisenet_refuses_bad_inputs_and_arguments_by_name():
    from dmh.nets import DenoiseNet

    net = DenoiseNet(1, width=0.125)
    shape = "DenoiseNet(in_channels=1) expects (N, 1, H, W) with H, W >= 1, got shape "
    dtype = ("DenoiseNet's weights are torch.float32 but the input is torch.float64: images are floats in [0, 1] "
             "(x.to(torch.float32); uint8 / uint16 images: dmh.images.to_nchw scales them)")  # fmt: skip
    numpy = "DenoiseNet takes a torch tensor (N, C, H, W); got ndarray (see dmh.denoise)"
    cases = [
        (np.zeros((1, 1, 4, 4)), TypeError, numpy),
        (torch.zeros(1, 1, 0, 4), ValueError, shape + "(1, 1, 0, 4)"),
        (torch.zeros(1, 1, 4, 0), ValueError, shape + "(1, 1, 4, 0)"),
        (torch.zeros(1, 1, 4, 4, dtype=torch.float64), TypeError, dtype),
        (torch.full((1, 1, 4, 4), math.nan), ValueError, "DenoiseNet input holds NaN or inf values"),
    ]
    for x, kind, msg in cases:
        with pytest.raises(kind, match="^" + re.escape(msg) + "$"):
            net(x)
    with pytest.raises(ValueError, match=r"^in_channels must be >= 1, got 0$"):
        DenoiseNet(0)
    with pytest.raises(ValueError, match=r"^width must be a finite number > 0 and <= 64, got 0$"):
        DenoiseNet(1, width=0)
    assert DenoiseNet(1, width=0.001).conv0.weight.shape[0] == 1  # every layer keeps at least one channel


def test_the_released_grey_denoiser_denoises_a_synthetic_image():
    """Through every layer (the bottlenecks' residual sums, the skips): 25 -> above 30 dB on a smooth image."""
    from dmh.inference import denoise
    from dmh.metrics import psnr
    from dmh.nets import denoisenet
    from dmh.noise import add_noise

    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    clean = (0.2 + 0.5 * xx * yy + 0.2 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.1))[None, None]
    noisy = add_noise(clean, 25.0, torch.Generator().manual_seed(0))
    out = denoise(denoisenet(weights="grey-blind"), noisy)
    assert psnr(noisy, clean) < 21 and psnr(out, clean) > 30


def test_losses_and_noise_refuse_with_whole_lines():
    from dmh.losses import JointLoss, classification_loss
    from dmh.noise import add_noise, check_sigma

    loss = JointLoss(0.5, "classification")
    with pytest.raises(ValueError, match=r"^denoised \(1, 1, 2, 2\) and clean \(1, 1, 2, 3\) must have the same shape "
                                         r"\(no broadcasting: a mismatch is a bug upstream\)$"):  # fmt: skip
        loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))
    with pytest.raises(ValueError, match=r"^lam > 0 needs the task logits and target$"):
        loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.zeros(1, 3), None)
    with pytest.raises(ValueError, match=r"^labels must be class indices in \[0, 3\) for 3-class logits; got 3$"):
        classification_loss(torch.zeros(1, 3), torch.tensor([3]))
    numpy_msg = ("add_noise takes a torch tensor, got ndarray; convert images with dmh.images.to_nchw "
                 "(numpy (H, W, C), uint8 / uint16 scaled to [0, 1])")  # fmt: skip
    uint8_msg = ("add_noise takes float images in [0, 1], got torch.uint8 (the noise would be rounded and wrapped): "
                 "use x.float() / 255 for uint8, or dmh.images.to_nchw")  # fmt: skip
    with pytest.raises(TypeError, match="^" + re.escape(numpy_msg) + "$"):
        add_noise(np.zeros((2, 2)), 10.0, torch.Generator())
    with pytest.raises(TypeError, match="^" + re.escape(uint8_msg) + "$"):
        add_noise(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), 10.0, torch.Generator())
    assert check_sigma(torch.tensor([30.0], dtype=torch.float64)).dtype == torch.float32


def test_noise_keeps_a_double_images_dtype_and_draws_in_float32():
    from dmh.noise import add_noise

    x = torch.rand(1, 1, 3, 3, dtype=torch.float64)
    y = add_noise(x, 51.0, torch.Generator().manual_seed(0))
    n = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float32).double()
    assert y.dtype == torch.float64 and torch.equal(y, x + n * (torch.tensor(51.0, dtype=torch.float64) / 255.0))


def test_run_denoiser_gives_the_level_in_the_inputs_dtype_per_image_or_none(sigma_spy):
    from dmh.cascade import run_denoiser

    spy, x = sigma_spy().double(), torch.zeros(3, 1, 2, 2, dtype=torch.float64)
    run_denoiser(spy, x, 25.5)
    assert spy.seen[-1].dtype == torch.float64
    assert torch.equal(spy.seen[-1], torch.full((3,), 0.1, dtype=torch.float64))
    run_denoiser(spy, x, torch.tensor([25.5, 51.0, 0.0]))
    assert torch.allclose(spy.seen[-1], torch.tensor([0.1, 0.2, 0.0], dtype=torch.float64))
    run_denoiser(spy, x, None)
    assert spy.seen[-1] is None
    assert run_denoiser(nn.Identity(), x, 30.0) is x


# ---------------------------------------------------------------------------------------------------------------
# dmh.training: the history's averages, the bar, pruning by step number, train_once's schedule and resumption


def test_history_rows_average_the_parts_over_log_every_steps_and_the_bar_shows_only_when_asked(capsys):
    from dmh.training import TrainConfig, train

    seen = []

    def step(model: nn.Module, g: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        seen.append(len(seen) + 1)
        loss, _ = _step(model, g)
        return loss, {"k": float(len(seen))}

    hist = train(_net(), step, TrainConfig(max_steps=5, log_every=2, progress=False))
    assert [(r["step"], r["k"]) for r in hist] == [(2, 1.5), (4, 3.5), (5, 5.0)] and capsys.readouterr().err == ""
    train(_net(), _step, TrainConfig(max_steps=3, progress=True), desc="demo")
    err = capsys.readouterr().err
    assert "demo: 100%" in err and "3/3" in err and "6/3" not in err and "loss=" in err


def test_pruning_orders_checkpoints_by_step_number_past_ten_million(tmp_path):
    from dmh.checkpoint import save_checkpoint
    from dmh.training import TrainConfig, train

    for step in (9_999_999, 10_000_000):
        save_checkpoint(tmp_path / f"step_{step:07d}.pt", {"step": step})
    train(_net(), _step, TrainConfig(max_steps=1, keep_last=1, progress=False), ckpt_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_10000000.pt"]


def test_train_resumes_only_when_asked_counting_steps(tmp_path):
    from dmh.training import TrainConfig, train

    calls = []

    def step(model: nn.Module, g: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        calls.append(1)
        return _step(model, g)

    train(_net(), step, TrainConfig(max_steps=2, progress=False), ckpt_dir=tmp_path)
    train(_net(), step, TrainConfig(max_steps=3, progress=False), ckpt_dir=tmp_path)  # afresh: 3 steps
    assert len(calls) == 5
    train(_net(), step, TrainConfig(max_steps=4, progress=False), ckpt_dir=tmp_path, resume=True)  # from step 3
    assert len(calls) == 6


def test_train_once_resumes_with_its_label_keeps_a_given_checkpoint_interval_and_checkpoints_a_short_run(tmp_path):
    from dmh.checkpoint import load_checkpoint, save_checkpoint
    from dmh.training import TrainConfig, train_once

    calls = []

    def step(model: nn.Module, g: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        calls.append(1)
        return _step(model, g)

    train_once(_net(), step, TrainConfig(max_steps=4, progress=False), tmp_path / "a", "demo")
    train_once(_net(), step, TrainConfig(max_steps=8, ckpt_every=5, progress=False), tmp_path / "a", "demo")
    assert len(calls) == 8  # 4, then 4 more from the checkpoint at step 4
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["step_0000005.pt", "step_0000008.pt"]
    train_once(_net(), step, TrainConfig(max_steps=4, keep_last=3, progress=False), tmp_path / "b", "demo")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["step_0000002.pt", "step_0000003.pt",
                                                                   "step_0000004.pt"]  # fmt: skip
    last = tmp_path / "b" / "step_0000004.pt"
    save_checkpoint(last, {k: v for k, v in load_checkpoint(last).items() if k != "history"})
    assert train_once(_net(), step, TrainConfig(max_steps=4, progress=False), tmp_path / "b", "demo") == []

    def bad(model: nn.Module, g: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        return _step(model, g)[0] * math.nan, {}

    with pytest.raises(FloatingPointError, match=r"^demo: loss became nan at step 0$"):
        train_once(_net(), bad, TrainConfig(max_steps=2, progress=False), tmp_path / "c", "demo")


def test_train_once_says_why_it_trains_anew(tmp_path, capsys):
    from dmh.training import TrainConfig, train_once

    cfg = TrainConfig(max_steps=1, progress=False)
    train_once(_net(), _step, cfg, tmp_path, "demo", depends_on={"v": 1})
    train_once(_net(), _step, cfg, tmp_path, "demo", depends_on={"v": 2})
    assert capsys.readouterr().out == (f"demo: the checkpoints in {tmp_path} were made from other inputs (starting "
                                       "weights, task network or preset); training anew\n")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# dmh.evaluate: defaults


def test_evaluation_defaults_one_process_one_draw_seed_zero_and_passes_its_options(monkeypatch, capsys, make_tiny_task):
    import concurrent.futures

    from dmh import evaluate
    from dmh.evaluate import evaluate_many, evaluate_task, noise_degradation

    monkeypatch.setenv("DMH_CACHE", "off")
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", _Pool)
    _Pool.made = []
    task = make_tiny_task()
    images, labels = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    jobs = [{"sigma": 10.0, "seed": 0}, {"sigma": 20.0, "seed": 0}]
    assert evaluate_many(task, images, labels, jobs, progress=True) == [
        evaluate_task(task, images, labels, **j) for j in jobs
    ]
    err = capsys.readouterr().err
    assert _Pool.made == [] and "2/2" in err and "4/2" not in err
    row = noise_degradation(task, images, labels, [30.0])[0]
    assert row["top1"] == evaluate_task(task, images, labels, sigma=30.0, seed=0)["top1"]
    clean = noise_degradation(task, images, labels, [30.0], draws=2, denoiser=lambda x, s: images)[0]
    assert clean["psnr"] == math.inf and clean["psnr_std"] == 0.0
    threads = torch.get_num_threads()
    try:
        evaluate._init_worker(task, images, labels, None)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
        evaluate._WORKER.clear()


def test_a_denoiser_whose_forward_has_no_signature_is_called_blind():
    from dmh.cascade import run_denoiser, takes_sigma

    m = nn.Module()
    m.forward = torch.relu  # a builtin: inspect.signature raises
    x = torch.tensor([[[[-1.0, 2.0]]]])
    assert not takes_sigma(m) and torch.equal(run_denoiser(m, x, 30.0), torch.relu(x))
