"""Which sliding windows hold a centred object: DeepMask's positive and negative windows.

InstanceFCN (arXiv 1603.08678, sec. 3.3, training) labels its sampled windows with "the definition of
positive/negative samples in [DeepMask]". DeepMask (arXiv 1506.06204, sec. 3.1 and 4.1 "training"),
for a 224-px patch: a patch is positive when an object is roughly centred in it (its centre within
+-16 px of the patch centre), fully contained in it, and its maximum dimension is 128 px up to a scale
deformation of 2^(+-1/4); it is negative when every object is at least +-32 px off centre or 2^(+-1)
off that scale. Patches in between are neither (DeepMask never samples them). Measured in units of
the window side, so any window size gets the same rule:

    canonical scale 128 / 224 = 4/7, scale jitter 2^(1/4), centre jitter 16 / 224 = 1/14,
    negative centre offset 32 / 224 = 1/7, negative scale factor 2.
"""

from __future__ import annotations

import torch
from torch import Tensor

CANONICAL_SCALE = 128 / 224  # the object's longer side over the window side
SCALE_JITTER = 2 ** 0.25  # positives: within this factor of the canonical scale
CENTRE_JITTER = 16 / 224  # positives: centre offset per axis, over the window side
NEGATIVE_CENTRE = 32 / 224  # negatives: at least this far off centre (either axis) ...
NEGATIVE_SCALE = 2.0  # ... or at least this factor off the canonical scale


def label_centred_windows(gt_boxes: Tensor, windows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Positive and negative windows by DeepMask's rule, and the object each positive holds.

    Args:
        gt_boxes: [G, 4] XYXY object boxes (pixels).
        windows: [W, 4] XYXY square windows in the same pixels.

    Returns:
        (matched [W] int64: the index of the positive's object, the best-centred one if several,
        0 elsewhere; positive [W] bool; negative [W] bool). A window is neither when some object is
        too close to call it background but not centred or sized to call it positive.
    """
    count = windows.shape[0]
    if gt_boxes.shape[0] == 0:
        none = torch.zeros(count, dtype=torch.bool, device=windows.device)
        return torch.zeros(count, dtype=torch.int64, device=windows.device), none, ~none
    side = (windows[:, 2] - windows[:, 0])[:, None]  # [W, 1]
    offset_x = ((gt_boxes[None, :, 0] + gt_boxes[None, :, 2]) - (windows[:, None, 0] + windows[:, None, 2])).abs() / 2
    offset_y = ((gt_boxes[None, :, 1] + gt_boxes[None, :, 3]) - (windows[:, None, 1] + windows[:, None, 3])).abs() / 2
    offset = torch.maximum(offset_x, offset_y) / side  # [W, G], per-axis offset in window sides
    longer = torch.maximum(gt_boxes[:, 2] - gt_boxes[:, 0], gt_boxes[:, 3] - gt_boxes[:, 1])
    scale = longer[None, :] / (CANONICAL_SCALE * side)  # 1 = the canonical size
    contained = ((gt_boxes[None, :, :2] >= windows[:, None, :2])
                 & (gt_boxes[None, :, 2:] <= windows[:, None, 2:])).all(2)  # [W, G]
    centred = (offset <= CENTRE_JITTER) & (scale >= 1 / SCALE_JITTER) & (scale <= SCALE_JITTER) & contained
    near = (offset < NEGATIVE_CENTRE) & (scale > 1 / NEGATIVE_SCALE) & (scale < NEGATIVE_SCALE)
    matched = torch.where(centred, offset, torch.full_like(offset, float("inf"))).argmin(1)
    return matched, centred.any(1), ~near.any(1)


def paste_window_masks(masks: Tensor, windows: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Paste m x m window masks into an image, each cell covering 1/m of its window, bilinearly.

    Windows are pixel-edge boxes (x2 = x1 + side): output pixel centre x + 0.5 sits at cell coordinate
    (x + 0.5 - x1) / cell - 0.5, and the value is the bilinear blend of the two nearest cells, with
    zero beyond the mask (the one-cell zero border of ``paste_masks``, which instead reads boxes as
    inclusive pixel corners and would grow every window by a pixel). Separable: A_y @ mask @ A_x^T.

    Args:
        masks: [D, m, m] float (probabilities).
        windows: [D, 4] XYXY pixel-edge windows in the output image (any real values).
        image_size: (H, W).

    Returns:
        [D, H, W] float; 0 farther than half a cell outside each window.
    """
    size = masks.shape[-1]
    cells = torch.arange(size, device=masks.device, dtype=masks.dtype)

    def weights(start: Tensor, end: Tensor, length: int) -> Tensor:  # [D, length, m] bilinear "hat" weights
        pixels = torch.arange(length, device=masks.device, dtype=masks.dtype) + 0.5
        position = (pixels[None, :] - start[:, None]) / ((end - start) / size)[:, None] - 0.5
        return (1 - (position[:, :, None] - cells[None, None, :]).abs()).clamp_min(0)

    rows = weights(windows[:, 1], windows[:, 3], int(image_size[0]))
    cols = weights(windows[:, 0], windows[:, 2], int(image_size[1]))
    return rows @ masks @ cols.transpose(1, 2)
