"""CBM3D / BM3D, the paper's classical baseline: a thin wrapper over the `bm3d` package (non-commercial licence;
dmh depends on it and never copies it).

CBM3D is slow here (about 0.3 s of fixed cost per call even on a 28 x 28 image, and ~38 s on a 768 x 512 photo), and
the notebooks call it on the same noisy pixels again and again (nbval re-runs every notebook; `dmh reproduce` re-runs
after an edit). So every result is kept on disk, addressed by the sha256 of the exact input (bytes, shape, sigma,
bm3d's version): `$DMH_CACHE/cbm3d/` (default `~/.cache/dmh/`, or `$XDG_CACHE_HOME/dmh/`); `DMH_CACHE=off` turns
the cache off, and deleting the folder is always safe. A cached call returns exactly what the first call returned
(bm3d itself repeats only to ~1e-6: docs/ERRORS.md).
"""

from __future__ import annotations

import hashlib
import io
import math
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm  # text bars: a headless (papermill) run saves their final count

from dmh.checkpoint import atomic_write
from dmh.images import to_nchw
from dmh.layout import cache_dir
from dmh.noise import check_sigma

__all__ = ["cache_dir", "cbm3d", "cbm3d_many", "cbm3d_mosaic", "mosaic", "warm_cbm3d_mosaics"]


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _cache_path(img: np.ndarray, sigma: float, root: Path) -> Path:
    """Where the result for this float64 (H, W, C) input and sigma is kept: the sha256 of the input, sigma and
    bm3d's version."""
    h = hashlib.sha256(f"bm3d {version('bm3d')} sigma {sigma!r} shape {img.shape} {img.dtype}".encode())
    h.update(np.ascontiguousarray(img).tobytes())
    key = h.hexdigest()
    return root / "cbm3d" / key[:2] / f"{key}.npy"


def _cached_one(img: np.ndarray, sigma: float, root: Path | None) -> np.ndarray:
    """`_one` through the disk cache: the key is the sha256 of the float64 (H, W, C) input, sigma and bm3d's version."""
    if root is None or sigma == 0:
        return _one(img, sigma)
    path = _cache_path(img, sigma, root)
    if path.is_file():
        try:
            out = np.load(path, allow_pickle=False)
            if out.shape == img.shape and out.dtype == np.float32:
                return out
        except (OSError, ValueError):
            pass  # a damaged entry: computed again and rewritten
    out = _one(img, sigma)
    try:  # atomic: a concurrent reader sees the whole file or none
        atomic_write(path, lambda tmp: tmp.write_bytes(_npy_bytes(out)))
    except OSError:
        pass  # a read-only or full disk: the result is still returned
    return out


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

    Results are kept in a disk cache (module docstring; `DMH_CACHE=off` disables it).

    Returns:
        (N, C, H, W) float32 tensor.
    """
    x = to_nchw(image)
    s = float(check_sigma(sigma))
    if x.shape[1] not in (1, 3):
        raise ValueError(f"cbm3d takes 1 or 3 channels, got {x.shape[1]}")
    hwc = x.permute(0, 2, 3, 1).numpy().astype(np.float64)
    root = cache_dir()
    out = [_cached_one(im, s, root) for im in tqdm(hwc, desc=f"BM3D sigma={s:g}", disable=not progress, leave=False)]
    return torch.from_numpy(np.stack(out).astype(np.float32)).permute(0, 3, 1, 2).contiguous()


def _timed_cbm3d(image: Tensor, sigma: float) -> tuple[Tensor, float]:
    """`cbm3d` and its seconds (the worker of `cbm3d_many`)."""
    t0 = time.perf_counter()
    out = cbm3d(image, sigma)
    return out, time.perf_counter() - t0


def cbm3d_many(jobs: Sequence[tuple[Tensor, float]], workers: int = 2) -> list[tuple[Tensor, float]]:
    """`cbm3d` on many (image, sigma) pairs, `workers` processes at once: bm3d runs a 2-D image on one core, so two
    processes on 2 cores take about half the time. Each result goes through the disk cache as `cbm3d`'s does.

    Returns [(denoised (N, C, H, W), seconds of that call)] in the order of `jobs`."""
    workers = max(1, min(int(workers), len(jobs)))
    if workers == 1:
        return [_timed_cbm3d(x, s) for x, s in jobs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(_timed_cbm3d, [x for x, _ in jobs], [s for _, s in jobs]))


def mosaic(batch: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """Tile the (N, C, H, W) batch into one near-square (C, rows * H, cols * W) canvas (zeros where no image falls);
    returns it and the function that cuts a canvas of that shape back into (N, C, H, W)."""
    n, c, h, w = batch.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = torch.zeros(c, rows * h, cols * w)
    for k in range(n):
        canvas[:, (k // cols) * h : (k // cols + 1) * h, (k % cols) * w : (k % cols + 1) * w] = batch[k]

    def cut(den: Tensor) -> Tensor:
        return torch.stack([den[:, (k // cols) * h : (k // cols + 1) * h, (k % cols) * w : (k % cols + 1) * w]
                            for k in range(n)])  # fmt: skip

    return canvas, cut


def cbm3d_mosaic(batch: Tensor, sigma: float) -> Tensor:
    """BM3D on many small images at once: tile the (N, C, H, W) batch into one near-square mosaic (`mosaic`), denoise
    it in one call, cut it apart. Blocks may match across neighbouring images (which can only help BM3D); this makes
    CBM3D on thousands of 28 x 28 items affordable on a CPU."""
    canvas, cut = mosaic(batch)
    return cut(cbm3d(canvas, sigma)[0])


def warm_cbm3d_mosaics(batches: Sequence[tuple[Tensor, float]], workers: int = 2) -> int:
    """Compute `cbm3d_mosaic` of each (noisy batch, sigma) into the disk cache, `workers` processes at once, so that
    the table that then calls `cbm3d_mosaic` on the same batches one by one reads them; what is cached already is
    skipped. Does nothing when the cache is off (the table computes them itself). Returns how many were computed."""
    root = cache_dir()
    if root is None:
        return 0
    todo = []
    for batch, sigma in batches:
        if sigma == 0:
            continue
        canvas = mosaic(batch)[0]
        hwc = canvas.permute(1, 2, 0).numpy().astype(np.float64)
        if not _cache_path(hwc, float(check_sigma(sigma)), root).is_file():
            todo.append((canvas, sigma))
    cbm3d_many(todo, workers)
    return len(todo)
