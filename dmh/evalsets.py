"""The study's fixed evaluation sets, each with its fixed seed (`dmh.layout.SEEDS`) so that every row, notebook and
process sees the same images and the same noisy pixels: the TEST photos (centre crops of the preset) and their noise,
the test and validation items / scenes of Tables 2 and 3 and of the sweep, 07's validation crops, ImageNet-20 at the
classifier's size."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dmh.data import SceneSampler, fashion_scenes_test, photos
from dmh.layout import SEEDS
from dmh.noise import noisy_images
from dmh.presets import Preset

__all__ = ["test_photos", "photo_noise", "test_photo_names", "zoom_box", "test_set", "val_set", "colour_val_set",
           "photo_tiles",
           "imagenet20_at"]  # fmt: skip


def test_photos(p: Preset) -> dict[str, Tensor]:
    imgs = photos("test")
    if p.photo_crop:
        c = p.photo_crop
        imgs = {n: im[:, (im.shape[1] - c) // 2 : (im.shape[1] + c) // 2, (im.shape[2] - c) // 2 :][:, :, :c]
                for n, im in imgs.items()}  # fmt: skip
    return imgs


def photo_noise(clean: Tensor, sigma: float, k: int, p: Preset) -> Tensor:
    """The noisy version of TEST photo number k at `sigma`, seeded so that every method and notebook sees it."""
    return noisy_images(clean[None], sigma, p.seed, k)


def test_photo_names(p: Preset) -> list[str]:
    """Names of the TEST photos in the order of the tables."""
    return list(test_photos(p))


def zoom_box(name: str, p: Preset, frac: float = 0.2) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the square window, `frac` of the shorter side, where the clean TEST photo has the
    most gradient energy: a texture-rich region, chosen by a rule rather than by hand."""
    img = test_photos(p)[name].mean(0, keepdim=True)[None]
    size = max(int(min(img.shape[-2:]) * frac) // 4 * 4, 8)
    gy, gx = img.diff(dim=-2)[..., :, :-1], img.diff(dim=-1)[..., :-1, :]
    energy = nn.functional.avg_pool2d(gx**2 + gy**2, size, stride=max(size // 4, 1))
    k = int(energy.flatten().argmax())
    i, j = divmod(k, energy.shape[-1])
    return (i * max(size // 4, 1), j * max(size // 4, 1), size, size)


def test_set(task: str, p: Preset) -> tuple[Tensor, Tensor]:
    """A: the first `p.cls.n_test` test item canvases (`fashion_items_split("test")`); B: the first `p.seg.n_test`
    test scenes."""
    from dmh.data import fashion_items_split

    if task == "A":
        x, y = fashion_items_split("test")
        return x[: p.cls.n_test], y[: p.cls.n_test]
    x, y = fashion_scenes_test()
    return x[: p.seg.n_test], y[: p.seg.n_test]


def val_set(task: str, p: Preset) -> tuple[Tensor, Tensor]:
    """Validation data of the ablation: A: the first `p.cls.n_val` canvases of the held-out "val" items
    (`fashion_items_split("val")`); B: `p.seg.n_val` scenes made of the "val" items."""
    from dmh.data import fashion_items_split

    if task == "A":
        x, y = fashion_items_split("val")
        return x[: p.cls.n_val], y[: p.cls.n_val]
    return SceneSampler("val").sample(p.seg.n_val, torch.Generator().manual_seed(p.seed + SEEDS["sweep_val_scenes"]))


def colour_val_set(p: Preset, eff: nn.Module) -> tuple[Tensor, Tensor]:
    """Validation crops of 07's lambda sweep: the grid of crops of side `p.eff_val_crop`, every `p.eff_val_stride`
    pixels down and across from the top left (row by row), of each VAL photograph (`dmh.photos.training_photos("val")`:
    never trained on; 242 crops at the cpu preset's 224 / 96), (N, 3, c, c) in [0, 1], and `eff`'s top-1 on each clean
    crop (the labels of the label-free target: the metric is agreement with the clean prediction)."""
    from dmh.photos import training_photos

    crops = []
    for im in training_photos("val").values():
        h, w = im.shape[-2:]
        c = min(p.eff_val_crop, h, w)
        for i in range(0, h - c + 1, p.eff_val_stride):
            for j in range(0, w - c + 1, p.eff_val_stride):
                crops.append(im[:, i : i + c, j : j + c])
    x = torch.stack(crops)
    with torch.inference_mode():
        y = torch.cat([eff(x[i : i + 10]).argmax(1) for i in range(0, len(x), 10)])
    return x, y


def photo_tiles(side: int = 224) -> tuple[Tensor, list[str]]:
    """Every non-overlapping side x side tile of the five full-size TEST photos and of the 20 ImageNet-20 images
    (row by row from the top left; edges that do not fill a tile are left out): (N, 3, side, side) in [0, 1], and
    where each tile comes from ("kodim23 0,224", ...). Real photos at the classifier's scale for 07's rows."""
    from dmh.data import load_imagenet20

    imgs, _, names = load_imagenet20()
    sources = [*photos("test").items(), *zip((n.rsplit(".", 1)[0] for n in names), imgs)]
    tiles, where = [], []
    for name, im in sources:
        h, w = im.shape[-2:]
        for i in range(0, h - side + 1, side):
            for j in range(0, w - side + 1, side):
                tiles.append(im[:, i : i + side, j : j + side])
                where.append(f"{name} {i},{j}")
    return torch.stack(tiles), where


def imagenet20_at(size: int) -> tuple[Tensor, Tensor]:
    """ImageNet-20 resized (bilinear, antialiased) to size x size: the classifier's input, to which noise is added."""
    from dmh.data import load_imagenet20

    imgs, labels, _ = load_imagenet20()
    x = torch.cat([nn.functional.interpolate(im[None], size=(size, size), mode="bilinear", antialias=True,
                                             align_corners=False) for im in imgs])  # fmt: skip
    return x.clamp(0, 1), labels
