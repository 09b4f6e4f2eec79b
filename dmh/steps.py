"""The study's training step, written once: draw a clean batch, add Gaussian noise, run the denoiser (through the
frozen task network when lam > 0) and apply `JointLoss`.

    step = denoising_step(sample, (5, 55))                                   # the denoiser alone (lam = 0)
    step = joint_step(sample, task_net, lam=0.25, sigma=(5, 100))            # the cascade: MSE + lam * task loss
    train(denoiser, step, TrainConfig(...))                                  # `dmh.training`: the one loop

`sample(g)` returns a clean batch (N, C, H, W) in [0, 1], or (clean, target) with the task's target (labels; None
for the label-free target, which is the task network's prediction on the clean batch). `sigma` is on the 0-255
scale: a (low, high) range draws one sigma per image (blind), a number fixes it. The random draws come from the
training loop's generator `g` in a fixed order (batch, sigmas, noise), so a run resumes and repeats bit-identically.
Paper-scale training (`dmh.ddp`) builds its noisy batches across processes and calls `objective` directly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from dmh.cascade import Cascade, run_denoiser
from dmh.losses import JointLoss
from dmh.noise import add_noise, sample_sigma

__all__ = [
    "Sample",
    "StepFn",
    "Sigma",
    "keep_bn_statistics",
    "draw_sigma",
    "noisy_batch",
    "objective",
    "denoising_step",
    "joint_step",
]

Sigma = float | tuple[float, float]
Sample = Callable[[torch.Generator], "Tensor | tuple[Tensor, Tensor | None]"]
StepFn = Callable[[nn.Module, torch.Generator], tuple[Tensor, dict[str, float]]]


def keep_bn_statistics(net: nn.Module) -> None:
    """Put the BatchNorm layers of `net` in eval mode: their running statistics stay those of the denoiser trained
    alone (both domains), while their affine weights still learn. Fine-tuning on one task's images would otherwise
    move them to that domain, and the denoiser breaks on the other task's images (cross-task): measured on validation
    data, restoring the base statistics lifted A's top-1 behind the B-tuned denoiser from 0.29 to 0.81 at sigma 30."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def draw_sigma(n: int, sigma: Sigma, g: torch.Generator) -> Tensor:
    """One sigma (0-255) per image, (n,): drawn from the range `sigma` with `g`, or the fixed `sigma`."""
    if isinstance(sigma, tuple | list):
        return sample_sigma(n, tuple(sigma), g)
    return torch.full((n,), float(sigma))


def noisy_batch(clean: Tensor, sigma: Sigma, g: torch.Generator) -> Tensor:
    """`clean` plus Gaussian noise: one sigma per image drawn from the range `sigma`, or the fixed `sigma` (0-255)."""
    return add_noise(clean, draw_sigma(len(clean), sigma, g), g)


def objective(
    denoiser: nn.Module,
    noisy: Tensor,
    clean: Tensor,
    loss_fn: JointLoss,
    task_net: nn.Module | None = None,
    target: Tensor | None = None,
    sigma: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The joint objective on one noisy batch: MSE(D(noisy), clean), plus `loss_fn.lam` times the task loss of
    task_net(D(noisy)) against `target` when lam > 0 (the task network frozen, `dmh.cascade.Cascade`). `sigma`
    (0-255, (N,)) is each image's noise level, for a denoiser that takes one (`dmh.cascade.run_denoiser`). Returns
    (loss, {"rec", "task"})."""
    if loss_fn.lam == 0 or task_net is None:
        return loss_fn(run_denoiser(denoiser, noisy, sigma), clean)
    den, logits = Cascade(denoiser, task_net)(noisy, sigma)
    return loss_fn(den, clean, logits, target)


def _split(batch: Tensor | tuple[Tensor, Tensor | None]) -> tuple[Tensor, Tensor | None]:
    return batch if isinstance(batch, tuple) else (batch, None)


def denoising_step(sample: Sample, sigma: Sigma) -> StepFn:
    """The step of a denoiser trained alone: a clean batch from `sample`, noise at `sigma`, MSE."""
    return joint_step(sample, None, lam=0.0, sigma=sigma)


def joint_step(
    sample: Sample,
    task_net: nn.Module | None,
    *,
    lam: float,
    sigma: Sigma,
    kind: str | None = None,
    keep_bn: bool = False,
) -> StepFn:
    """The step of a denoiser fine-tuned through the frozen `task_net` with MSE + lam * task loss.

    Args:
        sample: g -> clean batch, or (clean, target).
        task_net: the frozen task network (None, or lam = 0: the denoiser alone, the "separate" twin).
        lam: weight of the task term (MSE on [0, 1] images).
        sigma: noise level(s) on 0-255: a (low, high) range (one draw per image) or a number.
        kind: the task loss ("classification", "segmentation", "label_free"; default: `task_net.kind`, else
            classification). "label_free": the target is task_net's prediction on the clean batch.
        keep_bn: keep the denoiser's BatchNorm statistics (`keep_bn_statistics`) at every step.
    """
    kind = kind or getattr(task_net, "kind", "classification")
    loss_fn = JointLoss(lam, kind)

    def step(model: nn.Module, g: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        if keep_bn:
            keep_bn_statistics(model)
        clean, target = _split(sample(g))
        sig = draw_sigma(len(clean), sigma, g)
        noisy = add_noise(clean, sig, g)
        if lam > 0 and task_net is not None and kind == "label_free":
            with torch.no_grad():
                target = task_net(clean)
        return objective(model, noisy, clean, loss_fn, task_net, target, sig)

    return step
