"""Focal loss on hand-worked logits: (1 - p)^gamma times CE, gamma = 0 is CE, the sigmoid form."""

from __future__ import annotations

import math

import pytest
import torch

from seglab.errors import InputError
from seglab.losses import FocalLoss, PixelCrossEntropy, sigmoid_focal_loss


@pytest.mark.parametrize("d", [-1.0, 0.5, 3.0])
def test_gamma_two_is_one_minus_p_squared_times_ce(d: float) -> None:
    logits = torch.tensor([0.0, d]).view(1, 2, 1, 1)
    p = 1 / (1 + math.exp(-d))  # probability of class 1
    loss = FocalLoss(gamma=2.0)(logits, torch.tensor([[[1]]]))
    assert loss.item() == pytest.approx((1 - p) ** 2 * math.log1p(math.exp(-d)))


def test_class_weighted_focal_by_hand() -> None:
    # pixel A: label 0, p = 1/2 -> (1/4) log 2; pixel B: label 1, p = 3/4 -> (1/16) log(4/3); weights 1 and 3
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3)]]).T.reshape(1, 2, 1, 2)
    targets = torch.tensor([[[0, 1]]])
    expected_sum = 1 * 0.25 * math.log(2) + 3 * (1 / 16) * math.log(4 / 3)
    assert FocalLoss(class_weights=[1, 3])(logits, targets).item() == pytest.approx(expected_sum / 4)
    assert FocalLoss(class_weights=[1, 3], reduction="sum")(logits, targets).item() == pytest.approx(expected_sum)


def test_gamma_zero_is_exactly_cross_entropy_with_weights_and_ignore() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3, 5)
    targets = torch.randint(0, 4, (2, 3, 5))
    targets[1, 0] = 255
    weights = [0.5, 1.0, 2.0, 4.0]
    focal = FocalLoss(gamma=0.0, class_weights=weights)(logits, targets)
    ce = PixelCrossEntropy(class_weights=weights)(logits, targets)
    torch.testing.assert_close(focal, ce)


def test_focal_down_weights_easy_pixels_more_than_hard_ones() -> None:
    easy = torch.tensor([0.0, 4.0]).view(1, 2, 1, 1)
    hard = torch.tensor([0.0, -1.0]).view(1, 2, 1, 1)
    target = torch.tensor([[[1]]])
    ratio_easy = FocalLoss()(easy, target) / PixelCrossEntropy()(easy, target)
    ratio_hard = FocalLoss()(hard, target) / PixelCrossEntropy()(hard, target)
    assert ratio_easy.item() < 0.001 < 0.5 < ratio_hard.item()


def test_all_ignored_gives_zero_with_a_gradient() -> None:
    logits = torch.randn(1, 2, 2, 2, requires_grad=True)
    loss = FocalLoss()(logits, torch.full((1, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_gradient_is_finite_for_confident_pixels_and_fractional_gamma() -> None:
    logits = torch.tensor([0.0, 200.0]).view(1, 2, 1, 1).requires_grad_()
    FocalLoss(gamma=0.5)(logits, torch.tensor([[[1]]])).backward()
    assert torch.isfinite(logits.grad).all()


def test_bad_inputs_name_the_argument() -> None:
    with pytest.raises(InputError, match="FocalLoss: targets has shape"):
        FocalLoss()(torch.zeros(1, 2, 3, 3), torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(InputError, match="gamma is -1"):
        FocalLoss(gamma=-1)


def test_sigmoid_focal_loss_by_hand() -> None:
    # logit 0: p = 1/2, CE = log 2, (1 - p_t)^2 = 1/4; alpha 0.25 on the positive, 0.75 on the negative
    logits = torch.zeros(2)
    targets = torch.tensor([1.0, 0.0])
    per_element = sigmoid_focal_loss(logits, targets, reduction="none")
    torch.testing.assert_close(per_element, torch.tensor([0.25, 0.75]) * 0.25 * math.log(2))
    assert sigmoid_focal_loss(logits, targets).item() == pytest.approx(0.25 * math.log(2))
    assert sigmoid_focal_loss(logits, targets, alpha=None, gamma=0).item() == pytest.approx(2 * math.log(2))
    with pytest.raises(InputError, match="targets has shape \\[3\\]"):
        sigmoid_focal_loss(logits, torch.zeros(3))
