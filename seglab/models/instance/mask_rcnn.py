"""Mask R-CNN: Faster R-CNN with FPN plus a mask branch on RoIAlign features.

He, Gkioxari, Dollar, Girshick, "Mask R-CNN" (arXiv 1703.06870). Changes from its ancestor (Faster
R-CNN, arXiv 1506.01497, with FPN, arXiv 1612.03144): RoIAlign (bilinear sampling, no quantisation)
replaces RoIPool (sec. 3), and a small FCN predicts a 28x28 binary mask per class for every RoI,
trained with a per-pixel sigmoid cross-entropy on the ground-truth class only (sec. 3), so
L = L_cls + L_box + L_mask. Figure 4 (right) is the FPN head built here: box head 2 x fc 1024 on
7x7 features, mask head 4 x conv 256 on 14x14 features, deconv to 28x28.

Setup (sec. 3.1): shorter side 800 (max 1333, Detectron's cap), 512 RoIs per image with 25 %
positives, RPN anchors of 5 scales (one per FPN level P2..P6) and 3 aspect ratios, test: 1000
proposals, NMS, top 100 detections, masks of those boxes. Built so that torchvision's
``maskrcnn_resnet50_fpn`` weights load through ``torchvision_weights`` and give the same results.

Deviations: the box head's smooth-L1 uses beta = 1 (Fast R-CNN eq. 3, Detectron) where torchvision
uses 1/9; mask targets are soft (bilinear RoIAlign of the binary mask, as torchvision), where the
paper intersects the RoI with the binary mask; anchors and RoIs mostly (> 0.7) inside COCO crowd
regions are ignored in training, as Detectron does (the paper does not say).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from torchvision.ops import MultiScaleRoIAlign

from seglab.backbones import build_backbone
from seglab.backbones.freeze import freeze_batchnorm, freeze_resnet_stages
from seglab.heads.roi_box import RoIBoxHead
from seglab.heads.roi_mask import RoIMaskHead
from seglab.heads.rpn import RegionProposalNetwork
from seglab.models.instance.inputs import DETECTIONS_EXPORT_NOTE
from seglab.models.instance.torchvision_weights import load_torchvision_weights
from seglab.models.instance.two_stage import RoISettings, TwoStageSegmenter
from seglab.necks.fpn import FPN
from seglab.registry import ModelSpec, register_model

POOLED_LEVELS = ["p2", "p3", "p4", "p5"]  # RoIs pool from P2..P5; P6 serves the RPN only (FPN sec. 4.2)
TORCHVISION_COCO_V1 = "maskrcnn_resnet50_fpn_coco-"  # file name prefix of torchvision's COCO_V1 weights


class MaskRCNN(TwoStageSegmenter):
    """Backbone + FPN -> RPN -> RoIAlign -> box head and mask head (TwoStageSegmenter's data flow)."""

    # The convolution/linear stacks that seglab.inference.fast_instance runs in bf16 where the hardware has it;
    # anchors, box decoding, NMS and mask pasting between them stay float32.
    autocast_stages = ("backbone", "neck", "proposer.head", "box_head", "mask_head")


def mask_rcnn(
    *, num_classes: int, backbone: str = "resnet50", fpn_channels: int = 256, box_hidden: int = 1024,
    mask_channels: int = 256, min_size: int | Sequence[int] | None = 800, max_size: int | None = 1333,
    frozen_bn: bool | None = None, trainable_layers: int | None = None, frozen_bn_eps: float | None = None,
    pretrained: str | Path | None = None,
    pretrained_backbone: str | Path | None = None, anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
    rpn_pre_nms_top_n: tuple[int, int] = (2000, 1000), rpn_post_nms_top_n: tuple[int, int] = (2000, 1000),
    roi_batch_per_image: int = 512, score_threshold: float = 0.05, max_detections: int = 100,
    box_loss_beta: float = 1.0,
) -> MaskRCNN:
    """Build Mask R-CNN with a ResNet-FPN backbone.

    Args:
        num_classes: K + 1, background included (81 for COCO's contiguous labels, 91 for
            torchvision's COCO weights, which keep COCO's category ids).
        backbone: "resnet50" (the paper's R-50-FPN), "resnet101", or "resnet18"/"resnet34" for CPU.
        fpn_channels, box_hidden, mask_channels: widths d = 256, fc 1024, mask convs 256 (paper);
            smaller for CPU recipes.
        min_size, max_size: resize (sec. 3.1: shorter side 800, capped at 1333); a tuple of
            min_size draws one per image in training (multi-scale); None keeps native sizes.
        frozen_bn, trainable_layers: default to the paper's fine-tuning setup (FrozenBN, last 3
            stages trained) when weights are given, else trainable BN and all 5 stages
            (torchvision's rule: frozen statistics of a random init normalise nothing).
        frozen_bn_eps: eps of the frozen batch norm; default 0 for torchvision's COCO_V1 file (as
            torchvision's builder sets it: those weights come from Detectron), 1e-5 otherwise.
        pretrained: a local torchvision Mask R-CNN checkpoint (e.g. torchvision's COCO file);
            nothing is downloaded. With another ``num_classes`` than the file's (fine-tuning COCO
            weights on your classes) the class-specific layers keep their initialisation.
        pretrained_backbone: a local torchvision ImageNet ResNet checkpoint.
        anchor_sizes: one per level P2..P6, ratios 0.5, 1, 2 on each.
        rpn_pre_nms_top_n, rpn_post_nms_top_n: (train, test) per level before NMS / per image after.
        roi_batch_per_image: RoIs sampled per image (512, sec. 3.1).
        score_threshold, max_detections: inference (0.05, 100).
        box_loss_beta: smooth-L1 beta of the box head (1, Fast R-CNN; torchvision uses 1/9).
    """
    arguments = {k: v for k, v in locals().items() if k != "pretrained"}
    coco_v1 = pretrained is not None and Path(pretrained).name.startswith(TORCHVISION_COCO_V1)
    parts, rebuild = mask_rcnn_parts(**arguments, weighted=pretrained is not None, coco_v1_weights=coco_v1)
    model = MaskRCNN(**parts)
    if pretrained is not None:
        load_torchvision_weights(model, pretrained)
    # what the weight files decided, so a checkpoint rebuilds the same model without them
    model.rebuild_kwargs = rebuild
    return model


def mask_rcnn_parts(
    *, num_classes: int, backbone: str = "resnet50", fpn_channels: int = 256, box_hidden: int = 1024,
    mask_channels: int = 256, min_size: int | Sequence[int] | None = 800, max_size: int | None = 1333,
    frozen_bn: bool | None = None, trainable_layers: int | None = None, frozen_bn_eps: float | None = None,
    pretrained_backbone: str | Path | None = None, anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
    rpn_pre_nms_top_n: tuple[int, int] = (2000, 1000), rpn_post_nms_top_n: tuple[int, int] = (2000, 1000),
    roi_batch_per_image: int = 512, score_threshold: float = 0.05, max_detections: int = 100,
    box_loss_beta: float = 1.0, weighted: bool = False, coco_v1_weights: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parts of ``TwoStageSegmenter`` that Mask R-CNN is made of (arguments as in ``mask_rcnn``), and the
    builder arguments the weight files decided (``rebuild_kwargs``). Models built on Mask R-CNN (Panoptic
    FPN, PANet) start from these parts.

    Args:
        weighted: whether weights will be loaded (FrozenBN and 3 trained stages by default).
        coco_v1_weights: torchvision's COCO_V1 file will be loaded (frozen BN eps 0).
    """
    encoder, rebuild = resnet_encoder(backbone, pretrained_backbone=pretrained_backbone, frozen_bn=frozen_bn,
                                      trainable_layers=trainable_layers, frozen_bn_eps=frozen_bn_eps,
                                      weighted=weighted, coco_v1_weights=coco_v1_weights)
    neck = FPN(encoder.feature_specs, out_channels=fpn_channels)
    parts = dict(
        backbone=encoder,
        neck=neck,
        proposer=region_proposals(fpn_channels, neck.out_levels, anchor_sizes, rpn_pre_nms_top_n, rpn_post_nms_top_n),
        box_pooler=MultiScaleRoIAlign(POOLED_LEVELS, output_size=7, sampling_ratio=2),
        box_head=RoIBoxHead(fpn_channels, pool_size=7, hidden=box_hidden, num_classes=num_classes),
        mask_pooler=MultiScaleRoIAlign(POOLED_LEVELS, output_size=14, sampling_ratio=2),
        mask_head=RoIMaskHead(fpn_channels, num_classes=num_classes, channels=mask_channels),
        num_classes=num_classes, min_size=min_size, max_size=max_size,
        roi=RoISettings(batch_per_image=roi_batch_per_image, score_threshold=score_threshold,
                        max_detections=max_detections, box_loss_beta=box_loss_beta),
    )
    return parts, rebuild


def resnet_encoder(
    backbone: str, *, pretrained_backbone: str | Path | None, frozen_bn: bool | None, trainable_layers: int | None,
    frozen_bn_eps: float | None, weighted: bool, coco_v1_weights: bool, output_stride: int = 32,
) -> tuple[Any, dict[str, Any]]:
    """The ResNet with the paper's fine-tuning rules (see ``mask_rcnn``), and what they decided (rebuild kwargs).

    ``output_stride`` 16 dilates res5 (FCIS, MaskLab), as ``build_backbone``.
    """
    weighted = weighted or pretrained_backbone is not None
    frozen_bn = weighted if frozen_bn is None else frozen_bn
    trainable_layers = (3 if weighted else 5) if trainable_layers is None else trainable_layers
    if frozen_bn_eps is None:
        frozen_bn_eps = 0.0 if coco_v1_weights else 1e-5
    encoder = build_backbone(backbone, pretrained=pretrained_backbone, output_stride=output_stride)
    if frozen_bn:
        freeze_batchnorm(encoder, eps=frozen_bn_eps)
    freeze_resnet_stages(encoder, trainable_layers=trainable_layers)
    return encoder, {"frozen_bn": frozen_bn, "trainable_layers": trainable_layers, "frozen_bn_eps": frozen_bn_eps}


def region_proposals(channels: int, levels: Sequence[str], anchor_sizes: Sequence[int],
                     pre_nms_top_n: tuple[int, int], post_nms_top_n: tuple[int, int]) -> RegionProposalNetwork:
    """The FPN RPN (FPN sec. 4.1): one anchor size per level, ratios 0.5, 1, 2."""
    return RegionProposalNetwork(
        in_channels=channels, levels=levels, anchor_sizes=[(size,) for size in anchor_sizes],
        anchor_ratios=[(0.5, 1.0, 2.0)] * len(anchor_sizes), pre_nms_top_n=pre_nms_top_n,
        post_nms_top_n=post_nms_top_n,
    )


register_model(
    ModelSpec(
        task="instance", paper="Mask R-CNN", arxiv="1703.06870", year=2017, survey_row="Mask R-CNN",
        exportable=False,
        loss_terms=("loss_rpn_objectness", "loss_rpn_box", "loss_cls", "loss_box_reg", "loss_mask"),
        export_note=DETECTIONS_EXPORT_NOTE,
        test_kwargs={"backbone": "resnet18", "fpn_channels": 16, "box_hidden": 32, "mask_channels": 16,
                     "min_size": None, "rpn_pre_nms_top_n": (200, 100), "rpn_post_nms_top_n": (100, 50),
                     "roi_batch_per_image": 64},
        reference_params=44_454_513, reference_kwargs={"num_classes": 91},
    ),
    name="mask_rcnn_resnet50_fpn",
)(partial(mask_rcnn, backbone="resnet50"))
