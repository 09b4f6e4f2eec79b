"""Checkpoints: load with weights_only=True, hold model / optimizer / scheduler / RNG states; another architecture
or width is refused with a message naming both; damaged files raise an error naming the file."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from dmh.checkpoint import (
    arch_of,
    check_arch,
    checkpoint_path,
    last_checkpoint,
    load_checkpoint,
    save_checkpoint,
    write_json,
)
from dmh.nets import denoisenet
from dmh.training import TrainConfig, train


def _step(model, gen):
    clean = torch.rand(2, model.in_channels, 8, 8, generator=gen)
    loss = F.mse_loss(model(clean + 0.1 * torch.randn(clean.shape, generator=gen)), clean)
    return loss, {"rec": loss.item()}


@pytest.fixture
def trained(tmp_path, tiny_net):
    """A grey DenoiseNet(width=0.25) trained 2 steps (SGD with milestones), its checkpoint folder, and the net."""
    cfg = TrainConfig(max_steps=2, optimizer="sgd", lr=1e-3, milestones=(1,), ckpt_every=1, log_every=1, progress=False)
    train(tiny_net, _step, cfg, ckpt_dir=tmp_path, extra={"experiment": {"sigma": 25}})
    return tmp_path, tiny_net


def test_loads_with_weights_only_and_holds_states(trained):
    folder, net = trained
    path = last_checkpoint(folder)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert {"model", "arch", "optimizer", "scheduler", "step", "rng", "config", "history"} <= set(ckpt)
    assert ckpt["arch"] == {"name": "DenoiseNet", "in_channels": 1, "width": 0.25}
    assert ckpt["step"] == 2 and len(ckpt["history"]) == 2
    assert ckpt["config"]["optimizer"] == "sgd" and ckpt["config"]["milestones"] == [1]
    assert ckpt["experiment"] == {"sigma": 25}
    assert set(ckpt["model"]) == set(net.state_dict())
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in ckpt["model"].items())
    assert ckpt["optimizer"]["state"] and "param_groups" in ckpt["optimizer"]
    assert ckpt["scheduler"]["last_epoch"] == 2 and ckpt["scheduler"]["milestones"] == {1: 1}
    assert isinstance(ckpt["rng"]["generator"], torch.Tensor) and isinstance(ckpt["rng"]["torch"], torch.Tensor)
    # The saved generator state continues the run's stream.
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        _step(denoisenet(in_channels=1, width=0.25), g)
    assert torch.equal(ckpt["rng"]["generator"], g.get_state())


def test_periodic_checkpoints_pruned_and_atomic(tmp_path, tiny_net):
    cfg = TrainConfig(max_steps=5, ckpt_every=1, keep_last=2, log_every=1, progress=False)
    train(tiny_net, _step, cfg, ckpt_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000004.pt", "step_0000005.pt"]  # no .tmp left


def test_load_weights_same_architecture(trained):
    folder, net = trained
    other = denoisenet(in_channels=1, width=0.25, weights=last_checkpoint(folder))
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize(
    "kwargs,want",
    [
        ({"in_channels": 1, "width": 0.5}, "DenoiseNet(in_channels=1, width=0.5)"),
        ({"in_channels": 3, "width": 0.25}, "DenoiseNet(in_channels=3, width=0.25)"),
    ],
)
def test_other_width_or_channels_fails_naming_both(trained, kwargs, want):
    folder, _ = trained
    path = last_checkpoint(folder)
    with pytest.raises(ValueError) as err:
        denoisenet(weights=path, **kwargs)
    msg = str(err.value)
    assert "DenoiseNet(in_channels=1, width=0.25)" in msg and want in msg and str(path) in msg


def test_check_arch_and_arch_of(tiny_net):
    assert arch_of(tiny_net) == tiny_net.arch
    assert arch_of(torch.nn.Linear(2, 2)) == {"name": "Linear"}
    check_arch(tiny_net, {"arch": tiny_net.arch})  # same: fine
    check_arch(tiny_net, {})  # no arch recorded: nothing to check
    with pytest.raises(ValueError, match=r"holds Linear\(\), but the model is DenoiseNet"):
        check_arch(tiny_net, {"arch": {"name": "Linear"}})


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_file_error_names_it(trained, tmp_path, damage):
    folder, _ = trained
    data = last_checkpoint(folder).read_bytes()
    bad = tmp_path / f"damaged_{damage}.pt"
    bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a checkpoint" * 100, "empty": b""}[damage])
    with pytest.raises(RuntimeError, match="corrupt or truncated") as err:
        load_checkpoint(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(RuntimeError, match=f"damaged_{damage}.pt"):
        denoisenet(in_channels=1, width=0.25, weights=bad)


class NotATensor:
    """An arbitrary pickled object: `weights_only=True` must refuse to run its reconstruction."""


def test_arbitrary_pickles_refused(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"model": {}, "payload": NotATensor()}, path)
    with pytest.raises(RuntimeError, match="pickled.pt"):
        load_checkpoint(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(RuntimeError, match=r"foreign.pt is not a dmh checkpoint"):
        load_checkpoint(foreign)


def test_last_checkpoint_and_names(tmp_path):
    assert last_checkpoint(tmp_path / "absent") is None
    assert last_checkpoint(tmp_path) is None
    for step in (9, 10, 2):
        save_checkpoint(checkpoint_path(tmp_path, step), {"model": {}})
    (tmp_path / "step_0000099.pt.tmp").write_bytes(b"partial")  # a killed write: ignored
    (tmp_path / "notes.txt").write_text("x")
    assert checkpoint_path(tmp_path, 10).name == "step_0000010.pt"
    assert last_checkpoint(tmp_path) == checkpoint_path(tmp_path, 10)
    assert load_checkpoint(last_checkpoint(tmp_path)) == {"model": {}}


def test_write_json_is_atomic(tmp_path):
    path = write_json(tmp_path / "sub" / "r.json", {"b": 2, "a": (1, 2)}, sort_keys=True)
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 2\n}\n'
    with pytest.raises(TypeError):
        write_json(path, {"x": object()})  # not serialisable: the old file stays, no temporary file is left
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 2} and sorted(p.name for p in path.parent.iterdir()) == [
        "r.json"
    ]
    assert write_json(path, [1], indent=None).read_text() == "[1]\n"
