"""Kept weights in `data/pretrained/` ($DMH_PRETRAINED overrides): one manifest, sha256-checked on every load.

`manifest.json` maps a name to its entry: `file`, `sha256`, `arch`, `metrics`, and how it was trained (`command`,
`commit`, `seed`, `config`, `threads`, `torch`, `train_seconds` or `hours`, ...). The frozen task networks A and B
(`dmh.tasks`) and the released colour denoisers (`dmh.nets.denoisenet(weights="colour-s25")`) live there.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from dmh import layout
from dmh.checkpoint import save_checkpoint, write_json
from dmh.layout import DATA

__all__ = ["PRETRAINED_DIR", "sha256_file", "read_manifest", "verify_pretrained", "write_pretrained"]

_DEFAULT_DIR = DATA / "pretrained"
#: Where the kept weights and their manifest live (override with $DMH_PRETRAINED; `dmh.layout`).
PRETRAINED_DIR = layout.PRETRAINED_DIR


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """The manifest of the kept weights (name -> file, sha256, command, commit, seed, metrics, ...)."""
    path = Path(folder or PRETRAINED_DIR) / "manifest.json"
    if not path.is_file():
        custom = folder is not None or Path(PRETRAINED_DIR) != _DEFAULT_DIR
        where = (
            "a folder without kept weights: unset DMH_PRETRAINED (or pass another folder) to use the repository's "
            "data/pretrained/"
            if custom
            else "restore it with `git checkout data/pretrained`"
        )
        raise FileNotFoundError(f"no manifest at {path}: {where}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}): restore it with `git checkout {path.name}`") from e
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} must hold a JSON object (name -> entry), got {type(manifest).__name__}")
    return manifest


def verify_pretrained(name: str, folder: str | os.PathLike | None = None) -> Path:
    """Path of `name`'s weight file after checking its sha256 against the manifest (a mismatch is an error)."""
    folder = Path(folder or PRETRAINED_DIR)
    entry = read_manifest(folder).get(name)
    if entry is None:
        raise KeyError(f"{name!r} is not in {folder / 'manifest.json'}")
    path = folder / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path} (listed in the manifest) is missing")
    got = sha256_file(path)
    if got != entry["sha256"]:
        raise ValueError(f"sha256 of {path} is {got}, the manifest says {entry['sha256']}: the file was changed")
    return path


def write_pretrained(
    model: nn.Module,
    folder: str | os.PathLike,
    *,
    metrics: dict[str, Any],
    info: dict[str, Any],
    name: str | None = None,
    file: str | None = None,
) -> Path:
    """Save `model`'s weights (state dict and `arch`) to folder/<file> and record them under `name` in
    folder/manifest.json (name default: `model.name`; file default: <name>.pt); returns the weight path."""
    from dmh.checkpoint import arch_of

    folder = Path(folder)
    name = name or model.name
    path = save_checkpoint(folder / (file or f"{name}.pt"), {"model": model.state_dict(), "arch": arch_of(model)})
    manifest_path = folder / "manifest.json"
    manifest = read_manifest(folder) if manifest_path.is_file() else {}
    manifest[name] = {"file": path.name, "sha256": sha256_file(path), "metrics": metrics, **info}
    write_json(manifest_path, manifest, sort_keys=True)
    return path
