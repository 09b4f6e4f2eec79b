"""The claims' verdicts, computed from the result files by the 2-standard-error rule of `dmh.stats`: claims (2) and
(3) from Tables 2 and 3, claim (4) from the texture measures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dmh.checkpoint import write_json
from dmh.layout import read_json, require
from dmh.stats import Z, compare, summary

__all__ = [
    "write_claims",
    "REAL_PHOTO_CLAIMS",
    "real_photo_claims",
    "denoising_claims",
    "table_claims",
    "verdict",
    "CLAIMS",
    "UNSEEN_CLAIMS",
    "claims",
    "TEXTURE_CLAIMS",
    "texture_claims",
]


def write_claims(out: Path, name: str, rule: str, found: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Write out/<name>: {"rule", "claims": the verdict rows, **extra}, the shape every claims file shares; returns
    it."""
    result = {"rule": rule, "claims": found, **extra}
    write_json(out / name, result, default=float)
    return result


def verdict(
    claim: str, task: str, a: str, b: str, sa: dict[str, Any], sb: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """One claim's row, "a beats b": the two rows' summaries over training seeds (`dmh.stats.summary`), their
    difference, its standard error and the verdict (`dmh.stats.compare`), and `extra` fields (subset, measure,
    PSNR difference, ...)."""
    return {"claim": claim, "task": task, "a": a, "b": b, "subset": False, **extra, **compare(sa, sb),
            "mean_a": sa["mean"], "mean_b": sb["mean"], "n_a": sa["n"], "n_b": sb["n"]}  # fmt: skip


#: The comparisons that decide claims (2) and (3): (claim, row a, row b, on the CBM3D subset?); "a beats b".
CLAIMS = (
    ("(2) joint beats separate", "joint (chosen)", "separate", False),
    ("(2) joint beats separate", "joint (paper)", "separate", False),
    ("(2) joint beats CBM3D", "joint (chosen)", "CBM3D", True),
    ("(3) cross-task beats separate", "cross-task", "separate", False),
)
#: The same comparisons through classifier C, which no denoiser was trained through (Table 2's "unseen" column;
#: written 2026-12-04, before its numbers): does the gain of the rows trained through A (or B) carry to it?
UNSEEN_CLAIMS = (
    ("(2) joint's gain carries to an unseen classifier", "joint (chosen)", "separate"),
    ("(2) joint's gain carries to an unseen classifier", "joint (paper)", "separate"),
    ("(3) cross-task's gain carries to an unseen classifier", "cross-task", "separate"),
)


def table_claims(
    t: dict[str, Any],
    sigmas: list[float] | None = None,
    comparisons: Sequence[tuple[str, str, str, bool]] = CLAIMS,
    unseen: Sequence[tuple[str, str, str]] = UNSEEN_CLAIMS,
) -> list[dict[str, Any]]:
    """The verdicts of `comparisons` (default `CLAIMS`; and `unseen`, default `UNSEEN_CLAIMS`, when the table has
    classifier C's column) on one table (table2.json or table3.json), over its sigmas (or those of `sigmas`), each
    with the rows' input PSNR difference (dB, mean over sigma) beside it."""
    sig = [s for s in t["rows"]["noisy"] if sigmas is None or float(s) in {float(v) for v in sigmas}]
    if not sig:
        raise ValueError(f"none of the sigmas {sigmas} is a column of table {t['task']} ({list(t['rows']['noisy'])})")

    def row_summary(row: str, subset: bool, key: str = "metric") -> dict[str, Any]:
        key = f"{key}_subset" if subset else key
        per_seed = np.mean([t["rows"][row][s][f"{key}_seeds"] for s in sig], axis=0).tolist()
        return summary(per_seed, seeded=row not in ("noisy", "CBM3D"))

    def psnr_gap(a: str, b: str, subset: bool) -> float | None:
        key = "psnr_subset" if subset else "psnr"
        if any(key not in t["rows"][r][s] for r in (a, b) for s in sig):
            return None
        return float(np.mean([t["rows"][a][s][key] - t["rows"][b][s][key] for s in sig]))

    found = []
    for claim, a, b, subset in comparisons:
        sa, sb = row_summary(a, subset), row_summary(b, subset)
        found.append(verdict(claim, t["task"], a, b, sa, sb, subset=subset, psnr_diff=psnr_gap(a, b, subset)))
    if t.get("unseen"):
        for claim, a, b in unseen:
            sa, sb = row_summary(a, False, key="metric_unseen"), row_summary(b, False, key="metric_unseen")
            found.append(verdict(claim, "C", a, b, sa, sb, through=t["unseen"], psnr_diff=psnr_gap(a, b, False)))
    return found


def claims(out: Path, sigmas: list[float] | None = None) -> dict[str, Any]:
    """The verdicts on claims (2) and (3) from out/table2.json and out/table3.json, by the rule of `dmh.stats`: each
    row's metric averaged over the table's sigmas, per training seed; mean and standard error over the seeds; "held"
    beyond +2 SE, "did not hold" below -2 SE, else "within noise". With Table 2's column through classifier C, the
    `UNSEEN_CLAIMS` too (task "C"). `sigmas`: only those columns (a notebook's knob). Written to out/claims.json."""
    found = []
    for name in ("table2.json", "table3.json"):
        found += table_claims(read_json(require(out / name)), sigmas)
    rule = (f"Metric averaged over sigma, per training seed; a difference counts when it exceeds {Z:g} standard "
            "errors over the seeds (sqrt(se_a^2 + se_b^2)); rows without training (noisy, CBM3D) have none; fewer than "
            "2 seeds: within noise. CBM3D comparisons on the CBM3D subset.")  # fmt: skip
    return write_claims(out, "claims.json", rule, found, sigmas=sigmas)


#: Claim (4), "the joint denoiser keeps more texture", decided on out/texture.json (written before any number of it
#: was seen, 2026-12-02): per training seed, the measure averaged over the TEST photos and sigmas; "a beats b" by the
#: 2-standard-error rule of `dmh.stats`. Gradient similarity (higher: edges and fine structure closer to the clean
#: photo) and SSIM are the texture measures with a direction; the high-frequency energy kept is reported beside them
#: (above 1 can be noise left or added, so "more" is not "better").
TEXTURE_CLAIMS = (
    ("(4) joint keeps more texture: gradient similarity", "gms", "joint (chosen)", "separate"),
    ("(4) joint keeps more texture: gradient similarity", "gms", "joint (paper)", "separate"),
    ("(4) joint keeps more texture: SSIM", "ssim", "joint (chosen)", "separate"),
    ("(4) joint keeps more texture: SSIM", "ssim", "joint (paper)", "separate"),
)


def texture_claims(out: Path) -> dict[str, Any]:
    """The verdicts of `TEXTURE_CLAIMS` from out/texture.json, with the PSNR difference of the same rows beside each
    (the operating point). Written to out/claims4.json (the shape of `claims`'s)."""
    rows = read_json(require(out / "texture.json", "07_texture.ipynb"))["rows"]

    def per_seed(method: str, key: str) -> dict[str, Any]:
        seeds = sorted({r["seed"] for r in rows if r["method"] == method})
        vals = [float(np.mean([r[key] for r in rows if r["method"] == method and r["seed"] == sd])) for sd in seeds]
        return summary(vals, seeded=method not in ("noisy", "CBM3D"))

    found = []
    for claim, key, a, b in TEXTURE_CLAIMS:
        if not any(r["method"] == a for r in rows):
            continue
        sa, sb = per_seed(a, key), per_seed(b, key)
        psnr_diff = per_seed(a, "psnr")["mean"] - per_seed(b, "psnr")["mean"]
        found.append(verdict(claim, "E", a, b, sa, sb, measure=key, psnr_diff=psnr_diff))
    rule = (f"Measure averaged over the TEST photos and sigmas, per training seed; a difference counts when it exceeds "
            f"{Z:g} standard errors over the seeds; fewer than 2 seeds: within noise. psnr_diff: the same rows' PSNR "
            "difference (dB), the operating point.")  # fmt: skip
    return write_claims(out, "claims4.json", rule, found)


#: Claim (1), "a denoiser at least as strong as CBM3D", decided on the five full-size TEST photos (rule written
#: 2026-12-04, before its numbers): per photo, the PSNR of a released denoiser minus CBM3D's on the same noisy pixels
#: (CBM3D given the true sigma); mean and standard error of those differences over the photos; "held" beyond +2 SE,
#: "did not hold" below -2 SE, else "within noise". For the blind model at each sigma, each per-sigma model at its
#: sigma, and the blind model's geometric self-ensemble (8 flips / rotations averaged, "+" in peers' tables).
def denoising_claims(
    out: Path, ensemble_sigmas: Sequence[float] | None = None, models: list[str] | None = None
) -> dict[str, Any]:
    """The verdicts on claim (1) (the rule above) for the released colour denoisers present (`models`: only these
    labels, e.g. ["released colour-blind"]); per-photo PSNRs and seconds per photo beside them. The blind model's
    self-ensemble row is scored at `ensemble_sigmas` (0-255; None: every sigma of the blind model; empty: no such
    row). Written to out/claims1.json (rows shaped like `claims`')."""
    from dmh import denoisers
    from dmh.study.bases import released_denoisers

    cb = denoisers.cbm3d_on_test_photos()["per_image"]
    nets, _, _ = released_denoisers()
    nets = {k: v for k, v in nets.items() if models is None or k in models}
    found, per_image = [], {}
    ens_sigmas = denoisers.VAL_SIGMAS if ensemble_sigmas is None else tuple(float(s) for s in ensemble_sigmas)
    models: list[tuple[str, Any, tuple[float, ...], bool]] = [
        (lab, n, denoisers.VAL_SIGMAS if s is None else (float(s),), False) for lab, (n, s) in nets.items()
    ]
    if ens_sigmas and "released colour-blind" in nets:
        models.append(("released colour-blind +ensemble", nets["released colour-blind"][0], ens_sigmas, True))
    for label, net, sigmas, ens in models:
        res = denoisers.psnr_per_image(net, sigmas, ensemble=ens)
        per_image[label] = res
        for s in sigmas:
            got, ref = res[f"{int(s)}"], cb[f"{int(s)}"]["full"]
            diffs = [got[k] - ref[k] for k in ref]
            sd = summary(diffs)
            found.append(verdict("(1) denoiser at least as strong as CBM3D", "photos", label, "CBM3D", sd,
                                 summary([0.0], seeded=False), sigma=s, n_images=len(diffs),
                                 seconds=res["seconds"], psnr_a=float(np.mean(list(got.values()))),
                                 psnr_b=float(np.mean(list(ref.values())))))  # fmt: skip
    rule = (
        f"PSNR of the denoiser minus CBM3D's per full-size TEST photo (same noisy pixels, CBM3D given the true "
        f"sigma); mean and standard error over the photos; a difference counts beyond {Z:g} standard errors."
    )
    return write_claims(out, "claims1.json", rule, found, per_image=per_image, cbm3d=cb)


#: Claim (2) for a real ImageNet classifier on real photos (rule written 2026-12-04, before the numbers): on every
#: tile of the TEST photos and ImageNet-20 (out/real_photos.json), the agreement with the classifier's top-1 on the
#: clean tile, averaged over tiles and noise draws, per training seed; "a beats b" by the 2-SE rule over the seeds.
#: Through EfficientNet-Lite0 (trained through) and EfficientNet-Lite2 (never trained through).
REAL_PHOTO_CLAIMS = (
    ("(2) joint beats separate on real photos", "joint (chosen)", "separate"),
    ("(2) joint beats separate on real photos", "joint (paper)", "separate"),
)


def real_photo_claims(out: Path) -> dict[str, Any]:
    """The verdicts of `REAL_PHOTO_CLAIMS` from out/real_photos.json, through each classifier, with the rows' PSNR
    difference and the spread over noise draws beside them. Written to out/claims2e.json."""
    r = read_json(require(out / "real_photos.json"))
    found = []
    for net, label in (("lite0", "EfficientNet-Lite0"), ("lite2", "EfficientNet-Lite2 (never trained through)")):
        for claim, a, b in REAL_PHOTO_CLAIMS:
            if a not in r["rows"] or b not in r["rows"]:
                continue
            ra, rb = r["rows"][a], r["rows"][b]
            gap = float(np.mean(ra["psnr"]) - np.mean(rb["psnr"]))
            draws = [x - y for x, y in zip(ra[f"{net}_draws"], rb[f"{net}_draws"])]
            found.append(verdict(claim, label, a, b, summary(ra[net]), summary(rb[net]), psnr_diff=gap,
                                 draw_diffs=draws, n_tiles=r["n"]))  # fmt: skip
    rule = (f"Agreement with the classifier's top-1 on the clean tile, mean over {r['n']} tiles and {r['draws']} noise "
            f"draws at sigma {r['sigma']:g}, per training seed; a difference counts beyond {Z:g} standard errors over "
            "the seeds. draw_diffs: the difference per noise draw (mean over seeds).")  # fmt: skip
    return write_claims(out, "claims2e.json", rule, found)
