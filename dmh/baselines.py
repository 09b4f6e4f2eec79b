"""CBM3D / BM3D, the paper's classical baseline: a thin wrapper over the `bm3d` package (non-commercial licence;
dmh depends on it and never copies it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from dmh.images import to_nchw
from dmh.noise import check_sigma

__all__ = ["cbm3d"]


def _one(img: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d  # imported lazily: it loads a compiled library

    if sigma == 0:
        return img
    s = sigma / 255.0
    if img.shape[-1] == 3:
        return np.asarray(bm3d.bm3d_rgb(img, s), dtype=np.float32)
    return np.asarray(bm3d.bm3d(img[..., 0], s), dtype=np.float32)[..., None]


def cbm3d(image: Any, sigma: float, *, progress: bool = False) -> Tensor:
    """Denoise with CBM3D (colour, `bm3d.bm3d_rgb`, opponent colour space) or BM3D (grey, `bm3d.bm3d`).

    Args:
        image: noisy image(s) in [0, 1] (values outside are allowed): tensor (C, H, W) / (N, C, H, W) or numpy
            (H, W) / (H, W, C); C = 1 or 3.
        sigma: the noise level on the 0-255 scale (known, as in the paper's comparison).
        progress: show a bar over the batch.

    Returns:
        (N, C, H, W) float32 tensor.
    """
    x = to_nchw(image)
    s = float(check_sigma(sigma))
    if x.shape[1] not in (1, 3):
        raise ValueError(f"cbm3d takes 1 or 3 channels, got {x.shape[1]}")
    hwc = x.permute(0, 2, 3, 1).numpy().astype(np.float64)
    out = [_one(im, s) for im in tqdm(hwc, desc=f"BM3D sigma={s:g}", disable=not progress, leave=False)]
    return torch.from_numpy(np.stack(out).astype(np.float32)).permute(0, 3, 1, 2).contiguous()
