"""The generated parts of README.md and docs/: written from the result files, never typed.

`publish(results)` copies a `make reproduce` run's result files (JSON, timings, machine line) into docs/results/
and its figures, shrunk to under 300 KB, into docs/figures/; `refresh()` then writes every generated section from
those committed files: docs/RESULTS.md (every table and figure) and, in README.md, the answer (claim by claim), the
minutes per notebook and the first picture. `expected_sections()` is what a test compares with the files, so no
number in them can be typed by hand or go stale. `dmh report --readme README.md` runs both.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from dmh import report
from dmh.layout import ROOT

__all__ = [
    "DOCS",
    "RESULT_FILES",
    "anchor",
    "shrink",
    "answer_rows",
    "difference_text",
    "HEADLINE",
    "answer_md",
    "verdicts_md",
    "answer_figure",
    "minutes_md",
    "publish",
    "publish_default",
    "refresh",
    "expected_sections",
]

DOCS = ROOT / "docs"
#: What `publish` copies from a results folder into docs/results/ (the small files).
RESULT_FILES = ("machine.txt", "timings.json", *dict.fromkeys(name for _, name, _, _ in report.SECTIONS))
#: Figures copied (shrunk) into docs/figures/ besides the report's own when the results folder has them (the
#: explorer's screenshot comes from the browser test's smoke folder: `publish` keeps the committed one otherwise).
EXTRA_FIGURES = ("01_kodim23_sigma25.png", "08_explorer_browser.png")
MAX_FIGURE_BYTES = 300_000
_MARK = re.compile(r"(<!-- (?P<name>[a-z0-9-]+):start -->\n).*?(<!-- (?P=name):end -->)", re.S)


def _load(folder: Path, name: str) -> Any:
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def _table_claims(folder: Path, name: str) -> list[dict[str, Any]]:
    """The verdict rows of claims (2) and (3) (claims.json) or of claim (2) with another base (claims_<short>.json):
    the file's when `folder` has it; otherwise, for a folder with the tables but not the file (a knob run of 04 or 05
    alone), computed from its tables by the rule 06 applies (`dmh.study.verdicts.table_claims`), for the comparisons
    whose rows the tables hold, and written nowhere."""
    loaded = _load(folder, name)
    if loaded is not None:
        return loaded.get("claims", [])
    if name == "claims.json":
        tables = [t for t in (_load(folder, "table2.json"), _load(folder, "table3.json")) if t is not None]
        if not tables:
            return []
        from dmh.study.verdicts import CLAIMS, UNSEEN_CLAIMS, table_claims

        def held(t: dict[str, Any], comps: tuple[tuple, ...]) -> list[tuple]:
            return [c for c in comps if c[1] in t["rows"] and c[2] in t["rows"]]

        return [c for t in tables for c in table_claims(t, None, held(t, CLAIMS), held(t, UNSEEN_CLAIMS))]
    from dmh.study.other_denoisers import OTHER_BASES, other_table_claims

    base = next((b for b, (_, short) in OTHER_BASES.items() if name == f"claims_{short}.json"), None)
    table = None if base is None else _load(folder, f"table2_{OTHER_BASES[base][1]}.json")
    return [] if table is None else other_table_claims(table, base)


def anchor(title: str) -> str:
    """The GitHub anchor of a "## title" heading of docs/RESULTS.md."""
    return "#" + re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def _section(result_file: str) -> str:
    return anchor(next(t for t, name, _, _ in report.SECTIONS if name == result_file))


def answer_rows(folder: Path) -> list[dict[str, Any]]:
    """Every verdict of the answer, from the claims files of a results folder (claims (2) and (3) from its tables when
    the folder has them without claims.json: `_table_claims`), in the answer's order: {"key" (what
    identifies the comparison across runs and tiers), "claim", "comparison", "on", "diff", "se", "scale", "unit",
    "psnr" (the two rows' PSNR difference, dB, or None), "verdict", "file"}."""
    rows: list[dict[str, Any]] = []

    def add(file: str, c: dict[str, Any], comparison: str, on: str, scale: float, unit: str, key: tuple) -> None:
        claim = "(1) a strong denoiser" if file == "claims1.json" else c["claim"]
        rows.append({"key": (file, *key), "claim": claim,
                     "comparison": comparison, "on": on, "diff": c["diff"], "se": c["se"], "scale": scale,
                     "unit": unit, "psnr": c.get("psnr_diff"), "verdict": c["verdict"], "file": file})  # fmt: skip

    for c in (_load(folder, "claims1.json") or {}).get("claims", []):
        add(
            "claims1.json",
            c,
            f"{c['a']} vs CBM3D, sigma {c['sigma']:g}",
            "full TEST photos",
            1,
            "dB",
            (c["a"], c["sigma"]),
        )
    nets = {"A": "classifier A", "B": "segmenter B", "C": "classifier C (never trained through)"}
    for file in ("claims.json", "claims_dncnn.json"):  # claims (2) and (3); (2) with the field's denoiser
        for c in _table_claims(folder, file):
            unit = "points top-1" if c["task"] in ("A", "C") else "points mean IoU"
            where = "CBM3D subset" if c.get("subset") else "test set"
            add(file, c, f"{c['a']} vs {c['b']}", f"{nets[c['task']]}, {where}", 100, unit,
                (c["claim"], c["a"], c["b"], c["task"], bool(c.get("subset"))))  # fmt: skip
    for c in (_load(folder, "claims2e.json") or {}).get("claims", []):
        add(
            "claims2e.json",
            c,
            f"{c['a']} vs {c['b']}",
            f"{c['task']}, {c['n_tiles']} tiles",
            100,
            "points agreement",
            (c["claim"], c["a"], c["b"], c["task"]),
        )
    paths = {"A": "items (A's sweep)", "B": "scenes (B's sweep)", "E": "photos (EfficientNet-Lite0's sweep)"}
    for c in (_load(folder, "claims4m.json") or {}).get("claims", []):
        point = c["operating_point"]
        add(
            "claims4m.json",
            c,
            f"{c['a']} vs separate ({point})",
            paths.get(c["task"], c["task"]),
            1,
            "",
            (c["claim"], point, c["task"]),
        )
    for c in (_load(folder, "claims4.json") or {}).get("claims", []):
        add(
            "claims4.json",
            c,
            f"{c['a']} vs {c['b']}",
            "TEST photos (EfficientNet-Lite0 rows)",
            1,
            "",
            (c["claim"], c["a"], c["b"]),
        )
    return rows


def difference_text(row: dict[str, Any]) -> str:
    """An answer row's difference ± standard error in its unit ("+3.26 ± 0.10 points top-1")."""
    if row["unit"]:
        return f"{row['scale'] * row['diff']:+.2f} ± {row['scale'] * row['se']:.2f} {row['unit']}"
    return f"{row['diff']:+.4f} ± {row['se']:.4f}"


#: The answer at a glance: one comparison per claim and path (keys of `answer_rows`), chosen 2026-12-06 by what each
#: claim says, whatever its verdict: claim (1) the blind model at the middle sigma; claim (2) the joint denoiser at
#: the chosen lambda against separate through each network (A, B, C never trained through, the photos through Lite0
#: and Lite2 never trained through) and against CBM3D through A; claim (3) cross-task through A and B; claim (4) the
#: perceptual distance through an unseen network at the matched operating point, on each path; and claim (2) with the
#: field's denoiser (DnCNN) through A and C.
HEADLINE = (
    ("claims1.json", "released colour-blind", 25.0),
    ("claims.json", "(2) joint beats separate", "joint (chosen)", "separate", "A", False),
    ("claims.json", "(2) joint beats CBM3D", "joint (chosen)", "CBM3D", "A", True),
    ("claims.json", "(2) joint beats separate", "joint (chosen)", "separate", "B", False),
    ("claims.json", "(2) joint's gain carries to an unseen classifier", "joint (chosen)", "separate", "C", False),
    ("claims2e.json", "(2) joint beats separate on real photos", "joint (chosen)", "separate", "EfficientNet-Lite0"),
    ("claims2e.json", "(2) joint beats separate on real photos", "joint (chosen)", "separate",
     "EfficientNet-Lite2 (never trained through)"),
    ("claims.json", "(3) cross-task beats separate", "cross-task", "separate", "A", False),
    ("claims.json", "(3) cross-task beats separate", "cross-task", "separate", "B", False),
    ("claims4m.json", "(4) joint keeps more texture: perceptual distance", "matched PSNR", "A"),
    ("claims4m.json", "(4) joint keeps more texture: perceptual distance", "matched PSNR", "B"),
    ("claims4m.json", "(4) joint keeps more texture: perceptual distance", "matched PSNR", "E"),
    ("claims_dncnn.json", "(2) with DnCNN as the denoiser: joint beats separate", "joint (chosen)", "separate", "A",
     False),
    ("claims_dncnn.json", "(2) with DnCNN as the denoiser: joint's gain carries to an unseen classifier",
     "joint (chosen)", "separate", "C", False),
)  # fmt: skip
RULE = ("A difference counts beyond 2 standard errors: over training seeds for fine-tuned rows (3 seeds at cpu scale), "
        "over photos for claim (1); \"within noise\" otherwise.")  # fmt: skip


def _psnr_text(r: dict[str, Any]) -> str:
    return "-" if r["psnr"] is None else f"{r['psnr']:+.2f} dB"


def answer_md(folder: Path, default: Path | None = None) -> str:
    """The answer at a glance: the `HEADLINE` rows of `folder` (the full tier): claim, comparison, difference ±
    standard error, its PSNR cost (the two rows' PSNR difference) and verdict, and whether the default tier's
    published run (`default`, default folder/default: its claims files) reached the same verdict."""
    rows = {r["key"]: r for r in answer_rows(folder)}
    if not rows:
        return "No claim verdicts in the result files yet: run `make reproduce`."
    default = folder / "default" if default is None else default
    tier = {r["key"]: r["verdict"] for r in answer_rows(default)} if default.is_dir() else {}
    table = report.markdown_table(
        ["claim", "comparison", "on", "difference ± SE", "PSNR cost", "verdict", "default tier"],
        [[r["claim"], r["comparison"], r["on"], difference_text(r), _psnr_text(r), f"**{r['verdict']}**",
          "-" if key not in tier else "same" if tier[key] == r["verdict"] else f"{tier[key]}"]
         for key in HEADLINE if (r := rows.get(key))],
    )  # fmt: skip
    return (table + "\n\n" + RULE + " Every verdict, and the evidence behind each: [docs/RESULTS.md]"
            "(docs/RESULTS.md#every-verdict).")  # fmt: skip


def verdicts_md(folder: Path, link: str = "") -> str:
    """Every verdict of the result files (`answer_rows`), with a link to its evidence (`link` + the section's
    anchor)."""
    rows = answer_rows(folder)
    if not rows:
        return "No claim verdicts in the result files yet."
    return report.markdown_table(
        ["claim", "comparison", "on", "difference ± SE", "PSNR difference", "verdict", "evidence"],
        [[r["claim"], r["comparison"], r["on"], difference_text(r), _psnr_text(r), f"**{r['verdict']}**",
          f"[tables]({link}{_section(r['file'])})"] for r in rows],
    ) + "\n\n" + RULE  # fmt: skip


def answer_figure(folder: Path, path: Path) -> Path | None:
    """The `HEADLINE` rows as a forest plot (`dmh.viz.plot_answer`), saved (shrunk) to `path`; None without rows."""
    from dmh import viz

    rows = {r["key"]: r for r in answer_rows(folder)}
    picked = [rows[k] for k in HEADLINE if k in rows]
    if not picked:
        return None
    tmp = path.with_name(path.stem + ".full.png")
    viz.save_figure(viz.plot_answer(picked), tmp)
    shrink(tmp, path)
    tmp.unlink()
    return path


def minutes_md(folder: Path) -> str:
    """Minutes per notebook of the published run (timings.json) and the machine line."""
    t = _load(folder, "timings.json") or {}
    if not t and not (folder / "machine.txt").is_file():
        return "Not published yet: `make reproduce`, then `dmh report --readme README.md`."
    machine = (folder / "machine.txt").read_text().strip() if (folder / "machine.txt").is_file() else ""
    total = sum(t.values()) / 60
    cells = " · ".join(f"{k[:2]} {v / 60:.1f}" for k, v in t.items())
    return f"{machine}\n\nMinutes per notebook: {cells} (total {total:.1f} min)." if t else machine


def shrink(src: Path, dst: Path) -> None:
    """Copy a figure, downscaled (and palette-quantised if needed) until it is under `MAX_FIGURE_BYTES`."""
    from PIL import Image

    with Image.open(src) as im:
        im = im.convert("RGB")
        scale = 1.0
        while True:
            size = (max(int(im.width * scale), 1), max(int(im.height * scale), 1))
            out = im.resize(size, Image.Resampling.LANCZOS) if scale < 1 else im
            out.quantize(256, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)
            if dst.stat().st_size <= MAX_FIGURE_BYTES or scale < 0.2:
                return
            scale *= 0.8


def publish(results: Path, docs: Path = DOCS) -> list[Path]:
    """Copy a results folder's small result files into docs/results/ and its figures (shrunk) into docs/figures/;
    returns the copied files. Figures of an earlier run that this one did not write are removed."""
    results = Path(results)
    if results.resolve() in (Path(docs).resolve(), (Path(docs) / "results").resolve()):
        raise ValueError(f"{results} is the published folder itself: publish copies a run's folder into it")
    if not (results / "timings.json").is_file():
        raise FileNotFoundError(f"{results} is not a finished `make reproduce` folder (no timings.json)")
    (docs / "results").mkdir(parents=True, exist_ok=True)
    (docs / "figures").mkdir(parents=True, exist_ok=True)
    copied = []
    for name in RESULT_FILES:
        if (results / name).is_file():
            shutil.copyfile(results / name, docs / "results" / name)
            copied.append(docs / "results" / name)
    figs = {fig for _, _, _, fig in report.SECTIONS if fig} | set(EXTRA_FIGURES) | {"01_released_val.png",
            "06_cross_task.png"} | {p.name for p in results.glob("07_zoom_*.png")}  # fmt: skip
    for old in (docs / "figures").glob("*.png"):  # a figure of the report that this run did not write is stale
        if old.name not in EXTRA_FIGURES and (old.name not in figs or not (results / old.name).is_file()):
            old.unlink()
    for name in sorted(figs):
        if (results / name).is_file():
            shrink(results / name, docs / "figures" / name)
            copied.append(docs / "figures" / name)
    return copied


#: What `publish_default` keeps of a default-tier run in docs/results/default/: its verdicts, minutes and check.
DEFAULT_FILES = ("machine.txt", "timings.json", "evaluations.json", "REPRODUCTION.md", "claims1.json", "claims.json",
                 "claims_dncnn.json", "claims2e.json", "claims4.json", "claims4m.json")  # fmt: skip


def publish_default(results: Path, docs: Path = DOCS) -> list[Path]:
    """Copy a default-tier run's verdicts, minutes and reproduction check (`DEFAULT_FILES`) into
    docs/results/default/ (the answer's "default tier" column and the README's minutes of both tiers); returns the
    copied files."""
    results, dst = Path(results), Path(docs) / "results" / "default"
    if not (results / "timings.json").is_file():
        raise FileNotFoundError(f"{results} is not a finished `make reproduce` folder (no timings.json)")
    dst.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in DEFAULT_FILES:
        if (results / name).is_file():
            shutil.copyfile(results / name, dst / name)
            copied.append(dst / name)
    return copied


def expected_sections(root: Path = ROOT) -> dict[Path, dict[str, str]]:
    """What the generated sections of README.md and docs/RESULTS.md hold when written from docs/results/:
    {file: {marker name: text}}."""
    docs = root / "docs"
    folder = docs / "results"
    results = report.report_text(
        folder,
        figures=docs / "figures",
        link="figures/",
        title="# Results of the full tier (`make reproduce PRESET=full`)",
    )
    picture = ""
    if (docs / "figures" / "01_kodim23_sigma25.png").is_file():
        picture = ("![noisy / CBM3D / ours / clean, kodim23 at sigma 25, from the full tier]"
                   "(docs/figures/01_kodim23_sigma25.png)")  # fmt: skip
    return {
        root / "README.md": {
            "answer": answer_md(folder),
            "minutes": minutes_md(folder),
            "minutes-default": minutes_md(folder / "default"),
            "picture": picture,
        },
        docs / "RESULTS.md": {"verdicts": "## Every verdict\n\n" + verdicts_md(folder), "results": results.strip()},
    }


def _replace(text: str, name: str, body: str, path: Path) -> str:
    pat = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pat.search(text):
        raise ValueError(f"{path} has no <!-- {name}:start --> / <!-- {name}:end --> markers")
    return pat.sub(lambda m: m.group(1) + body.strip() + "\n" + m.group(2), text)


def refresh(root: Path = ROOT) -> list[Path]:
    """Write every generated section (`expected_sections`) into README.md and docs/RESULTS.md, and the answer's
    figure (docs/figures/answer.png)."""
    written = []
    if (fig := answer_figure(root / "docs" / "results", root / "docs" / "figures" / "answer.png")) is not None:
        written.append(fig)
    for path, sections in expected_sections(root).items():
        text = path.read_text() if path.is_file() else "".join(f"<!-- {n}:start -->\n<!-- {n}:end -->\n"
                                                                for n in sections)  # fmt: skip
        for name, body in sections.items():
            text = _replace(text, name, body, path)
        path.write_text(text)
        written.append(path)
    return written


def sections_in(path: Path) -> dict[str, str]:
    """The generated sections found in a file: {marker name: text between the markers, stripped}."""
    return {m.group("name"): m.group(0).split("\n", 1)[1].rsplit("<!--", 1)[0].strip()
            for m in _MARK.finditer(path.read_text())}  # fmt: skip
