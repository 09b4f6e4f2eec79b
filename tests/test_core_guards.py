"""Direct tests of the mechanisms the study's answer rests on, each written to fail on one plausible one-line bug:
the training step denoises the noisy input, image i of any batch gets its own noise generator, evaluation scores the
task network on the denoised pixels with the denoiser in eval mode, and a verdict's error bar is over training seeds.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dmh.noise import add_noise, noise_generator, noisy_images
from dmh.steps import joint_step
from dmh.tasks import TaskNet


class Identity(nn.Module):
    """A "denoiser" that returns its input (one parameter, so an optimizer has something to hold)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0 * self.w


def _clean(n: int = 4, size: int = 16, seed: int = 3) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def _mean_class_task() -> TaskNet:
    """A frozen 2-class classifier of the mean intensity: class 1 when the image's mean is above 0.5."""

    class MeanClassifier(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = x.mean(dim=(1, 2, 3))
            return torch.stack([0.5 - m, m - 0.5], 1) * 100

    return TaskNet(MeanClassifier(), kind="classification", num_classes=2, in_channels=1, mean=(0.0,), std=(1.0,))


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_the_training_step_denoises_the_noisy_input(lam):
    """A denoiser that returns its input gets exactly the noisy batch's MSE, drawn as the step draws it (batch, then
    noise, from the loop's generator); a step that fed the clean image would give 0."""
    clean = _clean()
    sigma = 25.0
    task = _mean_class_task()
    labels = torch.tensor([0, 1, 0, 1])
    step = joint_step(lambda g: (clean, labels), task if lam else None, lam=lam, sigma=sigma)
    g = torch.Generator().manual_seed(7)
    _, parts = step(Identity(), g)
    from dmh.steps import noisy_batch

    noisy = noisy_batch(clean, sigma, torch.Generator().manual_seed(7))
    want = float(((noisy - clean) ** 2).mean())
    assert parts["rec"] == pytest.approx(want, rel=1e-5) and want == pytest.approx((sigma / 255) ** 2, rel=0.2)


def test_the_blind_step_draws_one_sigma_per_image_and_noises_every_image():
    clean = _clean(8)
    step = joint_step(lambda g: clean, None, lam=0.0, sigma=(5.0, 100.0))
    _, parts = step(Identity(), torch.Generator().manual_seed(0))
    assert parts["rec"] > (5 / 255) ** 2


def test_image_i_of_any_batch_gets_its_own_generator():
    """noisy_images: image i gets noise_generator(seed, sigma, i), whatever the batch it is in; two different indices
    (also two equal images) get different noise."""
    clean = _clean(5)
    whole = noisy_images(clean, 30.0, seed=2)
    for i in range(5):
        alone = noisy_images(clean[i : i + 1], 30.0, seed=2, start=i)
        assert torch.equal(alone, whole[i : i + 1])
        assert torch.equal(whole[i], add_noise(clean[i][None], 30.0, noise_generator(2, 30.0, i))[0])
    assert torch.equal(noisy_images(clean[2:4], 30.0, seed=2, start=2), whole[2:4])
    same = clean[:1].repeat(3, 1, 1, 1)
    noise = noisy_images(same, 30.0, seed=2) - same
    assert not torch.allclose(noise[0], noise[1]) and not torch.allclose(noise[1], noise[2])
    assert not torch.equal(noisy_images(clean, 30.0, seed=3), whole)  # the seed counts too


def test_evaluation_scores_the_task_network_on_the_denoised_pixels():
    """A "denoiser" that makes every image black: the classifier of mean intensity then says class 0 everywhere, so
    the top-1 is the share of class-0 labels (and the PSNR that of a black image), not the clean images' score."""
    from dmh.evaluate import evaluate_task
    from dmh.metrics import psnr

    task = _mean_class_task()
    clean = torch.cat([torch.full((3, 1, 8, 8), 0.9), torch.full((1, 1, 8, 8), 0.1)])
    labels = torch.tensor([1, 1, 1, 0])
    assert evaluate_task(task, clean, labels, sigma=10.0)["top1"] == 1.0
    black = evaluate_task(task, clean, labels, sigma=10.0, denoiser=lambda x, s: torch.zeros_like(x))
    assert black["top1"] == 0.25
    assert black["psnr"] == pytest.approx(sum(psnr(torch.zeros_like(c), c) for c in clean) / 4)


class BNDenoiser(nn.Module):
    """Not a DenoiseNet (so it takes evaluation's plain path): conv -> BatchNorm -> conv, residual."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 1, 3, padding=1))
        with torch.no_grad():  # running statistics far from any batch's, so train mode shows
            self.body[1].running_mean.fill_(3.0)
            self.body[1].running_var.fill_(9.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@pytest.mark.parametrize("kind", ["DenoiseNet", "other"])
def test_evaluation_puts_the_denoiser_in_eval_mode(kind, make_denoiser):
    """A BatchNorm denoiser left in train mode gives numbers that depend on the batch; in eval mode batch size 1 and
    the whole set give the same numbers (and the module is left in eval mode)."""
    from dmh.evaluate import evaluate_task

    net = make_denoiser(1, 0.25) if kind == "DenoiseNet" else BNDenoiser()
    if kind == "DenoiseNet":
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(0.3)
                m.running_var.fill_(4.0)
    task = _mean_class_task()
    clean = _clean(6)
    labels = (clean.mean(dim=(1, 2, 3)) > 0.5).long()
    net.train()
    one = evaluate_task(task, clean, labels, sigma=20.0, denoiser=net, batch_size=1)
    net.train()
    whole = evaluate_task(task, clean, labels, sigma=20.0, denoiser=net, batch_size=250)
    assert one["psnr"] == pytest.approx(whole["psnr"], abs=1e-4)
    with torch.no_grad():
        net.eval()
        den = net(noisy_images(clean, 20.0, 0))
    from dmh.metrics import psnr

    assert whole["psnr"] == pytest.approx(sum(psnr(d[None], c[None]) for d, c in zip(den, clean)) / 6, abs=1e-3)


def _table(metric: dict[str, list[list[float]]]) -> dict:
    """A Table-2-like dict: rows -> sigma -> per-seed metric lists (the subset's and PSNR the same)."""
    rows = {}
    for row, per_sigma in metric.items():
        rows[row] = {}
        for s, seeds in zip(("30", "60"), per_sigma):
            rows[row][s] = {"metric_seeds": seeds, "metric_subset_seeds": seeds, "psnr": 20.0, "psnr_subset": 20.0}
    return {"task": "A", "rows": rows}


def test_a_verdicts_error_bar_is_over_training_seeds_not_sigmas():
    """Seeds' means over the sigmas: separate (0.50, 0.52, 0.54), joint (0.60, 0.62, 0.70); the sigmas differ by
    0.2, which an error bar over sigmas would take for spread."""
    from dmh.stats import compare, summary
    from dmh.study import table_claims

    sep = [[0.40, 0.42, 0.44], [0.60, 0.62, 0.64]]
    joint = [[0.50, 0.52, 0.60], [0.70, 0.72, 0.80]]
    fixed = [[0.3, 0.3, 0.3], [0.1, 0.1, 0.1]]
    t = _table({"noisy": fixed, "CBM3D": fixed, "separate": sep, "joint (paper)": joint, "joint (chosen)": joint,
                "cross-task": sep})  # fmt: skip
    found = {(c["a"], c["b"], c["subset"]): c for c in table_claims(t)}
    c = found["joint (chosen)", "separate", False]
    want = compare(summary([0.60, 0.62, 0.70]), summary([0.50, 0.52, 0.54]))
    assert c["n_a"] == 3 and c["diff"] == pytest.approx(0.12) and c["se"] == pytest.approx(want["se"])
    assert c["se"] == pytest.approx(math.sqrt(0.0028 / 3 + 0.0004 / 3))  # sample variances 0.0028, 0.0004
    assert c["verdict"] == "held"
    # one sigma alone: the same seeds' values, the same error bar
    only60 = {(c["a"], c["b"], c["subset"]): c for c in table_claims(t, [60.0])}["joint (chosen)", "separate", False]
    assert only60["se"] == pytest.approx(want["se"])
