"""dmh.viz: every figure function returns a Figure with the expected axes / lines / images on tiny inputs, saving
writes a PNG, and bad input is a clear ValueError."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from dmh import viz

SIGMAS = (15, 30, 45, 60)


def _panels(c: int = 1, h: int = 12, w: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(c, h, w, generator=g)
    return {"noisy": clean + 0.3 * torch.randn(c, h, w, generator=g), "joint": clean * 0.9, "clean": clean}


# --------------------------------------------------------------------------------------------- comparison_grid
@pytest.mark.parametrize("c", [1, 3])
def test_comparison_grid_one_column_per_panel(c):
    fig = viz.comparison_grid(_panels(c), metrics={"noisy": "20.1 dB", "joint": "28.3 dB"})
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    assert all(len(ax.images) == 1 for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == ["noisy\n20.1 dB", "joint\n28.3 dB", "clean"]
    shown = fig.axes[0].images[0].get_array()
    assert shown.min() >= 0 and shown.max() <= 1  # noisy values were clipped for display
    assert shown.shape == ((12, 16) if c == 1 else (12, 16, 3))


def test_comparison_grid_zoom_row_and_box():
    fig = viz.comparison_grid(_panels(), zoom=(2, 4, 4, 6))
    assert len(fig.axes) == 6
    top, bottom = fig.axes[:3], fig.axes[3:]
    for ax in top:
        boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(boxes) == 1 and (boxes[0].get_width(), boxes[0].get_height()) == (6, 4)
    # Nearest-neighbour upscaling by an integer factor (ceil(max(12/4, 16/6)) = 3): each crop pixel a 3x3 block.
    crop = bottom[2].images[0].get_array()
    assert crop.shape == (12, 18)
    clean = _panels()["clean"][0, 2:6, 4:10].numpy()
    np.testing.assert_allclose(crop[::3, ::3], clean, rtol=1e-6)
    np.testing.assert_allclose(crop[1::3, 2::3], clean, rtol=1e-6)


def test_comparison_grid_bad_input():
    with pytest.raises(ValueError, match="at least one panel"):
        viz.comparison_grid({})
    p = _panels()
    p["clean"] = torch.rand(1, 12, 15)
    with pytest.raises(ValueError, match="same shape"):
        viz.comparison_grid(p)
    with pytest.raises(ValueError, match="does not fit"):
        viz.comparison_grid(_panels(), zoom=(10, 0, 4, 4))
    with pytest.raises(ValueError, match="unknown panels"):
        viz.comparison_grid(_panels(), metrics={"cbm3d": "1 dB"})
    with pytest.raises(ValueError, match="C = 1 or 3"):
        viz.comparison_grid({"x": torch.rand(2, 8, 8)})


# ------------------------------------------------------------------------------------------------- plot_scenes
def test_plot_scenes_images_maps_and_legend():
    g = torch.Generator().manual_seed(0)
    names = ["background", "a", "b", "c"]
    fig = viz.plot_scenes(torch.rand(3, 1, 10, 10, generator=g), torch.randint(0, 4, (3, 10, 10), generator=g), names)
    assert len(fig.axes) == 6  # n = 6 but only 3 scenes: 2 rows x 3
    assert all(len(ax.images) == 1 for ax in fig.axes)
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == names
    cmap = viz.label_cmap(4)
    assert max(cmap(0)[:3]) < 0.15  # background is dark


def test_plot_scenes_bad_input():
    x, y = torch.rand(2, 1, 8, 8), torch.zeros(2, 8, 8, dtype=torch.int64)
    with pytest.raises(ValueError, match="labels must be"):
        viz.plot_scenes(x, y[:, :7], ["bg", "a"])
    with pytest.raises(ValueError, match="class names"):
        viz.plot_scenes(x, y + 2, ["bg", "a"])
    with pytest.raises(ValueError, match="images must be"):
        viz.plot_scenes(x[:, 0], y, ["bg", "a"])


# ------------------------------------------------------------------------------------------ line and bar plots
def test_plot_noise_degradation_one_subplot_per_task_with_error_bars():
    curves = {
        "classifier": [{"sigma": s, "top1": 1 - s / 100, "top1_std": 0.01} for s in SIGMAS],
        "segmenter": [{"sigma": s, "miou": 0.8 - s / 200} for s in reversed(SIGMAS)],
    }
    fig = viz.plot_noise_degradation(curves, {"classifier": "top1", "segmenter": "miou"})
    assert len(fig.axes) == 2
    (c0,), (c1,) = (ax.containers for ax in fig.axes)
    assert isinstance(c0, ErrorbarContainer) and c0.has_yerr
    assert not c1.has_yerr  # no "_std" keys
    np.testing.assert_array_equal(c1.lines[0].get_xdata(), SIGMAS)  # sorted by sigma
    assert fig.axes[1].get_ylabel() == "mean IoU"
    with pytest.raises(ValueError, match="no metric key"):
        viz.plot_noise_degradation(curves, {"classifier": "top1"})
    with pytest.raises(ValueError, match="lack the key 'top5'"):
        viz.plot_noise_degradation(curves, {"classifier": "top5", "segmenter": "miou"})
    with pytest.raises(ValueError, match="at least one"):
        viz.plot_noise_degradation({}, {})


def test_plot_rows_vs_sigma_one_line_per_row():
    table = {
        "noisy": {15: 0.8, 30: 0.6, 45: 0.4},
        "joint": {"15": 0.9, "30": 0.85, "45": 0.8},  # JSON gives string keys
        "separate": {45.0: 0.7, 15.0: 0.88, 30.0: 0.8},
    }
    fig = viz.plot_rows_vs_sigma(table, "top1", "Table 2")
    (ax,) = fig.axes
    assert len(ax.lines) == 3
    np.testing.assert_array_equal(ax.lines[2].get_xdata(), [15, 30, 45])
    assert ax.get_ylabel() == "top-1 accuracy" and ax.get_title() == "Table 2"
    with pytest.raises(ValueError, match="at least one row"):
        viz.plot_rows_vs_sigma({}, "top1", "t")
    with pytest.raises(ValueError, match="must be numbers"):
        viz.plot_rows_vs_sigma({"noisy": {"high": 0.1}}, "top1", "t")


def _ablation(psnr0: float, m0: float) -> list[dict[str, float]]:
    lams = (0, 1 / 16, 1 / 4, 1)
    return [{"lambda": lam, "psnr": psnr0 - lam, "metric": m0 + 0.05 * lam} for lam in lams]


def test_plot_ablation_shared_and_separate():
    pts = {"cls": _ablation(29.0, 0.80), "seg": _ablation(28.8, 0.82)}
    fig = viz.plot_ablation(pts, mark={"cls": 0.25, "seg": 0.5 / 2})
    (ax,) = fig.axes  # same scale: one shared axes
    assert len(ax.lines) == 4  # two curves + two stars
    texts = [t.get_text() for t in ax.texts]
    assert "λ=1/4" in texts and "λ=1/16" in texts and "λ=0" in texts
    fig = viz.plot_ablation(pts, y={"cls": "metric", "seg": "psnr"})
    assert len(fig.axes) == 2  # different metrics: one subplot per task, each with its label
    assert all(ax.get_ylabel() for ax in fig.axes) and fig.axes[0].get_ylabel() != fig.axes[1].get_ylabel()
    far = {"cls": _ablation(29.0, 0.80), "seg": _ablation(20.0, 0.20)}
    axes = viz.plot_ablation(far).axes
    assert len(axes) == 2  # values far apart: separate
    assert axes[0].get_ylabel() and not axes[1].get_ylabel()  # one measure: labelled once, clear of the title
    assert len(viz.plot_ablation(far, separate=False).axes) == 1
    with pytest.raises(ValueError, match="not among its lambdas"):
        viz.plot_ablation(pts, mark={"cls": 0.5})
    with pytest.raises(ValueError, match="unknown tasks"):
        viz.plot_ablation(pts, mark={"det": 0.5})
    with pytest.raises(ValueError, match="lack the key 'top1'"):
        viz.plot_ablation(pts, y="top1")


def test_plot_ablation_marks_several_lambdas_and_draws_seed_spread():
    pts = {"cls": [{**r, "psnr_mean": r["psnr"], "psnr_std": 0.1, "metric_mean": r["metric"], "metric_std": 0.01}
                   for r in _ablation(29.0, 0.80)]}  # fmt: skip
    marks = {"cls": {"paper": 0.25, "authors' code": 1 / 16, "chosen on validation": 1.0}}
    fig = viz.plot_ablation(pts, x="psnr_mean", y="metric_mean", mark=marks)
    (ax,) = fig.axes
    labels = [h.get_label() for h in ax.get_legend().legend_handles]
    assert any("chosen on validation λ = 1" in t for t in labels) and any("authors' code" in t for t in labels)
    assert len(ax.collections) >= 1  # the error bars
    with pytest.raises(ValueError, match="not among its lambdas"):
        viz.plot_ablation(pts, x="psnr_mean", y="metric_mean", mark={"cls": {"chosen": 0.5}})


def test_plot_history_one_subplot_per_key():
    runs = {
        "separate": [{"step": s, "loss": 1 / s, "rec": 0.5 / s} for s in (10, 20, 30)],
        "joint": [{"step": s, "loss": 2 / s} for s in (10, 20, 30)] + [{"step": 30, "val_top1": 0.9}],
    }
    fig = viz.plot_history(runs, ("loss", "rec"), logy=True)
    assert len(fig.axes) == 2
    assert [len(ax.lines) for ax in fig.axes] == [2, 1]  # "joint" never logged "rec"
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="no history logged 'task'"):
        viz.plot_history(runs, ("task",))
    with pytest.raises(ValueError, match="lack the key 'step'"):
        viz.plot_history({"x": [{"loss": 1.0}]})


def test_plot_bars_grouped():
    values = {"CBM3D": {"a": 0.7, "b": 0.8, "c": 0.6}, "joint": {"a": 0.9, "c": 0.85}}
    fig = viz.plot_bars(values, "ratio to clean", reference=1.0)
    (ax,) = fig.axes
    assert len(ax.patches) == 6  # 2 series x 3 groups; the missing one is a NaN bar (a gap)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert len(ax.lines) == 1  # the reference line
    with pytest.raises(ValueError, match="at least one series"):
        viz.plot_bars({}, "y")
    with pytest.raises(ValueError, match="at least one series"):
        viz.plot_bars({"x": {}}, "y")


# ------------------------------------------------------------------------------------------------------ saving
def test_save_figure_writes_png_and_closes(tmp_path):
    fig = viz.comparison_grid(_panels(3), zoom=(0, 0, 4, 4))
    out = viz.save_figure(fig, tmp_path / "a" / "b" / "grid.png", dpi=50)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == []  # no figure left open by any function here


def test_plot_verdicts_and_bars_with_error_bars():
    claims = [
        {"claim": "(2)", "task": "A", "a": "joint (chosen)", "b": "separate", "diff": 0.02, "se": 0.004,
         "verdict": "held"},
        {"claim": "(3)", "task": "B", "a": "cross-task", "b": "separate", "diff": -0.001, "se": float("nan"),
         "verdict": "within noise"},
    ]  # fmt: skip
    fig = viz.plot_verdicts(claims)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "B: cross-task vs separate",
        "A: joint (chosen) vs separate",
    ]
    with pytest.raises(ValueError):
        viz.plot_verdicts([])
    fig = viz.plot_bars({"joint": {"sigma 25": 0.8}}, "top-1", errors={"joint": {"sigma 25": 0.05}})
    assert fig.axes[0].containers  # bars with their error bars
