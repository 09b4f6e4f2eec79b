"""Loaders of the CPU-scale study: photos, patches, Fashion-MNIST, scenes, ImageNet-20 (all offline)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from dmh import data


def test_photo_split_is_disjoint_and_holds_the_kodak_like_set():
    train, test = set(data.PHOTO_SPLIT["train"]), set(data.PHOTO_SPLIT["test"])
    assert not train & test
    assert {"kodim23", "monarch", "sail", "tulips", "barbara"} <= test


@pytest.mark.parametrize("split", ["train", "test"])
def test_photos_load_in_range(split):
    imgs = data.photos(split)
    assert list(imgs) == list(data.PHOTO_SPLIT[split])
    for name, im in imgs.items():
        assert im.ndim == 3 and im.shape[0] == 3 and min(im.shape[1:]) >= 256, name
        assert im.dtype == torch.float32 and 0 <= im.min() and im.max() <= 1, name
    # no photo of one split equals one of the other (different sources, but check pixels too)
    if split == "test":
        sizes = {tuple(im.shape) for im in data.photos("train").values()}
        for name, im in imgs.items():
            if tuple(im.shape) in sizes:
                assert all(not torch.equal(im, t) for t in data.photos("train").values()), name


def test_unknown_photo_and_split():
    with pytest.raises(KeyError, match="unknown photo"):
        data.load_photo("lena")
    with pytest.raises(ValueError, match="split"):
        data.photos("val")


def test_patch_sampler_is_seeded_and_flips():
    im = torch.arange(3 * 10 * 12, dtype=torch.float32).view(3, 10, 12) / 360
    ps = data.PatchSampler([im], patch=4)
    a = ps.sample(64, torch.Generator().manual_seed(1))
    b = ps.sample(64, torch.Generator().manual_seed(1))
    assert a.shape == (64, 3, 4, 4) and torch.equal(a, b)
    # every crop is a flipped / rotated window of the image
    windows = {
        tuple(torch.rot90(im[:, i : i + 4, j : j + 4], r, (-2, -1)).flip(-1).flatten().tolist()) for i in range(7)
        for j in range(9) for r in range(4)
    } | {
        tuple(torch.rot90(im[:, i : i + 4, j : j + 4], r, (-2, -1)).flatten().tolist()) for i in range(7)
        for j in range(9) for r in range(4)
    }  # fmt: skip
    assert all(tuple(c.flatten().tolist()) in windows for c in a)
    # more than one orientation occurs
    assert len({tuple(c[0, 0].tolist()) for c in a}) > 1
    with pytest.raises(ValueError, match="smaller than the patch"):
        data.PatchSampler([im], patch=16)


def test_fashion_mnist_shapes_ranges_and_labels():
    x, y = data.load_fashion_mnist("train")
    assert x.shape == (60000, 1, 28, 28) and y.shape == (60000,)
    assert x.min() == 0 and x.max() == 1
    assert torch.equal(torch.bincount(y), torch.full((10,), 6000))
    xt, yt = data.load_fashion_mnist("test")
    assert xt.shape == (10000, 1, 28, 28) and torch.equal(torch.bincount(yt), torch.full((10,), 1000))


def _write_idx(path, arr: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_user_root_first_and_clear_error(tmp_path, monkeypatch):
    imgs = np.random.default_rng(0).integers(0, 256, (5, 28, 28))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(5))
    x, y = data.load_fashion_mnist("test", root=tmp_path)
    assert x.shape == (5, 1, 28, 28) and y.tolist() == [0, 1, 2, 3, 4]
    assert torch.allclose(x[:, 0] * 255, torch.from_numpy(imgs).float())
    monkeypatch.setattr(data, "DEBIAN_FASHION", tmp_path / "nowhere")
    monkeypatch.delenv("DMH_FASHION_MNIST", raising=False)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist.*torchvision"):
        data.load_fashion_mnist("train", root=tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "t10k-images-idx3-ubyte").write_bytes(b"garbage!")
    (tmp_path / "bad" / "t10k-labels-idx1-ubyte").write_bytes(b"garbage!")
    with pytest.raises(OSError, match="t10k-images-idx3-ubyte"):
        data.load_fashion_mnist("test", root=tmp_path / "bad")


def test_scenes_labels_match_pasted_items():
    items, labels = data.load_fashion_mnist("test")
    items, labels = items[:50], labels[:50]
    g = torch.Generator().manual_seed(3)
    imgs, labs = data.make_scenes(20, items, labels, g)
    assert imgs.shape == (20, 1, 96, 96) and labs.shape == (20, 96, 96)
    assert 0 <= imgs.min() and imgs.max() <= 1
    for s in range(20):
        present = set(labs[s].unique().tolist()) - {0}
        assert 1 <= len(present) <= 4 and 0 in labs[s]
        # every labelled pixel shows an item pixel above the threshold; background pixels are texture in [0.15, 0.55]
        item_px = labs[s] > 0
        assert (imgs[s, 0][item_px] > data.ITEM_THRESHOLD).all()
        bg = imgs[s, 0][~item_px]
        assert bg.min() >= 0.15 - 1e-6 and bg.max() <= 0.55 + 1e-6
    # the same seed gives the same scenes
    imgs2, labs2 = data.make_scenes(20, items, labels, torch.Generator().manual_seed(3))
    assert torch.equal(imgs, imgs2) and torch.equal(labs, labs2)


def test_scene_items_are_the_pasted_fashion_items():
    """Paste a single known item and find its exact pixels and class under its label."""
    items, labels = data.load_fashion_mnist("test")
    items, labels = items[7:8], labels[7:8]
    imgs, labs = data.make_scenes(1, items, labels, torch.Generator().manual_seed(0), n_items=(1, 1))
    ys, xs = torch.nonzero(labs[0], as_tuple=True)
    assert set(labs[0][ys, xs].tolist()) == {int(labels[0]) + 1}
    mask = items[0, 0] > data.ITEM_THRESHOLD
    oy, ox = ys.min() - torch.nonzero(mask)[:, 0].min(), xs.min() - torch.nonzero(mask)[:, 1].min()
    window = imgs[0, 0, oy : oy + 28, ox : ox + 28]
    assert torch.equal(window[mask], items[0, 0][mask])


def test_fixed_test_scenes_use_test_items_and_cover_all_classes():
    imgs, labs = data.fashion_scenes_test()
    assert imgs.shape == (1000, 1, 96, 96)
    assert set(labs.unique().tolist()) == set(range(11))
    again, _ = data.fashion_scenes_test()
    assert again is imgs  # cached, and seeded: a fresh build is equal
    assert torch.equal(data.fashion_scenes_test.__wrapped__()[0], imgs)


def test_imagenet20():
    imgs, labels, names = data.load_imagenet20()
    assert len(imgs) == 20 and labels.shape == (20,) and len(names) == 20
    assert sum(tuple(im.shape) == (3, 512, 512) for im in imgs) == 19
    assert all(0 <= im.min() and im.max() <= 1 for im in imgs)
    cats = data.imagenet_categories()
    assert len(cats) == 1000 and cats[labels[0]] and names[0].startswith("imagenet_00_")


def test_to_grey_matches_skimage():
    from skimage.color import rgb2gray

    im = data.load_photo("kodim23")[:, :64, :64]
    ref = rgb2gray(im.permute(1, 2, 0).numpy())
    assert np.allclose(data.to_grey(im)[0].numpy(), ref, atol=1e-5)


def test_item_canvases_paste_one_item_on_a_scene_background():
    """The single-item domain: the item's pixels above the threshold, somewhere on the canvas; the rest is
    texture in the scenes' contrast range [0.15, 0.55]; seeded."""
    from dmh.data import ITEM_THRESHOLD, make_item_canvases

    items = torch.zeros(3, 1, 28, 28)
    items[:, 0, 4:24, 8:20] = torch.tensor([0.5, 0.8, 1.0]).view(3, 1, 1)
    a = make_item_canvases(items, torch.Generator().manual_seed(1))
    b = make_item_canvases(items, torch.Generator().manual_seed(1))
    assert a.shape == (3, 1, 32, 32) and torch.equal(a, b)
    for k, v in enumerate((0.5, 0.8, 1.0)):
        hits = (a[k, 0] == v).sum()
        assert hits == 20 * 12  # the item, whole, at one offset (texture never equals it exactly)
        rest = a[k, 0][a[k, 0] != v]
        assert rest.min() >= 0.15 - 1e-6 and rest.max() <= 0.55 + 1e-6
    assert ITEM_THRESHOLD < 0.5
    with pytest.raises(ValueError, match="smaller than"):
        make_item_canvases(items, torch.Generator(), size=20)
