"""FCIS's RoI losses with online hard example mining (OHEM).

Li et al., "Fully Convolutional Instance-aware Semantic Segmentation" (arXiv 1611.07709), sec. 3.2
(training): per RoI, a softmax classification loss over the C + 1 categories, a softmax segmentation
loss over the foreground of the ground-truth category (positive RoIs only, per pixel), and a box
regression loss (positive RoIs); "among the 300 proposed RoIs on one image, 128 RoIs with the largest
losses are selected to back-propagate the error gradients" (OHEM, Shrivastava et al., arXiv 1604.03540).
Weights of the authors' release (``experiments/fcis/cfgs/resnet_v1_101_coco_fcis_end2end_ohem.yaml``
and ``fcis/symbols/resnet_v1_101_fcis.py``): classification 1, segmentation 10, box 1; the classification
loss is averaged over the selected RoIs, the segmentation loss over the pixels of the selected
positive RoIs, the box loss summed and divided by the number selected.

The two-way softmax of (outside, inside) equals the sigmoid of (inside - outside), so the
segmentation term is a binary cross-entropy on the heads' ``mask_logits``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from seglab.errors import InputError
from seglab.losses.detection import smooth_l1

SEGMENTATION_WEIGHT = 10.0  # the release's loss weight of the mask term


def fcis_losses(
    class_logits: Tensor, mask_logits: Tensor, box_deltas: Tensor, labels: Tensor, mask_targets: Tensor,
    box_targets: Tensor, *, counts: list[int], hard_per_image: int = 128, mask_weight: float = SEGMENTATION_WEIGHT,
    box_beta: float = 1.0,
) -> dict[str, Tensor]:
    """The three terms on the ``hard_per_image`` RoIs of each image with the largest summed loss.

    Args:
        class_logits: [R, C + 1]; mask_logits: [R, C + 1, M, M] (inside - outside); box_deltas: [R, 4].
        labels: [R] int64 in [0, C] (0 = background); mask_targets: [R, M, M] in {0, 1} (used where
            label > 0); box_targets: [R, 4] encoded (used where label > 0).
        counts: RoIs of each image (they are concatenated image by image).
        hard_per_image: RoIs kept per image (128).
        mask_weight: weight of the segmentation term (10); box_beta: smooth-L1 beta (1).

    Returns:
        {"loss_cls", "loss_mask", "loss_box_reg"}; 0 with a gradient path where nothing counts.
    """
    rows = class_logits.shape[0]
    if labels.shape != (rows,) or mask_logits.shape[0] != rows or box_deltas.shape != (rows, 4) or sum(counts) != rows:
        raise InputError(f"fcis_losses: {rows} RoIs but labels {list(labels.shape)}, mask_logits "
                         f"{list(mask_logits.shape)}, box_deltas {list(box_deltas.shape)}, counts sum {sum(counts)}")
    positive = labels > 0
    cls = F.cross_entropy(class_logits, labels, reduction="none")
    rows_index = torch.arange(rows, device=labels.device)
    masks = mask_logits[rows_index, labels]  # [R, M, M], the ground-truth class's
    seg = F.binary_cross_entropy_with_logits(masks, mask_targets.to(masks.dtype), reduction="none").mean(dim=(1, 2))
    seg = seg * positive
    box = smooth_l1(box_deltas, box_targets.to(box_deltas.dtype), beta=box_beta).sum(dim=1) * positive
    with torch.no_grad():  # OHEM: rank each image's RoIs by their whole loss
        total = cls + mask_weight * seg + box
        hard = torch.cat([part.topk(min(hard_per_image, len(part))).indices + start
                          for part, start in zip(total.split(counts), _starts(counts))])
    if hard.numel() == 0:
        zero = class_logits.sum() * 0.0 + mask_logits.sum() * 0.0 + box_deltas.sum() * 0.0
        return {"loss_cls": zero, "loss_mask": zero.clone(), "loss_box_reg": zero.clone()}
    hard_positive = positive[hard]
    seg_loss = seg[hard].sum() / hard_positive.sum().clamp(min=1)
    return {"loss_cls": cls[hard].mean(), "loss_mask": mask_weight * seg_loss,
            "loss_box_reg": box[hard].sum() / len(hard)}


def _starts(counts: list[int]) -> list[int]:
    starts, total = [], 0
    for count in counts:
        starts.append(total)
        total += count
    return starts
