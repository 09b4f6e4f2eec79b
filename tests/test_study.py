"""Pieces of the study that the notebooks call: presets, train-or-load, the CBM3D mosaic, zoom boxes, reports."""

from __future__ import annotations

import dataclasses
import json
import statistics

import pytest
import torch
import torch.nn.functional as F

from dmh import report, study, tasks
from dmh.baselines import cbm3d_mosaic
from dmh.checkpoint import fingerprint, last_checkpoint, load_checkpoint
from dmh.metrics import psnr
from dmh.nets import DenoiseNet
from dmh.noise import add_noise
from dmh.presets import PRESETS, get_preset
from dmh.study import sweeps
from dmh.training import TrainConfig


def test_presets_defined_once_and_overridable():
    assert set(PRESETS) == {"smoke", "cpu", "full", "paper"}
    p = get_preset("cpu", joint_steps=7)
    assert p.joint_steps == 7 and p.cls.lam_paper == 0.25 and p.seg.lam_paper == 0.5
    assert PRESETS["cpu"].joint_steps != 7  # not mutated
    assert PRESETS["paper"].task_sigmas == (15.0, 30.0, 45.0, 60.0)
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("gpu")
    with pytest.raises(ValueError, match="unknown preset fields"):
        get_preset("cpu", lamda=1)
    for p in PRESETS.values():  # the paper's and the code's lambdas are sweep points, so the plot can mark them
        assert p.name == "paper" or {0, p.cls.lam_paper, p.seg.lam_paper, p.cls.lam_code, p.seg.lam_code} <= set(
            p.ablation_lams
        )
    decades = [lam for lam in PRESETS["cpu"].ablation_lams if lam > 0]
    assert min(decades) <= 1e-3 and max(decades) >= 1 and len(PRESETS["cpu"].seeds) >= 3
    with pytest.raises(ValueError, match="missing"):
        get_preset("cpu", ablation_lams=(0.0, 0.25))
    with pytest.raises(ValueError, match="seeds"):
        get_preset("cpu", seeds=(1, 1))


def test_cpu_data_study_refuses_the_paper_preset(tmp_path):
    with pytest.raises(NotImplementedError, match="torchrun -m dmh.ddp"):
        study.colour_denoiser(get_preset("paper"), tmp_path)
    from dmh.paper import PAPER

    assert PRESETS["paper"].joint_lr == PAPER.classification.lr and PRESETS["paper"].colour_steps == PAPER.denoise.steps


def test_train_or_load_trains_once_then_loads(tmp_path):
    clean = torch.rand(16, 1, 16, 16)
    calls = []

    def step(net, g):
        calls.append(1)
        idx = torch.randint(0, 16, (4,), generator=g)
        x = clean[idx]
        return F.mse_loss(net(add_noise(x, 25, g)), x), {}

    cfg = TrainConfig(max_steps=4, log_every=2, progress=False)
    torch.manual_seed(0)
    a = DenoiseNet(1, 0.125)
    hist = study.train_once(a, step, cfg, tmp_path / "run", "t")
    assert len(calls) == 4 and len(hist) == 2
    torch.manual_seed(0)
    b = DenoiseNet(1, 0.125)
    assert study.train_once(b, step, cfg, tmp_path / "run", "t") == hist and len(calls) == 4
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_train_or_load_retrains_when_its_inputs_change(tmp_path, capsys):
    clean = torch.rand(8, 1, 16, 16)
    calls = []

    def step(net, g):
        calls.append(1)
        return F.mse_loss(net(add_noise(clean, 25, g)), clean), {}

    cfg = TrainConfig(max_steps=2, log_every=1, progress=False)
    task_a, task_b = DenoiseNet(1, 0.125), DenoiseNet(1, 0.125)  # stand-ins for two frozen task networks

    def run(net, task):
        return study.train_once(net, step, cfg, tmp_path / "run", "t", {"task": fingerprint(task)})

    torch.manual_seed(0)
    start = DenoiseNet(1, 0.125).state_dict()
    net = DenoiseNet(1, 0.125)
    net.load_state_dict(start)
    run(net, task_a)
    assert len(calls) == 2
    again = DenoiseNet(1, 0.125)
    again.load_state_dict(start)
    run(again, task_a)  # same start, same task network: loaded
    assert len(calls) == 2 and fingerprint(again) == fingerprint(net)
    other_task = DenoiseNet(1, 0.125)
    other_task.load_state_dict(start)
    run(other_task, task_b)  # another task network: trained anew, the stale checkpoints replaced
    assert len(calls) == 4 and "training anew" in capsys.readouterr().out
    other_start = DenoiseNet(1, 0.25)  # another starting point (here also another width)
    run(other_start, task_b)
    assert len(calls) == 6 and len(list((tmp_path / "run").glob("step_*.pt"))) == 2  # keep_last of the new run
    ckpt = load_checkpoint(last_checkpoint(tmp_path / "run"))
    assert ckpt["arch"]["width"] == 0.25 and ckpt["inputs"]["task"] == fingerprint(task_b)


