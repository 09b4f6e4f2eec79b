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
    classifier A on test item canvases and segmenter B on test scenes."""
    check_scale(p)
    from dmh.data import FASHION_CLASSES, SCENE_CLASSES
    from dmh.widgets import Explorer, ExplorerTask

    dens = {}
    for task in ("A", "B"):
        for lam in p.ablation_lams:
            for sd in p.seeds:
                dens[f"through {task}, lambda={lam:g}, seed {sd}"] = load_finetuned(
                    task, lam, p, out, "03_lambda_ablation.ipynb", seed=sd
                )
    nets = task_nets()
    xa, ya = test_set("A", p)
    xb, yb = test_set("B", p)
    tasks = {
        "A": ExplorerTask(nets["A"], xa[:n_images], ya[:n_images], list(FASHION_CLASSES)),
        "B": ExplorerTask(nets["B"], xb[:n_scenes], yb[:n_scenes], list(SCENE_CLASSES)),
    }
    return Explorer(dens, tasks, seed=p.seed)
