"""Denoisers by architecture: rebuild one from the `arch` a checkpoint records (the paper's `DenoiseNet`, or
deepinv's DnCNN of `dmh.zoo`, imported only when asked for), and load a released one of any architecture."""

from __future__ import annotations

from typing import Any

from torch import nn

from dmh.nets import RELEASED, RELEASED_OTHER, DenoiseNet, denoisenet, weights_meta

__all__ = ["from_arch", "released_denoiser"]


def from_arch(arch: dict[str, Any]) -> nn.Module:
    """A randomly initialised denoiser of the architecture a checkpoint records (`arch`: "DenoiseNet" with
    in_channels and width, or "DnCNN" with in_channels, depth and nf, `dmh.zoo`)."""
    if arch.get("name") == "DnCNN":
        from dmh.zoo import DnCNN

        return DnCNN(arch["in_channels"], arch["depth"], arch["nf"])
    if arch.get("name", "DenoiseNet") != "DenoiseNet":
        raise ValueError(f"unknown denoiser architecture {arch!r}")
    return DenoiseNet(arch["in_channels"], arch["width"])


def released_denoiser(name: str) -> nn.Module:
    """A released denoiser of any architecture (`RELEASED` or `RELEASED_OTHER`), sha256-checked, in eval mode."""
    from dmh.checkpoint import load_weights
    from dmh.pretrained import verify_pretrained

    if name in RELEASED:
        return denoisenet(weights=name).eval()
    if name not in RELEASED_OTHER:
        raise ValueError(f"unknown weights {name!r}; released: {', '.join((*RELEASED, *RELEASED_OTHER))}")
    return load_weights(from_arch(weights_meta(name)["arch"]), verify_pretrained(name)).eval()
