"""Binary cross-entropy with a validity mask and DeepMask's joint loss (eq. 1) by hand."""

from __future__ import annotations

import math

import pytest
import torch

from seglab.errors import InputError
from seglab.losses import DeepMaskLoss, binary_cross_entropy


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_bce_by_hand_with_and_without_a_validity_mask() -> None:
    logits = torch.tensor([0.0, 2.0, -1.0])
    targets = torch.tensor([1.0, 0.0, 1.0])
    terms = [math.log(2), softplus(2.0), softplus(1.0)]  # -log p for t = 1, -log(1 - p) for t = 0
    assert binary_cross_entropy(logits, targets).item() == pytest.approx(sum(terms) / 3)
    assert binary_cross_entropy(logits, targets, reduction="sum").item() == pytest.approx(sum(terms))
    valid = torch.tensor([True, False, True])
    assert binary_cross_entropy(logits, targets, valid=valid).item() == pytest.approx((terms[0] + terms[2]) / 2)
    weighted = binary_cross_entropy(logits, targets, pos_weight=2.0, reduction="sum")
    assert weighted.item() == pytest.approx(2 * terms[0] + terms[1] + 2 * terms[2])


def test_bce_with_nothing_valid_is_zero_with_a_gradient() -> None:
    logits = torch.randn(4, requires_grad=True)
    loss = binary_cross_entropy(logits, torch.ones(4), valid=torch.zeros(4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros(4))


def test_bce_shape_errors_name_the_argument() -> None:
    with pytest.raises(InputError, match=r"binary_cross_entropy: valid has shape \[2\]"):
        binary_cross_entropy(torch.zeros(3), torch.zeros(3), valid=torch.ones(2, dtype=torch.bool))


def test_deepmask_loss_is_equation_one_by_hand() -> None:
    # Two patches: k = 0 positive (y = +1) with a 2x2 mask, k = 1 negative (y = -1) whose mask must not count.
    mask_logits = torch.tensor([[[1.0, -2.0], [0.5, 0.0]], [[9.0, 9.0], [9.0, 9.0]]])
    mask_targets = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    score_logits = torch.tensor([2.0, 1.0])
    score_labels = torch.tensor([1.0, 0.0])
    # eq. 1 with m, y in {-1, +1}: (1 + y) / (2 w h) sum log(1 + e^(-m f)) + (1/32) log(1 + e^(-y s))
    m = 2 * mask_targets[0] - 1
    mask_term = sum(softplus(-(m * mask_logits[0]).flatten()[i].item()) for i in range(4)) / 4
    score_term = (softplus(-2.0) + softplus(1.0)) / 32
    terms = DeepMaskLoss()(mask_logits, mask_targets, score_logits, score_labels)
    assert terms["loss_mask"].item() == pytest.approx(mask_term)
    assert terms["loss_score"].item() == pytest.approx(score_term)
    mean = DeepMaskLoss(reduction="mean")(mask_logits[:, None], mask_targets[:, None], score_logits, score_labels)
    assert (mean["loss_mask"] + mean["loss_score"]).item() == pytest.approx((mask_term + score_term) / 2)


def test_deepmask_shape_errors_name_the_argument() -> None:
    with pytest.raises(InputError, match=r"DeepMaskLoss: mask_targets has shape \[2, 3, 3\]"):
        DeepMaskLoss()(torch.zeros(2, 2, 2), torch.zeros(2, 3, 3), torch.zeros(2), torch.zeros(2))
    with pytest.raises(InputError, match=r"DeepMaskLoss: mask_logits has shape \[3, 2, 2\]; expected \[K, h, w\]"):
        DeepMaskLoss()(torch.zeros(3, 2, 2), torch.zeros(3, 2, 2), torch.zeros(2), torch.zeros(2))
