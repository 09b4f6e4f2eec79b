"""More training photographs: real photos shipped in Debian packages under free licences (../shared/PHOTOS.md).

`dmh/photos.json` is the one listing: for each photograph its package, version, path inside the package, sha256 of
the file, licence and credit (from the package's copyright file), the downscale factor and its split ("train" or
"val"). `python -m dmh.photos install` (run by `make install`) downloads the packages with `apt-get download`,
checks every file's sha256, downscales it and writes PNGs to `data/photos/` ($DMH_PHOTOS overrides). Nothing
downloads at run time: `load` only reads that folder and says how to fill it.

Rules, fixed before any training (not tuned on results):
- Downscale (antialiased Lanczos) to remove JPEG traces and camera noise: x2 for sources of 1300 px or less on the
  long side; otherwise to a long side of 1024 px, and at least x3 for files under 0.8 bits per pixel (strong JPEG
  compression) and for lxqt's `beam.png` (8 x 8 JPEG blocking in a PNG).
- VAL: the 10 photographs with the smallest sha256 (a fixed pseudo-random pick); all others train. VAL chooses
  widths, lengths and lambdas; the TEST photos (`dmh.data.PHOTO_SPLIT["test"]`) and ImageNet-20 are never trained on
  or chosen with, and `install` refuses a photograph that looks like one of them (32 x 32 thumbnails correlated
  above 0.95).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from dmh import layout
from dmh.images import open_rgb
from dmh.pretrained import sha256_file

__all__ = ["LISTING", "PHOTO_DIR", "listing", "photo_name", "install", "build", "load", "training_photos"]

LISTING = Path(__file__).with_name("photos.json")
#: Where `install` writes the downscaled photographs (git-ignored).
PHOTO_DIR = layout.PHOTO_DIR
SPLITS = ("train", "val")
DUPLICATE_CORR = 0.95


@functools.cache
def listing() -> tuple[dict[str, Any], ...]:
    """The photographs of `dmh/photos.json` (package, version, path, sha256, size, factor, out_size, split, ...)."""
    return tuple(json.loads(LISTING.read_text()))


def listing_sha256() -> str:
    """sha256 of the listing file: recorded with every model trained on these photos."""
    return hashlib.sha256(LISTING.read_bytes()).hexdigest()


def photo_name(entry: dict[str, Any]) -> str:
    """A unique file stem: package + file stem (plasma's files are all `2560x1600.jpg`: its folder name instead)."""
    p = Path(entry["path"])
    stem = p.parents[2].name if entry["package"] == "plasma-workspace-wallpapers" else p.stem
    return f"{entry['package']}__{stem}"


def _thumb(img: Image.Image) -> np.ndarray:
    a = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float64).ravel()
    a = a - a.mean()
    return a / (np.linalg.norm(a) + 1e-12)


def _evaluation_thumbs() -> dict[str, np.ndarray]:
    """Thumbnails of every image the project evaluates on: the TEST photos and ImageNet-20."""
    from dmh.data import PHOTO_SPLIT, package_dir, photo_u8

    thumbs = {n: _thumb(Image.fromarray(photo_u8(n)[..., :3])) for n in PHOTO_SPLIT["test"]}
    for f in sorted((package_dir("foolbox") / "data").glob("imagenet_*.jpg")):
        thumbs[f.name] = _thumb(open_rgb(f))
    return thumbs


def build(src: str | os.PathLike, out: str | os.PathLike = PHOTO_DIR) -> list[str]:
    """Downscale the listed photographs found under `src/<package>/<path>` (packages extracted with `dpkg-deb -x`)
    into `out/<photo_name>.png`.

    A file whose sha256 differs from the listing is refused (another package version); a missing package is skipped
    with a message. Returns the names written; `out/index.json` records them with the listing's sha256.
    """
    src, out = Path(src), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    evals = _evaluation_thumbs()
    written, problems = [], []
    for e in listing():
        f = src / e["package"] / e["path"]
        if not f.is_file():
            problems.append(f"missing: {e['package']} {e['path']}")
            continue
        if sha256_file(f) != e["sha256"]:
            problems.append(f"sha256 differs (another package version?): {e['package']} {e['path']}")
            continue
        img = open_rgb(f)
        if img.size != tuple(e["size"]):
            problems.append(f"size {img.size} != {e['size']}: {f}")
            continue
        small = img.resize(tuple(e["out_size"]), Image.Resampling.LANCZOS)
        t = _thumb(small)
        twin = next((n for n, u in evals.items() if float(t @ u) > DUPLICATE_CORR), None)
        if twin is not None:
            raise ValueError(f"{f} looks like the evaluation image {twin}: it must not be trained on")
        small.save(out / f"{photo_name(e)}.png", optimize=False)
        written.append(photo_name(e))
    from dmh.checkpoint import write_json

    write_json(out / "index.json", {"listing_sha256": listing_sha256(), "photos": written, "problems": problems})
    for p in problems:
        print(f"dmh.photos: {p}", file=sys.stderr)
    print(f"dmh.photos: {len(written)} of {len(listing())} photographs in {out}")
    return written


