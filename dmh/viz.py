"""Figures for the notebooks and the report.

Every function takes tensors, arrays or plain dicts (as read back from the result JSON files) and returns a
`matplotlib.figure.Figure`; nothing calls `plt.show`. Figures are made with pyplot and closed at once, so the
notebook backend does not show them a second time and they work headless (Agg); a notebook cell displays a returned
figure, and `save_figure` writes it to disk.

Conventions: images are (C, H, W) tensors or arrays in [0, 1] (clipped for display only), C = 1 (grey) or 3 (RGB);
label maps are (H, W) integers (0 = background); sigma is on the 0-255 scale.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from torch import Tensor

__all__ = [
    "METRIC_LABELS",
    "new_figure",
    "save_figure",
    "label_cmap",
    "show_image",
    "show_labels",
    "label_legend",
    "comparison_grid",
    "plot_scenes",
    "plot_noise_degradation",
    "plot_rows_vs_sigma",
    "plot_ablation",
    "plot_history",
    "plot_bars",
    "plot_verdicts",
    "plot_answer",
]

#: Axis labels of the metric keys used in dmh's result files.
METRIC_LABELS: dict[str, str] = {
    "top1": "top-1 accuracy",
    "top5": "top-5 accuracy",
    "miou": "mean IoU",
    "pixel_acc": "pixel accuracy",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "loss": "loss",
    "rec": "reconstruction loss (MSE)",
    "task": "task loss (cross-entropy)",
    "lr": "learning rate",
    "sigma": "noise sigma (0-255)",
    "psnr_mean": "PSNR (dB), mean over seeds",
    "metric_mean": "task metric, mean over seeds",
    "gms_mean": "gradient similarity to the clean image, mean over seeds",
    "ssim_mean": "SSIM, mean over seeds",
    "perceptual_mean": "perceptual distance (unseen network), mean over seeds",
}


def _metric_label(key: str) -> str:
    return METRIC_LABELS.get(key, key)


# ------------------------------------------------------------------------------------------------------- helpers
def new_figure(width: float, height: float) -> Figure:
    """A figure of `width` x `height` inches with constrained layout, already released by pyplot (so it is shown
    only where it is displayed or saved)."""
    fig = plt.figure(figsize=(width, height), layout="constrained")
    plt.close(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 150) -> Path:
    """Write `fig` to `path` (format from the suffix, e.g. .png / .pdf / .svg), creating parent folders, then close
    it. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return path


def _to_chw(image: Any, name: str) -> np.ndarray:
    """(C, H, W) tensor or array (or (1, C, H, W), or (H, W)) -> float (C, H, W) numpy array."""
    if isinstance(image, Tensor):
        arr = image.detach().cpu().float().numpy()
    elif isinstance(image, np.ndarray):
        arr = image.astype(np.float32, copy=False)
    else:
        raise TypeError(f"{name}: expected a tensor or numpy array, got {type(image).__name__}")
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ValueError(f"{name}: expected a (C, H, W) image with C = 1 or 3, got shape {tuple(arr.shape)}")
    return arr


def _as_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def _labels_np(labels: Any, name: str) -> np.ndarray:
    arr = _as_numpy(labels)
    if arr.ndim != 2 or arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected an (H, W) integer label map, got shape {arr.shape}, dtype {arr.dtype}")
    return arr