def test_fingerprint_sees_every_weight_and_buffer():
    torch.manual_seed(0)
    net = DenoiseNet(1, 0.125)
    fp = fingerprint(net)
    for name, t in list(net.state_dict().items())[:: max(len(net.state_dict()) // 5, 1)]:
        kept = t.clone()
        t.add_(1)
        assert fingerprint(net) != fp, name
        t.copy_(kept)
        assert fingerprint(net) == fp, name


def test_load_trained_names_the_missing_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="04_joint"):
        study.load_trained(DenoiseNet(1, 0.125), tmp_path / "none", 4, "04_joint_classification.ipynb")


def test_colour_base_is_the_released_model_or_notebook_01(tmp_path):
    from dmh.nets import denoisenet

    net, label = study.load_colour_base(get_preset("smoke"), tmp_path)
    assert label == "released colour-blind"
    assert fingerprint(net) == fingerprint(denoisenet(weights="colour-blind"))
    with pytest.raises(FileNotFoundError, match="01_denoiser"):  # 01 has not run in tmp_path
        study.load_colour_base(get_preset("smoke", colour_base="01"), tmp_path)
    with pytest.raises(ValueError, match="colour_base must be"):
        get_preset("cpu", colour_base="colour-s99")


def test_cbm3d_mosaic_denoises_each_image_in_place():
    g = torch.Generator().manual_seed(0)
    clean = torch.zeros(5, 1, 28, 28)
    for k in range(5):
        clean[k, :, 4 + k : 20, 6:22] = 0.2 + 0.15 * k  # different flat squares
    noisy = add_noise(clean, 25, g)
    den = cbm3d_mosaic(noisy, 25)
    assert den.shape == clean.shape
    for k in range(5):
        assert psnr(den[k], clean[k]) > psnr(noisy[k], clean[k]) + 5
        assert (den[k] - clean[k]).abs().mean() < (den[k] - clean[(k + 1) % 5]).abs().mean()


def test_zoom_box_is_inside_and_textured():
    p = get_preset("smoke")
    for name in study.test_photo_names(p):
        top, left, h, w = study.zoom_box(name, p)
        assert h == w and top >= 0 and left >= 0 and top + h <= p.photo_crop and left + w <= p.photo_crop


def test_require_and_json_roundtrip(tmp_path):
    path = study.write_json(tmp_path / "a" / "x.json", {"a": 1.5, "b": [1, 2]})
    assert study.read_json(path) == {"a": 1.5, "b": [1, 2]}
    with pytest.raises(FileNotFoundError, match="run 03_lambda_ablation.ipynb first"):
        study.require(tmp_path / "missing.json", "03_lambda_ablation.ipynb")


def test_report_tables(tmp_path):
    t2 = {
        "task": "A", "metric": "top1", "clean": 0.93, "n": 100, "n_subset": 10,
        "rows": {r: {"30": {"metric": 0.5 + i / 10, "psnr": 20.0 + i, "metric_subset": 0.5, "psnr_subset": 20.0}}
                 for i, r in enumerate(("noisy", "separate", "joint", "cross-task"))},
    }  # fmt: skip
    t2["rows"]["CBM3D"] = {"30": {"metric_subset": 0.6, "psnr_subset": 25.0}}
    md = report.task_table_md(t2)
    assert "| joint | 70.0 (22.0 dB) |" in md and "CBM3D" not in md
    assert "| CBM3D | 60.0 (25.0 dB) |" in report.task_table_md(t2, subset=True)
    assert report.rows_vs_sigma(t2)["joint"] == {30.0: pytest.approx(0.7)}
    study.write_json(tmp_path / "table2.json", t2)
    rep = report.write_report(tmp_path, "machine X")
    assert "Table 2" in rep.read_text() and "machine X" in rep.read_text()


def test_pretrained_summary_names_the_kept_weights():
    manifest = tasks.read_manifest()
    summary = study.pretrained_summary()
    assert set(summary) == {"fashion_item_classifier", "fashion_segmenter"}
    for name, e in summary.items():
        assert (e["sha256"], e["commit"], e["steps"]) == (
            manifest[name]["sha256"], manifest[name]["commit"], manifest[name]["config"]["max_steps"]
        )  # fmt: skip
    md = report.pretrained_md({"pretrained": summary})
    row_b = next(line for line in md.splitlines() if line.startswith("| fashion_segmenter"))
    assert f"| {100 * manifest['fashion_segmenter']['metrics']['miou']:.2f} |" in row_b
    assert manifest["fashion_segmenter"]["sha256"][:12] in row_b
    assert report.pretrained_md({}) == ""


def _table(task: str, per_seed: dict[str, list[float]]) -> dict:
    """A synthetic table2/3.json: each row's metric per seed, the same at both sigmas."""
    rows = {}
    for row, vals in per_seed.items():
        std = statistics.stdev(vals) if len(vals) > 1 else 0.0
        cell = {"metric_seeds": vals, "metric": sum(vals) / len(vals), "metric_std": std, "psnr": 20.0,
                "metric_subset_seeds": vals, "metric_subset": sum(vals) / len(vals), "psnr_subset": 20.0}  # fmt: skip
        rows[row] = {"30": dict(cell), "60": dict(cell)}
    seeds = {r: len(v) for r, v in per_seed.items()}
    lams = {
        "joint (chosen)": {"task": task, "lam": 0.02},
        "cross-task": {"task": "B" if task == "A" else "A", "lam": 0.5},
    }
    return {"task": task, "metric": "top1" if task == "A" else "miou", "clean": 0.9, "n": 10, "n_subset": 5,
            "rows": rows, "seeds": seeds, "lams": lams}  # fmt: skip


def test_claims_are_computed_from_the_tables_with_two_standard_errors(tmp_path):
    a = _table("A", {"noisy": [0.3], "CBM3D": [0.80], "separate": [0.80, 0.81, 0.82],
                     "joint (paper)": [0.81, 0.83, 0.79], "joint (chosen)": [0.85, 0.86, 0.87],
                     "cross-task": [0.70, 0.71, 0.72]})  # fmt: skip
    b = _table("B", {"noisy": [0.1], "CBM3D": [0.60], "separate": [0.5, 0.5, 0.5], "joint (paper)": [0.5, 0.5, 0.5],
                     "joint (chosen)": [0.5, 0.5, 0.5], "cross-task": [0.5, 0.5, 0.5]})  # fmt: skip
    study.write_json(tmp_path / "table2.json", a)
    study.write_json(tmp_path / "table3.json", b)
    res = study.claims(tmp_path)
    got = {(c["task"], c["claim"], c["a"]): c["verdict"] for c in res["claims"]}
    assert got[("A", "(2) joint beats separate", "joint (chosen)")] == "held"  # +0.05, se 0.008
    assert got[("A", "(2) joint beats separate", "joint (paper)")] == "within noise"
    assert got[("A", "(2) joint beats CBM3D", "joint (chosen)")] == "held"
    assert got[("A", "(3) cross-task beats separate", "cross-task")] == "did not hold"
    assert got[("B", "(2) joint beats CBM3D", "joint (chosen)")] == "did not hold"  # se 0 both sides
    assert study.read_json(tmp_path / "claims.json") == json.loads(json.dumps(res))
    md = report.claims_md(res)
    assert "**held**" in md and "2 standard errors" in md
    table = report.task_table_md(a)
    assert "| joint (chosen), λ=0.02, 3 seeds | 86.0 ± 1.0 (20.0 dB)" in table and "cross-task, λ=0.5 via B" in table


def test_choose_run_length_is_the_first_settled_length():
    """The rule fixed before the probe: the shortest length within 0.1 dB and 1 point of the longest, for every run."""
    curve = {"curves": [
        {"step": [0, 300, 600, 900], "psnr": [20.0, 21.5, 21.95, 22.0], "metric": [0.80, 0.84, 0.855, 0.86]},
        {"step": [0, 300, 600, 900], "psnr": [20.0, 21.0, 21.8, 21.85], "metric": [0.80, 0.82, 0.832, 0.84]},
    ]}  # fmt: skip
    assert study.choose_run_length(curve)["steps"] == 600
    curve["curves"][1]["metric"][2] = 0.829  # 1.1 points short at 600: not settled before the end
    assert study.choose_run_length(curve)["steps"] == 900


def test_run_length_curve_scores_validation_data_along_the_run(tmp_path):
    p = get_preset("smoke", cls={"n_val": 16})
    torch.manual_seed(0)
    base = DenoiseNet(1, 0.125).eval()
    res = study.run_length_curve(base, p, {"A": (0.0, 0.25)}, steps=4, every=2, out=tmp_path, progress=False)
    assert [c["lam"] for c in res["curves"]] == [0.0, 0.25]
    for c in res["curves"]:
        assert c["step"] == [0, 2, 4] and len(c["psnr"]) == len(c["metric"]) == 3
        assert c["psnr"][0] == res["curves"][0]["psnr"][0]  # both start from the same base on the same noise
    assert json.loads((tmp_path / "run_length.json").read_text())["curves"][1]["step"] == [0, 2, 4]
    assert study.choose_run_length(res)["steps"] in (2, 4)


def test_train_sweep_keeps_every_run_and_a_second_call_trains_nothing(tmp_path, monkeypatch):
    from dmh import runs

    torch.manual_seed(0)
    base = DenoiseNet(1, 0.125).eval()
    monkeypatch.setattr(sweeps, "load_grey_base", lambda p, out: base)
    monkeypatch.setattr(runs, "KEPT_DIR", tmp_path / "kept")
    p = get_preset("smoke", seeds=(0,), joint_steps=1, workers=1)
    tags = [r.tag for r in study.sweep_runs(p)]
    assert len(tags) == 2 * len(p.ablation_lams) and tags[0].startswith("A_lam0_seed0")
    assert study.train_sweep(p, tmp_path / "res", colour=False) == tags
    assert set(runs._kept_manifest(tmp_path / "kept")) == set(tags)
    assert study.train_sweep(p, tmp_path / "res", hours=0, colour=False) == []  # out of hours before the first run
    # A fresh results folder with the kept runs: the sweep's fine-tunes are copied, not trained.
    fresh = tmp_path / "fresh"
    assert runs.train_many(study.sweep_runs(p), base, fresh, kept=True) == tags
    r = study.sweep_runs(p)[3]
    assert fingerprint(runs.load(r, base, fresh, "03")) == fingerprint(runs.load(r, base, tmp_path / "res", "03"))


def test_texture_claims_compare_seeds_and_report_the_psnr_gap(tmp_path):
    rows = []
    for im in ("a", "b"):
        for sigma in (25.0, 50.0):
            rows.append({"image": im, "sigma": sigma, "method": "noisy", "seed": 0, "psnr": 20.0, "ssim": 0.3,
                         "hf_ratio": 3.0, "gms": 0.7})  # fmt: skip
            for sd, (g_sep, g_joint) in enumerate(((0.90, 0.95), (0.91, 0.96), (0.89, 0.94))):
                rows.append({"image": im, "sigma": sigma, "method": "separate", "seed": sd, "psnr": 30.0,
                             "ssim": 0.85, "hf_ratio": 0.8, "gms": g_sep})  # fmt: skip
                rows.append({"image": im, "sigma": sigma, "method": "joint (chosen)", "seed": sd, "psnr": 29.8,
                             "ssim": 0.85 + 0.001 * (sd - 1), "hf_ratio": 0.9, "gms": g_joint})  # fmt: skip
    study.write_json(tmp_path / "texture.json", {"rows": rows})
    res = study.texture_claims(tmp_path)
    got = {(c["measure"], c["a"]): c for c in res["claims"]}
    assert set(got) == {("gms", "joint (chosen)"), ("ssim", "joint (chosen)")}  # no "joint (paper)" rows here
    assert got[("gms", "joint (chosen)")]["verdict"] == "held" and got[("gms", "joint (chosen)")]["n_a"] == 3
    assert got[("ssim", "joint (chosen)")]["verdict"] == "within noise"
    assert abs(got[("gms", "joint (chosen)")]["psnr_diff"] + 0.2) < 1e-9
    md = report.claims4_md(res)
    assert "**held**" in md and "-0.20" in md
    bars = report.texture_bars({"rows": rows}, 25.0, "gms")
    assert abs(bars["a"]["separate"] - 0.90) < 1e-9  # mean over the seeds


def test_colour_sweep_rows_and_tables_at_smoke_size(tmp_path):
    """07's chain at smoke size: the sweep on validation crops, the chosen lambda, the seeded rows, ImageNet-20."""
    p = get_preset("smoke", seeds=(0, 1), eff_lams=(0.0, 0.25))
    torch.manual_seed(0)
    base = DenoiseNet(3, 0.125).eval()
    abl = study.colour_ablation(base, p, tmp_path, progress=False)
    assert [pt["lam"] for pt in abl["points"]] == [0.0, 0.25]
    assert abl["n"] == 55  # the grid of 64-px crops every 320 px over the 10 VAL photographs
    assert abl["chosen"]["lam"] in (None, 0.25) and (tmp_path / "eff_ablation.json").is_file()
    assert "agreement" in report.eff_ablation_md(abl)
    rows, lams = study.colour_rows(base, p, tmp_path, abl, progress=False)
    assert set(rows) == {"separate", "joint (paper)", "joint (chosen)"} and all(len(v) == 2 for v in rows.values())
    assert lams["separate"] == 0.0 and lams["joint (paper)"] == p.eff_lam
    assert fingerprint(rows["separate"][0]) != fingerprint(rows["separate"][1])  # one denoiser per seed
    imnet = study.imagenet_table({"separate": rows["separate"]}, p, tmp_path)
    assert imnet["rows"]["separate"]["50"]["seeds"] == 2 and "x 2 seeds" in report.imagenet_md(imnet)


def test_train_sweep_then_07s_colour_runs_are_kept(tmp_path, monkeypatch):
    """With `colour`, after the grey sweep: 07's sweep, its lambda choice on validation crops, then its seeded rows."""
    from dmh import runs

    torch.manual_seed(0)
    grey, colour = DenoiseNet(1, 0.125).eval(), DenoiseNet(3, 0.125).eval()
    monkeypatch.setattr(sweeps, "load_grey_base", lambda p, out: grey)
    monkeypatch.setattr(sweeps, "load_colour_base", lambda p, out: (colour, "c"))
    monkeypatch.setattr(runs, "KEPT_DIR", tmp_path / "kept")
    p = get_preset(
        "smoke",
        seeds=(0, 1),
        joint_steps=1,
        eff_steps=1,
        eff_lams=(0.0, 0.25),
        ablation_lams=(0.0, 0.004, 0.02, 0.25, 0.5),
    )
    kept = study.train_sweep(p, tmp_path / "res")
    e = [t for t in kept if t.startswith("E_")]
    assert e[:2] in (["E_lam0_seed0_1", "E_lam0.25_seed0_1"], ["E_lam0.25_seed0_1", "E_lam0_seed0_1"])
    assert {"E_lam0_seed1_1", "E_lam0.25_seed1_1"} <= set(e) and (tmp_path / "res" / "eff_ablation.json").is_file()
    assert set(kept) == set(runs._kept_manifest(tmp_path / "kept"))
    scores = json.loads((tmp_path / "kept" / "val_scores.json").read_text())  # each sweep's validation scores, kept
    assert {r.tag for r in study.sweep_runs(p) + study.colour_sweep_runs(p)} <= set(scores)


def test_task_table_in_worker_processes_equals_one_process(tmp_path):
    """Table 2 at smoke size with its evaluations in two worker processes (the cpu preset's `workers`) gives the
    table one process gives: the same top-1, PSNR up to float rounding, the CBM3D row on the subset."""
    p = get_preset("smoke", task_sigmas=(30.0,))
    torch.manual_seed(0)
    dens = {"separate": [DenoiseNet(1, 0.125).eval(), DenoiseNet(1, 0.125).eval()]}
    one = study.task_table("A", dens, p, tmp_path / "one", "table2", progress=False)
    two = study.task_table("A", dens, dataclasses.replace(p, workers=2), tmp_path / "two", "table2", progress=False)
    assert list(one["rows"]) == list(two["rows"]) == ["noisy", "CBM3D", "separate"]
    for row, by_sigma in one["rows"].items():
        got = two["rows"][row]["30"]
        for key, v in by_sigma["30"].items():
            assert got[key] == pytest.approx(v, abs=1e-4), (row, key)
    assert "metric" not in one["rows"]["CBM3D"]["30"] and one["rows"]["separate"]["30"]["metric_subset_seeds"]
