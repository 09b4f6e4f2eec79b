"""Image files in and out, one rule per mode (what `dmh denoise` reads and writes).

Read (`read_image_file`; PNG through pypng, TIFF through tifffile, JPEG through Pillow):

- 8-bit / 16-bit grey, RGB, RGBA: kept; written back at the same depth with the same channels.
- 1-, 2-, 4-bit grey PNG: 8-bit grey (0 -> 0, the top value -> 255); written as 8-bit grey.
- PNG with an sBIT chunk (fewer significant bits than its depth): rescaled to the container's full range (12
  significant bits in 16: v * 65535 / 4095, rounded); written at the container depth, full range, without sBIT.
- grey + alpha: kept as grey + alpha (`pixels` (H, W, 2)); written as grey + alpha (PNG, TIFF).
- palette (PNG, TIFF): RGB, or RGBA when it has transparency; written as RGB / RGBA.
- TIFF min-is-white grey: inverted to min-is-black; written as min-is-black grey.
- CMYK (JPEG, TIFF): refused; convert it to RGB with a colour-managed tool first (its ICC profile decides the
  colours, which a naive conversion would change).
- multi-image TIFF, float or 32-bit samples: refused, naming what the file holds.

Metadata: the ICC profile is carried to the output (PNG iCCP, TIFF tag 34675, JPEG APP2); the EXIF block (PNG
eXIf, JPEG APP1) is carried to PNG and JPEG outputs and its orientation to TIFF ones (tag 274). The pixels are NOT
rotated: the orientation tag is kept, so the output displays as the input did. PNG's sRGB, gAMA, cHRM and pHYs chunks
are copied to PNG outputs.

Size: a file whose header says more than `max_pixels` pixels (default `MAX_PIXELS`, $DMH_MAX_PIXELS overrides) is
refused before it is decoded, for every format (a 10 KB PNG can inflate to gigabytes).

Write (`write_image_file`): through a temporary file with a unique name in the output's folder, renamed over the
output when complete and removed on any failure; `check_output` checks the path (suffix, folder, permissions, not
the input) before any work.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "FILE_TYPES",
    "MAX_PIXELS",
    "ImageFile",
    "ImageReadError",
    "file_type",
    "max_pixels",
    "read_image_file",
    "check_output",
    "check_writable",
    "write_image_file",
]

#: Suffixes handled (PNG 1-16 bit, TIFF 8 / 16 bit, JPEG 8 bit).
FILE_TYPES = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG"}
#: Default pixel limit (width x height): 150 megapixels, about 3x a 50-megapixel camera's photo; the float copy of
#: such an image in `dmh denoise` is 1.8 GB.
MAX_PIXELS = 150_000_000
#: PNG chunks copied as they are to a PNG output (colour space and physical size).
_PNG_COPY = (b"sRGB", b"gAMA", b"cHRM", b"pHYs")
_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION = 0x0112


class ImageReadError(OSError):
    """An image file that cannot be read (corrupt, truncated, not an image, or a mode dmh refuses); the message
    names the file."""


@dataclass
class ImageFile:
    """An image file's pixels and what is carried to the output.

    Attributes:
        pixels: uint8 or uint16, (H, W) grey or (H, W, C) with C = 2 (grey + alpha), 3 (RGB) or 4 (RGBA), at the full
            range of `bits`.
        bits: the container depth (8 or 16) the output keeps.
        significant: significant bits in the file (sBIT, or 1 / 2 / 4 for low-depth PNG); equals `bits` otherwise.
        icc: the ICC profile (bytes) or None.
        exif: the EXIF block (TIFF-structured bytes, without the "Exif\\0\\0" header) or None.
        orientation: the EXIF / TIFF orientation (1-8) or None.
        png_chunks: PNG colour-space chunks [(type, data)] copied to a PNG output.
        note: what was converted on reading (empty when nothing was).
    """

    pixels: np.ndarray
    bits: int
    significant: int
    icc: bytes | None = None
    exif: bytes | None = None
    orientation: int | None = None
    png_chunks: list[tuple[bytes, bytes]] = field(default_factory=list)
    note: str = ""

    @property
    def grey(self) -> bool:
        return self.pixels.ndim == 2 or self.pixels.shape[2] <= 2

    @property
    def alpha(self) -> np.ndarray | None:
        """The alpha channel (H, W) or None."""
        if self.pixels.ndim == 3 and self.pixels.shape[2] in (2, 4):
            return self.pixels[..., -1]
        return None

    @property
    def colour(self) -> np.ndarray:
        """The colour channels without alpha: (H, W, 1) grey or (H, W, 3) RGB."""
        px = self.pixels if self.pixels.ndim == 3 else self.pixels[..., None]
        return px[..., :1] if px.shape[2] <= 2 else px[..., :3]


def file_type(path: str | os.PathLike) -> str:
    """ "PNG", "TIFF" or "JPEG" from the suffix; ValueError naming the allowed ones otherwise."""
    kind = FILE_TYPES.get(os.path.splitext(str(path))[1].lower())
    if kind is None:
        raise ValueError(f"{path}: unsupported file type; use one of {', '.join(sorted(FILE_TYPES))}")
    return kind


def max_pixels() -> int:
    """The pixel limit: $DMH_MAX_PIXELS if set (an integer), else `MAX_PIXELS`."""
    env = os.environ.get("DMH_MAX_PIXELS")
    if env is None:
        return MAX_PIXELS
    try:
        return int(float(env))
    except ValueError:
        raise ValueError(f"DMH_MAX_PIXELS must be a number of pixels, got {env!r}") from None


def _check_size(path: str | os.PathLike, w: int, h: int, limit: int | None) -> None:
    limit = max_pixels() if limit is None else limit
    if w * h > limit:
        raise ImageReadError(
            f"{path} is {w} x {h} = {w * h:,} pixels, above the limit of {limit:,} (a guard against decompression "
            "bombs): raise it with --max-pixels N (dmh denoise), max_pixels=N (Python) or DMH_MAX_PIXELS=N"
        )
    if w * h == 0:
        raise ImageReadError(f"{path} is an empty image ({w} x {h})")


def _full_range(arr: np.ndarray, significant: int, bits: int) -> np.ndarray:
    """Values of `significant` bits rescaled to the full range of `bits` (rounded)."""
    top = 2**significant - 1
    full = 2**bits - 1
    out = (arr.astype(np.uint64) * full + top // 2) // top
    return out.astype(np.uint16 if bits == 16 else np.uint8)


def _exif_orientation(exif: bytes | None) -> int | None:
    if not exif:
        return None
    from PIL import Image

    e = Image.Exif()
    try:
        e.load(_EXIF_HEADER + exif)
    except Exception:  # a damaged EXIF block: carried as it is, no orientation read
        return None
    o = e.get(_ORIENTATION)
    return int(o) if isinstance(o, int) and 1 <= o <= 8 else None


def _read_png(path: str | os.PathLike, limit: int | None) -> ImageFile:
    import png

    data = Path(path).read_bytes()
    reader = png.Reader(bytes=data)
    reader.preamble()
    _check_size(path, reader.width, reader.height, limit)
    depth = reader.bitdepth
    icc = exif = None
    copied = []
    for kind, body in png.Reader(bytes=data).chunks():
        if kind == b"iCCP":
            name_end = body.index(b"\x00")
            d = zlib.decompressobj()
            icc = d.decompress(body[name_end + 2 :], 64 << 20)  # profiles are kilobytes; cap at 64 MB
        elif kind == b"eXIf":
            exif = body[len(_EXIF_HEADER) :] if body.startswith(_EXIF_HEADER) else body
        elif kind in _PNG_COPY:
            copied.append((kind, body))
        elif kind == b"IDAT":
            break
    w, h, rows, info = png.Reader(bytes=data).asDirect()  # palettes expanded, tRNS -> alpha, sBIT shifted down
    significant = info["bitdepth"]
    planes = info["planes"]
    arr = np.vstack([np.asarray(r, dtype=np.uint16 if significant > 8 else np.uint8) for r in rows])
    arr = arr.reshape(h, w, planes)
    bits = 16 if depth == 16 else 8
    notes = []
    if significant != bits:
        notes.append(f"{significant} significant bits rescaled to {bits}")
        arr = _full_range(arr, significant, bits)
    if reader.color_type == 3:
        notes.append("palette expanded to " + ("RGBA" if planes == 4 else "RGB"))
    arr = arr[..., 0] if planes == 1 else arr
    return ImageFile(arr, bits, significant, icc, exif, _exif_orientation(exif), copied, "; ".join(notes))


def _read_tiff(path: str | os.PathLike, limit: int | None) -> ImageFile:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if len(tif.series) != 1 or len(tif.series[0].pages) != 1:
            n = sum(len(s.pages) for s in tif.series)
            raise ImageReadError(f"{path} holds {n} images (pages); dmh reads single-image TIFFs: split it first")
        page = tif.pages[0]
        h, w = page.imagelength, page.imagewidth
        _check_size(path, w, h, limit)
        photometric = int(page.photometric)
        if photometric == 5:  # SEPARATED
            raise ImageReadError(
                f"{path} is a CMYK TIFF: dmh denoises RGB; convert it to RGB with a colour-managed tool first (its "
                "ICC profile decides the colours, which a naive conversion would change)"
            )
        icc_tag, orient_tag = page.tags.get(34675), page.tags.get(274)
        icc = bytes(icc_tag.value) if icc_tag is not None else None
        orientation = int(orient_tag.value) if orient_tag is not None else None
        if photometric == 3:  # palette: Pillow applies the colour map
            return _pillow(path, "TIFF", limit, icc=icc, orientation=orientation)
        arr = page.asarray()
        if page.planarconfig == 2 and arr.ndim == 3:  # separate planes (C, H, W)
            arr = np.moveaxis(arr, 0, -1)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{path} holds {arr.dtype} samples; dmh reads 8- and 16-bit integer images")
    note = ""
    if photometric == 0:  # MINISWHITE
        arr = np.iinfo(arr.dtype).max - arr
        note = "min-is-white inverted"
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 2, 3, 4))):
        raise ImageReadError(f"{path}: {arr.shape} is not a grey, grey + alpha, RGB or RGBA image")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    bits = 8 * arr.itemsize
    return ImageFile(arr, bits, bits, icc, None, orientation if orientation in range(1, 9) else None, note=note)


def _pillow(path: str | os.PathLike, kind: str, limit: int | None, **meta: object) -> ImageFile:
    from PIL import Image

    with Image.open(path) as im:
        _check_size(path, im.width, im.height, limit)
        if im.mode == "CMYK":
            raise ImageReadError(
                f"{path} is a CMYK {kind}: dmh denoises RGB; convert it to RGB with a colour-managed tool first (its "
                "ICC profile decides the colours, which a naive conversion would change)"
            )
        with _no_pil_limit():
            im.load()
        icc = meta.get("icc") or im.info.get("icc_profile")
        exif = im.info.get("exif")
        note = ""
        if im.mode in ("L", "RGB", "RGBA", "LA"):
            out = im
        elif im.mode in ("1",):
            out, note = im.convert("L"), "1-bit expanded to 8-bit grey"
        elif im.mode == "P" or im.mode == "PA":
            transparent = "transparency" in im.info or im.mode == "PA"
            out = im.convert("RGBA" if transparent else "RGB")
            note = f"palette expanded to {out.mode}"
        else:
            raise ImageReadError(f"{path}: {kind} mode {im.mode} is not supported (grey, RGB, RGBA or palette)")
        arr = np.asarray(out).copy()
    if isinstance(exif, bytes) and exif.startswith(_EXIF_HEADER):
        exif = exif[len(_EXIF_HEADER) :]
    exif = exif if isinstance(exif, bytes) and exif else None
    orientation = meta.get("orientation") or _exif_orientation(exif)
    return ImageFile(arr, 8, 8, icc if isinstance(icc, bytes) else None, exif, orientation, note=note)  # type: ignore[arg-type]


@contextlib.contextmanager
def _no_pil_limit():  # noqa: ANN202
    """Pillow's own bomb guard off while decoding: `_check_size` has applied dmh's limit from the header."""
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def read_image_file(path: str | os.PathLike, *, max_pixels: int | None = None) -> ImageFile:
    """Read a PNG, TIFF or JPEG file by the rules of the module docstring.

    Args:
        path: the file.
        max_pixels: refuse images with more pixels than this (default `max_pixels()`).

    Raises:
        FileNotFoundError: no such file. IsADirectoryError: the path is a folder.
        ValueError: unsupported suffix. ImageReadError: corrupt, truncated, too large, or a refused mode.
    """
    kind = file_type(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not an image file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such image file: {path}")
    try:
        if kind == "PNG":
            img = _read_png(path, max_pixels)
        elif kind == "TIFF":
            img = _read_tiff(path, max_pixels)
        else:
            img = _pillow(path, kind, max_pixels)
    except ImageReadError:
        raise
    except MemoryError as e:
        raise ImageReadError(f"{path}: not enough memory to decode it ({e})") from e
    except Exception as e:  # pypng / tifffile / Pillow raise many types for damaged files
        raise ImageReadError(f"cannot read image {path}: corrupt, truncated or not a {kind} ({e})") from e
    if img.pixels.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{path}: {img.pixels.dtype} samples; dmh reads 8- and 16-bit images")
    return img


def check_writable(path: str | os.PathLike, bits: int, channels: int) -> str:
    """The file type of `path` after checking that it can hold an image of `bits` (8 / 16) and `channels` (1 grey,
    2 grey + alpha, 3 RGB, 4 RGBA); ValueError saying which format to use otherwise."""
    kind = file_type(path)
    if bits not in (8, 16):
        raise ValueError(f"image files hold 8 or 16 bits, got {bits}")
    if kind == "JPEG" and (bits != 8 or channels in (2, 4)):
        what = "16 bits" if bits != 8 else "an alpha channel"
        raise ValueError(f"{path}: JPEG holds 8-bit grey or RGB only, and the image has {what}: write a PNG or TIFF")
    return kind


def check_output(dst: str | os.PathLike, src: str | os.PathLike | None = None, *, overwrite: bool = False) -> Path:
    """Check before any work that `dst` can be written: a supported suffix, not a folder, its folder exists and is
    writable, and it is not `src` (unless `overwrite`). Returns `dst` as a Path."""
    dst = Path(dst)
    file_type(dst)
    if dst.is_dir():
        raise IsADirectoryError(f"{dst} is a folder: give the output file's name (e.g. {dst / 'denoised.png'})")
    folder = dst.parent if str(dst.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"the output folder {folder} does not exist (create it first)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write into {folder} (permission denied)")
    if dst.exists() and not os.access(dst, os.W_OK):
        raise PermissionError(f"{dst} exists and is not writable")
    if src is not None and not overwrite:
        same = dst.exists() and Path(src).exists() and os.path.samefile(src, dst)
        if same or dst.resolve() == Path(src).resolve():
            raise ValueError(f"the output {dst} is the input: pass --overwrite (overwrite=True) to replace it")
    return dst


def _png_bytes(img: ImageFile) -> bytes:
    import png

    px = img.pixels
    h, w = px.shape[:2]
    planes = 1 if px.ndim == 2 else px.shape[2]
    writer = png.Writer(w, h, greyscale=planes <= 2, alpha=planes in (2, 4), bitdepth=img.bits)
    buf = io.BytesIO()
    writer.write(buf, px.reshape(h, w * planes))
    if not (img.icc or img.exif or img.orientation or img.png_chunks):
        return buf.getvalue()
    chunks = list(png.Reader(bytes=buf.getvalue()).chunks())
    extra = list(img.png_chunks)
    if img.icc:
        extra.append((b"iCCP", b"ICC profile\x00\x00" + zlib.compress(img.icc)))
    exif = img.exif or _exif_from_orientation(img.orientation)
    if exif:
        extra.append((b"eXIf", exif))
    out = io.BytesIO()
    png.write_chunks(out, chunks[:1] + extra + chunks[1:])  # after IHDR, before IDAT
    return out.getvalue()


def _exif_from_orientation(orientation: int | None) -> bytes | None:
    if orientation is None:
        return None
    from PIL import Image

    e = Image.Exif()
    e[_ORIENTATION] = orientation
    raw = e.tobytes()
    return raw[len(_EXIF_HEADER) :] if raw.startswith(_EXIF_HEADER) else raw


def _write(path: Path, img: ImageFile, kind: str) -> None:
    px = img.pixels
    planes = 1 if px.ndim == 2 else px.shape[2]
    if kind == "PNG":
        path.write_bytes(_png_bytes(img))
    elif kind == "TIFF":
        import tifffile

        extratags = [(274, "H", 1, img.orientation, True)] if img.orientation else []
        tifffile.imwrite(path, px, photometric="minisblack" if planes <= 2 else "rgb",
                         extrasamples=("unassalpha",) if planes in (2, 4) else None,
                         iccprofile=img.icc, extratags=extratags)  # fmt: skip
    else:
        from PIL import Image

        exif = img.exif or _exif_from_orientation(img.orientation)
        kw = {"quality": 95}
        if img.icc:
            kw["icc_profile"] = img.icc
        if exif:
            kw["exif"] = _EXIF_HEADER + exif
        Image.fromarray(px).save(path, format="JPEG", **kw)


def write_image_file(path: str | os.PathLike, img: ImageFile) -> Path:
    """Write `img` (pixels at `img.bits`, metadata by the module docstring's rules) to `path` atomically: a
    temporary file with a unique name in the same folder, renamed over `path` when complete, removed on failure."""
    path = Path(path)
    px = img.pixels
    if px.dtype != (np.uint16 if img.bits == 16 else np.uint8):
        raise TypeError(f"{img.bits}-bit images are written from {'uint16' if img.bits == 16 else 'uint8'} arrays, "
                        f"got {px.dtype}")  # fmt: skip
    if not (px.ndim == 2 or (px.ndim == 3 and px.shape[2] in (1, 2, 3, 4))):
        raise ValueError(f"expected (H, W) or (H, W, 1 | 2 | 3 | 4) pixels, got {px.shape}")
    if px.ndim == 3 and px.shape[2] == 1:
        img = ImageFile(px[..., 0], img.bits, img.significant, img.icc, img.exif, img.orientation, img.png_chunks)
    kind = check_writable(path, img.bits, 1 if img.pixels.ndim == 2 else img.pixels.shape[2])
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=folder)
    os.close(fd)
    try:
        _write(Path(tmp), img, kind)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
