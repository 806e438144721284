"""Padding to a multiple and repeated mirroring."""

from __future__ import annotations

import torch

from seglab.layers.padding import mirror_pad, pad_to_multiple


def test_pad_to_multiple_pads_bottom_right_only() -> None:
    x = torch.rand(1, 2, 5, 7)
    y = pad_to_multiple(x, 4)
    assert y.shape == (1, 2, 8, 8)
    torch.testing.assert_close(y[..., :5, :7], x)
    assert y[..., 5:, :].abs().sum() == 0 and y[..., :, 7:].abs().sum() == 0
    assert pad_to_multiple(x, 1) is x


def test_mirror_pad_reflects_and_repeats_beyond_the_image() -> None:
    x = torch.tensor([[[[1.0, 2.0, 3.0]]]])
    assert mirror_pad(x, (2, 0, 0, 0)).flatten().tolist() == [3.0, 2.0, 1.0, 2.0, 3.0]
    wide = mirror_pad(x, (5, 5, 0, 0))  # wider than the image: reflect again
    assert wide.shape[-1] == 13 and set(wide.flatten().tolist()) <= {1.0, 2.0, 3.0}
    assert mirror_pad(torch.ones(1, 1, 1, 1), (2, 2, 2, 2)).shape == (1, 1, 5, 5)
