"""Claim (2) beyond the paper's denoiser: the same fine-tunes, lambda rule, table and verdicts through classifier A
(and classifier C, never trained through) with a denoiser of the field as the grey base: deepinv's DnCNN
(`dmh.zoo`, released as "grey-dncnn", trained alone on the grey base's data, schedule and hours).

The sweep is 03's (every lambda of `Preset.ablation_lams` x every seed of `Preset.seeds`, `Preset.joint_steps` steps
through A), its runs tagged with the base's name (`dmh.runs.Run.base`) and kept in data/finetunes/ like 03's; it is
scored on A's validation items at `Preset.ablation_sigma`, and the "joint (chosen)" lambda is chosen by the same
written rule (`dmh.stats.choose_lambda`). The table is Table 2's (`task_table`: noisy, CBM3D, separate, joint (paper),
joint (chosen); every row through A and C on the same noisy pixels); its verdicts are `table_claims`' with the claim
named after the denoiser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dmh import runs
from dmh.checkpoint import write_json
from dmh.evalsets import val_set
from dmh.evaluate import evaluate_task
from dmh.layout import read_json, require
from dmh.presets import Preset, check_scale
from dmh.stats import Z, choose_lambda
from dmh.study.bases import task_nets
from dmh.study.sweeps import score_sweep
from dmh.study.tables import task_table
from dmh.study.valscores import ValScores
from dmh.study.verdicts import table_claims, write_claims

__all__ = [
    "OTHER_BASES",
    "other_sweep_runs",
    "train_other_sweep",
    "other_ablation",
    "other_table",
    "other_table_claims",
    "other_claims",
]

#: Released grey bases of other architectures -> (the label of their rows and claims, the short name of their files).
OTHER_BASES = {"grey-dncnn": ("DnCNN", "dncnn")}


def other_sweep_runs(p: Preset, name: str) -> list[runs.Run]:
    """The sweep through A from the released base `name`: every lambda of `p.ablation_lams` with every seed of
    `p.seeds`, seed by seed."""
    return [runs.grey_run(p, "A", lam, sd, base=name) for sd in p.seeds for lam in p.ablation_lams]


def train_other_sweep(name: str, p: Preset, out: Path, *, hours: float | None = None, workers: int | None = None,
                      command: str = "") -> list[str]:  # fmt: skip
    """Train the sweep of `name` (`other_sweep_runs`) in out/ckpt, `workers` at a time (default `p.workers`), keep
    each finished run in data/finetunes/ as it finishes (`dmh.runs.keep`), then score the finished sweep on its
    validation set and keep the scores (`other_ablation(keep_scores=True)`). Starts no new run after `hours`. Returns
    the tags kept."""
    import time

    from dmh.archs import released_denoiser

    check_scale(p)
    t0, kept = time.time(), []

    def keep(r: runs.Run) -> None:
        runs.keep(r, out, command=command)
        kept.append(r.tag)
        print(f"kept {r.tag}: {len(kept)} fine-tunes ({(time.time() - t0) / 3600:.2f} h)", flush=True)

    specs = other_sweep_runs(p, name)
    runs.train_many(specs, released_denoiser(name), out, workers=p.workers if workers is None else workers, kept=True,
                    progress=False, on_done=keep, deadline=None if hours is None else t0 + 3600 * hours)  # fmt: skip
    if all(runs.finished(r, out) for r in specs):
        other_ablation(name, p, out, progress=False, keep_scores=True)
    return kept


def _finetuned(name: str, base: Any, lam: float, p: Preset, out: Path, seed: int) -> Any:
    """The finished (or kept, or trained here) run of `name`'s sweep at `lam` and `seed`, from the loaded `base`."""
    return runs.train_or_load(runs.grey_run(p, "A", lam, seed, base=name), base, out, kept=p.kept_finetunes,
                              progress=False)[0]  # fmt: skip


