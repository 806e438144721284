"""MaskLab's dense targets: a semantic label map and per-pixel direction bins from instance masks.

Chen et al., "MaskLab" (arXiv 1712.04837), sec. 3.1: the semantic branch classifies every pixel
into C + 1 classes, and the direction branch predicts, for every pixel of an instance, its
direction towards the instance's centre, quantised into 8 directions x 4 distance bins (32
channels; survey Table 7). Direction pooling (``seglab.heads.masklab``) later reads, at each pixel
of a box crop, the channel of the bin that pixel occupies relative to the crop's centre, so the
same binning (``direction_bins``) labels the targets and builds the crop's index map.

Our choices where the paper leaves the definition open (declared in ``seglab.models.instance.masklab``):
- the centre is the centre of the instance's box (the crop's centre is the box's centre);
- offsets are measured in half box sides (dx / (w / 2), dy / (h / 2)), the units of a square crop,
  so a pixel and its crop position fall in the same bin whatever the box's aspect ratio;
- direction bin k is centred on 45k degrees, covering [45k - 22.5, 45k + 22.5), 0 = +x (right),
  turning towards +y (down): the axes and diagonals, where crop pixels line up, are bin centres;
- distance bin d covers normalised radii [d / 4, (d + 1) / 4), the last bin open: 1 is the ellipse
  inscribed in the box;
- channel = direction bin x 4 + distance bin.
Pixels covered by no instance, by two instances or by a crowd region carry no direction label;
pixels where instances of different classes overlap, and crowd regions, carry no semantic label.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NUM_DIRECTIONS = 8  # sec. 3.1, survey Table 7: 8 directions
NUM_DISTANCES = 4  # ... x 4 distance bins
IGNORE = 255  # seglab's ignore label (PixelCrossEntropy)


def direction_bins(dx: Tensor, dy: Tensor, *, num_directions: int = NUM_DIRECTIONS,
                   num_distances: int = NUM_DISTANCES) -> Tensor:
    """The (direction, distance) bin of offsets from a centre, as one channel index.

    Args:
        dx, dy: [...] float offsets from the centre in half box sides (x right, y down).
        num_directions, num_distances: 8 and 4 in the paper.

    Returns:
        [...] int64 in [0, num_directions * num_distances): direction bin * num_distances + distance bin.
    """
    width = 2 * math.pi / num_directions
    angle = torch.remainder(torch.atan2(dy, dx) + width / 2, 2 * math.pi)  # bins centred on the directions
    direction = (angle / width).floor().long().clamp(0, num_directions - 1)
    distance = (torch.hypot(dx, dy) * num_distances).floor().long().clamp(0, num_distances - 1)
    return direction * num_distances + distance


def crop_direction_index(size: int, *, num_directions: int = NUM_DIRECTIONS,
                         num_distances: int = NUM_DISTANCES) -> Tensor:
    """The bin of every pixel of a ``size`` x ``size`` box crop relative to the crop's centre.

    Crop pixel (i, j) samples the box at ((j + 0.5) / size, (i + 0.5) / size) of its width and
    height (RoIAlign with aligned=True), i.e. at a normalised offset 2 (j + 0.5) / size - 1.

    Returns:
        [size, size] int64 channel indices (see ``direction_bins``).
    """
    offsets = (2 * torch.arange(size) + 1 - size).float() / size  # exact 0 at the centre of odd crops
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    return direction_bins(dx, dy, num_directions=num_directions, num_distances=num_distances)


def semantic_targets(masks: Tensor, labels: Tensor, *, crowd: Tensor | None = None) -> Tensor:
    """The semantic label map of one image: background 0, each instance's class on its pixels.

    Args:
        masks: [G, H, W] binary instance masks.
        labels: [G] int64 classes in 1..C.
        crowd: optional [H, W] crowd region (ignored).

    Returns:
        [H, W] int64: 0, a class, or 255 (instances of different classes overlap, or crowd).
    """
    covered = masks.bool()
    target = torch.zeros(masks.shape[-2:], dtype=torch.int64, device=masks.device)
    if covered.shape[0]:
        per_class = labels.to(masks.device)[:, None, None]
        highest = torch.where(covered, per_class, torch.zeros_like(per_class)).amax(0)
        lowest = torch.where(covered, per_class, torch.full_like(per_class, IGNORE)).amin(0)
        target = torch.where(covered.any(0) & (highest != lowest), torch.full_like(target, IGNORE), highest)
    if crowd is not None:
        target[crowd.bool()] = IGNORE
    return target


def direction_targets(masks: Tensor, boxes_xyxy: Tensor, *, crowd: Tensor | None = None,
                      num_directions: int = NUM_DIRECTIONS, num_distances: int = NUM_DISTANCES) -> Tensor:
    """Per pixel of an instance, the bin of its offset from the centre of the instance's box.

    Pixel (y, x) is the point (x + 0.5, y + 0.5) (pixel edges as ``boxes_xyxy``).

    Args:
        masks: [G, H, W] binary instance masks.
        boxes_xyxy: [G, 4] their boxes in pixels.
        crowd: optional [H, W] crowd region (ignored).

    Returns:
        [H, W] int64 in [0, num_directions * num_distances), 255 where no single instance covers the pixel.
    """
    height, width = masks.shape[-2:]
    covered = masks.bool()
    target = torch.full((height, width), IGNORE, dtype=torch.int64, device=masks.device)
    if covered.shape[0] == 0:
        return target
    owner = covered.to(torch.uint8).argmax(0)  # the instance of each pixel (meaningful where exactly one)
    boxes = boxes_xyxy.to(device=masks.device, dtype=torch.float32)
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    half_w = ((boxes[:, 2] - boxes[:, 0]) / 2).clamp_min(0.5)
    half_h = ((boxes[:, 3] - boxes[:, 1]) / 2).clamp_min(0.5)
    ys = torch.arange(height, dtype=torch.float32, device=masks.device)[:, None] + 0.5
    xs = torch.arange(width, dtype=torch.float32, device=masks.device)[None, :] + 0.5
    bins = direction_bins((xs - centre_x[owner]) / half_w[owner], (ys - centre_y[owner]) / half_h[owner],
                          num_directions=num_directions, num_distances=num_distances)
    single = covered.sum(0) == 1
    if crowd is not None:
        single &= ~crowd.bool()
    return torch.where(single, bins, target)
