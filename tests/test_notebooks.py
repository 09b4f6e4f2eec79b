"""Every notebook runs headlessly with the `smoke` preset (papermill, the same code path as `dmh reproduce`), writes its
result files, and its executed copy then passes `pytest --nbval-lax` (cells marked NBVAL_CHECK_OUTPUT must print the
same tables again)."""

from __future__ import annotations

import json
import os
import re
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


#: Each notebook's knobs: literals in its parameters cell, None meaning the preset's value.
KNOBS = {"01": {"sigmas"}, "02": {"sigmas"}, "03": {"lams", "sigma", "seeds", "steps"},
         "04": {"sigmas", "lam", "seeds", "steps"}, "05": {"sigmas", "lam", "seeds", "steps"}, "06": {"sigmas"},
         "07": {"lam", "sigmas", "seeds"}}  # fmt: skip


def test_notebooks_walk_through_the_method():
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        names = set(re.findall(r"^(\w+) = ", params.source, re.M))
        assert KNOBS.get(name[:2], set()) <= names, (name, names)
        if name[:2] in KNOBS:
            markdown = [c for c in nb.cells if c.cell_type == "markdown"]
            assert len(markdown) >= 4, name
        if name[:2] in KNOBS and name[:2] != "02":  # 01 and 03-07 end with a generated "what this shows"
            assert any("What this shows" in c.source for c in nb.cells if c.cell_type == "markdown"), name
            assert "Markdown(report." in nb.cells[-1].source or "report.markdown(" in nb.cells[-1].source, name
    for name in ("03_lambda_ablation.ipynb", "04_joint_classification.ipynb"):
        code = "".join(c.source for c in nbformat.read(NOTEBOOKS / name, as_version=4).cells if c.cell_type == "code")
        assert "Cascade(" in code and "JointLoss(" in code, name
    setups = [c.source for n in NAMES for c in nbformat.read(NOTEBOOKS / n, as_version=4).cells
              if "study.setup(" in c.source]  # fmt: skip
    assert len(setups) == len(NAMES)  # the shared set-up is one call


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
    assert len(verdicts) == 11 and {c["verdict"] for c in verdicts} <= {"held", "did not hold", "within noise"}
    assert {c["task"] for c in verdicts} == {"A", "B", "C"}  # C: classifier C, never trained through
    assert t2["unseen"] == "fashion_item_resnet" and "metric_unseen_seeds" in t2["rows"]["separate"]["30"]
    c1 = json.loads((smoke / "claims1.json").read_text())["claims"]
    assert {c["a"] for c in c1} == {"released colour-blind"} and {c["sigma"] for c in c1} == {15.0, 25.0, 50.0}
    front = json.loads((smoke / "frontier.json").read_text())["paths"]
    assert set(front) == {"A", "B", "E"} and json.loads((smoke / "claims4m.json").read_text())["matched"]
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


def _papermill(name: str, out_root, **params) -> nbformat.NotebookNode:
    import papermill as pm

    out = out_root / f"run_{name}"
    pm.execute_notebook(str(NOTEBOOKS / name), str(out), parameters={"preset": "smoke", "out_root": str(out_root),
                        **params}, cwd=str(NOTEBOOKS), progress_bar=False)  # fmt: skip
    return nbformat.read(out, as_version=4)


def _files(folder) -> dict:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


def test_knobs_rerun_a_notebook_with_other_lambdas(smoke, tmp_path):
    """`-p lams` on 03 and `-p lam` on 04: the rows run at that lambda, trained here when not kept, in the knob run's
    own folder; the preset run's files and checkpoints stay as they were."""
    import shutil

    root = tmp_path / "results"
    shutil.copytree(smoke, root / "smoke")
    before = _files(root / "smoke")
    nb = _papermill("03_lambda_ablation.ipynb", root, lams=[0.05])
    abl = json.loads((root / "smoke" / "lams=0,0.004,0.02,0.05,0.25,0.5" / "ablation.json").read_text())
    assert 0.05 in [pt["lam"] for pt in abl["A"]["points"]] and 0.004 in [pt["lam"] for pt in abl["B"]["points"]]
    assert "lams = 0,0.004,0.02,0.05,0.25,0.5" in "".join(o.get("text", "") for c in nb.cells
                                                          for o in c.get("outputs", []))  # fmt: skip
    _papermill("04_joint_classification.ipynb", root, lam=0.05, sigmas=[30])
    t2 = json.loads((root / "smoke" / "lam=0.05_sigmas=30" / "table2.json").read_text())
    assert t2["lams"]["joint (chosen)"] == {"task": "A", "lam": 0.05, "chosen_by": "the notebook's lam"}
    assert list(t2["rows"]["joint (chosen)"]) == ["30"] and t2["preset"]["task_sigmas"] == [30.0]
    after = _files(root / "smoke")
    assert {k: after[k] for k in before} == before  # new runs were added beside, nothing replaced
    from dmh import cli

    cli.main(["report", "--folder", str(root / "smoke" / "lam=0.05_sigmas=30")])  # the report reads it too
    assert "Table 2" in (root / "smoke" / "lam=0.05_sigmas=30" / "REPORT.md").read_text()


