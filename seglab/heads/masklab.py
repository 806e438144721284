"""MaskLab's heads: the res5 box classifier, per-box crops, direction pooling, coarse mask and refinement.

Chen et al., "MaskLab" (arXiv 1712.04837), sec. 3.1 and fig. 2. Per box: crop-and-resize the
semantic logits of the box's class and the 32 direction logits; direction pooling takes, at each
crop pixel, the direction channel of the bin that pixel occupies relative to the box centre (the
assembling of InstanceFCN / FCIS with polar bins); [semantic crop, pooled direction] -> 1x1 conv
-> coarse mask logits; the coarse logits concatenated with hypercolumn features cropped from lower
layers of the ResNet -> three convolutions -> the final mask logits (sigmoid, class-agnostic:
the class already chose the semantic channel). Box classifier: Faster R-CNN's ResNet design
(He et al., arXiv 1512.03385, appendix A): RoIs cropped from res4, a duplicate res5, global
average pooling, class scores and class-specific box deltas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align

from seglab.boxes import rois_with_index
from seglab.boxes.directions import NUM_DIRECTIONS, NUM_DISTANCES, crop_direction_index
from seglab.heads.roi_box import BOX_STD, CLS_STD, gaussian_init


class Res5BoxHead(nn.Module):
    """Pooled res4 RoI features -> a copy of res5 (stride 2) -> global average pool -> class scores and deltas.

    Args:
        res5: the duplicated res5 stage (stride 2, not atrous).
        out_channels: channels res5 produces (2048 on ResNet-50/101).
        num_classes: K + 1, background included.

    Forward: [R, C4, 14, 14] -> (class_logits [R, K + 1], deltas [R, 4 (K + 1)]).
    """

    def __init__(self, res5: nn.Module, *, out_channels: int, num_classes: int) -> None:
        super().__init__()
        self.res5 = res5
        self.cls_score = nn.Linear(out_channels, num_classes)
        self.bbox_pred = nn.Linear(out_channels, num_classes * 4)
        gaussian_init(self.cls_score, CLS_STD)
        gaussian_init(self.bbox_pred, BOX_STD)

    def forward(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        x = self.res5(pooled).mean((2, 3))
        return self.cls_score(x), self.bbox_pred(x)


@dataclass
class MaskLabCrops:
    """What one set of boxes cuts out of the dense maps, each [R, ., S, S]."""

    semantic: Tensor  # [R, 1, S, S] logits of each box's class
    direction: Tensor  # [R, 32, S, S] direction logits
    hypercolumn: Tensor  # [R, sum of the levels' channels, S, S] lower-layer features


class MaskLabCropper(nn.Module):
    """Crop-and-resize (RoIAlign, aligned) the semantic channel of each box's class, the direction logits
    and the hypercolumn levels to ``crop_size`` x ``crop_size``.

    Args:
        crop_size: S, the side of every crop.
        dense_stride: stride of the semantic and direction logits (16: atrous res5).
        hypercolumn: level -> stride of the lower layers cropped for the refinement ({"c1": 2, "c2": 4}).

    Forward: ``(features, boxes, labels)`` with features holding "semantic" [N, C + 1, h, w],
    "direction" [N, 32, h, w] and the hypercolumn levels, boxes per image [R_i, 4] in pixels of the
    (padded) input, labels [R] the class of each box -> MaskLabCrops.
    """

    def __init__(self, *, crop_size: int, dense_stride: int, hypercolumn: Mapping[str, int]) -> None:
        super().__init__()
        self.crop_size, self.dense_stride = crop_size, dense_stride
        self.hypercolumn = dict(hypercolumn)

    def forward(self, features: Mapping[str, Tensor], boxes: Sequence[Tensor], labels: Tensor) -> MaskLabCrops:
        rois = rois_with_index(boxes)
        semantic = features["semantic"]
        classes = semantic.shape[1]
        # one channel per box: treat every (image, class) map as its own image of one channel
        per_class = rois.clone()
        per_class[:, 0] = rois[:, 0] * classes + labels.to(rois.dtype)
        return MaskLabCrops(
            semantic=self._crop(semantic.flatten(0, 1)[:, None], per_class, self.dense_stride),
            direction=self._crop(features["direction"], rois, self.dense_stride),
            hypercolumn=torch.cat([self._crop(features[level], rois, stride)
                                   for level, stride in self.hypercolumn.items()], dim=1),
        )

    def _crop(self, maps: Tensor, rois: Tensor, stride: int) -> Tensor:
        return roi_align(maps, rois, (self.crop_size, self.crop_size), spatial_scale=1.0 / stride,
                         sampling_ratio=2, aligned=True)


def direction_pool(direction: Tensor, index: Tensor) -> Tensor:
    """Direction pooling: at each crop pixel, the channel of the bin the pixel occupies.

    Args:
        direction: [R, B, S, S] cropped direction logits (B = 8 x 4 bins).
        index: [S, S] int64 bin of each crop pixel (``crop_direction_index``).

    Returns:
        [R, 1, S, S]: out[r, 0, i, j] = direction[r, index[i, j], i, j].
    """
    return direction.gather(1, index.expand(direction.shape[0], 1, *index.shape))


class MaskLabMaskHead(nn.Module):
    """Direction pooling, the 1x1 coarse mask conv and the three-conv hypercolumn refinement.

    Args:
        crop_size: S (the cropper's).
        hypercolumn_channels: channels of the concatenated lower-layer crops.
        channels: width of the refinement's first two convs.
        kernel_size: their kernel (the third is 1x1 to one logit map).
        num_directions, num_distances: the direction bins (8 x 4).

    Forward: MaskLabCrops -> (coarse mask logits [R, 1, S, S], mask logits [R, 1, S, S]).
    """

    def __init__(self, *, crop_size: int, hypercolumn_channels: int, channels: int = 256, kernel_size: int = 3,
                 num_directions: int = NUM_DIRECTIONS, num_distances: int = NUM_DISTANCES) -> None:
        super().__init__()
        index = crop_direction_index(crop_size, num_directions=num_directions, num_distances=num_distances)
        self.register_buffer("direction_index", index, persistent=False)  # a constant of the crop size
        self.coarse = nn.Conv2d(2, 1, 1)  # [semantic, pooled direction] -> coarse logits (sec. 3.1)
        pad = kernel_size // 2
        self.refine = nn.Sequential(
            nn.Conv2d(1 + hypercolumn_channels, channels, kernel_size, padding=pad), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size, padding=pad), nn.ReLU(inplace=True),
            nn.Conv2d(channels, 1, 1),
        )
        for layer in self.refine:
            if isinstance(layer, nn.Conv2d):  # MSRA init, as Mask R-CNN's mask head
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(layer.bias)
        nn.init.normal_(self.refine[-1].weight, std=0.001)  # as Mask R-CNN's mask predictor (GaussianFill 0.001)

    def forward(self, crops: MaskLabCrops) -> tuple[Tensor, Tensor]:
        pooled = direction_pool(crops.direction, self.direction_index)
        coarse = self.coarse(torch.cat([crops.semantic, pooled], dim=1))
        return coarse, self.refine(torch.cat([coarse, crops.hypercolumn], dim=1))
