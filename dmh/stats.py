"""Error bars and verdicts over training seeds: the rules are fixed here, before any number is seen.

A fine-tuned row of the study is trained with several seeds (`Preset.seeds`); every row is evaluated on the same
noisy pixels, so a difference between two rows is a paired comparison in which only the training seed varies. Its
standard error is that of a difference of two independent means, sqrt(s_a^2 / n_a + s_b^2 / n_b) with sample standard
deviations (ddof = 1); rows without a seed (noisy input, CBM3D) have none. The spread of the test images themselves is
not in it: every row sees the same images.

Verdict of a claim "row a beats row b" (higher is better):

- "held" when mean(a) - mean(b) > 2 SE,
- "did not hold" when mean(a) - mean(b) < -2 SE,
- "within noise" otherwise, and whenever a fine-tuned row has fewer than 2 seeds (its spread is unknown).

The lambda of a "joint (chosen)" row (`choose_lambda`): among the lambdas > 0 whose mean validation PSNR is within
`PSNR_TOLERANCE_DB` of the separate row's (lambda = 0), the one with the best mean validation task metric; ties go to
the smaller lambda. Validation data only: the test split never takes part in a choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["summary", "compare", "choose_lambda", "PSNR_TOLERANCE_DB", "MIN_SEEDS"]

#: A difference counts only beyond this many standard errors.
Z = 2.0
#: Fewer seeds than this give no spread: the verdict is "within noise".
MIN_SEEDS = 2
#: The chosen lambda keeps validation PSNR within this many dB of the separate row's.
PSNR_TOLERANCE_DB = 0.5


def summary(values: Sequence[float], seeded: bool = True) -> dict[str, Any]:
    """{"mean", "std", "n", "se", "values"} of one row over its seeds. `seeded=False` (noisy, CBM3D: no training)
    gives std = se = 0 for any n; a seeded row with one value has std = se = nan."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("summary needs at least one value")
    n = len(vals)
    mean = sum(vals) / n
    if not seeded:
        std = 0.0
    elif n < 2:
        std = math.nan
    else:
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    se = 0.0 if not seeded else std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "se": se, "values": vals}


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Verdict of "a beats b" from two `summary` dicts: {"diff", "se", "z", "verdict"} (module docstring's rule)."""
    diff = a["mean"] - b["mean"]
    se = math.sqrt(a["se"] ** 2 + b["se"] ** 2)
    if math.isnan(se):
        return {"diff": diff, "se": se, "z": math.nan, "verdict": "within noise"}
    if se == 0:
        z = math.inf if diff > 0 else -math.inf if diff < 0 else 0.0
    else:
        z = diff / se
    verdict = "held" if z > Z else "did not hold" if z < -Z else "within noise"
    return {"diff": diff, "se": se, "z": z, "verdict": verdict}


def choose_lambda(points: Sequence[dict[str, Any]], tolerance_db: float = PSNR_TOLERANCE_DB) -> dict[str, Any]:
    """The lambda of the "joint (chosen)" row from validation points [{"lam", "psnr": [per seed], "metric": [per
    seed]}, ...] that include lam = 0. Returns {"lam" (None when no lambda > 0 is within the tolerance), "rule",
    "separate_psnr", "candidates"}."""
    by_lam = {float(p["lam"]): p for p in points}
    if 0.0 not in by_lam:
        raise ValueError("choose_lambda needs the separate point (lam = 0)")

    def mean(v: Sequence[float]) -> float:
        return sum(v) / len(v)

    sep = mean(by_lam[0.0]["psnr"])
    cands = [lam for lam, p in sorted(by_lam.items()) if lam > 0 and mean(p["psnr"]) >= sep - tolerance_db]
    best = max(cands, key=lambda lam: (mean(by_lam[lam]["metric"]), -lam), default=None)
    rule = (f"best mean validation metric among lambda > 0 with mean validation PSNR within {tolerance_db:g} dB of "
            "separate (lambda = 0); ties to the smaller lambda")  # fmt: skip
    return {"lam": best, "rule": rule, "separate_psnr": sep, "candidates": cands}
