"""Markdown tables from the study's JSON result files, and `REPORT.md` assembled from them (never typed by hand)."""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "Rendered",
    "markdown",
    "markdown_table",
    "table1_md",
    "task_table_md",
    "cross_task_md",
    "task_noise_md",
    "pretrained_md",
    "ablation_md",
    "imagenet_md",
    "texture_md",
    "eff_ablation_md",
    "eff_ablation_points",
    "claims4_md",
    "write_report",
]


class Rendered:
    """A markdown table (or any markdown) that JupyterLab renders as a table while its plain text, what nbval checks
    and what a headless run keeps, is the markdown source itself. Make it a cell's last expression."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def markdown(*parts: str) -> Rendered:
    """`Rendered` of the parts, separated by blank lines."""
    return Rendered("\n\n".join(p for p in parts if p))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats are printed as given (format them before)."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def _load(x: dict[str, Any] | str | Path) -> dict[str, Any]:
    return x if isinstance(x, dict) else json.loads(Path(x).read_text())


def table1_md(result: dict[str, Any] | Path, details: bool = True) -> str:
    """Table 1 analogue: mean PSNR (dB) over the TEST photos per method and sigma; with `details`, per image PSNR /
    SSIM and the mean time per image (which varies from run to run)."""
    r = _load(result)
    sigmas = list(next(iter(r["mean"].values())))
    notes = r.get("notes", {})
    out = markdown_table(
        ["method", *[f"sigma {s}" for s in sigmas]],
        [[f"{m} ({notes[m]})" if m in notes else m, *[f"{d[s]:.2f}" if s in d else "-" for s in sigmas]]
         for m, d in r["mean"].items()],
    )  # fmt: skip
    if not details:
        return out
    images = list(dict.fromkeys(row["image"] for row in r["rows"]))
    methods = list(r["mean"])
    per = []
    for s in sigmas:
        for im in images:
            vals = {row["method"]: row for row in r["rows"] if row["image"] == im and str(int(row["sigma"])) == s}
            per.append([s, im, *[f"{vals[m]['psnr']:.2f} / {vals[m]['ssim']:.3f}" if m in vals else "-"
                                 for m in methods]])  # fmt: skip
    secs = {m: [row["seconds"] for row in r["rows"] if row["method"] == m] for m in methods if m != "noisy"}
    timing = ", ".join(f"{m} {sum(v) / len(v):.2f} s" for m, v in secs.items() if v)
    return (out + "\n\nPer image (PSNR dB / SSIM):\n\n" + markdown_table(["sigma", "image", *methods], per)
            + f"\n\nMean time per image: {timing}.")  # fmt: skip


def _row_label(result: dict[str, Any], row: str) -> str:
    """A table row's name with its lambda and seeds, e.g. "joint (chosen), λ=0.02, 3 seeds"."""
    lam = result.get("lams", {}).get(row)
    n = result.get("seeds", {}).get(row, 1)
    via = f" via {lam['task']}" if lam and lam["task"] != result["task"] else ""
    return row + (f", λ={lam['lam']:g}{via}" if lam else "") + (f", {n} seeds" if n > 1 else "")


def task_table_md(result: dict[str, Any] | Path, subset: bool = False, unseen: bool = False) -> str:
    """Table 2 / 3 analogue: the task metric (mean ± std over training seeds) and input PSNR per row and sigma;
    `subset` for the CBM3D subset; `unseen` for Table 2's column through classifier C ("" when it has none)."""
    r = _load(result)
    if unseen and not r.get("unseen"):
        return ""
    key = ("metric_unseen" if unseen else "metric") + ("_subset" if subset else "")
    psnr_key = "psnr_subset" if subset else "psnr"
    sigmas = list(next(iter(r["rows"].values())))
    scale = 100.0
    rows = []
    for name, d in r["rows"].items():
        if key not in d[sigmas[0]]:
            continue

        def cell(c: dict[str, Any]) -> str:
            std = f" ± {scale * c[key + '_std']:.1f}" if c.get(key + "_std") else ""
            return f"{scale * c[key]:.1f}{std} ({c[psnr_key]:.1f} dB)"

        rows.append([_row_label(r, name), *[cell(d[s]) for s in sigmas]])
    n = r["n_subset"] if subset else r["n"]
    unit = "top-1 %" if r["metric"] == "top1" else "mean IoU %"
    clean = r["clean_unseen"] if unseen else r["clean"]
    head = f"{unit} (input PSNR) on {n} test {'images' if r['task'] == 'A' else 'scenes'}; clean: {scale * clean:.1f}"
    if unseen:
        head = f"{r['unseen']} (classifier C, never trained through), " + head
    return head + "\n\n" + markdown_table(["row", *[f"sigma {s}" for s in sigmas]], rows)


