"""JointLoss = MSE + lam * task loss: lam = 0 is plain MSE; classification, segmentation (ignore index) and
label-free task terms; bad lambda is an error."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dmh.losses import (
    IGNORE_INDEX,
    TASK_LOSSES,
    JointLoss,
    classification_loss,
    label_free_loss,
    segmentation_loss,
)


@pytest.fixture
def images(gen):
    clean = torch.rand(3, 3, 8, 8, generator=gen)
    den = clean + 0.1 * torch.randn(3, 3, 8, 8, generator=gen)
    return den, clean


def test_lam_zero_equals_mse_exactly(images):
    den, clean = images
    logits = torch.randn(3, 5)
    total, parts = JointLoss(0.0)(den, clean, logits, torch.tensor([0, 1, 2]))
    assert torch.equal(total, F.mse_loss(den, clean))
    total2, _ = JointLoss(0)(den, clean)  # no task inputs needed at lam = 0
    assert torch.equal(total2, F.mse_loss(den, clean))
    assert parts["rec"] == F.mse_loss(den, clean).item() and math.isnan(parts["task"])


def test_lam_zero_gradients_equal_mse(images):
    den, clean = images
    a = den.clone().requires_grad_(True)
    b = den.clone().requires_grad_(True)
    JointLoss(0.0)(a, clean)[0].backward()
    F.mse_loss(b, clean).backward()
    assert torch.equal(a.grad, b.grad)


def test_classification(images, gen):
    den, clean = images
    logits = torch.randn(3, 5, generator=gen)
    target = torch.tensor([4, 0, 2])
    total, parts = JointLoss(0.25, "classification")(den, clean, logits, target)
    ce = F.cross_entropy(logits, target)
    assert torch.allclose(total, F.mse_loss(den, clean) + 0.25 * ce)
    assert parts["task"] == pytest.approx(ce.item())
    assert parts["rec"] == pytest.approx(F.mse_loss(den, clean).item())
    assert isinstance(parts["rec"], float) and isinstance(parts["task"], float)
    # A hand-computed case: uniform logits over K classes give log K.
    assert classification_loss(torch.zeros(2, 4), torch.tensor([0, 3])).item() == pytest.approx(math.log(4))


def test_segmentation_ignores_255(gen):
    logits = torch.randn(2, 4, 5, 6, generator=gen)
    target = torch.randint(0, 4, (2, 5, 6), generator=gen)
    target[0, :2] = IGNORE_INDEX
    target[1, :, 4:] = IGNORE_INDEX
    loss = segmentation_loss(logits, target)
    keep = target != IGNORE_INDEX
    manual = F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], target[keep])
    assert loss.item() == pytest.approx(manual.item(), rel=1e-6)
    # Changing the logits at ignored pixels changes nothing.
    other = logits.clone()
    other.permute(0, 2, 3, 1)[~keep] = 100.0 * torch.randn(int((~keep).sum()), 4, generator=gen)
    assert torch.equal(segmentation_loss(other, target), loss)
    assert IGNORE_INDEX == 255


def test_segmentation_through_joint_loss(images, gen):
    den, clean = images
    logits = torch.randn(3, 11, 8, 8, generator=gen)
    target = torch.randint(0, 11, (3, 8, 8), generator=gen)
    target[:, 0] = 255
    total, parts = JointLoss(0.5, "segmentation")(den, clean, logits, target)
    expected = F.mse_loss(den, clean) + 0.5 * F.cross_entropy(logits, target, ignore_index=255)
    assert torch.allclose(total, expected)


@pytest.mark.parametrize("shape", [(4, 10), (2, 11, 6, 5)])
def test_label_free_zero_on_equal_logits(gen, shape):
    logits = torch.randn(shape, generator=gen)
    assert label_free_loss(logits, logits.clone()).abs().item() < 1e-6
    other = torch.randn(shape, generator=gen)
    assert label_free_loss(logits, other).item() > 1e-3  # a divergence: positive when predictions differ


def test_label_free_is_kl_to_clean_prediction(gen):
    logits = torch.randn(3, 6, generator=gen, requires_grad=True)
    target = torch.randn(3, 6, generator=gen, requires_grad=True)
    kl = label_free_loss(logits, target)
    ref = F.kl_div(F.log_softmax(logits, 1), F.log_softmax(target, 1), log_target=True, reduction="batchmean")
    assert kl.item() == pytest.approx(ref.item(), rel=1e-5)
    kl.backward()
    assert target.grad is None  # the clean prediction is a fixed target
    assert logits.grad.abs().sum() > 0


def test_label_free_through_joint_loss(images, gen):
    den, clean = images
    logits = torch.randn(3, 7, generator=gen)
    total, parts = JointLoss(2.0, "label_free")(den, clean, logits, logits.clone())
    assert total.item() == pytest.approx(F.mse_loss(den, clean).item(), abs=1e-6)


def test_callable_task_loss(images):
    den, clean = images
    total, parts = JointLoss(3.0, lambda logits, target: (logits - target).abs().mean())(
        den, clean, torch.ones(2, 2), torch.zeros(2, 2)
    )
    assert total.item() == pytest.approx(F.mse_loss(den, clean).item() + 3.0)
    assert set(TASK_LOSSES) == {"classification", "segmentation", "label_free"}


@pytest.mark.parametrize("lam", [-0.1, -1, math.nan, math.inf, -math.inf])
def test_bad_lambda_is_an_error(lam):
    with pytest.raises(ValueError, match="lam must be a finite number >= 0"):
        JointLoss(lam)


@pytest.mark.parametrize("lam", ["0.5", None])
def test_lambda_of_another_type_is_a_type_error(lam):
    with pytest.raises(TypeError, match="lam must be a real number"):
        JointLoss(lam)


def test_other_errors(images):
    den, clean = images
    with pytest.raises(ValueError, match="unknown task_loss"):
        JointLoss(1.0, "detection")
    with pytest.raises(ValueError, match="needs the task logits and target"):
        JointLoss(1.0)(den, clean)
