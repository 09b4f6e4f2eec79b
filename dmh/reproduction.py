"""Did a run reproduce the published one? Two results folders compared, verdict by verdict and number by number.

`compare(run, reference)` pairs the answer's rows of both folders (`dmh.docs.answer_rows`, matched by what each row
compares, not by its sizes) and says for each whether the verdict is the same; when both folders ran the same preset
it also compares every number of every result file (the largest difference per file, and how many are identical or
within 0.01). A verdict that differs is a finding, not an error. `write` puts it in <run>/REPRODUCTION.md with the
evaluations the run computed and loaded (`dmh.evalcache`), and returns the one-line summary that `dmh reproduce`
prints at its end; `dmh compare RUN [--reference DIR]` does the same for any two runs (a knob run against the
preset's, a run against `docs/results/`).

Which numbers can differ between two runs of the same code and inputs, and why (`REASONS`): wall-clock times always;
CBM3D's outputs by ~1e-6 (bm3d does not repeat exactly, docs/ERRORS.md); evaluations run in one-thread worker
processes against a run with another worker or thread count by float rounding (the order of a convolution's sums).
Everything else is computed from the same kept weights and seeded noise, and is identical by design.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dmh.docs import DOCS, RESULT_FILES, answer_rows, difference_text
from dmh.report import markdown_table

__all__ = ["REASONS", "compare", "numbers", "same_settings", "reproduction_md", "write", "summary_line"]

#: (substring of a number's path, why it cannot be bit-identical between runs).
REASONS = (
    ("seconds", "wall-clock time"),
    ("minutes", "wall-clock time"),
    ("hours", "wall-clock time"),
    ("CBM3D", "bm3d repeats only to ~1e-6 between calls (docs/ERRORS.md)"),
)
WITHIN = 0.01
#: Preset fields that say how a run computes, not what it measures: the name, and the processes and threads (which
#: change numbers by float rounding only).
HOW_NOT_WHAT = ("name", "workers", "threads")


def _leaves(obj: Any, path: str = "") -> dict[str, float]:
    """Every number in a JSON object by its path ("rows/separate/30/metric"); config ("preset") and lists of
    strings are skipped."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k != "preset":
                out.update(_leaves(v, f"{path}/{k}" if path else str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(_leaves(v, f"{path}/{i}"))
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        out[path] = float(obj)
    return out


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def numbers(run: Path, reference: Path) -> dict[str, dict[str, Any]]:
    """Per result file present in both: {"identical", "within" (|difference| <= 0.01), "larger", "missing" (numbers
    of the reference the run lacks), "max": [path, reference value, run value] of the largest difference, "reasons":
    the reasons of `REASONS` that apply to the file's differing numbers}."""
    out = {}
    for name in RESULT_FILES:
        if not name.endswith(".json") or name == "timings.json":
            continue
        a_path, b_path = Path(reference) / name, Path(run) / name
        if not (a_path.is_file() and b_path.is_file()):
            continue
        ref, got = _leaves(json.loads(a_path.read_text())), _leaves(json.loads(b_path.read_text()))
        res: dict[str, Any] = {"identical": 0, "within": 0, "larger": 0, "missing": 0, "max": None, "reasons": []}
        worst = -1.0
        for key, a in ref.items():
            if key not in got:
                res["missing"] += 1
                continue
            b = got[key]
            if _same(a, b):
                res["identical"] += 1
                continue
            d = abs(a - b) if math.isfinite(a) and math.isfinite(b) else math.inf
            res["within" if d <= WITHIN else "larger"] += 1
            why = next((r for pat, r in REASONS if pat in key), None)
            if why and why not in res["reasons"]:
                res["reasons"].append(why)
            if d > worst:
                worst, res["max"] = d, [key, a, b]
        out[name] = res
    return out


def _preset(folder: Path) -> dict[str, Any] | None:
    """The preset a results folder ran with, as its result files record it."""
    for name in ("table2.json", "table1.json", "claims.json"):
        path = Path(folder) / name
        if path.is_file():
            p = json.loads(path.read_text()).get("preset")
            if isinstance(p, dict):
                return p
    return None


def same_settings(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two recorded presets measure the same: equal on every setting both record but `HOW_NOT_WHAT` (the
    published full tier ran under the name "cpu" before the default tier took it; settings added since are absent
    from older files)."""
    if a is None or b is None:
        return False
    return all(a[k] == b[k] for k in set(a) & set(b) if k not in HOW_NOT_WHAT)


def compare(run: Path, reference: Path = DOCS / "results") -> dict[str, Any]:
    """The answer's rows of `reference` beside `run`'s ({"rows": [{"claim", "comparison", "on", "published",
    "this run", "verdict_published", "verdict_run", "same"}]}), the rows only one of them has, every number when
    both ran the same preset ("numbers", else None), and the run's evaluations ({"computed", "loaded"})."""
    run, reference = Path(run), Path(reference)
    ref_rows = {r["key"]: r for r in answer_rows(reference)}
    run_rows = {r["key"]: r for r in answer_rows(run)}
    rows = []
    for key, r in ref_rows.items():
        g = run_rows.get(key)
        rows.append({"claim": r["claim"], "comparison": r["comparison"], "on": r["on"],
                     "published": difference_text(r), "this run": difference_text(g) if g else "-",
                     "verdict_published": r["verdict"], "verdict_run": g["verdict"] if g else None,
                     "same": g is not None and g["verdict"] == r["verdict"]})  # fmt: skip
    only_run = [f"{r['claim']}: {r['comparison']} ({r['on']})" for k, r in run_rows.items() if k not in ref_rows]
    evals_path = run / "evaluations.json"
    evals = json.loads(evals_path.read_text()) if evals_path.is_file() else {}
    ref_p, run_p = _preset(reference), _preset(run)
    names = [None if q is None else q.get("name") for q in (ref_p, run_p)]
    return {
        "run": str(run), "reference": str(reference), "presets": names, "rows": rows, "only_run": only_run,
        "numbers": numbers(run, reference) if same_settings(ref_p, run_p) else None,
        "evaluations": {k: sum(v.get(k, 0) for v in evals.values()) for k in ("computed", "loaded")},
    }  # fmt: skip


def summary_line(c: dict[str, Any]) -> str:
    """ "43 of 43 verdicts as published (412 numbers identical, 6 within 0.01, 0 further)": over the verdicts both
    runs have, with how many of the reference's this run did not compute (a run of some notebooks only)."""
    rows = [r for r in c["rows"] if r["verdict_run"] is not None]
    line = f"{sum(r['same'] for r in rows)} of {len(rows)} verdicts as published"
    if len(rows) < len(c["rows"]):
        line += f"; {len(c['rows']) - len(rows)} of the reference's verdicts not in this run"
    if c["numbers"] is not None:
        tot = {k: sum(f[k] for f in c["numbers"].values()) for k in ("identical", "within", "larger")}
        line += f" (same settings: {tot['identical']} numbers identical, {tot['within']} within {WITHIN:g}, "
        line += f"{tot['larger']} further apart)"
    return line


def reproduction_md(c: dict[str, Any]) -> str:
    """REPRODUCTION.md's text."""
    ref_preset, run_preset = c["presets"]
    parts = [
        "# Reproduction",
        f"This run (`{c['run']}`, preset {run_preset}) against `{c['reference']}` (preset {ref_preset}): "
        + summary_line(c)
        + ".",
        f"Evaluations: {c['evaluations']['computed']} computed, {c['evaluations']['loaded']} loaded from the "
        "evaluation cache.",
        "## Verdicts",
        markdown_table(
            [
                "claim",
                "comparison",
                "on (published)",
                "published",
                "this run",
                "verdict published",
                "this run's",
                "same",
            ],
            [
                [
                    r["claim"],
                    r["comparison"],
                    r["on"],
                    r["published"],
                    r["this run"],
                    r["verdict_published"],
                    r["verdict_run"] or "(no such row)",
                    "-" if r["verdict_run"] is None else "yes" if r["same"] else "**no**",
                ]
                for r in c["rows"]
            ],
        ),  # fmt: skip
    ]
    if c["only_run"]:
        parts.append("Rows of this run that the reference does not have: " + "; ".join(c["only_run"]) + ".")
    if c["numbers"] is not None:
        rows = []
        for name, f in c["numbers"].items():
            worst = "-" if f["max"] is None else f"{f['max'][0]}: {f['max'][1]:.6g} -> {f['max'][2]:.6g}"
            rows.append([name, f["identical"], f["within"], f["larger"], f["missing"], worst,
                         "; ".join(f["reasons"]) or ("-" if not f["larger"] + f["within"] else "float rounding "
                         "(thread or worker count), or a change of the code or inputs")])  # fmt: skip
        parts += ["## Every number (the same settings)",
                  markdown_table(["file", "identical", f"within {WITHIN:g}", "further", "missing", "largest difference",
                                  "why they can differ"], rows)]  # fmt: skip
    else:
        parts.append(f"The presets' settings differ ({ref_preset} and {run_preset}: another tier or other knobs), so "
                     "the tables measure on other sizes or values and only the verdicts are compared.")  # fmt: skip
    return "\n\n".join(parts) + "\n"


def write(run: Path, reference: Path = DOCS / "results") -> tuple[Path, str]:
    """Compare `run` with `reference`, write <run>/REPRODUCTION.md; returns (its path, the one-line summary)."""
    from dmh.checkpoint import atomic_write

    c = compare(run, reference)
    path = atomic_write(Path(run) / "REPRODUCTION.md", lambda tmp: tmp.write_text(reproduction_md(c)))
    return path, summary_line(c)
