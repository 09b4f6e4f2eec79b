"""Tests written against the survivors of `make mutate` (bench/MUTATION.md): each pins a behaviour of the thin core
that a one-token change left unnoticed (a boundary of the verdict rule, the seed formula of the evaluation noise, the
generator a step draws from, what a step passes on)."""

from __future__ import annotations

import math

import pytest
import torch

from dmh.stats import choose_lambda, compare, summary


def test_summary_of_two_seeds_has_a_spread_and_of_unseeded_rows_none():
    s = summary([1.0, 3.0])
    assert s == {"mean": 2.0, "std": pytest.approx(math.sqrt(2)), "n": 2, "se": pytest.approx(1.0),
                 "values": [1.0, 3.0]}  # fmt: skip
    u = summary([0.5, 0.5, 0.8], seeded=False)
    assert u["std"] == 0.0 and u["se"] == 0.0 and u["n"] == 3
    one = summary([0.7])
    assert math.isnan(one["std"]) and math.isnan(one["se"])
    with pytest.raises(ValueError, match="summary needs at least one value"):
        summary([])


def test_compare_at_and_beyond_the_two_standard_error_boundary():
    a, b = {"mean": 1.0, "se": 0.3}, {"mean": 0.0, "se": 0.4}  # se 0.5: z = 2 exactly
    at = compare(a, b)
    assert at == {"diff": 1.0, "se": 0.5, "z": 2.0, "verdict": "within noise"}
    assert compare(b, a)["verdict"] == "within noise" and compare(b, a)["z"] == -2.0
    assert compare({"mean": 1.01, "se": 0.3}, b)["verdict"] == "held"
    assert compare(b, {"mean": 1.01, "se": 0.3})["verdict"] == "did not hold"
    nan = compare({"mean": 1.0, "se": math.nan}, b)
    assert set(nan) == {"diff", "se", "z", "verdict"} and nan["verdict"] == "within noise" and math.isnan(nan["z"])


@pytest.mark.parametrize("diff, z, verdict", [(0.5, math.inf, "held"), (-0.5, -math.inf, "did not hold"),
                                              (0.0, 0.0, "within noise")])  # fmt: skip
def test_compare_without_spread_decides_by_the_sign(diff, z, verdict):
    c = compare({"mean": diff, "se": 0.0}, {"mean": 0.0, "se": 0.0})
    assert c["z"] == z and c["verdict"] == verdict
    small = compare({"mean": 0.5, "se": 0.0}, {"mean": 0.0, "se": 1.0})  # se 1: z = 0.5, not the no-spread case
    assert small["z"] == 0.5


def test_choose_lambda_keeps_a_lambda_exactly_at_the_tolerance():
    pts = [{"lam": 0.0, "psnr": [30.0], "metric": [0.5]}, {"lam": 0.1, "psnr": [29.5], "metric": [0.7]},
           {"lam": 1.0, "psnr": [29.4], "metric": [0.9]}]  # fmt: skip
    c = choose_lambda(pts)
    assert c["lam"] == 0.1 and c["candidates"] == [0.1] and c["separate_psnr"] == 30.0
    assert c["rule"].startswith("best mean validation metric among lambda > 0") and "0.5 dB" in c["rule"]
    with pytest.raises(ValueError, match="choose_lambda needs the separate point"):
        choose_lambda(pts[1:])


def test_psnr_of_equal_images_is_infinite_and_of_others_the_8_bit_formula():
    from dmh.metrics import psnr

    x = torch.full((1, 1, 4, 4), 102 / 255)
    assert psnr(x, x) == math.inf
    y = x.clone()
    y[0, 0, 0, 0] = 103 / 255  # one pixel one level off: MSE 1/16 on the 0-255 scale
    assert psnr(y, x) == pytest.approx(10 * math.log10(255**2 * 16))


def test_the_evaluation_noise_seed_formula_is_fixed():
    """The seeds every published number was drawn with: seed * 1,000,003 + int(sigma) * 1,000 + index."""
    from dmh.noise import noise_generator

    assert noise_generator(2, 30.0, 5).initial_seed() == 2 * 1_000_003 + 30 * 1000 + 5
    assert noise_generator(0, 25.7, 0).initial_seed() == 25_000


def test_sample_sigma_refuses_a_bad_range_by_name():
    from dmh.noise import sample_sigma

    with pytest.raises(ValueError, match="sigma_range"):
        sample_sigma(2, (-1.0, 5.0))
    with pytest.raises(ValueError, match="low <= high"):
        sample_sigma(2, (5.0, 1.0))


def test_the_cascade_gives_the_noise_level_to_the_denoiser(make_tiny_task, sigma_spy):
    from dmh import Cascade

    spy = sigma_spy()
    Cascade(spy, make_tiny_task())(torch.rand(2, 1, 4, 4), sigma=25.5)
    assert torch.allclose(spy.seen[0], torch.full((2,), 0.1))


