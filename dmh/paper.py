"""The `paper` scale: the authors' settings, torchvision's task networks and the real datasets' loaders.

Everything here follows docs/PAPER.md (the project's summary of Liu et al., IJCAI 2018, and of the authors' released
scripts) and docs/PAPER_SCALE.md: torchvision VGG-16 (IMAGENET1K_V1) for classification on ILSVRC2012, a torchvision
segmenter with Pascal VOC labels (COCO_WITH_VOC_LABELS_V1) in place of the authors' DeepLab-LargeFOV, Pascal VOC2012,
and Kodak24 for PSNR. Nothing here downloads unless asked to (`download=True`).

Loaders return float tensors in [0, 1], (C, H, W), NOT normalised (`dmh.tasks.TaskNet` normalises inside). Random
training crops draw from a `torch.Generator` passed in, so a batch depends only on that generator (and not on the
number of processes or loading threads): this is what makes distributed runs equal single-process ones and resumed
runs equal uninterrupted ones (`dmh.ddp`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from dmh.images import ImageReadError, read_image
from dmh.images import open_image as _open
from dmh.images import open_rgb as _rgb
from dmh.losses import IGNORE_INDEX
from dmh.metrics import ConfusionMatrix, psnr
from dmh.noise import add_noise
from dmh.tasks import TaskNet
from dmh.training import TrainConfig

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IGNORE_INDEX",
    "SEGMENTERS",
    "Stage",
    "PaperConfig",
    "PAPER",
    "caffe_loss_scale",
    "vgg16_task",
    "voc_segmenter",
    "ImageReadError",
    "read_image",
    "read_label",
    "ImageFiles",
    "kodak24",
    "ImageNetFolder",
    "VOCSegmentation",
    "noise_generator",
    "evaluate_classification",
    "evaluate_segmentation",
    "evaluate_psnr",
    "make_miniature",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


# ----------------------------------------------------------------------------------------------------------- settings
def caffe_loss_scale(crop: int, channels: int = 3) -> float:
    """255^2 * C * crop^2 / 2: the factor that turns dmh's loss (per-pixel mean squared error on [0, 1] images) into
    the number the authors' Caffe EuclideanLoss gives on 0-255 data (sum over an image's pixels / 2, mean over the
    batch). The authors' learning rates, weight decay and gradient clipping (docs/PAPER.md) were set for that number."""
    return 255.0**2 * channels * crop * crop / 2.0


@dataclass(frozen=True)
class Stage:
    """One training stage of the paper preset (docs/PAPER.md, "Training the denoiser alone" and "Cascade experiments").

    Attributes:
        lam: weight of the task loss (0: the denoiser alone).
        crop: side of the square training patch / crop, in pixels.
        batch: global batch size (all processes together).
        lr: base learning rate (the authors' value).
        milestones: steps at which the learning rate is multiplied by `gamma`.
        gamma: learning-rate factor.
        steps: optimizer steps in all.
        loss_scale: the total loss is multiplied by this before the backward pass; None = `caffe_loss_scale(crop)`,
            so that `lr`, weight decay and gradient clipping act on the authors' loss units. 1.0 = dmh's plain units.
    """

    lam: float
    crop: int
    batch: int
    lr: float
    milestones: tuple[int, ...]
    gamma: float
    steps: int
    loss_scale: float | None = None

    def __post_init__(self) -> None:
        from dmh.validate import check_int, check_real

        check_real(self.lam, "lam", low=0)
        check_int(self.crop, "crop", low=8)
        check_int(self.batch, "batch", low=1)
        check_real(self.lr, "lr", low=0, low_open=True)
        check_real(self.gamma, "gamma", low=0, low_open=True)
        check_int(self.steps, "steps", low=0)
        # A negative scale would train the denoiser the wrong way (the loss falls without bound); 0 would stop it.
        check_real(self.loss_scale, "loss_scale", low=0, low_open=True, allow_none=True)
        for m in self.milestones:
            check_int(m, "milestones", low=1)

    def scale(self, channels: int = 3) -> float:
        return caffe_loss_scale(self.crop, channels) if self.loss_scale is None else float(self.loss_scale)


