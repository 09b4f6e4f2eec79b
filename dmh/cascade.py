"""The cascade: a trainable denoiser in front of a frozen high-level network."""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor, nn

__all__ = ["freeze", "Cascade"]


def freeze(net: nn.Module) -> nn.Module:
    """Freeze `net` in place: no gradients to its parameters, eval mode (batch-norm statistics never move)."""
    net.requires_grad_(False)
    net.eval()
    return net


class Cascade(nn.Module):
    """`task_net(denoiser(noisy))` with the task network frozen.

    The task network stays in eval mode even when the cascade is put in train mode, and its parameters never get
    gradients; gradients of the task loss still flow *through* it into the denoiser.

    Args:
        denoiser: maps noisy (N, C, H, W) images in [0, 1] to denoised ones.
        task_net: maps (N, C, H, W) images in [0, 1] to logits ((N, K) or (N, K, H, W)); it handles its own
            normalisation. Frozen in place.
    """

    def __init__(self, denoiser: nn.Module, task_net: nn.Module) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.task_net = freeze(task_net)

    def train(self, mode: bool = True) -> Cascade:
        super().train(mode)
        self.task_net.eval()
        return self

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The denoiser's parameters (what an optimizer should get)."""
        return (p for p in self.denoiser.parameters() if p.requires_grad)

    def forward(self, noisy: Tensor) -> tuple[Tensor, Tensor]:
        """Return (denoised image, task logits)."""
        den = self.denoiser(noisy)
        return den, self.task_net(den)
