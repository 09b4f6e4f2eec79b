"""Image conversions with clear errors: numpy arrays are (H, W) or (H, W, C) (scikit-image's convention), tensors are
(C, H, W) or (N, C, H, W) (PyTorch's). uint8 / uint16 are scaled to [0, 1]; floats are taken as already in [0, 1]."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from dmh.imagefiles import ImageFile, ImageReadError, check_writable, read_image_file, write_image_file

__all__ = [
    "to_nchw",
    "to_hwc",
    "check_finite",
    "ImageReadError",
    "open_image",
    "open_rgb",
    "read_image",
    "read_file",
    "write_file",
    "check_writable",
]

_INT_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def check_finite(x: Tensor, name: str = "image") -> Tensor:
    """Raise ValueError if `x` holds NaN or inf."""
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} holds {bad} non-finite values (NaN or inf)")
    return x


def to_nchw(image: Any, channels: int | None = None) -> Tensor:
    """Convert an image or batch to a float32 (N, C, H, W) tensor in [0, 1].

    Args:
        image: numpy (H, W) / (H, W, C) / (N, H, W, C), or torch (H, W) / (C, H, W) / (N, C, H, W). Integer arrays
            must be uint8 (divided by 255) or uint16 (divided by 65535); other integer types are refused.
        channels: the channel count the consumer expects (1 or 3); a mismatch is an error that says how to convert.

    Raises:
        TypeError: unsupported type or dtype.
        ValueError: wrong number of dimensions, wrong channel count, non-finite values.
    """
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype in _INT_SCALE:
            arr = arr.astype(np.float32) / _INT_SCALE[arr.dtype]
        elif arr.dtype.kind in "iub":
            raise TypeError(f"integer images must be uint8 or uint16, got {arr.dtype}")
        elif arr.dtype.kind != "f":
            raise TypeError(f"unsupported image dtype {arr.dtype}")
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            raise ValueError(
                f"numpy arrays are read as (H, W, C) (scikit-image's convention), and shape {arr.shape} looks like "
                "(C, H, W): pass arr.transpose(1, 2, 0), or a torch tensor (C, H, W)"
            )
        if arr.ndim == 2:
            arr = arr[None, None]
        elif arr.ndim == 3:
            arr = arr.transpose(2, 0, 1)[None]
        elif arr.ndim == 4:
            arr = arr.transpose(0, 3, 1, 2)
        else:
            raise ValueError(f"numpy images must be (H, W), (H, W, C) or (N, H, W, C), got shape {arr.shape}")
        x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    elif isinstance(image, Tensor):
        x = image
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        elif x.dtype == torch.uint16:
            x = x.float() / 65535.0
        elif not x.is_floating_point():
            raise TypeError(f"integer tensors must be uint8 or uint16, got {x.dtype}")
        if x.ndim == 2:
            x = x[None, None]
        elif x.ndim == 3:
            x = x[None]
        elif x.ndim != 4:
            raise ValueError(f"tensors must be (H, W), (C, H, W) or (N, C, H, W), got shape {tuple(x.shape)}")
        x = x.float()
    else:
        raise TypeError(f"expected a numpy array or torch tensor, got {type(image).__name__}")
    if x.shape[1] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
        raise ValueError(
            f"shape {tuple(image.shape)} looks channels-last; tensors are (C, H, W) / (N, C, H, W): "
            "use .permute(2, 0, 1) / .permute(0, 3, 1, 2), or pass a numpy (H, W, C) array"
        )
    if x.shape[0] == 0 or x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"empty image: shape {tuple(image.shape)} has a zero-sized dimension")
    if channels is not None and x.shape[1] != channels:
        hint = (
            " (a grey image into a colour net: repeat it with x.expand(-1, 3, -1, -1), or use a 1-channel net)"
            if x.shape[1] == 1 and channels == 3
            else " (a colour image into a grey net: convert it with skimage.color.rgb2gray first)"
            if channels == 1
            else ""
        )
        raise ValueError(f"expected {channels} channels, got {x.shape[1]} (shape {tuple(x.shape)}){hint}")
    return check_finite(x)


def to_hwc(x: Tensor) -> np.ndarray:
    """(C, H, W) or (1, C, H, W) tensor -> (H, W, C) float32 numpy array ((H, W) for one channel)."""
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"to_hwc takes one image, got a batch of {x.shape[0]}")
        x = x[0]
    if x.ndim != 3:
        raise ValueError(f"expected (C, H, W), got shape {tuple(x.shape)}")
    arr = x.detach().cpu().float().permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file (a truncated file fails here, not later); palette, grey and RGB images keep
    their mode, others are converted to RGB. A missing file raises FileNotFoundError, a damaged one ImageReadError."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy() if im.mode in ("P", "L", "RGB") else im.convert("RGB")
    except FileNotFoundError:
        raise
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise ImageReadError(f"cannot read image {path}: corrupt, truncated or not an image ({e})") from e


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """`open_image` converted to RGB."""
    im = open_image(path)
    return im if im.mode == "RGB" else im.convert("RGB")


def read_image(path: str | os.PathLike) -> Tensor:
    """An image file as a (3, H, W) float32 tensor in [0, 1] (grey and palette images are converted to RGB)."""
    return torch.from_numpy(np.asarray(open_rgb(path)).copy()).permute(2, 0, 1).float() / 255.0


# ------------------------------------------------------------------------------------------------- image files
def read_file(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """An image file's pixels (uint8 / uint16, (H, W) grey or (H, W, C), C = 2 grey + alpha, 3 RGB, 4 RGBA) by the
    rules of `dmh.imagefiles` (which also keeps the file's metadata: `read_image_file`)."""
    return read_image_file(path, max_pixels=max_pixels).pixels


def write_file(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 / uint16 (H, W) or (H, W, 2 | 3 | 4) array atomically (`dmh.imagefiles.write_image_file`,
    without metadata); JPEG (quality 95) takes 8-bit grey or RGB."""
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"image files hold uint8 or uint16 arrays, got {image.dtype}")
    bits = 8 * image.itemsize
    write_image_file(path, ImageFile(image, bits, bits))
