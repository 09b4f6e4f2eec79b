"""The denoisers the study starts from and fine-tunes: the colour and grey denoisers trained alone (01, 03; or the
released ones), the frozen task networks A and B, and the fine-tuned copies of the sweep (`dmh.runs`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dmh import runs
from dmh.data import SceneSampler, photos
from dmh.knobs import Knobs
from dmh.layout import ckpt_dir, read_json, require
from dmh.nets import DenoiseNet
from dmh.presets import Preset, check_scale
from dmh.steps import denoising_step
from dmh.tasks import TaskNet
from dmh.training import TrainConfig, load_trained, train_once

__all__ = [
    "setup",
    "evaluations",
    "unseen_classifier",
    "colour_denoiser",
    "released_denoisers",
    "task_nets",
    "grey_denoiser",
    "finetune",
    "load_colour_denoiser",
    "load_colour_base",
    "load_grey_base",
    "grey_base",
    "grey_base_width",
    "colour_finetune",
]


def _deciding(p: Preset, prefix: str) -> dict[str, Any]:
    """The inputs of a denoiser trained alone that decide its weights: the preset's name and seed and its fields
    starting with `prefix` (a knob run that changes other fields, e.g. seeds or sigmas, loads the same run)."""
    d = p.asdict()
    return {"preset": {k: v for k, v in d.items() if k in ("name", "seed") or k.startswith(prefix)}}


def colour_denoiser(p: Preset, out: Path) -> tuple[DenoiseNet, list[dict[str, float]]]:
    """The colour denoiser trained alone (lam = 0), blind over `p.colour_sigma_range`, on TRAIN photo patches."""
    check_scale(p)
    from dmh.data import PatchSampler

    torch.manual_seed(p.seed)
    net = DenoiseNet(3, p.colour_width)
    sampler = PatchSampler(list(photos("train").values()), p.colour_patch)
    cfg = TrainConfig(max_steps=p.colour_steps, lr=p.colour_lr, milestones=(int(p.colour_steps * 0.8),),
                      log_every=max(p.colour_steps // 40, 1), seed=p.seed)  # fmt: skip
    step = denoising_step(lambda g: sampler.sample(p.colour_batch, g), p.colour_sigma_range)
    hist = train_once(net, step, cfg, ckpt_dir(out, "colour_separate"), "01 colour denoiser",
                      _deciding(p, "colour_"))  # fmt: skip
    return net.eval(), hist


def released_denoisers() -> tuple[dict[str, tuple[nn.Module, float | None]], dict[str, str], dict[str, list]]:
    """The released colour denoisers present in data/pretrained/ (`dmh.nets.RELEASED_COLOUR`; missing ones are skipped):
    ({label: (network in eval mode, training sigma or None)}, {label: how it was trained}, {label: VAL history})."""
    from dmh.nets import RELEASED_COLOUR, denoisenet, weights_meta
    from dmh.pretrained import PRETRAINED_DIR

    nets, notes, histories = {}, {}, {}
    for name in RELEASED_COLOUR:
        try:
            meta = weights_meta(name)
        except FileNotFoundError:
            continue
        label = f"released {name}"
        nets[label] = (denoisenet(weights=name).eval(), meta.get("sigma"))
        notes[label] = f"width {meta['arch']['width']:g}, {meta['steps']:,} steps, {meta['hours']:.1f} h of training"
        hist = PRETRAINED_DIR / f"{name}_history.json"
        histories[label] = json.loads(hist.read_text()) if hist.is_file() else []
    return nets, notes, histories


def task_nets() -> dict[str, TaskNet]:
    """The frozen cpu-scale task networks with their kept weights, one image domain: {"A": the classifier
    of single Fashion items on the scenes' textured backgrounds, "B": the segmenter of scenes}."""
    return {t: runs.task_network(t) for t in ("A", "B")}


def grey_denoiser(p: Preset, out: Path) -> tuple[DenoiseNet, list[dict[str, float]]]:
    """The grey denoiser trained alone (lam = 0, blind over `p.grey_sigma_range`) on the grey domain's patches
    (`dmh.denoisers.fashion_patches`: item canvases and scene crops of the "train" items, as the released
    "grey-blind"): the start of every grey fine-tune when `p.grey_base` is "03"."""
    check_scale(p)
    from dmh.data import ItemSampler
    from dmh.denoisers import fashion_patches

    torch.manual_seed(p.seed)
    net = DenoiseNet(1, p.grey_width)
    data: list[Any] = []  # made at the first step: a finished run is only loaded

    def sample(g: torch.Generator) -> Tensor:
        if not data:
            data.extend([ItemSampler("train"), SceneSampler("train")])
        return fashion_patches(p.grey_batch, 32, g, *data)

    cfg = TrainConfig(max_steps=p.grey_steps, lr=p.grey_lr, milestones=(int(p.grey_steps * 0.8),),
                      log_every=max(p.grey_steps // 40, 1), seed=p.seed)  # fmt: skip
    step = denoising_step(sample, p.grey_sigma_range)
    hist = train_once(net, step, cfg, ckpt_dir(out, "grey_separate"), "grey denoiser", _deciding(p, "grey_"))
    return net.eval(), hist


def finetune(
    base: DenoiseNet, task: str, lam: float, p: Preset, out: Path, *, steps: int | None = None, seed: int | None = None
) -> tuple[DenoiseNet, list[dict[str, float]]]:
    """Fine-tune a copy of `base` through frozen task network `task` ("A" or "B") with MSE + lam * task loss: the run
    `dmh.runs.grey_run(p, task, lam, seed, steps)` (lam = 0 is the "separate" row; see `dmh.runs`). A finished run
    is only loaded from out/ckpt/<run.tag>."""
    check_scale(p)
    return runs.train_or_load(runs.grey_run(p, task, lam, seed, steps), base, out, kept=p.kept_finetunes)


def load_colour_denoiser(p: Preset, out: Path) -> DenoiseNet:
    """The colour denoiser of 01 (trained alone)."""
    return load_trained(DenoiseNet(3, p.colour_width), ckpt_dir(out, "colour_separate"), p.colour_steps,
                        "01_denoiser.ipynb")  # fmt: skip


def load_colour_base(p: Preset, out: Path) -> tuple[DenoiseNet, str]:
    """The colour denoiser that 07 fine-tunes, with its row label: the released model `p.colour_base` (sha256-checked,
    `dmh.nets.denoisenet`), or with `colour_base="01"` the short training of notebook 01."""
    if p.colour_base == "01":
        return load_colour_denoiser(p, out), f"01 ({p.colour_steps:,} steps)"
    from dmh.nets import denoisenet

    return denoisenet(weights=p.colour_base).eval(), f"released {p.colour_base}"


def load_grey_base(p: Preset, out: Path) -> DenoiseNet:
    """The grey denoiser that every grey fine-tune starts from (`p.grey_base`): notebook 03's own ("03") or the
    released "grey-blind" (sha256-checked)."""
    if p.grey_base == "grey-blind":
        from dmh.nets import denoisenet

        return denoisenet(weights="grey-blind").eval()
    return load_trained(DenoiseNet(1, p.grey_width), ckpt_dir(out, "grey_separate"), p.grey_steps,
                        "03_lambda_ablation.ipynb")  # fmt: skip


def grey_base(p: Preset, out: Path) -> tuple[DenoiseNet, list[dict[str, float]]]:
    """The grey base of `p.grey_base` with its training history: trained here (03) or the released model (its
    kept history)."""
    if p.grey_base == "03":
        return grey_denoiser(p, out)
    from dmh.pretrained import PRETRAINED_DIR

    hist = PRETRAINED_DIR / f"{p.grey_base}_history.json"
    return load_grey_base(p, out), json.loads(hist.read_text()) if hist.is_file() else []


def grey_base_width(p: Preset) -> float:
    """The width of the grey base, so of every grey fine-tune: the released grey-blind's (manifest), or
    `p.grey_width` for notebook 03's own ("03")."""
    if p.grey_base == "grey-blind":
        from dmh.nets import weights_meta

        return float(weights_meta("grey-blind")["arch"]["width"])
    return p.grey_width


def colour_finetune(
    base: DenoiseNet, lam: float, p: Preset, out: Path, seed: int | None = None
) -> tuple[DenoiseNet, list[dict[str, float]]]:
    """Fine-tune a copy of the colour denoiser through frozen EfficientNet-Lite0 with the label-free target (KL to the
    network's prediction on the clean crop) on `p.eff_crop` crops of the TRAIN photos: the run
    `dmh.runs.colour_run(p, lam, seed)`; lam = 0 is the matching separate run (same data, seed, steps)."""
    check_scale(p)
    return runs.train_or_load(runs.colour_run(p, lam, seed), base, out, kept=p.kept_finetunes)


def unseen_classifier(p: Preset) -> TaskNet | None:
    """Classifier C of `p.unseen_classifier` with its kept weights (None when the preset names none): a classifier
    of A's items of another architecture family, never used in any fine-tune."""
    if p.unseen_classifier is None:
        return None
    from dmh import tasks

    return getattr(tasks, p.unseen_classifier)(weights="pretrained")


def setup(notebook: str, preset: str, out_root: str | Path, **knobs: Any) -> tuple[Preset, Path, Knobs]:
    """A notebook's set-up in one call: its knobs parsed and checked (`dmh.knobs.parse`: a refused value stops here,
    before anything is read, trained or written), the preset named `preset` with the fields they set (a knob of None
    keeps the preset's value; `retrain` stops kept fine-tunes from being loaded), the run's results folder (created:
    <out_root>/<preset>/, or its own folder for a knob run, `Knobs.folder`), torch's thread count
    (`Preset.threads`). Prints a one-line summary of the preset and of the knobs that differ from it.

    Args:
        notebook: "01" ... "08" (`dmh.knobs.NOTEBOOK_KNOBS` lists each one's knobs).

    Returns (preset, results folder, the parsed knobs)."""
    from dmh.checkpoint import write_json
    from dmh.knobs import KnobError, parse
    from dmh.layout import KNOB_FILE
    from dmh.presets import get_preset

    k = parse(notebook, preset, out_root, knobs)
    p = get_preset(k.preset, **({"kept_finetunes": False} if k.values.get("retrain") else {}), **k.overrides)
    out = k.folder
    if notebook == "06" and k.sigmas is not None:  # 06 reads 04's and 05's tables: only their columns exist
        for name in ("table2.json", "table3.json"):
            table = out / name if (out / name).is_file() else k.out_root / k.preset / name
            cols = [float(s) for s in read_json(require(table))["rows"]["noisy"]]
            if not set(k.sigmas) <= set(cols):
                have, got = ", ".join(f"{c:g}" for c in cols), ", ".join(f"{s:g}" for s in k.sigmas)
                raise KnobError(f"sigmas: {name} (04's / 05's run) has columns {have}; give some of them, got {got}")
    out.mkdir(parents=True, exist_ok=True)
    from dmh.evalcache import COUNTS

    COUNTS.clear()  # this notebook's evaluations (`evaluations`)
    if k.label:
        write_json(out / KNOB_FILE, {"notebook": notebook, "preset": k.preset, "knobs": k.differ})
    if p.threads:
        torch.set_num_threads(p.threads)
    print(p.summary())
    if k.differ:
        print(
            f"set here, not the preset's: {', '.join(f'{n} = {v}' for n, v in k.differ.items())} "
            f"(this run writes to {out}; the preset's run stays as it is)"
        )
    return p, out, k


def evaluations(out: Path, notebook: str) -> str:
    """The line "evaluations: N computed, M loaded" of this notebook's evaluations since its `setup` (the evaluation
    cache, `dmh.evalcache`), also recorded in out/evaluations.json under `notebook`. Returns the line."""
    from dmh.checkpoint import write_json
    from dmh.evalcache import COUNTS, counts_line

    path = out / "evaluations.json"
    seen = read_json(path) if path.is_file() else {}
    seen[notebook] = {"computed": COUNTS["computed"], "loaded": COUNTS["loaded"]}
    write_json(path, seen, sort_keys=True)
    return counts_line()