def show_image(ax: Axes, image: Any, *, title: str | None = None) -> None:
    """Draw one (C, H, W) image in [0, 1] on `ax` (clipped; grey with a fixed 0-1 range), without ticks."""
    arr = np.clip(_to_chw(image, "image"), 0.0, 1.0)
    if arr.shape[0] == 1:
        ax.imshow(arr[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(arr.transpose(1, 2, 0), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=10)


def label_cmap(num_classes: int) -> ListedColormap:
    """A fixed categorical colormap for label maps: class 0 (background) near-black, then tab10 / tab20 colours."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    base = list(matplotlib.colormaps["tab10"].colors)
    if num_classes - 1 > len(base):
        base = list(matplotlib.colormaps["tab20"].colors)
    if num_classes - 1 > len(base):
        base = [matplotlib.colormaps["hsv"](i / (num_classes - 1)) for i in range(num_classes - 1)]
    colours = [(0.08, 0.08, 0.08, 1.0)] + [matplotlib.colors.to_rgba(c) for c in base[: num_classes - 1]]
    return ListedColormap(colours, name=f"dmh_labels_{num_classes}")


def show_labels(ax: Axes, labels: Any, num_classes: int, *, title: str | None = None) -> None:
    """Draw an (H, W) integer label map with `label_cmap(num_classes)`, without ticks."""
    arr = _labels_np(labels, "labels")
    ax.imshow(arr, cmap=label_cmap(num_classes), vmin=-0.5, vmax=num_classes - 0.5, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=10)


def label_legend(class_names: Sequence[str]) -> list[Patch]:
    """Legend handles (coloured squares) for `class_names`, in `label_cmap`'s colours."""
    cmap = label_cmap(len(class_names))
    return [Patch(facecolor=cmap(i), edgecolor="0.5", label=n) for i, n in enumerate(class_names)]


# ------------------------------------------------------------------------------------------------ image figures
def comparison_grid(
    panels: Mapping[str, Any],
    *,
    zoom: tuple[int, int, int, int] | None = None,
    metrics: Mapping[str, str] | None = None,
    panel_width: float = 3.0,
    box_color: str = "#ff3030",
) -> Figure:
    """Images side by side (e.g. noisy / CBM3D / separate / joint / clean), optionally with a zoomed crop below.

    Args:
        panels: title -> (C, H, W) image in [0, 1] (tensor or array; C = 1 or 3; all the same shape).
        zoom: (top, left, height, width) in pixels of a crop shown enlarged (nearest neighbour) in a second row;
            the crop's box is drawn on the first row.
        metrics: title -> text shown under that panel's title (e.g. "28.3 dB / SSIM 0.81"); missing titles get none.
        panel_width: inches per column.
        box_color: colour of the zoom box.

    Raises:
        ValueError: no panels, images of different shapes, a zoom box outside the image, metrics for unknown panels.
    """
    if not panels:
        raise ValueError("comparison_grid needs at least one panel")
    arrs = {k: _to_chw(v, f"panel {k!r}") for k, v in panels.items()}
    shapes = {k: a.shape for k, a in arrs.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"all panels must have the same shape, got {shapes}")
    metrics = dict(metrics or {})
    unknown = set(metrics) - set(arrs)
    if unknown:
        raise ValueError(f"metrics given for unknown panels {sorted(unknown)}; panels are {list(arrs)}")
    _, h, w = next(iter(shapes.values()))
    top = left = zh = zw = 0
    if zoom is not None:
        top, left, zh, zw = (int(v) for v in zoom)
        if zh < 1 or zw < 1 or top < 0 or left < 0 or top + zh > h or left + zw > w:
            raise ValueError(f"zoom (top, left, height, width) = {tuple(zoom)} does not fit in a {h}x{w} image")
    ncol = len(arrs)
    row_h = panel_width * h / w
    zoom_h = panel_width * zh / zw if zoom is not None else 0.0
    fig = new_figure(panel_width * ncol, row_h + zoom_h + 0.6)
    axes = fig.subplots(
        2 if zoom is not None else 1,
        ncol,
        squeeze=False,
        gridspec_kw={"height_ratios": [row_h, zoom_h]} if zoom is not None else None,
    )
    for j, (name, arr) in enumerate(arrs.items()):
        title = name if name not in metrics else f"{name}\n{metrics[name]}"
        show_image(axes[0, j], arr, title=title)
        if zoom is None:
            continue
        axes[0, j].add_patch(Rectangle((left - 0.5, top - 0.5), zw, zh, fill=False, edgecolor=box_color, linewidth=1.5))
        crop = arr[:, top : top + zh, left : left + zw]
        factor = max(1, int(math.ceil(max(h / zh, w / zw))))
        show_image(axes[1, j], crop.repeat(factor, axis=1).repeat(factor, axis=2))
        for spine in axes[1, j].spines.values():
            spine.set_edgecolor(box_color)
            spine.set_linewidth(1.5)
    return fig


def plot_scenes(
    images: Any,
    labels: Any,
    class_names: Sequence[str],
    n: int = 6,
    *,
    panel_width: float = 2.0,
) -> Figure:
    """Segmentation scenes (top row) with their label maps (bottom row) and a legend of the classes.

    Args:
        images: (N, 1, H, W) or (N, 3, H, W) in [0, 1].
        labels: (N, H, W) integer label maps, values in [0, len(class_names)) (0 = background, drawn dark).
        class_names: name of each label value.
        n: how many scenes to show (the first n).

    Raises:
        ValueError: shapes that do not match, label values without a class name, n < 1.
    """
    x, y = _as_numpy(images).astype(np.float32, copy=False), _as_numpy(labels)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1 or 3, H, W), got shape {x.shape}")
    if y.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"labels must be (N, H, W) = {(x.shape[0], *x.shape[2:])}, got {y.shape}")
    if n < 1 or len(x) == 0:
        raise ValueError(f"need n >= 1 and at least one scene, got n={n} and {len(x)} scenes")
    k = len(class_names)
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"label values span [{y.min()}, {y.max()}] but there are {k} class names")
    m = min(n, len(x))
    h, w = x.shape[-2:]
    fig = new_figure(panel_width * m + 1.8, 2 * panel_width * h / w + 0.2)
    axes = fig.subplots(2, m, squeeze=False)
    for j in range(m):
        show_image(axes[0, j], x[j], title=f"scene {j}")
        show_labels(axes[1, j], y[j], k)
    fig.legend(handles=label_legend(class_names), loc="outside right center", fontsize=8, frameon=False)
    return fig


