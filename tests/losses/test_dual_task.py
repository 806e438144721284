"""Gated-SCNN's losses on hand-made label maps: boundary targets, balanced BCE, dual-task regulariser."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seglab.losses.dual_task import (
    DualTaskLoss,
    balanced_bce,
    boundary_targets,
    dual_task_regularizer,
    spatial_gradient_magnitude,
)

X = 255
LABELS = torch.tensor(
    [
        [0, 0, 1, 1, 1],
        [0, 0, 1, 1, 1],
        [0, 0, 0, X, X],
        [0, 0, 0, X, X],
    ]
)


def test_boundary_targets_are_pixels_with_another_label_nearby() -> None:
    targets, valid = boundary_targets(LABELS[None])
    expected = torch.tensor(
        [
            [0, 1, 1, 0, 0],
            [0, 1, 1, 1, 0],
            [0, 1, 1, 0, 0],
            [0, 0, 0, 0, 0],  # (3, 2) touches only label 0 and ignored pixels
        ],
        dtype=torch.float32,
    )
    torch.testing.assert_close(targets[0, 0], expected)
    torch.testing.assert_close(valid[0, 0], LABELS != X)


def test_spatial_gradient_of_a_unit_step_is_one_next_to_the_step() -> None:
    step = torch.zeros(1, 1, 5, 6)
    step[..., 3:] = 1
    magnitude = spatial_gradient_magnitude(step)[0, 0]
    torch.testing.assert_close(magnitude[:, 2:4], torch.ones(5, 2))
    assert magnitude[:, :2].max() < 1e-5 and magnitude[:, 4:].max() < 1e-5  # replicated border: no edge


def test_balanced_bce_weights_each_side_by_the_other_sides_share() -> None:
    targets = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0]).view(1, 1, 2, 3)
    valid = torch.ones_like(targets, dtype=torch.bool)
    loss = balanced_bce(torch.zeros_like(targets), targets, valid)
    # every pixel costs log 2; weights 4/6 on the 2 positives and 2/6 on the 4 negatives, mean over 6
    assert loss.item() == pytest.approx(math.log(2) * (2 * 4 / 6 + 4 * 2 / 6) / 6)


def perfect_logits(labels: torch.Tensor, num_classes: int = 2) -> torch.Tensor:
    return 30.0 * F.one_hot(labels.clamp(max=num_classes - 1), num_classes).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize("tau", [None, 0.5])
def test_dual_regularizer_is_zero_when_the_prediction_matches_the_labels(tau: float | None) -> None:
    torch.manual_seed(0)
    labels = LABELS[None]
    assert dual_task_regularizer(perfect_logits(labels), labels, gumbel_tau=tau).item() < 1e-4
    shifted = perfect_logits(labels.roll(1, dims=2))
    assert dual_task_regularizer(shifted, labels, gumbel_tau=tau).item() > 0.1


def test_dual_regularizer_has_a_finite_gradient() -> None:
    logits = torch.randn(1, 2, 4, 5, requires_grad=True)
    dual_task_regularizer(logits, LABELS[None]).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_dual_task_loss_is_small_for_a_perfect_prediction_and_weighted() -> None:
    torch.manual_seed(0)
    labels = LABELS[None]
    targets, _ = boundary_targets(labels)
    boundary_logits = 30.0 * (2 * targets - 1)
    loss = DualTaskLoss(gumbel_tau=None)
    terms = loss(perfect_logits(labels), boundary_logits, labels)
    assert set(terms) == {"loss_boundary", "loss_dual", "loss_dual_attention"}
    assert all(v.item() < 1e-4 for v in terms.values())
    wrong = loss(perfect_logits(labels), -boundary_logits, labels)
    single = DualTaskLoss(boundary_weight=1.0, gumbel_tau=None)(perfect_logits(labels), -boundary_logits, labels)
    assert wrong["loss_boundary"].item() == pytest.approx(20 * single["loss_boundary"].item())
    without = DualTaskLoss(attention_weight=0)(perfect_logits(labels), boundary_logits, labels)
    assert "loss_dual_attention" not in without
