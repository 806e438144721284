"""Feature Pyramid Network: a top-down path with lateral connections, P2..P5 plus P6.

Lin, Dollar, Girshick, He, Hariharan, Belongie, "Feature Pyramid Networks for Object Detection"
(arXiv 1612.03144), sec. 3: each backbone level c_i goes through a 1x1 lateral conv to d = 256
channels, the coarser merged map is upsampled 2x by nearest neighbour and added, and a 3x3 conv
smooths every merged map into P_i. Sec. 4.1: P6, used by the RPN only, is a stride-2 subsampling
of P5. Built on ``torchvision.ops.FeaturePyramidNetwork`` with ``LastLevelMaxPool`` (its kernel-1,
stride-2 max-pool is that subsampling), so torchvision's Mask R-CNN FPN weights load by key.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from functools import partial

from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from seglab.backbones.base import FeatureSpec


class FPN(nn.Module):
    """c2..c5 -> p2..p5 (256 channels, strides 4..32) and p6 (stride 64).

    Args:
        in_specs: the backbone's feature specs.
        in_levels: backbone levels to use, finest first ("c2", "c3", "c4", "c5").
        out_channels: d (256 in the paper).
        extra_level: add p6 by subsampling the coarsest output (the RPN's extra level, sec. 4.1).
        group_norm: groups of a GroupNorm after every lateral and output conv (their bias dropped), as
            Detectron's FPN.USE_GN; None (the FPN paper, torchvision) for plain convs.

    Forward: {"c2": [N, C2, H/4, W/4], ..., "c5": ...} -> {"p2": [N, d, H/4, W/4], ..., "p6": [N, d, H/64, W/64]}.
    """

    def __init__(
        self, in_specs: dict[str, FeatureSpec], *, in_levels: Sequence[str] = ("c2", "c3", "c4", "c5"),
        out_channels: int = 256, extra_level: bool = True, group_norm: int | None = None,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.in_levels = tuple(in_levels)
        self.out_levels = tuple("p" + level[1:] for level in self.in_levels)
        self.fpn = FeaturePyramidNetwork(
            [in_specs[level].channels for level in self.in_levels], out_channels,
            extra_blocks=LastLevelMaxPool() if extra_level else None,
            norm_layer=None if group_norm is None else partial(nn.GroupNorm, math.gcd(group_norm, out_channels)),
        )
        self.feature_specs = {out: FeatureSpec(out_channels, in_specs[level].stride)
                              for out, level in zip(self.out_levels, self.in_levels)}
        if extra_level:
            last = self.feature_specs[self.out_levels[-1]]
            extra = f"p{int(self.out_levels[-1][1:]) + 1}"
            self.feature_specs[extra] = FeatureSpec(out_channels, last.stride * 2)
            self.out_levels += (extra,)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        merged = self.fpn(OrderedDict((level, features[level]) for level in self.in_levels))
        return dict(zip(self.out_levels, merged.values()))
