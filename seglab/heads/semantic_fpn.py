"""The semantic FPN branch of Panoptic FPN: every pyramid level brought to stride 4, summed, 1x1 to classes.

Kirillov, Girshick, He, Dollar, "Panoptic Feature Pyramid Networks" (arXiv 1901.02446), sec. 3.1 and
fig. 3: from each FPN level P2..P5 an upsampling stage of 3x3 conv (128 channels), group norm,
ReLU and 2x bilinear upsampling is repeated until stride 1/4 (P5: three stages, P4: two, P3: one,
P2: one conv without upsampling); the four maps are summed, a 1x1 conv predicts the classes, and a
final 4x bilinear upsampling returns to the image resolution. Widths and init follow the authors'
release (detectron2 ``SemSegFPNHead``: GN with 32 groups, MSRA fill, predictor std 0.001).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

COMMON_STRIDE = 4  # sec. 3.1: "each upsampling stage ... until it reaches 1/4 scale"


class SemanticFPNHead(nn.Module):
    """{"p2".."p5"} -> class logits [N, C, H/4, W/4] (the caller upsamples 4x to the image).

    Args:
        in_channels: channels of the pyramid levels (d = 256).
        num_classes: output classes (Panoptic FPN: the stuff classes + one "things" class).
        levels: the pyramid levels used, with their strides.
        channels: width of every stage (128, sec. 3.1).
        groups: group-norm groups (32; reduced to a divisor of ``channels`` for narrow CPU heads).
    """

    def __init__(self, in_channels: int, *, num_classes: int, levels: Sequence[tuple[str, int]] = (
        ("p2", 4), ("p3", 8), ("p4", 16), ("p5", 32)), channels: int = 128, groups: int = 32) -> None:
        super().__init__()
        self.levels = [name for name, _ in levels]
        groups = math.gcd(groups, channels)
        self.stages = nn.ModuleDict()
        for name, stride in levels:
            ups = max(1, int(math.log2(stride) - math.log2(COMMON_STRIDE)))
            layers: list[nn.Module] = []
            for k in range(ups):
                conv = nn.Conv2d(in_channels if k == 0 else channels, channels, 3, padding=1, bias=False)
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # c2_msra_fill
                layers += [conv, nn.GroupNorm(groups, channels), nn.ReLU(inplace=True)]
                if stride != COMMON_STRIDE:
                    layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.stages[name] = nn.Sequential(*layers)
        self.predictor = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        finest = features[self.levels[0]]
        total = None
        for name in self.levels:
            x = self.stages[name](features[name])
            # padded inputs are multiples of 32, so each stage lands exactly on the stride-4 grid
            x = x if x.shape[-2:] == finest.shape[-2:] else F.interpolate(x, size=finest.shape[-2:], mode="bilinear",
                                                                          align_corners=False)
            total = x if total is None else total + x
        return self.predictor(total)
