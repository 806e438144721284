"""PixelCrossEntropy on hand-worked logits: 2-class closed form, class weights, sum vs mean, ignore."""

from __future__ import annotations

import math

import pytest
import torch

from seglab.errors import InputError
from seglab.losses import PixelCrossEntropy


def one_pixel(scores: list[float]) -> torch.Tensor:
    return torch.tensor(scores).view(1, len(scores), 1, 1)


@pytest.mark.parametrize("d", [-2.0, 0.0, 1.5])
def test_two_class_ce_is_log_one_plus_exp_minus_margin(d: float) -> None:
    # softmax over (0, d): p_1 = 1 / (1 + e^-d), so -log p_1 = log(1 + e^-d) and -log p_0 = log(1 + e^d)
    logits = one_pixel([0.0, d])
    assert PixelCrossEntropy()(logits, torch.tensor([[[1]]])).item() == pytest.approx(math.log1p(math.exp(-d)))
    assert PixelCrossEntropy()(logits, torch.tensor([[[0]]])).item() == pytest.approx(math.log1p(math.exp(d)))


def test_class_weighted_mean_divides_by_the_summed_weights() -> None:
    # pixel A: label 0, logits (0, 0) -> log 2; pixel B: label 1, logits (0, log 3) -> p = 3/4 -> log(4/3)
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3)]]).T.reshape(1, 2, 1, 2)
    targets = torch.tensor([[[0, 1]]])
    loss = PixelCrossEntropy(class_weights=[1.0, 3.0])(logits, targets)
    assert loss.item() == pytest.approx((1 * math.log(2) + 3 * math.log(4 / 3)) / 4)
    summed = PixelCrossEntropy(class_weights=[1.0, 3.0], reduction="sum")(logits, targets)
    assert summed.item() == pytest.approx(1 * math.log(2) + 3 * math.log(4 / 3))


def test_sum_over_mean_is_the_number_of_labelled_pixels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5)
    targets = torch.randint(0, 3, (2, 4, 5))
    targets[0, 0, :3] = 255
    targets[1, 2, 1] = 255
    mean = PixelCrossEntropy()(logits, targets)
    summed = PixelCrossEntropy(reduction="sum")(logits, targets)
    assert (summed / mean).item() == pytest.approx(2 * 4 * 5 - 4)


def test_ignored_pixels_do_not_count() -> None:
    logits = one_pixel([0.0, 1.0]).repeat(1, 1, 1, 2)
    targets = torch.tensor([[[1, 255]]])
    changed = logits.clone()
    changed[..., 1] = torch.tensor([50.0, -50.0]).view(1, 2, 1)
    for reduction in ("mean", "sum"):
        loss = PixelCrossEntropy(reduction=reduction)
        assert loss(logits, targets).item() == pytest.approx(math.log1p(math.exp(-1.0)))
        assert loss(changed, targets).item() == pytest.approx(loss(logits, targets).item())


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_all_ignored_gives_zero_with_a_gradient(reduction: str) -> None:
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = PixelCrossEntropy(reduction=reduction)(logits, torch.full((1, 2, 2), 255))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize(
    ("logits", "targets", "weights", "fragment"),
    [
        (torch.zeros(1, 2, 3), torch.zeros(1, 2, 3, dtype=torch.long), None, "logits has shape [1, 2, 3]"),
        (torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 4, dtype=torch.long), None, "targets has shape [1, 3, 4]"),
        (torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 3), None, "targets has dtype torch.float32"),
        (torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 3, dtype=torch.long), [1.0, 2.0, 3.0], "class_weights has 3"),
        (torch.zeros(1, 2, 3, 3), torch.full((1, 3, 3), 2), None, "targets hold labels in [2, 2]"),
    ],
)
def test_bad_inputs_name_the_argument(logits, targets, weights, fragment) -> None:
    with pytest.raises(InputError, match="PixelCrossEntropy") as info:
        PixelCrossEntropy(class_weights=weights)(logits, targets)
    assert fragment in str(info.value)


def test_unknown_reduction_is_an_input_error() -> None:
    with pytest.raises(InputError, match="reduction is 'avg'"):
        PixelCrossEntropy(reduction="avg")  # type: ignore[arg-type]