# ------------------------------------------------------------------------------------------------- line plots
def _check_rows(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], where: str) -> None:
    if not rows:
        raise ValueError(f"{where}: no rows")
    for k in keys:
        missing = [i for i, r in enumerate(rows) if k not in r]
        if missing:
            raise ValueError(f"{where}: rows {missing} lack the key {k!r} (keys: {sorted(rows[missing[0]])})")


def plot_noise_degradation(
    curves: Mapping[str, Sequence[Mapping[str, float]]],
    metric_keys: Mapping[str, str],
    *,
    title: str | None = "Task networks on noisy input",
) -> Figure:
    """How each frozen task network's metric falls as sigma grows (one subplot per task network).

    Args:
        curves: task name -> rows like {"sigma": 15, "top1": 0.9, "top1_std": 0.01} (as `noise_degradation`
            returns); error bars from `<metric>_std` where present.
        metric_keys: task name -> the metric key to plot (e.g. "top1", "miou"); every task needs one.

    Raises:
        ValueError: no curves, a task without a metric key, rows lacking "sigma" or the metric.
    """
    if not curves:
        raise ValueError("plot_noise_degradation needs at least one curve")
    missing = [t for t in curves if t not in metric_keys]
    if missing:
        raise ValueError(f"no metric key for {missing}; metric_keys has {sorted(metric_keys)}")
    fig = new_figure(4.0 * len(curves), 3.2)
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    for ax, (task, rows) in zip(axes, curves.items()):
        key = metric_keys[task]
        _check_rows(rows, ("sigma", key), f"curve {task!r}")
        rows = sorted(rows, key=lambda r: float(r["sigma"]))
        s = [float(r["sigma"]) for r in rows]
        v = [float(r[key]) for r in rows]
        err = [float(r[key + "_std"]) for r in rows] if all(key + "_std" in r for r in rows) else None
        ax.errorbar(s, v, yerr=err, marker="o", capsize=3, label=task)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel(_metric_label("sigma"))
        ax.set_ylabel(_metric_label(key))
        ax.set_xticks(s)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def plot_rows_vs_sigma(
    table: Mapping[str, Mapping[Any, float]],
    metric: str,
    title: str,
) -> Figure:
    """One line per row of a result table (noisy / CBM3D / separate / joint / cross-task): metric against sigma.

    Args:
        table: row name -> {sigma: value}; sigma keys may be numbers or numeric strings (JSON keys).
        metric: the metric's key (sets the y label, e.g. "top1", "miou", "psnr").
        title: the figure's title.

    Raises:
        ValueError: an empty table or row, non-numeric sigma keys.
    """
    if not table:
        raise ValueError("plot_rows_vs_sigma needs at least one row")
    fig = new_figure(5.5, 3.6)
    ax = fig.subplots()
    markers = "osD^vP*Xh"
    ticks: set[float] = set()
    for i, (row, values) in enumerate(table.items()):
        if not values:
            raise ValueError(f"row {row!r} has no values")
        try:
            pts = sorted((float(s), float(v)) for s, v in values.items())
        except (TypeError, ValueError) as e:
            raise ValueError(f"row {row!r}: sigma keys and values must be numbers, got {dict(values)}") from e
        ticks.update(p[0] for p in pts)
        ax.plot(*zip(*pts), marker=markers[i % len(markers)], label=row)
    ax.set_xticks(sorted(ticks))
    ax.set_xlabel(_metric_label("sigma"))
    ax.set_ylabel(_metric_label(metric))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _spans_differ(groups: Sequence[Sequence[float]]) -> bool:
    """True when the groups' ranges are so far apart that sharing an axis would flatten each one."""
    lo, hi = min(min(g) for g in groups), max(max(g) for g in groups)
    widest = max(max(g) - min(g) for g in groups)
    return hi - lo > 0 and widest < 0.34 * (hi - lo)