def cross_task_md(
    table2: dict[str, Any] | Path, table3: dict[str, Any] | Path, sigmas: list[float] | None = None
) -> str:
    """Transfer both ways beside each task's own separate and joint rows, averaged over sigma (or over `sigmas`;
    means over seeds)."""
    rows = []
    for r in (_load(table2), _load(table3)):
        sig = [s for s in r["rows"]["noisy"] if sigmas is None or float(s) in {float(v) for v in sigmas}]
        mean = {k: sum(v[s]["metric"] for s in sig) / len(sig) for k, v in r["rows"].items() if "metric" in v[sig[0]]}
        task = "A (classifier, top-1 %)" if r["task"] == "A" else "B (segmenter, mean IoU %)"
        keys = [k for k in ("noisy", "separate", "joint (paper)", "joint (chosen)", "cross-task") if k in mean]
        rows.append([task, *[f"{100 * mean[k]:.1f}" for k in keys], _row_label(r, "cross-task")])
    return markdown_table(
        ["task network", "noisy", "separate", "joint (paper)", "joint (chosen)", "cross-task", "cross-task denoiser"],
        rows,
    )


def _networks(task_noise: dict[str, Any]) -> list[str]:
    """The network entries of a task_noise.json (every key but "n", "preset" and "pretrained")."""
    return [k for k in task_noise if k not in ("n", "preset", "pretrained")]


def task_noise_md(result: dict[str, Any] | Path) -> str:
    """The frozen networks' metric at each sigma (the "noisy input" row)."""
    r = _load(result)
    names = _networks(r)
    sigmas = [row["sigma"] for row in r[names[0]]["rows"]]
    rows = []
    for n in names:
        m = r[n]["metric"]
        cells = [f"{100 * row[m]:.1f}" + (f" ± {100 * row[m + '_std']:.1f}" if row.get(m + "_std") else "")
                 for row in r[n]["rows"]]  # fmt: skip
        rows.append([f"{n} ({'top-1' if m == 'top1' else 'mean IoU'} %, n={r['n'][n]})", *cells])
    return markdown_table(["network", *[f"sigma {s:g}" for s in sigmas]], rows)


def pretrained_md(result: dict[str, Any] | Path) -> str:
    """How the kept task networks were trained (task_noise.json's "pretrained", from the weights' manifest)."""
    r = _load(result).get("pretrained", {})
    rows = []
    for name, e in r.items():
        test, val = ("top1", "val_top1") if "top1" in e["metrics"] else ("miou", "val_miou")
        rows.append([name, f"{100 * e['metrics'][test]:.2f}", f"{100 * e['metrics'][val]:.2f}", e["steps"],
                     f"{e['minutes']:.1f} ({e['threads']} thread{'s' if e['threads'] != 1 else ''})",
                     e["commit"][:7], e["sha256"][:12]])  # fmt: skip
    header = ["network", "clean test %", "val %", "steps", "training minutes", "commit", "sha256"]
    return markdown_table(header, rows) if rows else ""


def _pm(mean: float, std: float, scale: float = 1.0, digits: int = 2) -> str:
    return f"{scale * mean:.{digits}f}" + (f" ± {scale * std:.{digits}f}" if std else "")


def ablation_md(result: dict[str, Any] | Path) -> str:
    """The lambda sweep: PSNR and task metric (mean ± std over seeds) on validation data at one sigma; the paper's,
    the authors' code's and the chosen lambda marked."""
    r = _load(result)
    rows = []
    for task in ("A", "B"):
        d = r[task]
        for pt in d["points"]:
            named = (("paper", d["paper_lam"]), ("authors' code", d["code_lam"]), ("chosen", d["chosen"]["lam"]))
            tags = [t for t, lam in named if lam is not None and pt["lam"] == lam]
            mark = f" ({', '.join(tags)})" if tags else ""
            rows.append([task, f"{pt['lam']:g}{mark}", _pm(pt["psnr_mean"], pt["psnr_std"]),
                         _pm(pt["metric_mean"], pt["metric_std"], 100, 1)])  # fmt: skip
        rows.append([task, "noisy input", f"{d['noisy_psnr']:.2f}", f"{100 * d['noisy']:.1f}"])
    chosen = "; ".join(f"{t}: λ = {r[t]['chosen']['lam']}" for t in ("A", "B"))
    return (f"sigma {r['sigma']:g}, {r['steps']} fine-tuning steps per lambda, seeds {r.get('seeds', [0])}, validation "
            f"data; mean ± std over seeds\n\n" + markdown_table(["task", "lambda", "PSNR dB", "metric %"], rows)
            + f"\n\nChosen ({r['A']['chosen']['rule']}): {chosen}.")  # fmt: skip


def claims_md(result: dict[str, Any] | Path) -> str:
    """The claim verdicts of `dmh.study.verdicts` (claims.json) as a table."""
    r = _load(result)
    rows = [[c["claim"], c["task"], c["a"], c["b"], f"{100 * c['diff']:+.2f}", f"{100 * c['se']:.2f}",
             f"{c['n_a']} / {c['n_b']}", f"**{c['verdict']}**"] for c in r["claims"]]  # fmt: skip
    return (f"{r['rule']}\n\n"
            + markdown_table(["claim", "task", "row a", "row b", "a - b (points)", "SE", "seeds a / b", "verdict"],
                             rows))  # fmt: skip


