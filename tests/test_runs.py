"""One `Run` spec for every fine-tune; train once, then load; seeds and lambdas give distinct runs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dmh import runs
from dmh.checkpoint import fingerprint
from dmh.nets import DenoiseNet
from dmh.presets import get_preset


def _base(channels: int = 1) -> DenoiseNet:
    torch.manual_seed(0)
    return DenoiseNet(channels, 0.125).eval()


def test_run_spec_is_validated_and_names_its_folder():
    r = runs.grey_run(get_preset("smoke"), "A", 0.25, seed=1)
    assert r.tag == "A_lam0.25_seed1_4" and r.batch == get_preset("smoke").cls.batch
    assert runs.grey_run(get_preset("smoke"), "B", 0).batch == get_preset("smoke").seg.batch
    assert runs.colour_run(get_preset("smoke"), 0.25).crop == get_preset("smoke").eff_crop
    for bad in ({"task": "C"}, {"lam": -1.0}, {"seed": -1}, {"steps": 0}, {"crop": 32}):
        with pytest.raises(ValueError):
            dataclasses.replace(r, **bad)
    with pytest.raises(ValueError, match="'A' or 'B'"):
        runs.grey_run(get_preset("smoke"), "E", 0.0)
    for bad_size, err in ((8, ValueError), (True, TypeError), (64.0, TypeError)):
        with pytest.raises(err, match="input side"):
            runs.Run("E", 0.25, crop=32, size=bad_size)
    with pytest.raises(ValueError, match="input side"):
        dataclasses.replace(r, size=64)  # A and B have no resize


def test_colour_runs_record_the_classifier_input_size():
    """EfficientNet-Lite0's input side is part of an E run: the native 224 is recorded as runs kept before the field
    existed were (no "size" key, so data/finetunes/ still applies to the cpu preset), any other size is recorded."""
    cpu, smoke = runs.colour_run(get_preset("cpu"), 0.25), runs.colour_run(get_preset("smoke"), 0.25)
    assert cpu.size is None and smoke.size == get_preset("smoke").eff_size == 64
    assert runs.task_network("E", smoke.size).size == (64, 64) and runs.task_network("E").size == (224, 224)
    tnet = torch.nn.Linear(1, 1)
    assert "size" not in runs._inputs(cpu, tnet, None)["run"] and runs._inputs(smoke, tnet, None)["run"]["size"] == 64
    kept = runs._kept_manifest(runs.KEPT_DIR)[cpu.tag]  # the kept cpu run of this spec still matches its spec
    assert kept["inputs"]["run"] == runs._inputs(cpu, tnet, None)["run"] | {"sigma_range": list(cpu.sigma_range)}


def test_train_once_then_load_and_seeds_differ(tmp_path, capsys):
    base = _base()
    r = runs.Run("A", 0.25, seed=0, steps=2, batch=2)
    net, hist = runs.train_or_load(r, base, tmp_path)
    assert len(hist) == 2 and fingerprint(net) != fingerprint(base) and not net.training
    again, hist2 = runs.train_or_load(r, base, tmp_path)  # loaded, not trained
    assert hist2 == hist and fingerprint(again) == fingerprint(net)
    assert fingerprint(runs.load(r, base, tmp_path, "03")) == fingerprint(net)
    other_seed, _ = runs.train_or_load(dataclasses.replace(r, seed=1), base, tmp_path)
    separate, h_sep = runs.train_or_load(dataclasses.replace(r, lam=0.0), base, tmp_path)
    assert len({fingerprint(m) for m in (net, other_seed, separate)}) == 3
    assert hist[0]["loss"] > hist[0]["rec"] and h_sep[0]["loss"] == h_sep[0]["rec"]  # the task term is off at 0
    with pytest.raises(FileNotFoundError, match="03_lambda"):
        runs.load(dataclasses.replace(r, seed=7), base, tmp_path, "03_lambda_ablation.ipynb")


def test_segmentation_and_colour_runs_train(tmp_path):
    _, hb = runs.train_or_load(runs.Run("B", 0.5, steps=1, batch=1), _base(), tmp_path)
    _, he = runs.train_or_load(runs.Run("E", 0.25, steps=1, batch=1, crop=32), _base(3), tmp_path)
    assert hb[0]["loss"] > hb[0]["rec"] and he[0]["loss"] > he[0]["rec"]


def test_train_many_in_worker_processes_equals_one_thread_serial(tmp_path, single_process):
    """Two 1-thread worker processes give the same weights as training the runs one after the other on one thread;
    finished runs are skipped."""
    base = _base()
    specs = [runs.Run("A", 0.25, seed=s, steps=2, batch=2) for s in (0, 1)]
    assert runs.train_many(specs, base, tmp_path / "par", workers=2, progress=False) == [r.tag for r in specs]
    torch.set_num_threads(1)
    assert runs.train_many(specs, base, tmp_path / "ser", workers=1, progress=False) == [r.tag for r in specs]
    for r in specs:
        assert fingerprint(runs.load(r, base, tmp_path / "par", "03")) == fingerprint(
            runs.load(r, base, tmp_path / "ser", "03")
        )
    assert runs.train_many(specs, base, tmp_path / "par", workers=2) == []
    with pytest.raises(ValueError, match="workers"):
        runs.train_many(specs, base, tmp_path, workers=0)


def test_kept_runs_are_copied_only_for_the_same_inputs(tmp_path):
    """A kept fine-tune replaces training when its inputs are this run's (and its sha256 holds); other inputs train."""
    base, kept = _base(), tmp_path / "kept"
    r = runs.Run("A", 0.25, seed=0, steps=2, batch=2)
    net, hist = runs.train_or_load(r, base, tmp_path / "first")
    path = runs.keep(r, tmp_path / "first", kept_dir=kept, command="test")
    manifest = runs._kept_manifest(kept)
    assert path.is_file() and manifest[r.tag]["run"]["lam"] == 0.25 and manifest[r.tag]["command"] == "test"
    assert "optimizer" not in torch.load(path, weights_only=True)  # weights, history, inputs only
    # A fresh results folder: the kept run is copied (same weights and history, nothing trained).
    got, hist2 = runs.train_or_load(r, base, tmp_path / "fresh", kept=True, kept_dir=kept)
    assert fingerprint(got) == fingerprint(net) and hist2 == hist
    assert runs.train_many([r], base, tmp_path / "fresh2", kept=True, kept_dir=kept) == [r.tag]
    assert fingerprint(runs.load(r, base, tmp_path / "fresh2", "03")) == fingerprint(net)
    # Another starting denoiser: the kept run does not apply; it trains.
    other = DenoiseNet(1, 0.125)
    assert runs._use_kept(r, {"init": fingerprint(other)}, tmp_path / "x", kept) is False
    trained, _ = runs.train_or_load(r, other, tmp_path / "other", kept=True, kept_dir=kept)
    assert fingerprint(trained) != fingerprint(net)
    # Without kept=True nothing is copied.
    assert not (tmp_path / "plain" / "ckpt" / r.tag).exists()
    # A changed kept file is refused, naming it.
    path.write_bytes(path.read_bytes()[:-1] + b"x")
    with pytest.raises(ValueError, match="sha256"):
        runs.train_or_load(r, base, tmp_path / "fresh3", kept=True, kept_dir=kept)
