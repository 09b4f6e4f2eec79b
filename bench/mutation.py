"""Summarise `make mutate` (mutmut over the thin core, `[tool.mutmut]` in pyproject.toml) into bench/MUTATION.md: the
score over the mutants that are not equivalent, the survivors, and the ones judged equivalent with the reason.

    .venv/bin/python bench/mutation.py [SECONDS]      # after `mutmut run`; SECONDS: how long the run took

A mutant is *killed* when a selected fast test fails on it, or *timeout* when its tests ran past their limit (e.g. a
training loop that no longer stops; counted as detected once `recheck` has run it again without mutmut's fork);
*survived* when every test passed; *no tests* when no selected test runs its function (counted as not killed).
`EQUIVALENT` lists survivors that no test can kill because the mutated program behaves the same, each with the
reason (judged by reading the mutant, `mutmut show <name>`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).parent / "mutmut"

_NCHW_H = "shape[+2] is shape[2], which is shape[-2] (H) of the 4-D NCHW tensor `to_nchw` returns"
_DC = "the mean changes only frequency 0, which no cutoff >= 0 (the documented range, 0.5 = Nyquist) counts"
_JOBLIB = "the cached function ignores `job` and `compute` (`ignore=` in dmh.evalcache._memory): only the key is hashed"
_F64 = "ndarray.astype(None) converts to float64, numpy's default, as astype(np.float64)"
_RANGE = "scikit-image takes data_range 255 from the uint8 inputs when it is not given"
_MISSING_OK = "missing_ok matters only for a file deleted between the glob and the unlink by another process"
_ZERO = ("zeroing the gradients instead of setting them to None gives the same step: every parameter the optimizer "
         "holds gets a gradient from the next backward, and one that never does keeps None either way")
_INPLACE = "an in-place ReLU only reuses the memory: the same values (autograd would refuse an unsafe in-place use)"
_BIAS = "bias=None is falsy: a convolution without bias, as bias=False"
_BAR = "only the progress bar's display: its total shown as an open count (the numbers and files are the same)"

#: mutant name -> why it behaves as the original (no test can tell them apart).
EQUIVALENT: dict[str, str] = {
    "dmh.metrics.x_high_frequency_ratio__mutmut_12": _NCHW_H,
    "dmh.metrics.x_high_frequency_ratio__mutmut_31": _DC,
    "dmh.metrics.x_psnr__mutmut_3": _F64,
    "dmh.metrics.x_psnr__mutmut_5": _F64,
    "dmh.metrics.x_psnr__mutmut_23": 'float("INF") is float("inf")',
    "dmh.metrics.x_ssim__mutmut_34": _RANGE,
    "dmh.metrics.x_ssim__mutmut_41": _RANGE,
    "dmh.metrics.x_topk_accuracy__mutmut_31": "topk's default dim is -1, which is dim 1 of the checked 2-D logits",
    "dmh.evaluate.x_evaluate_many__mutmut_23": _JOBLIB,
    "dmh.evaluate.x_evaluate_many__mutmut_24": _JOBLIB,
    "dmh.evaluate.x__run_keyed__mutmut_4": "a job's key is None only when `evalcache.store()` is None (the cache "
    "off in this process and its workers, which inherit DMH_CACHE), so `store()` is None either way",
    "dmh.stats.x_summary__mutmut_28": "unseeded rows have std 0.0, so std / sqrt(n) is the same 0.0",
    "dmh.training.x__prune__mutmut_12": _MISSING_OK,
    "dmh.training.x__prune__mutmut_13": _MISSING_OK,
    "dmh.training.x_train__mutmut_211": _BAR,
    "dmh.training.x_train__mutmut_220": _BAR,
    "dmh.training.x_train__mutmut_222": _BAR,
    "dmh.training.x_train__mutmut_223": "`stop = None` is falsy as `stop = False` (the loop tests `not stop`)",
    "dmh.training.x_train__mutmut_237": _ZERO,
    "dmh.training.x_train__mutmut_238": _ZERO,
    "dmh.metrics.x_ssim__mutmut_38": "use_sample_covariance=None is falsy, as False",
    "dmh.metrics.x_ssim__mutmut_44": "1.5 is scikit-image's default sigma of the Gaussian window",
    "dmh.metrics.xǁConfusionMatrixǁiou__mutmut_27": 'float("NAN") is float("nan")',
    "dmh.metrics.x_perceptual_distance__mutmut_1": "the default batch size (16 -> 17) changes how the mean is "
    "batched, not its value (the batch_size=2 test gives the same number)",
    "dmh.losses.xǁJointLossǁforward__mutmut_20": 'float("NAN") is float("nan")',
    "dmh.evaluate.x_evaluate_many__mutmut_71": "`todo = None` is falsy as `todo = []` (only `if todo:` reads it)",
    "dmh.nets.xǁDenoiseNetǁforward__mutmut_35": "shape[+2:] is shape[2:], the (H, W) of the checked 4-D input",
    **{f"dmh.nets.x__conv_bn_relu__mutmut_{n}": _INPLACE for n in (7, 24, 25)},
    **{f"dmh.nets.xǁBottleneckǁ__init____mutmut_{n}": _INPLACE for n in (29, 30, 45, 46)},
    "dmh.nets.x__conv_bn_relu__mutmut_13": _BIAS,
    **{f"dmh.nets.xǁBottleneckǁ__init____mutmut_{n}": _BIAS for n in (21, 35, 50)},
}


def results() -> dict[str, str]:
    """{mutant name: status} of the last `mutmut run` (in ROOT/mutants)."""
    out = subprocess.run([str(MUTMUT), "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True)
    return dict(re.findall(r"^\s*([\w.]+__mutmut_\d+): (.+)$", out.stdout, re.M))


def diff(name: str) -> str:
    """The mutated lines of `name` ("- old / + new"), one line."""
    out = subprocess.run([str(MUTMUT), "show", name], cwd=ROOT, capture_output=True, text=True).stdout
    lines = [ln[2:].strip() for ln in out.splitlines() if ln.startswith(("- ", "+ "))]
    return " -> ".join(lines)[:160].replace("|", "\\|")


def recheck(name: str, tests_by_function: dict[str, list[str]], limit: float = 90.0) -> str:
    """A timed-out mutant's status from its covering tests (`tests_by_function`: mutmut's stats) run directly in
    mutants/, without mutmut's fork: "killed" when one fails, "survived" when all pass, "timeout" past `limit` s."""
    tests = tests_by_function[name.rsplit("__mutmut_", 1)[0]]
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow", *tests]
    env = {**os.environ, "MUTANT_UNDER_TEST": name, "DMH_CACHE": "off"}
    try:
        r = subprocess.run(cmd, cwd=ROOT / "mutants", env=env, capture_output=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return "timeout"
    return {0: "survived", 1: "killed"}.get(r.returncode, f"error {r.returncode}")


def main(seconds: float | None = None) -> str:
    status = results()
    if not status:
        raise SystemExit("no mutmut results: run `make mutate` (mutmut run) first")
    # mutmut forks each mutant's tests; a forked child can wait forever on a lock copied from the parent, and mutmut
    # then reports a timeout (counted as detected). Every timeout is run again directly, which decides it.
    timed_out = sorted(n for n, s in status.items() if s == "timeout")
    if timed_out:
        stats = json.loads((ROOT / "mutants" / "mutmut-stats.json").read_text())
        status.update({n: recheck(n, stats["tests_by_mangled_function_name"]) for n in timed_out})
    rechecked = Counter(status[n] for n in timed_out)
    counts = Counter(status.values())
    survivors = sorted(n for n, s in status.items() if s == "survived")
    equivalent = [n for n in survivors if n in EQUIVALENT]
    live = [n for n, s in status.items() if s not in ("killed", "timeout", "not checked") and n not in EQUIVALENT]
    unchecked = counts.get("not checked", 0)  # a run stopped before them
    scored = len(status) - len(equivalent) - unchecked
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    score = killed / scored if scored else 0.0
    per: Counter[tuple[str, str]] = Counter()
    for n, s in status.items():
        per[(n.split(".x")[0], s)] += 1  # dmh.stats.x_summary__mutmut_5, dmh.nets.xǁDenoiseNetǁ__init____mutmut_1
    lines = [
        "# Mutation testing of the thin core (`make mutate`)",
        "",
        "Generated by `bench/mutation.py` from the last `make mutate` (mutmut, `[tool.mutmut]` in pyproject.toml: the",
        "core modules against their fast tests, caches off)."
        + (f" The run took {seconds / 60:.1f} min." if seconds else ""),
        "",
        f"**Score: {killed} of {scored} non-equivalent mutants checked were detected ({100 * score:.1f} %)**; "
        + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        + f"; {len(equivalent)} survivors judged equivalent"
        + (f"; {unchecked} of {len(status)} mutants not checked (the run was stopped)." if unchecked else ".")
        + (f" mutmut's {len(timed_out)} timeouts, run again without its fork: "
           + ", ".join(f"{v} {k}" for k, v in sorted(rechecked.items())) + "." if timed_out else ""),
        "",
        "| module | mutants | killed | timeout | survived | no tests | not checked |",
        "|---|---|---|---|---|---|---|",
    ]
    for mod in sorted({m for m, _ in per}):
        lines.append(f"| {mod} | {sum(v for (m, _), v in per.items() if m == mod)} | {per[(mod, 'killed')]} | "
                     f"{per[(mod, 'timeout')]} | {per[(mod, 'survived')]} | {per[(mod, 'no tests')]} | "
                     f"{per[(mod, 'not checked')]} |")  # fmt: skip
    lines += ["", "## Not killed (survived or no tests), not judged equivalent", ""]
    lines += [f"- `{n}` ({status[n]}): {diff(n)}" for n in sorted(live)] or ["none"]
    lines += ["", "## Survivors judged equivalent", ""]
    lines += [f"- `{n}`: {EQUIVALENT[n]}" for n in equivalent] or ["none"]
    text = "\n".join(lines) + "\n"
    (ROOT / "bench" / "MUTATION.md").write_text(text)
    return (f"{killed} of {scored} non-equivalent mutants checked were detected ({100 * score:.1f} %) -> "
            "bench/MUTATION.md")  # fmt: skip


if __name__ == "__main__":
    print(main(float(sys.argv[1]) if len(sys.argv) > 1 else None))
