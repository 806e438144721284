"""MaskLab: Faster R-CNN boxes, refined into masks with semantic and direction features.

Chen, Hermans, Papandreou, Schroff, Wang, Adam, "MaskLab: Instance Segmentation by Refining Object
Detection with Semantic and Direction Features" (CVPR 2018, arXiv 1712.04837), fig. 2, top down:
a ResNet-101 shared up to res4 (stride 16); Faster R-CNN on it (RPN on res4, RoIs cropped from
res4 and classified by a duplicate res5, sec. 3.1); the original res5, atrous (rate 2, output
stride 16: "atrous convolution for denser features", sec. 3.2 and survey Table 7), feeds a
semantic branch (C + 1 logits) and a direction branch (8 directions x 4 distance bins = 32
logits), each a 1x1 conv (sec. 3.1). Per box: the semantic channel of its class and the direction
channels are cropped, the direction logits pooled by each pixel's bin relative to the box centre
(direction pooling), both concatenated into a 1x1 conv (coarse mask), then refined with
hypercolumn features of lower layers (conv1 and res2) by three convolutions (sec. 3.1-3.2).
Changes from its ancestor (Faster R-CNN, arXiv 1506.01497): the semantic, direction and mask
branches and their losses; L = L_rpn + L_cls + L_box + L_semantic + L_direction + L_mask.

Sources: the abstract, sec. 3.1 as quoted by reviews (three outputs; features shared to res4, a
duplicate res5 for the box classifier; "three extra convolutional layers" of refinement) and the
survey (Tables 6-7: ResNet-101 Faster R-CNN, atrous convolution, 8 x 4 direction bins); the stored
copies of the paper we could search hold only its first pages, so section numbers past sec. 3.1
are as recalled, and every size below is a choice, not a transcription.

Sizes the paper's text (as available to us) leaves open, chosen here: crop side 41 (a DeepLab-style
odd size, so the crop has a centre pixel); refinement of 256 channels with 3x3, 3x3 and 1x1 kernels;
direction and distance binning as in ``seglab.boxes.directions`` (offsets from the box centre in
half box sides, direction bins centred on the axes and diagonals, distance edges at 1/4, 1/2, 3/4); anchors 64-512 x ratios 0.5/1/2 on res4 (the 4 scales of
Huang et al.'s Faster R-CNN, arXiv 1611.10012, which MaskLab builds on) with a 512-wide RPN conv;
Detectron's C4 proposal counts before NMS (12000 / 6000, train / test) and 2000 after NMS in
training, 300 at test (Huang et al.'s proposal count; each proposal runs a res5, ~2.3 GFLOPs on
ResNet-101); RoIAlign 14x14 for the box head (Mask R-CNN's C4 head).

Deviations (declared): every loss weight is 1; both the coarse and the refined mask logits are
trained (per-pixel sigmoid cross-entropy on the positive RoIs, Mask R-CNN style soft targets);
semantic and direction logits are upsampled to the input before their cross-entropy (DeepLab v3
sec. 4.1) rather than subsampling the labels; ``semantic_context="aspp"`` (DeepLab v3's ASPP
before the semantic 1x1) is an option of ours; output stride 8 dilates res4 as well, so the RPN
and the box crops then run at stride 8. Not built: the deformable crop-and-resize (sec. 3.3),
multi-scale inference and the JFT pre-training of MaskLab+.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import MultiScaleRoIAlign

from seglab.boxes import mask_targets
from seglab.boxes.directions import IGNORE, NUM_DIRECTIONS, NUM_DISTANCES, direction_targets, semantic_targets
from seglab.errors import ConfigError
from seglab.heads.masklab import MaskLabCropper, MaskLabCrops, MaskLabMaskHead, Res5BoxHead
from seglab.heads.roi_box import SampledRoIs
from seglab.heads.rpn import RegionProposalNetwork
from seglab.layers.aspp import deeplabv3_aspp
from seglab.layers.upsample import resize_to
from seglab.losses.cross_entropy import PixelCrossEntropy
from seglab.losses.detection import mask_rcnn_mask_loss
from seglab.models.instance.inputs import DETECTIONS_EXPORT_NOTE, ImageBatch, pasted_predictions
from seglab.models.instance.mask_rcnn import resnet_encoder
from seglab.models.instance.two_stage import RoISettings, TwoStageSegmenter
from seglab.models.semantic.deeplab import ContextClassifier
from seglab.registry import ModelSpec, register_model
from seglab.structures import InstancePrediction, InstanceTarget

CROP_SIZE = 41  # our choice: the paper's crop side is not available to us (see the docstring)
HYPERCOLUMN = ("c1", "c2")  # conv1 and res2 features refine the coarse mask (sec. 3.2, fig. 2)
BOX_POOL = 14  # RoIAlign 14x14 on res4, res5 (stride 2) makes it 7x7 (Mask R-CNN's C4 head)


class MaskLab(TwoStageSegmenter):
    """ResNet (res5 atrous) -> RPN on res4 -> res5 box classifier; semantic and direction logits on res5;
    per box: crops -> direction pooling -> coarse mask -> hypercolumn refinement.

    Args (beyond TwoStageSegmenter's; ``neck`` is the identity, ``mask_pooler`` the cropper):
        semantic_head, direction_head: features -> [N, C + 1, h, w] and [N, 32, h, w] logits.
        semantic_weight, direction_weight, coarse_mask_weight: loss weights (1 each).
    """

    def __init__(
        self, *, backbone: nn.Module, proposer: RegionProposalNetwork, box_pooler: MultiScaleRoIAlign,
        box_head: Res5BoxHead, semantic_head: nn.Module, direction_head: nn.Module, mask_pooler: MaskLabCropper,
        mask_head: MaskLabMaskHead, num_classes: int, min_size: int | Sequence[int] | None = 800,
        max_size: int | None = 1333, roi: RoISettings | None = None, semantic_weight: float = 1.0,
        direction_weight: float = 1.0, coarse_mask_weight: float = 1.0,
    ) -> None:
        super().__init__(backbone=backbone, neck=nn.Identity(), proposer=proposer, box_pooler=box_pooler,
                         box_head=box_head, mask_pooler=mask_pooler, mask_head=mask_head, num_classes=num_classes,
                         min_size=min_size, max_size=max_size, roi=roi)
        self.semantic_head, self.direction_head = semantic_head, direction_head
        self.semantic_weight, self.direction_weight = semantic_weight, direction_weight
        self.coarse_mask_weight = coarse_mask_weight
        self.pixel_loss = PixelCrossEntropy(ignore_index=IGNORE)

    def forward(self, images: Any, targets: Any = None) -> list[InstancePrediction] | dict[str, Tensor]:
        batch, targets = self.prepare(images, targets)
        features = self.dense_features(batch.tensor)
        proposals, losses = self.proposer(features, batch.image_sizes, batch.padded_size, targets)
        if self.training:
            return (losses | self.dense_losses(features, batch, targets)
                    | self.roi_losses(features, proposals.boxes, batch, targets))
        return self.segment(features, self.detect(features, proposals.boxes, batch), batch)

    def dense_features(self, images: Tensor) -> dict[str, Tensor]:
        """The backbone's levels plus the semantic and direction logits of the atrous res5."""
        features = self.backbone(images)
        return features | {"semantic": self.semantic_head(features), "direction": self.direction_head(features)}

    def dense_losses(self, features: dict[str, Tensor], batch: ImageBatch,
                     targets: Sequence[InstanceTarget]) -> dict[str, Tensor]:
        """Per-pixel softmax cross-entropy of the semantic (all pixels) and direction (instance pixels) logits."""
        height, width = batch.padded_size

        def padded(label_map: Tensor) -> Tensor:  # the padding of the batch is not labelled
            return F.pad(label_map, (0, width - label_map.shape[1], 0, height - label_map.shape[0]), value=IGNORE)

        semantic = torch.stack([padded(semantic_targets(t.masks, t.labels, crowd=t.crowd)) for t in targets])
        direction = torch.stack([padded(direction_targets(t.masks, t.boxes_xyxy, crowd=t.crowd)) for t in targets])
        return {
            "loss_semantic": self.semantic_weight * self.pixel_loss(
                resize_to(features["semantic"], (height, width)), semantic),
            "loss_direction": self.direction_weight * self.pixel_loss(
                resize_to(features["direction"], (height, width)), direction),
        }

    def mask_losses(self, features: dict[str, Tensor], rois: SampledRoIs, batch: ImageBatch,
                    targets: Sequence[InstanceTarget]) -> dict[str, Tensor]:
        """Sigmoid cross-entropy of the coarse and the refined masks of the positive RoIs (their true class)."""
        positive = [labels > 0 for labels in rois.labels]
        boxes = [b[p] for b, p in zip(rois.boxes, positive)]
        labels = torch.cat([labels[p] for labels, p in zip(rois.labels, positive)])
        coarse, refined = self.mask_head(self.mask_pooler(features, boxes, labels))
        size = self.mask_pooler.crop_size
        crops = torch.cat([mask_targets(t.masks, b, m[p], size)
                           for t, b, m, p in zip(targets, boxes, rois.matched, positive)])
        return {"loss_mask_coarse": self.coarse_mask_weight * mask_rcnn_mask_loss(coarse, labels, crops),
                "loss_mask": mask_rcnn_mask_loss(refined, labels, crops)}

    def segment(self, features: dict[str, Tensor], detections: list[tuple[Tensor, Tensor, Tensor]],
                batch: ImageBatch) -> list[InstancePrediction]:
        """The refined mask of each detection (for its predicted class), pasted into the input image."""
        boxes = [d[0] for d in detections]
        _, mask_logits = self.mask_head(self.mask_pooler(features, boxes, torch.cat([d[2] for d in detections])))
        return pasted_predictions(detections, mask_logits[:, 0].sigmoid().split([len(b) for b in boxes]), batch)

    def cost_forward(self, images: Tensor) -> None:
        """TwoStageSegmenter's fixed-load inference, with the semantic and direction branches."""
        batch, _ = self.prepare(images, None)
        self.cost_heads(self.dense_features(batch.tensor), batch)

    def cost_heads(self, features: dict[str, Tensor], batch: ImageBatch) -> None:
        """The RPN head, the res5 box head on the most proposals, the mask head on the most detections."""
        self.proposer.head([features[level] for level in self.proposer.levels])
        images = len(batch.image_sizes)
        channels = features[self.proposer.levels[0]].shape[1]
        empty = batch.tensor.new_empty
        self.box_head(empty(self.proposer.post_nms_top_n[1] * images, channels, *self.box_pooler.output_size))
        detections, size = self.roi.max_detections * images, self.mask_pooler.crop_size
        hypercolumn = sum(features[level].shape[1] for level in self.mask_pooler.hypercolumn)
        bins = features["direction"].shape[1]
        self.mask_head(MaskLabCrops(empty(detections, 1, size, size), empty(detections, bins, size, size),
                                    empty(detections, hypercolumn, size, size)))


def semantic_head(in_channels: int, num_classes: int, *, context: str, aspp_channels: int,
                  output_stride: int) -> ContextClassifier:
    """seglab's DeepLab head on res5: a 1x1 conv to C + 1 logits (the paper's), or DeepLab v3's ASPP first."""
    if context == "conv":
        return ContextClassifier(nn.Identity(), nn.Conv2d(in_channels, num_classes, 1))
    if context != "aspp":
        raise ConfigError(f"masklab: semantic_context is {context!r}; expected 'conv' or 'aspp'")
    rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)  # DeepLab v3 sec. 3.3
    aspp = deeplabv3_aspp(in_channels, out_channels=aspp_channels, rates=rates)
    return ContextClassifier(aspp, nn.Conv2d(aspp_channels, num_classes, 1))