def _lambda_text(lam: float) -> str:
    """0.0625 -> "1/16", 0.25 -> "1/4", 2 -> "2", 0.3 -> "0.3"."""
    f = Fraction(lam).limit_denominator(64)
    if lam > 0 and abs(float(f) - lam) < 1e-9 and f.denominator > 1 and f.numerator == 1:
        return f"1/{f.denominator}"
    return f"{lam:g}"


#: Markers of the marked lambdas of `plot_ablation`, in order (star, diamond, square, triangle).
_MARK_SHAPES = (("*", 16), ("D", 9), ("s", 9), ("^", 10))


def plot_ablation(
    points: Mapping[str, Sequence[Mapping[str, float]]],
    *,
    x: str = "psnr",
    y: str | Mapping[str, str] = "metric",
    mark: Mapping[str, float | Mapping[str, float]] | None = None,
    lambda_key: str = "lambda",
    separate: bool | None = None,
    title: str = "λ ablation: denoising quality against task metric",
) -> Figure:
    """The lambda ablation: task metric against PSNR, one curve per task through its lambdas (the frontier).

    Args:
        points: task name -> rows like {"lambda": 0.25, "psnr": 27.1, "metric": 0.83}, one per lambda. A key
            "<name>_mean" on an axis with a "<name>_std" beside it draws that spread as error bars (seeds).
        x: the key on the x axis (PSNR in dB by default).
        y: the key on the y axis, or task name -> key (e.g. {"classification": "top1", "segmentation": "miou"}).
        mark: task name -> the paper's lambda for that task, drawn as a star, or -> {label: lambda} for several
            marked lambdas (e.g. the paper's, the authors' code's, the chosen one), each its own marker (every
            marked lambda must be one of the task's lambdas).
        lambda_key: the key holding lambda.
        separate: one subplot per task (True), one shared axes (False); None decides by the data: separate
            subplots when the tasks plot different metrics, or values so far apart that a shared axis would flatten
            the curves.
        title: the figure's title (what the y axis measures, in words).

    Raises:
        ValueError: no points, a task without a y key, rows lacking keys, a marked lambda not among the task's points.
    """
    if not points:
        raise ValueError("plot_ablation needs at least one task")
    ykey = {t: y for t in points} if isinstance(y, str) else dict(y)
    missing = [t for t in points if t not in ykey]
    if missing:
        raise ValueError(f"no y key for tasks {missing}; y has {sorted(ykey)}")
    marks = {t: dict(m) if isinstance(m, Mapping) else {"paper's": float(m)} for t, m in (mark or {}).items()}
    unknown = set(marks) - set(points)
    if unknown:
        raise ValueError(f"mark names unknown tasks {sorted(unknown)}; tasks are {list(points)}")
    for task, rows in points.items():
        _check_rows(rows, (lambda_key, x, ykey[task]), f"task {task!r}")
        for lam in marks.get(task, {}).values():
            if not any(np.isclose(float(r[lambda_key]), lam) for r in rows):
                lams = [float(r[lambda_key]) for r in rows]
                raise ValueError(f"task {task!r}: marked lambda {lam} is not among its lambdas {lams}")
    if separate is None:
        xs = [[float(r[x]) for r in rows] for rows in points.values()]
        ys = [[float(r[ykey[t]]) for r in rows] for t, rows in points.items()]
        separate = len(points) > 1 and (len(set(ykey[t] for t in points)) > 1 or _spans_differ(xs) or _spans_differ(ys))
    n_ax = len(points) if separate else 1
    fig = new_figure(4.6 * n_ax, 3.8)
    axes = fig.subplots(1, n_ax, squeeze=False)[0]
    colours = matplotlib.colormaps["tab10"].colors
    for i, (task, rows) in enumerate(points.items()):
        ax = axes[i if separate else 0]
        c = colours[i % len(colours)]
        rows = sorted(rows, key=lambda r: float(r[lambda_key]))
        px, py = [float(r[x]) for r in rows], [float(r[ykey[task]]) for r in rows]
        ax.plot(px, py, marker="o", color=c, label=task)
        xs_key, ys_key = x.removesuffix("_mean") + "_std", ykey[task].removesuffix("_mean") + "_std"
        if (x.endswith("_mean") and xs_key in rows[0]) or (ykey[task].endswith("_mean") and ys_key in rows[0]):
            ax.errorbar(px, py, xerr=[float(r.get(xs_key, 0.0)) for r in rows],
                        yerr=[float(r.get(ys_key, 0.0)) for r in rows], fmt="none", ecolor=c, alpha=0.6,
                        capsize=2)  # fmt: skip
        for r, a, b in zip(rows, px, py):
            ax.annotate(
                f"λ={_lambda_text(float(r[lambda_key]))}", (a, b), textcoords="offset points", xytext=(4, 4),
                fontsize=7, color=c,
            )  # fmt: skip
        for (label, lam), (shape, size) in zip(marks.get(task, {}).items(), _MARK_SHAPES):
            j = next(k for k, r in enumerate(rows) if np.isclose(float(r[lambda_key]), lam))
            ax.plot(
                [px[j]], [py[j]], marker=shape, markersize=size, color=c, markeredgecolor="black", linestyle="none",
                label=f"{task}: {label} λ = {_lambda_text(lam)}",
            )  # fmt: skip
        ax.set_xlabel(_metric_label(x))
        if separate:
            ax.set_title(task, fontsize=10)
            if i == 0 or len({ykey[t] for t in points}) > 1:  # one label when every panel plots one measure
                ax.set_ylabel(_metric_label(ykey[task]))
        ax.grid(alpha=0.3)
        ax.margins(0.1)
    if not separate:
        axes[0].set_ylabel(" / ".join(dict.fromkeys(_metric_label(ykey[t]) for t in points)))
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def plot_history(
    histories: Mapping[str, Sequence[Mapping[str, float]]],
    keys: Sequence[str] = ("loss",),
    *,
    logy: bool = False,
    step_key: str = "step",
) -> Figure:
    """Training curves: one subplot per key, one line per run, step on x.

    Args:
        histories: run name -> history rows (as `dmh.training.train` returns: {"step", "lr", "loss", ...}). Rows that
            lack a key are skipped for that key (e.g. a validation metric logged once).
        keys: the logged values to plot.
        logy: logarithmic y axes.
        step_key: the key of the x value.

    Raises:
        ValueError: no histories or keys, rows without a step, a key that no run logged.
    """
    if not histories or not keys:
        raise ValueError("plot_history needs at least one history and one key")
    for run, rows in histories.items():
        _check_rows(rows, (step_key,), f"history {run!r}")
    fig = new_figure(4.2 * len(keys), 3.2)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        drawn = 0
        for run, rows in histories.items():
            pts = [(float(r[step_key]), float(r[key])) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts), marker="." if len(pts) < 30 else None, label=run)
                drawn += 1
        if not drawn:
            raise ValueError(f"no history logged {key!r}")
        if logy:
            ax.set_yscale("log")
            # Ticks at 1, 2, 5 x 10^k written as plain numbers (0.05, 0.1, 0.2), not 5x10^-2.
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(step_key)
        ax.set_ylabel(_metric_label(key))
        ax.grid(alpha=0.3, which="both" if logy else "major")
        if len(histories) > 1:
            ax.legend(fontsize=8)
    return fig