def claims1_md(result: dict[str, Any] | Path) -> str:
    """The verdicts on claim (1) of `dmh.study.denoising_claims` (claims1.json): each released denoiser against
    CBM3D on the full-size TEST photos, the mean PSNR difference over photos with its standard error."""
    r = _load(result)
    rows = [[c["a"], f"{c['sigma']:g}", f"{c['psnr_a']:.2f}", f"{c['psnr_b']:.2f}", f"{c['diff']:+.2f}",
             f"{c['se']:.2f}", c["n_images"], f"{c['seconds']:.2f}", f"**{c['verdict']}**"]
            for c in r["claims"]]  # fmt: skip
    head = ["denoiser", "sigma", "PSNR dB", "CBM3D dB", "difference (dB)", "SE", "photos", "s / photo", "verdict"]
    return f"{r['rule']}\n\n" + markdown_table(head, rows)


def frontier_md(result: dict[str, Any] | Path) -> str:
    """The texture-vs-PSNR frontier of `dmh.study.texture_frontier` (frontier.json): per path and lambda, the mean
    (± std over seeds) of PSNR and each texture measure on TEST data."""
    r = _load(result)
    parts = []
    for path, d in r["paths"].items():
        rows = []
        lams = sorted({q["lam"] for q in d["points"] if q.get("row") != "noisy"})
        for q in [q for q in d["points"] if q.get("row") == "noisy"]:
            rows.append(["noisy input", f"{q['psnr']:.2f}", f"{q['ssim']:.3f}", f"{q['gms']:.4f}", f"{q['hf']:.2f}",
                         f"{q['perceptual']:.4f}", "-"])  # fmt: skip
        for lam in lams:
            qs = [q for q in d["points"] if q["lam"] == lam and q.get("row") != "noisy"]

            def cell(key: str, fmt: str, qs: list[dict[str, Any]] = qs) -> str:
                v = [q[key] for q in qs]
                sd = f" ± {statistics.stdev(v):{fmt}}" if len(v) > 1 else ""
                return f"{statistics.fmean(v):{fmt}}{sd}"

            rows.append([f"{lam:g}" + (" (separate)" if lam == 0 else ""), cell("psnr", ".2f"), cell("ssim", ".3f"),
                         cell("gms", ".4f"), cell("hf", ".2f"), cell("perceptual", ".4f"), len(qs)])  # fmt: skip
        name = {"A": "A (classifier, items)", "B": "B (segmenter, scenes)", "E": "EfficientNet-Lite0 (photos)"}
        head = (f"**{name.get(path, path)}**, sigma {d['sigma']:g}, {d['n']} TEST images; perceptual distance through "
                f"{d['perceptual_net']} (never trained through)")  # fmt: skip
        parts.append(
            head
            + "\n\n"
            + markdown_table(
                ["lambda", "PSNR dB", "SSIM", "gradient similarity", "HF energy kept", "perceptual distance", "seeds"],
                rows,
            )
        )
    return "\n\n".join(parts)


def claims4m_md(result: dict[str, Any] | Path) -> str:
    """The verdicts of `dmh.study.frontier_claims` (claims4m.json): claim (4) at the matched operating point and at
    the chosen lambda, with the TEST PSNR difference beside each."""
    r = _load(result)
    rows = [[c["task"], c["operating_point"], c["a"], c["claim"].split(": ")[-1], f"{c['mean_a']:.4f}",
             f"{c['mean_b']:.4f}", f"{c['diff']:+.4f}", f"{c['se']:.4f}", f"{c['psnr_diff']:+.2f}",
             f"{c['n_a']} / {c['n_b']}", f"**{c['verdict']}**"] for c in r["claims"]]  # fmt: skip
    matched = "; ".join(f"{t}: λ = {m['lam']:g} ({m['gap_db']:+.2f} dB on validation)" if m["lam"] is not None
                        else f"{t}: no lambda within the tolerance" for t, m in r["matched"].items())  # fmt: skip
    head = ["path", "operating point", "row a", "measure", "a", "separate", "a - b (better +)", "SE",
            "PSNR a - b (dB, TEST)", "seeds", "verdict"]  # fmt: skip
    return f"{r['rule']}\n\nMatched points: {matched}.\n\n" + markdown_table(head, rows)