def test_readme_papermill_examples_run_through_the_cli(smoke, tmp_path):
    """Every `papermill` line of the README, run as written by the papermill command line in a folder holding
    `notebooks/` and a smoke run in `results/smoke/` (papermill's -p passes '[15, 30]' as text: the notebooks parse
    it)."""
    import shutil
    from pathlib import Path

    readme = (NOTEBOOKS.parent / "README.md").read_text()
    lines = [ln.strip() for ln in readme.splitlines() if ln.strip().startswith("papermill ")]
    assert lines and any("'[15, 30]'" in ln for ln in lines)
    (tmp_path / "notebooks").symlink_to(NOTEBOOKS)
    shutil.copytree(smoke, tmp_path / "results" / "smoke")
    before = _files(tmp_path / "results" / "smoke")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for line in lines:
        res = subprocess.run(line, shell=True, cwd=tmp_path, capture_output=True, text=True, env=env)
        assert res.returncode == 0, (line, res.stderr[-3000:])
    t2 = json.loads((tmp_path / "results" / "smoke" / "lam=0.05_sigmas=15,30" / "table2.json").read_text())
    assert list(t2["rows"]["joint (chosen)"]) == ["15", "30"] and t2["lams"]["joint (chosen)"]["lam"] == 0.05
    after = _files(tmp_path / "results" / "smoke")
    assert {k: after[k] for k in before} == before
    compare = re.search(r"`\.venv/bin/dmh (compare [^`]+)`", readme.replace("\n", " ")).group(1)
    res = subprocess.run([str(Path(sys.executable).parent / "dmh"), *compare.split()], cwd=tmp_path,
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0 and "verdicts as published" in res.stdout, res.stderr[-2000:]
    assert (tmp_path / "results" / "smoke" / "lam=0.05_sigmas=15,30" / "REPRODUCTION.md").is_file()


def test_a_refused_knob_fails_the_cli_run_by_name_and_changes_no_file(smoke, tmp_path):
    import shutil
    from pathlib import Path

    shutil.copytree(smoke, tmp_path / "smoke")
    before = _files(tmp_path)
    papermill = str(Path(sys.executable).parent / "papermill")
    for knob, value in (("sigmas", "[]"), ("sigmas", "[30, 30]"), ("lam", "0")):
        res = subprocess.run([papermill, str(NOTEBOOKS / "04_joint_classification.ipynb"), str(tmp_path / "x.ipynb"),
                              "-p", "preset", "smoke", "-p", "out_root", str(tmp_path), "-p", knob, value],
                             cwd=NOTEBOOKS, capture_output=True, text=True)  # fmt: skip
        assert res.returncode != 0 and f"KnobError: {knob}: " in res.stderr + res.stdout, res.stderr[-2000:]
        (tmp_path / "x.ipynb").unlink(missing_ok=True)
        assert _files(tmp_path) == before


def test_missing_earlier_results_name_the_notebook(tmp_path):
    with pytest.raises(SystemExit):
        run_notebooks("smoke", tmp_path, start=6)
    executed = nbformat.read(tmp_path / "smoke" / "06_cross_task.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.output_type == "error"]
    assert errors and "04_joint_classification.ipynb" in errors[0]["evalue"]


def test_the_explorer_runs_first_on_an_empty_results_folder(tmp_path):
    """08, the first notebook a visitor opens, needs no earlier notebook: the sweep's runs are made (kept ones copied
    at cpu scale), 03's choice is scored here, and the zoom-ins fall back on the published ones."""
    nb = _papermill("08_explorer.ipynb", tmp_path)
    out = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "one update:" in out and "zoom-ins: ['barbara'" in out
    assert (tmp_path / "smoke" / "ablation.json").is_file()
