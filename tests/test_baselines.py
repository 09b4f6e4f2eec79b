"""CBM3D / BM3D wrapper: colour and grey, sigma on 0-255, reduces the error of the noisy input (32x32: fast)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmh import baselines
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


def test_cache_returns_the_first_result_and_can_be_turned_off(patch, tmp_path, monkeypatch):
    monkeypatch.setenv("DMH_CACHE", str(tmp_path))
    noisy = add_noise(patch[None], 25, torch.Generator().manual_seed(1))
    first = cbm3d(noisy, 25)
    assert len(list((tmp_path / "cbm3d").rglob("*.npy"))) == 1

    def fail(img, sigma):
        raise AssertionError("bm3d ran again")

    real = baselines._one
    monkeypatch.setattr(baselines, "_one", fail)
    assert torch.equal(cbm3d(noisy, 25), first)  # read back, bit for bit
    with pytest.raises(AssertionError, match="ran again"):
        cbm3d(noisy, 15)  # another sigma is another entry
    with pytest.raises(AssertionError, match="ran again"):
        cbm3d(noisy + 1e-6, 25)  # so is another input
    monkeypatch.setenv("DMH_CACHE", "off")
    assert baselines.cache_dir() is None
    with pytest.raises(AssertionError, match="ran again"):
        cbm3d(noisy, 25)
    monkeypatch.setattr(baselines, "_one", real)
    monkeypatch.setenv("DMH_CACHE", str(tmp_path))
    entry = next((tmp_path / "cbm3d").rglob("*.npy"))
    entry.write_bytes(b"damaged")
    again = cbm3d(noisy, 25)  # a damaged entry is computed again and rewritten
    assert (again - first).abs().max() < 1e-4 and np.load(entry).shape == (32, 32, 3)


def test_cache_folder_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("DMH_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert baselines.cache_dir() == tmp_path / "dmh"


def test_warmed_mosaics_are_what_cbm3d_mosaic_then_reads(patch, tmp_path, monkeypatch):
    """Tables warm their CBM3D mosaics in worker processes; the table's own `cbm3d_mosaic` calls must then find every
    one in the cache (nothing computed twice)."""
    monkeypatch.setenv("DMH_CACHE", str(tmp_path))
    clean = torch.stack([patch[:1], patch[1:2], patch[2:]])  # three grey images (3, 1, 32, 32)
    batches = [(add_noise(clean, s, torch.Generator().manual_seed(int(s))), s) for s in (15.0, 30.0)]
    assert baselines.warm_cbm3d_mosaics(batches, workers=2) == 2
    assert baselines.warm_cbm3d_mosaics(batches, workers=2) == 0  # cached: skipped

    def refuse(img, sigma):
        raise AssertionError("computed again")

    monkeypatch.setattr(baselines, "_one", refuse)
    for b, s in batches:
        out = baselines.cbm3d_mosaic(b, s)
        assert out.shape == b.shape and _mse(out, clean) < 0.6 * _mse(b, clean)


def test_cbm3d_many_keeps_the_order_of_its_jobs(patch, monkeypatch):
    monkeypatch.setenv("DMH_CACHE", "off")
    jobs = [(add_noise(patch[None], s, torch.Generator().manual_seed(0)), s) for s in (10.0, 40.0)]
    many = baselines.cbm3d_many(jobs, workers=2)
    assert [m[0].shape for m in many] == [(1, 3, 32, 32)] * 2 and all(m[1] > 0 for m in many)
    # the stronger noise leaves the larger error: the results come back in the order of the jobs
    assert _mse(many[0][0], patch[None]) < _mse(many[1][0], patch[None])
