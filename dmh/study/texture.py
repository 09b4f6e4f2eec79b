"""Claim (4) at a matched operating point: texture against PSNR over the whole lambda sweep (the frontier), for the
three task paths (A and B on the grey domain, EfficientNet-Lite0 on the colour photos), and the verdict where the
joint denoiser's PSNR matches the separate one's.

Measures (on TEST data, every lambda of the sweep and every seed): PSNR, SSIM, gradient similarity (GMS), the
high-frequency energy kept (reported, no direction: above 1 can be noise left) and a perceptual distance computed
with the features of a network that no denoiser was trained through (`dmh.metrics.perceptual_distance`): classifier
C (`Preset.unseen_classifier`) on the grey domain, EfficientNet-Lite2 on the photos.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dmh.checkpoint import write_json
from dmh.evalsets import photo_noise, test_photos, test_set
from dmh.inference import denoise
from dmh.layout import read_json, require
from dmh.metrics import gradient_similarity, high_frequency_ratio, perceptual_distance, psnr, ssim
from dmh.noise import noisy_images
from dmh.presets import Preset, check_scale
from dmh.stats import Z, summary
from dmh.study.bases import colour_finetune, finetune, unseen_classifier
from dmh.study.verdicts import verdict, write_claims

__all__ = ["MATCH_TOLERANCE_DB", "MEASURES", "measure_texture", "texture_frontier", "matched_lambda", "frontier_claims"]

#: The matched operating point's PSNR tolerance (dB): |validation PSNR(joint) - PSNR(separate)| within it.
MATCH_TOLERANCE_DB = 0.1
#: Texture measures with a direction: (key, label, higher is better?). "hf" (energy kept) is reported only.
MEASURES = (
    ("gms", "gradient similarity", True),
    ("ssim", "SSIM", True),
    ("perceptual", "perceptual distance", False),
)


def measure_texture(denoised: Tensor, clean: Tensor, feature_fn: Any, batch_size: int = 64) -> dict[str, float]:
    """Texture measures of a denoised set against its clean set ((N, C, H, W) in [0, 1]): "psnr" and "ssim" (means
    over images), "gms" (gradient similarity over the set), "hf" (high-frequency energy kept over the set),
    "perceptual" (`perceptual_distance` with `feature_fn`)."""
    den = denoised.clamp(0, 1)
    return {
        "psnr": float(np.mean([psnr(a[None], b[None]) for a, b in zip(denoised, clean)])),
        "ssim": float(np.mean([ssim(a[None], b[None]) for a, b in zip(den, clean)])),
        "gms": gradient_similarity(den, clean),
        "hf": high_frequency_ratio(den, clean),
        "perceptual": perceptual_distance(feature_fn, den, clean, batch_size=batch_size),
    }


def _grey_set(task: str, p: Preset) -> tuple[Tensor, Tensor]:
    """The first `n_bm3d` test items (A) or scenes (B) and their noisy copies at `p.ablation_sigma` (the noise rule
    of every table)."""
    x, _ = test_set(task, p)
    x = x[: p.task(task).n_bm3d]
    s = p.ablation_sigma
    return x, noisy_images(x, s, p.seed, 0)


def _run(net: nn.Module, noisy: Tensor, batch: int = 64) -> Tensor:
    with torch.inference_mode():
        return torch.cat(
            [denoise(net, noisy[i : i + batch], tile=None, fast=True) for i in range(0, len(noisy), batch)]
        )


def texture_frontier(grey_base: nn.Module, colour_base: nn.Module, p: Preset, out: Path) -> dict[str, Any]:
    """The texture measures of every denoiser of the lambda sweeps on TEST data: A and B (03's sweep,
    `p.ablation_lams` x `p.seeds`, at `p.ablation_sigma` on the first `n_bm3d` test items / scenes) and
    EfficientNet-Lite0 (07's sweep, `p.eff_lams` x `p.eff_sweep_seeds`, at `p.eff_val_sigma` on the TEST photo
    crops); with `p.frontier` "claims", only the lambdas `frontier_claims` compares. Every run is loaded (or trained)
    as the sweeps do. Written to out/frontier.json: {"paths": {path: {"sigma",
    "perceptual_net", "points": [{"lam", "seed", measures...}]}}}."""
    check_scale(p)
    from dmh import tasks

    result: dict[str, Any] = {"paths": {}, "preset": p.asdict()}
    needed = _claim_lams(out) if p.frontier == "claims" else {}
    c_net = unseen_classifier(p)
    for task in ("A", "B"):
        if c_net is None:
            break
        clean, noisy = _grey_set(task, p)
        feat = functools.partial(tasks.features, c_net)
        points = [{"lam": 0.0, "seed": -1, "row": "noisy", **measure_texture(noisy, clean, feat)}]
        for lam in [lam for lam in p.ablation_lams if task not in needed or lam in needed[task]]:
            for sd in p.seeds:
                net, _ = finetune(grey_base, task, lam, p, out, seed=sd)
                points.append({"lam": lam, "seed": sd, **measure_texture(_run(net, noisy), clean, feat)})
        result["paths"][task] = {"sigma": p.ablation_sigma, "n": len(clean), "perceptual_net": c_net.name,
                                 "points": points}  # fmt: skip
        write_json(out / "frontier.json", result, default=float)
    lite2 = tasks.efficientnet_lite2(size=None if p.eff_size == 224 else p.eff_size)
    feat = functools.partial(tasks.features, lite2)
    s = p.eff_val_sigma
    crops = list(test_photos(p).values())
    clean = torch.stack(crops)
    noisy = torch.cat([photo_noise(c, s, k, p) for k, c in enumerate(crops)])
    points = [{"lam": 0.0, "seed": -1, "row": "noisy", **measure_texture(noisy, clean, feat, batch_size=4)}]
    for lam in [lam for lam in p.eff_lams if "E" not in needed or lam in needed["E"]]:
        for sd in p.eff_sweep_seeds:
            net, _ = colour_finetune(colour_base, lam, p, out, sd)
            den = torch.cat([denoise(net, x[None], fast=True) for x in noisy])
            points.append({"lam": lam, "seed": sd, **measure_texture(den, clean, feat, batch_size=4)})
    result["paths"]["E"] = {"sigma": s, "n": len(clean), "perceptual_net": lite2.name, "points": points}
    write_json(out / "frontier.json", result, default=float)
    return result


def _validation_points(out: Path) -> dict[str, tuple[list[dict[str, Any]], float | None]]:
    """{path: (the sweep's validation points, the chosen lambda)} from out/ablation.json (A, B) and
    out/eff_ablation.json (E), for those present."""
    val = {}
    if (path := _require_or_none(out / "ablation.json")) is not None:
        abl = read_json(path)
        val.update({t: (abl[t]["points"], abl[t]["chosen"]["lam"]) for t in ("A", "B") if t in abl})
    if (path := _require_or_none(out / "eff_ablation.json")) is not None:
        eff = read_json(path)
        val["E"] = (eff["points"], eff["chosen"]["lam"])
    return val


def _claim_lams(out: Path) -> dict[str, set[float]]:
    """{path: the lambdas `frontier_claims` compares}: separate, the matched-PSNR lambda and the chosen one."""
    return {t: {0.0, *(lam for lam in (matched_lambda(pts)["lam"], chosen) if lam is not None)}
            for t, (pts, chosen) in _validation_points(out).items()}  # fmt: skip


def _require_or_none(path: Path) -> Path | None:
    """`require(path)` (a knob run's folder falls back on its preset's), or None when neither has it."""
    try:
        return require(path)
    except FileNotFoundError:
        return None


def matched_lambda(points: list[dict[str, Any]], tolerance_db: float = MATCH_TOLERANCE_DB) -> dict[str, Any]:
    """The matched operating point of a validation sweep ([{"lam", "psnr": [per seed]}, ...], lam = 0 included; the
    shape of `dmh.study.ablation`'s points): the LARGEST lambda > 0 whose mean validation PSNR is within
    `tolerance_db` of the separate row's, i.e. the most task weight at (about) the same PSNR (rule written
    2026-12-04, before the frontier's numbers). {"lam": None when no lambda is within it, "gap_db", "rule"}."""
    by = {float(q["lam"]): float(np.mean(q["psnr"])) for q in points}
    sep = by[0.0]
    within = [lam for lam, v in sorted(by.items()) if lam > 0 and abs(v - sep) <= tolerance_db]
    lam = max(within, default=None)
    rule = (f"largest lambda > 0 whose mean validation PSNR is within {tolerance_db:g} dB of separate's "
            "(chosen on validation data; the TEST PSNR gap is printed beside each verdict)")  # fmt: skip
    return {"lam": lam, "gap_db": None if lam is None else by[lam] - sep, "rule": rule}


def frontier_claims(out: Path) -> dict[str, Any]:
    """Claim (4) at the matched operating point, for each task path: joint at `matched_lambda` (chosen on the
    sweep's validation PSNR, out/ablation.json and out/eff_ablation.json) against separate, per training seed on the
    TEST measures of out/frontier.json, by the 2-SE rule; also at the "joint (chosen)" lambda of the tables. Each row
    carries the TEST PSNR difference. Written to out/claims4m.json."""
    front = read_json(require(out / "frontier.json"))["paths"]
    val = _validation_points(out)
    found, matched = [], {}
    for path, d in front.items():
        if path not in val:
            continue
        points, chosen = val[path]
        m = matched_lambda(points)
        matched[path] = m
        pts = [q for q in d["points"] if q.get("row") != "noisy"]

        def per_seed(lam: float, key: str, pts: list[dict[str, Any]] = pts) -> dict[str, Any]:
            return summary([q[key] for q in pts if q["lam"] == lam])

        for op, lam in (("matched PSNR", m["lam"]), ("chosen lambda", chosen)):
            if lam is None or not any(q["lam"] == lam for q in pts):
                continue
            gap = per_seed(lam, "psnr")["mean"] - per_seed(0.0, "psnr")["mean"]
            for key, label, higher in MEASURES:
                sa, sb = per_seed(lam, key), per_seed(0.0, key)
                if not higher:  # lower is better: "a beats b" on the negated measure
                    sa = {**sa, "mean": -sa["mean"]}
                    sb = {**sb, "mean": -sb["mean"]}
                row = verdict(f"(4) joint keeps more texture: {label}", path, f"joint, λ={lam:g}", "separate", sa, sb,
                              measure=key, operating_point=op, lam=lam, psnr_diff=gap,
                              val_gap_db=m["gap_db"] if op == "matched PSNR" else None)  # fmt: skip
                if not higher:
                    row["mean_a"], row["mean_b"] = -row["mean_a"], -row["mean_b"]
                found.append(row)
    rule = (f"Per training seed, the measure on the TEST set of the path; a difference counts beyond {Z:g} standard "
            "errors over the seeds (for the perceptual distance, lower is better: the sign is flipped). Operating "
            f"points: matched PSNR ({next(iter(matched.values()))['rule'] if matched else ''}) and the tables' "
            "chosen lambda. psnr_diff: the TEST PSNR difference (dB).")  # fmt: skip
    return write_claims(out, "claims4m.json", rule, found, matched=matched)
