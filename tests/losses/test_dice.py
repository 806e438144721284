"""Soft Dice on a 2x2 mask computed by hand; ignore, class weights, CE + Dice."""

from __future__ import annotations

import math

import pytest
import torch

from seglab.errors import InputError
from seglab.losses import CrossEntropyDiceLoss, DiceLoss, PixelCrossEntropy

# Class-1 probabilities of a 2x2 image; logits = log(probs) so that the softmax gives them back exactly.
P1 = torch.tensor([[0.8, 0.6], [0.3, 0.1]])
LOGITS = torch.stack([(1 - P1).log(), P1.log()])[None]  # [1, 2, 2, 2]
TARGETS = torch.tensor([[[1, 1], [0, 0]]])
# class 1: sum(p g) = 1.4, sum(p) = 1.8, sum(g) = 2; class 0: sum(p g) = 1.6, sum(p) = 2.2, sum(g) = 2
DICE_1 = (2 * 1.4 + 1) / (1.8 + 2 + 1)
DICE_0 = (2 * 1.6 + 1) / (2.2 + 2 + 1)


def test_dice_on_a_2x2_mask_by_hand() -> None:
    loss = DiceLoss()
    torch.testing.assert_close(loss.per_class(LOGITS, TARGETS), torch.tensor([DICE_0, DICE_1]))
    assert loss(LOGITS, TARGETS).item() == pytest.approx(1 - (DICE_0 + DICE_1) / 2)


def test_squared_denominator_without_smoothing_by_hand() -> None:
    # sum(p^2): class 1 0.64 + 0.36 + 0.09 + 0.01 = 1.1; class 0 0.04 + 0.16 + 0.49 + 0.81 = 1.5
    loss = DiceLoss(smooth=0.0, squared=True)(LOGITS, TARGETS)
    assert loss.item() == pytest.approx(1 - (3.2 / 3.5 + 2.8 / 3.1) / 2)


def test_class_weights_weight_the_per_class_terms() -> None:
    loss = DiceLoss(class_weights=[1.0, 3.0])(LOGITS, TARGETS)
    assert loss.item() == pytest.approx(1 - (DICE_0 + 3 * DICE_1) / 4)


def test_a_perfect_prediction_has_zero_loss() -> None:
    logits = 40.0 * torch.stack([1 - TARGETS[0], TARGETS[0]]).float()[None]
    assert DiceLoss()(logits, TARGETS).item() == pytest.approx(0.0, abs=1e-6)


def test_ignored_pixels_are_left_out_of_every_sum() -> None:
    targets = TARGETS.clone()
    targets[0, 1, 1] = 255  # drop the pixel with p1 = 0.1
    changed = LOGITS.clone()
    changed[0, :, 1, 1] = torch.tensor([-30.0, 30.0])
    # class 1: 1.4 / (1.7 + 2); class 0: p0 = (0.2, 0.4, 0.7), g0 = (0, 0, 1) -> 0.7 / (1.3 + 1)
    expected = 1 - ((2 * 0.7 + 1) / (1.3 + 1 + 1) + (2 * 1.4 + 1) / (1.7 + 2 + 1)) / 2
    assert DiceLoss()(LOGITS, targets).item() == pytest.approx(expected)
    assert DiceLoss()(changed, targets).item() == pytest.approx(expected)


def test_all_ignored_gives_zero_with_a_gradient() -> None:
    logits = LOGITS.clone().requires_grad_()
    loss = DiceLoss()(logits, torch.full_like(TARGETS, 255))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_ce_plus_dice_is_the_weighted_sum() -> None:
    ce = PixelCrossEntropy()(LOGITS, TARGETS).item()
    assert ce == pytest.approx(-(math.log(0.8) + math.log(0.6) + math.log(0.7) + math.log(0.9)) / 4)
    combined = CrossEntropyDiceLoss(dice_weight=0.5)(LOGITS, TARGETS)
    assert combined.item() == pytest.approx(ce + 0.5 * (1 - (DICE_0 + DICE_1) / 2))


def test_bad_inputs_name_the_argument() -> None:
    with pytest.raises(InputError, match=r"DiceLoss: logits has shape \[2, 2, 2\]"):
        DiceLoss()(LOGITS[0], TARGETS)
    with pytest.raises(InputError, match="DiceLoss: class_weights has 3 entries but logits has 2 classes"):
        DiceLoss(class_weights=[1, 1, 1])(LOGITS, TARGETS)
