"""The lambda sweeps and the fine-tunes behind them: 03's grey sweep through A and B (also the rows of Tables 2 and
3), 07's colour sweep through EfficientNet-Lite0, the rule that chooses the fine-tunes' length, and `train_sweep`,
which trains all of them once and keeps them in data/finetunes/."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

from torch import nn

from dmh import runs
from dmh.checkpoint import fingerprint, write_json
from dmh.evalsets import (
    colour_val_set,
    val_set,
)
from dmh.evaluate import evaluate_task
from dmh.nets import DenoiseNet
from dmh.presets import Preset, check_scale
from dmh.study.bases import colour_finetune, finetune, load_colour_base, load_grey_base, task_nets
from dmh.study.valscores import ValScores
from dmh.tasks import TaskNet
from dmh.training import train

__all__ = [
    "sweep_runs",
    "colour_sweep_runs",
    "colour_row_runs",
    "train_sweep",
    "ablation",
    "score_sweep",
    "colour_ablation",
    "colour_row_lams",
    "colour_rows",
    "run_length_curve",
    "RUN_LENGTH_PSNR_TOL",
    "RUN_LENGTH_METRIC_TOL",
    "choose_run_length",
]


def sweep_runs(p: Preset) -> list[runs.Run]:
    """The fine-tunes of the lambda sweep (03), which are also the rows of Tables 2 and 3: every lambda of
    `p.ablation_lams` through A and through B, with every seed of `p.seeds`; seed by seed, so that a partly trained
    sweep is complete for its first seeds."""
    return [runs.grey_run(p, t, lam, sd) for sd in p.seeds for t in ("A", "B") for lam in p.ablation_lams]


def colour_sweep_runs(p: Preset) -> list[runs.Run]:
    """07's lambda sweep through EfficientNet-Lite0: every lambda of `p.eff_lams` with every seed of
    `p.eff_sweep_seeds`."""
    return [runs.colour_run(p, lam, sd) for sd in p.eff_sweep_seeds for lam in p.eff_lams]


def colour_row_runs(p: Preset, lams: dict[str, float]) -> list[runs.Run]:
    """07's seeded rows: each distinct lambda of `lams` ({row: lam}, `colour_row_lams`) with every seed of `p.seeds`."""
    return [runs.colour_run(p, lam, sd) for lam in dict.fromkeys(lams.values()) for sd in p.seeds]


def train_sweep(p: Preset, out: Path, *, hours: float | None = None, workers: int | None = None, colour: bool = True,
                grey: bool = True, rows: bool = True, command: str = "") -> list[str]:  # fmt: skip
    """Train the study's fine-tunes in out/ckpt, `workers` at a time (default `p.workers`), and keep each finished
    run in `dmh.runs.KEPT_DIR` as soon as it finishes, so that an interrupted process loses at most the runs under
    way (they resume from their last quarter): first the grey sweep (`sweep_runs`, from `p`'s grey base), then with
    `colour` 07's sweep through EfficientNet-Lite0 (from `p.colour_base`), its lambda choice (`colour_ablation`, on
    validation crops) and, with `rows`, 07's seeded rows (`colour_rows`); `grey=False` skips the grey sweep. Each
    finished sweep is scored on its validation set and the scores kept with the runs (`dmh.study.valscores`).
    Starts no new run after `hours`. Runs already kept with
    the same inputs are copied, not trained. Returns the tags kept, in the order they finished."""
    check_scale(p)
    t0, kept = time.time(), []
    deadline = None if hours is None else t0 + 3600 * hours
    kw = {"workers": p.workers if workers is None else workers, "kept": True, "progress": False, "deadline": deadline}

    def keep(r: runs.Run) -> None:
        runs.keep(r, out, command=command)
        kept.append(r.tag)
        print(f"kept {r.tag}: {len(kept)} fine-tunes ({(time.time() - t0) / 3600:.2f} h)", flush=True)

    grey_runs = sweep_runs(p) if grey else []
    if grey_runs:
        runs.train_many(grey_runs, load_grey_base(p, out), out, on_done=keep, **kw)
        if all(runs.finished(r, out) for r in grey_runs):
            ablation(load_grey_base(p, out), p, out, progress=False, keep_scores=True)
    if not colour or not all(runs.finished(r, out) for r in grey_runs):
        return kept
    base, _ = load_colour_base(p, out)
    sweep = colour_sweep_runs(p)
    runs.train_many(sweep, base, out, on_done=keep, **kw)
    if not all(runs.finished(r, out) for r in sweep):
        return kept
    abl = colour_ablation(base, p, out, progress=False, keep_scores=True)
    if not rows:
        return kept
    lams = colour_row_lams(p, abl)
    rows = colour_row_runs(p, lams)
    runs.train_many(rows, base, out, on_done=keep, **kw)
    return kept


