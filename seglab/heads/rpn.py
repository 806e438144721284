"""Region Proposal Network: objectness and box deltas for every anchor, then the best boxes after NMS.

Ren, He, Girshick, Sun, "Faster R-CNN" (arXiv 1506.01497), sec. 3.1: a 3x3 conv slides over the
features, and two sibling 1x1 convs score A anchors per position ("object or not", logistic as in
the paper's footnote) and regress their 4 deltas. With FPN (arXiv 1612.03144, sec. 4.1) one head
is shared by P2..P6, one anchor size per level. Training (sec. 3.1.2-3.1.3): anchors with IoU >=
0.7 (or the best anchor of each object) are positive, < 0.3 negative, 256 per image sampled with up
to half positive. Inference: per level the top-k anchors by objectness, decoded, clipped, tiny
boxes dropped, NMS at 0.7 within each level, and the top post-NMS boxes per image (Detectron's
FPN settings: 2000 / 1000 before NMS, train / test, as torchvision).

Crowd regions: anchors that would be negatives but lie mostly (> 0.7) inside a crowd region are
ignored, as Detectron does (``TRAIN.CROWD_FILTER_THRESH``), so the RPN is not taught that crowds of
people are background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes

from seglab.boxes import BETWEEN, AnchorGenerator, BoxCoder, ignore_crowd_negatives, match_boxes, sample_balanced
from seglab.losses.detection import rpn_losses
from seglab.structures import InstanceTarget


@dataclass
class Proposals:
    """Boxes a proposer hands to the second stage, per image (in pixels of the resized image).

    The protocol every proposer follows (RPN here; DeepMask and SharpMask return the same), so any
    second stage (Fast R-CNN heads, SDS, MultiPath) takes any of them.
    """

    boxes: list[Tensor]  # per image [P, 4] XYXY
    scores: list[Tensor]  # per image [P] objectness probability, sorted high to low


class RPNHead(nn.Module):
    """3x3 conv + ReLU shared by every level, then 1x1 convs to A objectness logits and 4A deltas.

    Args:
        in_channels: channels of each feature level (256 with FPN).
        num_anchors: A, anchors per position (3 ratios x 1 size with FPN).
        channels: width of the 3x3 conv; default ``in_channels`` (FPN), 512 on one ResNet level
            (Faster R-CNN sec. 3.1 on VGG16, kept on C4 by R-FCN, FCIS and MNC).

    Forward: list of [N, C, H_l, W_l] -> (objectness [N, sum_l H_l W_l A], deltas [N, sum_l H_l W_l A, 4]),
    flattened level by level, then row, column and anchor (the order of ``AnchorGenerator``).
    """

    def __init__(self, in_channels: int, num_anchors: int, *, channels: int | None = None) -> None:
        super().__init__()
        channels = in_channels if channels is None else channels
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.objectness = nn.Conv2d(channels, num_anchors, 1)
        self.deltas = nn.Conv2d(channels, num_anchors * 4, 1)
        for conv in (self.conv, self.objectness, self.deltas):  # sec. 3.1.3: N(0, 0.01), zero bias
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        objectness, deltas = [], []
        for feature in features:
            hidden = self.relu(self.conv(feature))
            n = feature.shape[0]
            objectness.append(self.objectness(hidden).permute(0, 2, 3, 1).reshape(n, -1))
            d = self.deltas(hidden)
            deltas.append(d.view(n, -1, 4, *d.shape[-2:]).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))
        return torch.cat(objectness, dim=1), torch.cat(deltas, dim=1)


class RegionProposalNetwork(nn.Module):
    """Anchors + RPNHead + proposal selection (+ the RPN losses in training).

    Args:
        in_channels: channels of the feature levels.
        levels: feature keys the RPN runs on ("p2".."p6").
        anchor_sizes, anchor_ratios: per level (see ``seglab.boxes.AnchorGenerator``).
        fg_iou, bg_iou: anchor matching thresholds (0.7 / 0.3).
        batch_per_image, positive_fraction: anchor sampling (256, 0.5).
        pre_nms_top_n, post_nms_top_n: (train, test) boxes kept per level before NMS / per image after.
        nms_threshold: IoU of the per-level NMS (0.7).
        box_loss_beta: smooth-L1 beta of the box term (1/9, Detectron's RPN).
        crowd_threshold: covered fraction above which an anchor inside a crowd region is ignored.
        head_channels: width of the head's 3x3 conv (default ``in_channels``).
        box_gradients: in training, return proposal boxes that carry the gradient of the predicted
            deltas (MNC's cascade, sec. 3.2: later stages' losses reach the RPN's regression through
            the boxes); NMS and top-k still choose them without a gradient. Default: detached.
        box_gradient_scale: factor on that gradient (1: as the loss gives it).

    Forward: ``(features, image_sizes, padded_size, targets)`` with image_sizes the (h, w) of each
    resized image inside the padded batch -> (Proposals, losses); losses only in training.
    """

    def __init__(
        self, *, in_channels: int, levels: Sequence[str], anchor_sizes: Sequence[Sequence[float]],
        anchor_ratios: Sequence[Sequence[float]], fg_iou: float = 0.7, bg_iou: float = 0.3,
        batch_per_image: int = 256, positive_fraction: float = 0.5, pre_nms_top_n: tuple[int, int] = (2000, 1000),
        post_nms_top_n: tuple[int, int] = (2000, 1000), nms_threshold: float = 0.7, min_box_size: float = 1e-3,
        box_loss_beta: float = 1.0 / 9, crowd_threshold: float = 0.7, head_channels: int | None = None,
        box_gradients: bool = False, box_gradient_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.levels = tuple(levels)
        self.anchors = AnchorGenerator(sizes=anchor_sizes, ratios=anchor_ratios)
        if len(set(self.anchors.num_anchors)) != 1:
            raise ValueError("RegionProposalNetwork shares one head over levels: give every level as many anchors")
        self.head = RPNHead(in_channels, self.anchors.num_anchors[0], channels=head_channels)
        self.coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.fg_iou, self.bg_iou = fg_iou, bg_iou
        self.batch_per_image, self.positive_fraction = batch_per_image, positive_fraction
        self.pre_nms_top_n, self.post_nms_top_n = tuple(pre_nms_top_n), tuple(post_nms_top_n)
        self.nms_threshold, self.min_box_size = nms_threshold, min_box_size
        self.box_loss_beta, self.crowd_threshold = box_loss_beta, crowd_threshold
        self.box_gradients, self.box_gradient_scale = box_gradients, box_gradient_scale

    def forward(
        self, features: dict[str, Tensor], image_sizes: Sequence[tuple[int, int]], padded_size: tuple[int, int],
        targets: Sequence[InstanceTarget] | None = None,
    ) -> tuple[Proposals, dict[str, Tensor]]:
        maps = [features[level] for level in self.levels]
        objectness, deltas = self.head(maps)
        grids = [tuple(m.shape[-2:]) for m in maps]
        anchors = self.anchors(grids, padded_size, device=maps[0].device, dtype=maps[0].dtype)
        per_level = [h * w * a for (h, w), a in zip(grids, self.anchors.num_anchors)]
        boxes = self.coder.decode(deltas.detach().reshape(-1, 4), anchors.repeat(len(maps[0]), 1))
        proposals, kept = self.select(boxes.view(len(image_sizes), -1, 4), objectness.detach(), per_level,
                                      image_sizes)
        if not self.training:
            return proposals, {}
        if targets is None:
            raise ValueError("RegionProposalNetwork needs targets in training mode")
        if self.box_gradients:  # the same boxes, decoded again from the deltas that keep their graph
            proposals.boxes = [_scale_gradient(clip_boxes_to_image(self.coder.decode(d[k], anchors[k]), size),
                                               self.box_gradient_scale)
                               for d, k, size in zip(deltas, kept, image_sizes)]
        return proposals, self.losses(objectness, deltas, anchors, targets)

    def select(self, boxes: Tensor, objectness: Tensor, per_level: list[int],
               image_sizes: Sequence[tuple[int, int]]) -> tuple[Proposals, list[Tensor]]:
        """Top-k per level, clip, drop tiny boxes, NMS per level, top post-NMS per image; and the anchor
        index of each kept box."""
        pre, post = (self.pre_nms_top_n[0], self.post_nms_top_n[0]) if self.training else (
            self.pre_nms_top_n[1], self.post_nms_top_n[1])
        picked, level_ids, offset = [], [], 0
        for level, count in enumerate(per_level):
            top = objectness[:, offset : offset + count].topk(min(pre, count), dim=1).indices + offset
            picked.append(top)
            level_ids.append(torch.full((top.shape[1],), level, dtype=torch.int64, device=top.device))
            offset += count
        index, levels = torch.cat(picked, dim=1), torch.cat(level_ids)
        rows = torch.arange(boxes.shape[0], device=boxes.device)[:, None]
        candidates, scores = boxes[rows, index], objectness[rows, index].sigmoid()
        out_boxes, out_scores, kept = [], [], []
        for image_boxes, image_scores, image_index, size in zip(candidates, scores, index, image_sizes):
            image_boxes = clip_boxes_to_image(image_boxes, size)
            keep = remove_small_boxes(image_boxes, self.min_box_size)
            image_boxes, image_scores, image_levels = image_boxes[keep], image_scores[keep], levels[keep]
            image_index = image_index[keep]
            keep = batched_nms(image_boxes, image_scores, image_levels, self.nms_threshold)[:post]
            out_boxes.append(image_boxes[keep])
            out_scores.append(image_scores[keep])
            kept.append(image_index[keep])
        return Proposals(boxes=out_boxes, scores=out_scores), kept

    def losses(self, objectness: Tensor, deltas: Tensor, anchors: Tensor,
               targets: Sequence[InstanceTarget]) -> dict[str, Tensor]:
        """Sample 256 anchors per image, then the objectness log loss and the smooth-L1 box loss."""
        sampled, labels, box_targets = [], [], []
        for i, target in enumerate(targets):
            anchor_labels, matched_boxes = self.label_anchors(anchors, target)
            positive, negative = sample_balanced(anchor_labels, num_samples=self.batch_per_image,
                                                 positive_fraction=self.positive_fraction)
            chosen = torch.cat([positive, negative])
            sampled.append(chosen + i * anchors.shape[0])
            labels.append(torch.cat([torch.ones_like(positive), torch.zeros_like(negative)]))
            encoded = anchors.new_zeros(chosen.shape[0], 4)
            if positive.numel():
                encoded[: positive.numel()] = self.coder.encode(matched_boxes[positive], anchors[positive])
            box_targets.append(encoded)
        chosen = torch.cat(sampled)
        return rpn_losses(objectness.reshape(-1)[chosen], torch.cat(labels), deltas.reshape(-1, 4)[chosen],
                          torch.cat(box_targets), beta=self.box_loss_beta)

    def label_anchors(self, anchors: Tensor, target: InstanceTarget) -> tuple[Tensor, Tensor]:
        """Per anchor 1 (positive), 0 (negative) or -1 (ignored), and its matched ground-truth box."""
        labels = torch.zeros(anchors.shape[0], dtype=torch.int64, device=anchors.device)
        gt_boxes = target.boxes_xyxy.to(anchors.dtype)
        matched_boxes = anchors.new_zeros(anchors.shape)
        if len(target):
            matched = match_boxes(box_iou(gt_boxes, anchors), high=self.fg_iou, low=self.bg_iou, allow_low_quality=True)
            labels[matched >= 0] = 1
            labels[matched == BETWEEN] = -1
            matched_boxes = gt_boxes[matched.clamp(min=0)]
        ignore_crowd_negatives(labels, anchors, target.crowd, threshold=self.crowd_threshold)
        return labels, matched_boxes


def _scale_gradient(x: Tensor, scale: float) -> Tensor:
    """``x`` in the forward pass; ``scale`` times its gradient in the backward pass."""
    return x if scale == 1.0 else x.detach() + scale * (x - x.detach())
