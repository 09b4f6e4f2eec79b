"""Image-quality and task metrics. Images are in [0, 1]; tensors NCHW / CHW, numpy HWC / HW."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import Tensor

from dmh.images import to_nchw

__all__ = [
    "to_uint8",
    "psnr",
    "ssim",
    "topk_accuracy",
    "ConfusionMatrix",
    "high_frequency_ratio",
    "gradient_similarity",
    "perceptual_distance",
]


def to_uint8(image: Any) -> np.ndarray:
    """Clip to [0, 1], scale to 0-255 and round (the authors' 8-bit evaluation); returns (N, C, H, W) uint8."""
    x = to_nchw(image)
    return np.round(x.clamp(0, 1).numpy() * 255.0).astype(np.uint8)


def psnr(image: Any, reference: Any, border: int = 0) -> float:
    """PSNR in dB the authors' way: both images clipped and rounded to 8 bits, optional border crop, over all pixels
    and channels (RGB, not luminance). A batch gives the PSNR of the whole batch's pooled MSE; call per image for a
    mean of per-image PSNRs. Identical images give inf."""
    a, b = to_uint8(image).astype(np.float64), to_uint8(reference).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if border:
        a, b = a[..., border:-border, border:-border], b[..., border:-border, border:-border]
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def ssim(image: Any, reference: Any) -> float:
    """SSIM of one image (scikit-image's `structural_similarity` on 8-bit values, Gaussian window as in Wang et al.),
    mean over channels."""
    a, b = to_uint8(image), to_uint8(reference)
    if a.shape != b.shape or a.shape[0] != 1:
        raise ValueError(f"ssim takes one image pair of equal shape, got {a.shape} vs {b.shape}")
    a, b = a[0].transpose(1, 2, 0), b[0].transpose(1, 2, 0)
    return float(
        structural_similarity(
            a, b, data_range=255, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )


def topk_accuracy(logits: Tensor, target: Tensor, ks: tuple[int, ...] = (1,)) -> dict[int, float]:
    """Fraction of rows whose target is among the top-k logits, for each k; logits (N, K), target (N,)."""
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"expected logits (N, K) and target (N,), got {tuple(logits.shape)} and {tuple(target.shape)}")
    k = logits.shape[1]
    if len(target) and (int(target.min()) < 0 or int(target.max()) >= k):
        raise ValueError(
            f"class labels must lie in [0, {k}) for {k} classes; got values from {int(target.min())} to "
            f"{int(target.max())} (labels of another numbering?)"
        )
    maxk = min(max(ks), k)
    top = logits.topk(maxk, dim=1).indices
    hit = top == target[:, None]
    return {k: hit[:, : min(k, maxk)].any(dim=1).float().mean().item() for k in ks}


class ConfusionMatrix:
    """Accumulates a (K, K) confusion matrix (rows: truth, columns: prediction) for segmentation.

    Args:
        num_classes: K.
        ignore_index: truth value of pixels to skip.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: Tensor, target: Tensor) -> ConfusionMatrix:
        """pred, target: integer label maps of the same shape."""
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        keep = target != self.ignore_index
        t, p = target[keep].long(), pred[keep].long()
        for name, v in (("prediction", p), ("target", t)):
            if v.numel() and (v.min() < 0 or v.max() >= self.num_classes):
                lo, hi = int(v.min()), int(v.max())
                raise ValueError(f"{name} labels must be in [0, {self.num_classes}) or ignore_index, got {lo}..{hi}")
        self.mat += torch.bincount(t * self.num_classes + p, minlength=self.num_classes**2).view(
            self.num_classes, self.num_classes
        )
        return self

    def iou(self) -> Tensor:
        """Per-class IoU; NaN for classes absent from both truth and prediction."""
        m = self.mat.double()
        inter = m.diag()
        union = m.sum(0) + m.sum(1) - inter
        return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(inter, float("nan")))

    def mean_iou(self) -> float:
        """Mean IoU over the classes that occur in truth or prediction."""
        return float(np.nanmean(self.iou().numpy()))

    def pixel_accuracy(self) -> float:
        return float(self.mat.diag().sum() / self.mat.sum().clamp(min=1))


def _grey(x: Tensor) -> Tensor:
    return x.mean(dim=1, keepdim=True)


def high_frequency_ratio(image: Any, reference: Any, cutoff: float = 0.25) -> float:
    """Energy of the image's spatial frequencies above `cutoff` (cycles per pixel, 0.5 = Nyquist) divided by the
    reference's: < 1 means texture was smoothed away, > 1 means noise or artefacts were added."""
    a, b = _grey(to_nchw(image).double()), _grey(to_nchw(reference).double())
    fy = torch.fft.fftfreq(a.shape[-2], dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(a.shape[-1], dtype=torch.float64)[None, :]
    mask = (fx**2 + fy**2).sqrt() > cutoff

    def energy(x: Tensor) -> float:
        return float((torch.fft.fft2(x - x.mean()).abs() ** 2)[..., mask].sum())

    return energy(a) / max(energy(b), 1e-12)


def gradient_similarity(image: Any, reference: Any, c: float = 0.0026) -> float:
    """Mean gradient-magnitude similarity (GMS, Xue et al. 2014) on grey 8-bit-range values scaled to [0, 1]: 1 means
    the image has the reference's edges and texture, lower values mean lost or added structure."""
    a, b = _grey(to_nchw(image).clamp(0, 1)), _grey(to_nchw(reference).clamp(0, 1))
    kx = torch.tensor([[1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, -1.0]]) / 3.0
    k = torch.stack([kx, kx.T])[:, None]

    def mag(x: Tensor) -> Tensor:
        g = torch.nn.functional.conv2d(x, k)
        return g.pow(2).sum(1).sqrt()

    ga, gb = mag(a), mag(b)
    return float(((2 * ga * gb + c) / (ga**2 + gb**2 + c)).mean())


def perceptual_distance(feature_fn: Callable[[Tensor], Tensor], x: Tensor, ref: Tensor, batch_size: int = 16) -> float:
    """Mean distance between deep features of `x` and `ref` ((N, C, H, W) in [0, 1]): each position's feature vector
    unit-normalised over channels (as LPIPS does), the squared difference summed over channels and averaged over
    positions and images. 0 = the same features; lower is closer. `feature_fn` maps a batch to its feature maps (e.g.
    `functools.partial(dmh.tasks.features, dmh.tasks.efficientnet_lite2())`: a network the denoiser was not trained
    through)."""
    if x.shape != ref.shape:
        raise ValueError(f"x {tuple(x.shape)} and ref {tuple(ref.shape)} must have the same shape")
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            fa, fb = feature_fn(x[i : i + batch_size].clamp(0, 1)), feature_fn(ref[i : i + batch_size])
            fa = fa / fa.norm(dim=1, keepdim=True).clamp_min(1e-10)
            fb = fb / fb.norm(dim=1, keepdim=True).clamp_min(1e-10)
            total += float(((fa - fb) ** 2).sum(1).mean((1, 2)).sum())
    return total / len(x)