def install(out: str | os.PathLike = PHOTO_DIR, debs: str | os.PathLike | None = None) -> list[str]:
    """Fetch the listed packages (`apt-get download` into a temporary folder, or the .deb files already in `debs`),
    extract them and `build`. Skipped when `out/index.json` already holds every photograph of this listing."""
    out = Path(out)
    index = out / "index.json"
    if index.is_file():
        done = json.loads(index.read_text())
        if done.get("listing_sha256") == listing_sha256() and len(done.get("photos", [])) == len(listing()):
            print(f"dmh.photos: {len(listing())} photographs already in {out}")
            return list(done["photos"])
    packages = sorted({e["package"] for e in listing()})
    with tempfile.TemporaryDirectory(prefix="dmh-photos-") as tmp:
        tmp = Path(tmp)
        folder = Path(debs) if debs is not None else tmp
        if debs is None:
            if shutil.which("apt-get") is None:
                raise SystemExit(
                    f"dmh.photos: apt-get is not available. Download the Debian packages {' '.join(packages)} "
                    "(.deb files) into a folder and run: python -m dmh.photos install --debs DIR"
                )
            for pkg in packages:
                r = subprocess.run(["apt-get", "download", pkg], cwd=tmp, capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"dmh.photos: apt-get download {pkg} failed ({r.stderr.strip()[-200:]}); "
                          "as root, `apt-get update` first", file=sys.stderr)  # fmt: skip
        for pkg in packages:
            found = sorted(folder.glob(f"{pkg}_*.deb"))
            if found:
                (tmp / "src").mkdir(exist_ok=True)
                subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(tmp / "src" / pkg)], check=True)
        return build(tmp / "src", out)


def load(split: str, folder: str | os.PathLike = PHOTO_DIR) -> dict[str, Tensor]:
    """The Debian photographs of `split` ("train" or "val") as (3, H, W) tensors in [0, 1], by name.

    Raises FileNotFoundError naming the missing files and the command that installs them.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = Path(folder)
    names = [photo_name(e) for e in listing() if e["split"] == split]
    missing = [n for n in names if not (folder / f"{n}.png").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of the {len(names)} {split} photographs are not in {folder} (e.g. {missing[0]}.png): "
            "run `make install` or `python -m dmh.photos install`"
        )
    return {
        n: torch.from_numpy(np.asarray(open_rgb(folder / f"{n}.png")).copy()).permute(2, 0, 1).float() / 255.0
        for n in names
    }


def training_photos(split: str, folder: str | os.PathLike = PHOTO_DIR) -> dict[str, Tensor]:
    """The released denoisers' data: "train" = the TRAIN photos of `dmh.data` plus the Debian train photographs;
    "val" = the Debian VAL photographs."""
    from dmh.data import photos

    return {**photos("train"), **load("train", folder)} if split == "train" else load(split, folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dmh.photos", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("install", help="download (apt-get download), check, downscale into data/photos/")
    p.add_argument("--out", default=str(PHOTO_DIR))
    p.add_argument("--debs", default=None, help="a folder holding the .deb files already (no download)")
    p = sub.add_parser("build", help="downscale from packages already extracted under SRC/<package>/")
    p.add_argument("src")
    p.add_argument("--out", default=str(PHOTO_DIR))
    args = parser.parse_args(argv)
    if args.cmd == "install":
        install(args.out, args.debs)
    else:
        build(args.src, args.out)


if __name__ == "__main__":
    main()
