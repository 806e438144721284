"""PANet: Mask R-CNN with a bottom-up path, adaptive feature pooling and fully-connected mask fusion.

Liu, Qi, Qin, Shi, Jia, "Path Aggregation Network for Instance Segmentation" (arXiv 1803.01534),
fig. 1: (a) FPN backbone, (b) bottom-up path augmentation (``seglab.necks.bottom_up``), (c) adaptive
feature pooling (``seglab.heads.adaptive_pooling``), (d) the box branch and (e) the mask branch with
fully-connected fusion (``seglab.heads.panet``). Everything else is Mask R-CNN's
(``TwoStageSegmenter``): RPN on N2..N6, 512 RoIs with 25 % positives, RoIAlign 7x7 / 14x14, 28x28
masks, L = L_rpn + L_cls + L_box + L_mask.

Settings from the authors' release (ShuLiu1993/PANet ``configs/panet/e2e_panet_R-50-FPN_2x_mask.yaml``):
GroupNorm (32 groups) in the FPN, the bottom-up path and both heads (FPN.USE_GN); training scales
400-1200 (max 1400), test 1000; the box head's smooth-L1 with beta = 1/3 (its ``fast_rcnn_losses``).

Deviations: none in the architecture. Weights of the authors' release (Detectron pickles) are not
read; ``pretrained_backbone`` takes a local torchvision ImageNet ResNet file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor, nn

from seglab.heads.adaptive_pooling import AllLevelsRoIAlign
from seglab.heads.panet import AdaptiveBoxHead, FusedMaskHead
from seglab.models.instance.inputs import DETECTIONS_EXPORT_NOTE, ImageBatch
from seglab.models.instance.mask_rcnn import region_proposals, resnet_encoder
from seglab.models.instance.two_stage import RoISettings, TwoStageSegmenter
from seglab.necks.bottom_up import BottomUpPath
from seglab.necks.fpn import FPN
from seglab.registry import ModelSpec, register_model

POOLED_LEVELS = ("n2", "n3", "n4", "n5")  # every RoI from all of them (sec. 3.2); N6 serves the RPN only
GROUPS = 32  # GroupNorm groups (the authors' FPN.USE_GN and GN heads)
BOX_LOSS_BETA = 1 / 3  # smooth-L1 of the box head in the authors' fast_rcnn_losses


class PANet(TwoStageSegmenter):
    """Backbone -> FPN -> bottom-up path -> RPN -> all-level RoIAlign -> adaptive box and fused mask heads."""

    def cost_heads(self, features: dict[str, Tensor], batch: ImageBatch) -> None:
        """As Mask R-CNN's, with one pooled grid per level for each RoI."""
        self.proposer.head([features[level] for level in self.proposer.levels])
        channels = features[self.proposer.levels[0]].shape[1]
        images = len(batch.image_sizes)
        for head, pooler, rois in ((self.box_head, self.box_pooler, self.proposer.post_nms_top_n[1] * images),
                                   (self.mask_head, self.mask_pooler, self.roi.max_detections * images)):
            head([batch.tensor.new_empty(rois, channels, *pooler.output_size) for _ in pooler.levels])


class PathAggregationNeck(nn.Sequential):
    """FPN (with GroupNorm) then the bottom-up path: {"c2".."c5"} -> {"n2".."n6"}."""

    def __init__(self, fpn: FPN, bottom_up: BottomUpPath) -> None:
        super().__init__(fpn, bottom_up)
        self.out_levels, self.out_channels = bottom_up.out_levels, bottom_up.out_channels


def panet(
    *, num_classes: int, backbone: str = "resnet50", channels: int = 256, box_hidden: int = 1024,
    min_size: int | Sequence[int] | None = (400, 600, 800, 1200, 1200, 1000), max_size: int | None = 1400,
    frozen_bn: bool | None = None, trainable_layers: int | None = None, pretrained_backbone: str | Path | None = None,
    anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512), rpn_pre_nms_top_n: tuple[int, int] = (2000, 1000),
    rpn_post_nms_top_n: tuple[int, int] = (2000, 1000), roi_batch_per_image: int = 512,
    score_threshold: float = 0.05, max_detections: int = 100, box_loss_beta: float = BOX_LOSS_BETA,
) -> PANet:
    """Build PANet with a ResNet backbone.

    Args:
        num_classes: K + 1, background included (81 for COCO).
        backbone: "resnet50" (the paper's R-50), "resnet101", or "resnet18"/"resnet34" for CPU.
        channels: width of the FPN, the bottom-up path and the heads' convs (256); box_hidden its fc (1024).
        min_size, max_size: training scales drawn per image, the last one at test (the release's
            TRAIN.SCALES 400-1200 and TEST.SCALE 1000, max 1400); None keeps native sizes.
        frozen_bn, trainable_layers, pretrained_backbone: as ``mask_rcnn_resnet50_fpn``.
        anchor_sizes, rpn_pre_nms_top_n, rpn_post_nms_top_n, roi_batch_per_image, score_threshold,
            max_detections: Mask R-CNN's (the release keeps Detectron's values).
        box_loss_beta: smooth-L1 beta of the box head (1/3, the authors' code).
    """
    encoder, rebuild = resnet_encoder(backbone, pretrained_backbone=pretrained_backbone, frozen_bn=frozen_bn,
                                      trainable_layers=trainable_layers, frozen_bn_eps=None, weighted=False,
                                      coco_v1_weights=False)
    fpn = FPN(encoder.feature_specs, out_channels=channels, extra_level=False, group_norm=GROUPS)
    neck = PathAggregationNeck(fpn, BottomUpPath(fpn.feature_specs, channels=channels, groups=GROUPS))
    model = PANet(
        backbone=encoder, neck=neck,
        proposer=region_proposals(channels, neck.out_levels, anchor_sizes, rpn_pre_nms_top_n, rpn_post_nms_top_n),
        box_pooler=AllLevelsRoIAlign(POOLED_LEVELS, output_size=7),
        box_head=AdaptiveBoxHead(channels, num_levels=len(POOLED_LEVELS), num_classes=num_classes, channels=channels,
                                 hidden=box_hidden),
        mask_pooler=AllLevelsRoIAlign(POOLED_LEVELS, output_size=14),
        mask_head=FusedMaskHead(channels, num_levels=len(POOLED_LEVELS), num_classes=num_classes, channels=channels),
        num_classes=num_classes, min_size=min_size, max_size=max_size,
        roi=RoISettings(batch_per_image=roi_batch_per_image, score_threshold=score_threshold,
                        max_detections=max_detections, box_loss_beta=box_loss_beta),
    )
    model.rebuild_kwargs = {k: v for k, v in rebuild.items() if k != "frozen_bn_eps"}
    return model


register_model(
    ModelSpec(
        task="instance", paper="Path Aggregation Network for Instance Segmentation", arxiv="1803.01534", year=2018,
        survey_row="PANet", exportable=False,
        loss_terms=("loss_rpn_objectness", "loss_rpn_box", "loss_cls", "loss_box_reg", "loss_mask"),
        export_note=DETECTIONS_EXPORT_NOTE,
        test_kwargs={"backbone": "resnet18", "channels": 16, "box_hidden": 32, "min_size": None,
                     "rpn_pre_nms_top_n": (200, 100), "rpn_post_nms_top_n": (100, 50), "roi_batch_per_image": 64},
    ),
    name="panet_resnet50_fpn",
)(panet)
