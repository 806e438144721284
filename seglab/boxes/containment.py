"""TensorMask's anchor assignment: containment, then centrality in scale and in space, then uniqueness.

Chen et al., "TensorMask" (arXiv 1903.12174), sec. 4 (training, label assignment), as the authors' release
implements it (detectron2 ``projects/TensorMask/tensormask/arch.py`` ``_assignment_rule``): a sliding
window (anchor) is positive for a ground-truth box when

1. containment: the anchor contains the box;
2. scale: the anchor's longer side minus its unit length (the stride of its level: windows are
   sampled every unit) is at most ``scale_thresh`` (2) times the box's longer side, a bound raised to
   ``min_anchor_size`` for small boxes, so the smallest anchors can take objects of any small size;
3. space: the distance between the centres is at most ``spatial_thresh`` (1) unit lengths;

and a window that matches more than one box is negative (the release's ``uniqueness_on=True``).
No IoU is involved, unlike Faster R-CNN's matcher (``seglab.boxes.matcher``).
"""

from __future__ import annotations

import torch
from torch import Tensor

SCALE_THRESH = 2.0  # _assignment_rule's scale_thresh
SPATIAL_THRESH = 1.0  # _assignment_rule's spatial_thresh, in unit lengths


def assign_by_containment(
    gt_boxes: Tensor, anchors: Tensor, unit_lengths: Tensor, *, min_anchor_size: float,
    scale_thresh: float = SCALE_THRESH, spatial_thresh: float = SPATIAL_THRESH,
) -> tuple[Tensor, Tensor]:
    """Match each anchor to at most one ground-truth box.

    Args:
        gt_boxes: [G, 4] XYXY pixels.
        anchors: [M, 4] XYXY pixels.
        unit_lengths: [M] stride of each anchor's level, in pixels.
        min_anchor_size: the scale bound's floor (TensorMask: smallest anchor - finest stride = 40).
        scale_thresh, spatial_thresh: the bounds of rules 2 and 3.

    Returns:
        matched: [M] int64 index into ``gt_boxes`` (meaningful where positive).
        positive: [M] bool, a unique match under all three rules.
    """
    num_anchors = anchors.shape[0]
    if gt_boxes.shape[0] == 0 or num_anchors == 0:
        return (torch.zeros(num_anchors, dtype=torch.int64, device=anchors.device),
                torch.zeros(num_anchors, dtype=torch.bool, device=anchors.device))
    gt, windows = gt_boxes[:, None, :], anchors[None, :, :]  # [G, 1, 4], [1, M, 4]
    contains = (windows[..., :2] <= gt[..., :2]).all(-1) & (windows[..., 2:] >= gt[..., 2:]).all(-1)  # [G, M]

    gt_side = (gt_boxes[:, 2:] - gt_boxes[:, :2]).max(dim=1).values  # [G]
    upper = (gt_side * scale_thresh).clamp_min(min_anchor_size)
    window_side = (anchors[:, 2:] - anchors[:, :2]).max(dim=1).values - unit_lengths  # [M]
    in_scale = window_side[None, :] <= upper[:, None]

    offset = ((gt[..., :2] + gt[..., 2:]) - (windows[..., :2] + windows[..., 2:])) / 2 / unit_lengths[None, :, None]
    in_space = offset.square().sum(-1) <= spatial_thresh**2

    matches = contains & in_scale & in_space  # [G, M]
    matched = matches.to(torch.uint8).argmax(dim=0)
    return matched, matches.sum(dim=0) == 1