def plot_bars(
    values: Mapping[str, Mapping[str, float]],
    ylabel: str,
    *,
    title: str | None = None,
    reference: float | None = None,
    errors: Mapping[str, Mapping[str, float]] | None = None,
) -> Figure:
    """Grouped bars: one colour per series (outer key, e.g. the method), one group per inner key (e.g. the image).

    Args:
        values: series -> {group: value}, e.g. {"CBM3D": {"kodim23": 0.71, ...}, "joint": {...}}; a missing group
            leaves a gap.
        ylabel: the y label (with units).
        title: the figure's title.
        reference: draw a dashed horizontal line at this value (e.g. 1.0 for a ratio to the clean image).
        errors: the same shape as `values`: half-lengths of error bars (e.g. std over seeds or noise draws).

    Raises:
        ValueError: no series, or no values at all.
    """
    if not values or not any(values.values()):
        raise ValueError("plot_bars needs at least one series with values")
    groups = list(dict.fromkeys(g for series in values.values() for g in series))
    n = len(values)
    width = 0.8 / n
    fig = new_figure(max(4.0, 0.5 + len(groups) * (0.35 * n + 0.4)), 3.4)
    ax = fig.subplots()
    centers = np.arange(len(groups))
    for i, (name, series) in enumerate(values.items()):
        vals = [float(series.get(g, np.nan)) for g in groups]
        err = [float((errors or {}).get(name, {}).get(g, 0.0)) for g in groups] if errors else None
        ax.bar(centers + (i - (n - 1) / 2) * width, vals, width, label=name, yerr=err, capsize=2 if err else 0)
    if reference is not None:
        ax.axhline(reference, color="0.3", linestyle="--", linewidth=1)
    tilt = len(groups) > 8 or max(len(g) for g in groups) * len(groups) > 60
    ax.set_xticks(centers, groups, rotation=30 if tilt else 0, ha="right" if tilt else "center")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    fig.legend(loc="outside right upper", fontsize=8, frameon=False)
    return fig


