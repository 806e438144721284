"""Pyramid pooling module (PSPNet): context pooled into 1x1, 2x2, 3x3 and 6x6 bins.

Paper: "Pyramid Scene Parsing Network", Zhao, Shi, Qi, Wang, Jia (arXiv 1612.01105), sec. 3.2 and
fig. 3(c).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from seglab.layers.conv_norm_act import conv_norm_act
from seglab.layers.upsample import resize_to


def _bin_matrix(size: int, bins: int, like: Tensor) -> Tensor:
    """[bins, size] averaging matrix: row i averages positions floor(i*size/bins) .. ceil((i+1)*size/bins) - 1.

    These are exactly the windows of torch's adaptive average pooling.
    """
    i = torch.arange(bins, device=like.device)[:, None]
    j = torch.arange(size, device=like.device)[None, :]
    start = i * size // bins
    end = ((i + 1) * size + bins - 1) // bins  # ceil with non-negative operands (exports as-is)
    inside = (j >= start) & (j < end)
    return inside.to(like.dtype) / (end - start).to(like.dtype)


def adaptive_avg_pool(x: Tensor, bins: int) -> Tensor:
    """Adaptive average pooling of [N, C, H, W] to [N, C, bins, bins], equal to F.adaptive_avg_pool2d.

    Written as two small matrix products so it exports to ONNX with dynamic H and W: the exporter
    specialises F.adaptive_avg_pool2d's windows to the traced size, and pooling with a computed
    kernel and stride is only exact when H and W are divisible by the bin count (sizes here are
    multiples of the input multiple, not of 6).
    """
    rows = _bin_matrix(x.shape[-2], bins, x)
    cols = _bin_matrix(x.shape[-1], bins, x)
    return torch.einsum("ph,nchw,qw->ncpq", rows, x, cols)


class PyramidPooling(nn.Module):
    """Pool to each bin size, reduce with 1x1 conv + BN + ReLU, upsample, concatenate with the input.

    PSPNet sec. 3.2: with N = 4 levels each branch reduces the channels to 1/N of the input, so the
    output has ``2 * in_channels`` channels (input + 4 * in/4) at the input's resolution.

    Args:
        in_channels: channels of the input feature map (2048 for ResNet-50/101 c5).
        bins: pooled sizes of the pyramid levels (1, 2, 3, 6 in the paper).
    Forward: [N, in, h, w] -> [N, in + len(bins) * (in // len(bins)), h, w].
    """

    def __init__(self, in_channels: int, *, bins: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.bins = tuple(bins)
        self.reduced_channels = in_channels // len(self.bins)
        self.stages = nn.ModuleList(conv_norm_act(in_channels, self.reduced_channels, 1) for _ in self.bins)
        self.out_channels = in_channels + len(self.bins) * self.reduced_channels

    def pooled(self, x: Tensor) -> list[Tensor]:
        """Each level's pooled and reduced map, [N, in // len(bins), b, b] for every bin size b."""
        return [stage(adaptive_avg_pool(x, bins)) for bins, stage in zip(self.bins, self.stages)]

    def forward(self, x: Tensor) -> Tensor:
        # Fig. 3(c): bilinear upsampling of every level to the feature map size, then concat.
        levels = [resize_to(level, x.shape[-2:]) for level in self.pooled(x)]
        return torch.cat([x, *levels], dim=1)
