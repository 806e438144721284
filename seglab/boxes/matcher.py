"""Matching predicted boxes (anchors, proposals) to ground truth by IoU thresholds.

Faster R-CNN sec. 3.1.2: an anchor is positive with IoU >= 0.7 to some ground-truth box, or when it
is the anchor of highest IoU for a ground-truth box (the "low-quality" matches, so every object has
an anchor); negative below 0.3; in between it is ignored. Fast R-CNN's RoIs use 0.5 / 0.5 without
low-quality matches (Fast R-CNN sec. 2.3; Mask R-CNN sec. 3.1).
"""

from __future__ import annotations

import torch
from torch import Tensor

BELOW_LOW = -1  # best IoU < low: negative
BETWEEN = -2  # low <= best IoU < high: ignored


def match_boxes(iou: Tensor, *, high: float, low: float, allow_low_quality: bool = False) -> Tensor:
    """The ground-truth index matched to each prediction, or BELOW_LOW / BETWEEN.

    Args:
        iou: [G, P] IoU of G ground-truth boxes (G >= 1) with P predictions.
        high: IoU from which a match is positive.
        low: IoU under which a prediction is negative (low <= high).
        allow_low_quality: also match, for every ground-truth box, the predictions with its highest
            IoU (ties included) to the ground truth they overlap most, whatever that IoU.

    Returns:
        [P] int64 in [0, G) or BELOW_LOW / BETWEEN.
    """
    if low > high:
        raise ValueError(f"match_boxes: low ({low}) must not exceed high ({high})")
    best_iou, matches = iou.max(dim=0)
    best_gt = matches.clone() if allow_low_quality else None
    matches[best_iou < low] = BELOW_LOW
    matches[(best_iou >= low) & (best_iou < high)] = BETWEEN
    if best_gt is not None:
        best_per_gt = iou.max(dim=1).values  # [G]
        _, predictions = torch.nonzero(iou == best_per_gt[:, None], as_tuple=True)
        matches[predictions] = best_gt[predictions]
    return matches
