"""Image conversions: numpy HWC vs tensor CHW, uint8 / uint16 scaling, clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmh.images import check_finite, to_hwc, to_nchw


def test_numpy_hwc_equals_tensor_chw(astronaut):
    crop = astronaut[:9, :7]
    a = to_nchw(crop)
    b = to_nchw(torch.from_numpy(crop).permute(2, 0, 1))
    assert a.shape == (1, 3, 9, 7) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert a[0, 2, 4, 5].item() == crop[4, 5, 2]


def test_numpy_shapes():
    assert to_nchw(np.zeros((5, 6), np.float32)).shape == (1, 1, 5, 6)
    assert to_nchw(np.zeros((5, 6, 1), np.float32)).shape == (1, 1, 5, 6)
    assert to_nchw(np.zeros((2, 5, 6, 3), np.float32)).shape == (2, 3, 5, 6)
    assert to_nchw(np.zeros((5, 6), np.float64)).dtype == torch.float32
    with pytest.raises(ValueError, match="numpy images must be"):
        to_nchw(np.zeros((1, 2, 5, 6, 3), np.float32))


def test_tensor_shapes():
    assert to_nchw(torch.zeros(5, 6)).shape == (1, 1, 5, 6)
    assert to_nchw(torch.zeros(3, 5, 6)).shape == (1, 3, 5, 6)
    assert to_nchw(torch.zeros(2, 1, 5, 6, dtype=torch.float64)).dtype == torch.float32
    with pytest.raises(ValueError, match="tensors must be"):
        to_nchw(torch.zeros(1, 1, 3, 5, 6))


def test_uint8_and_uint16_are_scaled():
    u8 = np.array([[0, 128, 255]], dtype=np.uint8)
    u16 = np.array([[0, 32768, 65535]], dtype=np.uint16)
    assert torch.allclose(to_nchw(u8)[0, 0, 0], torch.tensor([0.0, 128 / 255, 1.0]))
    assert torch.allclose(to_nchw(u16)[0, 0, 0], torch.tensor([0.0, 32768 / 65535, 1.0]))
    assert torch.allclose(to_nchw(torch.from_numpy(u8))[0, 0, 0], torch.tensor([0.0, 128 / 255, 1.0]))
    assert torch.allclose(to_nchw(torch.tensor([[0, 65535]], dtype=torch.uint16))[0, 0, 0], torch.tensor([0.0, 1.0]))
    rgb8 = (np.arange(4 * 5 * 3).reshape(4, 5, 3) % 256).astype(np.uint8)
    assert torch.allclose(to_nchw(rgb8), to_nchw(rgb8.astype(np.float32) / 255.0))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int8, np.bool_])
def test_other_integer_arrays_refused(dtype):
    with pytest.raises(TypeError, match="uint8 or uint16"):
        to_nchw(np.zeros((4, 4), dtype=dtype))


def test_other_types_refused():
    with pytest.raises(TypeError, match="uint8 or uint16"):
        to_nchw(torch.zeros(4, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="numpy array or torch tensor"):
        to_nchw([[0.0, 1.0]])
    with pytest.raises(TypeError, match="dtype"):
        to_nchw(np.zeros((4, 4), dtype=np.complex64))


@pytest.mark.parametrize("shape", [(1, 16, 16, 3), (16, 16, 3), (2, 20, 20, 1)])
def test_channels_last_tensor_is_a_clear_error(shape):
    with pytest.raises(ValueError, match="channels-last.*permute"):
        to_nchw(torch.zeros(shape))


def test_wrong_channel_count():
    with pytest.raises(ValueError, match="expected 3 channels, got 1.*grey image into a colour net"):
        to_nchw(np.zeros((8, 8), np.float32), channels=3)
    with pytest.raises(ValueError, match="expected 1 channels, got 3.*rgb2gray"):
        to_nchw(np.zeros((8, 8, 3), np.float32), channels=1)
    with pytest.raises(ValueError, match="expected 3 channels, got 4"):
        to_nchw(torch.zeros(4, 8, 8), channels=3)
    assert to_nchw(torch.zeros(3, 8, 8), channels=3).shape == (1, 3, 8, 8)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_error(bad):
    arr = np.zeros((4, 4, 3), np.float32)
    arr[1, 2, 0] = bad
    with pytest.raises(ValueError, match="1 non-finite"):
        to_nchw(arr)
    with pytest.raises(ValueError, match="non-finite"):
        to_nchw(torch.from_numpy(arr).permute(2, 0, 1))
    with pytest.raises(ValueError, match="noisy holds"):
        check_finite(torch.tensor([bad]), "noisy")


def test_to_hwc_round_trip(astronaut):
    crop = astronaut[:6, :5]
    x = to_nchw(crop)
    assert np.array_equal(to_hwc(x), crop)
    assert np.array_equal(to_hwc(x[0]), crop)
    grey = to_hwc(torch.rand(1, 1, 4, 3))
    assert grey.shape == (4, 3)
    with pytest.raises(ValueError, match="one image"):
        to_hwc(torch.rand(2, 3, 4, 4))
