"""MNC: multi-task network cascades (boxes -> masks -> categories), with differentiable RoI warping.

Dai, He, Sun, "Instance-aware Semantic Segmentation via Multi-task Network Cascades" (arXiv 1512.04412),
fig. 2 and sec. 3: shared VGG16 conv5_3 (stride 16) -> stage 1, an RPN (boxes) -> stage 2, mask estimation
on RoI-warped features (``seglab.layers.roi_warp``, ``seglab.heads.mnc.MaskEstimationHead``) -> stage 3,
categorisation of the box features and of the features masked by stage 2's mask
(``MaskedCategorizationHead``). Every stage's loss depends on the earlier stages' outputs (eq. 10); the
warping is differentiable in the box coordinates, so the mask and class losses reach the RPN's box
regression through its boxes (sec. 3.2, eq. 7-9). The 5-stage cascade (sec. 3.4, the paper's main model)
regresses the boxes in stage 3 and runs stages 2 and 3 again on them (stages 4 and 5, shared weights).

Settings of the authors' release (daijifeng001/MNC ``models/VGG16/mnc_5stage/train.prototxt``,
``lib/pylayer/{proposal_target_layer, mask_layer, stage_bridge_layer}.py``):
- RPN on conv5_3: 3x3 conv 512, 9 anchors (scales 8, 16, 32 x stride 16, ratios 0.5, 1, 2);
- warping to 14 x 14; masks 21 x 21 (sigmoid cross-entropy, loss weight 2, positive RoIs); box-level and
  mask-level softmax classifiers and smooth-L1 box regression on the concatenated fc7 features, weight 1;
- stage bridge: stage 3's boxes regressed by the deltas of the best mask-level class, clipped to the
  image, differentiable in both the boxes and the deltas; the new boxes are matched to the ground truth
  again (IoU >= 0.5) for stages 4 and 5.

Deviations: the mask-level label of an RoI (the release's ``mask_layer``) is its box label where its
predicted mask (>= 0.5) has a mask IoU >= 0.5 with the matched ground truth, else background; 128 RoIs
per image with 25 % positives at IoU >= 0.5 (Fast R-CNN's sampling; the release's proposal target layer
is not reproduced in every detail); test-time results are stage 5's alone (the release also merges
stage 3's) with box NMS 0.3 on the mask-level scores, no mask voting; the RPN's objectness is one
logistic per anchor (seglab's RPN; the release has a two-way softmax); ``backbone=`` also takes a
ResNet at output stride 16 (the paper's COCO entry uses ResNet-101), or 8 (``output_stride=8``, ours, for
small images: ``mnc_synthetic_cpu``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_iou, clip_boxes_to_image

from seglab.backbones import build_backbone
from seglab.boxes import BoxCoder, match_boxes
from seglab.boxes.roi_masks import binary_mask_targets
from seglab.errors import ConfigError
from seglab.heads.mnc import MASK_SIZE, WARP_SIZE, MaskedCategorizationHead, MaskEstimationHead
from seglab.heads.roi_box import BOX_WEIGHTS, SampledRoIs, detect_boxes, sample_rois
from seglab.heads.rpn import RegionProposalNetwork
from seglab.layers.normalize import Normalize
from seglab.layers.roi_warp import roi_warp
from seglab.losses.detection import fast_rcnn_losses
from seglab.models.instance.inputs import (
    DETECTIONS_EXPORT_NOTE,
    ImageBatch,
    draw_min_size,
    pasted_predictions,
    prepare_inputs,
    size_choices,
)
from seglab.registry import ModelSpec, register_model
from seglab.structures import InstancePrediction, InstanceTarget

STRIDE = 16  # conv5_3 (the paper's; output_stride=8 on a ResNet dilates res4 and res5)
ANCHOR_SIZES = (128, 256, 512)  # scales 8, 16, 32 x stride 16
MIN_SIDE = 1.0  # pixels: the least side of a regressed box (ours: see MNC.bridge)
MASK_LOSS_WEIGHT = 2.0  # loss_mask / loss_mask_ext loss_weight


@dataclass
class CascadeSettings:
    """RoI training and inference settings."""

    stages: int = 5  # 3 or 5 (sec. 3.4)
    rois_per_image: int = 128
    positive_fraction: float = 0.25
    fg_iou: float = 0.5
    mask_weight: float = MASK_LOSS_WEIGHT
    score_threshold: float = 0.05
    nms_threshold: float = 0.3
    max_detections: int = 100


@dataclass
class StageOutputs:
    """One pass of stages 2-3 over a set of boxes (concatenated over images)."""

    mask_logits: Tensor  # [R, m, m]
    class_logits: Tensor  # [R, C + 1] box-level
    seg_class_logits: Tensor  # [R, C + 1] mask-level
    deltas: Tensor  # [R, 4 (C + 1)]


class MNC(nn.Module):
    """conv5_3 -> RPN boxes -> warped masks -> masked categorisation (-> regressed boxes -> again).

    Args:
        backbone: images -> {"c5"} at stride 16.
        proposer: ``RegionProposalNetwork`` on "c5" with ``box_gradients=True``.
        mask_head, category_head: stages 2 and 3.
        num_classes: C + 1, background (label 0) included.
        min_size, max_size: shorter side (a tuple: drawn per image in training, the last at test) and the
            cap of the longer side; None: native size.
        settings: cascade settings.
    """

    def __init__(
        self, *, backbone: nn.Module, proposer: RegionProposalNetwork, mask_head: MaskEstimationHead,
        category_head: MaskedCategorizationHead, num_classes: int, min_size: int | Sequence[int] | None = 600,
        max_size: int | None = 1000, settings: CascadeSettings | None = None,
    ) -> None:
        super().__init__()
        self.normalize, self.backbone, self.proposer = Normalize(), backbone, proposer
        self.mask_head, self.category_head = mask_head, category_head
        self.num_classes = num_classes
        self.min_size, self.max_size = size_choices(min_size), max_size
        self.settings = settings or CascadeSettings()
        if self.settings.stages not in (3, 5):
            raise ValueError(f"MNC: stages is {self.settings.stages}; expected 3 or 5 (sec. 3.4)")
        self.box_coder = BoxCoder(weights=BOX_WEIGHTS)
        self.stride = backbone.feature_specs["c5"].stride  # of the warped features and the RPN

    def forward(self, images: Any, targets: Any = None) -> list[InstancePrediction] | dict[str, Tensor]:
        batch, targets = self.prepare(images, targets)
        features = self.backbone(batch.tensor)
        proposals, losses = self.proposer(features, batch.image_sizes, batch.padded_size, targets)
        if self.training:
            return losses | self.cascade_losses(features["c5"], proposals.boxes, batch, targets)
        return self.detect(features["c5"], proposals.boxes, batch)

    def stage(self, features: Tensor, boxes: list[Tensor]) -> StageOutputs:
        """Stages 2 and 3 on ``boxes`` (per image, image pixels): warp, estimate masks, categorise."""
        warped = roi_warp(features, boxes, output_size=self.category_head.warp_size,
                            spatial_scale=1 / self.stride)
        mask_logits = self.mask_head(warped)
        class_logits, seg_logits, deltas = self.category_head(warped, mask_logits.sigmoid())
        return StageOutputs(mask_logits, class_logits, seg_logits, deltas)

    def bridge(self, boxes: list[Tensor], out: StageOutputs, image_sizes: Sequence[tuple[int, int]]) -> list[Tensor]:
        """Stage 3's boxes regressed by the deltas of their best mask-level foreground class, clipped, each
        side at least MIN_SIDE (a box clipped to nothing would have no box targets: log of a zero width)."""
        best = out.seg_class_logits.detach()[:, 1:].argmax(dim=1) + 1
        deltas = out.deltas.view(len(best), -1, 4)[torch.arange(len(best), device=best.device), best]
        regressed = self.box_coder.decode(deltas, torch.cat(boxes)).split([len(b) for b in boxes])
        return [_at_least(clip_boxes_to_image(b, size), MIN_SIDE) for b, size in zip(regressed, image_sizes)]

    def cascade_losses(self, features: Tensor, proposals: list[Tensor], batch: ImageBatch,
                       targets: Sequence[InstanceTarget]) -> dict[str, Tensor]:
        """Stages 2-3 on RoIs sampled among the (differentiable) proposals; stages 4-5 on their regressed boxes."""
        s = self.settings
        rois = sample_rois(proposals, targets, coder=self.box_coder, batch_per_image=s.rois_per_image,
                           positive_fraction=s.positive_fraction, fg_iou=s.fg_iou, bg_iou=s.fg_iou)
        rois.box_targets = [t.detach() for t in rois.box_targets]  # targets, not a path to the boxes
        out = self.stage(features, rois.boxes)
        losses = self.stage_losses(out, rois, targets, suffix=("", ""))
        if s.stages == 5:
            boxes = self.bridge(rois.boxes, out, batch.image_sizes)
            rematched = self.rematch(boxes, targets)
            losses |= self.stage_losses(self.stage(features, boxes), rematched, targets,
                                        suffix=("_stage4", "_stage5"))
        return losses

    def rematch(self, boxes: list[Tensor], targets: Sequence[InstanceTarget]) -> SampledRoIs:
        """Labels, matched ground truth and box targets of regressed boxes (the stage bridge's targets)."""
        out = SampledRoIs([], [], [], [])
        for image_boxes, target in zip(boxes, targets):
            fixed = image_boxes.detach()
            labels = torch.zeros(len(fixed), dtype=torch.int64, device=fixed.device)
            matched = torch.zeros_like(labels)
            if len(target):
                found = match_boxes(box_iou(target.boxes_xyxy.to(fixed.dtype), fixed), high=self.settings.fg_iou,
                                    low=self.settings.fg_iou)
                matched = found.clamp(min=0)
                labels = torch.where(found >= 0, target.labels[matched], labels)
            reference = target.boxes_xyxy.to(fixed.dtype)[matched] if len(target) else fixed
            out.boxes.append(image_boxes)
            out.labels.append(labels)
            out.matched.append(matched)
            out.box_targets.append(self.box_coder.encode(reference, fixed))
        return out

    def stage_losses(self, out: StageOutputs, rois: SampledRoIs, targets: Sequence[InstanceTarget], *,
                     suffix: tuple[str, str]) -> dict[str, Tensor]:
        """Mask (weight 2, positives), box-level and mask-level classification, and box regression."""
        labels = torch.cat(rois.labels)
        positive = labels > 0
        crops, gt_areas = [], []
        for target, boxes, matched, image_labels in zip(targets, rois.boxes, rois.matched, rois.labels):
            keep = image_labels > 0
            crops.append(binary_mask_targets(target.masks, matched[keep], boxes[keep].detach(), MASK_SIZE)
                         if bool(keep.any()) else boxes.new_zeros(0, MASK_SIZE, MASK_SIZE))
            gt_areas.append(target.masks[matched[keep]].flatten(1).sum(1).to(boxes.dtype) if bool(keep.any())
                            else boxes.new_zeros(0))
        crops, gt_areas = torch.cat(crops), torch.cat(gt_areas)
        mask_logits = out.mask_logits[positive]
        if len(crops):
            loss_mask = F.binary_cross_entropy_with_logits(mask_logits, crops)
        else:
            loss_mask = out.mask_logits.sum() * 0.0
        boxes = torch.cat(rois.boxes).detach()[positive]
        seg_labels = labels.clone()
        seg_labels[positive] = torch.where(
            mask_iou_in_boxes(mask_logits.detach().sigmoid() >= 0.5, crops > 0, boxes, gt_areas) >= 0.5,
            labels[positive], 0)
        box_terms = fast_rcnn_losses(out.class_logits, out.deltas, labels, torch.cat(rois.box_targets))
        mask_suffix, class_suffix = suffix
        terms = {f"loss_mask{mask_suffix}": self.settings.mask_weight * loss_mask,
                 f"loss_cls{class_suffix}": box_terms["loss_cls"],
                 f"loss_seg_cls{class_suffix}": F.cross_entropy(out.seg_class_logits, seg_labels)
                 if len(labels) else out.seg_class_logits.sum() * 0.0,
                 f"loss_box_reg{class_suffix}": box_terms["loss_box_reg"]}
        return terms

    def detect(self, features: Tensor, proposals: list[Tensor], batch: ImageBatch) -> list[InstancePrediction]:
        """The cascade on the test proposals; masks of the last mask stage, scores of the last mask-level
        classifier, box NMS per class."""
        s = self.settings
        boxes = proposals
        out = self.stage(features, boxes)
        if s.stages == 5:
            boxes = self.bridge(boxes, out, batch.image_sizes)
            out = self.stage(features, boxes)
        detections = detect_boxes(out.seg_class_logits, torch.zeros_like(out.deltas), boxes, batch.image_sizes,
                                  coder=self.box_coder, score_threshold=s.score_threshold,
                                  nms_threshold=s.nms_threshold, max_detections=s.max_detections, return_index=True)
        masks = out.mask_logits.sigmoid().split([len(b) for b in boxes])
        return pasted_predictions(detections, [m[d[3]] for m, d in zip(masks, detections)], batch)

    def cost_forward(self, images: Tensor) -> None:
        """One inference's computation for counting FLOPs: backbone, RPN head, and stages 2-3 (twice with 5
        stages) at the RPN's test-time proposal count; warping is not counted."""
        batch, _ = self.prepare(images, None)
        features = self.backbone(batch.tensor)
        self.proposer.head([features[level] for level in self.proposer.levels])
        rois = self.proposer.post_nms_top_n[1] * len(batch.image_sizes) * (2 if self.settings.stages == 5 else 1)
        channels, side = features["c5"].shape[1], self.category_head.warp_size
        warped = features["c5"].new_empty(rois, channels, side, side)
        self.category_head(warped, self.mask_head(warped))

    def prepare(self, images: Any, targets: Any) -> tuple[ImageBatch, list[InstanceTarget] | None]:
        """Check inputs, then normalise, resize and pad to a multiple of 16; targets follow the resize."""
        return prepare_inputs(images, targets, model=type(self).__name__, training=self.training,
                              num_classes=self.num_classes, normalize=self.normalize,
                              min_size=lambda: draw_min_size(self.min_size, training=self.training),
                              max_size=self.max_size, size_divisible=16)


def _at_least(boxes: Tensor, side: float) -> Tensor:
    """Boxes [R, 4] XYXY with x2 >= x1 + side and y2 >= y1 + side (differentiable, as the cascade needs)."""
    x1, y1, x2, y2 = boxes.unbind(1)
    return torch.stack([x1, y1, torch.maximum(x2, x1 + side), torch.maximum(y2, y1 + side)], dim=1)


def mask_iou_in_boxes(predicted: Tensor, crops: Tensor, boxes: Tensor, gt_areas: Tensor) -> Tensor:
    """Mask IoU of m x m box-local masks with their ground truth: [R, m, m] bool, [R, m, m] bool, [R, 4], [R] -> [R].

    The prediction lives inside its box; the ground truth's part outside the box counts in the union
    through its full area ``gt_areas`` (pixels).
    """
    box_area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    inter = (predicted & crops).flatten(1).float().mean(1) * box_area
    union = predicted.flatten(1).float().mean(1) * box_area + gt_areas - inter
    return inter / union.clamp(min=1e-6)


def mnc(
    *, num_classes: int, backbone: str = "vgg16", stages: int = 5, fc_hidden: int = 4096, mask_hidden: int = 256,
    min_size: int | Sequence[int] | None = 600, max_size: int | None = 1000, pretrained_backbone: str | None = None,
    anchor_sizes: Sequence[int] = ANCHOR_SIZES, rpn_channels: int = 512,
    rpn_pre_nms_top_n: tuple[int, int] = (12000, 6000), rpn_post_nms_top_n: tuple[int, int] = (2000, 300),
    rois_per_image: int = 128, score_threshold: float = 0.05, max_detections: int = 100, output_stride: int = STRIDE,
    box_gradient_scale: float = 1.0,
) -> MNC:
    """Build MNC on VGG16's conv5_3 (or a ResNet's res5 at stride 16).

    Args:
        num_classes: C + 1, background included (21 for VOC).
        backbone: "vgg16" (the paper's), "vgg16_bn", or a ResNet ("resnet101" for COCO; "resnet18" for CPU).
        stages: 5 (sec. 3.4, the paper's main model) or 3.
        fc_hidden: width of fc6 / fc7 on each stage-3 path (4096); mask_hidden: stage 2's fc (256).
        min_size, max_size: shorter side 600, longer at most 1000 (Fast R-CNN's scale); None: native.
        pretrained_backbone: a local torchvision ImageNet checkpoint of the backbone.
        anchor_sizes: anchor sides on conv5_3 (128, 256, 512), each at ratios 0.5, 1, 2.
        rpn_channels: the RPN's 3x3 conv (512).
        rpn_pre_nms_top_n, rpn_post_nms_top_n: (train, test) boxes before / after the RPN's NMS (Faster
            R-CNN's end-to-end settings).
        rois_per_image: RoIs sampled per image in training (128).
        score_threshold, max_detections: inference (0.05, 100).
        output_stride: 16 (conv5_3, the paper's) or 8 (a ResNet with res4 dilated too: small images, see
            mnc_synthetic_cpu).
        box_gradient_scale: factor on the gradient the cascade's losses send through the RoI boxes into the
            RPN's regression (1, the paper's; 0 detaches the boxes).
    """
    if output_stride not in (16, 8):
        raise ConfigError(f"mnc: output_stride is {output_stride}; expected 16 (conv5_3, the paper's) or 8")
    encoder = build_backbone(backbone, output_stride=output_stride, pretrained=pretrained_backbone)
    channels = encoder.feature_specs["c5"].channels
    proposer = RegionProposalNetwork(
        in_channels=channels, levels=("c5",), anchor_sizes=[tuple(anchor_sizes)], anchor_ratios=[(0.5, 1.0, 2.0)],
        pre_nms_top_n=rpn_pre_nms_top_n, post_nms_top_n=rpn_post_nms_top_n, head_channels=rpn_channels,
        box_gradients=box_gradient_scale != 0, box_gradient_scale=box_gradient_scale,
    )
    return MNC(
        backbone=encoder, proposer=proposer,
        mask_head=MaskEstimationHead(channels, warp_size=WARP_SIZE, hidden=mask_hidden, mask_size=MASK_SIZE),
        category_head=MaskedCategorizationHead(channels, num_classes=num_classes, warp_size=WARP_SIZE,
                                               hidden=fc_hidden),
        num_classes=num_classes, min_size=min_size, max_size=max_size,
        settings=CascadeSettings(stages=stages, rois_per_image=rois_per_image, score_threshold=score_threshold,
                                 max_detections=max_detections),
    )


register_model(
    ModelSpec(
        task="instance", paper="Instance-aware Semantic Segmentation via Multi-task Network Cascades",
        arxiv="1512.04412", year=2016, survey_row="MNC", exportable=False, input_multiple=STRIDE,
        loss_terms=("loss_rpn_objectness", "loss_rpn_box", "loss_mask", "loss_cls", "loss_seg_cls", "loss_box_reg",
                    "loss_mask_stage4", "loss_cls_stage5", "loss_seg_cls_stage5", "loss_box_reg_stage5"),
        export_note=DETECTIONS_EXPORT_NOTE,
        test_kwargs={"backbone": "resnet18", "fc_hidden": 32, "mask_hidden": 16, "rpn_channels": 32,
                     "min_size": None, "anchor_sizes": (16, 32, 64), "rpn_pre_nms_top_n": (200, 100),
                     "rpn_post_nms_top_n": (100, 50), "rois_per_image": 32},
        # the release's layer shapes summed (tests/models/test_mnc.py), RPN with one logistic per anchor
        reference_params=283_025_316, reference_kwargs={"num_classes": 21},
    ),
    name="mnc_vgg16",
)(mnc)