def other_ablation(name: str, p: Preset, out: Path, progress: bool = True, keep_scores: bool = False) -> dict[str, Any]:
    """03's sweep and lambda rule through A from the released base `name` (`OTHER_BASES`), scored on A's validation
    items at `p.ablation_sigma`. Written to out/ablation_<short>.json (the shape of `ablation`'s "A" entry, with
    "base")."""
    check_scale(p)
    from dmh.archs import released_denoiser

    label, short = OTHER_BASES[name]
    base = released_denoiser(name)
    runs.train_many(other_sweep_runs(p, name), base, out, workers=p.workers, progress=progress,
                    kept=p.kept_finetunes)  # fmt: skip
    x, y = val_set("A", p)
    tnet = task_nets()["A"]
    bs = p.cls.eval_batch
    scores = ValScores(tnet, x, y, sigma=p.ablation_sigma, seed=p.seed, batch_size=bs, use_kept=p.kept_finetunes)
    nets = {lam: [(runs.grey_run(p, "A", lam, sd, base=name).tag, _finetuned(name, base, lam, p, out, sd))
                  for sd in p.seeds] for lam in p.ablation_lams}  # fmt: skip
    pts = score_sweep(scores, nets, "top1", keep_scores)
    start = evaluate_task(tnet, x, y, sigma=p.ablation_sigma, denoiser=base, seed=p.seed, batch_size=bs)
    result = {"base": name, "label": label, "sigma": p.ablation_sigma, "steps": p.joint_steps, "seeds": list(p.seeds),
              "metric": "top1", "points": pts, "base_top1": start["top1"], "base_psnr": start["psnr"],
              "paper_lam": p.cls.lam_paper, "code_lam": p.cls.lam_code, "chosen": choose_lambda(pts),
              "preset": p.asdict()}  # fmt: skip
    write_json(out / f"ablation_{short}.json", result, default=float)
    return result


def other_table(name: str, p: Preset, out: Path, ablation: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Table 2 with the base `name`: separate, joint (paper) and joint (chosen, by `ablation`'s rule; the paper's
    lambda when none was chosen), one denoiser per seed, beside noisy and CBM3D, through A and C. Written to
    out/table2_<short>.json (`task_table`)."""
    label, short = OTHER_BASES[name]
    chosen = ablation["chosen"]["lam"]
    lams = {"separate": 0.0, "joint (paper)": p.cls.lam_paper,
            "joint (chosen)": p.cls.lam_paper if chosen is None else chosen}  # fmt: skip
    from dmh.archs import released_denoiser

    base = released_denoiser(name)  # loaded and sha256-checked once for every row
    rows = {row: [_finetuned(name, base, lam, p, out, sd) for sd in p.seeds] for row, lam in lams.items()}
    how = {"joint (chosen)": "03's rule on validation data, this base's own sweep"}
    info = {row: {"task": "A", "lam": lam, "chosen_by": how.get(row, "fixed"), "base": name}
            for row, lam in lams.items()}  # fmt: skip
    return task_table("A", rows, p, out, f"table2_{short}", progress=progress, lams=info)


def other_table_claims(t: dict[str, Any], name: str = "grey-dncnn", sigmas: list[float] | None = None
                       ) -> list[dict[str, Any]]:  # fmt: skip
    """The verdicts of claim (2) with the base `name` on its table `t` (table2_<short>.json): joint (chosen) and joint
    (paper) against separate, and joint (chosen) against CBM3D, through A; the same two against separate through C."""
    label, _ = OTHER_BASES[name]
    claim = f"(2) with {label} as the denoiser"
    comparisons = [(f"{claim}: joint beats separate", "joint (chosen)", "separate", False),
                   (f"{claim}: joint beats separate", "joint (paper)", "separate", False),
                   (f"{claim}: joint beats CBM3D", "joint (chosen)", "CBM3D", True)]  # fmt: skip
    unseen = [(f"{claim}: joint's gain carries to an unseen classifier", "joint (chosen)", "separate"),
              (f"{claim}: joint's gain carries to an unseen classifier", "joint (paper)", "separate")]  # fmt: skip
    return table_claims(t, sigmas, comparisons, unseen)


def other_claims(out: Path, name: str = "grey-dncnn", sigmas: list[float] | None = None) -> dict[str, Any]:
    """`other_table_claims` on out/table2_<short>.json, written to out/claims_<short>.json (the shape of
    claims.json)."""
    _, short = OTHER_BASES[name]
    t = read_json(require(out / f"table2_{short}.json", "04_joint_classification.ipynb"))
    found = other_table_claims(t, name, sigmas)
    rule = (f"As claims.json: the metric averaged over sigma, per training seed; a difference counts beyond {Z:g} "
            "standard errors over the seeds. Every row starts from the released base " + name + ".")  # fmt: skip
    return write_claims(out, f"claims_{short}.json", rule, found, base=name, sigmas=sigmas)
