"""The README's Python as written: every ```python block runs (its placeholders, `my_net` and `my_batch`, get the
smallest definitions that make it run), and the inline calls of "Denoise your own photos" work after `import dmh`."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


class _MyNet(nn.Module):  # `my_net`: any classifier of (N, 3, H, W) normalised images into 10 classes
    def __init__(self) -> None:
        super().__init__()
        pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), pool, nn.Linear(4, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _my_batch(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # `my_batch`: clean images and labels
    return torch.rand(2, 3, 16, 16, generator=g), torch.randint(0, 10, (2,), generator=g)


def test_every_python_block_of_the_readme_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the plug-in recipe writes its checkpoints to runs/mine
    blocks = _blocks("python")
    assert len(blocks) == 2
    for code in blocks:
        ns: dict = {"my_net": _MyNet(), "my_batch": _my_batch, "__name__": "readme"}
        exec(compile(code, "README.md", "exec"), ns)
    assert len(ns["restored"]) == 1 and ns["parts"]["task"] > 0  # the last block: deepinv's cascade and solver
    assert (tmp_path / "runs" / "mine").is_dir()


def test_the_inline_python_of_the_readme_runs_after_import_dmh():
    assert 'dmh.nets.denoisenet(weights="colour-blind")' in README and "dmh.inference.denoise(net, image)" in README
    import dmh

    net = dmh.nets.denoisenet(weights="colour-blind")
    image = torch.rand(1, 3, 32, 32)
    assert dmh.inference.denoise(net, image).shape == image.shape
    hub = torch.hub.load(str(ROOT), "denoisenet", source="local", weights="colour-blind")
    assert isinstance(hub, dmh.DenoiseNet)
