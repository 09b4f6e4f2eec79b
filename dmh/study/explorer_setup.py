"""The explorer of notebook 08: the sweep's denoisers, classifier A and segmenter B behind `dmh.widgets.Explorer`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dmh.evalsets import (
    test_set,
)
from dmh.presets import Preset, check_scale
from dmh.study.bases import task_nets

__all__ = ["explorer"]


def explorer(p: Preset, out: Path, n_images: int = 200, n_scenes: int = 50) -> Any:
    """The explorer of 08: the lambda sweep's denoisers of 03 (through A and through B, every lambda and seed),
    classifier A on test item canvases and segmenter B on test scenes. It opens on the separate denoiser beside the
    joint one at the lambda 03's rule chose for A (seed 0), and fine-tunes new ones at any lambda from the grey base
    (`dmh.runs.grey_run` and `train_or_load`: the notebooks' spec and cache, kept runs loaded). It needs no earlier
    notebook: the sweep's runs are copied from data/finetunes/ (or trained, at smoke size) and 03's choice is read
    from its result file, or made here from the kept validation scores."""
    check_scale(p)
    from dmh import runs
    from dmh.data import FASHION_CLASSES, SCENE_CLASSES
    from dmh.knobs import number_text
    from dmh.layout import read_json, require
    from dmh.study.bases import load_grey_base
    from dmh.widgets import Explorer, ExplorerTask

    def label(task: str, lam: float, seed: int, steps: int | None = None) -> str:
        more = f", {steps} steps" if steps not in (None, p.joint_steps) else ""
        return f"through {task}, lambda={number_text(lam)}, seed {seed}{more}"

    from dmh.study.bases import finetune, grey_denoiser
    from dmh.study.sweeps import ablation

    if p.grey_base == "03":  # the smoke preset's base is 03's own training: made here when 03 has not run
        grey_denoiser(p, out)
    base = load_grey_base(p, out)
    dens = {}  # 03's sweep: kept fine-tunes are copied (cpu, full), missing ones trained (smoke: seconds)
    for task in ("A", "B"):
        for lam in p.ablation_lams:
            for sd in p.seeds:
                dens[label(task, lam, sd)] = finetune(base, task, lam, p, out, seed=sd)[0]
    try:
        abl = read_json(require(out / "ablation.json"))
    except FileNotFoundError:  # 03 has not run: its choice from the kept validation scores (or scored here)
        abl = ablation(base, p, out, progress=False)
    chosen = abl["A"]["chosen"]["lam"]

    def finetuner(task: str, lam: float, steps: int | None, seed: int) -> tuple[str, Any]:
        run = runs.grey_run(p, task, lam, seed, steps)
        net, _ = runs.train_or_load(run, base, out, kept=p.kept_finetunes)
        return label(task, lam, seed, run.steps), net

    nets = task_nets()
    xa, ya = test_set("A", p)
    xb, yb = test_set("B", p)
    tasks = {
        "A": ExplorerTask(nets["A"], xa[:n_images], ya[:n_images], list(FASHION_CLASSES)),
        "B": ExplorerTask(nets["B"], xb[:n_scenes], yb[:n_scenes], list(SCENE_CLASSES)),
    }
    compare = label("A", chosen, p.seeds[0]) if chosen is not None else None
    return Explorer(dens, tasks, seed=p.seed, denoiser=label("A", 0.0, p.seeds[0]), compare=compare,
                    finetuner=finetuner, steps=p.joint_steps)  # fmt: skip