def real_photos_md(result: dict[str, Any] | Path) -> str:
    """07's rows on every tile of the TEST photos and ImageNet-20 (real_photos.json): agreement with the clean
    top-1 through EfficientNet-Lite0 and -Lite2 (mean ± std over training seeds) and input PSNR."""
    r = _load(result)

    def cell(v: list[float]) -> str:
        return f"{100 * statistics.fmean(v):.1f}" + (f" ± {100 * statistics.stdev(v):.1f}" if len(v) > 1 else "")

    rows = [[row, len(d["lite0"]), cell(d["lite0"]), cell(d["lite2"]), f"{statistics.fmean(d['psnr']):.2f}"]
            for row, d in r["rows"].items()]  # fmt: skip
    head = (f"{r['n']} tiles of {r['side']} x {r['side']} (TEST photos and ImageNet-20), sigma {r['sigma']:g}, "
            f"{r['draws']} noise draws; agreement % with the classifier's top-1 on the clean tile")  # fmt: skip
    cols = ["row", "seeds", "EfficientNet-Lite0 (trained through)", "EfficientNet-Lite2 (never)", "input PSNR dB"]
    return head + "\n\n" + markdown_table(cols, rows)


def claims2e_md(result: dict[str, Any] | Path) -> str:
    """The verdicts of `dmh.study.real_photo_claims` (claims2e.json)."""
    r = _load(result)
    rows = [[c["claim"], c["task"], c["a"], c["b"], f"{100 * c['diff']:+.2f}", f"{100 * c['se']:.2f}",
             ", ".join(f"{100 * d:+.1f}" for d in c["draw_diffs"]), f"{c['psnr_diff']:+.2f}",
             f"{c['n_a']} / {c['n_b']}", f"**{c['verdict']}**"] for c in r["claims"]]  # fmt: skip
    cols = ["claim", "classifier", "row a", "row b", "a - b (points)", "SE", "per noise draw", "PSNR a - b (dB)",
            "seeds", "verdict"]  # fmt: skip
    return f"{r['rule']}\n\n" + markdown_table(cols, rows)


def imagenet_md(result: dict[str, Any] | Path) -> str:
    r = _load(result)
    sigmas = list(next(iter(r["rows"].values())))

    def cell(c: dict[str, float]) -> str:
        seeds = f" x {c['seeds']} seeds" if c.get("seeds", 1) > 1 else ""
        return f"{100 * c['top1']:.0f} ± {100 * c['top1_std']:.0f} ({c['psnr']:.1f} dB, {c['draws']:g} draws{seeds})"

    rows = [[name, *[cell(d[s]) for s in sigmas]] for name, d in r["rows"].items()]
    head = (f"EfficientNet-Lite0 top-1 % on ImageNet-20 (clean: {100 * r['clean']:.0f}); mean ± std over noise draws "
            "(and training seeds)")  # fmt: skip
    return head + "\n\n" + markdown_table(["row", *[f"sigma {s}" for s in sigmas]], rows)


def texture_md(result: dict[str, Any] | Path) -> str:
    """Mean texture measures over the TEST photos (and training seeds) per method and sigma."""
    r = _load(result)
    keys = ("psnr", "ssim", "hf_ratio", "gms")
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for row in r["rows"]:
        groups.setdefault((row["sigma"], row["method"]), []).append(row)
    rows = [[f"{s:g}", m, *[f"{sum(x[k] for x in v) / len(v):.3f}" for k in keys]] for (s, m), v in groups.items()]
    return markdown_table(["sigma", "method", "PSNR dB", "SSIM", "HF energy kept", "gradient similarity"], rows)


def eff_ablation_md(result: dict[str, Any] | Path) -> str:
    """07's lambda sweep through EfficientNet-Lite0: PSNR and agreement with the clean top-1 on the validation crops
    at one sigma, the paper's and the chosen lambda marked."""
    r = _load(result)
    rows = []
    for pt in r["points"]:
        named = (("paper", r["paper_lam"]), ("chosen", r["chosen"]["lam"]))
        tags = [t for t, lam in named if lam is not None and pt["lam"] == lam]
        mark = f" ({', '.join(tags)})" if tags else ""
        rows.append([f"{pt['lam']:g}{mark}", _pm(pt["psnr_mean"], pt["psnr_std"]),
                     _pm(pt["metric_mean"], pt["metric_std"], 100, 1)])  # fmt: skip
    rows.append(["starting model", f"{r['base_psnr']:.2f}", f"{100 * r['base']:.1f}"])
    rows.append(["noisy input", f"{r['noisy_psnr']:.2f}", f"{100 * r['noisy']:.1f}"])
    return (f"sigma {r['sigma']:g}, {r['steps']} fine-tuning steps per lambda, seeds {r['seeds']}, {r['n']} validation "
            "crops of the VAL photographs; metric: agreement with EfficientNet-Lite0's top-1 on the clean crop\n\n"
            + markdown_table(["lambda", "PSNR dB", "agreement %"], rows)
            + f"\n\nChosen ({r['chosen']['rule']}): λ = {r['chosen']['lam']}.")  # fmt: skip


def eff_ablation_points(
    result: dict[str, Any] | Path,
) -> tuple[dict[str, list[dict[str, float]]], dict[str, dict[str, float]]]:
    """(points, marks) of `eff_ablation.json` for `viz.plot_ablation`."""
    r = _load(result)
    name = "EfficientNet-Lite0 (agreement)"
    marks = {"paper": r["paper_lam"]}
    if r["chosen"]["lam"] is not None:
        marks["chosen on validation"] = r["chosen"]["lam"]
    return {name: r["points"]}, {name: marks}


