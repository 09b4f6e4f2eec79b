"""The paper's denoising network (Liu et al., IJCAI 2018) and its torchvision-style builder (tiled inference of any
size: `dmh.inference.denoise`).

Layout (width 1, docs/PAPER.md): conv0 5x5 -> two stride-2 encoders with bottleneck residual blocks -> two 4x4
transposed convs with skip concatenations -> last 3x3; the output is the noisy input plus the predicted correction.
Images are NCHW float tensors in [0, 1] (noisy ones may leave that range; nothing is clipped).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dmh.validate import check_int, check_real

__all__ = [
    "Bottleneck",
    "DenoiseNet",
    "denoisenet",
    "weights_meta",
    "RELEASED",
    "RELEASED_COLOUR",
    "RELEASED_OTHER",
    "RECEPTIVE_RADIUS",
]

#: Pixels of context on each side that one output pixel depends on (computed for the layout below: 22);
#: tiles of `dmh.inference.denoise` carry at least this margin, which makes tiled and untiled results equal.
RECEPTIVE_RADIUS = 22


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Bottleneck(nn.Module):
    """Residual block 1x1 -> 3x3 -> 1x1 (no conv bias), BN after each conv, ReLU after the sum."""

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.body(x))


class DenoiseNet(nn.Module):
    """The paper's three-scale residual denoiser.

    Args:
        in_channels: 3 for colour, 1 for grey.
        width: multiplier of every channel count (1.0 = the authors' 64/128/256 layout, 1.03 M parameters at 3
            channels); the `cpu` preset uses a narrower net.

    Input and output: (N, C, H, W) float, images in [0, 1]; any H x W (reflect-padded to a multiple of 4 inside,
    cropped back).
    """

    def __init__(self, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels", low=1)
        width = check_real(width, "width", low=0, low_open=True, high=64)
        self.in_channels = in_channels
        self.width = width

        def c(n: int) -> int:
            return max(1, int(round(n * width)))

        c0, c1, c2, cb1, up1, c3, cb3, up2 = c(64), c(128), c(128), c(32), c(32), c(256), c(64), c(64)
        self.conv0 = nn.Conv2d(in_channels, c0, 5, padding=2)
        self.enc1 = nn.Sequential(_conv_bn_relu(c0, c1, stride=2), Bottleneck(c1, cb1))
        self.enc2 = nn.Sequential(_conv_bn_relu(c1, c2, stride=2), Bottleneck(c2, cb1))
        self.up1 = nn.ConvTranspose2d(c2, up1, 4, stride=2, padding=1)
        self.dec1 = nn.Sequential(_conv_bn_relu(c1 + up1, c3), Bottleneck(c3, cb3))
        self.up2 = nn.ConvTranspose2d(c3, up2, 4, stride=2, padding=1)
        self.last = nn.Conv2d(c0 + up2, in_channels, 3, padding=1)

    @property
    def arch(self) -> dict[str, Any]:
        """What rebuilds this network; stored in checkpoints and checked on load."""
        return {"name": "DenoiseNet", "in_channels": self.in_channels, "width": self.width}

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"DenoiseNet takes a torch tensor (N, C, H, W); got {type(x).__name__} (see dmh.denoise)")
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[-1] == 0 or x.shape[-2] == 0:
            raise ValueError(
                f"DenoiseNet(in_channels={self.in_channels}) expects (N, {self.in_channels}, H, W) with H, W >= 1, "
                f"got shape {tuple(x.shape)}"
            )
        dtype = self.conv0.weight.dtype
        if x.dtype != dtype:
            raise TypeError(
                f"DenoiseNet's weights are {dtype} but the input is {x.dtype}: images are floats in [0, 1] "
                "(x.to(torch.float32); uint8 / uint16 images: dmh.images.to_nchw scales them)"
            )
        # Refuse NaN / inf like `denoise` does: they would spread through every convolution silently. Skipped while
        # torch.compile traces (a data-dependent branch), where the caller's inputs are checked by `denoise`.
        if not torch.compiler.is_compiling() and not torch.isfinite(x).all():
            raise ValueError("DenoiseNet input holds NaN or inf values")
        h, w = x.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate" if min(h, w) < 3 else "reflect") if ph or pw else x
        f0 = self.conv0(xp)  # (N, 64w, H, W)
        f1 = self.enc1(f0)  # (N, 128w, H/2, W/2)
        f2 = self.enc2(f1)  # (N, 128w, H/4, W/4)
        d1 = self.dec1(torch.cat([f1, self.up1(f2)], 1))  # (N, 256w, H/2, W/2)
        out = xp + self.last(torch.cat([f0, self.up2(d1)], 1))
        return out[..., :h, :w]


#: The released denoisers (data/pretrained/, trained by `dmh train-denoiser`; `dmh.denoisers.RECIPES`): colour on
#: photographs, and the grey base of the cpu-scale study on its one Fashion domain.
RELEASED_COLOUR = ("colour-blind", "colour-s15", "colour-s25", "colour-s50")
RELEASED = (*RELEASED_COLOUR, "grey-blind")
#: Released denoisers of other architectures (`dmh.zoo`): the grey DnCNN base of claim 2 with the field's denoiser.
RELEASED_OTHER = ("grey-dncnn",)


def weights_meta(name: str) -> dict[str, Any]:
    """The manifest entry of a released denoiser: file, sha256, arch, metrics (VAL / TEST PSNR), sigma or sigma
    range, command, commit, steps, hours, threads, data listing."""
    from dmh.pretrained import PRETRAINED_DIR, read_manifest

    if name not in RELEASED and name not in RELEASED_OTHER:
        raise ValueError(f"unknown weights {name!r}; released names: {', '.join(RELEASED)} (or a checkpoint path)")
    entry = read_manifest().get(name)
    if entry is None:
        raise FileNotFoundError(
            f"the denoiser {name!r} is not released yet: {PRETRAINED_DIR / 'manifest.json'} has no entry for it; "
            f"train it with `dmh train-denoiser --weights {name}` (see dmh.denoisers), or pass a checkpoint path"
        )
    return entry


def denoisenet(
    *, in_channels: int | None = None, width: float | None = None, weights: str | os.PathLike | None = None
) -> DenoiseNet:
    """Build a `DenoiseNet` (torchvision style).

    Args:
        in_channels, width: the architecture (default 3 and 1.0; with released weights, taken from the manifest, and
            an explicit value that differs is an error).
        weights: None (random init), a released name (`RELEASED`: "colour-blind", "colour-s15", "colour-s25",
            "colour-s50", "grey-blind"; sha256-checked against data/pretrained/manifest.json, metadata in
            `weights_meta`), or the path of a checkpoint written by `dmh.training` / `dmh.checkpoint` (its recorded
            architecture is used; paths are not sha256-checked, only the released names are).

    Returns the network in train mode, as torchvision's builders do: call `.eval()` before inference (`denoise`
    does).
    """
    if weights is not None and str(weights) in RELEASED:
        from dmh.checkpoint import load_weights
        from dmh.pretrained import verify_pretrained

        arch = weights_meta(str(weights))["arch"]
        for key, given in (("in_channels", in_channels), ("width", width)):
            if given is not None and float(given) != float(arch[key]):
                raise ValueError(f"{weights} is a DenoiseNet with {key}={arch[key]}, not {given}")
        net = DenoiseNet(in_channels=arch["in_channels"], width=arch["width"])
        return load_weights(net, verify_pretrained(str(weights)))
    if weights is None:
        return DenoiseNet(in_channels=3 if in_channels is None else in_channels, width=1.0 if width is None else width)
    from dmh.checkpoint import check_arch, load_checkpoint

    ckpt = load_checkpoint(weights)  # a path: the architecture is the file's (`arch`), the arguments only check it
    arch = dict(ckpt.get("arch") or {})
    if arch and arch.get("name") != "DenoiseNet":
        raise ValueError(f"{weights} holds a {arch.get('name')}, not a DenoiseNet")
    # given arguments win (and `check_arch` names both architectures when they differ); else the file's
    net = DenoiseNet(in_channels=in_channels if in_channels is not None else arch.get("in_channels", 3),
                     width=width if width is not None else arch.get("width", 1.0))  # fmt: skip
    check_arch(net, ckpt, weights)
    try:
        net.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise ValueError(f"{weights}: its weights do not fit {net.arch} ({str(e).splitlines()[0]})") from e
    return net
