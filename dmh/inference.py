"""Denoising with a trained `DenoiseNet`: tiled inference of any size (`denoise`), and image files in and out with
a released denoiser (`denoise_file`, what `dmh denoise` runs; file rules in `dmh.imagefiles`)."""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm  # text bars: a headless (papermill) run saves their final count

from dmh import pretrained
from dmh.fast import prepare
from dmh.imagefiles import ImageFile, check_output, check_writable, read_image_file, write_image_file
from dmh.images import to_nchw
from dmh.nets import denoisenet
from dmh.validate import check_int, check_real

__all__ = ["denoise", "choose_weights", "denoise_file"]


@torch.inference_mode()
def denoise(
    net: nn.Module,
    image: Any,
    *,
    tile: int | None = 256,
    overlap: int = 32,
    batch_size: int = 4,
    fast: bool = False,
    progress: bool = False,
    ensemble: bool = False,
) -> Tensor:
    """Denoise an image of any size with bounded memory.

    Args:
        net: a denoiser mapping (N, C, H, W) to the same shape (put in eval mode here).
        image: (C, H, W) or (N, C, H, W) tensor, or an (H, W) / (H, W, C) numpy array (uint8 / uint16 are scaled to
            [0, 1]); see `dmh.images.to_nchw`.
        tile: core tile size in pixels (rounded up to a multiple of 4); None runs the whole image at once.
        overlap: context margin on each side of a tile; at >= `RECEPTIVE_RADIUS` the result equals the untiled one
            up to float rounding. Tiles are cropped to their cores (not averaged), so no seams are blended.
        batch_size: tiles per forward pass.
        fast: run an inference copy of `net` (a DenoiseNet) with BatchNorm folded into the convolutions and
            channels-last memory (`dmh.fast.prepare`); equal to the plain path up to float rounding. `net` itself is
            left as it is.
        progress: show a tqdm bar over the tiles.
        ensemble: the geometric self-ensemble ("+" results of denoising papers): the mean of the 8 outputs for the
            image's flips and 90-degree rotations, each mapped back (8x the time).

    Returns:
        (N, C, H, W) float tensor (N = 1 for a single image), not clipped.
    """
    check_int(batch_size, "batch_size", low=1)
    check_int(tile, "tile", low=4, allow_none=True)
    check_int(overlap, "overlap", low=0)
    x = to_nchw(image, channels=getattr(net, "in_channels", None))
    if ensemble:
        kw = {"tile": tile, "overlap": overlap, "batch_size": batch_size, "fast": fast}
        steps = tqdm(range(8), desc="denoise, 8 flips / rotations", disable=not progress, leave=False)
        outs = [_undo(denoise(net, _dihedral(x, k), **kw), k) for k in steps]
        return torch.stack(outs).mean(0)
    if fast:
        net = prepare(net)
    net.eval()
    first = next(net.parameters(), None)
    dev = first.device if first is not None else torch.device("cpu")
    if tile is None:
        return net(x.to(dev)).cpu()
    t = 4 * math.ceil(tile / 4)
    m = 4 * math.ceil(overlap / 4)
    n, ch, h, w = x.shape
    # Pad once to a multiple of 4 as the untiled forward does, so every tile sits on the same stride-4 grid.
    ph, pw = (-h) % 4, (-w) % 4
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate" if min(h, w) < 3 else "reflect") if ph or pw else x
    hp, wp = xp.shape[-2:]
    out = torch.empty_like(xp)
    boxes = [(i, j) for i in range(0, hp, t) for j in range(0, wp, t)]
    bar = tqdm(total=n * len(boxes), desc="denoise", unit="tile", disable=not progress, leave=False)
    for k in range(n):
        for b in range(0, len(boxes), batch_size):
            chunk = boxes[b : b + batch_size]
            crops, spans = [], []
            for i, j in chunk:
                i0, j0 = max(i - m, 0), max(j - m, 0)
                i1, j1 = min(i + t + m, hp), min(j + t + m, wp)
                crops.append(xp[k, :, i0:i1, j0:j1])
                spans.append((i, j, i0, j0, min(i + t, hp), min(j + t, wp)))
            # Tiles at the image edge are smaller; run same-shaped tiles together.
            for shape in {c.shape for c in crops}:
                idx = [q for q, c in enumerate(crops) if c.shape == shape]
                res = net(torch.stack([crops[q] for q in idx]).to(dev)).cpu()
                for r, q in zip(res, idx):
                    i, j, i0, j0, ie, je = spans[q]
                    out[k, :, i:ie, j:je] = r[:, i - i0 : ie - i0, j - j0 : je - j0]
            bar.update(len(chunk))
    bar.close()
    return out[..., :h, :w]


def _dihedral(x: Tensor, k: int) -> Tensor:
    """Transform k of the 8 flips / rotations of (N, C, H, W): rotate by 90 * (k % 4) degrees, then flip if k >= 4."""
    y = torch.rot90(x, k % 4, dims=(-2, -1))
    return y.flip(-1) if k >= 4 else y