def claims4_md(result: dict[str, Any] | Path) -> str:
    """The verdicts on claim (4) of `dmh.study.texture_claims` (claims4.json), with the rows' PSNR difference."""
    r = _load(result)
    rows = [[c["claim"], c["a"], c["b"], f"{c['mean_a']:.4f}", f"{c['mean_b']:.4f}", f"{c['diff']:+.4f}",
             f"{c['se']:.4f}", f"{c['psnr_diff']:+.2f}", f"{c['n_a']} / {c['n_b']}", f"**{c['verdict']}**"]
            for c in r["claims"]]  # fmt: skip
    head = ["claim", "row a", "row b", "a", "b", "a - b", "SE", "PSNR a - b (dB)", "seeds a / b", "verdict"]
    return f"{r['rule']}\n\n" + markdown_table(head, rows)


SECTIONS = [
    ("01 Denoising alone (Table 1 analogue)", "table1.json", table1_md, "01_training.png"),
    ("01 Claim 1: the released denoisers against CBM3D (full TEST photos)", "claims1.json", claims1_md, None),
    ("02 Frozen task networks under noise", "task_noise.json", task_noise_md, "02_task_noise.png"),
    ("03 Lambda ablation (validation data)", "ablation.json", ablation_md, "03_ablation.png"),
    ("04 Classification cascade (Table 2 analogue)", "table2.json", task_table_md, "04_table2.png"),
    ("04 Claim 2 with DnCNN as the denoiser (Table 2 analogue)", "table2_dncnn.json", task_table_md, None),
    ("05 Segmentation cascade (Table 3 analogue)", "table3.json", task_table_md, "05_table3.png"),
    ("06 Claims 2 and 3: verdicts over seeds", "claims.json", claims_md, "06_claims.png"),
    ("06 Claim 2 with DnCNN as the denoiser: verdicts over seeds", "claims_dncnn.json", claims_md, None),
    (
        "07 Lambda sweep through EfficientNet-Lite0 (validation crops)",
        "eff_ablation.json",
        eff_ablation_md,
        "07_eff_ablation.png",
    ),
    ("07 ImageNet-20 through EfficientNet-Lite0", "imagenet20.json", imagenet_md, "07_imagenet20.png"),
    ("07 Real photos: every tile, through EfficientNet-Lite0 and -Lite2", "real_photos.json", real_photos_md, None),
    ("07 Claim 2 on real photos: verdicts over seeds", "claims2e.json", claims2e_md, None),
    ("07 Texture", "texture.json", texture_md, "07_texture.png"),
    ("07 Claim 4: verdicts over seeds", "claims4.json", claims4_md, "07_claims4.png"),
    ("07 Texture against PSNR over the lambda sweeps (TEST data)", "frontier.json", frontier_md, "07_frontier.png"),
    ("07 Claim 4 at a matched operating point", "claims4m.json", claims4m_md, None),
]


def _format(fmt: Any, path: Path) -> Any:
    """`fmt(path)`, with any failure to read or understand the file reported as a ValueError naming it."""
    try:
        return fmt(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}): rerun the notebook that writes it") from e
    except OSError:
        raise
    except Exception as e:  # KeyError, TypeError, StopIteration, ...: the file is not what its notebook writes
        what = f"missing field {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
        raise ValueError(f"{path} is not a result file this report can read ({what}): rerun the notebook that "
                         "writes it") from e  # fmt: skip


def write_report(folder: str | Path, machine: str = "") -> Path:
    """Assemble folder/REPORT.md from the JSON files and PNG figures the notebooks wrote there; `machine` (default:
    folder/machine.txt, written by `dmh reproduce`) says when and where the numbers were produced."""
    path = Path(folder) / "REPORT.md"
    text = report_text(folder, machine)
    path.write_text(text)
    return path


