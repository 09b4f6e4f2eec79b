"""The Debian photo listing and its install, the released-denoiser recipes (training with a VAL curve,
time budget, resume), release to the manifest, `denoisenet(weights=...)`, and `dmh denoise` on image files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dmh import denoisers, inference, photos, pretrained
from dmh.checkpoint import last_checkpoint, load_checkpoint
from dmh.cli import main as dmh_main
from dmh.data import PHOTO_SPLIT
from dmh.images import read_file, write_file
from dmh.nets import RELEASED, denoisenet, weights_meta

TINY = denoisers.Recipe(
    "colour-blind", width=0.125, patch=16, batch=2, val_every=4, val_crop=24,
    train=denoisers.TrainConfig(max_steps=8, lr=1e-3, log_every=2, ckpt_every=4, keep_last=1, channels_last=True,
                                progress=False),
)  # fmt: skip


# ------------------------------------------------------------------------------------------------------ listing
def test_listing_is_complete_and_disjoint_from_evaluation_images():
    entries = photos.listing()
    assert len(entries) == 82
    keys = {"package", "version", "path", "sha256", "size", "factor", "out_size", "split", "licence", "credit"}
    for e in entries:
        assert keys <= set(e) and e["licence"] not in ("", "?") and e["credit"] and len(e["sha256"]) == 64
        assert e["factor"] >= 2 and all(abs(o - s / e["factor"]) <= 1 for o, s in zip(e["out_size"], e["size"]))
    names = [photos.photo_name(e) for e in entries]
    assert len(set(names)) == len(names)
    val = {e["sha256"] for e in entries if e["split"] == "val"}
    assert val == set(sorted(e["sha256"] for e in entries)[:10])  # the rule written in dmh.photos
    assert not set(names) & set(PHOTO_SPLIT["test"])


def test_load_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m dmh.photos install"):
        photos.load("val", tmp_path)
    with pytest.raises(ValueError, match="split"):
        photos.load("test", tmp_path)


def _fake_package(tmp_path: Path, monkeypatch, source: np.ndarray) -> dict:
    """One listing entry whose file is `source` (H, W, 3 uint8) inside a fake extracted package."""
    from PIL import Image

    f = tmp_path / "src" / "fake-pkg" / "usr" / "share" / "a.png"
    f.parent.mkdir(parents=True)
    Image.fromarray(source).save(f)
    h, w = source.shape[:2]
    entry = {"package": "fake-pkg", "version": "1", "path": "usr/share/a.png", "sha256": pretrained.sha256_file(f),
             "size": [w, h], "factor": 2.0, "out_size": [w // 2, h // 2], "split": "train", "licence": "CC0-1.0",
             "credit": "test"}  # fmt: skip
    monkeypatch.setattr(photos, "listing", lambda: (entry,))
    return entry


def test_build_downscales_checks_sha256_and_refuses_evaluation_twins(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    entry = _fake_package(tmp_path, monkeypatch, (rng.random((64, 96, 3)) * 255).astype(np.uint8))
    assert photos.build(tmp_path / "src", tmp_path / "out") == ["fake-pkg__a"]
    assert read_file(tmp_path / "out" / "fake-pkg__a.png").shape == (32, 48, 3)
    assert json.loads((tmp_path / "out" / "index.json").read_text())["photos"] == ["fake-pkg__a"]
    entry["sha256"] = "0" * 64
    assert photos.build(tmp_path / "src", tmp_path / "out2") == []  # another file version: refused, said on stderr
    shutil.rmtree(tmp_path / "src")
    from dmh.data import photo_u8

    _fake_package(tmp_path, monkeypatch, np.ascontiguousarray(photo_u8("kodim23")[..., :3]))
    with pytest.raises(ValueError, match="looks like the evaluation image kodim23"):
        photos.build(tmp_path / "src", tmp_path / "out3")


# ------------------------------------------------------------------------------------------------------ training
@pytest.fixture
def tiny_photos(monkeypatch):
    g = torch.Generator().manual_seed(5)
    imgs = {f"p{k}": torch.rand(3, 40 + 4 * k, 36, generator=g) for k in range(3)}
    monkeypatch.setattr(photos, "training_photos", lambda split, folder=None: imgs)
    return imgs


def test_training_records_a_val_curve_and_resumes_bit_identically(tmp_path, tiny_photos):
    net, hist = denoisers.train_denoiser(TINY, folder=tmp_path / "a", progress=False)
    assert [r["step"] for r in hist] == [2, 4, 6, 8]
    assert {"val_psnr_15", "val_psnr_25", "val_psnr_50"} <= set(hist[1]) and "val_psnr_15" not in hist[0]
    assert all(r["hours"] >= 0 for r in hist) and [r["hours"] for r in hist] == sorted(r["hours"] for r in hist)
    denoisers.train_denoiser(TINY, steps=4, folder=tmp_path / "b", progress=False)
    net2, hist2 = denoisers.train_denoiser(TINY, steps=8, folder=tmp_path / "b", progress=False)
    for a, b in zip(net.state_dict().values(), net2.state_dict().values()):
        assert torch.equal(a, b)
    assert [r["loss"] for r in hist] == [r["loss"] for r in hist2]


def test_hours_budget_stops_with_a_checkpoint(tmp_path, tiny_photos):
    _, hist = denoisers.train_denoiser(TINY, hours=0.0, folder=tmp_path, progress=False)
    assert hist[-1]["step"] == 2 and (tmp_path / "step_0000002.pt").is_file()


# ------------------------------------------------------------------------------------------------------ release
@pytest.fixture
def released(tmp_path_factory, monkeypatch, tiny_photos):
    """A tiny 'colour-blind' released into a temporary data/pretrained/."""
    root = tmp_path_factory.mktemp("pretrained")
    run = root / "run"
    denoisers.train_denoiser(TINY, folder=run, progress=False)
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", root)
    fake = {k: {"15": 30.0, "25": 28.0, "50": 25.0} for k in ("test_crop384", "test_full")}  # TEST scoring: below
    monkeypatch.setattr(denoisers, "psnr_on_test_photos", lambda net: fake)
    denoisers.release(TINY, folder=run, out=root, command="dmh train-denoiser (test)")
    return root


def test_release_writes_manifest_and_builder_loads_it(released):
    meta = weights_meta("colour-blind")
    assert meta["arch"] == {"name": "DenoiseNet", "in_channels": 3, "width": 0.125}
    assert (
        meta["steps"] == 8 and meta["sigma_range"] == [0.0, 55.0] and set(meta["metrics"]["val"]) == {"15", "25", "50"}
    )
    assert meta["data"]["listing_sha256"] == photos.listing_sha256() and meta["command"]
    assert json.loads((released / "colour-blind_history.json").read_text())[-1]["step"] == 8
    net = denoisenet(weights="colour-blind")
    assert net.width == 0.125 and net.training  # torchvision style: train mode as built
    with pytest.raises(ValueError, match="width=0.125, not 1.0"):
        denoisenet(weights="colour-blind", width=1.0)


def test_builder_refuses_changed_bytes_unknown_and_unreleased_names(released):
    f = released / "colour-blind.pt"
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256 .* the file was changed"):
        denoisenet(weights="colour-blind")
    with pytest.raises(FileNotFoundError, match="colour-s25.*not released yet.*dmh train-denoiser"):
        denoisenet(weights="colour-s25")
    with pytest.raises(ValueError, match="unknown weights"):
        weights_meta("colour-s99")
    assert RELEASED == ("colour-blind", "colour-s15", "colour-s25", "colour-s50", "grey-blind")


# -------------------------------------------------------------------------------------------------- dmh denoise
@pytest.mark.parametrize(
    "suffix,dtype,shape",
    [(".png", np.uint8, (37, 45, 3)), (".png", np.uint16, (37, 45, 3)), (".png", np.uint16, (37, 45)),
     (".png", np.uint8, (37, 45, 4)), (".tif", np.uint16, (37, 45, 3)), (".tif", np.uint8, (37, 45)),
     (".jpg", np.uint8, (37, 45, 3))],
)  # fmt: skip
def test_denoise_file_keeps_depth_channels_and_alpha(released, tmp_path, suffix, dtype, shape):
    rng = np.random.default_rng(1)
    img = (rng.random(shape) * np.iinfo(dtype).max).astype(dtype)
    src, dst = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    write_file(src, img)
    info = inference.denoise_file(src, dst, blind=True, tile=16, progress=False)
    out = read_file(dst)
    assert out.dtype == dtype and out.shape == shape and info["weights"] == "colour-blind"
    if len(shape) == 3 and shape[2] == 4:
        assert np.array_equal(out[..., 3], img[..., 3])
    assert not np.array_equal(out[..., :3] if out.ndim == 3 else out, img[..., :3] if img.ndim == 3 else img)


def test_denoise_command_line_and_its_errors(released, tmp_path, capsys):
    src = tmp_path / "in.png"
    write_file(src, (np.random.default_rng(2).random((20, 24, 3)) * 255).astype(np.uint8))
    dmh_main(["denoise", str(src), str(tmp_path / "o.tif"), "--blind", "--tile", "16"])
    assert "colour-blind" in capsys.readouterr().out and read_file(tmp_path / "o.tif").shape == (20, 24, 3)
    with pytest.raises(SystemExit, match="colour-s25.*not released yet"):
        dmh_main(["denoise", str(src), str(tmp_path / "o.png"), "--weights", "colour-s25"])
    dmh_main(["denoise", str(src), str(tmp_path / "o2.tif"), "--sigma", "25"])  # not released: the blind model
    assert "colour-blind" in capsys.readouterr().out
    (tmp_path / "o2.tif").unlink()
    with pytest.raises(SystemExit, match="sigma must be a finite number >= 0 and <= 255"):
        dmh_main(["denoise", str(src), str(tmp_path / "o.png"), "--sigma", "-3"])
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(OSError, match="bad.png"):
        inference.denoise_file(tmp_path / "bad.png", tmp_path / "o.png")
    with pytest.raises(SystemExit, match="no such image file"):
        dmh_main(["denoise", str(tmp_path / "missing.png"), str(tmp_path / "o.png")])
    with pytest.raises(SystemExit, match="unsupported file type"):
        dmh_main(["denoise", str(src), str(tmp_path / "o.bmp")])
    write_file(tmp_path / "in16.png", np.zeros((8, 8, 3), np.uint16))
    with pytest.raises(SystemExit, match="JPEG holds 8-bit"):
        dmh_main(["denoise", str(tmp_path / "in16.png"), str(tmp_path / "o.jpg")])
    assert sorted(p.name for p in tmp_path.glob("o.*")) == ["o.tif"]  # nothing half-written


def test_choose_weights(monkeypatch):
    monkeypatch.setattr(pretrained, "read_manifest", lambda: {"colour-blind": {}, "colour-s25": {}})
    assert inference.choose_weights() == "colour-blind"
    assert inference.choose_weights(25) == "colour-s25" and inference.choose_weights(25, blind=True) == "colour-blind"
    assert inference.choose_weights(30) == "colour-blind" and inference.choose_weights(weights="x.pt") == "x.pt"
    with pytest.raises(ValueError, match="pass one of them"):
        inference.choose_weights(15, weights="x.pt")
    assert inference.choose_weights(50) == "colour-blind"  # colour-s50 not released: the blind model


def test_psnr_on_test_photos_matches_table_1_noise(make_denoiser):
    """The crop score uses exactly Table 1's noisy pixels (dmh.study), so it sits beside that table's CBM3D row."""
    from dmh.evalsets import photo_noise, test_photos
    from dmh.inference import denoise
    from dmh.metrics import psnr
    from dmh.presets import get_preset

    net = make_denoiser(3, 0.125).eval()
    res = denoisers.psnr_on_test_photos(net, sigmas=(25.0,))
    p = get_preset("full")  # Table 1 of the published evidence: 384 x 384 crops
    crops = list(test_photos(p).values())
    want = np.mean([psnr(denoise(net, photo_noise(c, 25.0, k, p)), c[None]) for k, c in enumerate(crops)])
    assert res["test_crop384"]["25"] == pytest.approx(want) and 5 < res["test_full"]["25"] < 40


def test_torch_hub_loads_a_released_denoiser_from_the_clone(released):
    root = Path(__file__).resolve().parents[1]
    net = torch.hub.load(str(root), "denoisenet", source="local", weights="colour-blind")
    ref = denoisenet(weights="colour-blind")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), ref.state_dict().values()))
    assert torch.hub.load(str(root), "denoisenet", source="local").width == 1.0


def test_readme_table_of_released_denoisers_comes_from_the_manifest(released, tmp_path):
    from dmh import report

    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- released:start -->\nold\n<!-- released:end -->\nb\n")
    report.update_readme_released(readme)
    text = readme.read_text()
    meta = weights_meta("colour-blind")
    assert "old" not in text and f"| colour-blind | 0.125 | 8 | {meta['hours']:.2f} | 25 |" in text
    assert f"{meta['metrics']['val']['25']:.2f} | 28.00 | 28.00 | {meta['sha256'][:12]} |" in text
    assert "CBM3D" not in text  # no kept CBM3D numbers in this data/pretrained/
    cb = {"test_crop384": {"25": 31.72}, "test_full": {"25": 32.5}}
    (released / "cbm3d_test_photos.json").write_text(json.dumps(cb))
    report.update_readme_released(readme)
    assert "| CBM3D (true sigma) |  |  |  | 25 |  | 31.72 | 32.50 |  |" in readme.read_text()


def test_cbm3d_on_test_photos_is_computed_once_and_kept(tmp_path, monkeypatch):
    from dmh import baselines, study  # noqa: F401  (study binds the real cbm3d before it is patched here)

    calls = []
    monkeypatch.setattr(baselines, "cbm3d", lambda x, s: calls.append(s) or x.clamp(0, 1))  # identity: fast
    monkeypatch.setattr(denoisers, "VAL_SIGMAS", (50.0,))
    r = denoisers.cbm3d_on_test_photos(tmp_path / "c.json", sigmas=(50.0,))
    assert set(r["test_full"]) == {"50"} and len(calls) == 10 and 14 < r["test_full"]["50"] < 16  # noisy PSNR
    assert denoisers.cbm3d_on_test_photos(tmp_path / "c.json", sigmas=(50.0,)) == r and len(calls) == 10


@pytest.fixture
def cli_photos(monkeypatch):
    """Two random photos large enough for the real recipes' 48 x 48 patches (the command line trains those)."""
    g = torch.Generator().manual_seed(6)
    imgs = {f"p{k}": torch.rand(3, 64, 72, generator=g) for k in range(2)}
    monkeypatch.setattr(photos, "training_photos", lambda split, folder=None: imgs)
    return imgs