#: Colours of the verdicts in `plot_verdicts`.
VERDICT_COLOURS = {"held": "tab:green", "did not hold": "tab:red", "within noise": "0.5"}


def plot_verdicts(
    claims: Sequence[Mapping[str, Any]],
    unit: float = 100.0,
    xlabel: str = "a - b (points)",
    title: str = "claims 2 and 3: does row a beat row b?",
) -> Figure:
    """The claim read-out at a glance: one line per comparison "a beats b", its difference (times `unit`) with a bar of
    +- 2 standard errors, coloured by verdict ("held" / "did not hold" / "within noise"), zero dashed.

    Args:
        claims: rows of `dmh.study.verdicts` ({"claim", "task", "a", "b", "diff", "se", "verdict"}).
        unit: scale of the differences (100: metrics in [0, 1] shown as points).
        xlabel: the x label.
        title: the figure's title.
    """
    if not claims:
        raise ValueError("plot_verdicts needs at least one claim")
    fig = new_figure(7.5, 0.45 * len(claims) + 1.2)
    ax = fig.subplots()
    for k, c in enumerate(claims):
        y = len(claims) - 1 - k
        se = float(c["se"]) if np.isfinite(float(c["se"])) else 0.0
        colour = VERDICT_COLOURS.get(c["verdict"], "black")
        ax.errorbar([unit * float(c["diff"])], [y], xerr=[2 * unit * se], fmt="o", color=colour, capsize=3)
    ax.axvline(0, color="0.3", linestyle="--", linewidth=1)
    labels = [f"{c['task']}{' ' + c['measure'] if 'measure' in c else ''}: {c['a']} vs {c['b']}" for c in claims]
    ax.set_yticks(range(len(claims)), labels[::-1], fontsize=8)
    ax.set_xlabel(xlabel + ", bar: +- 2 standard errors over seeds")
    for verdict, colour in VERDICT_COLOURS.items():
        ax.plot([], [], "o", color=colour, label=verdict)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3, axis="x")
    fig.suptitle(title)
    return fig