@dataclass(frozen=True)
class PaperConfig:
    """The paper's settings (docs/PAPER.md); override with `dataclasses.replace`.

    Attributes:
        sigmas: evaluation noise levels (0-255 scale): 15, 30, 45, 60.
        sigma: training noise level of the released model (one model per sigma).
        optimizer, momentum, weight_decay, grad_clip: the released code's SGD (momentum 0.9, weight decay 5e-4,
            gradient clipping 100).
        last_lr_scale: the denoiser's last conv learns at 0.1x the base learning rate (released code).
        denoise: the denoiser alone (review of the paper): 48x48 patches, batch 32, lr 1e-4 /10 after 500k steps,
            1.5M steps (the released code used 40x40, batch 64, a fixed lr and 1M steps instead).
        classification: joint training through VGG-16, lambda 0.25: crop 224 (the authors' script crops 232),
            batch 10, lr 1e-5 x0.1 after 80k steps, 180k steps.
        segmentation: joint training through the segmenter, lambda 0.5: crop 321, batch 6, lr 1e-3 x0.2 after 12k
            steps, 60k steps.
        resize: ImageNet images are resized to this shorter side before 224 crops (random for training, centre
            for validation).
        classifier_weights, segmenter, segmenter_weights: torchvision's networks and weights.
        voc_train_split: "train_aug" (VOC2012 train + SBD, 10,582 images) as the paper, or "train".
        width: denoiser width multiplier (1.0: the authors' 1.03 M parameters).
    """

    sigmas: tuple[int, ...] = (15, 30, 45, 60)
    sigma: float = 30.0
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    grad_clip: float = 100.0
    last_lr_scale: float = 0.1
    denoise: Stage = field(default_factory=lambda: Stage(0.0, 48, 32, 1e-4, (500_000,), 0.1, 1_500_000))
    classification: Stage = field(default_factory=lambda: Stage(0.25, 224, 10, 1e-5, (80_000,), 0.1, 180_000))
    segmentation: Stage = field(default_factory=lambda: Stage(0.5, 321, 6, 1e-3, (12_000,), 0.2, 60_000))
    resize: int = 256
    classifier_weights: str | None = "IMAGENET1K_V1"
    segmenter: str = "deeplabv3_resnet50"
    segmenter_weights: str | None = "COCO_WITH_VOC_LABELS_V1"
    voc_train_split: str = "train_aug"
    width: float = 1.0

    def stage(self, task: str) -> Stage:
        """The stage of "denoise", "classification" or "segmentation"."""
        if task not in ("denoise", "classification", "segmentation"):
            raise ValueError(f"task must be 'denoise', 'classification' or 'segmentation', got {task!r}")
        return getattr(self, task)

    def train_config(self, task: str, **overrides: Any) -> TrainConfig:
        """The `TrainConfig` of one stage; `overrides` replace its fields (e.g. max_steps, ckpt_every, seed)."""
        st = self.stage(task)
        cfg = TrainConfig(
            max_steps=st.steps,
            optimizer=self.optimizer,
            lr=st.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            milestones=st.milestones,
            gamma=st.gamma,
            grad_clip=self.grad_clip,
            ckpt_every=10_000,
            keep_last=2,
            log_every=100,
        )
        return replace(cfg, **overrides)


PAPER = PaperConfig()


# ------------------------------------------------------------------------------------------------------ task networks
def _weights(enum: Any, weights: Any, download: bool) -> Any:
    """Resolve `weights` (None, a name such as "IMAGENET1K_V1", or the enum member) and make sure that using it will
    not download anything unless `download` is set."""
    if weights is None:
        return None
    w = enum.verify(weights)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(w.url).path)
    if not download and not cached.is_file():
        raise FileNotFoundError(
            f"{enum.__name__}.{w.name} is not in torchvision's weight cache ({cached}) and needs a download from "
            f"{w.url}. Download it once on a machine with network (torchvision puts it in $TORCH_HOME/hub/"
            "checkpoints, by default ~/.cache/torch/hub/checkpoints), copy the file to that path here, or pass "
            "download=True (--download) to let torchvision fetch it; weights=None builds the network untrained."
        )
    return w


