"""Pyramid pooling (PSPNet sec. 3.2): exact adaptive pooling, bin sizes and concatenated channels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seglab.layers.pyramid_pooling import PyramidPooling, adaptive_avg_pool


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (6, 6), (13, 40)])
@pytest.mark.parametrize("bins", [1, 2, 3, 6])
def test_adaptive_avg_pool_equals_torch(size: tuple[int, int], bins: int) -> None:
    x = torch.rand(2, 3, *size)
    torch.testing.assert_close(adaptive_avg_pool(x, bins), F.adaptive_avg_pool2d(x, bins))


def test_adaptive_avg_pool_hand_worked() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert adaptive_avg_pool(x, 1).item() == 7.5
    assert adaptive_avg_pool(x, 2).flatten().tolist() == [2.5, 4.5, 10.5, 12.5]
    # 3 bins over 4 pixels overlap: windows [0, 2), [1, 3), [2, 4).
    assert adaptive_avg_pool(x[..., :1, :], 3)[0, 0, 0].tolist() == [0.5, 1.5, 2.5]


def test_bins_give_1_2_3_6_maps_of_in_over_4_channels() -> None:
    ppm = PyramidPooling(16, bins=(1, 2, 3, 6))
    pooled = ppm.pooled(torch.rand(2, 16, 11, 9))
    assert [tuple(p.shape) for p in pooled] == [(2, 4, b, b) for b in (1, 2, 3, 6)]


def test_output_concatenates_the_input_and_four_upsampled_levels() -> None:
    ppm = PyramidPooling(16).eval()
    x = torch.rand(2, 16, 11, 9)
    out = ppm(x)
    assert ppm.out_channels == 16 + 4 * (16 // 4)
    assert out.shape == (2, 32, 11, 9)
    torch.testing.assert_close(out[:, :16], x)  # the input features pass through unchanged
    level1 = out[:, 16:20]  # the 1x1 bin upsampled: constant over the map
    torch.testing.assert_close(level1, level1[..., :1, :1].expand_as(level1))