def score_sweep(
    scores: ValScores, nets: dict[float, list[tuple[str, nn.Module]]], metric: str, keep_scores: bool
) -> list[dict[str, Any]]:
    """The validation points of a sweep ({lam: [(run tag, denoiser) per seed]}): per lambda, PSNR and `metric` per
    seed with their means and standard deviations. Scores kept with the fine-tunes are read (`ValScores`), the others
    computed, after one line saying how many; `keep_scores` writes the computed ones to the kept scores."""
    from dmh.stats import summary

    todo = scores.missing({tag: net for pairs in nets.values() for tag, net in pairs})
    if todo:
        n = sum(len(pairs) for pairs in nets.values())
        print(f"scoring {len(todo)} of {n} sweep runs on {len(scores.images)} validation images (the others: kept "
              f"scores, {scores.path})", flush=True)  # fmt: skip
    pts = []
    for lam, pairs in nets.items():
        vals = [scores(tag, net) for tag, net in pairs]
        pt: dict[str, Any] = {"lam": lam, "psnr": [r["psnr"] for r in vals], "metric": [r[metric] for r in vals]}
        for key in ("psnr", "metric"):
            sm = summary(pt[key])
            pt[f"{key}_mean"], pt[f"{key}_std"] = sm["mean"], 0.0 if len(vals) < 2 else sm["std"]
        pts.append(pt)
    if keep_scores and scores.computed:
        scores.save()
    return pts


def ablation(
    base: DenoiseNet, p: Preset, out: Path, progress: bool = True, keep_scores: bool = False
) -> dict[str, Any]:
    """Sweep lam over `p.ablation_lams` for each task, each point with every seed of `p.seeds`: fine-tune `base` for
    `p.joint_steps` through A and through B (the same runs as the tables' rows), then measure PSNR and the task
    metric at `p.ablation_sigma` on *validation* data (never the test split), and choose the lambda of the "joint
    (chosen)" rows by `dmh.stats.choose_lambda`.

    Written to out/ablation.json: {task: {"points": [{"lam", "psnr": [per seed], "metric": [per seed], "psnr_mean",
    "psnr_std", "metric_mean", "metric_std"}], "chosen", "paper_lam", "code_lam", "noisy", "noisy_psnr"}}."""
    check_scale(p)
    from dmh.stats import choose_lambda

    result: dict[str, Any] = {"sigma": p.ablation_sigma, "steps": p.joint_steps, "seeds": list(p.seeds),
                              "preset": p.asdict()}  # fmt: skip
    specs = sweep_runs(p)
    runs.train_many(specs, base, out, workers=p.workers, progress=progress, kept=p.kept_finetunes)
    for task, metric in (("A", "top1"), ("B", "miou")):
        x, y = val_set(task, p)
        tnet = task_nets()[task]
        bs = p.task(task).eval_batch
        scores = ValScores(tnet, x, y, sigma=p.ablation_sigma, seed=p.seed, batch_size=bs, use_kept=p.kept_finetunes)
        nets = {lam: [(runs.grey_run(p, task, lam, sd).tag, finetune(base, task, lam, p, out, seed=sd)[0])
                      for sd in p.seeds] for lam in p.ablation_lams}  # fmt: skip
        pts = score_sweep(scores, nets, metric, keep_scores)
        noisy = evaluate_task(tnet, x, y, sigma=p.ablation_sigma, seed=p.seed, batch_size=bs)
        result[task] = {"metric": metric, "points": pts, "noisy": noisy[metric], "noisy_psnr": noisy["psnr"],
                        "paper_lam": p.task(task).lam_paper, "code_lam": p.task(task).lam_code,
                        "chosen": choose_lambda(pts)}  # fmt: skip
    write_json(out / "ablation.json", result, default=float)
    return result


