"""README.md and docs/ as generated documents: every generated section is what `dmh.docs` writes from the
committed result files of docs/results/ (no hand edits, no stale numbers), every image link points to a file in the
repository, figures are small, and the README gives the answer first."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from dmh import docs, report

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]


def test_generated_sections_are_what_the_committed_results_give():
    expected = docs.expected_sections(ROOT)
    for path, sections in expected.items():
        found = docs.sections_in(path)
        for name, text in sections.items():
            assert name in found, f"{path.name} has no <!-- {name}:start --> section"
            assert found[name] == text.strip(), f"{path.name}'s {name} section is stale: run `dmh report --readme`"


def test_every_image_link_points_to_a_file_and_figures_are_small():
    for md in MARKDOWN:
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md.read_text()):
            assert (md.parent / target).is_file(), f"{md.name}: {target} is not in the repository"
    for fig in (ROOT / "docs").rglob("*.png"):
        assert fig.stat().st_size < 300_000, f"{fig} is {fig.stat().st_size:,} bytes"


def test_readme_gives_the_answer_first_and_stays_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 320
    start = lines.index("<!-- answer:start -->")
    assert start < 80 and "| claim |" in lines[start + 1]


def test_publish_and_refresh_write_sections_from_a_results_folder(tmp_path):
    results = tmp_path / "results" / "cpu"
    results.mkdir(parents=True)
    (results / "timings.json").write_text(json.dumps({"01_denoiser.ipynb": 120.0, "06_cross_task.ipynb": 6.0}))
    (results / "machine.txt").write_text("Produced here.\n")
    claim = {"claim": "(2) joint beats separate", "task": "A", "a": "joint (chosen)", "b": "separate", "subset": False,
             "diff": 0.03, "se": 0.01, "z": 3.0, "verdict": "held", "n_a": 3, "n_b": 3, "psnr_diff": -0.4}  # fmt: skip
    (results / "claims.json").write_text(json.dumps({"rule": "r", "claims": [claim]}))
    Image.new("RGB", (1800, 1200), "white").save(results / "06_claims.png")
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text("intro\n<!-- answer:start -->\nold\n<!-- answer:end -->\n<!-- minutes:start -->\n"
                                    "<!-- minutes:end -->\n<!-- minutes-default:start -->\n"
                                    "<!-- minutes-default:end -->\n<!-- picture:start -->\n<!-- picture:end -->\n")
    copied = docs.publish(results, root / "docs")
    assert {p.name for p in copied} == {"timings.json", "machine.txt", "claims.json", "06_claims.png"}
    docs.refresh(root)
    readme = (root / "README.md").read_text()
    assert "old" not in readme and "| (2) joint beats separate | joint (chosen) vs separate |" in readme
    assert "+3.00 ± 1.00 points top-1" in readme and "**held**" in readme and "total 2.1 min" in readme
    assert "(docs/RESULTS.md#every-verdict)" in readme  # the answer at a glance; every verdict in RESULTS.md
    results_md = (root / "docs" / "RESULTS.md").read_text()
    assert "## Every verdict" in results_md and "[tables](#06-claims-2-and-3-verdicts-over-seeds)" in results_md
    assert (root / "docs" / "figures" / "answer.png").is_file()
    assert "## 06 Claims 2 and 3" in results_md and "](figures/06_claims.png)" in results_md
    assert docs.sections_in(root / "README.md")["answer"] == docs.expected_sections(root)[root / "README.md"][
        "answer"].strip()  # fmt: skip
    with pytest.raises(FileNotFoundError, match="timings.json"):
        docs.publish(tmp_path, root / "docs")


def test_anchors_of_the_results_sections_exist():
    text = (ROOT / "docs" / "RESULTS.md").read_text()
    headings = {docs.anchor(h) for h in re.findall(r"^## (.+)$", text, re.M)} if text else set()
    for link in re.findall(r"docs/RESULTS\.md(#[a-z0-9-]+)", (ROOT / "README.md").read_text()):
        assert link in headings, link
    assert report.SECTIONS
