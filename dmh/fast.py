"""Opt-in inference speed-ups for `DenoiseNet`, using what PyTorch offers.

- `fuse_conv_bn(net)`: an inference-only copy with every BatchNorm folded into the convolution before it
  (`torch.nn.utils.fusion.fuse_conv_bn_eval`), the bottleneck's BN before the residual sum included: 12 elementwise
  passes over the activations fewer, and no BN between convs to keep the channels-last layout from.
- `prepare(net)`: the fused copy in channels-last memory format (oneDNN convolutions without layout reorders),
  parameters frozen; optionally wrapped in `torch.compile` (needs a C++ compiler; compiles once per input shape).
- `denoise(net, image, fast=True)` in `dmh.nets` runs through `prepare(net)`.

The result equals the plain eval-mode forward up to float rounding (~1e-6 on [0, 1] images; tests check 1e-4).
Training is untouched: the fused copy refuses `train()`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from dmh.nets import DenoiseNet

__all__ = ["FusedDenoiseNet", "fuse_conv_bn", "prepare"]


class FusedDenoiseNet(DenoiseNet):
    """A `DenoiseNet` whose BatchNorms are folded into the convolutions (each replaced by `nn.Identity`).

    Inference only: the folded weights hold the running statistics, so training it would not train the paper's
    network; `train(True)` raises. Build one with `fuse_conv_bn` or `prepare`, never directly.

    Attributes:
        memory_format: inputs are converted to this format in `forward` (`torch.channels_last` after `prepare`).
    """

    memory_format: torch.memory_format = torch.contiguous_format

    def train(self, mode: bool = True) -> FusedDenoiseNet:
        if mode:
            raise RuntimeError(
                "FusedDenoiseNet is inference-only (BatchNorm is folded into the convolutions): train the original "
                "DenoiseNet and fuse it again with dmh.fast.fuse_conv_bn"
            )
        return super().train(False)

    @property
    def arch(self) -> dict[str, Any]:
        # A fused state_dict does not load into DenoiseNet: say so in any checkpoint written from it.
        return {"name": "FusedDenoiseNet", "in_channels": self.in_channels, "width": self.width}

    def forward(self, x: Tensor) -> Tensor:
        # The output has 1 or 3 channels: returning it in the default layout costs next to nothing.
        return super().forward(x.contiguous(memory_format=self.memory_format)).contiguous()


def _fold(seq: nn.Sequential) -> None:
    """Replace every (Conv2d, BatchNorm2d) pair of `seq` by (fused Conv2d, Identity), in place."""
    mods = list(seq)
    for i in range(len(mods) - 1):
        if isinstance(mods[i], nn.Conv2d) and isinstance(mods[i + 1], nn.BatchNorm2d):
            seq[i] = fuse_conv_bn_eval(mods[i], mods[i + 1])
            seq[i + 1] = nn.Identity()


def fuse_conv_bn(net: nn.Module) -> FusedDenoiseNet:
    """An inference copy of `net` with every BatchNorm folded into its preceding convolution.

    Args:
        net: a `DenoiseNet` (any mode; its running statistics are what is folded). Left unchanged.

    Returns:
        A `FusedDenoiseNet` in eval mode on `net`'s device and dtype, parameters with requires_grad=False; its output
        equals `net.eval()(x)` up to float rounding.

    Raises:
        TypeError: `net` is not a DenoiseNet.
    """
    if isinstance(net, FusedDenoiseNet):
        return net
    if not isinstance(net, DenoiseNet):
        raise TypeError(f"fuse_conv_bn takes a DenoiseNet, got {type(net).__name__}")
    # Built on the meta device (no weight initialisation), then given copies of net's tensors: net is not shared.
    with torch.device("meta"):
        fused = FusedDenoiseNet(in_channels=net.in_channels, width=net.width)
    fused.load_state_dict({k: v.detach().clone() for k, v in net.state_dict().items()}, assign=True)
    fused.eval()
    for m in list(fused.modules()):
        if isinstance(m, nn.Sequential):
            _fold(m)
    left = [n for n, m in fused.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:  # a layout change in DenoiseNet that puts a BN somewhere else
        raise RuntimeError(f"BatchNorm layers not preceded by a conv in a Sequential, not folded: {left}")
    return fused.requires_grad_(False)


def prepare(net: nn.Module, *, channels_last: bool = True, compile: bool = False) -> nn.Module:
    """The fast inference module for `net`: BN folded, channels-last, frozen; optionally `torch.compile`d.

    Args:
        net: a `DenoiseNet`, or an already fused one (reused: converted to channels-last in place).
        channels_last: store weights and run activations in NHWC (oneDNN's native layout on CPU).
        compile: wrap in `torch.compile(dynamic=False)` (inductor; needs gcc/clang; compiles on first call for each
            input shape, so it pays off only for many calls of one shape). Off by default: see bench/README.md.

    Returns:
        A module mapping (N, C, H, W) to (N, C, H, W) like `net.eval()`. Call it under `torch.inference_mode()`.
    """
    fused = fuse_conv_bn(net)
    if channels_last and fused.memory_format != torch.channels_last:
        fused = fused.to(memory_format=torch.channels_last)
        fused.memory_format = torch.channels_last
    if compile:
        return torch.compile(fused, dynamic=False)
    return fused
