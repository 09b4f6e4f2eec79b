"""CBM3D / BM3D wrapper: colour and grey, sigma on 0-255, reduces the error of the noisy input (32x32: fast)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmh.baselines import cbm3d
from dmh.noise import add_noise


@pytest.fixture(scope="module")
def patch(astronaut):
    return torch.from_numpy(astronaut[120:152, 200:232]).permute(2, 0, 1).contiguous()  # (3, 32, 32)


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).mean())


def test_colour_reduces_error(patch):
    noisy = add_noise(patch[None], 25, torch.Generator().manual_seed(0))
    out = cbm3d(noisy, 25)
    assert out.shape == (1, 3, 32, 32) and out.dtype == torch.float32
    assert _mse(out, patch[None]) < 0.6 * _mse(noisy, patch[None])


def test_grey_reduces_error_numpy_input(patch):
    clean = patch[1].numpy()  # (32, 32) numpy: grey
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)
    out = cbm3d(noisy, 25)
    assert out.shape == (1, 1, 32, 32)
    c = torch.from_numpy(clean)[None, None]
    assert _mse(out, c) < 0.6 * _mse(torch.from_numpy(noisy)[None, None], c)


def test_sigma_zero_returns_input(patch):
    assert torch.equal(cbm3d(patch, 0), patch[None])


def test_bad_input(patch):
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        cbm3d(patch, -5)
    with pytest.raises(ValueError, match="1 or 3 channels, got 2"):
        cbm3d(torch.rand(2, 16, 16), 25)
    with pytest.raises(ValueError, match="non-finite"):
        cbm3d(torch.full((1, 16, 16), float("nan")), 25)
