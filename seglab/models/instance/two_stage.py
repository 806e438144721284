"""The two-stage instance segmenter: backbone -> neck -> proposer -> RoI box head -> RoI mask head.

The instance counterpart of ``SemanticSegmenter``: Mask R-CNN is this class as built by its builder,
and later two-stage models (PANet, MaskLab, ...) subclass it only where their data flow differs.

Contract (``seglab.structures``): ``model(images, targets)`` returns the named loss terms, already
weighted (L = L_rpn + L_cls + L_box + L_mask, Mask R-CNN sec. 3); ``model(images)`` returns one
``InstancePrediction`` per image (soft masks at the image size, boxes in its pixels, labels 1..K,
scores best first). Images are a list of [3, H, W] float tensors in [0, 1] of any sizes, or a
[N, 3, H, W] batch; targets one ``InstanceTarget`` (or dataset dict) per image, possibly empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import MultiScaleRoIAlign

from seglab.boxes import BoxCoder, mask_targets
from seglab.heads.roi_box import BOX_WEIGHTS, RoIBoxHead, SampledRoIs, detect_boxes, sample_rois
from seglab.heads.roi_mask import RoIMaskHead, mask_probabilities
from seglab.heads.rpn import RegionProposalNetwork
from seglab.layers.normalize import Normalize
from seglab.losses.detection import fast_rcnn_losses, mask_rcnn_mask_loss
from seglab.models.instance.inputs import (
    ImageBatch,
    draw_min_size,
    pasted_predictions,
    prepare_inputs,
    scale_boxes,
    size_choices,
)
from seglab.models.instance.proposals import ImageProposals
from seglab.structures import InstancePrediction, InstanceTarget


@dataclass
class RoISettings:
    """Second-stage settings (Mask R-CNN sec. 3.1 and Detectron's defaults).

    Training: ``batch_per_image`` RoIs with ``positive_fraction`` foreground at IoU >= ``fg_iou``;
    box smooth-L1 ``box_loss_beta`` (1, Fast R-CNN eq. 3). Inference: ``score_threshold``,
    per-class ``nms_threshold``, ``max_detections`` per image, masks binarised at 0.5 by users.
    """

    batch_per_image: int = 512
    positive_fraction: float = 0.25
    fg_iou: float = 0.5
    bg_iou: float = 0.5
    box_loss_beta: float = 1.0
    score_threshold: float = 0.05
    nms_threshold: float = 0.5
    max_detections: int = 100


class TwoStageSegmenter(nn.Module):
    """Detect, then segment each detection (Mask R-CNN's figure 1).

    Args:
        backbone: images -> {"c2".."c5"}.
        neck: backbone features -> {"p2".."p6"}.
        proposer: features -> Proposals (+ its losses in training), e.g. RegionProposalNetwork.
        box_pooler, mask_pooler: RoIAlign on the feature levels (7x7 and 14x14).
        box_head: pooled [R, C, 7, 7] -> (class logits, deltas); mask_head: [R, C, 14, 14] -> mask logits.
        num_classes: K + 1, background (label 0) included.
        min_size, max_size: shorter side the images are resized to (a tuple: drawn at random per image
            in training, the last one at test) and the cap of the longer side; None: native size.
        roi: second-stage settings.
    """

    def __init__(
        self, *, backbone: nn.Module, neck: nn.Module, proposer: RegionProposalNetwork, box_pooler: MultiScaleRoIAlign,
        box_head: RoIBoxHead, mask_pooler: MultiScaleRoIAlign, mask_head: RoIMaskHead, num_classes: int,
        min_size: int | Sequence[int] | None = 800, max_size: int | None = 1333, size_divisible: int = 32,
        roi: RoISettings | None = None,
    ) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.backbone, self.neck, self.proposer = backbone, neck, proposer
        self.box_pooler, self.box_head = box_pooler, box_head
        self.mask_pooler, self.mask_head = mask_pooler, mask_head
        self.num_classes = num_classes
        self.min_size = size_choices(min_size)
        self.max_size, self.size_divisible = max_size, size_divisible
        self.roi = roi or RoISettings()
        self.box_coder = BoxCoder(weights=BOX_WEIGHTS)

    def forward(self, images: Any, targets: Any = None) -> list[InstancePrediction] | dict[str, Tensor]:
        batch, targets = self.prepare(images, targets)
        features = self.dense_features(batch.tensor)
        proposals, losses = self.proposer(features, batch.image_sizes, batch.padded_size, targets)
        if self.training:
            return losses | self.roi_losses(features, proposals.boxes, batch, targets)
        return self.segment(features, self.detect(features, proposals.boxes, batch), batch)

    def dense_features(self, images: Tensor) -> dict[str, Tensor]:
        """The padded batch -> the levels the RPN and the RoI heads read (backbone, then neck)."""
        return self.neck(self.backbone(images))

    @torch.no_grad()
    def proposals(self, images: Any, *, top_k: int | None = None) -> list[ImageProposals]:
        """The RPN's boxes for each image (the best ``top_k``), in its own pixels (the proposal protocol,
        ``seglab.models.instance.proposals``); call in eval mode (the test-time counts)."""
        batch, _ = self.prepare(images, None)
        proposals, _ = self.proposer(self.dense_features(batch.tensor), batch.image_sizes, batch.padded_size)
        return [ImageProposals(scale_boxes(boxes[:top_k], size, original), scores[:top_k])
                for boxes, scores, size, original in zip(proposals.boxes, proposals.scores, batch.image_sizes,
                                                         batch.original_sizes)]

    def roi_losses(self, features: dict[str, Tensor], proposals: list[Tensor], batch: ImageBatch,
                   targets: Sequence[InstanceTarget]) -> dict[str, Tensor]:
        """The second stage's terms: sample RoIs among the proposals, then L_cls + L_box + L_mask."""
        rois = sample_rois(proposals, targets, coder=self.box_coder, batch_per_image=self.roi.batch_per_image,
                           positive_fraction=self.roi.positive_fraction, fg_iou=self.roi.fg_iou, bg_iou=self.roi.bg_iou)
        return self.box_losses(features, rois, batch) | self.mask_losses(features, rois, batch, targets)

    def cost_forward(self, images: Tensor) -> None:
        """The computation of one inference with a fixed load, for counting FLOPs (also on the meta device).

        The dense part runs as in ``forward``; the heads run on as many RoIs as the model keeps at
        most (the RPN's test-time post-NMS count for the box head, ``max_detections`` for the mask
        head), since their real count depends on the data. RoIAlign and NMS are not counted.
        """
        batch, _ = self.prepare(images, None)
        self.cost_heads(self.neck(self.backbone(batch.tensor)), batch)

    def cost_heads(self, features: dict[str, Tensor], batch: ImageBatch) -> None:
        """The RPN head and the RoI heads at their most RoIs (see ``cost_forward``)."""
        self.proposer.head([features[level] for level in self.proposer.levels])
        channels = features[self.proposer.levels[0]].shape[1]
        rois = self.proposer.post_nms_top_n[1] * len(batch.image_sizes)
        self.box_head(batch.tensor.new_empty(rois, channels, *self.box_pooler.output_size))
        self.mask_head(batch.tensor.new_empty(self.roi.max_detections * len(batch.image_sizes), channels,
                                              *self.mask_pooler.output_size))

    def prepare(self, images: Any, targets: Any) -> tuple[ImageBatch, list[InstanceTarget] | None]:
        """Check inputs, then normalise, resize and pad; targets follow the resize."""
        return prepare_inputs(images, targets, model=type(self).__name__, training=self.training,
                              num_classes=self.num_classes, normalize=self.normalize, min_size=self._min_size,
                              max_size=self.max_size, size_divisible=self.size_divisible)

    def _min_size(self) -> int | None:
        return draw_min_size(self.min_size, training=self.training)

    def box_losses(self, features: dict[str, Tensor], rois: SampledRoIs, batch: ImageBatch) -> dict[str, Tensor]:
        """L_cls + L_box on the sampled RoIs."""
        class_logits, deltas = self.box_head(self.box_pooler(features, rois.boxes, batch.image_sizes))
        return fast_rcnn_losses(class_logits, deltas, torch.cat(rois.labels), torch.cat(rois.box_targets),
                                beta=self.roi.box_loss_beta)

    def mask_losses(self, features: dict[str, Tensor], rois: SampledRoIs, batch: ImageBatch,
                    targets: Sequence[InstanceTarget]) -> dict[str, Tensor]:
        """L_mask: BCE of the ground-truth class's 28x28 mask on the positive RoIs."""
        positive = [labels > 0 for labels in rois.labels]
        boxes = [b[p] for b, p in zip(rois.boxes, positive)]
        mask_logits = self.mask_head(self.mask_pooler(features, boxes, batch.image_sizes))
        size = mask_logits.shape[-1]
        crops = [mask_targets(t.masks, b, m[p], size) for t, b, m, p in zip(targets, boxes, rois.matched, positive)]
        labels = torch.cat([labels[p] for labels, p in zip(rois.labels, positive)])
        return {"loss_mask": mask_rcnn_mask_loss(mask_logits, labels, torch.cat(crops))}

    def detect(self, features: dict[str, Tensor], proposals: list[Tensor],
               batch: ImageBatch) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Classify and refine the proposals: per image (boxes, scores, labels) in resized pixels."""
        class_logits, deltas = self.box_head(self.box_pooler(features, proposals, batch.image_sizes))
        return detect_boxes(class_logits, deltas, proposals, batch.image_sizes, coder=self.box_coder,
                            score_threshold=self.roi.score_threshold, nms_threshold=self.roi.nms_threshold,
                            max_detections=self.roi.max_detections)

    def segment(self, features: dict[str, Tensor], detections: list[tuple[Tensor, Tensor, Tensor]],
                batch: ImageBatch) -> list[InstancePrediction]:
        """Masks of the detected boxes, mapped back to the input images."""
        boxes = [d[0] for d in detections]
        mask_logits = self.mask_head(self.mask_pooler(features, boxes, batch.image_sizes))
        probs = mask_probabilities(mask_logits, torch.cat([d[2] for d in detections])).split([len(b) for b in boxes])
        return pasted_predictions(detections, probs, batch)
