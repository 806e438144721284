"""L2Norm (ParseNet sec. 3.3): per-pixel unit norm times a learnable per-channel scale."""

from __future__ import annotations

import torch

from seglab.layers.l2norm import L2Norm


def test_every_pixel_has_norm_equal_to_the_scale() -> None:
    x = torch.randn(2, 6, 5, 4) * 100
    y = L2Norm(6, scale=10.0)(x)
    torch.testing.assert_close(y.norm(dim=1), torch.full((2, 5, 4), 10.0))
    torch.testing.assert_close(y / y.norm(dim=1, keepdim=True), x / x.norm(dim=1, keepdim=True))


def test_hand_worked_pixel() -> None:
    x = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
    norm = L2Norm(2, scale=1.0)
    with torch.no_grad():
        norm.scale.copy_(torch.tensor([10.0, 20.0]))  # one scale per channel
    assert norm(x).flatten().tolist() == [6.0, 16.0]  # (3/5 * 10, 4/5 * 20)


def test_scale_is_learnable_and_per_channel() -> None:
    norm = L2Norm(3, scale=10.0)
    assert norm.scale.shape == (3,) and norm.scale.requires_grad
    (norm(torch.rand(1, 3, 2, 2)) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)).sum().backward()
    assert norm.scale.grad is not None and len(set(norm.scale.grad.tolist())) == 3


def test_zero_pixel_stays_zero() -> None:
    assert L2Norm(3)(torch.zeros(1, 3, 2, 2)).abs().sum() == 0
