"""Where things live, in one place: the repository's folders (and the environment variables that move them), the
result folder's layout (a run's checkpoints in <out>/ckpt/<name>/), which notebook writes which result file, and
the seeds of the fixed evaluation sets.

Seeds: every noisy evaluation image comes from `dmh.noise.noise_generator(seed, sigma, index)`; the fixed sets that
are drawn rather than listed (item canvases, scenes) take the seeds of `SEEDS`. Their values are those the kept
results were made with: changing one changes every number.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "ROOT",
    "NOTEBOOKS",
    "DATA",
    "PRETRAINED_DIR",
    "KEPT_DIR",
    "TRAINING_DIR",
    "PHOTO_DIR",
    "SEEDS",
    "WRITTEN_BY",
    "cache_dir",
    "KNOB_FILE",
    "preset_folder",
    "ckpt_dir",
    "read_json",
    "require",
]

#: The repository (the folder holding dmh/, notebooks/, data/).
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
DATA = ROOT / "data"
#: Kept weights and their manifest (`dmh.pretrained`); $DMH_PRETRAINED moves them.
PRETRAINED_DIR = Path(os.environ.get("DMH_PRETRAINED", DATA / "pretrained"))
#: Kept fine-tunes of the cpu preset (`dmh.runs`); $DMH_FINETUNES moves them.
KEPT_DIR = Path(os.environ.get("DMH_FINETUNES", DATA / "finetunes"))
#: Resumable checkpoints of the released denoisers' training runs (`dmh.denoisers`); $DMH_TRAINING moves them.
TRAINING_DIR = Path(os.environ.get("DMH_TRAINING", DATA / "training"))
#: The downscaled Debian training photographs (`dmh.photos`); $DMH_PHOTOS moves them.
PHOTO_DIR = Path(os.environ.get("DMH_PHOTOS", DATA / "photos"))

#: Seeds of the fixed sets that are drawn: "test_scenes" (`dmh.data.fashion_scenes_test`), "item_canvases" (the
#: backgrounds and offsets of `dmh.data.fashion_items_split`), "grey_val_scenes" (the grey base's VAL scenes,
#: `dmh.denoisers.val_images`), "val_noise" (offset of the released denoisers' VAL noise: 7,000,000 + 1,000 * sigma
#: + image), "sweep_val_scenes" (added to the preset's seed: the sweep's validation scenes, `dmh.evalsets.val_set`),
#: "segmenter_val_scenes" (added to the training seed: B's validation scenes,
#: `dmh.task_training.train_fashion_segmenter`).
SEEDS = {
    "test_scenes": 20180713,
    "item_canvases": 20180714,
    "grey_val_scenes": 20180715,
    "val_noise": 7_000_000,
    "sweep_val_scenes": 17,
    "segmenter_val_scenes": 1,
}

#: Result file -> the notebook that writes it (in <out>/<preset>/).
WRITTEN_BY = {
    "table1.json": "01_denoiser.ipynb",
    "claims1.json": "01_denoiser.ipynb",
    "task_noise.json": "02_task_networks.ipynb",
    "ablation.json": "03_lambda_ablation.ipynb",
    "table2.json": "04_joint_classification.ipynb",
    "ablation_dncnn.json": "04_joint_classification.ipynb",
    "table2_dncnn.json": "04_joint_classification.ipynb",
    "claims_dncnn.json": "06_cross_task.ipynb",
    "table3.json": "05_joint_segmentation.ipynb",
    "claims.json": "06_cross_task.ipynb",
    "eff_ablation.json": "07_texture.ipynb",
    "imagenet20.json": "07_texture.ipynb",
    "texture.json": "07_texture.ipynb",
    "claims4.json": "07_texture.ipynb",
    "frontier.json": "07_texture.ipynb",
    "claims4m.json": "07_texture.ipynb",
    "real_photos.json": "07_texture.ipynb",
    "claims2e.json": "07_texture.ipynb",
}


def cache_dir() -> Path | None:
    """The disk cache of CBM3D results and evaluations (`dmh.baselines`, `dmh.evalcache`): `$DMH_CACHE`, default
    `$XDG_CACHE_HOME/dmh/` or `~/.cache/dmh/`; None when `DMH_CACHE` is "off" / "0" / "none". Deleting it is always
    safe."""
    v = os.environ.get("DMH_CACHE", "")
    if v.lower() in ("off", "0", "none"):
        return None
    if v:
        return Path(v)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dmh"


#: The file that marks a knob run's folder <out_root>/<preset>/<knobs>/ (`dmh.knobs`): the knobs it ran with.
KNOB_FILE = "knobs.json"


def preset_folder(out: str | os.PathLike) -> Path:
    """The preset run's results folder of `out`: `out` itself, or for a knob run's folder (it holds `KNOB_FILE`) the
    preset folder it lives in."""
    out = Path(out)
    return out.parent if (out / KNOB_FILE).is_file() else out


def ckpt_dir(out: str | os.PathLike, name: str) -> Path:
    """The checkpoint folder of the training run `name` in the results folder `out`: out/ckpt/<name>; a knob run's
    runs share its preset folder's ckpt/ (every run folder is named by its exact inputs)."""
    return preset_folder(out) / "ckpt" / name


def read_json(path: str | Path) -> Any:
    """The JSON in `path`."""
    return json.loads(Path(path).read_text())


def require(path: str | Path, notebook: str | None = None) -> Path:
    """`path` if it exists; in a knob run's folder, else the same path in its preset folder (what the knob run did
    not make itself: `dmh.knobs`); else FileNotFoundError naming the notebook that makes it (default:
    `WRITTEN_BY`'s)."""
    path = Path(path)
    notebook = notebook or WRITTEN_BY.get(path.name, "the notebook that writes it")
    knob_run = next((f for f in path.parents if (f / KNOB_FILE).is_file()), None)
    if not path.exists() and knob_run is not None and (knob_run.parent / path.relative_to(knob_run)).exists():
        path = knob_run.parent / path.relative_to(knob_run)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run {notebook} first (or `dmh reproduce`)")
    return path
