"""Masks between image and RoI: training targets cut out of the ground truth, predictions pasted back.

Mask R-CNN sec. 3: "The mask target is the intersection between an RoI and its associated
ground-truth mask", an m x m crop resampled with RoIAlign; at test time "the m x m floating-number
mask output is then resized to the RoI size, and binarized at a threshold of 0.5". TensorMask's
binary targets (``binary_mask_targets``) are cut the same way from its sliding windows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align


def mask_targets(gt_masks: Tensor, boxes: Tensor, matched: Tensor, size: int) -> Tensor:
    """The ground-truth mask of each RoI, cropped to the RoI and resampled to ``size`` x ``size``.

    Bilinear RoIAlign of the binary mask (sampling ratio adaptive, not aligned, as torchvision's
    ``project_masks_on_boxes``), so targets are soft at mask edges.

    Args:
        gt_masks: [G, H, W] binary masks of one image.
        boxes: [R, 4] RoIs XYXY in pixels of the masks.
        matched: [R] int64 index of each RoI's ground truth in ``gt_masks``.
        size: m (28 in Mask R-CNN).

    Returns:
        [R, m, m] float in [0, 1].
    """
    if boxes.shape[0] == 0:
        return boxes.new_zeros(0, size, size)
    rois = torch.cat([matched.to(boxes.dtype)[:, None], boxes], dim=1)
    return roi_align(gt_masks[:, None].to(boxes.dtype), rois, (size, size), spatial_scale=1.0)[:, 0]


def binary_mask_targets(gt_masks: Tensor, matched: Tensor, boxes: Tensor, size: int) -> Tensor:
    """The ground-truth mask of each box, cropped and resampled to ``size`` x ``size``, then binarised.

    detectron2's ``BitMasks.crop_and_resize``, which TensorMask's release trains with: RoIAlign with
    ``aligned=True`` and adaptive sampling, then >= 0.5.

    Args:
        gt_masks: [G, H, W] binary masks of one image.
        matched: [R] int64 index of each box's ground truth in ``gt_masks``.
        boxes: [R, 4] XYXY in pixels of the masks (may extend past the image).
        size: output side.

    Returns:
        [R, size, size] float in {0, 1}.
    """
    rois = torch.cat([matched.to(boxes.dtype)[:, None], boxes], dim=1)
    crops = roi_align(gt_masks[:, None].to(boxes.dtype), rois, (size, size), spatial_scale=1.0, sampling_ratio=0,
                      aligned=True)
    return (crops[:, 0] >= 0.5).to(boxes.dtype)


def paste_masks(masks: Tensor, boxes: Tensor, image_size: tuple[int, int], *, padding: int = 1) -> Tensor:
    """Paste m x m RoI masks into images of ``image_size``.

    The algorithm of torchvision's ``paste_masks_in_image`` (so the same weights give the same
    masks): pad each mask by ``padding`` zero pixels and grow its box by (m + 2 p) / m around the
    centre, round the box to whole pixels, resize the mask bilinearly to the box, and copy the part
    inside the image.

    Args:
        masks: [R, m, m] float (probabilities).
        boxes: [R, 4] XYXY in pixels of the output image.
        image_size: (H, W).

    Returns:
        [R, H, W] float; 0 outside each box.
    """
    height, width = int(image_size[0]), int(image_size[1])
    out = masks.new_zeros(masks.shape[0], height, width)
    if masks.shape[0] == 0:
        return out
    size = masks.shape[-1]
    scale = (size + 2 * padding) / size
    padded = F.pad(masks, (padding,) * 4)
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) * 0.5, (boxes[:, 1] + boxes[:, 3]) * 0.5
    half_w, half_h = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale, (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    grown = torch.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], 1).long()
    for i, (x0, y0, x1, y1) in enumerate(grown.tolist()):
        box_w, box_h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)  # inclusive pixel corners
        resized = F.interpolate(padded[i][None, None], size=(box_h, box_w), mode="bilinear", align_corners=False)[0, 0]
        left, top = max(x0, 0), max(y0, 0)
        right, bottom = min(x1 + 1, width), min(y1 + 1, height)
        if right > left and bottom > top:
            out[i, top:bottom, left:right] = resized[top - y0 : bottom - y0, left - x0 : right - x0]
    return out
