"""FCIS's head: position-sensitive inside/outside score maps, and the joint mask and class of each RoI.

Li, Qi, Dai, Ji, Wei, "Fully Convolutional Instance-aware Semantic Segmentation" (arXiv 1611.07709),
sec. 3.1-3.2 and fig. 2: on the stride-16 res5 features, a 1x1 conv to 1024 channels (the authors'
``conv_new_1``, ``fcis/symbols/resnet_v1_101_fcis.py``), then 1x1 convs to 2 k^2 (C + 1) score maps
(k = 7; an "inside" and an "outside" map per class and cell) and to 2 k^2 4 box maps (class-agnostic
boxes, background and foreground slots as the release's ``fcis_bbox``). Per RoI, the 7 x 7 groups are
pooled to 21 x 21 (``seglab.layers.position_sensitive``). Then, for each class (sec. 3.2):
- the mask: a per-pixel softmax over (outside, inside), i.e. the sigmoid of inside - outside;
- the detection score: the per-pixel max of (inside, outside), averaged over the RoI ("Group_Max",
  then global average), softmax over the C + 1 classes.

Channel layout: score-map output channel d = 2 c + t (t = 0 outside, t = 1 inside) of class c, and
position-sensitive groups as ``torchvision.ops.ps_roi_align`` ((d k + i) k + j).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import ps_roi_align

from seglab.layers.position_sensitive import ps_roi_align_fine

GROUP = 7  # k (sec. 4: "k = 7 by default")
POOLED = 21  # RoI output side (the release's PSROIPooling pooled_size = 21)


class InsideOutsideHead(nn.Module):
    """res5 features -> (inside/outside maps [N, 2 k^2 (C + 1), H, W], box maps [N, 8 k^2, H, W]).

    Args:
        in_channels: channels of res5 (2048 for ResNet-101).
        num_classes: C + 1, background included.
        channels: width of ``conv_new_1`` (1024).
        group: k (7).
    """

    def __init__(self, in_channels: int, *, num_classes: int, channels: int = 1024, group: int = GROUP) -> None:
        super().__init__()
        self.num_classes, self.group = num_classes, group
        self.reduce = nn.Conv2d(in_channels, channels, 1)  # conv_new_1
        self.inside_outside = nn.Conv2d(channels, 2 * num_classes * group * group, 1)  # fcis_cls_seg
        self.box = nn.Conv2d(channels, 2 * 4 * group * group, 1)  # fcis_bbox: 2 slots x 4 deltas per cell
        for conv in (self.reduce, self.inside_outside, self.box):  # the release: normal(0.01), zero bias
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        hidden = F.relu(self.reduce(features))
        return self.inside_outside(hidden), self.box(hidden)

    def pool(self, maps: Tensor, box_maps: Tensor | None, rois: Tensor, *, spatial_scale: float,
             pooled: int = POOLED) -> tuple[Tensor, Tensor, Tensor | None]:
        """Class logits [R, C + 1], mask logits [R, C + 1, 21, 21] and foreground box deltas [R, 4] of ``rois``.

        Args:
            maps, box_maps: this head's outputs (box_maps None: no deltas).
            rois: [R, 5] (batch index, x1, y1, x2, y2) in image pixels.
        """
        scores = ps_roi_align_fine(maps, rois, group=self.group, output=pooled, spatial_scale=spatial_scale)
        class_logits, mask_logits = inside_outside_scores(scores)
        if box_maps is None:
            return class_logits, mask_logits, None
        boxes = ps_roi_align(box_maps, rois, self.group, spatial_scale=spatial_scale, sampling_ratio=2)
        deltas = boxes.mean(dim=(2, 3)).view(-1, 2, 4)[:, 1]  # the foreground slot (class-agnostic)
        return class_logits, mask_logits, deltas


def inside_outside_scores(pooled: Tensor) -> tuple[Tensor, Tensor]:
    """Joint classification and mask from pooled inside/outside scores (FCIS sec. 3.2).

    Args:
        pooled: [R, 2 (C + 1), M, M], channel 2 c = outside, 2 c + 1 = inside of class c.

    Returns:
        class_logits [R, C + 1]: per class the mean over pixels of max(inside, outside);
        mask_logits [R, C + 1, M, M]: inside - outside (its sigmoid is the softmax's inside probability).
    """
    pairs = pooled.unflatten(1, (-1, 2))
    outside, inside = pairs[:, :, 0], pairs[:, :, 1]
    return torch.maximum(inside, outside).mean(dim=(2, 3)), inside - outside
