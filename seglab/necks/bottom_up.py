"""PANet's bottom-up path augmentation: a second, short path from the finest FPN level back up.

Liu, Qi, Qin, Shi, Jia, "Path Aggregation Network for Instance Segmentation" (arXiv 1803.01534),
sec. 3.1 and fig. 2 (b): N2 = P2; each N_{i+1} is a 3x3 conv of (a 3x3 stride-2 conv of N_i) + P_{i+1},
all 256 channels, so low-level localisation reaches the top of the pyramid in < 10 layers instead of
a hundred. The authors' code (ShuLiu1993/PANet ``lib/modeling/FPN.py``, FPN.USE_GN) follows both convs
with GroupNorm + ReLU, and the RPN's extra level N6 is a stride-2 subsampling of N5 (FPN sec. 4.1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from seglab.backbones.base import FeatureSpec


def _conv_gn_relu(channels: int, stride: int, groups: int) -> nn.Sequential:
    conv = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(conv, nn.GroupNorm(math.gcd(groups, channels), channels), nn.ReLU(inplace=True))


class BottomUpPath(nn.Module):
    """{"p2".."p5"} -> {"n2".."n5"} (+ "n6" for the RPN), every level ``channels`` wide.

    Args:
        in_specs: the FPN's feature specs (``FPN.feature_specs``).
        in_levels: the levels the path runs over, finest first ("p2", "p3", "p4", "p5").
        channels: width of the convs (256, sec. 3.1).
        groups: GroupNorm groups (32, the authors' code).
        extra_level: add n6 by stride-2 subsampling of the coarsest output.
    """

    def __init__(self, in_specs: dict[str, FeatureSpec], *, in_levels: Sequence[str] = ("p2", "p3", "p4", "p5"),
                 channels: int = 256, groups: int = 32, extra_level: bool = True) -> None:
        super().__init__()
        self.in_levels = tuple(in_levels)
        self.out_levels = tuple("n" + level[1:] for level in self.in_levels)
        self.out_channels = channels
        self.down = nn.ModuleList(_conv_gn_relu(channels, 2, groups) for _ in self.in_levels[1:])
        self.fuse = nn.ModuleList(_conv_gn_relu(channels, 1, groups) for _ in self.in_levels[1:])
        self.feature_specs = {out: FeatureSpec(channels, in_specs[level].stride)
                              for out, level in zip(self.out_levels, self.in_levels)}
        self.extra_level = extra_level
        if extra_level:
            extra = f"n{int(self.out_levels[-1][1:]) + 1}"
            self.feature_specs[extra] = FeatureSpec(channels, self.feature_specs[self.out_levels[-1]].stride * 2)
            self.out_levels += (extra,)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        path = [features[self.in_levels[0]]]  # N2 = P2
        for down, fuse, level in zip(self.down, self.fuse, self.in_levels[1:]):
            path.append(fuse(down(path[-1]) + features[level]))
        if self.extra_level:
            path.append(F.max_pool2d(path[-1], kernel_size=1, stride=2))
        return dict(zip(self.out_levels, path))