def report_text(
    folder: str | Path, machine: str = "", figures: str | Path | None = None, link: str = "",
    title: str | None = None,
) -> str:  # fmt: skip
    """The report's markdown from the result files in `folder`: every table, with the figures found in `figures`
    (default: `folder`) linked as `link` + file name."""
    folder = Path(folder)
    figs = Path(figures) if figures is not None else folder
    if not folder.is_dir():
        raise FileNotFoundError(f"no results folder {folder}: run `dmh reproduce` (or the notebooks) first")
    present = [name for _, name, _, _ in SECTIONS if (folder / name).is_file()]
    if not present:
        raise FileNotFoundError(
            f"{folder} holds none of the result files ({', '.join(n for _, n, _, _ in SECTIONS)}): nothing to report; "
            "run `dmh reproduce` first"
        )
    if not machine and (folder / "machine.txt").is_file():
        machine = (folder / "machine.txt").read_text().strip()
    parts = [title or f"# dmh report: preset `{folder.name}`", machine]
    timings = folder / "timings.json"
    if timings.is_file():
        t = _format(lambda p: json.loads(Path(p).read_text()), timings)
        parts.append(markdown_table(["notebook", "minutes"], [[k, f"{v / 60:.1f}"] for k, v in t.items()]))
    for section, name, fmt, fig in SECTIONS:
        if not (folder / name).is_file():
            continue
        parts.append(f"## {section}\n\n{_format(fmt, folder / name)}")
        if name == "task_noise.json" and (trained := _format(pretrained_md, folder / name)):
            intro = "Training of the kept weights (data/pretrained/manifest.json; top-1 for A, mean IoU for B):"
            parts.append(intro + "\n\n" + trained)
        if name == "table2.json" and (c := _format(lambda f: task_table_md(f, unseen=True), folder / name)):
            parts.append(
                "The same denoised pixels through classifier C, which no denoiser was trained through:\n\n" + c
            )
        if name == "table2.json" or name == "table3.json":
            parts.append(
                "CBM3D subset (every row on the same images):\n\n"
                + _format(lambda f: task_table_md(f, subset=True), folder / name)
            )
        if fig and (figs / fig).is_file():
            parts.append(f"![{section}]({link}{fig})")
        if name == "table1.json" and (figs / "01_released_val.png").is_file():
            parts.append("The released denoisers' VAL PSNR against hours of training:\n\n"
                         f"![released denoisers' training]({link}01_released_val.png)")  # fmt: skip
        if name == "table3.json" and (folder / "table2.json").is_file():
            cross = _format(lambda f: cross_task_md(folder / "table2.json", f), folder / "table3.json")
            parts.append("## 06 Cross-task transfer (mean over sigma)\n\n" + cross)
            if (figs / "06_cross_task.png").is_file():
                parts.append(f"![cross-task]({link}06_cross_task.png)")
    for extra in sorted(figs.glob("07_zoom_*.png")):
        parts.append(f"![{extra.stem}]({link}{extra.name})")
    return "\n\n".join(p for p in parts if p) + "\n"


def released_md(manifest: dict[str, Any] | None = None, cbm3d: dict[str, Any] | None = None) -> str:
    """The released denoisers from data/pretrained/manifest.json, with how each was trained: colour, PSNR (dB) on
    the VAL photographs and on the TEST photos (the cpu preset's 384 crops with Table 1's noisy pixels, and the full
    photos), with CBM3D on the same noisy pixels (`cbm3d`, default data/pretrained/cbm3d_test_photos.json if
    present, `dmh.denoisers.cbm3d_on_test_photos`); the grey base (if released), PSNR on its VAL set and on test items
    and scenes beside CBM3D."""
    from dmh.nets import RELEASED_COLOUR
    from dmh.pretrained import PRETRAINED_DIR, read_manifest

    m = read_manifest() if manifest is None else manifest
    kept = PRETRAINED_DIR / "cbm3d_test_photos.json"
    if cbm3d is None and manifest is None and kept.is_file():
        cbm3d = json.loads(kept.read_text())
    rows = []
    for s in sorted((cbm3d or {}).get("test_full", {}), key=float):
        rows.append(["CBM3D (true sigma)", "", "", "", s, "", f"{cbm3d['test_crop384'][s]:.2f}",
                     f"{cbm3d['test_full'][s]:.2f}", ""])  # fmt: skip
    for name in (n for n in RELEASED_COLOUR if n in m):
        e = m[name]
        mt = e["metrics"]
        sigmas = sorted(mt["val"], key=float)
        if e.get("sigma") is not None:  # a per-sigma model: its own sigma (the others are in the manifest)
            sigmas = [s for s in sigmas if float(s) == float(e["sigma"])]
        for s in sigmas:
            rows.append([name, e["arch"]["width"], f"{e['steps']:,}", f"{e['hours']:.2f}", s,
                         f"{mt['val'][s]:.2f}", f"{mt['test_crop384'][s]:.2f}", f"{mt['test_full'][s]:.2f}",
                         e["sha256"][:12]])  # fmt: skip
    table = (
        markdown_table(
            ["weights", "width", "steps", "hours", "sigma", "VAL", "TEST crops", "TEST full", "sha256"], rows
        )
        if rows
        else "No colour denoiser is released yet (`dmh train-denoiser`, then `dmh release-denoiser`)."
    )
    grey = m.get("grey-blind")
    if grey is None:
        return table
    mt = grey["metrics"]
    keys = ("val", "test_items", "cbm3d_items", "test_scenes", "cbm3d_scenes")
    g_rows = [[s, *[f"{mt[k][s]:.2f}" for k in keys]] for s in sorted(mt["val"], key=float)]
    text = (
        f"{table}\n\nThe grey base of the cpu-scale study (`grey-blind`, width {grey['arch']['width']:g}, "
        f"{grey['steps']:,} steps, {grey['hours']:.2f} h, sha256 {grey['sha256'][:12]}), PSNR dB beside CBM3D on the "
        "same noisy test pixels:\n\n"
        + markdown_table(["sigma", "VAL", "test items", "CBM3D items", "test scenes", "CBM3D scenes"], g_rows)
    )
    other = m.get("grey-dncnn")
    if other is None:
        return text
    mo, a = other["metrics"], other["arch"]
    o_rows = [[s, *[f"{mt[k][s]:.2f}" for k in ("val", "test_items", "test_scenes")],
               *[f"{mo[k][s]:.2f}" for k in ("val", "test_items", "test_scenes")]]
              for s in sorted(mo["val"], key=float) if s in mt["val"]]  # fmt: skip
    return (
        f"{text}\n\nThe second grey base (`grey-dncnn`: deepinv's DnCNN, depth {a['depth']}, {a['nf']} channels, sized "
        f"for 2 cores by the cost rule of `dmh.zoo`; {other['steps']:,} steps, {other['hours']:.2f} h, sha256 "
        f"{other['sha256'][:12]}) beside `grey-blind`, the same data, schedule and about the same hours, PSNR dB:\n\n"
        + markdown_table(["sigma", "grey-blind VAL", "items", "scenes", "grey-dncnn VAL", "items", "scenes"], o_rows)
    )


