"""The Fast R-CNN box head on pooled RoI features: two fc layers, class scores and class-specific deltas.

Girshick, "Fast R-CNN" (arXiv 1504.08083): RoI features -> fc6, fc7 -> softmax over K + 1 classes and
per-class box regression (sec. 2); 25 % of the sampled RoIs are foreground, IoU >= 0.5, the rest
background (sec. 2.3); predictors initialised from N(0, 0.01) and N(0, 0.001) (sec. 2.3). With FPN
(arXiv 1612.03144, sec. 4.2) fc6 / fc7 are 1024 wide on 7x7 RoIAlign features, and Mask R-CNN (sec.
3.1) samples 512 RoIs per image. Inference (Mask R-CNN sec. 3.1, Detectron's defaults): softmax
scores, per-class boxes clipped to the image, scores above 0.05, per-class NMS at 0.5, the top 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes

from seglab.boxes import BETWEEN, BoxCoder, ignore_crowd_negatives, match_boxes, sample_balanced
from seglab.structures import InstanceTarget

BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # Detectron's BBOX_REG_WEIGHTS for the RoI head


CLS_STD, BOX_STD = 0.01, 0.001  # Fast R-CNN sec. 2.3: the classifier's and the box regressor's init


def gaussian_init(layer: nn.Module, std: float) -> nn.Module:
    """Weights from N(0, std^2), bias zero (Fast R-CNN's predictors, and the release layers built like them)."""
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)
    return layer

class RoIBoxHead(nn.Module):
    """fc6 -> ReLU -> fc7 -> ReLU, then ``cls_score`` (K + 1) and ``bbox_pred`` (4 (K + 1)).

    Args:
        in_channels: channels of the pooled features.
        pool_size: side of the pooled features (7).
        hidden: width of fc6 and fc7 (1024 with FPN).
        num_classes: K + 1, background included (slot 0).

    Forward: [R, C, 7, 7] -> (class_logits [R, K + 1], deltas [R, 4 (K + 1)]).
    """

    def __init__(self, in_channels: int, *, pool_size: int = 7, hidden: int = 1024, num_classes: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_channels * pool_size * pool_size, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.cls_score = nn.Linear(hidden, num_classes)
        self.bbox_pred = nn.Linear(hidden, num_classes * 4)
        gaussian_init(self.cls_score, CLS_STD)
        gaussian_init(self.bbox_pred, BOX_STD)

    def forward(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        x = F.relu(self.fc7(F.relu(self.fc6(pooled.flatten(1)))))
        return self.cls_score(x), self.bbox_pred(x)


@dataclass
class SampledRoIs:
    """The RoIs a second stage trains on, per image: boxes, labels (0 = background), matched ground truth."""

    boxes: list[Tensor]  # [R, 4]
    labels: list[Tensor]  # [R] int64 in 0..K
    matched: list[Tensor]  # [R] index into the image's ground truth (meaningful where label > 0)
    box_targets: list[Tensor]  # [R, 4] encoded deltas to the matched box (meaningful where label > 0)


def sample_rois(
    proposals: Sequence[Tensor], targets: Sequence[InstanceTarget], *, coder: BoxCoder, batch_per_image: int = 512,
    positive_fraction: float = 0.25, fg_iou: float = 0.5, bg_iou: float = 0.5, crowd_threshold: float = 0.7,
) -> SampledRoIs:
    """Add the ground-truth boxes to the proposals, match at IoU 0.5, sample 512 with 25 % foreground.

    Background RoIs lying mostly inside a crowd region are not sampled (Detectron's crowd filter).
    Sampled RoIs keep the proposals' order (positives and negatives interleaved, as torchvision).
    """
    out = SampledRoIs([], [], [], [])
    for boxes, target in zip(proposals, targets):
        gt_boxes = target.boxes_xyxy.to(boxes.dtype)
        boxes = torch.cat([boxes, gt_boxes])  # the ground truth is always among the candidates
        labels = torch.zeros(boxes.shape[0], dtype=torch.int64, device=boxes.device)
        matched = torch.zeros_like(labels)
        if len(target):
            found = match_boxes(box_iou(gt_boxes, boxes), high=fg_iou, low=bg_iou)
            matched = found.clamp(min=0)
            labels = torch.where(found >= 0, target.labels[matched], labels)
            labels[found == BETWEEN] = -1
        ignore_crowd_negatives(labels, boxes, target.crowd, threshold=crowd_threshold)
        positive, negative = sample_balanced(labels, num_samples=batch_per_image, positive_fraction=positive_fraction)
        keep = torch.cat([positive, negative]).sort().values
        boxes, labels, matched = boxes[keep], labels[keep], matched[keep]
        reference = gt_boxes[matched] if len(target) else boxes
        out.boxes.append(boxes)
        out.labels.append(labels)
        out.matched.append(matched)
        out.box_targets.append(coder.encode(reference, boxes))
    return out


def detect_boxes(
    class_logits: Tensor, deltas: Tensor, proposals: Sequence[Tensor], image_sizes: Sequence[tuple[int, int]], *,
    coder: BoxCoder, score_threshold: float = 0.05, nms_threshold: float = 0.5, max_detections: int = 100,
    return_index: bool = False,
) -> list[tuple[Tensor, ...]]:
    """Per image (boxes [D, 4], scores [D], labels [D] in 1..K), best first.

    Every (RoI, class) pair is a candidate: class-specific boxes clipped to the image, softmax score
    above ``score_threshold``, boxes of side >= 0.01 px, NMS per class, the top ``max_detections``.
    With ``return_index`` each tuple also holds the index [D] of each detection's RoI in its image
    (for models whose masks belong to the RoIs, e.g. MNC).
    """
    num_classes = class_logits.shape[1]
    counts = [p.shape[0] for p in proposals]
    boxes_all = coder.decode(deltas, torch.cat(list(proposals))).view(-1, num_classes, 4).split(counts)
    scores_all = F.softmax(class_logits, dim=-1).split(counts)
    results = []
    for boxes, scores, size in zip(boxes_all, scores_all, image_sizes):
        boxes = clip_boxes_to_image(boxes, size)[:, 1:].reshape(-1, 4)  # drop the background slot
        labels = torch.arange(1, num_classes, device=scores.device).repeat(scores.shape[0])
        rois = torch.arange(scores.shape[0], device=scores.device).repeat_interleave(num_classes - 1)
        scores = scores[:, 1:].reshape(-1)
        keep = torch.nonzero(scores > score_threshold).flatten()
        boxes, scores, labels, rois = boxes[keep], scores[keep], labels[keep], rois[keep]
        keep = remove_small_boxes(boxes, min_size=1e-2)
        boxes, scores, labels, rois = boxes[keep], scores[keep], labels[keep], rois[keep]
        keep = batched_nms(boxes, scores, labels, nms_threshold)[:max_detections]
        found = (boxes[keep], scores[keep], labels[keep])
        results.append((*found, rois[keep]) if return_index else found)
    return results
