"""The reproduction check (`dmh.reproduction`, `dmh compare`): verdicts paired by what they compare, every number of
the same preset counted, a differing verdict reported (not raised)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from dmh import reproduction
from dmh.docs import DOCS, answer_rows

PUBLISHED = DOCS / "results"


def _copy(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(PUBLISHED, run)
    return run


def test_the_published_run_reproduces_itself(tmp_path):
    run = _copy(tmp_path)
    n = len(answer_rows(PUBLISHED))
    path, line = reproduction.write(run)
    assert line.startswith(f"{n} of {n} verdicts as published (same settings: ") and " 0 within 0.01, 0 further" in line
    assert path == run / "REPRODUCTION.md" and "## Every number (the same settings)" in path.read_text()


def test_a_changed_verdict_and_number_are_reported(tmp_path):
    run = _copy(tmp_path)
    claims = json.loads((run / "claims.json").read_text())
    claims["claims"][0]["verdict"] = "did not hold"
    (run / "claims.json").write_text(json.dumps(claims))
    t2 = json.loads((run / "table2.json").read_text())
    t2["rows"]["separate"]["30"]["metric"] += 0.004
    t2["rows"]["CBM3D"]["30"]["psnr_subset"] += 1.0
    (run / "table2.json").write_text(json.dumps(t2))
    c = reproduction.compare(run)
    n = len(c["rows"])
    assert sum(r["same"] for r in c["rows"]) == n - 1
    f = c["numbers"]["table2.json"]
    assert f["within"] == 1 and f["larger"] == 1 and f["max"][0] == "rows/CBM3D/30/psnr_subset"
    assert any("bm3d" in r for r in f["reasons"])
    assert reproduction.summary_line(c).startswith(f"{n - 1} of {n} verdicts as published")
    assert "| **no** |" in reproduction.reproduction_md(c)


def test_runs_of_other_settings_compare_verdicts_only(tmp_path):
    from dmh.presets import PRESETS

    run = _copy(tmp_path)
    t = json.loads((run / "table2.json").read_text())
    t["preset"]["name"] = "full"  # a name alone does not make other settings: the full tier is the published one
    (run / "table2.json").write_text(json.dumps(t))
    assert reproduction.compare(run)["numbers"] is not None
    t["preset"] = {**PRESETS["cpu"].asdict(), "name": "cpu"}  # the default tier measures on smaller sets
    (run / "table2.json").write_text(json.dumps(t))
    c = reproduction.compare(run)
    assert c["numbers"] is None and "only the verdicts are compared" in reproduction.reproduction_md(c)


def test_the_full_preset_is_the_published_evidence():
    """`make reproduce PRESET=full` measures what docs/results/ holds: every setting the published run recorded."""
    from dmh.presets import PRESETS

    published = json.loads((PUBLISHED / "table2.json").read_text())["preset"]
    assert reproduction.same_settings(published, PRESETS["full"].asdict())
    assert not reproduction.same_settings(published, PRESETS["cpu"].asdict())


def test_dmh_compare_prints_the_line_as_the_readme_shows(tmp_path):
    run = _copy(tmp_path)
    res = subprocess.run([str(Path(sys.executable).parent / "dmh"), "compare", str(run)], capture_output=True,
                         text=True)  # fmt: skip
    assert res.returncode == 0 and "verdicts as published" in res.stdout and (run / "REPRODUCTION.md").is_file()


def test_a_run_of_04_alone_compares_the_verdicts_of_its_tables(tmp_path):
    """A knob run of 04 has Table 2 (and its DnCNN rows) but no claims files: its claim-(2) verdicts are computed from
    the tables by 06's rule (the published claims.json's rows for Table 2's comparisons, number for number), and the
    line counts only the verdicts both runs have."""
    run = tmp_path / "lam_run"
    run.mkdir()
    for name in ("table2.json", "table2_dncnn.json"):
        shutil.copy(PUBLISHED / name, run / name)
    t2 = json.loads((run / "table2.json").read_text())
    del t2["rows"]["cross-task"]  # 04 alone may lack 06's rows: comparisons of absent rows are left out
    (run / "table2.json").write_text(json.dumps(t2))
    published = {r["key"]: r for r in answer_rows(PUBLISHED)}
    derived = answer_rows(run)
    assert {r["file"] for r in derived} == {"claims.json", "claims_dncnn.json"}
    assert {r["key"][4] for r in derived} == {"A", "C"} and all(r["key"][2] != "cross-task" for r in derived)
    for r in derived:
        want = published[r["key"]]
        assert [r[k] for k in ("diff", "se", "psnr", "verdict")] == [want[k] for k in ("diff", "se", "psnr", "verdict")]
    c = reproduction.compare(run)
    n, total = len(derived), len(published)
    assert reproduction.summary_line(c).startswith(
        f"{n} of {n} verdicts as published; {total - n} of the reference's verdicts not in this run")
    assert not list(run.glob("claims*.json"))  # computed, never written into the run