def vgg16_task(*, weights: Any = None, download: bool = False, size: tuple[int, int] | None = None) -> TaskNet:
    """torchvision's VGG-16 as a frozen classification `TaskNet` (1000 ImageNet classes), the paper's classifier.

    Args:
        weights: None (untrained, for tests), "IMAGENET1K_V1" (top-1 71.59 %, docs/PAPER.md) or a `VGG16_Weights`
            member.
        download: allow torchvision to download missing weights; otherwise missing weights are an error that says
            where they are expected.
        size: resize inputs to this (H, W) first (None: take them as they come; the loaders give 224 crops).

    Returns:
        TaskNet taking (N, 3, H, W) images in [0, 1] (ImageNet mean/std inside), giving (N, 1000) logits.
    """
    from torchvision.models import VGG16_Weights, vgg16

    w = _weights(VGG16_Weights, weights, download)
    net = vgg16(weights=w, progress=False)
    return TaskNet(
        net, kind="classification", num_classes=1000, mean=IMAGENET_MEAN, std=IMAGENET_STD, size=size, name="vgg16"
    )


def _segmenters() -> dict[str, tuple[Callable[..., nn.Module], Any]]:
    from torchvision.models import segmentation as S

    return {
        "deeplabv3_resnet50": (S.deeplabv3_resnet50, S.DeepLabV3_ResNet50_Weights),
        "deeplabv3_resnet101": (S.deeplabv3_resnet101, S.DeepLabV3_ResNet101_Weights),
        "deeplabv3_mobilenet_v3_large": (S.deeplabv3_mobilenet_v3_large, S.DeepLabV3_MobileNet_V3_Large_Weights),
        "fcn_resnet50": (S.fcn_resnet50, S.FCN_ResNet50_Weights),
        "fcn_resnet101": (S.fcn_resnet101, S.FCN_ResNet101_Weights),
        "lraspp_mobilenet_v3_large": (S.lraspp_mobilenet_v3_large, S.LRASPP_MobileNet_V3_Large_Weights),
    }


#: torchvision segmenters with Pascal VOC labels (all have COCO_WITH_VOC_LABELS_V1 weights).
SEGMENTERS = (
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "deeplabv3_mobilenet_v3_large",
    "fcn_resnet50",
    "fcn_resnet101",
    "lraspp_mobilenet_v3_large",
)


