"""Additive white Gaussian noise, sigma on the 0-255 scale, for images in [0, 1].

The authors add noise to 0-255 data and do not clip; `clip=False` is therefore the default. Noise is drawn from a
`torch.Generator` so that every row of a table can see the same noisy pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["add_noise", "sample_sigma", "check_sigma", "noise_generator", "noisy_images", "deepinv_sigma"]


def check_sigma(sigma: float | Sequence[float] | Tensor, name: str = "sigma") -> Tensor:
    """Sigma (0-255 scale) as a float tensor; negative or non-finite values are an error."""
    s = torch.as_tensor(sigma, dtype=torch.float32)
    if not torch.isfinite(s).all() or (s < 0).any():
        raise ValueError(f"{name} must be finite and >= 0 (0-255 scale), got {sigma}")
    return s


def noise_generator(seed: int, sigma: float, index: int) -> torch.Generator:
    """The generator of the noise added to evaluation image number `index` at `sigma` (0-255; its integer part
    counts) under `seed`: every method, table and notebook that scores that image sees the same noisy pixels."""
    return torch.Generator().manual_seed(seed * 1_000_003 + int(sigma) * 1000 + index)


def sample_sigma(n: int, sigma_range: tuple[float, float], generator: torch.Generator | None = None) -> Tensor:
    """Draw `n` sigmas uniformly from `sigma_range` (0-255 scale) for blind training; returns shape (n,)."""
    lo, hi = (float(v) for v in check_sigma(sigma_range, "sigma_range"))
    if hi < lo:
        raise ValueError(f"sigma_range must be (low, high) with low <= high, got {sigma_range}")
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def add_noise(
    x: Tensor,
    sigma: float | Sequence[float] | Tensor,
    generator: torch.Generator | None = None,
    *,
    clip: bool = False,
) -> Tensor:
    """Return `x + n`, n ~ N(0, (sigma / 255)^2) per pixel.

    Args:
        x: images in [0, 1], (N, C, H, W) or (C, H, W).
        sigma: one value, or one per image (shape (N,)) for blind noise; 0-255 scale.
        generator: seeds the draw (CPU generator; the noise is moved to x's device).
        clip: clip the result to [0, 1] (the authors do not).
    """
    if not isinstance(x, Tensor):
        raise TypeError(
            f"add_noise takes a torch tensor, got {type(x).__name__}; convert images with dmh.images.to_nchw "
            "(numpy (H, W, C), uint8 / uint16 scaled to [0, 1])"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"add_noise takes float images in [0, 1], got {x.dtype} (the noise would be rounded and wrapped): "
            "use x.float() / 255 for uint8, or dmh.images.to_nchw"
        )
    s = check_sigma(sigma)
    if s.ndim == 1:
        if x.ndim != 4 or s.shape[0] != x.shape[0]:
            raise ValueError(f"per-image sigma needs (N, C, H, W) input with N = {s.shape[0]}, got {tuple(x.shape)}")
        s = s.view(-1, 1, 1, 1)
    elif s.ndim != 0:
        raise ValueError(f"sigma must be a scalar or shape (N,), got shape {tuple(s.shape)}")
    n = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
    y = x + n * (s.to(x.device, x.dtype) / 255.0)
    return y.clamp(0.0, 1.0) if clip else y


def noisy_images(clean: Tensor, sigma: float, seed: int, start: int = 0) -> Tensor:
    """The evaluation noise of images start, start + 1, ... of a set (`clean`: (N, C, H, W) in [0, 1]) at `sigma`
    (0-255): image i gets `noise_generator(seed, sigma, i)`, so any batch of the set sees the same noisy pixels."""
    return torch.cat([add_noise(c[None], sigma, noise_generator(seed, sigma, start + k)) for k, c in enumerate(clean)])


def deepinv_sigma(sigma: float | Tensor) -> float | Tensor:
    """A noise level on dmh's 0-255 scale in deepinv's units (`deepinv.models.Denoiser(x, sigma)`: the standard
    deviation of the noise on [0, 1] images): sigma / 255. The one place the two conventions meet."""
    return sigma / 255.0
