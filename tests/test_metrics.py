"""Metrics: PSNR the authors' way against scikit-image, SSIM against scikit-image on a real photograph, top-k
accuracy and mean IoU on hand-made examples, texture figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dmh.metrics import (
    ConfusionMatrix,
    gradient_similarity,
    high_frequency_ratio,
    psnr,
    ssim,
    to_uint8,
    topk_accuracy,
)


def _u8(x: np.ndarray) -> np.ndarray:
    """The 8-bit image the authors score: clip to [0, 1], scale, round."""
    return np.round(np.clip(x, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)


@pytest.fixture(scope="module")
def pair(astronaut):
    clean = astronaut[150:246, 180:300]  # (96, 120, 3): a face and texture
    rng = np.random.default_rng(0)
    noisy = (clean + rng.normal(0, 30 / 255, clean.shape)).astype(np.float32)  # leaves [0, 1]: clipping matters
    assert noisy.min() < 0 and noisy.max() > 1
    return clean, noisy


def test_to_uint8_clips_and_rounds():
    x = torch.tensor([[-0.3, 0.0, 0.5 / 255, 1.4 / 255, 0.5, 1.0, 1.7]])
    assert to_uint8(x).ravel().tolist() == [0, 0, 0, 1, 128, 255, 255]  # round half to even, as numpy does


@pytest.mark.parametrize("border", [0, 1, 4, 15])
def test_psnr_matches_skimage(pair, border):
    clean, noisy = pair
    a, b = _u8(noisy), _u8(clean)
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    ref = peak_signal_noise_ratio(b, a, data_range=255)
    assert abs(psnr(noisy, clean, border=border) - ref) < 1e-6
    # Tensors (CHW) give the same number.
    t = psnr(torch.from_numpy(noisy).permute(2, 0, 1), torch.from_numpy(clean).permute(2, 0, 1), border=border)
    assert abs(t - ref) < 1e-6


def test_psnr_grey_and_uint8_input(pair):
    clean, noisy = pair
    g_clean, g_noisy = clean[..., 1], noisy[..., 1]
    ref = peak_signal_noise_ratio(_u8(g_clean), _u8(g_noisy), data_range=255)
    assert abs(psnr(g_noisy, g_clean) - ref) < 1e-6
    assert abs(psnr(_u8(g_noisy), _u8(g_clean)) - ref) < 1e-6  # uint8 arrays are scaled, then re-quantised exactly


def test_psnr_clipping_differs_from_raw(pair):
    clean, noisy = pair
    raw = 10 * math.log10(1.0 / float(np.mean((noisy.astype(np.float64) - clean) ** 2)))
    assert psnr(noisy, clean) > raw + 0.1  # clipping to [0, 1] removes error: the 8-bit protocol is what is scored


def test_psnr_identical_and_shape_mismatch(pair):
    clean, _ = pair
    assert psnr(clean, clean) == math.inf
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(clean, clean[:-1])


def test_ssim_matches_skimage_on_astronaut(astronaut):
    clean = astronaut
    noisy = clean + np.random.default_rng(1).normal(0, 25 / 255, clean.shape).astype(np.float32)
    a, b = _u8(noisy), _u8(clean)
    ref = structural_similarity(
        a, b, data_range=255, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    got = ssim(noisy, clean)
    assert abs(got - ref) < 1e-9
    assert 0.2 < got < 0.9
    assert ssim(clean, clean) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one image pair"):
        ssim(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))


def test_topk_accuracy_hand_made():
    logits = torch.tensor(
        [
            [0.9, 0.05, 0.03, 0.02],  # target 0: top-1 hit
            [0.1, 0.6, 0.3, 0.0],  # target 2: second -> top-2 hit
            [0.5, 0.2, 0.1, 0.2],  # target 2: last (rank 4)
            [0.1, 0.2, 0.3, 0.4],  # target 3: top-1 hit
        ]
    )
    target = torch.tensor([0, 2, 2, 3])
    acc = topk_accuracy(logits, target, ks=(1, 2, 3, 5))
    assert acc == {1: 0.5, 2: 0.75, 3: 0.75, 5: 1.0}
    assert topk_accuracy(logits, target) == {1: 0.5}


def test_confusion_matrix_and_mean_iou_hand_made():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 3]])
    cm = ConfusionMatrix(num_classes=5).update(pred, target)
    expected = torch.zeros(5, 5, dtype=torch.int64)
    for t, p in [(0, 0), (0, 1), (1, 1), (1, 1), (2, 2), (2, 0), (1, 3)]:  # the 255 pixel is skipped
        expected[t, p] += 1
    assert torch.equal(cm.mat, expected)
    # IoU = TP / (TP + FP + FN): class 0: 1/(1+1+1); class 1: 2/(2+1+1); class 2: 1/(1+0+1); class 3: 0/1;
    # class 4 absent from truth and prediction: NaN, left out of the mean.
    iou = cm.iou()
    assert iou[:4].tolist() == pytest.approx([1 / 3, 1 / 2, 1 / 2, 0.0])
    assert math.isnan(iou[4].item())
    assert cm.mean_iou() == pytest.approx((1 / 3 + 1 / 2 + 1 / 2 + 0.0) / 4)
    assert cm.pixel_accuracy() == pytest.approx(4 / 7)
    cm.update(target, target)  # accumulates; the 255 pixel is skipped again
    assert cm.mat.sum() == 14 and cm.mat[1, 1] == 2 + 3


def test_high_frequency_ratio(astronaut):
    img = astronaut[200:328, 200:328]
    blurred = gaussian_filter(img, sigma=(1.5, 1.5, 0))
    noisy = img + np.random.default_rng(0).normal(0, 20 / 255, img.shape).astype(np.float32)
    assert high_frequency_ratio(blurred, img) < 0.5
    assert high_frequency_ratio(noisy, img) > 1.0
    assert high_frequency_ratio(img, img) == pytest.approx(1.0)


def test_gradient_similarity(astronaut):
    img = astronaut[200:328, 200:328]
    assert gradient_similarity(img, img) == 1.0
    assert gradient_similarity(torch.from_numpy(img).permute(2, 0, 1), torch.from_numpy(img).permute(2, 0, 1)) == 1.0
    blurred = gaussian_filter(img, sigma=(1.5, 1.5, 0))
    assert gradient_similarity(blurred, img) < 0.95
