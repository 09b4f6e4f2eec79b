"""Real-world image files in `dmh denoise` and errors without tracebacks: one test per case, every file
generated here."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
import torch
from PIL import Image

from dmh import imagefiles, inference, pretrained
from dmh.checkpoint import save_checkpoint
from dmh.cli import RECIPE_NAMES, STUDY_PRESETS, main
from dmh.imagefiles import ImageFile, ImageReadError, read_image_file, write_image_file
from dmh.nets import DenoiseNet

RNG = np.random.default_rng(0)
ICC = b"\x00\x00\x02\x0cfake icc profile bytes" * 4


@pytest.fixture
def released(tmp_path_factory, monkeypatch):
    """An untrained width-0.125 'colour-blind' in a temporary data/pretrained/ (sha256-checked like the real one)."""
    root = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    net = DenoiseNet(3, 0.125)
    pretrained.write_pretrained(net, root, metrics={}, info={"arch": net.arch}, name="colour-blind")
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", root)
    return root


def _run(*args: str) -> None:
    """`dmh ARGS` in this process (an error would exit with one line: SystemExit's message)."""
    main(list(args))


def _error(*args: str) -> str:
    with pytest.raises(SystemExit) as e:
        main(list(args))
    msg = str(e.value.code)
    assert "\n" not in msg and "Traceback" not in msg and "weights_only=False" not in msg, msg
    return msg


def _png_with_chunks(arr: np.ndarray, bitdepth: int, extra: list[tuple[bytes, bytes]], **kw) -> bytes:
    h, w = arr.shape[:2]
    planes = 1 if arr.ndim == 2 else arr.shape[2]
    buf = io.BytesIO()
    png.Writer(w, h, greyscale=planes <= 2, alpha=planes in (2, 4), bitdepth=bitdepth, **kw).write(
        buf, arr.reshape(h, w * planes)
    )
    chunks = list(png.Reader(bytes=buf.getvalue()).chunks())
    out = io.BytesIO()
    png.write_chunks(out, chunks[:1] + extra + chunks[1:])
    return out.getvalue()


# 1 ---------------------------------------------------------------------------------------------- sBIT, bit depths
@pytest.mark.parametrize("sbit", [8, 10, 12, 14])
def test_16bit_png_with_sbit_is_rescaled_and_keeps_16_bits(tmp_path, released, sbit):
    vals = RNG.integers(0, 2**sbit, (24, 20, 3)).astype(np.uint16)
    stored = vals << (16 - sbit)  # what an encoder writes: significant bits at the top
    f = tmp_path / "s.png"
    f.write_bytes(_png_with_chunks(stored, 16, [(b"sBIT", bytes([sbit] * 3))]))
    img = read_image_file(f)
    assert img.bits == 16 and img.significant == sbit and img.pixels.dtype == np.uint16
    want = np.rint(vals.astype(np.float64) * 65535 / (2**sbit - 1))
    assert np.abs(img.pixels.astype(np.float64) - want).max() <= 0.5
    info = inference.denoise_file(f, tmp_path / "o.png", blind=True, tile=16, progress=False)
    out = read_image_file(tmp_path / "o.png")
    assert info["bits"] == 16 and out.bits == 16 and out.pixels.shape == (24, 20, 3)
    assert out.pixels.max() > 4096  # full 16-bit range, not a 12-bit range written as 8 bits
    assert f"{sbit} significant bits rescaled to 16" in info["converted"]


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_low_depth_grey_png_becomes_8bit_grey(tmp_path, depth):
    vals = RNG.integers(0, 2**depth, (9, 16)).astype(np.uint8)
    f = tmp_path / "low.png"
    f.write_bytes(_png_with_chunks(vals, depth, []))
    img = read_image_file(f)
    assert img.bits == 8 and img.pixels.ndim == 2
    assert np.array_equal(img.pixels, (vals.astype(int) * 255 // (2**depth - 1)).astype(np.uint8))


def test_palette_png_with_transparency_becomes_rgba(tmp_path):
    im = Image.fromarray(RNG.integers(0, 4, (10, 12)).astype(np.uint8), "P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    im.info["transparency"] = 0
    im.save(tmp_path / "p.png", transparency=0)
    img = read_image_file(tmp_path / "p.png")
    assert img.pixels.shape == (10, 12, 4) and "palette" in img.note


# 2 -------------------------------------------------------------------------------------------------------- CMYK
def test_cmyk_tiff_and_jpeg_are_refused_clearly(tmp_path, released):
    cmyk = RNG.integers(0, 256, (16, 16, 4)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "c.tif", cmyk, photometric="separated")
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.jpg")
    for name in ("c.tif", "c.jpg"):
        msg = _error("denoise", str(tmp_path / name), str(tmp_path / "o.png"))
        assert "CMYK" in msg and name in msg and "convert it to RGB" in msg
    assert not (tmp_path / "o.png").exists()


# 3 -------------------------------------------------------------------------------------------------------- grey
def test_grey_jpeg_stays_grey(tmp_path, released):
    Image.fromarray(RNG.integers(0, 256, (20, 30)).astype(np.uint8), "L").save(tmp_path / "g.jpg")
    _run("denoise", str(tmp_path / "g.jpg"), str(tmp_path / "o.jpg"))
    assert Image.open(tmp_path / "o.jpg").mode == "L"
    assert read_image_file(tmp_path / "o.jpg").pixels.shape == (20, 30)


def test_grey_alpha_png_stays_grey_alpha_with_its_alpha(tmp_path, released):
    la = RNG.integers(0, 256, (18, 22, 2)).astype(np.uint8)
    write_image_file(tmp_path / "la.png", ImageFile(la, 8, 8))
    _run("denoise", str(tmp_path / "la.png"), str(tmp_path / "o.png"))
    out = read_image_file(tmp_path / "o.png").pixels
    assert out.shape == (18, 22, 2) and np.array_equal(out[..., 1], la[..., 1])
    _run("denoise", str(tmp_path / "la.png"), str(tmp_path / "o.tif"))
    assert read_image_file(tmp_path / "o.tif").pixels.shape == (18, 22, 2)


def test_min_is_white_tiff_is_inverted(tmp_path):
    g = RNG.integers(0, 256, (8, 8)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "w.tif", g, photometric="miniswhite")
    assert np.array_equal(read_image_file(tmp_path / "w.tif").pixels, 255 - g)


# 4 ----------------------------------------------------------------------------------------- EXIF orientation, ICC
def _exif(orientation: int) -> Image.Exif:
    e = Image.Exif()
    e[0x0112] = orientation
    return e


def test_jpeg_orientation_and_icc_are_kept(tmp_path, released):
    rgb = RNG.integers(0, 256, (16, 24, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "phone.jpg", exif=_exif(6), icc_profile=ICC)
    for out in ("o.jpg", "o.png", "o.tif"):
        _run("denoise", str(tmp_path / "phone.jpg"), str(tmp_path / out))
        img = read_image_file(tmp_path / out)
        assert img.orientation == 6 and img.icc == ICC, out
        assert img.pixels.shape == (16, 24, 3)  # pixels not rotated: the tag says how to show them
    with Image.open(tmp_path / "o.jpg") as im:
        assert im.getexif()[0x0112] == 6 and im.info["icc_profile"] == ICC


def test_png_and_tiff_icc_profiles_are_carried(tmp_path, released):
    rgb = RNG.integers(0, 65536, (12, 12, 3)).astype(np.uint16)
    iccp = (b"iCCP", b"ICC profile\x00\x00" + zlib.compress(ICC))
    (tmp_path / "i.png").write_bytes(_png_with_chunks(rgb, 16, [iccp, (b"gAMA", (45455).to_bytes(4, "big"))]))
    tifffile.imwrite(tmp_path / "i.tif", rgb, photometric="rgb", iccprofile=ICC)
    for src in ("i.png", "i.tif"):
        for dst in ("o.png", "o.tif"):
            _run("denoise", str(tmp_path / src), str(tmp_path / dst))
            assert read_image_file(tmp_path / dst).icc == ICC, (src, dst)
    _run("denoise", str(tmp_path / "i.png"), str(tmp_path / "o.png"))
    assert (b"gAMA", (45455).to_bytes(4, "big")) in read_image_file(tmp_path / "o.png").png_chunks


# 5 --------------------------------------------------------------------------------------- weights files: no traceback
class _Payload:
    def __reduce__(self):
        return (print, ("this would run",))


def test_bad_weights_files_give_one_line(tmp_path, released):
    src = tmp_path / "in.png"
    write_image_file(src, ImageFile(RNG.integers(0, 256, (8, 8, 3)).astype(np.uint8), 8, 8))
    torch.save({"model": _Payload()}, tmp_path / "pickle.pt")
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"model": DenoiseNet(3, 0.125).state_dict(), "arch": DenoiseNet(3, 0.125).arch})
    (tmp_path / "trunc.pt").write_bytes(good.read_bytes()[:500])
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    for name, says in (("pickle.pt", "NOT loaded"), ("trunc.pt", "corrupt or truncated"),
                       ("text.pt", "corrupt or truncated")):  # fmt: skip
        msg = _error("denoise", str(src), str(tmp_path / "o.png"), "--weights", str(tmp_path / name))
        assert name in msg and says in msg, msg
    assert not (tmp_path / "o.png").exists()


def test_traceback_only_with_debug(tmp_path, released, monkeypatch):
    (tmp_path / "text.pt").write_text("x")
    src = tmp_path / "in.png"
    write_image_file(src, ImageFile(np.zeros((8, 8, 3), np.uint8), 8, 8))
    with pytest.raises(RuntimeError, match="corrupt"):
        main(["--debug", "denoise", str(src), str(tmp_path / "o.png"), "--weights", str(tmp_path / "text.pt")])
    monkeypatch.setenv("DMH_DEBUG", "1")
    with pytest.raises(RuntimeError, match="corrupt"):
        main(["denoise", str(src), str(tmp_path / "o.png"), "--weights", str(tmp_path / "text.pt")])


# 6 ------------------------------------------------------------------------------------------- dmh report on bad files
@pytest.mark.parametrize("content", ["[]", '{"mean": {}}', "{not json", '{"rows": 3}'])
def test_report_on_malformed_results_names_the_file(tmp_path, content):
    folder = tmp_path / "results" / "cpu"
    folder.mkdir(parents=True)
    (folder / "table1.json").write_text(content)
    msg = _error("report", "--preset", "cpu", "--out", str(tmp_path / "results"))
    assert "table1.json" in msg and ("not a result file" in msg or "not valid JSON" in msg), msg


# 7 ------------------------------------------------------------------------------------------- weights file by path
def test_weights_by_path_takes_the_architecture_from_the_file(tmp_path, released):
    src = tmp_path / "in.png"
    write_image_file(src, ImageFile(RNG.integers(0, 256, (10, 10, 3)).astype(np.uint8), 8, 8))
    _run("denoise", str(src), str(tmp_path / "o.png"), "--weights", str(released / "colour-blind.pt"))
    assert read_image_file(tmp_path / "o.png").pixels.shape == (10, 10, 3)
    torch.save({"model": {}, "arch": {"name": "FashionVGG"}}, tmp_path / "other.pt")
    assert "not a DenoiseNet" in _error("denoise", str(src), str(tmp_path / "o2.png"), "--weights",
                                        str(tmp_path / "other.pt"))  # fmt: skip


# 8 --------------------------------------------------------------------------------------------------- output path
def test_output_is_checked_before_the_work(tmp_path, released, monkeypatch):
    src = tmp_path / "in.png"
    write_image_file(src, ImageFile(RNG.integers(0, 256, (8, 8, 3)).astype(np.uint8), 8, 8))
    monkeypatch.setattr(inference, "denoise", lambda *a, **k: pytest.fail("denoised before checking the output"))
    assert "does not exist" in _error("denoise", str(src), str(tmp_path / "nope" / "o.png"))
    (tmp_path / "d.png").mkdir()
    assert "is a folder" in _error("denoise", str(src), str(tmp_path / "d.png"))
    assert "is the input" in _error("denoise", str(src), str(src))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "in.png"]  # no temporary file left


def test_output_written_atomically_and_overwrite(tmp_path, released, monkeypatch):
    src = tmp_path / "in.png"
    img = RNG.integers(0, 256, (8, 8, 3)).astype(np.uint8)
    write_image_file(src, ImageFile(img, 8, 8))
    (tmp_path / "o.png.tmp.png").write_bytes(b"a user's file with the old temp name")
    _run("denoise", str(src), str(tmp_path / "o.png"))
    assert (tmp_path / "o.png.tmp.png").read_bytes() == b"a user's file with the old temp name"
    _run("denoise", str(src), str(src), "--overwrite")
    assert not np.array_equal(read_image_file(src).pixels, img)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(imagefiles, "_write", boom)
    assert "disk full" in _error("denoise", str(tmp_path / "o.png"), str(tmp_path / "o2.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "o.png", "o.png.tmp.png"]


# 9 --------------------------------------------------------------------------------------------------- pixel limit
def test_decompression_bomb_png_is_refused_before_decoding(tmp_path, released):
    w = h = 40_000  # 1.6 gigapixels of zeros: ~200 KB of PNG
    raw = zlib.compress(b"".join(b"\x00" + bytes(w // 8) for _ in range(h)), 9)
    chunks = [(b"IHDR", w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])), (b"IDAT", raw),
              (b"IEND", b"")]  # fmt: skip
    buf = io.BytesIO()
    png.write_chunks(buf, chunks)
    (tmp_path / "bomb.png").write_bytes(buf.getvalue())
    msg = _error("denoise", str(tmp_path / "bomb.png"), str(tmp_path / "o.png"))
    assert "bomb.png" in msg and "above the limit" in msg and "--max-pixels" in msg


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg"])
def test_pixel_limit_for_every_format(tmp_path, monkeypatch, suffix):
    write_image_file(tmp_path / f"a{suffix}", ImageFile(np.zeros((30, 40, 3), np.uint8), 8, 8))
    with pytest.raises(ImageReadError, match="1,200 pixels, above the limit of 1,000"):
        read_image_file(tmp_path / f"a{suffix}", max_pixels=1000)
    monkeypatch.setenv("DMH_MAX_PIXELS", "1000")
    with pytest.raises(ImageReadError, match="DMH_MAX_PIXELS"):
        read_image_file(tmp_path / f"a{suffix}")
    assert read_image_file(tmp_path / f"a{suffix}", max_pixels=1200).pixels.shape == (30, 40, 3)


def test_multi_page_tiff_refused(tmp_path):
    tifffile.imwrite(tmp_path / "m.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack")
    with pytest.raises(ImageReadError, match="holds 3 images"):
        read_image_file(tmp_path / "m.tif")


# 10 -------------------------------------------------------------------------------------------------------- smaller
def test_reproduce_no_longer_offers_the_paper_preset(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "--preset", "paper"])
    assert "invalid choice: 'paper'" in capsys.readouterr().err


def test_cli_name_lists_match_the_package():
    from dmh.denoisers import RECIPES
    from dmh.presets import PRESETS

    assert set(RECIPE_NAMES) == set(RECIPES) and set(STUDY_PRESETS) == set(PRESETS) - {"paper"}


def test_empty_pretrained_folder_says_what_it_is(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    src = tmp_path / "in.png"
    write_image_file(src, ImageFile(np.zeros((8, 8, 3), np.uint8), 8, 8))
    msg = _error("denoise", str(src), str(tmp_path / "o.png"))
    assert "no manifest" in msg and "DMH_PRETRAINED" in msg and "train-tasks" not in msg


def test_conflicting_flags_refused(tmp_path, released):
    src = tmp_path / "in.png"
    write_image_file(src, ImageFile(np.zeros((8, 8, 3), np.uint8), 8, 8))
    assert "pass one of them" in _error("denoise", str(src), str(tmp_path / "o.png"), "--sigma", "25", "--weights",
                                        "colour-blind")  # fmt: skip


def test_sigma_warning_is_one_line_without_source(tmp_path, released, capsys):
    src = tmp_path / "in.png"
    write_image_file(src, ImageFile(np.zeros((8, 8, 3), np.uint8), 8, 8))
    _run("denoise", str(src), str(tmp_path / "o.png"), "--sigma", "80")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: sigma 80 is outside" in err and "warn(" not in err


def test_folder_named_like_an_image_is_reported_as_a_folder(tmp_path, released):
    (tmp_path / "x.png").mkdir()
    assert "is a folder" in _error("denoise", str(tmp_path / "x.png"), str(tmp_path / "o.png"))


def test_help_and_argument_errors_do_not_import_torch():
    code = (
        "import sys\nfrom dmh.cli import main\nfor a in (['--help'], ['denoise'], ['reproduce', '--preset', 'x']):\n"
        "    try:\n        main(a)\n    except SystemExit:\n        pass\nprint('torch' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip().splitlines()[-1] == "False"


def test_pickle_in_results_is_not_involved(tmp_path):
    # result files are JSON: a pickle named like one is reported as invalid JSON, never unpickled
    folder = tmp_path / "r" / "cpu"
    folder.mkdir(parents=True)
    (folder / "table1.json").write_bytes(pickle.dumps(_Payload()))
    assert "not valid JSON" in _error("report", "--out", str(tmp_path / "r"))
    assert not Path(folder / "REPORT.md").exists()
