"""Boxes from masks, per-image boxes as one RoI tensor, and how much of a box a crowd region covers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def rois_with_index(boxes: Sequence[Tensor]) -> Tensor:
    """Per-image boxes [R_i, 4] -> one [R, 5] tensor (image index, x1, y1, x2, y2), the RoI format of
    ``torchvision.ops.roi_align`` / ``ps_roi_align`` and of ``seglab.layers.position_sensitive``."""
    return torch.cat([torch.cat([b.new_full((len(b), 1), i), b], dim=1) for i, b in enumerate(boxes)])


def masks_to_boxes(masks: Tensor) -> Tensor:
    """Tight boxes around binary masks, as pixel edges (x2 = last column + 1).

    The one ``masks_to_boxes`` of seglab: datasets, augmentations and models all use it, so a box is
    never looser than its mask. (``torchvision.ops.masks_to_boxes`` returns the last column itself,
    x2 = last column, and fails on empty masks.)

    Args:
        masks: [K, H, W] binary (any dtype; non-zero = inside).

    Returns:
        [K, 4] float32 XYXY; an empty mask gives the zero box [0, 0, 0, 0], which is degenerate, so
        sanitising steps drop it.
    """
    if masks.shape[0] == 0:
        return torch.zeros(0, 4, device=masks.device)
    cols = masks.any(dim=1)  # [K, W]
    rows = masks.any(dim=2)  # [K, H]
    width, height = cols.shape[1], rows.shape[1]
    x1 = cols.to(torch.uint8).argmax(dim=1)
    x2 = width - cols.flip(1).to(torch.uint8).argmax(dim=1)
    y1 = rows.to(torch.uint8).argmax(dim=1)
    y2 = height - rows.flip(1).to(torch.uint8).argmax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).to(torch.float32)
    return boxes * cols.any(dim=1, keepdim=True)  # empty masks: zeros


def boxes_inside_crowd(boxes: Tensor, crowd: Tensor, *, threshold: float = 0.7) -> Tensor:
    """Which boxes lie mostly inside a crowd region: crowd pixels / box area > ``threshold``.

    Detectron ignores anchors and proposals whose intersection-over-area with a crowd box exceeds
    ``TRAIN.CROWD_FILTER_THRESH = 0.7`` (facebookresearch/Detectron, config.py); with crowd stored as
    a mask, the covered fraction is exact, counted with a summed-area table.

    Args:
        boxes: [B, 4] float XYXY in pixels of the crowd mask.
        crowd: [H, W] binary crowd region.
        threshold: fraction of the box area above which a box is "inside".

    Returns:
        [B] bool.
    """
    if boxes.shape[0] == 0 or not bool(crowd.any()):
        return torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    height, width = crowd.shape
    table = torch.zeros(height + 1, width + 1, dtype=torch.float64, device=boxes.device)
    table[1:, 1:] = crowd.to(torch.float64).cumsum(0).cumsum(1)
    x1 = boxes[:, 0].floor().clamp(0, width).long()
    y1 = boxes[:, 1].floor().clamp(0, height).long()
    x2 = boxes[:, 2].ceil().clamp(0, width).long()
    y2 = boxes[:, 3].ceil().clamp(0, height).long()
    covered = table[y2, x2] - table[y1, x2] - table[y2, x1] + table[y1, x1]
    area = ((x2 - x1) * (y2 - y1)).to(torch.float64)
    return covered > threshold * area.clamp_min(1)


def ignore_crowd_negatives(labels: Tensor, boxes: Tensor, crowd: Tensor | None, *, threshold: float = 0.7) -> Tensor:
    """Mark as ignored (-1) the negatives (label 0) lying mostly inside the crowd region, in place.

    The crowd filter of Detectron shared by the RPN's anchors and the RoI heads' proposals: a box
    in a crowd of people is neither a person to learn nor background (``boxes_inside_crowd``).

    Args:
        labels: [B] int64 per box: >= 1 positive, 0 negative, -1 ignored.
        boxes: [B, 4] XYXY in pixels of ``crowd``.
        crowd: [H, W] binary crowd region, or None (nothing changes).

    Returns:
        ``labels``.
    """
    if crowd is not None:
        negative = (labels == 0).nonzero().flatten()
        labels[negative[boxes_inside_crowd(boxes[negative], crowd, threshold=threshold)]] = -1
    return labels