def masklab(
    *, num_classes: int, backbone: str = "resnet101", output_stride: int = 16, semantic_context: str = "conv",
    aspp_channels: int = 256, crop_size: int = CROP_SIZE, refine_channels: int = 256, refine_kernel: int = 3,
    min_size: int | Sequence[int] | None = 800, max_size: int | None = 1333, frozen_bn: bool | None = None,
    trainable_layers: int | None = None, pretrained_backbone: str | Path | None = None,
    anchor_sizes: Sequence[int] = (64, 128, 256, 512), rpn_channels: int = 512, box_pool: int = BOX_POOL,
    rpn_pre_nms_top_n: tuple[int, int] = (12000, 6000), rpn_post_nms_top_n: tuple[int, int] = (2000, 300),
    roi_batch_per_image: int = 512, score_threshold: float = 0.05, max_detections: int = 100,
    semantic_weight: float = 1.0, direction_weight: float = 1.0, coarse_mask_weight: float = 1.0,
) -> MaskLab:
    """Build MaskLab on a ResNet.

    Args:
        num_classes: K + 1, background included (81 for COCO).
        backbone: "resnet101" (the paper's), "resnet50", or "resnet18"/"resnet34" for CPU.
        output_stride: 16 (res5 atrous, rate 2) or 8 (res4 too).
        semantic_context: "conv" (the paper's 1x1 conv on res5) or "aspp" (DeepLab v3's ASPP first).
        aspp_channels: width of the ASPP ("aspp" only).
        crop_size: side S of every per-box crop and mask (41).
        refine_channels, refine_kernel: the refinement's width (256) and first two kernels (3).
        min_size, max_size, frozen_bn, trainable_layers, pretrained_backbone: as ``mask_rcnn_resnet50_fpn``.
        anchor_sizes: anchor sides on res4 (x ratios 0.5, 1, 2); rpn_channels: the RPN's 3x3 conv width.
        box_pool: side of the res4 RoIAlign before the box head's res5 (14; less is cheaper on CPU).
        rpn_pre_nms_top_n, rpn_post_nms_top_n, roi_batch_per_image, score_threshold, max_detections:
            proposal counts (train, test), RoIs sampled per image, inference thresholds.
        semantic_weight, direction_weight, coarse_mask_weight: loss weights.
    """
    if output_stride not in (16, 8):
        raise ConfigError(f"masklab: output_stride is {output_stride}; expected 16 (res5 atrous, the paper's) or 8")
    rules = dict(pretrained_backbone=pretrained_backbone, frozen_bn=frozen_bn, trainable_layers=trainable_layers,
                 frozen_bn_eps=None, weighted=False, coco_v1_weights=False)
    encoder, rebuild = resnet_encoder(backbone, output_stride=output_stride, **rules)
    # the box classifier's duplicate res5 (sec. 3.1): the same weights and rules, stride 2, not atrous
    res5 = resnet_encoder(backbone, output_stride=32, **rules)[0].layer4
    specs = encoder.feature_specs
    c4, c5 = specs["c4"].channels, specs["c5"].channels
    hypercolumn = {level: specs[level].stride for level in HYPERCOLUMN}
    model = MaskLab(
        backbone=encoder,
        proposer=RegionProposalNetwork(
            in_channels=c4, levels=("c4",), anchor_sizes=[tuple(anchor_sizes)], anchor_ratios=[(0.5, 1.0, 2.0)],
            pre_nms_top_n=rpn_pre_nms_top_n, post_nms_top_n=rpn_post_nms_top_n, head_channels=rpn_channels),
        box_pooler=MultiScaleRoIAlign(["c4"], output_size=box_pool, sampling_ratio=2),
        box_head=Res5BoxHead(res5, out_channels=c5, num_classes=num_classes),
        semantic_head=semantic_head(c5, num_classes, context=semantic_context, aspp_channels=aspp_channels,
                                    output_stride=output_stride),
        direction_head=ContextClassifier(nn.Identity(), nn.Conv2d(c5, NUM_DIRECTIONS * NUM_DISTANCES, 1)),
        mask_pooler=MaskLabCropper(crop_size=crop_size, dense_stride=specs["c5"].stride, hypercolumn=hypercolumn),
        mask_head=MaskLabMaskHead(crop_size=crop_size, hypercolumn_channels=sum(specs[k].channels for k in hypercolumn),
                                  channels=refine_channels, kernel_size=refine_kernel),
        num_classes=num_classes, min_size=min_size, max_size=max_size,
        roi=RoISettings(batch_per_image=roi_batch_per_image, score_threshold=score_threshold,
                        max_detections=max_detections),
        semantic_weight=semantic_weight, direction_weight=direction_weight, coarse_mask_weight=coarse_mask_weight,
    )
    model.rebuild_kwargs = {k: v for k, v in rebuild.items() if k != "frozen_bn_eps"}
    return model


register_model(
    ModelSpec(
        task="instance", paper="MaskLab: Instance Segmentation by Refining Object Detection with Semantic and "
                               "Direction Features", arxiv="1712.04837", year=2018, survey_row="MaskLab",
        exportable=False,
        loss_terms=("loss_rpn_objectness", "loss_rpn_box", "loss_semantic", "loss_direction", "loss_cls",
                    "loss_box_reg", "loss_mask_coarse", "loss_mask"),
        export_note=DETECTIONS_EXPORT_NOTE,
        test_kwargs={"backbone": "resnet18", "min_size": None, "crop_size": 15, "refine_channels": 16,
                     "rpn_channels": 32, "anchor_sizes": (16, 32, 64), "rpn_pre_nms_top_n": (200, 100),
                     "rpn_post_nms_top_n": (100, 50), "roi_batch_per_image": 16, "box_pool": 7},
        reference_params=64_606_342, reference_kwargs={"num_classes": 81},  # by formula: test_masklab.py
    ),
    name="masklab_resnet101",
)(masklab)
