"""Paper scale on miniature data: torchvision task networks (weights=None), the real datasets' loaders on generated
layouts, one training step and one evaluation through each cascade, and the errors for missing or damaged data."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from dmh import ddp
from dmh.cascade import Cascade
from dmh.nets import DenoiseNet
from dmh.paper import (
    PAPER,
    ImageNetFolder,
    ImageReadError,
    VOCSegmentation,
    caffe_loss_scale,
    evaluate_classification,
    evaluate_psnr,
    evaluate_segmentation,
    kodak24,
    make_miniature,
    read_image,
    vgg16_task,
    voc_segmenter,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_miniature(tmp_path_factory.mktemp("paper_data"), seed=1)


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return vgg16_task(weights=None)


@pytest.fixture(scope="module")
def fcn():
    torch.manual_seed(0)
    return voc_segmenter(arch="fcn_resnet50", weights=None)


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _frozen(net):
    return not net.training and not any(p.requires_grad for p in net.parameters())


def test_vgg16_task_is_frozen_and_passes_gradients_to_its_input(vgg):
    assert vgg.kind == "classification" and vgg.num_classes == 1000 and _frozen(vgg)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = vgg(x)
    assert out.shape == (2, 1000)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    cascade = Cascade(DenoiseNet(width=0.125), vgg).train()
    assert not cascade.task_net.training


@pytest.mark.parametrize("arch", ["deeplabv3_resnet50", "fcn_resnet50"])
def test_voc_segmenter_gives_21_classes_at_input_size(arch, fcn):
    torch.manual_seed(0)
    net = fcn if arch == "fcn_resnet50" else voc_segmenter(arch=arch, weights=None)
    assert net.kind == "segmentation" and net.num_classes == 21 and net.output_key == "out" and _frozen(net)
    with torch.inference_mode():
        assert net(torch.rand(1, 3, 33, 41)).shape == (1, 21, 33, 41)


def test_requested_weights_that_are_not_cached_say_they_need_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: nothing may be fetched
    with pytest.raises(FileNotFoundError, match="needs a download") as e:
        vgg16_task(weights="IMAGENET1K_V1")
    assert str(tmp_path) in str(e.value) and "vgg16-397923af.pth" in str(e.value)
    with pytest.raises(FileNotFoundError, match="needs a download"):
        voc_segmenter(weights="COCO_WITH_VOC_LABELS_V1")
    with pytest.raises(ValueError, match="unknown segmenter"):
        voc_segmenter(arch="deeplab_largefov")


def test_paper_config_holds_the_papers_settings():
    assert PAPER.sigmas == (15, 30, 45, 60)
    assert (PAPER.classification.lam, PAPER.segmentation.lam, PAPER.denoise.lam) == (0.25, 0.5, 0.0)
    d = PAPER.denoise
    assert (d.crop, d.batch, d.lr, d.milestones, d.gamma, d.steps) == (48, 32, 1e-4, (500_000,), 0.1, 1_500_000)
    c = PAPER.classification
    assert (c.crop, c.batch, c.lr, c.milestones, c.gamma, c.steps) == (224, 10, 1e-5, (80_000,), 0.1, 180_000)
    s = PAPER.segmentation
    assert (s.crop, s.batch, s.lr, s.milestones, s.gamma, s.steps) == (321, 6, 1e-3, (12_000,), 0.2, 60_000)
    assert (PAPER.momentum, PAPER.weight_decay, PAPER.grad_clip, PAPER.last_lr_scale) == (0.9, 5e-4, 100.0, 0.1)
    cfg = PAPER.train_config("segmentation", max_steps=5)
    assert (cfg.optimizer, cfg.lr, cfg.milestones, cfg.gamma, cfg.max_steps) == ("sgd", 1e-3, (12_000,), 0.2, 5)
    assert d.scale() == caffe_loss_scale(48) == 255.0**2 * 3 * 48 * 48 / 2
    assert dataclasses.replace(d, loss_scale=1.0).scale() == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        PAPER.sigma = 15  # type: ignore[misc]
    with pytest.raises(ValueError):
        PAPER.stage("detection")
    json.dumps(dataclasses.asdict(PAPER))


def test_loaders_give_unnormalised_crops_drawn_from_the_generator(data):
    inet = ImageNetFolder(data["imagenet_train"], crop=32, resize=40, expect_classes=None)
    assert len(inet) == 6 and inet.classes == ["n00000000", "n00000001"]
    x, y = inet.random_item(4, torch.Generator().manual_seed(3))
    x2, _ = inet.random_item(4, torch.Generator().manual_seed(3))
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y == 1 and torch.equal(x, x2)
    v, _ = ImageNetFolder(data["imagenet_val"], crop=32, resize=40, expect_classes=None)[0]
    assert v.shape == (3, 32, 32)
    with pytest.warns(UserWarning, match="2 class folders"):
        ImageNetFolder(data["imagenet_train"])

    voc = VOCSegmentation(data["voc"], "train_aug", crop=32)
    x, lab = voc.random_item(0, torch.Generator().manual_seed(0))  # image 0 is 24x20: padded
    assert x.shape == (3, 32, 32) and lab.shape == (32, 32) and lab.dtype == torch.int64
    assert (lab == 255).sum() >= 32 * 32 - 24 * 20 and (x[:, lab == 255] >= 0).all()
    full_x, full_y = VOCSegmentation(data["voc"], "val")[0]
    assert full_x.shape[-2:] == full_y.shape and set(full_y.unique().tolist()) <= set(range(21)) | {255}

    kodak = kodak24(data["kodak"])
    assert kodak.names == ["kodim01", "kodim02"] and kodak[0].shape == (3, 48, 64)


def test_classification_cascade_trains_one_step_and_evaluates(data, vgg, tmp_path, keep_threads):
    out = tmp_path / "cls"
    args = [
        "train",
        "--task",
        "classification",
        "--data",
        str(data["imagenet_train"]),
        "--any-classes",
        "--weights",
        "none",
        "--out",
        str(out),
        "--steps",
        "1",
        "--batch",
        "2",
        "--crop",
        "32",
        "--resize",
        "40",
        "--width",
        "0.125",
        "--no-progress",
        "--workers",
        "0",
        "--threads",
        "1",
    ]
    history = ddp.main(args)
    assert len(history) == 1 and history[0]["task"] > 0 and history[0]["rec"] > 0
    run = json.loads((out / "run.json").read_text())
    assert run["run"]["stage"]["lam"] == 0.25 and run["train"]["optimizer"] == "sgd"
    res = ddp.main(
        [
            "evaluate",
            "--task",
            "classification",
            "--data",
            str(data["imagenet_val"]),
            "--any-classes",
            "--weights",
            "none",
            "--denoiser",
            str(out / "denoiser.pt"),
            "--crop",
            "32",
            "--resize",
            "40",
            "--sigmas",
            "30",
            "--out",
            str(tmp_path / "cls.json"),
            "--workers",
            "0",
        ]
    )
    m = json.loads((tmp_path / "cls.json").read_text())["metrics"]["30"]
    assert m["n"] == 6 and 0 <= m["top1"] <= m["top5"] <= 1 and res["metrics"]["30"] == m

    # Sharded evaluation (what each DDP process does) adds up to the whole; the noise is the same for every row.
    val = ImageNetFolder(data["imagenet_val"], crop=32, resize=40, expect_classes=None)
    net = DenoiseNet(width=0.125)
    whole = evaluate_classification(vgg, val, 30, denoiser=net, workers=2, batch_size=4)
    parts = [evaluate_classification(vgg, val, 30, denoiser=net, indices=range(r, 6, 2), workers=0) for r in (0, 1)]
    assert whole == {k: parts[0][k] + parts[1][k] for k in whole}


def test_segmentation_cascade_trains_one_step_and_evaluates(data, fcn, tmp_path, keep_threads):
    out = tmp_path / "seg"
    args = [
        "train",
        "--task",
        "segmentation",
        "--segmenter",
        "fcn_resnet50",
        "--data",
        str(data["voc"]),
        "--weights",
        "none",
        "--out",
        str(out),
        "--steps",
        "1",
        "--batch",
        "2",
        "--crop",
        "32",
        "--width",
        "0.125",
        "--no-progress",
        "--workers",
        "2",
        "--threads",
        "1",
    ]
    history = ddp.main(args)
    assert len(history) == 1 and history[0]["task"] > 0
    net = DenoiseNet(width=0.125)
    net.load_state_dict(torch.load(out / "denoiser.pt", weights_only=True)["model"])
    voc = VOCSegmentation(data["voc"], "val")
    cm = evaluate_segmentation(fcn, voc, 30, denoiser=net, workers=0)
    labelled = sum(int((voc[i][1] != 255).sum()) for i in range(len(voc)))
    assert cm.mat.sum() == labelled and 0 <= cm.mean_iou() <= 1
    noisy = evaluate_segmentation(fcn, voc, 30, workers=0)  # the "noisy input" row
    assert noisy.mat.sum() == labelled


def test_psnr_on_kodak_sees_the_same_noise_every_time(data):
    kodak = kodak24(data["kodak"])
    a = evaluate_psnr(kodak, 25)
    assert a == evaluate_psnr(kodak, 25) and set(a) == {"kodim01", "kodim02"}
    assert all(20 < v < 25 for v in a.values())  # sigma 25 noise alone: about 20.2 dB before 8-bit clipping
    assert evaluate_psnr(kodak, 25, denoiser=lambda x, s: x) == a


def test_missing_datasets_say_which_layout_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ImageFolder layout.*n01440764"):
        ImageNetFolder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no class folders"):
        ImageNetFolder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"VOCdevkit/VOC2012/JPEGImages.*SegmentationClass"):
        VOCSegmentation(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="kodim01.png"):
        kodak24(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="holds no images"):
        kodak24(tmp_path / "empty")


def test_voc_with_a_missing_file_or_list_names_it(tmp_path):
    paths = make_miniature(tmp_path, voc_images=2)
    voc = paths["voc"] / "VOCdevkit" / "VOC2012"
    with pytest.raises(FileNotFoundError, match="train_aug.txt"):
        VOCSegmentation(paths["voc"], "train_aug.txt")  # a list file that does not exist
    (voc / "SegmentationClass" / "2007_000001.png").unlink()
    with pytest.raises(FileNotFoundError, match="2007_000001.png"):
        VOCSegmentation(paths["voc"], "val")


def test_corrupt_or_truncated_images_are_named(tmp_path):
    paths = make_miniature(tmp_path, voc_images=2)
    png = paths["kodak"] / "kodim01.png"
    png.write_bytes(png.read_bytes()[:200])  # truncated
    with pytest.raises(ImageReadError, match="kodim01.png"):
        read_image(png)
    jpeg = next(paths["imagenet_val"].glob("*/*.JPEG"))
    jpeg.write_bytes(b"not a jpeg at all")
    ds = ImageNetFolder(paths["imagenet_val"], crop=32, resize=40, expect_classes=None)
    i = [p for p, _ in ds.samples].index(jpeg)
    with pytest.raises(ImageReadError, match=jpeg.name):
        ds[i]
    label = paths["voc"] / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000000.png"
    from PIL import Image

    Image.new("RGB", (24, 20)).save(label)  # a colour PNG where class indices are expected
    with pytest.raises(ImageReadError, match="2007_000000.png.*palette"):
        VOCSegmentation(paths["voc"], "train")[0]