def colour_ablation(
    base: DenoiseNet, p: Preset, out: Path, progress: bool = True, keep_scores: bool = False
) -> dict[str, Any]:
    """07's lambda sweep (claim 4 at a matched operating point): fine-tune `base` through EfficientNet-Lite0 (label-
    free target) at every lambda of `p.eff_lams` and seed of `p.eff_sweep_seeds`, score PSNR and agreement with the
    clean top-1 at `p.eff_val_sigma` on the validation crops (`colour_val_set`), and choose the lambda of the "joint
    (chosen)" row by `dmh.stats.choose_lambda`, as for A and B. Written to out/eff_ablation.json (the shape of
    `ablation`'s per-task entries)."""
    check_scale(p)
    from dmh.stats import choose_lambda
    from dmh.tasks import efficientnet_lite0

    specs = colour_sweep_runs(p)
    runs.train_many(specs, base, out, workers=p.workers, progress=progress, kept=p.kept_finetunes)
    eff = efficientnet_lite0(size=p.eff_size)
    x, y = colour_val_set(p, eff)
    kw = {"sigma": p.eff_val_sigma, "seed": p.seed, "batch_size": 10}
    scores = ValScores(eff, x, y, **kw, use_kept=p.kept_finetunes)
    start = scores(f"base {p.colour_base}", base)  # kept with the sweep's scores by score_sweep
    nets = {lam: [(runs.colour_run(p, lam, sd).tag, colour_finetune(base, lam, p, out, sd)[0])
                  for sd in p.eff_sweep_seeds] for lam in p.eff_lams}  # fmt: skip
    pts = score_sweep(scores, nets, "top1", keep_scores)
    noisy = evaluate_task(eff, x, y, **kw)
    result = {"sigma": p.eff_val_sigma, "steps": p.eff_steps, "seeds": list(p.eff_sweep_seeds), "n": len(x),
              "metric": "agreement", "points": pts, "noisy": noisy["top1"], "noisy_psnr": noisy["psnr"],
              "base": start["top1"], "base_psnr": start["psnr"], "paper_lam": p.eff_lam,
              "chosen": choose_lambda(pts), "preset": p.asdict()}  # fmt: skip
    write_json(out / "eff_ablation.json", result, default=float)
    return result


def colour_row_lams(p: Preset, ablation: dict[str, Any], lam: float | None = None) -> dict[str, float]:
    """{row: lam} of 07's fine-tuned rows: separate 0, joint (paper) `p.eff_lam`, joint (chosen) `lam` when given
    (a notebook's knob), else the lambda of `colour_ablation` (the paper's when none was chosen)."""
    chosen = ablation["chosen"]["lam"] if lam is None else float(lam)
    return {"separate": 0.0, "joint (paper)": p.eff_lam, "joint (chosen)": p.eff_lam if chosen is None else chosen}


def colour_rows(
    base: DenoiseNet, p: Preset, out: Path, ablation: dict[str, Any], progress: bool = True, lam: float | None = None
) -> tuple[dict[str, list[DenoiseNet]], dict[str, float]]:
    """07's fine-tuned rows, one denoiser per seed of `p.seeds`: "separate" (lam 0), "joint (paper)" (`p.eff_lam`)
    and "joint (chosen)" (the lambda `colour_ablation` chose on validation crops; the paper's when none was within the
    PSNR tolerance; `lam` when given). Missing runs are trained (`p.workers` at a time). Returns ({row: [nets]},
    {row: lam})."""
    lams = colour_row_lams(p, ablation, lam)
    specs = colour_row_runs(p, lams)
    runs.train_many(specs, base, out, workers=p.workers, progress=progress, kept=p.kept_finetunes)
    rows = {row: [colour_finetune(base, lam, p, out, sd)[0] for sd in p.seeds] for row, lam in lams.items()}
    return rows, lams


