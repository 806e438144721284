"""Differentiable RoI warping: crop each box from a feature map and resample it bilinearly to a fixed size.

Dai, He, Sun, "Instance-aware Semantic Segmentation via Multi-task Network Cascades" (arXiv 1512.04412),
sec. 3.2 and eq. 7-9: "RoI warping" crops the box's region of the feature map and warps it to a fixed
size by bilinear interpolation, so the output is a differentiable function of the box coordinates as
well as of the features; a cascade's later losses then reach the boxes predicted by the earlier stages.
``torchvision.ops.roi_align`` gives no gradient to the boxes, so this is ``F.affine_grid`` (one affine
map per box: output cell (u, v) -> its centre in the box) and ``F.grid_sample`` (bilinear, zeros
outside the map), both differentiable in the box (../shared/reference/instance-models.md, sec. 0, 5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def roi_warp(features: Tensor, boxes: list[Tensor], *, output_size: int, spatial_scale: float) -> Tensor:
    """Bilinear crops of ``boxes`` from ``features``, differentiable in both.

    Output cell (u, v) samples the feature map at the centre of the box's cell (u, v): x = x1 + (v + 0.5)
    (x2 - x1) / S in image pixels, times ``spatial_scale``, in the continuous coordinates where feature
    pixel i covers [i, i + 1) (``align_corners=False``; RoIAlign's ``aligned=True`` convention).

    Args:
        features: [N, C, H, W].
        boxes: per image [R_n, 4] XYXY in image pixels.
        output_size: S (14 in MNC).
        spatial_scale: feature pixels per image pixel (1/16).

    Returns:
        [sum R_n, C, S, S], image by image.
    """
    _, channels, height, width = features.shape
    out = []
    for image, image_boxes in zip(features, boxes):
        if image_boxes.shape[0] == 0:
            out.append(features.new_zeros(0, channels, output_size, output_size))
            continue
        x1, y1, x2, y2 = (image_boxes * spatial_scale).unbind(1)
        zero = torch.zeros_like(x1)
        # input normalised coordinate = theta @ (output normalised coordinate, 1), per box
        theta = torch.stack([
            torch.stack([(x2 - x1) / width, zero, (x1 + x2) / width - 1], dim=1),
            torch.stack([zero, (y2 - y1) / height, (y1 + y2) / height - 1], dim=1),
        ], dim=1).to(features.dtype)
        grid = F.affine_grid(theta, [len(theta), channels, output_size, output_size], align_corners=False)
        # every box's grid sampled from this one image: [1, R S, S, 2] -> [1, C, R S, S]
        sampled = F.grid_sample(image[None], grid.reshape(1, -1, output_size, 2), mode="bilinear",
                                padding_mode="zeros", align_corners=False)
        out.append(sampled[0].view(channels, -1, output_size, output_size).transpose(0, 1))
    return torch.cat(out)
