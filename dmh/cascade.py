"""The cascade: a trainable denoiser in front of a frozen high-level network.

The denoiser is any `nn.Module` mapping noisy (N, C, H, W) images in [0, 1] to denoised ones: `forward(x)` (the
paper's `DenoiseNet`) or `forward(x, sigma)` (a `deepinv.models.Denoiser`, e.g. its DnCNN, DRUNet or FFDNet), which
`run_denoiser` gives the noise level of each image in deepinv's units (`dmh.noise.deepinv_sigma`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from dmh.noise import deepinv_sigma

__all__ = ["freeze", "Cascade", "takes_sigma", "run_denoiser"]


def takes_sigma(denoiser: nn.Module) -> bool:
    """Whether `denoiser.forward` takes a noise level (a parameter named `sigma`, as deepinv's denoisers)."""
    try:
        return "sigma" in inspect.signature(denoiser.forward).parameters
    except (TypeError, ValueError):
        return False


def run_denoiser(denoiser: nn.Module, noisy: Tensor, sigma: float | Tensor | None = None) -> Tensor:
    """`denoiser(noisy)`, or `denoiser(noisy, sigma / 255)` for a denoiser that takes a noise level (`takes_sigma`).

    Args:
        noisy: (N, C, H, W) in [0, 1] plus noise.
        sigma: the noise level on 0-255, one number or one per image ((N,)); None for a blind call (deepinv's
            denoisers that need a level refuse it).
    """
    if not takes_sigma(denoiser):
        return denoiser(noisy)
    if sigma is None:
        return denoiser(noisy, None)
    s = torch.as_tensor(sigma, dtype=noisy.dtype, device=noisy.device)
    return denoiser(noisy, deepinv_sigma(s.expand(len(noisy)) if s.ndim == 0 else s))


def freeze(net: nn.Module) -> nn.Module:
    """Freeze `net` in place: no gradients to its parameters, eval mode (batch-norm statistics never move)."""
    net.requires_grad_(False)
    net.eval()
    return net


class Cascade(nn.Module):
    """`task_net(denoiser(noisy))` with the task network frozen.

    The task network stays in eval mode even when the cascade is put in train mode, and its parameters never get
    gradients; gradients of the task loss still flow *through* it into the denoiser.

    Args:
        denoiser: maps noisy (N, C, H, W) images in [0, 1] to denoised ones: `forward(x)` or `forward(x, sigma)`
            (a deepinv denoiser; `run_denoiser`).
        task_net: maps (N, C, H, W) images in [0, 1] to logits ((N, K) or (N, K, H, W)); it handles its own
            normalisation. Frozen in place.
    """

    def __init__(self, denoiser: nn.Module, task_net: nn.Module) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.task_net = freeze(task_net)

    def train(self, mode: bool = True) -> Cascade:
        super().train(mode)
        self.task_net.eval()
        return self

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The denoiser's parameters (what an optimizer should get)."""
        return (p for p in self.denoiser.parameters() if p.requires_grad)

    def forward(self, noisy: Tensor, sigma: float | Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Return (denoised image, task logits). `sigma` (0-255, one number or one per image) reaches a denoiser
        that takes a noise level (`run_denoiser`); others ignore it."""
        den = run_denoiser(self.denoiser, noisy, sigma)
        return den, self.task_net(den)
