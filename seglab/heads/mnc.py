"""MNC's stage heads: mask estimation on warped RoI features, and categorisation of the masked features.

Dai, He, Sun, "Instance-aware Semantic Segmentation via Multi-task Network Cascades" (arXiv 1512.04412),
sec. 3.2-3.3 and fig. 2, with the layer sizes of the authors' release (daijifeng001/MNC
``models/VGG16/mnc_5stage/train.prototxt``):
- stage 2, mask estimation: the 14 x 14 warped features -> fc 256 + ReLU -> fc 21 x 21 = 441 logits
  (``fc6_maskest``, ``mask_pred``; the paper's text says m = 28, the release 21), class-agnostic;
- stage 3, categorisation: a box path (2x2 max-pool of the warped features -> fc6 / fc7 4096) and a mask
  path ("mask pooling": the warped features times the predicted mask resized to 14 x 14 -> 2x2 max-pool ->
  fc6 / fc7 4096), concatenated (8192) -> a box-level classifier, a mask-level classifier (each C + 1)
  and class-specific box deltas 4 (C + 1).
Initialisation as the release: N(0, 0.001) for the mask layers and box deltas, N(0, 0.01) for the
classifiers, zero biases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seglab.heads.roi_box import gaussian_init

WARP_SIZE = 14  # roi_warping pooled_w / pooled_h
MASK_SIZE = 21  # mask_pred 441 = 21 x 21


class MaskEstimationHead(nn.Module):
    """Warped [R, C, 14, 14] -> fc 256 + ReLU -> fc m^2 -> class-agnostic mask logits [R, m, m].

    Args:
        in_channels: C (512 for VGG16's conv5_3).
        warp_size: side of the warped features (14); hidden: width of the fc (256); mask_size: m (21).
    """

    def __init__(self, in_channels: int, *, warp_size: int = WARP_SIZE, hidden: int = 256,
                 mask_size: int = MASK_SIZE) -> None:
        super().__init__()
        self.mask_size = mask_size
        self.fc = gaussian_init(nn.Linear(in_channels * warp_size * warp_size, hidden), 0.001)
        self.mask = gaussian_init(nn.Linear(hidden, mask_size * mask_size), 0.001)

    def forward(self, warped: Tensor) -> Tensor:
        return self.mask(F.relu(self.fc(warped.flatten(1)))).view(-1, self.mask_size, self.mask_size)


class _FC67(nn.Sequential):
    """2x2 max-pool, then fc6 and fc7 with ReLU (Fast R-CNN's VGG16 head on a 7 x 7 grid)."""

    def __init__(self, in_channels: int, *, pooled: int, hidden: int) -> None:
        super().__init__(nn.MaxPool2d(2, 2), nn.Flatten(1), nn.Linear(in_channels * pooled * pooled, hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, hidden), nn.ReLU(inplace=True))


class MaskedCategorizationHead(nn.Module):
    """Box features and mask-pooled features -> (box-level logits, mask-level logits, class-specific deltas).

    Args:
        in_channels: C of the warped features.
        num_classes: C + 1, background included.
        warp_size: side of the warped features (14; max-pooled to 7).
        hidden: width of fc6 / fc7 on each path (4096).

    Forward: warped [R, C, 14, 14], mask probabilities [R, m, m] -> ([R, C + 1], [R, C + 1], [R, 4 (C + 1)]).
    """

    def __init__(self, in_channels: int, *, num_classes: int, warp_size: int = WARP_SIZE, hidden: int = 4096) -> None:
        super().__init__()
        self.warp_size = warp_size
        self.box_path = _FC67(in_channels, pooled=warp_size // 2, hidden=hidden)
        self.mask_path = _FC67(in_channels, pooled=warp_size // 2, hidden=hidden)
        self.cls_score = gaussian_init(nn.Linear(2 * hidden, num_classes), 0.01)  # box-level
        self.seg_cls_score = gaussian_init(nn.Linear(2 * hidden, num_classes), 0.01)  # mask-level
        self.bbox_pred = gaussian_init(nn.Linear(2 * hidden, 4 * num_classes), 0.001)

    def forward(self, warped: Tensor, masks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        size = (self.warp_size, self.warp_size)
        resized = F.interpolate(masks[:, None], size=size, mode="bilinear", align_corners=False)  # MaskResize
        # join_box_mask, in the release's order: mask path, then box path
        joined = torch.cat([self.mask_path(warped * resized), self.box_path(warped)], dim=1)
        return self.cls_score(joined), self.seg_cls_score(joined), self.bbox_pred(joined)

