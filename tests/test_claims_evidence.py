"""Claims 1, 2 and 4 where the evidence was weakest: the unseen classifier C, the perceptual distance
through a network never trained through, the matched operating point, the geometric self-ensemble and claim 1 as a
verdict."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from torch import nn

from dmh import report, study, tasks
from dmh.evaluate import evaluate_task
from dmh.inference import denoise
from dmh.metrics import perceptual_distance
from dmh.nets import DenoiseNet
from dmh.study import verdicts as claims_mod
from dmh.study.texture import frontier_claims, matched_lambda


def test_classifier_c_is_another_family_and_its_builder_loads_kept_weights():
    c = tasks.fashion_item_resnet()
    assert c.name == "fashion_item_resnet" and not any(isinstance(m, nn.BatchNorm2d) for m in c.modules())
    assert c(torch.rand(3, 1, 32, 32)).shape == (3, 10)
    assert tasks.features(c, torch.rand(2, 1, 32, 32)).shape[:2] == (2, 96)
    if "fashion_item_resnet" in tasks.read_manifest():  # kept: sha256-checked, and better than chance
        kept = tasks.fashion_item_resnet(weights="pretrained")
        assert tasks.read_manifest()["fashion_item_resnet"]["metrics"]["top1"] > 0.8
        assert kept.name == "fashion_item_resnet"


def test_evaluate_task_scores_the_same_inputs_through_other_classifiers():
    torch.manual_seed(0)
    a, c = tasks.fashion_item_classifier(), tasks.fashion_item_resnet()
    x, y = torch.rand(12, 1, 32, 32), torch.randint(0, 10, (12,))
    res = evaluate_task(a, x, y, sigma=30, seed=3, batch_size=5, also={"C": c})
    alone = evaluate_task(c, x, y, sigma=30, seed=3, batch_size=4)
    assert res["also"]["C"]["top1"] == alone["top1"] and res["psnr"] == alone["psnr"]
    assert res["top1"] == evaluate_task(a, x, y, sigma=30, seed=3)["top1"]


def test_perceptual_distance_is_zero_on_equal_images_and_grows_with_noise():
    torch.manual_seed(0)
    feat = functools.partial(tasks.features, tasks.fashion_item_resnet())
    x = torch.rand(4, 1, 32, 32)
    assert perceptual_distance(feat, x, x) == 0.0
    d1 = perceptual_distance(feat, (x + 0.05 * torch.randn_like(x)).clamp(0, 1), x)
    d2 = perceptual_distance(feat, (x + 0.3 * torch.randn_like(x)).clamp(0, 1), x)
    assert 0 < d1 < d2
    with pytest.raises(ValueError, match="same shape"):
        perceptual_distance(feat, x, x[:2])


def test_self_ensemble_is_flip_equivariant_and_equals_plain_for_an_equivariant_net():
    torch.manual_seed(0)
    net = DenoiseNet(3, 0.125).eval()
    x = torch.rand(1, 3, 20, 28)
    e = denoise(net, x, ensemble=True, tile=None)
    assert torch.allclose(denoise(net, x.flip(-1), ensemble=True, tile=None), e.flip(-1), atol=1e-5)
    assert torch.allclose(denoise(net, x.transpose(-1, -2), ensemble=True, tile=None), e.transpose(-1, -2), atol=1e-5)
    assert not torch.allclose(e, denoise(net, x, tile=None), atol=1e-4)  # a real network is not equivariant
    point = nn.Conv2d(3, 3, 1)  # a 1x1 convolution is: the ensemble changes nothing
    point.in_channels = 3
    assert torch.allclose(denoise(point, x, ensemble=True, tile=None), denoise(point, x, tile=None), atol=1e-6)


def test_matched_lambda_is_the_largest_within_the_tolerance():
    pts = [{"lam": 0.0, "psnr": [25.0, 25.2]}, {"lam": 1e-4, "psnr": [25.1, 25.05]}, {"lam": 1e-3, "psnr": [25.02]},
           {"lam": 1e-2, "psnr": [24.9]}]  # fmt: skip
    m = matched_lambda(pts)
    assert m["lam"] == 1e-3 and m["gap_db"] == pytest.approx(-0.08)
    assert matched_lambda([{"lam": 0.0, "psnr": [25.0]}, {"lam": 0.1, "psnr": [24.0]}])["lam"] is None


def _frontier(tmp_path, gms_joint: list[float]) -> None:
    pts = [
        {"lam": 0.0, "seed": -1, "row": "noisy", "psnr": 13.0, "ssim": 0.1, "gms": 0.5, "hf": 9.0, "perceptual": 1.0}
    ]
    for sd, g in enumerate(gms_joint):
        pts.append({"lam": 0.0, "seed": sd, "psnr": 25.0, "ssim": 0.8, "gms": 0.90 + 0.001 * sd, "hf": 0.7,
                    "perceptual": 0.30})  # fmt: skip
        pts.append({"lam": 1e-3, "seed": sd, "psnr": 24.95, "ssim": 0.8, "gms": g, "hf": 0.8, "perceptual": 0.25})
    (tmp_path / "frontier.json").write_text(json.dumps({"paths": {"A": {"sigma": 60, "n": 5, "perceptual_net": "c",
                                                                         "points": pts}}}))  # fmt: skip
    abl = {"A": {"points": [{"lam": 0.0, "psnr": [25.0]}, {"lam": 1e-3, "psnr": [24.95]}, {"lam": 0.1, "psnr": [23.0]}],
                 "chosen": {"lam": 0.1}}}  # fmt: skip
    (tmp_path / "ablation.json").write_text(json.dumps(abl))


def test_frontier_claims_judge_the_matched_point_with_its_psnr_gap(tmp_path):
    _frontier(tmp_path, [0.95, 0.951, 0.952])
    res = frontier_claims(tmp_path)
    assert res["matched"]["A"]["lam"] == 1e-3
    rows = {c["measure"]: c for c in res["claims"] if c["operating_point"] == "matched PSNR"}
    assert rows["gms"]["verdict"] == "held" and rows["gms"]["psnr_diff"] == pytest.approx(-0.05)
    assert rows["perceptual"]["verdict"] == "held" and rows["perceptual"]["mean_a"] == pytest.approx(0.25)
    assert rows["ssim"]["verdict"] == "within noise"
    assert not any(c["operating_point"] == "chosen lambda" for c in res["claims"])  # 0.1 is not in the frontier
    assert "Matched points: A: λ = 0.001" in report.claims4m_md(res)
    _frontier(tmp_path, [0.85, 0.851, 0.852])
    assert {c["measure"]: c for c in frontier_claims(tmp_path)["claims"]}["gms"]["verdict"] == "did not hold"


def test_unseen_claims_read_table2s_column(tmp_path):
    def row(vals, unseen):
        return {s: {"metric_seeds": vals, "metric_unseen_seeds": unseen, "metric_subset_seeds": vals}
                for s in ("30", "60")}  # fmt: skip

    rows = {"noisy": row([0.1], [0.1]), "CBM3D": row([0.5], [0.5]),
            "separate": row([0.70, 0.71, 0.72], [0.60, 0.61, 0.6]),
            "joint (chosen)": row([0.80, 0.81, 0.80], [0.70, 0.71, 0.70]),
            "joint (paper)": row([0.8, 0.8, 0.81], [0.6] * 3),
            "cross-task": row([0.75, 0.74, 0.75], [0.55, 0.56, 0.55])}  # fmt: skip
    t2 = {"task": "A", "unseen": "fashion_item_resnet", "rows": rows}
    t3 = {**t2, "task": "B", "unseen": None}
    (tmp_path / "table2.json").write_text(json.dumps(t2))
    (tmp_path / "table3.json").write_text(json.dumps(t3))
    res = claims_mod.claims(tmp_path)
    c_rows = {(c["claim"], c["a"]): c["verdict"] for c in res["claims"] if c["task"] == "C"}
    gain, cross = (
        "(2) joint's gain carries to an unseen classifier",
        "(3) cross-task's gain carries to an unseen classifier",
    )
    assert c_rows == {(gain, "joint (chosen)"): "held", (gain, "joint (paper)"): "within noise",
                      (cross, "cross-task"): "did not hold"}  # fmt: skip


def test_denoising_claims_are_paired_over_photos(tmp_path, monkeypatch):
    from dmh import denoisers
    from dmh.study import bases

    names = ["kodim23", "monarch", "sail", "tulips", "barbara"]
    cb = {"per_image": {s: {"full": {n: 30.0 for n in names}} for s in ("15", "25", "50")}}
    monkeypatch.setattr(denoisers, "cbm3d_on_test_photos", lambda: cb)
    monkeypatch.setattr(bases, "released_denoisers",
                        lambda: ({"released colour-blind": (DenoiseNet(3, 0.125), None)}, {}, {}))  # fmt: skip

    def fake(net, sigmas, ensemble=False):
        up = 0.5 if ensemble else -0.3
        return {f"{int(s)}": {n: 30.0 + up + 0.01 * k for k, n in enumerate(names)} for s in sigmas} | {"seconds": 1.0}

    monkeypatch.setattr(denoisers, "psnr_per_image", fake)
    res = study.denoising_claims(tmp_path)
    got = {(c["a"], c["sigma"]): (c["verdict"], round(c["diff"], 2)) for c in res["claims"]}
    assert got[("released colour-blind", 25.0)] == ("did not hold", -0.28)
    assert got[("released colour-blind +ensemble", 50.0)] == ("held", 0.52)
    assert "did not hold" in report.claims1_md(tmp_path / "claims1.json")
    one = study.denoising_claims(tmp_path, ensemble_sigmas=(25.0,))  # the cpu preset's: one sigma, 8x the time
    assert sorted(c["sigma"] for c in one["claims"] if c["a"].endswith("+ensemble")) == [25.0]
    assert not any(c["a"].endswith("+ensemble") for c in study.denoising_claims(tmp_path, ensemble_sigmas=())["claims"])


def test_evaluate_task_scores_other_classifiers_against_their_own_labels():
    torch.manual_seed(0)
    a, c = tasks.fashion_item_classifier(), tasks.fashion_item_resnet()
    x, y = torch.rand(8, 1, 32, 32), torch.randint(0, 10, (8,))
    own = c.predict(x)
    res = evaluate_task(a, x, y, also={"C": (c, own)})
    assert res["also"]["C"]["top1"] == 1.0  # C agrees with itself on clean inputs


def test_real_photo_claims_over_seeds_with_the_draw_spread(tmp_path):
    def row(lite0, lite2, psnr):
        return {"lite0": lite0, "lite2": lite2, "psnr": psnr, "lite0_draws": [sum(lite0) / 3] * 2,
                "lite2_draws": [sum(lite2) / 3] * 2}  # fmt: skip

    r = {"sigma": 50, "draws": 2, "n": 118, "side": 224, "rows": {
        "noisy": {"lite0": [0.3], "lite2": [0.3], "psnr": [15.0], "lite0_draws": [0.3, 0.3], "lite2_draws": [0.3, 0.3]},
        "separate": row([0.50, 0.51, 0.50], [0.60, 0.61, 0.60], [28.0, 28.0, 28.1]),
        "joint (paper)": row([0.60, 0.61, 0.62], [0.60, 0.62, 0.58], [26.0, 26.1, 26.0])}}  # fmt: skip
    (tmp_path / "real_photos.json").write_text(json.dumps(r))
    res = study.real_photo_claims(tmp_path)
    got = {(c["task"].split(" ")[0], c["a"]): c["verdict"] for c in res["claims"]}
    assert got == {
        ("EfficientNet-Lite0", "joint (paper)"): "held",
        ("EfficientNet-Lite2", "joint (paper)"): "within noise",
    }
    assert res["claims"][0]["psnr_diff"] == pytest.approx(-2.0) and len(res["claims"][0]["draw_diffs"]) == 2
    assert "held" in report.claims2e_md(res) and "118 tiles" in report.real_photos_md(r)
