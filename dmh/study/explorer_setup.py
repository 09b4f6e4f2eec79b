"""The explorer of notebook 08: the sweep's denoisers, classifier A and segmenter B behind `dmh.widgets.Explorer`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dmh.evalsets import (
    test_set,
)
from dmh.presets import Preset, check_scale
from dmh.study.bases import load_finetuned, task_nets

__all__ = ["explorer"]


def explorer(p: Preset, out: Path, n_images: int = 200, n_scenes: int = 50) -> Any:
    """The explorer of 08: the lambda sweep's denoisers of 03 (through A and through B, every lambda and seed),
    classifier A on test item canvases and segmenter B on test scenes. It opens on the separate denoiser beside the
    joint one at the lambda 03's rule chose for A (seed 0), and fine-tunes new ones at any lambda from the grey base
    (`dmh.runs.grey_run` and `train_or_load`: the notebooks' spec and cache, kept runs loaded)."""
    check_scale(p)
    from dmh import runs
    from dmh.data import FASHION_CLASSES, SCENE_CLASSES
    from dmh.knobs import number_text
    from dmh.layout import read_json
    from dmh.study.bases import load_grey_base
    from dmh.widgets import Explorer, ExplorerTask

    def label(task: str, lam: float, seed: int, steps: int | None = None) -> str:
        more = f", {steps} steps" if steps not in (None, p.joint_steps) else ""
        return f"through {task}, lambda={number_text(lam)}, seed {seed}{more}"

    dens = {}
    for task in ("A", "B"):
        for lam in p.ablation_lams:
            for sd in p.seeds:
                dens[label(task, lam, sd)] = load_finetuned(task, lam, p, out, "03_lambda_ablation.ipynb", seed=sd)
    abl = out / "ablation.json"
    chosen = read_json(abl)["A"]["chosen"]["lam"] if abl.is_file() else None
    base = load_grey_base(p, out)

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
