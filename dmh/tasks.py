"""Frozen high-level task networks behind one wrapper.

`TaskNet` takes images in [0, 1] (N, C, H, W), does the network's own preprocessing (resize, mean/std) inside, and
returns logits: (N, K) for classification, (N, K, H, W) at the input size for segmentation. It is frozen on
construction (no gradients to its weights, eval mode), so it can go straight into a `dmh.cascade.Cascade`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dmh.cascade import freeze

__all__ = ["TaskNet"]


class TaskNet(nn.Module):
    """A frozen task network with its preprocessing.

    Args:
        net: the network (takes preprocessed input).
        kind: "classification" or "segmentation".
        num_classes: K.
        in_channels: channels of the [0, 1] input this wrapper accepts (1 or 3).
        mean, std: per-channel normalisation applied after resizing (None: none).
        size: resize the input to (H, W) before the network (None: keep); segmentation logits are resized back.
        output_key: for networks returning a dict (torchvision segmentation models): the key of the logits.
        name: a label for tables and checkpoints.
        frozen: freeze on construction (False only to train the network on clean data first).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        kind: str,
        num_classes: int,
        in_channels: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        size: tuple[int, int] | None = None,
        output_key: str | None = None,
        name: str = "task",
        frozen: bool = True,
    ) -> None:
        super().__init__()
        if kind not in ("classification", "segmentation"):
            raise ValueError(f"kind must be 'classification' or 'segmentation', got {kind!r}")
        self.net = net
        self.kind = kind
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.size = tuple(size) if size is not None else None
        self.output_key = output_key
        self.name = name
        if mean is not None:
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        else:
            self.mean = self.std = None
        if frozen:
            freeze(self)

    @property
    def arch(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "num_classes": self.num_classes}

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self.name} expects (N, {self.in_channels}, H, W) in [0, 1], got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if self.size is not None and (h, w) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        out = self.net(x)
        if self.output_key is not None:
            out = out[self.output_key]
        if self.kind == "segmentation" and out.shape[-2:] != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return out

    @torch.inference_mode()
    def predict(self, x: Tensor, batch_size: int = 256) -> Tensor:
        """Class indices ((N,) or (N, H, W)) for a batch of [0, 1] images, in chunks."""
        self.eval()
        return torch.cat([self(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
