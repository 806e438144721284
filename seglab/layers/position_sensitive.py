"""Position-sensitive RoI pooling to a finer grid than its k x k groups (FCIS's 21 x 21 from 7 x 7).

R-FCN (arXiv 1605.06409, sec. 2) and FCIS (arXiv 1611.07709, sec. 3.1) score an RoI with k^2 groups
of maps: bin (i, j) of a k x k grid over the RoI reads only the maps of group (i, j). FCIS pools
21 x 21 outputs from k = 7 groups (the authors' ``PSROIPooling(group_size=7, pooled_size=21)``): output
pixel (u, v) lies in group (u k // 21, v k // 21) and averages its own 1/21 bin of the RoI.
``torchvision.ops.ps_roi_align`` needs the output size to equal the group size, so this file takes
the exact route of ../shared/reference/instance-models.md (sec. 7): treat the k^2 groups as a batch
(one image of D maps per group), split each RoI into its k x k sub-boxes, RoIAlign each sub-box from
its group to (21 / k) x (21 / k), and reassemble. Each output bin is then sampled exactly where a
21 x 21 RoIAlign of that group's maps would sample it.

Channel layout (torchvision's ``ps_roi_align``, and the authors' operator): the map of output channel
d for group (i, j) is channel (d k + i) k + j.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import roi_align


def ps_roi_align_fine(
    maps: Tensor, rois: Tensor, *, group: int, output: int, spatial_scale: float, sampling_ratio: int = 2,
) -> Tensor:
    """Position-sensitive RoIAlign of ``maps`` to ``output`` x ``output`` bins from ``group`` x ``group`` groups.

    Args:
        maps: [N, D k^2, H, W], channel (d k + i) k + j = output channel d of group (i, j).
        rois: [R, 5] (batch index, x1, y1, x2, y2) in image pixels.
        group: k.
        output: side of the pooled grid, a multiple of k (21 for k = 7).
        spatial_scale: feature pixels per image pixel (1/16).
        sampling_ratio: bilinear samples per bin side (as ``roi_align``).

    Returns:
        [R, D, output, output]; bin (u, v) averages the RoI's bin (u, v) on channel d of group
        (u k // output, v k // output), with RoIAlign's half-pixel alignment (``aligned=True``, so
        sub-boxes smaller than a feature pixel keep their size).
    """
    n, channels, height, width = maps.shape
    if output % group or channels % (group * group):
        raise ValueError(f"ps_roi_align_fine: output {output} must be a multiple of group {group}, and the "
                         f"{channels} channels a multiple of group^2 = {group * group}")
    depth, sub = channels // (group * group), output // group
    # [N, D, k, k, H, W] -> one image of D maps per (n, i, j)
    grouped = maps.view(n, depth, group, group, height, width).permute(0, 2, 3, 1, 4, 5)
    grouped = grouped.reshape(n * group * group, depth, height, width)
    x1, y1, x2, y2 = rois[:, 1:].unbind(1)
    steps = torch.arange(group + 1, device=rois.device, dtype=rois.dtype) / group
    ys = y1[:, None] + (y2 - y1)[:, None] * steps  # [R, k + 1] edges of the k x k sub-boxes
    xs = x1[:, None] + (x2 - x1)[:, None] * steps
    r = rois.shape[0]
    boxes = torch.stack([
        xs[:, None, :-1].expand(r, group, group), ys[:, :-1, None].expand(r, group, group),
        xs[:, None, 1:].expand(r, group, group), ys[:, 1:, None].expand(r, group, group),
    ], dim=-1)  # [R, i, j, 4]
    cells = torch.arange(group * group, device=rois.device, dtype=rois.dtype).view(1, group, group)
    index = rois[:, 0].view(r, 1, 1) * (group * group) + cells  # the group image of (n, i, j)
    sub_rois = torch.cat([index[..., None], boxes], dim=-1).reshape(-1, 5)
    pooled = roi_align(grouped, sub_rois, (sub, sub), spatial_scale=spatial_scale, sampling_ratio=sampling_ratio,
                       aligned=True)  # [R k k, D, sub, sub]
    return pooled.view(r, group, group, depth, sub, sub).permute(0, 3, 1, 4, 2, 5).reshape(r, depth, output, output)