def test_train_and_release_from_the_command_line(tmp_path, monkeypatch, capsys, cli_photos):
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "pre")
    fake = {k: {"15": 30.0, "25": 28.0, "50": 25.0} for k in ("test_crop384", "test_full")}
    monkeypatch.setattr(denoisers, "psnr_on_test_photos", lambda net: fake)
    run = tmp_path / "run"
    dmh_main(["train-denoiser", "--width", "0.125", "--steps", "2", "--out", str(run), "--threads", "1"])
    assert "step 2" in capsys.readouterr().out and (run / "step_0000002.pt").is_file()
    readme = tmp_path / "README.md"
    readme.write_text("<!-- released:start -->\n<!-- released:end -->\n")
    dmh_main(["release-denoiser", "--width", "0.125", "--run", str(run), "--readme", str(readme), "--command", "x"])
    assert weights_meta("colour-blind")["steps"] == 2 and "| colour-blind | 0.125 | 2 |" in readme.read_text()


def test_train_denoiser_milestones_lower_the_rate_on_resume(tmp_path, cli_photos):
    run = tmp_path / "run"
    args = ["train-denoiser", "--width", "0.125", "--out", str(run), "--threads", "1"]
    dmh_main([*args, "--steps", "2"])
    dmh_main([*args, "--steps", "4", "--milestones", "3"])  # a drop decided after step 2
    ckpt = load_checkpoint(last_checkpoint(run))
    lr = denoisers.RECIPES["colour-blind"].train.lr
    assert ckpt["config"]["milestones"] == [3] and ckpt["history"][-1]["step"] == 4
    assert ckpt["history"][0]["lr"] == lr and ckpt["history"][-1]["lr"] == pytest.approx(lr / 10)
    with pytest.raises(SystemExit, match="config differs"):  # a drop in the past would rewrite the schedule so far
        dmh_main([*args, "--steps", "6", "--milestones", "2"])


