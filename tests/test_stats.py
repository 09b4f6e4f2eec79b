"""Error bars over seeds, the 2-standard-error verdict and the validation rule that chooses lambda."""

from __future__ import annotations

import math

import pytest

from dmh.stats import choose_lambda, compare, summary


def test_summary_uses_the_sample_std_and_knows_unseeded_rows():
    s = summary([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == pytest.approx(1.0) and s["se"] == pytest.approx(1 / math.sqrt(3))
    assert summary([5.0, 5.0], seeded=False)["se"] == 0.0
    assert math.isnan(summary([5.0])["std"])  # one seed: spread unknown
    with pytest.raises(ValueError):
        summary([])


@pytest.mark.parametrize(
    ("a", "b", "verdict"),
    [
        ([0.90, 0.91, 0.92], [0.80, 0.81, 0.82], "held"),  # diff 0.10, se 0.0082
        ([0.80, 0.81, 0.82], [0.90, 0.91, 0.92], "did not hold"),
        ([0.85, 0.95, 0.90], [0.84, 0.94, 0.89], "within noise"),  # diff 0.01, se 0.041
        ([0.90], [0.80, 0.81, 0.82], "within noise"),  # one seed: no verdict
    ],
)
def test_compare_calls_a_difference_real_beyond_two_standard_errors(a, b, verdict):
    r = compare(summary(a), summary(b))
    assert r["verdict"] == verdict
    assert r["diff"] == pytest.approx(sum(a) / len(a) - sum(b) / len(b))


def test_compare_against_an_unseeded_row_uses_the_seeded_rows_error_only():
    joint = summary([0.90, 0.92, 0.94])  # se 0.01155
    assert compare(joint, summary([0.895], seeded=False))["verdict"] == "held"  # diff 0.025 > 0.0231
    assert compare(joint, summary([0.905], seeded=False))["verdict"] == "within noise"  # diff 0.015


def test_choose_lambda_follows_the_written_rule():
    pts = [
        {"lam": 0.0, "psnr": [25.0, 25.2], "metric": [0.80, 0.80]},
        {"lam": 0.004, "psnr": [24.9, 24.9], "metric": [0.82, 0.82]},
        {"lam": 0.02, "psnr": [24.7, 24.7], "metric": [0.84, 0.84]},  # within 0.5 dB of 25.1: the best metric
        {"lam": 0.25, "psnr": [23.0, 23.0], "metric": [0.90, 0.90]},  # better metric, but 2.1 dB below: excluded
    ]
    r = choose_lambda(pts)
    assert r["lam"] == 0.02 and r["candidates"] == [0.004, 0.02] and r["separate_psnr"] == pytest.approx(25.1)
    pts[2]["metric"] = [0.82, 0.82]  # a tie: the smaller lambda
    assert choose_lambda(pts)["lam"] == 0.004
    assert choose_lambda(pts, tolerance_db=0.05)["lam"] is None
    with pytest.raises(ValueError, match="lam = 0"):
        choose_lambda(pts[1:])
