"""TensorMask's head: class and box towers as RetinaNet's, and a mask tower feeding the tensor bipyramid.

Chen et al., "TensorMask" (arXiv 1903.12174), sec. 4 (the heads), with the settings of the authors'
release (detectron2 ``projects/TensorMask/tensormask/arch.py`` ``TensorMaskHead``, ``config.py``):

- class tower: 4 x (conv 3x3, 256, ReLU), then a 3x3 conv to A K logits (K classes, sigmoid, no
  background), bias log(0.01 / 0.99) (RetinaNet's prior 0.01; NUM_CONVS, CLS_CHANNELS);
- box tower: 4 x (conv 3x3, 128, ReLU), then a 3x3 conv to A 4 deltas (BBOX_CHANNELS);
- mask tower: 4 x (conv 3x3, 128, ReLU) on every level (MASK_CHANNELS);
- tensor bipyramid (BIPYRAMID_ON, ALIGNED_ON, sec. 3-4): the level-l mask features are
  upsampled bilinearly by 2^l to the size of P2, added to P2's mask features and fused by a 3x3
  conv + ReLU (one conv for all levels; level 0 adds P2 to itself, as the release), a 1x1 conv per
  anchor size predicts S x S aligned masks (S = anchor size / 4, the P2 stride) at every P2
  position, and ``SwapAlign2Nat(2^l)`` turns them into natural masks of (S 2^l)^2 cells of 4 pixels
  on the level-l grid: each mask covers its anchor, 4 pixels per cell on every level.

All convs start from N(0, 0.01) with zero bias (the release's initialisation). The towers are
shared by every level; the 1x1 mask convs by every level, one per anchor size. ``flatten_levels`` and
``window_grid`` lay the outputs and their windows out in one order (level, row, column, anchor), the
release's N_HWA_K.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seglab.layers.swap_align2nat import SwapAlign2Nat

NUM_CONVS = 4  # NUM_CONVS: convs in each tower
PRIOR = 0.01  # RetinaNet sec. 4.1: the class logits start at probability 0.01


@dataclass
class DenseOutputs:
    """The head's outputs, per level l (finest first).

    Attributes:
        class_logits: per level [N, A K, H_l, W_l].
        box_deltas: per level [N, A 4, H_l, W_l].
        masks: per level, per anchor a: [N, (S_a 2^l)^2, H_l, W_l] natural-form mask logits.
    """

    class_logits: list[Tensor]
    box_deltas: list[Tensor]
    masks: list[list[Tensor]]


@dataclass
class AnchorGrid:
    """Every window of a padded batch, in the order of the flattened head outputs (level, row, column, anchor).

    Attributes: boxes [M, 4] XYXY pixels; unit [M] stride of the window's level; level, row, col,
    anchor [M] int64, where the window's mask lies in ``DenseOutputs.masks[level][anchor][:, :, row, col]``.
    """

    boxes: Tensor
    unit: Tensor
    level: Tensor
    row: Tensor
    col: Tensor
    anchor: Tensor


def flatten_levels(outputs: Sequence[Tensor], width: int) -> Tensor:
    """Per level [N, A width, H, W] -> [N, sum_l H W A, width] (RetinaNet's N_HWA_K layout)."""
    return torch.cat([x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, width) for x in outputs], dim=1)


def window_grid(boxes: Tensor, grids: Sequence[tuple[int, int]], padded_size: tuple[int, int],
                num_anchors: int) -> AnchorGrid:
    """Place the windows ``boxes`` ([M, 4], an ``AnchorGenerator``'s) on the level grids (h_l, w_l) of a
    batch padded to ``padded_size``: their unit (stride), level, row, column and anchor index."""
    places = []
    for level, (height, width) in enumerate(grids):
        row, col, anchor = torch.meshgrid(torch.arange(height), torch.arange(width), torch.arange(num_anchors),
                                          indexing="ij")
        unit = torch.full_like(row, padded_size[0] // height)
        places.append(torch.stack([unit, torch.full_like(row, level), row, col, anchor], -1).reshape(-1, 5))
    unit, level, row, col, anchor = torch.cat(places).to(boxes.device).unbind(1)
    return AnchorGrid(boxes, unit.to(boxes.dtype), level, row, col, anchor)


def tower(in_channels: int, channels: int, num_convs: int = NUM_CONVS) -> nn.Sequential:
    """``num_convs`` x (3x3 conv + ReLU)."""
    layers: list[nn.Module] = []
    for i in range(num_convs):
        layers += [nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class TensorMaskHead(nn.Module):
    """Class, box and mask towers on P2..P7 and the tensor bipyramid of masks.

    Args:
        in_channels: channels of every FPN level (256).
        num_classes: K, foreground classes (sigmoid outputs, no background slot).
        mask_sizes: S per anchor of a position (11, 15 for anchors 44, 60 on P2 of stride 4).
        num_levels: FPN levels, finest (P2) first (6: P2..P7); level l gets lambda = 2^l.
        cls_channels, box_channels, mask_channels: tower widths (256, 128, 128).
        pad_val: SwapAlign2Nat's value outside the tensor (-6).

    Forward: list of [N, in_channels, H_l, W_l] with H_l = H_2 / 2^l -> ``DenseOutputs``.
    """

    def __init__(
        self, in_channels: int, *, num_classes: int, mask_sizes: Sequence[int], num_levels: int,
        cls_channels: int = 256, box_channels: int = 128, mask_channels: int = 128, pad_val: float = -6.0,
    ) -> None:
        super().__init__()
        anchors = len(mask_sizes)
        self.mask_sizes = tuple(mask_sizes)
        self.cls_tower = tower(in_channels, cls_channels)
        self.cls_score = nn.Conv2d(cls_channels, anchors * num_classes, 3, padding=1)
        self.box_tower = tower(in_channels, box_channels)
        self.box_pred = nn.Conv2d(box_channels, anchors * 4, 3, padding=1)
        self.mask_tower = tower(in_channels, mask_channels)
        self.mask_fuse = tower(mask_channels, mask_channels, num_convs=1)
        self.mask_pred = nn.ModuleList(nn.Conv2d(mask_channels, size * size, 1) for size in mask_sizes)
        self.align2nat = nn.ModuleList(SwapAlign2Nat(2**level, pad_val) for level in range(num_levels))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)
        nn.init.constant_(self.cls_score.bias, -math.log((1 - PRIOR) / PRIOR))

    def forward(self, features: Sequence[Tensor]) -> DenseOutputs:
        class_logits = [self.cls_score(self.cls_tower(x)) for x in features]
        box_deltas = [self.box_pred(self.box_tower(x)) for x in features]
        fused = self.bipyramid([self.mask_tower(x) for x in features])
        masks = [[align(pred(x)) for pred in self.mask_pred] for x, align in zip(fused, self.align2nat)]
        return DenseOutputs(class_logits, box_deltas, masks)

    def bipyramid(self, mask_features: Sequence[Tensor]) -> list[Tensor]:
        """Each level's mask features upsampled 2^l to P2's size, plus P2's, then the fusing conv."""
        finest = mask_features[0]
        height, width = finest.shape[-2:]
        fused = []
        for level, x in enumerate(mask_features):
            if level > 0:
                x = F.interpolate(x, scale_factor=float(2**level), mode="bilinear", align_corners=False)
            fused.append(self.mask_fuse(x[..., :height, :width] + finest))
        return fused