def _undo(y: Tensor, k: int) -> Tensor:
    """The inverse of `_dihedral(., k)`."""
    y = y.flip(-1) if k >= 4 else y
    return torch.rot90(y, -(k % 4), dims=(-2, -1))


def choose_weights(sigma: float | None = None, blind: bool = False, weights: str | None = None) -> str:
    """Which released denoiser `dmh denoise` runs: `weights` if given (with `sigma` or `blind` too: ValueError, the
    flags would contradict each other); else the per-sigma model when `sigma` is one of 15 / 25 / 50, not `blind`,
    and that model is released (in data/pretrained/manifest.json); else the blind one."""
    if weights is not None:
        if sigma is not None or blind:
            flag = "--sigma" if sigma is not None else "--blind"
            raise ValueError(f"{flag} chooses a released model and --weights names one: pass one of them, not both")
        return str(weights)
    if not blind and sigma is not None and float(sigma) in (15.0, 25.0, 50.0):
        name = f"colour-s{int(sigma)}"
        if name in pretrained.read_manifest():
            return name
    return "colour-blind"


def denoise_file(
    src: str | Path,
    dst: str | Path,
    *,
    sigma: float | None = None,
    blind: bool = False,
    weights: str | Path | None = None,
    tile: int = 256,
    progress: bool = True,
    ensemble: bool = False,
    overwrite: bool = False,
    max_pixels: int | None = None,
) -> dict[str, Any]:
    """Denoise an image file with a released colour denoiser (or any `DenoiseNet` checkpoint) and write the result
    with the same bit depth, channels and metadata (the rules of `dmh.imagefiles`).

    Args:
        src, dst: PNG (1-16 bit), TIFF (8 or 16 bit) or JPEG files. `dst` is checked before any work (suffix,
            folder, permissions; the input itself only with `overwrite`) and written atomically.
        sigma: the noise level on the 0-255 scale (of the 8-bit range, also for 16-bit files); picks the per-sigma
            model at 15 / 25 / 50 (`choose_weights`); the blind model needs no sigma (trained on 0-55).
        blind: use the blind model whatever `sigma` is.
        weights: a released name or the path of a `DenoiseNet` checkpoint (its architecture read from the file);
            not together with `sigma` or `blind`.
        tile: tile size of `dmh.denoise` (memory stays bounded on large photos).
        ensemble: the geometric self-ensemble (8 flips / rotations averaged; 8x the time).
        max_pixels: refuse larger images (default `dmh.imagefiles.max_pixels()`).

    Grey images (and grey + alpha) go through a colour model as three equal channels, the three outputs averaged
    back to one, and are written grey (a grey model, "grey-blind", takes them as they are and refuses colour images).
    An alpha channel is kept as it is. Returns what was done (weights, bits, shape, seconds, conversions, warning).
    """
    check_real(sigma, "sigma", low=0, high=255, allow_none=True)
    name = choose_weights(sigma, blind, None if weights is None else str(weights))
    dst = check_output(dst, src, overwrite=overwrite)
    img = read_image_file(src, max_pixels=max_pixels)
    channels = 1 if img.pixels.ndim == 2 else img.pixels.shape[2]
    check_writable(dst, img.bits, channels)
    net = denoisenet(weights=name).eval()
    warning = ""
    if name == "colour-blind" and sigma is not None and not 0.0 <= sigma <= 55.0:
        warning = f"sigma {sigma:g} is outside the blind model's training range 0-55: expect a weaker result"
        warnings.warn(warning, stacklevel=2)
    grey_net = net.in_channels == 1
    if grey_net and not img.grey:
        raise ValueError(f"{src} is a colour image and {name} a grey denoiser: choose a colour one (colour-blind, ...)")
    t0 = time.time()
    top = float(2**img.bits - 1)
    colour = img.colour  # (H, W, 1) or (H, W, 3)
    rgb = colour if grey_net or colour.shape[2] == 3 else np.repeat(colour, 3, axis=2)
    x = torch.from_numpy(rgb.astype(np.float32) / top).permute(2, 0, 1)
    y = denoise(net, x, tile=tile, fast=True, progress=progress, ensemble=ensemble)[0].clamp(0, 1)
    if img.grey:
        y = y.mean(0, keepdim=True)
    out = np.rint(y.permute(1, 2, 0).numpy() * top).astype(img.pixels.dtype)
    if img.alpha is not None:
        out = np.concatenate([out, img.alpha[..., None]], axis=2)
    out = out[..., 0] if out.shape[2] == 1 else out
    write_image_file(dst, ImageFile(out, img.bits, img.bits, img.icc, img.exif, img.orientation, img.png_chunks))
    return {"weights": name, "bits": img.bits, "shape": list(img.pixels.shape), "seconds": round(time.time() - t0, 3),
            "converted": img.note, "warning": warning}  # fmt: skip
