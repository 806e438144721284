"""Feature Pyramid Network: a top-down path with lateral connections, P2..P5 plus P6 (or P6 and P7).

Lin, Dollar, Girshick, He, Hariharan, Belongie, "Feature Pyramid Networks for Object Detection"
(arXiv 1612.03144), sec. 3: each backbone level c_i goes through a 1x1 lateral conv to d = 256
channels, the coarser merged map is upsampled 2x by nearest neighbour and added, and a 3x3 conv
smooths every merged map into P_i. Sec. 4.1: P6, used by the RPN only, is a stride-2 subsampling
of P5. Built on ``torchvision.ops.FeaturePyramidNetwork`` with ``LastLevelMaxPool`` (its kernel-1,
stride-2 max-pool is that subsampling), so torchvision's Mask R-CNN FPN weights load by key.

RetinaNet's variant (Lin et al., arXiv 1708.02002, sec. 4 "RetinaNet Detector"), also TensorMask's
(detectron2 ``build_retinanet_resnet_fpn_backbone``): P6 is a 3x3 stride-2 conv on C5 and P7 a 3x3
stride-2 conv on ReLU(P6) (``top_block="p6p7"``, torchvision's ``LastLevelP6P7``). TensorMask's
release also averages instead of adds in each merge (detectron2 FPN.FUSE_TYPE "avg", ``fuse="avg"``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from functools import partial
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

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
        top_block: the extra levels when ``extra_level``: "max_pool" (P6 subsampled from P5) or "p6p7"
            (RetinaNet's P6 = conv(C5), P7 = conv(ReLU(P6)), both 3x3 stride 2).
        fuse: "sum" (the FPN paper) or "avg" (the sum halved, detectron2's FUSE_TYPE "avg").

    Forward: {"c2": [N, C2, H/4, W/4], ..., "c5": ...} -> {"p2": [N, d, H/4, W/4], ..., "p6": [N, d, H/64, W/64]}
    (and "p7": [N, d, H/128, W/128] with "p6p7").
    """

    def __init__(
        self, in_specs: dict[str, FeatureSpec], *, in_levels: Sequence[str] = ("c2", "c3", "c4", "c5"),
        out_channels: int = 256, extra_level: bool = True, group_norm: int | None = None,
        top_block: Literal["max_pool", "p6p7"] = "max_pool", fuse: Literal["sum", "avg"] = "sum",
    ) -> None:
        super().__init__()
        if top_block not in ("max_pool", "p6p7") or fuse not in ("sum", "avg"):
            raise ValueError(f"FPN: top_block {top_block!r} / fuse {fuse!r}; expected max_pool|p6p7 and sum|avg")
        self.fuse = fuse
        self.out_channels = out_channels
        self.in_levels = tuple(in_levels)
        self.out_levels = tuple("p" + level[1:] for level in self.in_levels)
        self.fpn = FeaturePyramidNetwork(
            [in_specs[level].channels for level in self.in_levels], out_channels,
            extra_blocks=self._top_block(top_block, in_specs[self.in_levels[-1]].channels, out_channels)
            if extra_level else None,
            norm_layer=None if group_norm is None else partial(nn.GroupNorm, math.gcd(group_norm, out_channels)),
        )
        self.feature_specs = {out: FeatureSpec(out_channels, in_specs[level].stride)
                              for out, level in zip(self.out_levels, self.in_levels)}
        for _ in range((2 if top_block == "p6p7" else 1) if extra_level else 0):
            last = self.feature_specs[self.out_levels[-1]]
            extra = f"p{int(self.out_levels[-1][1:]) + 1}"
            self.feature_specs[extra] = FeatureSpec(out_channels, last.stride * 2)
            self.out_levels += (extra,)

    @staticmethod
    def _top_block(kind: str, in_channels: int, out_channels: int) -> nn.Module:
        return LastLevelMaxPool() if kind == "max_pool" else LastLevelP6P7(in_channels, out_channels)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        inputs = OrderedDict((level, features[level]) for level in self.in_levels)
        merged = self.fpn(inputs) if self.fuse == "sum" else self._averaged(list(inputs.values()))
        return dict(zip(self.out_levels, merged.values()))

    def _averaged(self, x: list[Tensor]) -> OrderedDict[str, Tensor]:
        """torchvision's top-down pass with each merge (lateral + upsampled) halved: FUSE_TYPE "avg"."""
        fpn = self.fpn
        inner = fpn.get_result_from_inner_blocks(x[-1], -1)
        results = [fpn.get_result_from_layer_blocks(inner, -1)]
        for idx in range(len(x) - 2, -1, -1):
            lateral = fpn.get_result_from_inner_blocks(x[idx], idx)
            inner = (lateral + F.interpolate(inner, size=lateral.shape[-2:], mode="nearest")) / 2
            results.insert(0, fpn.get_result_from_layer_blocks(inner, idx))
        names = [str(i) for i in range(len(results))]
        if fpn.extra_blocks is not None:
            results, names = fpn.extra_blocks(results, x, names)
        return OrderedDict(zip(names, results))
