"""The joint loss L = MSE(D(noisy), clean) + lambda * L_task, on images in [0, 1]."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from dmh.validate import check_real

__all__ = ["JointLoss", "TASK_LOSSES", "classification_loss", "segmentation_loss", "label_free_loss"]

IGNORE_INDEX = 255


def _check_labels(target: Tensor, classes: int, ignore_index: int | None = None) -> None:
    """ValueError naming the first label outside [0, classes) (`ignore_index` allowed), instead of torch's error."""
    bad = (target < 0) | (target >= classes)
    if ignore_index is not None:
        bad &= target != ignore_index
    if bad.any():
        raise ValueError(f"labels must be class indices in [0, {classes}) for {classes}-class logits"
                         f"{'' if ignore_index is None else f' (or {ignore_index}: unlabelled)'}; "
                         f"got {int(target[bad][0])}")  # fmt: skip


def classification_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy; logits (N, K), target (N,) class indices in [0, K)."""
    _check_labels(target, logits.shape[1])
    return F.cross_entropy(logits, target)


def segmentation_loss(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Per-pixel cross-entropy; logits (N, K, H, W), target (N, H, W) with `ignore_index` for unlabelled pixels."""
    _check_labels(target, logits.shape[1], ignore_index)
    return F.cross_entropy(logits, target, ignore_index=ignore_index)


def label_free_loss(logits: Tensor, target_logits: Tensor) -> Tensor:
    """KL(p_clean || p_denoised): the frozen network's prediction on the clean image is the target (no labels).

    logits and target_logits have the same shape, classes on dim 1 ((N, K) or (N, K, H, W)).
    """
    logp = F.log_softmax(logits, dim=1)
    logq = F.log_softmax(target_logits.detach(), dim=1)
    kl = (logq.exp() * (logq - logp)).sum(dim=1)
    return kl.mean()


TASK_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "classification": classification_loss,
    "segmentation": segmentation_loss,
    "label_free": label_free_loss,
}


class JointLoss(nn.Module):
    """MSE + lam * task loss.

    Args:
        lam: weight of the task term (>= 0); 0 gives plain MSE (the task term is then not computed).
        task_loss: "classification", "segmentation", "label_free", or a callable (logits, target) -> scalar.

    Call with (denoised, clean, logits, target); returns (total, {"rec": mse, "task": task_loss}) with detached
    parts for logging.
    """

    def __init__(self, lam: float, task_loss: str | Callable[[Tensor, Tensor], Tensor] = "classification") -> None:
        super().__init__()
        lam = check_real(lam, "lam", low=0)
        if isinstance(task_loss, str):
            if task_loss not in TASK_LOSSES:
                raise ValueError(f"unknown task_loss {task_loss!r}; choose from {sorted(TASK_LOSSES)} or a callable")
            task_loss = TASK_LOSSES[task_loss]
        self.lam = lam
        self.task_loss = task_loss

    def forward(
        self, denoised: Tensor, clean: Tensor, logits: Tensor | None = None, target: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        if denoised.shape != clean.shape:
            raise ValueError(
                f"denoised {tuple(denoised.shape)} and clean {tuple(clean.shape)} must have the same shape "
                "(no broadcasting: a mismatch is a bug upstream)"
            )
        rec = F.mse_loss(denoised, clean)
        if self.lam == 0:
            return rec, {"rec": rec.item(), "task": float("nan")}
        if logits is None or target is None:
            raise ValueError("lam > 0 needs the task logits and target")
        task = self.task_loss(logits, target)
        return rec + self.lam * task, {"rec": rec.item(), "task": task.item()}