def plot_answer(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """The answer as a forest plot: one panel per unit (points of top-1, of mean IoU, of agreement, dB, a texture
    measure), one line per comparison with its difference and a bar of +- 2 standard errors, coloured by verdict,
    zero dashed.

    Args:
        rows: `dmh.docs.answer_rows` rows ({"claim", "comparison", "on", "diff", "se", "scale", "unit", "verdict"}).
    """
    if not rows:
        raise ValueError("plot_answer needs at least one row")
    texture = "texture measure, positive: joint's better"
    units = list(dict.fromkeys(r["unit"] or texture for r in rows))
    groups = {u: [r for r in rows if (r["unit"] or texture) == u] for u in units}
    fig = new_figure(8.5, 0.42 * len(rows) + 0.9 * len(units) + 0.8)
    axes = fig.subplots(len(units), 1, gridspec_kw={"height_ratios": [len(g) + 0.8 for g in groups.values()]})
    axes = np.atleast_1d(axes)
    for ax, (unit, group) in zip(axes, groups.items()):
        for k, r in enumerate(group):
            y = len(group) - 1 - k
            se = float(r["se"]) if np.isfinite(float(r["se"])) else 0.0
            ax.errorbar([r["scale"] * float(r["diff"])], [y], xerr=[2 * r["scale"] * se], fmt="o", capsize=3,
                        color=VERDICT_COLOURS.get(r["verdict"], "black"))  # fmt: skip
        ax.axvline(0, color="0.3", linestyle="--", linewidth=1)
        labels = [f"{r['claim'][:3]} {r['comparison']}, {r['on']}" for r in group]
        ax.set_yticks(range(len(group)), [t if len(t) < 90 else t[:87] + "..." for t in labels[::-1]], fontsize=7)
        ax.set_xlabel(f"difference, {unit}; bar: +- 2 standard errors", fontsize=8)
        ax.grid(alpha=0.3, axis="x")
    for verdict, colour in VERDICT_COLOURS.items():
        axes[0].plot([], [], "o", color=colour, label=verdict)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("the answer: each claim's headline comparison (a vs b: the difference a - b)")
    return fig