def test_the_step_draws_sigma_and_noise_from_the_loops_generator(sigma_spy):
    """Two steps with equal generators give equal losses; the range draws one sigma per image from that generator."""
    from dmh.steps import draw_sigma, joint_step

    clean = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    step = joint_step(lambda g: clean, None, lam=0.0, sigma=(5.0, 100.0))
    losses = [step(sigma_spy(), torch.Generator().manual_seed(3))[1]["rec"] for _ in range(2)]
    assert losses[0] == losses[1]
    torch.manual_seed(99)  # the global RNG must not be what the draws come from
    a = draw_sigma(4, (5.0, 100.0), torch.Generator().manual_seed(3))
    torch.manual_seed(7)
    assert torch.equal(a, draw_sigma(4, (5.0, 100.0), torch.Generator().manual_seed(3)))
    assert torch.equal(draw_sigma(3, 30.0, torch.Generator()), torch.full((3,), 30.0))


def test_the_step_samples_its_batch_with_the_loops_generator(sigma_spy):
    from dmh.steps import joint_step

    seen = []
    step = joint_step(lambda g: seen.append(g) or torch.rand(2, 1, 4, 4, generator=g), None, lam=0.0, sigma=20.0)
    g = torch.Generator().manual_seed(0)
    step(sigma_spy(), g)
    assert seen == [g]


def test_lambda_zero_never_runs_the_task_network_and_lambda_above_passes_sigma_through_the_cascade(
    make_tiny_task, sigma_spy
):
    from dmh.steps import joint_step

    clean, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 2])
    task = make_tiny_task()
    calls = []
    task.register_forward_hook(lambda *a: calls.append(1))
    spy = sigma_spy()
    _, parts = joint_step(lambda g: (clean, y), task, lam=0.0, sigma=30.0)(spy, torch.Generator())
    assert calls == [] and math.isnan(parts["task"]) and torch.allclose(spy.seen[0], torch.full((2,), 30 / 255))
    spy = sigma_spy()
    _, parts = joint_step(lambda g: (clean, y), task, lam=0.5, sigma=30.0)(spy, torch.Generator())
    assert calls == [1] and parts["task"] > 0 and torch.allclose(spy.seen[0], torch.full((2,), 30 / 255))


def test_the_label_free_target_is_the_task_networks_prediction_on_the_clean_batch(make_tiny_task, sigma_spy):
    """With the denoiser returning its input and no noise, the label-free task term (KL to the clean prediction)
    is 0; the kind comes from the task network when not given."""
    from dmh.steps import joint_step

    clean = torch.rand(3, 1, 4, 4)
    task = make_tiny_task()
    task.kind = "label_free"
    _, parts = joint_step(lambda g: clean, task, lam=1.0, sigma=0.0)(sigma_spy(), torch.Generator())
    assert parts["task"] == pytest.approx(0.0, abs=1e-6)
    seg = make_tiny_task("segmentation")
    y = torch.randint(0, 3, (3, 4, 4))
    _, seg_parts = joint_step(lambda g: (clean, y), seg, lam=1.0, sigma=0.0)(sigma_spy(), torch.Generator())
    from dmh.losses import segmentation_loss

    assert seg_parts["task"] == pytest.approx(float(segmentation_loss(seg(clean), y)), rel=1e-5)


def test_the_step_keeps_batchnorm_statistics_only_when_asked(make_denoiser):
    from dmh.steps import joint_step

    clean = torch.rand(2, 1, 16, 16)
    net = make_denoiser(1, 0.25)
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    net.train()
    joint_step(lambda g: clean, None, lam=0.0, sigma=30.0, keep_bn=True)(net, torch.Generator())
    assert all(torch.equal(before[k], net.state_dict()[k]) for k in before)
    net.train()
    joint_step(lambda g: clean, None, lam=0.0, sigma=30.0)(net, torch.Generator())  # default: statistics move
    assert any(not torch.equal(before[k], net.state_dict()[k]) for k in before)


@pytest.mark.parametrize("bad, classes", [(3, 3), (-1, 3)])
def test_labels_outside_the_classes_are_refused_with_the_first_bad_one(bad, classes):
    from dmh.losses import classification_loss, segmentation_loss

    with pytest.raises(ValueError, match=rf"labels must be class indices in \[0, {classes}\) .*; got {bad}$"):
        classification_loss(torch.zeros(2, classes), torch.tensor([0, bad]))
    assert float(classification_loss(torch.zeros(2, classes), torch.tensor([0, classes - 1]))) > 0
    with pytest.raises(ValueError, match=r"\(or 255: unlabelled\); got"):
        segmentation_loss(torch.zeros(1, classes, 2, 2), torch.tensor([[[0, bad], [255, 1]]]))
    assert float(segmentation_loss(torch.zeros(1, classes, 1, 2), torch.tensor([[[255, classes - 1]]]))) > 0
