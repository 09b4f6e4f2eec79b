"""Gaussian noise: sigma on 0-255, seeding, optional clipping, blind per-image sigma, bad sigma."""

from __future__ import annotations

import math

import pytest
import torch

from dmh.noise import add_noise, check_sigma, sample_sigma


@pytest.mark.parametrize("sigma", [5.0, 25.0, 50.0])
def test_std_is_sigma_over_255(sigma):
    x = torch.full((4, 3, 256, 256), 0.5)  # 786k samples: the std's standard error is 0.08 %
    n = (add_noise(x, sigma, torch.Generator().manual_seed(0)) - x).double()
    assert n.std().item() == pytest.approx(sigma / 255.0, rel=0.0025)  # tells 255 from 256
    assert abs(n.mean().item()) < 0.005 * sigma / 255.0


def test_noise_is_standard_normal_times_sigma_over_255():
    x = torch.zeros(2, 3, 8, 8)
    n = add_noise(x, 30, torch.Generator().manual_seed(5))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(n, z * (30 / 255), rtol=1e-6, atol=0)


def test_sigma_zero_is_identity():
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(add_noise(x, 0.0), x)


def test_generator_seeding_reproduces():
    x = torch.rand(2, 1, 16, 16)
    a = add_noise(x, 25, torch.Generator().manual_seed(7))
    b = add_noise(x, 25, torch.Generator().manual_seed(7))
    c = add_noise(x, 25, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_same_noise_pixels_across_sigmas():
    """One seed gives the same standard-normal draw at every sigma (every table row sees the same pixels)."""
    x = torch.zeros(1, 1, 8, 8)
    n15 = add_noise(x, 15, torch.Generator().manual_seed(3))
    n30 = add_noise(x, 30, torch.Generator().manual_seed(3))
    assert torch.allclose(n30, 2 * n15, atol=1e-7)


def test_not_clipped_by_default_clip_optional():
    x = torch.cat([torch.zeros(1, 1, 32, 32), torch.ones(1, 1, 32, 32)])
    raw = add_noise(x, 50, torch.Generator().manual_seed(0))
    assert raw.min() < 0 and raw.max() > 1  # the authors do not clip
    clipped = add_noise(x, 50, torch.Generator().manual_seed(0), clip=True)
    assert clipped.min() >= 0 and clipped.max() <= 1
    assert torch.equal(clipped, raw.clamp(0, 1))


def test_chw_input_and_dtype():
    x = torch.rand(3, 10, 12, dtype=torch.float64)
    y = add_noise(x, 10, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == torch.float64


def test_sample_sigma_within_range_and_seeded():
    s = sample_sigma(1000, (5.0, 55.0), torch.Generator().manual_seed(0))
    assert s.shape == (1000,)
    assert s.min() >= 5.0 and s.max() <= 55.0
    assert s.max() - s.min() > 45.0  # spread over the range, not a constant
    assert torch.equal(s, sample_sigma(1000, (5.0, 55.0), torch.Generator().manual_seed(0)))
    assert torch.equal(sample_sigma(3, (20.0, 20.0)), torch.full((3,), 20.0))


def test_blind_per_image_sigma():
    gen = torch.Generator().manual_seed(1)
    sig = sample_sigma(4, (0.0, 60.0), gen)
    x = torch.full((4, 1, 64, 64), 0.5)
    n = add_noise(x, sig, gen) - x
    for i in range(4):
        assert n[i].std().item() == pytest.approx(sig[i].item() / 255.0, rel=0.05, abs=1e-6)
    fixed = add_noise(x, [0.0, 10.0, 0.0, 40.0], torch.Generator().manual_seed(0)) - x
    assert torch.equal(fixed[0], torch.zeros_like(fixed[0])) and torch.equal(fixed[2], torch.zeros_like(fixed[2]))
    assert fixed[3].std() > 3 * fixed[1].std()


def test_per_image_sigma_needs_matching_batch():
    with pytest.raises(ValueError, match="per-image sigma"):
        add_noise(torch.rand(3, 1, 8, 8), [10.0, 20.0])
    with pytest.raises(ValueError, match="per-image sigma"):
        add_noise(torch.rand(1, 8, 8), [10.0])
    with pytest.raises(ValueError, match="scalar or shape"):
        add_noise(torch.rand(2, 1, 8, 8), [[10.0, 20.0]])


@pytest.mark.parametrize("bad", [-1.0, -0.001, math.nan, math.inf, [10.0, -5.0]])
def test_bad_sigma_is_an_error(bad):
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        add_noise(x, bad)
    with pytest.raises(ValueError):
        check_sigma(bad)


def test_bad_sigma_range():
    with pytest.raises(ValueError, match="sigma_range"):
        sample_sigma(2, (-5.0, 10.0))
    with pytest.raises(ValueError, match="low <= high"):
        sample_sigma(2, (30.0, 10.0))
