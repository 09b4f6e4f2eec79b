"""The field's denoisers in the cascade (deepinv's DnCNN, any module with `forward(x, sigma)`), and dmh's released
denoisers as deepinv denoisers, offline."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn


def test_a_deepinv_dncnn_in_the_cascade_with_classifier_a():
    import deepinv

    from dmh import Cascade, JointLoss
    from dmh.study import task_nets
    from dmh.zoo import dncnn

    d = dncnn(nf=16, seed=0)
    assert isinstance(d, deepinv.models.Denoiser) and d.arch == {"name": "DnCNN", "in_channels": 1, "depth": 17,
                                                                  "nf": 16}  # fmt: skip
    a = task_nets()["A"]
    cascade = Cascade(d, a)
    g = torch.Generator().manual_seed(0)
    clean, y = torch.rand(4, 1, 32, 32, generator=g), torch.tensor([0, 1, 2, 3])
    den, logits = cascade(clean + 0.1 * torch.randn(clean.shape, generator=g), sigma=25.5)
    loss, parts = JointLoss(0.25, "classification")(den, clean, logits, y)
    loss.backward()
    assert logits.shape == (4, 10) and parts["task"] > 0
    assert all(p.grad is not None for p in d.parameters()) and all(p.grad is None for p in a.parameters())


def test_the_training_step_gives_each_draws_sigma_in_deepinvs_units(sigma_spy):
    from dmh.steps import draw_sigma, joint_step

    clean = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    spy = sigma_spy()
    joint_step(lambda g: clean, None, lam=0.0, sigma=(5.0, 100.0))(spy, torch.Generator().manual_seed(4))
    want = draw_sigma(5, (5.0, 100.0), torch.Generator().manual_seed(4)) / 255
    assert torch.allclose(spy.seen[0], want)


def test_evaluation_gives_a_sigma_taking_denoiser_the_noise_level(sigma_spy):
    from dmh.evaluate import evaluate_task
    from dmh.tasks import TaskNet

    spy = sigma_spy()
    task = TaskNet(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), kind="classification", num_classes=3,
                   in_channels=1, mean=(0.5,), std=(0.25,))  # fmt: skip
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    evaluate_task(task, x, y, sigma=30.0, denoiser=spy, batch_size=4)
    assert torch.allclose(spy.seen[0], torch.full((4,), 30.0 / 255))


def test_the_released_blind_model_is_a_deepinv_denoiser():
    import deepinv

    from dmh.inference import denoise
    from dmh.nets import denoisenet
    from dmh.noise import add_noise
    from dmh.zoo import as_deepinv

    den = as_deepinv("colour-blind")
    assert isinstance(den, deepinv.models.Denoiser)
    from dmh.evalsets import test_photos
    from dmh.presets import get_preset

    clean = test_photos(get_preset("smoke"))["kodim23"][None]
    noisy = add_noise(clean, 25.0, torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = den(noisy, 25.0 / 255)
    assert torch.allclose(out, denoise(denoisenet(weights="colour-blind"), noisy, tile=None), atol=1e-5)


def test_a_deepinv_plug_and_play_solver_deblurs_with_the_released_model():
    """Half-quadratic splitting (8 iterations) with the released blind model as its plug-and-play prior, on a
    blurred and noisy TEST crop: the restoration is closer to the photo than the blurred input (PSNR). The blind model
    ignores the solver's noise level, so the data term's step size is fixed: 3, chosen on 64 x 64 centre crops of
    three TRAIN photos (astronaut, chelsea, coffee; mean PSNR 27.67 dB at 3 against 27.39 at 10, 25.89 at 30 and at
    most 27.12 at 0.05-1; DPIR's own schedule, made for a denoiser that follows sigma, gave less than the blurred
    input)."""
    import deepinv as dinv
    from deepinv.physics.functional.blur import gaussian_blur

    from dmh.evalsets import test_photos
    from dmh.metrics import psnr
    from dmh.presets import get_preset
    from dmh.zoo import as_deepinv

    torch.manual_seed(0)
    clean = test_photos(get_preset("smoke"))["kodim23"][None]
    physics = dinv.physics.BlurFFT(img_size=tuple(clean.shape[1:]), filter=gaussian_blur(sigma=(1.5, 1.5)),
                                   noise_model=dinv.physics.GaussianNoise(sigma=0.02))  # fmt: skip
    y = physics(clean)
    solver = dinv.optim.optim_builder("HQS", prior=dinv.optim.PnP(as_deepinv("colour-blind")),
                                      data_fidelity=dinv.optim.L2(), params_algo={"stepsize": 3.0, "g_param": 0.02},
                                      max_iter=8, early_stop=False)  # fmt: skip
    with torch.no_grad():
        x = solver(y, physics)
    assert psnr(x, clean) > psnr(y, clean)


def test_deepinv_stays_off_import_dmh_and_the_help():
    code = ("import sys, dmh, dmh.cascade, dmh.steps, dmh.evaluate, dmh.denoisers, dmh.study; "
            "assert 'deepinv' not in sys.modules, 'deepinv imported'")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
    code = ("import sys; from dmh.cli import main; sys.argv = ['dmh', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nassert 'deepinv' not in sys.modules")  # fmt: skip
    helped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert helped.returncode == 0, helped.stderr


def test_the_dncnn_recipe_builds_the_sized_network():
    from dmh.checkpoint import arch_of
    from dmh.denoisers import RECIPES

    r = RECIPES["grey-dncnn"]
    net = r.build()
    assert arch_of(net) == {"name": "DnCNN", "in_channels": 1, "depth": 17, "nf": 16}
    assert r.data == "fashion" and r.sigma_range == RECIPES["grey-blind"].sigma_range
    assert r.train == RECIPES["grey-blind"].train and r.batch == RECIPES["grey-blind"].batch
    assert sum(p.numel() for p in net.parameters()) == 35105


@pytest.mark.parametrize("sigma", [None, 25.0])
def test_run_denoiser_calls_a_plain_module_without_sigma(sigma, make_denoiser):
    from dmh.cascade import run_denoiser, takes_sigma

    net = make_denoiser(1, 0.25).eval()
    x = torch.rand(2, 1, 16, 16)
    assert not takes_sigma(net) and torch.equal(run_denoiser(net, x, sigma), net(x))


def test_other_claims_read_the_dncnn_table_and_join_the_answer(tmp_path):
    """06's verdicts of claim (2) with DnCNN as the base (`dmh.study.other_claims`), from a Table-2-like file: the
    comparisons through A and C, named after the denoiser, and rows of the answer (`dmh.docs.answer_rows`)."""
    import json

    from dmh.docs import HEADLINE, answer_rows
    from dmh.study import other_claims

    def row(vals, unseen):
        return {s: {"metric_seeds": vals, "metric_subset_seeds": vals, "metric_unseen_seeds": unseen, "psnr": 20.0,
                    "psnr_subset": 20.0} for s in ("30", "60")}  # fmt: skip

    t = {"task": "A", "unseen": "fashion_item_resnet",
         "rows": {"noisy": row([0.3], [0.3]), "CBM3D": row([0.5], [0.5]), "separate": row([0.70, 0.71, 0.72],
                  [0.60, 0.61, 0.62]), "joint (paper)": row([0.70, 0.72, 0.71], [0.60, 0.62, 0.61]),
                  "joint (chosen)": row([0.80, 0.81, 0.82], [0.60, 0.61, 0.62])}}  # fmt: skip
    (tmp_path / "table2_dncnn.json").write_text(json.dumps(t))
    found = other_claims(tmp_path)["claims"]
    assert len(found) == 5 and {c["task"] for c in found} == {"A", "C"}
    assert all(c["claim"].startswith("(2) with DnCNN as the denoiser") for c in found)
    v = {(c["task"], c["a"], c["b"]): c["verdict"] for c in found}
    assert v["A", "joint (chosen)", "separate"] == "held" and v["C", "joint (chosen)", "separate"] == "within noise"
    keys = {r["key"] for r in answer_rows(tmp_path)}
    assert {k for k in HEADLINE if k[0] == "claims_dncnn.json"} <= keys


def test_the_headline_rows_exist_in_the_published_results():
    from dmh.docs import DOCS, HEADLINE, answer_rows

    keys = {r["key"] for r in answer_rows(DOCS / "results")}
    published = {k for k in HEADLINE if (DOCS / "results" / k[0]).is_file()}
    assert published <= keys and len(HEADLINE) <= 14