def update_readme_released(readme: str | Path, manifest: dict[str, Any] | None = None) -> None:
    """Replace the README's text between `<!-- released:start -->` and `<!-- released:end -->` with `released_md`."""
    readme = Path(readme)
    text = readme.read_text()
    pat = re.compile(r"(<!-- released:start -->\n).*?(<!-- released:end -->)", re.S)
    if not pat.search(text):
        raise ValueError(f"{readme} has no <!-- released:start --> / <!-- released:end --> markers")
    readme.write_text(pat.sub(lambda mt: mt.group(1) + released_md(manifest) + "\n" + mt.group(2), text))


# ------------------------------------------------------------------------------ result files -> plot inputs (viz)
def rows_vs_sigma(result: dict[str, Any] | Path, key: str = "metric") -> dict[str, dict[float, float]]:
    """{row: {sigma: value}} of a task table, for `viz.plot_rows_vs_sigma` (rows lacking `key` are left out)."""
    r = _load(result)
    return {
        row: {float(s): v[key] for s, v in d.items()} for row, d in r["rows"].items() if key in next(iter(d.values()))
    }


def noise_curves(result: dict[str, Any] | Path) -> tuple[dict[str, list[dict[str, float]]], dict[str, str]]:
    """(curves, metric keys) of `task_noise.json`, for `viz.plot_noise_degradation`."""
    r = _load(result)
    names = _networks(r)
    return {n: r[n]["rows"] for n in names}, {n: r[n]["metric"] for n in names}


def ablation_points(
    result: dict[str, Any] | Path,
) -> tuple[dict[str, list[dict[str, float]]], dict[str, dict[str, float]]]:
    """(points, marks) per task of `ablation.json`, for `viz.plot_ablation`: marks are {label: lambda} for the
    paper's, the authors' code's and the chosen lambda."""
    r = _load(result)
    names = {"A": "classifier A (top-1)", "B": "segmenter B (mean IoU)"}
    marks = {}
    for t in ("A", "B"):
        m = {"paper": r[t]["paper_lam"], "authors' code": r[t]["code_lam"]}
        if r[t]["chosen"]["lam"] is not None:
            m["chosen on validation"] = r[t]["chosen"]["lam"]
        marks[names[t]] = m
    return {names[t]: r[t]["points"] for t in ("A", "B")}, marks


def cross_task_bars(table2: dict[str, Any] | Path, table3: dict[str, Any] | Path) -> dict[str, dict[str, float]]:
    """{task: {row: metric averaged over sigma}} for `viz.plot_bars`."""
    out = {}
    for r in (_load(table2), _load(table3)):
        sig = list(r["rows"]["noisy"])
        name = "A top-1" if r["task"] == "A" else "B mean IoU"
        out[name] = {
            k: sum(v[s]["metric"] for s in sig) / len(sig) for k, v in r["rows"].items() if "metric" in v[sig[0]]
        }
    return out


def imagenet_bars(result: dict[str, Any] | Path) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """({row: {"sigma S": top-1}}, {row: {"sigma S": std over noise draws}}) of `imagenet20.json`, for
    `viz.plot_bars`."""
    r = _load(result)
    vals = {row: {f"sigma {s}": c["top1"] for s, c in d.items()} for row, d in r["rows"].items()}
    errs = {row: {f"sigma {s}": c["top1_std"] for s, c in d.items()} for row, d in r["rows"].items()}
    return vals, errs


