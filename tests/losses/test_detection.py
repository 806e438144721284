"""Detection losses on a hand-built 2-RoI / 4-anchor case: smooth-L1, Fast R-CNN, Mask R-CNN, RPN."""

from __future__ import annotations

import math

import pytest
import torch

from seglab.errors import InputError
from seglab.losses import fast_rcnn_losses, mask_rcnn_losses, mask_rcnn_mask_loss, rpn_losses, smooth_l1


def test_smooth_l1_inside_and_outside_the_quadratic_zone() -> None:
    x = torch.tensor([0.5, -0.25, 1.0, 2.0, -3.0])
    # beta = 1: 0.5 x^2 where |x| < 1, else |x| - 0.5
    torch.testing.assert_close(smooth_l1(x, torch.zeros(5)), torch.tensor([0.125, 0.03125, 0.5, 1.5, 2.5]))
    # beta = 0.5: 0.5 x^2 / 0.5 = x^2 where |x| < 0.5, else |x| - 0.25
    torch.testing.assert_close(smooth_l1(x, torch.zeros(5), beta=0.5), torch.tensor([0.25, 0.0625, 0.75, 1.75, 2.75]))
    torch.testing.assert_close(smooth_l1(x, torch.zeros(5), beta=0.0), x.abs())


def test_smooth_l1_with_beta_zero_has_a_finite_gradient_at_zero() -> None:
    x = torch.zeros(3, requires_grad=True)
    smooth_l1(x, torch.zeros(3), beta=0.0).sum().backward()
    assert torch.isfinite(x.grad).all()


# Two RoIs, K = 2 classes (+ background): RoI 0 is class 2, RoI 1 is background.
LABELS = torch.tensor([2, 0])
CLASS_LOGITS = torch.tensor([[0.0, 0.0, math.log(2)], [math.log(3), 0.0, 0.0]])  # p_2 = 1/2; p_0 = 3/5
BOX_TARGETS = torch.zeros(2, 4)


def box_deltas() -> torch.Tensor:
    deltas = torch.full((2, 3, 4), 7.0)  # wrong everywhere except what the loss reads
    deltas[0, 2] = torch.tensor([0.5, -2.0, 0.0, 1.0])
    return deltas.flatten(1)  # [R, 4 (K + 1)]


def test_fast_rcnn_losses_by_hand() -> None:
    terms = fast_rcnn_losses(CLASS_LOGITS, box_deltas(), LABELS, BOX_TARGETS)
    assert terms["loss_cls"].item() == pytest.approx((math.log(2) + math.log(5 / 3)) / 2)
    # foreground RoI: 0.125 + 1.5 + 0 + 0.5 = 2.125, averaged over both RoIs; the background RoI adds nothing
    assert terms["loss_box_reg"].item() == pytest.approx(2.125 / 2)
    l1 = fast_rcnn_losses(CLASS_LOGITS, box_deltas(), LABELS, BOX_TARGETS, beta=0.0)
    assert l1["loss_box_reg"].item() == pytest.approx((0.5 + 2.0 + 0.0 + 1.0) / 2)
    agnostic = fast_rcnn_losses(CLASS_LOGITS, box_deltas()[:, 8:], LABELS, BOX_TARGETS)
    assert agnostic["loss_box_reg"].item() == pytest.approx(2.125 / 2)


def mask_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    mask_logits = torch.full((2, 3, 2, 2), 5.0)
    mask_logits[0, 2] = torch.tensor([[0.0, 2.0], [-1.0, 0.0]])
    mask_targets = torch.tensor([[[1.0, 0.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    return mask_logits, mask_targets


def test_mask_loss_is_the_mean_bce_of_the_true_class_mask() -> None:
    mask_logits, mask_targets = mask_inputs()
    expected = (math.log(2) + math.log1p(math.e**2) + math.log1p(math.e) + math.log(2)) / 4
    assert mask_rcnn_mask_loss(mask_logits, LABELS, mask_targets).item() == pytest.approx(expected)
    terms = mask_rcnn_losses(CLASS_LOGITS, box_deltas(), mask_logits, LABELS, BOX_TARGETS, mask_targets)
    assert set(terms) == {"loss_cls", "loss_box_reg", "loss_mask"}
    assert terms["loss_mask"].item() == pytest.approx(expected)


def test_rpn_losses_by_hand() -> None:
    objectness = torch.tensor([0.0, 0.0, 5.0, math.log(3)])
    anchor_labels = torch.tensor([1, 0, -1, 1])  # anchor 2 is not sampled
    deltas = torch.tensor([[0.5, 0, 0, 0], [9, 9, 9, 9], [9, 9, 9, 9], [0, 0, -2.0, 0]])
    terms = rpn_losses(objectness, anchor_labels, deltas, torch.zeros(4, 4), beta=1.0)
    # log 2 (positive at p = 1/2) + log 2 (negative at p = 1/2) + log(4/3) (positive at p = 3/4), over 3 sampled
    assert terms["loss_rpn_objectness"].item() == pytest.approx((2 * math.log(2) + math.log(4 / 3)) / 3)
    assert terms["loss_rpn_box"].item() == pytest.approx((0.125 + 1.5) / 3)


def test_empty_cases_give_zero_with_a_gradient() -> None:
    logits = torch.zeros(0, 3, requires_grad=True)
    deltas = torch.zeros(0, 4, requires_grad=True)
    terms = fast_rcnn_losses(logits, deltas, torch.zeros(0, dtype=torch.long), torch.zeros(0, 4))
    sum(terms.values()).backward()
    assert all(v.item() == 0.0 for v in terms.values()) and deltas.grad is not None
    masks = torch.randn(2, 3, 2, 2, requires_grad=True)
    loss = mask_rcnn_mask_loss(masks, torch.zeros(2, dtype=torch.long), torch.ones(2, 2, 2))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(masks.grad, torch.zeros_like(masks))
    objectness = torch.randn(3, requires_grad=True)
    rpn = rpn_losses(objectness, torch.full((3,), -1), torch.zeros(3, 4), torch.zeros(3, 4))
    sum(rpn.values()).backward()
    assert all(v.item() == 0.0 for v in rpn.values()) and objectness.grad is not None


def test_shape_errors_name_the_argument() -> None:
    with pytest.raises(InputError, match=r"fast_rcnn_losses: box_targets has shape \[2, 5\]"):
        fast_rcnn_losses(CLASS_LOGITS, box_deltas(), LABELS, torch.zeros(2, 5))
    with pytest.raises(InputError, match="fast_rcnn_losses: labels has .* expected \\[2\\] int64"):
        fast_rcnn_losses(CLASS_LOGITS, box_deltas(), LABELS.float(), BOX_TARGETS)
    with pytest.raises(InputError, match=r"labels hold values in \[0, 3\]"):
        fast_rcnn_losses(CLASS_LOGITS, box_deltas(), torch.tensor([3, 0]), BOX_TARGETS)
    with pytest.raises(InputError, match="box_deltas has 8 channels"):
        fast_rcnn_losses(CLASS_LOGITS, box_deltas()[:, :8], LABELS, BOX_TARGETS)
    mask_logits, _ = mask_inputs()
    with pytest.raises(InputError, match=r"mask_rcnn_mask_loss: mask_targets has shape \[2, 3, 3\]"):
        mask_rcnn_mask_loss(mask_logits, LABELS, torch.zeros(2, 3, 3))
    with pytest.raises(InputError, match=r"rpn_losses: anchor_labels has shape \[3\]"):
        rpn_losses(torch.zeros(4), torch.zeros(3, dtype=torch.long), torch.zeros(4, 4), torch.zeros(4, 4))
