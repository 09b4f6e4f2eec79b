"""Shared fixtures: tiny networks (width 0.25), a real photograph, seeded generators.

The thread count is left as torch sets it; every test here is sized to run in well under a second or two on a
2-core CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from torch import nn
from tqdm import tqdm

from dmh.nets import DenoiseNet

# No tqdm monitor thread: `make mutate` forks the test process for each mutant, and a forked child whose bar waits
# on the parent's monitor (a thread that does not exist in the child) never returns.
tqdm.monitor_interval = 0


def _make_denoiser(in_channels: int = 1, width: float = 0.25, seed: int = 0) -> DenoiseNet:
    """A narrow DenoiseNet with seeded initial weights."""
    torch.manual_seed(seed)
    return DenoiseNet(in_channels=in_channels, width=width)


def _make_bn_classifier(in_channels: int = 1, num_classes: int = 4, seed: int = 1) -> nn.Module:
    """A small classifier with batch norm (running statistics that would move in train mode)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, num_classes),
    )


def _make_tiny_task(kind: str = "classification") -> nn.Module:
    """A frozen `TaskNet` of 3 classes on (N, 1, 4, 4) inputs, seeded: a linear classifier, or a 1 x 1 convolution
    for "segmentation"."""
    from dmh.tasks import TaskNet

    torch.manual_seed(0)
    body = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)) if kind != "segmentation" else nn.Conv2d(1, 3, 1)
    return TaskNet(body, kind=kind, num_classes=3, in_channels=1, mean=(0.5,), std=(0.25,))


class _SigmaSpy(nn.Module):
    """A denoiser with deepinv's signature `forward(x, sigma)`: records each sigma it is given (`seen`) and returns x
    times a parameter, so that gradients flow."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.seen: list = []

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        self.seen.append(sigma)
        return x * self.w


@pytest.fixture
def sigma_spy():
    """Factory: sigma_spy() -> a new denoiser that records the noise levels it is given."""
    return _SigmaSpy


@pytest.fixture
def make_tiny_task():
    """Factory: make_tiny_task(kind="classification") -> a seeded 3-class TaskNet on 4 x 4 grey inputs."""
    return _make_tiny_task


@pytest.fixture
def make_denoiser():
    """Factory: make_denoiser(in_channels=1, width=0.25, seed=0) -> seeded DenoiseNet."""
    return _make_denoiser


@pytest.fixture
def make_bn_classifier():
    """Factory: make_bn_classifier(in_channels=1, num_classes=4, seed=1) -> small classifier with batch norm."""
    return _make_bn_classifier


@pytest.fixture
def tiny_net() -> DenoiseNet:
    """Grey DenoiseNet(width=0.25), seeded."""
    return _make_denoiser(1, 0.25)


@pytest.fixture
def tiny_colour_net() -> DenoiseNet:
    """Colour DenoiseNet(width=0.25), seeded."""
    return _make_denoiser(3, 0.25)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """skimage's astronaut, (512, 512, 3) float32 in [0, 1] (a real photograph, public domain)."""
    return skimage.data.astronaut().astype(np.float32) / 255.0


@pytest.fixture(scope="session", autouse=True)
def _cbm3d_cache(tmp_path_factory):
    """A CBM3D and evaluation cache of this session only (`dmh.baselines`, `dmh.evalcache`): the suite never reads a
    user's cache, and the notebook kernels that papermill and nbval start inherit it (nbval's second run of a notebook
    reuses the first's CBM3D and evaluations). DMH_CACHE=off stays off."""
    import os

    old = os.environ.get("DMH_CACHE")
    if (old or "").lower() not in ("off", "0", "none"):  # `make mutate` turns caches off: a mutant must recompute
        os.environ["DMH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("DMH_CACHE", None)
    else:
        os.environ["DMH_CACHE"] = old


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """A results folder of the whole chain run with the smoke preset (papermill, as `dmh reproduce`): <root>/smoke."""
    from dmh.notebooks import run_notebooks

    root = tmp_path_factory.mktemp("results")
    run_notebooks("smoke", root)
    return root / "smoke"


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def single_process(monkeypatch):
    """No torch.distributed environment variables (a plain single process); restores torch's thread count."""
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