def texture_bars(result: dict[str, Any] | Path, sigma: float, key: str) -> dict[str, dict[str, float]]:
    """{image: {method: value}} of `texture.json` at one sigma (mean over a row's training seeds), for
    `viz.plot_bars`."""
    vals: dict[str, dict[str, list[float]]] = {}
    for row in _load(result)["rows"]:
        if row["sigma"] == sigma:
            vals.setdefault(row["image"], {}).setdefault(row["method"], []).append(row[key])
    return {im: {m: sum(v) / len(v) for m, v in d.items()} for im, d in vals.items()}


def frontier_points(result: dict[str, Any] | Path, key: str) -> dict[str, list[dict[str, float]]]:
    """`viz.plot_ablation` rows of the frontier (frontier.json) for texture measure `key`: per path, per lambda, the
    mean and std over seeds of PSNR and `key` ("psnr_mean", "psnr_std", f"{key}_mean", f"{key}_std")."""
    r = _load(result)
    out: dict[str, list[dict[str, float]]] = {}
    names = {"A": "A (items)", "B": "B (scenes)", "E": "EfficientNet-Lite0 (photos)"}
    for path, d in r["paths"].items():
        pts = [q for q in d["points"] if q.get("row") != "noisy"]
        rows = []
        for lam in sorted({q["lam"] for q in pts}):
            qs = [q for q in pts if q["lam"] == lam]
            row = {"lambda": lam}
            for k in ("psnr", key):
                v = [q[k] for q in qs]
                row[f"{k}_mean"], row[f"{k}_std"] = statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0
            rows.append(row)
        out[names.get(path, path)] = rows
    return out


_VERDICT_WORDS = {"held": "the claim **held**", "did not hold": "the claim **did not hold**",
                  "within noise": "the difference is **within noise** (no verdict either way)"}  # fmt: skip


def lams_text(lams: dict[str, Any]) -> str:
    """The rows' lambdas of a table (its "lams") in words: "joint (paper) 0.25, joint (chosen) 0.01 (03's rule on
    validation data), cross-task 0.02 via B"."""
    parts = []
    for row, d in lams.items():
        if row == "separate":
            continue
        how = f" ({d['chosen_by']})" if d.get("chosen_by") not in (None, "fixed") else ""
        via = f" via {d['task']}" if row == "cross-task" else ""
        parts.append(f"{row} {d['lam']:g}{how}{via}")
    return "lambda of the rows: " + ", ".join(parts) + "."


def conclusion_md(rows: list[dict[str, Any]], unit: str = "points", scale: float = 100.0, intro: str = "") -> str:
    """ "What this shows": one sentence per verdict row (`dmh.study.verdict` rows: claim, rows a and b, difference,
    SE, seeds, verdict, and the PSNR difference when present), generated from the result files, never typed."""
    lines = []
    for c in rows:
        through = f" through {c['through']} (never trained through)" if c.get("through") else ""
        gap = c.get("psnr_diff")
        op = f"; its PSNR is {gap:+.2f} dB from {c['b']}'s" if gap is not None else ""
        lines.append(
            f"- {c['claim']}{through}: {c['a']} - {c['b']} = {scale * c['diff']:+.2f} {unit} "
            f"(SE {scale * c['se']:.2f}, seeds {c['n_a']} / {c['n_b']}){op}: {_VERDICT_WORDS[c['verdict']]}."
        )
    return "**What this shows.** " + (intro + "\n\n" if intro else "\n\n") + "\n".join(lines)


def ablation_conclusion_md(result: dict[str, Any] | Path) -> str:
    """ "What this shows" for the lambda sweep (ablation.json or eff_ablation.json): per task, the chosen lambda with
    its validation metric gain and PSNR cost against separate, and the paper's lambda beside it."""
    r = _load(result)
    tasks = {t: r[t] for t in ("A", "B") if t in r} or {"EfficientNet-Lite0": r}
    lines = []
    for task, d in tasks.items():
        pts = {float(q["lam"]): q for q in d["points"]}
        sep = pts[0.0]

        metric = {"top1": "top-1", "miou": "mean IoU"}.get(d.get("metric", ""), d.get("metric", "metric"))

        def gain(lam: float, sep: dict[str, Any] = sep, pts: dict[float, Any] = pts, metric: str = metric) -> str:
            q = pts[lam]
            return (f"{100 * (q['metric_mean'] - sep['metric_mean']):+.1f} points of validation {metric}, "
                    f"{q['psnr_mean'] - sep['psnr_mean']:+.2f} dB PSNR")  # fmt: skip

        chosen = d["chosen"]["lam"]
        paper = float(d["paper_lam"])
        first = (f"lambda {chosen:g} was chosen by the rule ({gain(chosen)} against separate)" if chosen is not None
                 else "no lambda passed the rule (every one cost more PSNR than its tolerance)")  # fmt: skip
        paper_txt = f"; the paper's {paper:g}: {gain(paper)}" if paper in pts else ""
        lines.append(f"- {task}: {first}{paper_txt}.")
    rule = d["chosen"]["rule"]
    return "**What this shows.** The rule: " + rule + ".\n\n" + "\n".join(lines)
