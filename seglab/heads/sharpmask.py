"""SharpMask's top-down refinement: a vertical start and four refinement modules on skip features.

Pinheiro, Lin, Collobert, Dollar, "Learning to Refine Object Segments", ECCV 2016 (arXiv 1603.08695),
sec. 3.2 and fig. 3, with the sizes of the authors' code (facebookresearch/deepmask ``SharpMask.lua``):

- vertical start v0: linear 512 -> k_m x f x f (f = 10 cells for a 160-px window), from DeepMask's
  512-d embedding;
- refinement module i = 1..4, on the skip feature F_i of stride 16 / 2^(i-1) (res4, res3, res2, conv1
  of ResNet-50): horizontal net = 3x3 conv -> h_i (64, 64, 64, 32) + ReLU, 3x3 conv -> k_s / 2^(i-1)
  + ReLU, 3x3 conv -> k_s / 2^i; vertical net = 3x3 conv (k_m / 2^(i-1)) + ReLU, 3x3 conv -> k_m / 2^i;
  the two are summed, passed through a ReLU and upsampled 2x (nearest), so each module halves the
  channels and doubles the side: f -> 2f -> 4f -> 8f -> 16f = the window;
- a final 3x3 conv from k_m / 16 channels to the mask's one logit map.

k_m = k_s = 32 by default (the code asserts both are multiples of 16, at least 16). Every 3x3 conv
pads symmetrically by one pixel (``SpatialSymmetricPadding(1,1,1,1)``), which for one pixel is the
edge's replicate padding (``padding_mode="replicate"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SKIP_HIDDEN = (64, 64, 64, 32)  # SharpMask.lua createHorizontal: nhu2 of the four modules


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """3x3 conv with one pixel of symmetric (= replicate) padding, as SharpMask.lua."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="replicate")


class RefinementModule(nn.Module):
    """One module: relu(horizontal(F_i) + vertical(M_i)), upsampled 2x (sec. 3.2, fig. 3b).

    Args:
        skip_channels: channels of F_i; hidden: the horizontal net's first width (h_i).
        channels: k_m / 2^(i-1) = k_s / 2^(i-1), the width of M_i; the output has half of it.
    Forward: skip [N, C_i, s, s], mask features [N, channels, s, s] -> [N, channels / 2, 2s, 2s].
    """

    def __init__(self, skip_channels: int, *, hidden: int, channels: int) -> None:
        super().__init__()
        self.horizontal = nn.Sequential(conv3x3(skip_channels, hidden), nn.ReLU(), conv3x3(hidden, channels),
                                        nn.ReLU(), conv3x3(channels, channels // 2))
        self.vertical = nn.Sequential(conv3x3(channels, channels), nn.ReLU(), conv3x3(channels, channels // 2))

    def forward(self, skip: Tensor, masks: Tensor, *, skip_done: bool = False) -> Tensor:
        """``skip_done``: ``skip`` already went through ``horizontal`` (densely, at full-image inference)."""
        lateral = skip if skip_done else self.horizontal(skip)
        return F.interpolate(torch.relu(lateral + self.vertical(masks)), scale_factor=2, mode="nearest")


class TopDownRefinement(nn.Module):
    """v0, four refinement modules and the final conv: a 512-d embedding and skips -> mask logits.

    Args:
        skip_channels: channels of the skip taps, deepest first (1024, 512, 256, 64 for ResNet-50).
        fsize: f, the window's side in stride-16 cells (10 in the code); dim: the embedding's width (512).
        km, ks: k_m and k_s (32); they must be equal (the module sums the two nets' k / 2^i maps).
        skip_hidden: h_i of each module (64, 64, 64, 32).
    Forward: embedding [N, dim], skips (deepest first) [N, C_i, f 2^(i-1), f 2^(i-1)] -> logits [N, 16f, 16f].
    """

    def __init__(self, skip_channels: Sequence[int], *, fsize: int, dim: int = 512, km: int = 32, ks: int = 32,
                 skip_hidden: Sequence[int] = SKIP_HIDDEN) -> None:
        super().__init__()
        self.fsize, self.km = fsize, km
        self.v0 = nn.Linear(dim, km * fsize * fsize)
        self.refinements = nn.ModuleList(
            RefinementModule(c, hidden=h, channels=km // 2**i)
            for i, (c, h) in enumerate(zip(skip_channels, skip_hidden))
        )
        self.final = conv3x3(km // 2 ** len(self.refinements), 1)

    def forward(self, embedding: Tensor, skips: Sequence[Tensor], *, skips_done: bool = False) -> Tensor:
        masks = self.v0(embedding).view(-1, self.km, self.fsize, self.fsize)
        for module, skip in zip(self.refinements, skips):
            masks = module(skip, masks, skip_done=skips_done)
        return self.final(masks)[:, 0]

    def horizontal(self, skips: Sequence[Tensor]) -> list[Tensor]:
        """The horizontal nets alone, on whole maps (they are convolutional; inference crops their output)."""
        return [module.horizontal(skip) for module, skip in zip(self.refinements, skips)]