def test_per_sigma_recipes_fine_tune_from_the_released_blind_model(released, tmp_path, tiny_photos):
    import dataclasses

    r = denoisers.RECIPES["colour-s25"]
    assert r.sigma == 25.0 and r.init == "colour-blind" and r.width == denoisers.RECIPES["colour-blind"].width
    tiny = dataclasses.replace(TINY, name="colour-s25", sigma=25.0, init="colour-blind")
    net, hist = denoisers.train_denoiser(tiny, steps=2, folder=tmp_path / "s25", progress=False)
    start = denoisenet(weights="colour-blind")
    assert hist[-1]["step"] == 2 and not torch.equal(net.last.weight, start.last.weight)
    net0, _ = denoisers.train_denoiser(tiny, steps=0, folder=tmp_path / "s25_zero", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(net0.state_dict().values(), start.state_dict().values()))


# ------------------------------------------------------------------------------------------------------ grey base
def test_recipe_pairs_channels_with_data():
    g = denoisers.RECIPES["grey-blind"]
    assert (g.channels, g.data, g.sigma_range, g.val_sigmas) == (1, "fashion", (0.0, 100.0), denoisers.GREY_SIGMAS)
    with pytest.raises(ValueError, match="colour on 'photos' or grey on 'fashion'"):
        denoisers.Recipe("x", channels=1, data="photos")