def run_length_curve(
    base: DenoiseNet,
    p: Preset,
    lams: dict[str, tuple[float, ...]],
    steps: int,
    every: int,
    out: Path,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """How a fine-tune's validation numbers move with its length, to choose `Preset.joint_steps` ("600 steps
    may be too short for the task term to act"). For each task and lam of `lams` (e.g. {"A": (0, 0.004, 0.25)}), one
    run of `steps` steps (the spec of `dmh.runs.grey_run` but its length, seed `seed`) is scored every `every` steps
    at `p.ablation_sigma` on the validation data of the sweep (`val_set`: never the test split): PSNR (dB) and the
    task metric (a fraction: top-1 for A, mean IoU for B). The length is then chosen by `choose_run_length`.

    Written to out/run_length.json: {"sigma", "steps", "every", "curves": [{"task", "lam", "step": [...], "psnr":
    [...], "metric": [...]}]}."""
    check_scale(p)
    result: dict[str, Any] = {"sigma": p.ablation_sigma, "steps": steps, "every": every, "seed": seed,
                              "base": fingerprint(base), "preset": p.asdict(), "curves": []}  # fmt: skip
    nets = task_nets()
    for task, task_lams in lams.items():
        x, y = val_set(task, p)
        metric, bs = p.task(task).metric, p.task(task).eval_batch
        for lam in task_lams:
            run = runs.grey_run(p, task, lam, seed, steps)
            net = runs.copy_denoiser(base)
            curve: dict[str, Any] = {"task": task, "lam": float(lam), "step": [], "psnr": [], "metric": []}

            def score(step: int, model: nn.Module, row: dict[str, float], curve: dict[str, Any] = curve,
                      tnet: TaskNet = nets[task], data: tuple = (x, y, bs, metric)) -> None:  # fmt: skip
                if step % every and step != steps:
                    return
                model.eval()
                r = evaluate_task(tnet, data[0], data[1], sigma=p.ablation_sigma, denoiser=model, seed=p.seed,
                                  batch_size=data[2])  # fmt: skip
                model.train()
                curve["step"].append(step)
                curve["psnr"].append(r["psnr"])
                curve["metric"].append(r[data[3]])

            score(0, net, {})
            cfg = dataclasses.replace(run.config(progress), log_every=math.gcd(every, steps))
            train(net, runs.step_fn(run, nets[task]), cfg, callbacks=[score], desc=f"length {run.tag}")
            result["curves"].append(curve)
            write_json(out / "run_length.json", result, default=float)
    return result


#: The rule that chooses the fine-tunes' length from `run_length_curve`, written before any curve was computed
#: (2026-12-02): the shortest scored length L such that, for every probed run, the validation PSNR at L is
#: within `RUN_LENGTH_PSNR_TOL` dB of its value at the longest length and the task metric (a fraction) within
#: `RUN_LENGTH_METRIC_TOL` of it, i.e. 1 percentage point (the run has settled: more steps would not move the table).
RUN_LENGTH_PSNR_TOL, RUN_LENGTH_METRIC_TOL = 0.1, 0.01


def choose_run_length(curves: dict[str, Any]) -> dict[str, Any]:
    """Apply the rule above to the result of `run_length_curve`: {"steps": L, "rule": ...}."""
    cs = curves["curves"]
    lengths = sorted(set(cs[0]["step"]) - {0})
    for n in lengths:
        i = [c["step"].index(n) for c in cs]
        if all(abs(c["psnr"][k] - c["psnr"][-1]) <= RUN_LENGTH_PSNR_TOL
               and abs(c["metric"][k] - c["metric"][-1]) <= RUN_LENGTH_METRIC_TOL
               for c, k in zip(cs, i)):  # fmt: skip
            break
    rule = (f"shortest length whose validation PSNR is within {RUN_LENGTH_PSNR_TOL:g} dB and metric within "
            f"{100 * RUN_LENGTH_METRIC_TOL:g} points of the longest run's, for every probed run")  # fmt: skip
    return {"steps": n, "rule": rule}
