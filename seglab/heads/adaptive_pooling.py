"""PANet's adaptive feature pooling: every RoI pooled from every pyramid level, fused after one layer each.

Liu et al., "Path Aggregation Network for Instance Segmentation" (arXiv 1803.01534), sec. 3.2 and
fig. 6: instead of FPN's one level per RoI (by its size), RoIAlign pools each RoI from all levels
N2..N5; a first parametric layer per level adapts the grids, and an element-wise max fuses them
(the paper's ablation, table 3: max beats sum). The per-level first layers live in the heads
(``seglab.heads.panet``); this module pools.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn
from torchvision.ops import roi_align


class AllLevelsRoIAlign(nn.Module):
    """RoIAlign of the same boxes on each of ``levels``: a list of [R, C, S, S], one per level.

    Args:
        levels: feature levels to pool from, finest first ("n2".."n5").
        output_size: S (7 for the box head, 14 for the mask head).
        sampling_ratio: bilinear samples per bin side (2, as Mask R-CNN's RoIAlign).

    Forward: (features, boxes per image in input pixels, image sizes) -> list of [R, C, S, S]; the
    scale of each level is its height against the tallest image, rounded to a power of two (as
    torchvision's ``MultiScaleRoIAlign`` infers it); pixels are not half-shifted (``aligned=False``,
    as Detectron and MultiScaleRoIAlign).
    """

    def __init__(self, levels: Sequence[str], *, output_size: int, sampling_ratio: int = 2) -> None:
        super().__init__()
        self.levels = list(levels)
        self.output_size = (output_size, output_size)
        self.sampling_ratio = sampling_ratio

    def forward(self, features: dict[str, Tensor], boxes: list[Tensor],
                image_sizes: list[tuple[int, int]]) -> list[Tensor]:
        height = max(h for h, _ in image_sizes)
        pooled = []
        for level in self.levels:
            x = features[level]
            scale = 2.0 ** round(math.log2(x.shape[-2] / height))  # 1 / stride, as MultiScaleRoIAlign infers it
            pooled.append(roi_align(x, [b.to(x.dtype) for b in boxes], self.output_size, spatial_scale=scale,
                                    sampling_ratio=self.sampling_ratio, aligned=False))
        return pooled