def test_fashion_patches_are_item_canvases_and_scene_crops():
    from dmh.data import ItemSampler, SceneSampler

    g = torch.Generator().manual_seed(0)
    x = denoisers.fashion_patches(5, 32, g, ItemSampler("train", size=32), SceneSampler("train"))
    assert x.shape == (5, 1, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert x[:2].std() > 0.05 and x[2:].std() > 0.05  # textured backgrounds, not flat


def test_grey_recipe_trains_and_releases_beside_cbm3d(tmp_path, monkeypatch):
    import dataclasses

    from dmh.report import released_md

    for name, n in (("GREY_VAL_ITEMS", 8), ("GREY_VAL_SCENES", 2), ("GREY_TEST_ITEMS", 4), ("GREY_TEST_SCENES", 1)):
        monkeypatch.setattr(denoisers, name, n)
    tiny = dataclasses.replace(denoisers.RECIPES["grey-blind"], width=0.125, batch=4, val_every=2,
                               val_sigmas=(30.0, 90.0), train=TINY.train)  # fmt: skip
    net, hist = denoisers.train_denoiser(tiny, steps=4, folder=tmp_path / "run", progress=False)
    assert net.in_channels == 1 and {"val_psnr_30", "val_psnr_90"} <= set(hist[-1])
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    denoisers.release(tiny, folder=tmp_path / "run", out=tmp_path, command="test")
    meta = weights_meta("grey-blind")
    m = meta["metrics"]
    assert set(m) == {"val", "test_items", "cbm3d_items", "test_scenes", "cbm3d_scenes"}
    assert all(set(v) == {"30", "90"} for v in m.values()) and m["cbm3d_items"]["30"] > 20  # CBM3D really ran
    assert meta["arch"]["in_channels"] == 1 and denoisenet(weights="grey-blind").in_channels == 1
    assert "| 30 |" in released_md(pretrained.read_manifest(tmp_path)) and "CBM3D scenes" in released_md(
        pretrained.read_manifest(tmp_path)
    )
    grey = (np.random.default_rng(0).random((40, 50)) * 255).astype(np.uint8)
    write_file(tmp_path / "g.png", grey)
    info = inference.denoise_file(tmp_path / "g.png", tmp_path / "o.png", weights="grey-blind", progress=False)
    assert info["weights"] == "grey-blind" and read_file(tmp_path / "o.png").shape == (40, 50)
    write_file(tmp_path / "c.png", np.stack([grey] * 3, axis=2))
    with pytest.raises(ValueError, match="colour image and grey-blind a grey denoiser"):
        inference.denoise_file(tmp_path / "c.png", tmp_path / "o2.png", weights="grey-blind", progress=False)


def test_compare_widths_at_equal_hours(tmp_path):
    """The width rule: the mean VAL PSNR of both runs at the hours they share; >= 0.05 dB wins, else the default."""
    from dmh.checkpoint import save_checkpoint

    def run(name: str, rows: list[tuple[float, float, float]]) -> Path:
        hist = [{"step": k, "hours": h, "val_psnr_15": a, "val_psnr_30": b} for k, (h, a, b) in enumerate(rows)]
        hist.insert(1, {"step": 99, "hours": 0.1, "loss": 0.01})  # a row without VAL scores is skipped
        (tmp_path / name).mkdir()
        save_checkpoint(tmp_path / name / "step_0000010.pt", {"model": {}, "step": 10, "history": hist})
        return tmp_path / name

    narrow = run("n", [(0.5, 30.0, 26.0), (1.5, 31.0, 27.0), (2.5, 31.2, 27.2)])  # means 28, 29, 29.2
    wide = run("w", [(1.0, 30.6, 27.0), (2.0, 31.2, 27.4)])  # means 28.8, 29.3
    assert [round(v, 6) for _, v in denoisers.val_curve(narrow)] == [28.0, 29.0, 29.2]
    res = denoisers.compare_widths({0.25: narrow, 0.5: wide}, default=0.25)
    assert res["hours"] == 2.0 and abs(res["psnr"]["0.25"] - 29.1) < 1e-9 and abs(res["diff"] - 0.2) < 1e-9
    assert res["chosen"] == 0.5
    assert denoisers.compare_widths({0.25: narrow, 0.5: wide}, margin_db=0.3, default=0.25)["chosen"] == 0.25
    with pytest.raises(ValueError, match="at least 3"):
        denoisers.compare_widths({0.25: narrow, 0.5: wide}, min_hours=3)
