"""Distributed training: a 2-process gloo run (torchrun, CPU) equals a 1-process run with the same global batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from dmh import ddp
from dmh.ddp import Dist, GlobalBatches, GlobalBatchNorm2d, init_distributed, sync_batchnorm
from dmh.nets import DenoiseNet
from dmh.paper import ImageFiles, make_miniature

ROOT = Path(__file__).resolve().parents[1]


def _loopback() -> bool:
    """gloo needs TCP on 127.0.0.1 (down in a bare network namespace such as `unshare -n`)."""
    try:
        with socket.socket() as s, socket.socket() as c:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            c.settimeout(2)
            c.connect(s.getsockname())
        return True
    except OSError:
        return False


needs_loopback = pytest.mark.skipif(not _loopback(), reason="no loopback network: gloo cannot connect processes")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_miniature(tmp_path_factory.mktemp("ddp_data"), seed=2)


def _torchrun(args: list[str], nproc: int = 2) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "dmh.ddp"]
    r = subprocess.run(cmd + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path / "denoiser.pt", weights_only=True)["model"]


def test_without_torchrun_it_is_one_plain_process(single_process):
    d = init_distributed("cpu")
    assert (d.rank, d.world, d.backend, d.device.type) == (0, 1, None, "cpu")


def test_global_batches_do_not_depend_on_the_number_of_processes_or_threads(data):
    files = ImageFiles(data["kodak"])

    def sample(i, g):
        return files.random_patch(i, g, 16), None

    def draw(d, workers, steps=3):
        gen = torch.Generator().manual_seed(7)
        b = GlobalBatches(sample, len(files), 4, (0.0, 50.0), d, workers=workers)
        return [b(gen)[:2] for _ in range(steps)], gen.get_state()

    (one, state1) = draw(Dist(), 0)
    (r0, state_r0), (r1, _) = draw(Dist(rank=0, world=2), 2), draw(Dist(rank=1, world=2), 0)
    assert torch.equal(state1, state_r0)  # prefetching threads peek at the generator without moving it
    for (c, n), (c0, n0), (c1, n1) in zip(one, r0, r1):
        assert c.shape == (4, 3, 16, 16)
        assert torch.equal(c, torch.cat([c0, c1])) and torch.equal(n, torch.cat([n0, n1]))
    with pytest.raises(ValueError, match="multiple of the 3 processes"):
        GlobalBatches(sample, len(files), 4, 30.0, Dist(world=3))


def test_global_batchnorm_keeps_parameters_and_state_dict():
    net = DenoiseNet(width=0.125).train()
    ref = {k: v.clone() for k, v in net.state_dict().items()}
    params = list(net.parameters())
    sync_batchnorm(net, Dist(world=2))  # CPU: GlobalBatchNorm2d
    assert any(isinstance(m, GlobalBatchNorm2d) for m in net.modules())
    assert not any(type(m) is nn.BatchNorm2d for m in net.modules())
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert net.state_dict().keys() == ref.keys()
    plain = DenoiseNet(width=0.125).train()
    plain.load_state_dict(ref)
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(net(x), plain(x), atol=1e-6)  # without a process group it is plain batch norm
    assert torch.allclose(net.enc1[0][1].running_mean, plain.enc1[0][1].running_mean)


def _compare_runs(tmp_path, common: list[str]) -> tuple[dict, dict]:
    _torchrun(common + ["--out", str(tmp_path / "two")])
    ddp.main(common + ["--out", str(tmp_path / "one")])
    return _weights(tmp_path / "one"), _weights(tmp_path / "two")


@needs_loopback
def test_two_gloo_processes_equal_one_process(data, tmp_path, single_process):
    """The denoiser alone, global batch 4 of blind-noise patches, 4 SGD steps (momentum, weight decay, the last conv at
    0.1x): batch-norm statistics of the global batch (GlobalBatchNorm2d), each process builds its half with
    prefetching threads, DDP averages gradients. Weights and running statistics must agree to float precision."""
    common = [
        "train",
        "--task",
        "denoise",
        "--data",
        str(data["imagenet_train"]),
        "--sigma-range",
        "0",
        "55",
        "--steps",
        "4",
        "--batch",
        "4",
        "--crop",
        "24",
        "--width",
        "0.125",
        "--lr",
        "0.01",
        "--loss-scale",
        "1",
        "--no-progress",
        "--threads",
        "1",
        "--workers",
        "2",
    ]
    one, two = _compare_runs(tmp_path, common)
    for k in one:
        assert torch.allclose(one[k].double(), two[k].double(), rtol=1e-5, atol=1e-6), k
    torch.manual_seed(0)
    start = DenoiseNet(width=0.125).state_dict()
    assert all(not torch.equal(one[k], start[k]) for k in ("enc1.0.1.running_mean", "conv0.weight", "last.bias"))


@needs_loopback
def test_two_gloo_processes_equal_one_process_segmentation(data, tmp_path, single_process):
    """Per-pixel loss normalised by the global count of labelled pixels (crops differ in how many are ignored).

    An untrained ResNet-50 segmenter's input gradient is chaotic (a 1e-7 change of its input turns the gradient by a
    few degrees), so the ~1e-7 float differences of batch-norm statistics summed over processes grow; one SGD step
    from the same start is compared instead: the update must agree to 1 %, which any error in the normalisation
    (per-process pixel counts: a 20 % change here) would break."""
    common = [
        "train",
        "--task",
        "segmentation",
        "--segmenter",
        "fcn_resnet50",
        "--data",
        str(data["voc"]),
        "--weights",
        "none",
        "--steps",
        "1",
        "--batch",
        "4",
        "--crop",
        "32",
        "--width",
        "0.125",
        "--lr",
        "1e-3",
        "--loss-scale",
        "1",
        "--no-progress",
        "--threads",
        "1",
        "--workers",
        "0",
    ]
    one, two = _compare_runs(tmp_path, common)
    torch.manual_seed(0)
    start = DenoiseNet(width=0.125).state_dict()
    keys = [k for k in one if one[k].is_floating_point() and "running" not in k]
    d1 = torch.cat([(one[k] - start[k]).flatten().double() for k in keys])
    d2 = torch.cat([(two[k] - start[k]).flatten().double() for k in keys])
    assert d1.norm() > 0
    assert (d1 - d2).norm() / d1.norm() < 1e-2
    for k in one:
        if "running" in k:  # global-batch statistics: equal to float precision
            assert torch.allclose(one[k], two[k], atol=1e-5), k
