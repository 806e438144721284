"""FCIS: fully convolutional instance-aware segmentation with position-sensitive inside/outside maps.

Li, Qi, Dai, Ji, Wei, "Fully Convolutional Instance-aware Semantic Segmentation" (arXiv 1611.07709),
fig. 2: ResNet-101 (res5 dilated, stride 16) -> RPN on res4 -> 2 k^2 (C + 1) inside/outside score maps
and class-agnostic box maps on res5 (``seglab.heads.fcis``) -> per RoI, position-sensitive pooling to
21 x 21 from k x k = 7 x 7 groups (``seglab.layers.position_sensitive``, exact) -> the mask (softmax of
inside/outside of the class) and the class (per-pixel max, averaged, softmax) from the same scores.
Settings of the authors' release (msracver/FCIS ``experiments/fcis/cfgs/resnet_v1_101_coco_fcis_end2end_ohem.yaml``):

- RPN on res4: 3x3 conv 512, anchors of scales 4, 8, 16, 32 (x stride 16) and ratios 0.5, 1, 2 (12 per
  position); 6000 boxes before NMS 0.7, 300 after, in training and test;
- RoIs: the 300 proposals plus the ground truth, up to 25 % foreground (IoU >= 0.5); OHEM keeps the 128
  with the largest loss per image (``seglab.losses.fcis``); losses cls 1, seg 10, box 1; mask targets
  21 x 21, binarised at 0.4 (BINARY_THRESH);
- boxes class-agnostic, deltas normalised by (0.1, 0.1, 0.2, 0.2) (weights 10, 10, 5, 5);
- test: NMS 0.3 per class, 100 detections; shorter side 600, longer at most 1000.

Deviations: test time scores the 300 proposals once and pools each detection's mask at its regressed box;
the release also scores the regressed boxes (a second box iteration) and merges masks by voting over
overlapping detections; the RPN's objectness is one logistic per anchor (seglab's RPN) where the release
has a two-way softmax; without ImageNet weights, batch norm trains (the release freezes it);
``output_stride=8`` (res4 dilated as well, the RPN and the score maps at stride 8) is an option of ours for
small images (``fcis_synthetic_cpu``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seglab.boxes import BoxCoder, mask_targets, rois_with_index
from seglab.errors import ConfigError
from seglab.heads.fcis import GROUP, POOLED, InsideOutsideHead
from seglab.heads.roi_box import BOX_WEIGHTS, detect_boxes, sample_rois
from seglab.heads.rpn import RegionProposalNetwork
from seglab.layers.normalize import Normalize
from seglab.losses.fcis import fcis_losses
from seglab.models.instance.inputs import (
    DETECTIONS_EXPORT_NOTE,
    ImageBatch,
    draw_min_size,
    pasted_predictions,
    prepare_inputs,
    size_choices,
)
from seglab.models.instance.mask_rcnn import resnet_encoder
from seglab.registry import ModelSpec, register_model
from seglab.structures import InstancePrediction, InstanceTarget

STRIDE = 16  # res4, and res5 with dilation 2 (the paper's; output_stride=8 dilates res4 as well)
ANCHOR_SIZES = (64, 128, 256, 512)  # the release's ANCHOR_SCALES 4, 8, 16, 32 x stride 16
MASK_THRESHOLD = 0.4  # BINARY_THRESH of the mask targets


@dataclass
class FCISSettings:
    """RoI training and inference settings (the release's config keys in brackets)."""

    rois_per_image: int = 300  # BATCH_ROIS -1: every proposal (RPN_POST_NMS_TOP_N 300) ...
    positive_fraction: float = 0.25  # ... with FG_FRACTION of them foreground
    hard_per_image: int = 128  # BATCH_ROIS_OHEM
    mask_weight: float = 10.0  # the segmentation loss weight
    score_threshold: float = 0.05
    nms_threshold: float = 0.3  # TEST.NMS
    max_detections: int = 100


class FCIS(nn.Module):
    """Backbone -> RPN on res4 -> inside/outside score maps on res5 -> joint mask and class per RoI.

    Args:
        backbone: images -> {"c4", "c5"} at stride 16.
        proposer: ``RegionProposalNetwork`` on "c4".
        head: ``InsideOutsideHead`` on "c5".
        num_classes: C + 1, background (label 0) included.
        min_size, max_size: shorter side (a tuple: drawn per image in training, the last at test) and
            the cap of the longer side; None: native size.
        settings: RoI settings.
    """

    def __init__(
        self, *, backbone: nn.Module, proposer: RegionProposalNetwork, head: InsideOutsideHead, num_classes: int,
        min_size: int | Sequence[int] | None = 600, max_size: int | None = 1000, settings: FCISSettings | None = None,
    ) -> None:
        super().__init__()
        self.normalize, self.backbone, self.proposer, self.head = Normalize(), backbone, proposer, head
        self.num_classes = num_classes
        self.min_size, self.max_size = size_choices(min_size), max_size
        self.settings = settings or FCISSettings()
        self.box_coder = BoxCoder(weights=BOX_WEIGHTS)
        self.stride = backbone.feature_specs["c5"].stride  # of the score maps and the RPN's res4

    def forward(self, images: Any, targets: Any = None) -> list[InstancePrediction] | dict[str, Tensor]:
        batch, targets = self.prepare(images, targets)
        features = self.backbone(batch.tensor)
        proposals, losses = self.proposer(features, batch.image_sizes, batch.padded_size, targets)
        maps, box_maps = self.head(features["c5"])
        if self.training:
            return losses | self.roi_losses(maps, box_maps, proposals.boxes, targets)
        return self.detect(maps, box_maps, proposals.boxes, batch)

    def cost_forward(self, images: Tensor) -> None:
        """The dense computation of one inference (backbone, RPN head, score maps), for counting FLOPs;
        the pooling and the per-RoI assembly (no weights) are not counted."""
        batch, _ = self.prepare(images, None)
        features = self.backbone(batch.tensor)
        self.proposer.head([features[level] for level in self.proposer.levels])
        self.head(features["c5"])

    def prepare(self, images: Any, targets: Any) -> tuple[ImageBatch, list[InstanceTarget] | None]:
        """Check inputs, then normalise, resize and pad to a multiple of 16; targets follow the resize."""
        return prepare_inputs(images, targets, model=type(self).__name__, training=self.training,
                              num_classes=self.num_classes, normalize=self.normalize,
                              min_size=lambda: draw_min_size(self.min_size, training=self.training),
                              max_size=self.max_size, size_divisible=16)

    def roi_losses(self, maps: Tensor, box_maps: Tensor, proposals: list[Tensor],
                   targets: Sequence[InstanceTarget]) -> dict[str, Tensor]:
        """Sample RoIs among the proposals, pool them, then the OHEM losses."""
        s = self.settings
        rois = sample_rois(proposals, targets, coder=self.box_coder, batch_per_image=s.rois_per_image,
                           positive_fraction=s.positive_fraction)
        class_logits, mask_logits, deltas = self.head.pool(maps, box_maps, rois_with_index(rois.boxes),
                                                           spatial_scale=1 / self.stride)
        crops = [_mask_targets(t, b, m, labels)
                 for t, b, m, labels in zip(targets, rois.boxes, rois.matched, rois.labels)]
        return fcis_losses(class_logits, mask_logits, deltas, torch.cat(rois.labels), torch.cat(crops),
                           torch.cat(rois.box_targets), counts=[len(b) for b in rois.boxes],
                           hard_per_image=s.hard_per_image, mask_weight=s.mask_weight)

    def detect(self, maps: Tensor, box_maps: Tensor, proposals: list[Tensor],
               batch: ImageBatch) -> list[InstancePrediction]:
        """Score and regress the proposals, NMS per class, then each detection's mask at its regressed box."""
        s = self.settings
        class_logits, _, deltas = self.head.pool(maps, box_maps, rois_with_index(proposals), spatial_scale=1 / self.stride)
        per_class = deltas.repeat(1, self.num_classes)  # class-agnostic boxes, one candidate per class
        detections = detect_boxes(class_logits, per_class, proposals, batch.image_sizes, coder=self.box_coder,
                                  score_threshold=s.score_threshold, nms_threshold=s.nms_threshold,
                                  max_detections=s.max_detections)
        boxes = [d[0] for d in detections]
        _, mask_logits, _ = self.head.pool(maps, None, rois_with_index(boxes), spatial_scale=1 / self.stride)
        labels = torch.cat([d[2] for d in detections])
        probs = mask_logits[torch.arange(len(labels), device=labels.device), labels].sigmoid()
        return pasted_predictions(detections, probs.split([len(b) for b in boxes]), batch)


def _mask_targets(target: InstanceTarget, boxes: Tensor, matched: Tensor, labels: Tensor) -> Tensor:
    """21 x 21 binary targets of the positive RoIs (>= 0.4 of the cropped mask); zeros for the others."""
    crops = boxes.new_zeros(len(boxes), POOLED, POOLED)
    positive = labels > 0
    if bool(positive.any()):
        soft = mask_targets(target.masks, boxes[positive].detach(), matched[positive], POOLED)
        crops[positive] = (soft >= MASK_THRESHOLD).to(crops.dtype)
    return crops



def fcis(
    *, num_classes: int, backbone: str = "resnet101", channels: int = 1024, rpn_channels: int = 512,
    min_size: int | Sequence[int] | None = 600, max_size: int | None = 1000, frozen_bn: bool | None = None,
    trainable_layers: int | None = None, pretrained_backbone: str | Path | None = None,
    anchor_sizes: Sequence[int] = ANCHOR_SIZES, rpn_pre_nms_top_n: tuple[int, int] = (6000, 6000),
    rpn_post_nms_top_n: tuple[int, int] = (300, 300), rois_per_image: int = 300, hard_per_image: int = 128,
    score_threshold: float = 0.05, max_detections: int = 100, output_stride: int = STRIDE,
) -> FCIS:
    """Build FCIS on a ResNet with res5 dilated (stride 16).

    Args:
        num_classes: C + 1, background included (81 for COCO, 21 for VOC).
        backbone: "resnet101" (the paper's), "resnet50", or "resnet18"/"resnet34" for CPU.
        channels: width of conv_new_1 (1024); rpn_channels: the RPN's 3x3 conv (512).
        min_size, max_size: shorter side 600, longer at most 1000 (the release's SCALES); None: native.
        frozen_bn, trainable_layers, pretrained_backbone: as ``mask_rcnn_resnet50_fpn``.
        anchor_sizes: anchor sides on res4 (64-512), each at ratios 0.5, 1, 2.
        rpn_pre_nms_top_n, rpn_post_nms_top_n: (train, test) boxes before / after the RPN's NMS.
        rois_per_image, hard_per_image: RoIs sampled per image (300) and kept by OHEM (128).
        score_threshold, max_detections: inference (0.05, 100).
        output_stride: 16 (res5 dilated, the paper's) or 8 (res4 dilated too: small images, see
            fcis_synthetic_cpu).
    """
    if output_stride not in (16, 8):
        raise ConfigError(f"fcis: output_stride is {output_stride}; expected 16 (res5 dilated, the paper's) or 8")
    encoder, rebuild = resnet_encoder(backbone, pretrained_backbone=pretrained_backbone, frozen_bn=frozen_bn,
                                      trainable_layers=trainable_layers, frozen_bn_eps=None, weighted=False,
                                      coco_v1_weights=False, output_stride=output_stride)
    specs = encoder.feature_specs
    proposer = RegionProposalNetwork(
        in_channels=specs["c4"].channels, levels=("c4",), anchor_sizes=[tuple(anchor_sizes)],
        anchor_ratios=[(0.5, 1.0, 2.0)], pre_nms_top_n=rpn_pre_nms_top_n, post_nms_top_n=rpn_post_nms_top_n,
        head_channels=rpn_channels,
    )
    model = FCIS(
        backbone=encoder, proposer=proposer,
        head=InsideOutsideHead(specs["c5"].channels, num_classes=num_classes, channels=channels, group=GROUP),
        num_classes=num_classes, min_size=min_size, max_size=max_size,
        settings=FCISSettings(rois_per_image=rois_per_image, hard_per_image=hard_per_image,
                              score_threshold=score_threshold, max_detections=max_detections),
    )
    model.rebuild_kwargs = {k: v for k, v in rebuild.items() if k != "frozen_bn_eps"}
    return model


register_model(
    ModelSpec(
        task="instance", paper="Fully Convolutional Instance-aware Semantic Segmentation", arxiv="1611.07709",
        year=2017, survey_row="FCIS", exportable=False, input_multiple=STRIDE,
        loss_terms=("loss_rpn_objectness", "loss_rpn_box", "loss_cls", "loss_mask", "loss_box_reg"),
        export_note=DETECTIONS_EXPORT_NOTE,
        test_kwargs={"backbone": "resnet18", "channels": 32, "rpn_channels": 32, "min_size": None,
                     "anchor_sizes": (16, 32, 64), "rpn_pre_nms_top_n": (200, 100),
                     "rpn_post_nms_top_n": (100, 50), "rois_per_image": 64, "hard_per_image": 32},
        # the release's layer shapes summed (tests/models/test_fcis.py), RPN with one logistic per anchor
        reference_params=57_886_470, reference_kwargs={"num_classes": 81},
    ),
    name="fcis_resnet101",
)(fcis)
