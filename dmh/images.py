"""Image conversions with clear errors: numpy arrays are (H, W) or (H, W, C) (scikit-image's convention), tensors are
(C, H, W) or (N, C, H, W) (PyTorch's). uint8 / uint16 are scaled to [0, 1]; floats are taken as already in [0, 1]."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

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


class ImageReadError(OSError):
    """An image file that cannot be decoded (corrupt, truncated, not an image); the message names the file."""


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
#: Suffixes `read_file` / `write_file` handle (PNG 8 / 16 bit, TIFF 8 / 16 bit, JPEG 8 bit).
FILE_TYPES = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG"}


def _file_type(path: os.PathLike | str) -> str:
    kind = FILE_TYPES.get(os.path.splitext(str(path))[1].lower())
    if kind is None:
        raise ValueError(f"{path}: unsupported file type; use one of {', '.join(sorted(FILE_TYPES))}")
    return kind


def read_file(path: str | os.PathLike) -> np.ndarray:
    """An image file as a uint8 or uint16 numpy array, (H, W) grey or (H, W, C) with C = 3 (RGB) or 4 (RGBA).

    PNG and TIFF keep 16 bits; palette images become RGB. A missing file raises FileNotFoundError, an unreadable one
    `ImageReadError`, both naming the file.
    """
    kind = _file_type(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such image file: {path}")
    try:
        if kind == "TIFF":
            import tifffile

            arr = tifffile.imread(path)
        elif kind == "PNG":
            import png

            reader = png.Reader(filename=str(path))
            w, h, rows, info = reader.asDirect()  # palettes expanded, low bit depths widened
            planes = info["planes"]
            arr = np.vstack([np.asarray(r, dtype=np.uint16 if info["bitdepth"] > 8 else np.uint8) for r in rows])
            arr = arr.reshape(h, w, planes)
            if info["bitdepth"] not in (8, 16):  # 1, 2, 4 bit grey: scale to 8 bits
                arr = (arr.astype(np.uint16) * 255 // (2 ** info["bitdepth"] - 1)).astype(np.uint8)
            if planes == 2:  # grey + alpha: the alpha is kept
                arr = np.concatenate([arr[..., :1].repeat(3, -1), arr[..., 1:]], -1)
            arr = arr[..., 0] if planes == 1 else arr
        else:
            arr = np.asarray(open_rgb(path))
    except (FileNotFoundError, ImageReadError):
        raise
    except Exception as e:
        raise ImageReadError(f"cannot read image {path}: corrupt, truncated or not a {kind} ({e})") from e
    shape_ok = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))
    if arr.dtype not in (np.uint8, np.uint16) or not shape_ok:
        raise ImageReadError(f"{path}: {arr.dtype} {arr.shape} is not an 8- or 16-bit grey, RGB or RGBA image")
    if min(arr.shape[:2]) == 0:
        raise ImageReadError(f"{path} is an empty image ({arr.shape})")
    return arr


def check_writable(path: str | os.PathLike, dtype: np.dtype, shape: tuple[int, ...]) -> str:
    """The file type of `path` after checking that it can hold an image of `dtype` and `shape` (before any work)."""
    kind = _file_type(path)
    if np.dtype(dtype) not in (np.uint8, np.uint16):
        raise TypeError(f"image files hold uint8 or uint16 arrays, got {np.dtype(dtype)}")
    if kind == "JPEG" and (np.dtype(dtype) != np.uint8 or (len(shape) == 3 and shape[2] == 4)):
        raise ValueError(f"{path}: JPEG holds 8-bit grey or RGB only; write a PNG or TIFF to keep 16 bits or alpha")
    return kind


def write_file(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 / uint16 (H, W) or (H, W, 3 | 4) array atomically; JPEG (quality 95) takes 8-bit grey or RGB."""
    kind = check_writable(path, image.dtype, image.shape)
    tmp = f"{path}.tmp{os.path.splitext(str(path))[1]}"
    if kind == "TIFF":
        import tifffile

        tifffile.imwrite(tmp, image, photometric="minisblack" if image.ndim == 2 else "rgb")
    elif kind == "PNG":
        import png

        h, w = image.shape[:2]
        planes = 1 if image.ndim == 2 else image.shape[2]
        writer = png.Writer(w, h, greyscale=planes == 1, alpha=planes == 4, bitdepth=8 * image.itemsize)
        with open(tmp, "wb") as f:
            writer.write(f, image.reshape(h, w * planes))
    else:
        Image.fromarray(image).save(tmp, quality=95)
    os.replace(tmp, path)
