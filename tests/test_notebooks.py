"""Every notebook runs headlessly with the `smoke` preset (papermill, the same code path as `dmh reproduce`), writes its
result files, and its executed copy then passes `pytest --nbval-lax` (cells marked NBVAL_CHECK_OUTPUT must print the
same tables again)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

from dmh.notebooks import NOTEBOOKS, run_notebooks

pytestmark = pytest.mark.slow
NAMES = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_are_numbered_clean_and_parameterised():
    assert [n[:2] for n in NAMES] == [f"{i:02d}" for i in range(1, len(NAMES) + 1)] and len(NAMES) == 8
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name} is stored with outputs"
        params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, name
        assert 'preset = "cpu"' in params[0].source  # the cpu defaults; papermill injects others
        assert "import" not in params[0].source  # literals only
        assert any("NBVAL_CHECK_OUTPUT" in c.source for c in code) or name.startswith("08"), name


def test_smoke_run_writes_results_and_report(smoke):
    for name in NAMES:
        assert (smoke / name).is_file()
    for f in ("table1.json", "task_noise.json", "table2.json", "table3.json", "ablation.json", "claims.json",
              "imagenet20.json", "texture.json", "eff_ablation.json", "claims4.json", "timings.json"):  # fmt: skip
        json.loads((smoke / f).read_text())
    t2 = json.loads((smoke / "table2.json").read_text())
    assert set(t2["rows"]) == {"noisy", "CBM3D", "separate", "joint (paper)", "joint (chosen)", "cross-task"}
    assert list(t2["rows"]["joint (paper)"]) == ["30", "60"] and t2["seeds"]["separate"] == 2
    assert len(t2["rows"]["separate"]["30"]["metric_seeds"]) == 2 and t2["lams"]["cross-task"]["task"] == "B"
    abl = json.loads((smoke / "ablation.json").read_text())
    assert [len(pt["psnr"]) for pt in abl["A"]["points"]] == [2] * 5 and "rule" in abl["A"]["chosen"]
    verdicts = json.loads((smoke / "claims.json").read_text())["claims"]
    assert len(verdicts) == 8 and {c["verdict"] for c in verdicts} <= {"held", "did not hold", "within noise"}
    tex = json.loads((smoke / "texture.json").read_text())["rows"]
    assert {r["method"] for r in tex} >= {"separate", "joint (paper)", "joint (chosen)"}
    assert {r["seed"] for r in tex if r["method"] == "separate"} == {0, 1}  # one denoiser per seed
    c4 = json.loads((smoke / "claims4.json").read_text())["claims"]
    assert {c["measure"] for c in c4} == {"gms", "ssim"} and all("psnr_diff" in c for c in c4)
    report = (smoke / "REPORT.md").read_text()
    for title in ("Table 1", "Table 2", "Table 3", "ablation", "Cross-task", "Claims", "Texture", "ImageNet-20",
                  "Claim 4", "EfficientNet-Lite0 (validation crops)"):  # fmt: skip
        assert title in report
    assert list(smoke.glob("*.png"))


def test_executed_notebooks_pass_nbval(smoke):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider"]
    cmd += [str(smoke / n) for n in NAMES]
    res = subprocess.run(cmd, cwd=NOTEBOOKS, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "passed" in res.stdout and "failed" not in res.stdout


def test_missing_earlier_results_name_the_notebook(tmp_path):
    with pytest.raises(SystemExit):
        run_notebooks("smoke", tmp_path, start=6)
    executed = nbformat.read(tmp_path / "smoke" / "06_cross_task.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.output_type == "error"]
    assert errors and "04_joint_classification.ipynb" in errors[0]["evalue"]
