"""The field's denoisers in `dmh` (deepinv's DnCNN as a second grey base), and dmh's released denoisers in deepinv
(`as_deepinv`: a `deepinv.models.Denoiser` for deepinv's plug-and-play solvers).

deepinv is imported by this module only, so `import dmh` and `dmh --help` never import it.

Units: `dmh` gives sigma on the 0-255 scale; a `deepinv.models.Denoiser` takes the standard deviation of the noise
on [0, 1] images: `dmh.noise.deepinv_sigma(sigma) = sigma / 255`, written there once and applied by
`dmh.cascade.run_denoiser` wherever dmh calls a denoiser that takes a noise level.

DnCNN's size (rule written 2026-12-06, before any time was measured): depth 17, Zhang et al.'s DnCNN-S; its width
`nf` is the largest of 64, 48, 32, 24, 16 whose one-thread training step on the grey base's recipe (batch 64 of
32 x 32 grey patches, Adam) takes at most the time of `DenoiseNet(1, 0.5)`'s, the released grey base, measured in
one process (`bench/dncnn_cost.py`), so that both architectures get about the same steps from the same hours. DnCNN
has no downsampling: at nf 64 each pixel costs about 17 x 64 x 64 x 9 multiply-adds, several times DenoiseNet's.
"""

from __future__ import annotations

from typing import Any

import torch
from deepinv.models import Denoiser
from deepinv.models import DnCNN as _DeepinvDnCNN

__all__ = ["DnCNN", "dncnn", "DmhDenoiser", "as_deepinv", "NF_CANDIDATES", "DEPTH"]

#: The rule's candidates for DnCNN's width and its fixed depth.
NF_CANDIDATES = (64, 48, 32, 24, 16)
DEPTH = 17


class DnCNN(_DeepinvDnCNN):
    """deepinv's DnCNN (no BatchNorm, residual: x + net(x)) with the `arch` that `dmh.checkpoint` stores and checks.
    Images (N, C, H, W) in [0, 1]; `forward(x, sigma=None)` ignores sigma (a blind denoiser)."""

    def __init__(self, in_channels: int = 1, depth: int = DEPTH, nf: int = 32) -> None:
        super().__init__(in_channels=in_channels, out_channels=in_channels, depth=depth, nf=nf, pretrained=None)
        self.in_channels, self.nf = in_channels, nf

    @property
    def arch(self) -> dict[str, Any]:
        return {"name": "DnCNN", "in_channels": self.in_channels, "depth": self.depth, "nf": self.nf}


def dncnn(*, in_channels: int = 1, depth: int = DEPTH, nf: int = 32, seed: int | None = None) -> DnCNN:
    """A randomly initialised DnCNN (deepinv's Kaiming init; `seed` seeds it). No weights are downloaded."""
    if seed is not None:
        torch.manual_seed(seed)
    return DnCNN(in_channels, depth, nf)


class DmhDenoiser(Denoiser):
    """A dmh denoiser as a `deepinv.models.Denoiser`, for deepinv's denoising calls and plug-and-play solvers:
    `forward(x, sigma)` with x (N, C, H, W) in [0, 1]. The released dmh models are blind (one network for a range of
    noise levels, estimated from the image), so sigma is accepted and not used; a model trained at one sigma
    (colour-s15 / s25 / s50) is only meant for noise near it."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net.eval()

    def forward(self, x: torch.Tensor, sigma: Any = None, **kwargs: Any) -> torch.Tensor:
        return self.net(x)


def as_deepinv(weights: str = "colour-blind") -> DmhDenoiser:
    """A released dmh denoiser (`dmh.nets.denoisenet(weights=...)`, sha256-checked, no download) as a deepinv
    `Denoiser`, e.g. the prior of `deepinv.optim.DPIR(sigma, denoiser=as_deepinv())`."""
    from dmh.nets import denoisenet

    return DmhDenoiser(denoisenet(weights=weights))