def voc_segmenter(*, arch: str = "deeplabv3_resnet50", weights: Any = None, download: bool = False) -> TaskNet:
    """A torchvision segmenter with the 21 Pascal VOC labels as a frozen segmentation `TaskNet`.

    The paper's segmenter is DeepLab-LargeFOV (VGG-16); torchvision has none, so its VOC-labelled DeepLabV3 / FCN
    stand in (docs/PAPER_SCALE.md).

    Args:
        arch: one of `SEGMENTERS`.
        weights: None (untrained, backbone untrained too: nothing downloads), "COCO_WITH_VOC_LABELS_V1" or the enum.
        download: allow torchvision to download missing weights.

    Returns:
        TaskNet taking (N, 3, H, W) images in [0, 1], giving (N, 21, H, W) logits (output "out" of the model).
    """
    table = _segmenters()
    if arch not in table:
        raise ValueError(f"unknown segmenter {arch!r}; choose from {sorted(table)}")
    build, enum = table[arch]
    w = _weights(enum, weights, download)
    if w is None:
        net = build(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
    else:
        net = build(weights=w, progress=False)
    return TaskNet(
        net, kind="segmentation", num_classes=21, mean=IMAGENET_MEAN, std=IMAGENET_STD, output_key="out", name=arch
    )


# -------------------------------------------------------------------------------------------------------- image files
def _tf():  # noqa: ANN202
    """torchvision.transforms.functional, imported on first use: importing torchvision costs ~2 s (it imports
    torch._dynamo), and only the paper-scale loaders need it, not the notebooks."""
    import torchvision.transforms.functional as TF

    return TF


def _tensor(im: Image.Image) -> Tensor:
    return _tf().pil_to_tensor(im).float().div_(255.0)


def read_label(path: str | os.PathLike) -> Tensor:
    """A label map (palette or grey PNG holding class indices, as VOC's) as a (H, W) int64 tensor."""
    im = _open(path)
    if im.mode not in ("P", "L"):
        raise ImageReadError(
            f"label map {path} has mode {im.mode}; expected a palette ('P') or grey ('L') PNG of "
            "class indices (VOC's SegmentationClass / SegmentationClassAug)"
        )
    return torch.from_numpy(np.asarray(im, dtype=np.int64).copy())


def _randint(g: torch.Generator, n: int) -> int:
    return int(torch.randint(n, (1,), generator=g)) if n > 1 else 0


def _flip(g: torch.Generator) -> bool:
    return bool(torch.rand((), generator=g) < 0.5)


def _missing(what: str, root: Path, layout: str) -> FileNotFoundError:
    return FileNotFoundError(f"{what} not found at {root}. Expected layout: {layout}")


class ImageFiles:
    """Image files under a folder (the denoiser's training photos; Kodak24 with `kodak24`).

    Args:
        root: the folder.
        recursive: search sub-folders too (e.g. ILSVRC2012/train with its class folders).
        exts: file suffixes to take (case-insensitive).
        what, layout: names used in error messages.

    Items: `ds[i]` is the whole image (3, H, W) in [0, 1]; `ds.random_patch(i, g, size)` a random square patch with a
    random horizontal flip (images smaller than `size` are enlarged first).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        recursive: bool = True,
        exts: Sequence[str] = IMAGE_EXTS,
        what: str = "image folder",
        layout: str = "a folder of image files (sub-folders are searched)",
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise _missing(what, self.root, layout)
        found = self.root.rglob("*") if recursive else self.root.iterdir()
        self.paths = sorted(p for p in found if p.suffix.lower() in exts and p.is_file())
        if not self.paths:
            raise FileNotFoundError(f"{what} at {self.root} holds no images ({', '.join(exts)}). Expected: {layout}")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def names(self) -> list[str]:
        return [p.stem for p in self.paths]

    def __getitem__(self, i: int) -> Tensor:
        return read_image(self.paths[i])

    def random_patch(self, i: int, g: torch.Generator, size: int) -> Tensor:
        im = _rgb(self.paths[i])
        if min(im.size) < size:
            im = _tf().resize(im, [size])
        w, h = im.size
        left, top = _randint(g, w - size + 1), _randint(g, h - size + 1)
        im = im.crop((left, top, left + size, top + size))
        x = _tensor(im)
        return x.flip(-1) if _flip(g) else x


def kodak24(root: str | os.PathLike) -> ImageFiles:
    """Kodak24 (docs/PAPER.md: PSNR is scored on its 24 images) from a folder of PNGs, sorted by name."""
    return ImageFiles(
        root,
        recursive=False,
        exts=(".png",),
        what="Kodak24 folder",
        layout="a folder of the 24 Kodak PNG files kodim01.png ... kodim24.png (768x512 or 512x768)",
    )


# ----------------------------------------------------------------------------------------------------------- ImageNet
_IMAGENET_LAYOUT = (
    "ImageFolder layout, one folder per class named by WordNet id, sorted ids giving the class indices "
    "of torchvision's ImageNet models: <root>/n01440764/*.JPEG, <root>/n01443537/*.JPEG, ... "
    "(1000 folders; ILSVRC2012/train as distributed, ILSVRC2012/val after sorting the 50,000 "
    "validation images into class folders)"
)


class ImageNetFolder:
    """ILSVRC2012 in ImageFolder layout (docs/PAPER.md: classification cascade).

    Args:
        root: the split's folder (train or val), holding one folder per class.
        crop: crop side (224).
        resize: shorter side the image is resized to before cropping (256).
        expect_classes: warn if the number of class folders differs (labels are indices into the sorted folder
            names and match torchvision's ImageNet indices only with all 1000 classes); None: no check.

    Items: `ds[i]` -> (image (3, crop, crop) in [0, 1], label) with a centre crop (validation);
    `ds.random_item(i, g)` -> the same with a random crop and a random horizontal flip (training).
    """

    def __init__(
        self, root: str | os.PathLike, *, crop: int = 224, resize: int = 256, expect_classes: int | None = 1000
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise _missing("ILSVRC2012 folder", self.root, _IMAGENET_LAYOUT)
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir())
        self.samples = [
            (p, k)
            for k, c in enumerate(self.classes)
            for p in sorted((self.root / c).iterdir())
            if p.suffix.lower() in IMAGE_EXTS and p.is_file()
        ]
        if not self.samples:
            raise FileNotFoundError(
                f"ILSVRC2012 folder {self.root} holds no class folders with images. Expected {_IMAGENET_LAYOUT}"
            )
        if expect_classes is not None and len(self.classes) != expect_classes:
            warnings.warn(
                f"{self.root} has {len(self.classes)} class folders, not {expect_classes}: labels are "
                "indices into its sorted folder names",
                stacklevel=2,
            )
        if resize < crop:
            raise ValueError(f"resize ({resize}) must be >= crop ({crop})")
        self.crop, self.resize = crop, resize

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        path, label = self.samples[i]
        TF = _tf()
        im = TF.center_crop(TF.resize(_rgb(path), [self.resize]), [self.crop])
        return _tensor(im), label

    def random_item(self, i: int, g: torch.Generator) -> tuple[Tensor, int]:
        path, label = self.samples[i]
        im = _tf().resize(_rgb(path), [self.resize])
        w, h = im.size
        left, top = _randint(g, w - self.crop + 1), _randint(g, h - self.crop + 1)
        x = _tensor(im.crop((left, top, left + self.crop, top + self.crop)))
        return (x.flip(-1) if _flip(g) else x), label


# ----------------------------------------------------------------------------------------------------- Pascal VOC2012
_VOC_LAYOUT = (
    "torchvision's VOCSegmentation layout: <root>/VOCdevkit/VOC2012/JPEGImages/<id>.jpg, "
    "<root>/VOCdevkit/VOC2012/SegmentationClass/<id>.png (palette PNGs, 0-20, 255 = ignore), "
    "<root>/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt (one id per line); for train_aug also "
    "ImageSets/Segmentation/train_aug.txt and SegmentationClassAug/<id>.png (SBD labels)"
)


class VOCSegmentation:
    """Pascal VOC2012 segmentation (docs/PAPER.md: segmentation cascade, train_aug for training, val for mean IoU).

    Args:
        root: the folder holding VOCdevkit (as torchvision's `root`), or VOCdevkit/VOC2012 itself.
        split: "train", "val", "train_aug" (list ImageSets/Segmentation/train_aug.txt, labels from
            SegmentationClassAug when that folder exists), or the path of a list file. List lines are an id, or
            "<image path> <label path>" relative to VOC2012 (DeepLab's list format).
        crop: side of the random training crops (321).

    Items: `ds[i]` -> (image (3, H, W) in [0, 1], label (H, W) int64, 255 = ignore) at full size (evaluation);
    `ds.random_item(i, g)` -> a random crop x crop window (padded with image 0 / label 255 where the image is
    smaller) with a random horizontal flip (training).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", *, crop: int = 321) -> None:
        root = Path(root)
        base = root / "VOCdevkit" / "VOC2012"
        if not base.is_dir() and (root / "JPEGImages").is_dir():
            base = root
        if not (base / "JPEGImages").is_dir():
            raise _missing("Pascal VOC2012", root, _VOC_LAYOUT)
        self.base, self.split, self.crop = base, split, crop
        label_dir = base / "SegmentationClass"
        if split in ("train", "val", "trainval", "train_aug"):
            lst = base / "ImageSets" / "Segmentation" / f"{split}.txt"
            if split == "train_aug" and (base / "SegmentationClassAug").is_dir():
                label_dir = base / "SegmentationClassAug"
        else:
            lst = Path(split)
        if not lst.is_file():
            raise FileNotFoundError(f"VOC list file not found: {lst}. Expected {_VOC_LAYOUT}")
        self.samples: list[tuple[Path, Path]] = []
        for line in lst.read_text().split("\n"):
            parts = line.split()
            if len(parts) == 1:
                self.samples.append((base / "JPEGImages" / f"{parts[0]}.jpg", label_dir / f"{parts[0]}.png"))
            elif len(parts) == 2:
                self.samples.append((base / parts[0].lstrip("/"), base / parts[1].lstrip("/")))
            elif parts:
                raise ValueError(f"{lst}: cannot read line {line!r} (expected an id or '<image> <label>')")
        missing = [str(p) for s in self.samples for p in s if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} files listed in {lst} are missing, e.g. {missing[:3]}. Expected {_VOC_LAYOUT}"
            )
        if not self.samples:
            raise FileNotFoundError(f"VOC list file {lst} is empty")

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, i: int) -> tuple[Tensor, Tensor]:
        img_path, lab_path = self.samples[i]
        x, y = read_image(img_path), read_label(lab_path)
        if x.shape[-2:] != y.shape:
            raise ValueError(f"{img_path} is {tuple(x.shape[-2:])} but its labels {lab_path} are {tuple(y.shape)}")
        return x, y

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self._load(i)

    def random_item(self, i: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        x, y = self._load(i)
        c = self.crop
        ph, pw = max(c - x.shape[1], 0), max(c - x.shape[2], 0)
        if ph or pw:  # pad bottom / right
            x = F.pad(x, (0, pw, 0, ph), value=0.0)
            y = F.pad(y, (0, pw, 0, ph), value=IGNORE_INDEX)
        top, left = _randint(g, x.shape[1] - c + 1), _randint(g, x.shape[2] - c + 1)
        x, y = x[:, top : top + c, left : left + c], y[top : top + c, left : left + c]
        if _flip(g):
            x, y = x.flip(-1), y.flip(-1)
        return x.contiguous(), y.contiguous()


# --------------------------------------------------------------------------------------------------------- evaluation
def noise_generator(seed: int, sigma: float, index: int) -> torch.Generator:
    """The generator of image `index`'s noise at `sigma`: the same for every row of a table and every process count
    (`dmh.noise.noise_generator`, the project's one rule)."""
    from dmh.noise import noise_generator as rule

    return rule(seed, sigma, index)


Denoiser = nn.Module | Callable[[Tensor, float], Tensor] | None


@torch.inference_mode()
def _restore(denoiser: Denoiser, noisy: Tensor, sigma: float, device: torch.device | str) -> Tensor:
    """None: the noisy input; a module: its output; another callable: called as f(noisy, sigma) (e.g. CBM3D)."""
    if denoiser is None:
        return noisy.to(device)
    if isinstance(denoiser, nn.Module):
        denoiser.eval()
        return denoiser(noisy.to(device))
    return denoiser(noisy.cpu(), sigma).to(device)


def _batches(dataset: Any, indices: Sequence[int], batch_size: int, workers: int) -> Iterator[tuple[list[int], list]]:
    """Load dataset[i] for batches of `indices` with `workers` threads, one batch ahead."""
    chunks = [list(indices[i : i + batch_size]) for i in range(0, len(indices), batch_size)]
    if workers <= 0:
        for ch in chunks:
            yield ch, [dataset[i] for i in ch]
        return
    with ThreadPoolExecutor(workers) as pool:
        ahead = [pool.submit(dataset.__getitem__, i) for i in chunks[0]] if chunks else []
        for k, ch in enumerate(chunks):
            items = [f.result() for f in ahead]
            ahead = [pool.submit(dataset.__getitem__, i) for i in chunks[k + 1]] if k + 1 < len(chunks) else []
            yield ch, items


def _noisy(x: Tensor, sigma: float, seed: int, index: int) -> Tensor:
    return add_noise(x, sigma, noise_generator(seed, sigma, index)) if sigma > 0 else x


def evaluate_classification(
    task_net: nn.Module,
    dataset: ImageNetFolder,
    sigma: float,
    *,
    denoiser: Denoiser = None,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    batch_size: int = 50,
    workers: int = 4,
    device: torch.device | str = "cpu",
) -> dict[str, int]:
    """Top-1 / top-5 hits of `task_net(denoiser(noisy))` on validation crops (docs/PAPER.md: ILSVRC2012 val).

    Args:
        task_net: frozen classifier taking [0, 1] images.
        dataset: gives (image, label) with centre crops.
        sigma: noise level (0-255 scale); 0 = clean images. Image i's noise comes from `noise_generator(seed,
            sigma, i)`, so every row and every process count sees the same noisy pixels.
        denoiser: None (the "noisy" row), a network, or f(noisy, sigma) -> image (e.g. `dmh.baselines.cbm3d`).
        indices: the images to score (default all; a process's shard under DDP).

    Returns:
        {"n": images, "top1": hits, "top5": hits} (counts, so that shards add up).
    """
    indices = range(len(dataset)) if indices is None else indices
    out = {"n": 0, "top1": 0, "top5": 0}
    task_net.eval()
    for idx, items in _batches(dataset, indices, batch_size, workers):
        noisy = torch.stack([_noisy(x, sigma, seed, i) for i, (x, _) in zip(idx, items)])
        target = torch.tensor([y for _, y in items], device=device)
        with torch.inference_mode():
            logits = task_net(_restore(denoiser, noisy, sigma, device))
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit = top == target[:, None]
        out["n"] += len(idx)
        out["top1"] += int(hit[:, 0].sum())
        out["top5"] += int(hit.any(1).sum())
    return out


def evaluate_segmentation(
    task_net: nn.Module,
    dataset: VOCSegmentation,
    sigma: float,
    *,
    denoiser: Denoiser = None,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    workers: int = 4,
    device: torch.device | str = "cpu",
) -> ConfusionMatrix:
    """Confusion matrix (21 classes, 255 ignored) of `task_net(denoiser(noisy))` on full-size images, one at a time
    (docs/PAPER.md: mean IoU on VOC2012 val); arguments as `evaluate_classification`. `.mean_iou()` gives the score."""
    indices = range(len(dataset)) if indices is None else indices
    cm = ConfusionMatrix(getattr(task_net, "num_classes", 21), ignore_index=IGNORE_INDEX)
    task_net.eval()
    for idx, items in _batches(dataset, indices, 1, workers):
        (x, y), i = items[0], idx[0]
        noisy = _noisy(x, sigma, seed, i)[None]
        with torch.inference_mode():
            pred = task_net(_restore(denoiser, noisy, sigma, device)).argmax(1)[0].cpu()
        cm.update(pred, y)
    return cm


def evaluate_psnr(
    dataset: ImageFiles,
    sigma: float,
    *,
    denoiser: Denoiser = None,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """PSNR (dB, 8-bit as the authors) of each image of `dataset` (Kodak24) after noise and `denoiser`.

    Returns:
        {image name: PSNR}.
    """
    indices = range(len(dataset)) if indices is None else indices
    out = {}
    for i in indices:
        x = dataset[i]
        den = _restore(denoiser, _noisy(x, sigma, seed, i)[None], sigma, device).cpu()
        out[dataset.paths[i].stem] = psnr(den, x[None])
    return out


# ------------------------------------------------------------------------------------------------- miniature datasets
def make_miniature(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    classes: int = 2,
    per_class: int = 3,
    voc_images: int = 4,
    kodak_images: int = 2,
) -> dict[str, Path]:
    """Write tiny random stand-ins for the paper's datasets in their real layouts (for tests and smoke runs offline).

    Creates `root/ILSVRC2012/{train,val}/<wnid>/*.JPEG` (sizes around 40-70 px), `root/VOCdevkit/VOC2012/...`
    (JPEGImages, palette SegmentationClass PNGs with classes 0-20 and 255 borders, ImageSets/Segmentation/
    {train,val,train_aug}.txt; one image smaller than the 321 crop in any case) and `root/kodak/kodimNN.png`.

    Returns:
        {"imagenet_train", "imagenet_val", "voc", "kodak"}: the folders to pass to the loaders.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)

    def photo(h: int, w: int) -> Image.Image:
        small = rng.integers(0, 256, (max(h // 8, 2), max(w // 8, 2), 3), dtype=np.uint8)
        return Image.fromarray(small).resize((w, h), Image.BILINEAR)

    for split in ("train", "val"):
        for k in range(classes):
            d = root / "ILSVRC2012" / split / f"n{k:08d}"
            d.mkdir(parents=True, exist_ok=True)
            for j in range(per_class):
                photo(int(rng.integers(40, 70)), int(rng.integers(40, 70))).save(d / f"img_{k}_{j}.JPEG", quality=95)
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    palette = [int(v) for v in rng.integers(0, 256, 768)]
    ids = [f"2007_{i:06d}" for i in range(voc_images)]
    for i, name in enumerate(ids):
        h, w = (24, 20) if i == 0 else (int(rng.integers(36, 60)), int(rng.integers(36, 60)))
        photo(h, w).save(voc / "JPEGImages" / f"{name}.jpg", quality=95)
        lab = np.zeros((h, w), np.uint8)
        lab[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = rng.integers(1, 21)
        lab[h // 4, :] = IGNORE_INDEX  # VOC's object borders
        im = Image.fromarray(lab, mode="P")
        im.putpalette(palette)
        im.save(voc / "SegmentationClass" / f"{name}.png")
    half = max(1, voc_images // 2)
    lists = {"train": ids[:half], "val": ids[half:] or ids[:1], "train_aug": ids}
    for split, names in lists.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    kodak = root / "kodak"
    kodak.mkdir(parents=True, exist_ok=True)
    for i in range(kodak_images):
        photo(48, 64).save(kodak / f"kodim{i + 1:02d}.png")
    return {
        "imagenet_train": root / "ILSVRC2012" / "train",
        "imagenet_val": root / "ILSVRC2012" / "val",
        "voc": root,
        "kodak": kodak,
    }
