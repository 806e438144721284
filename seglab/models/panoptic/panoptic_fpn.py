"""Panoptic FPN: Mask R-CNN with FPN plus a semantic branch on the same pyramid, merged by a heuristic.

Kirillov, Girshick, He, Dollar, "Panoptic Feature Pyramid Networks" (arXiv 1901.02446). Fig. 1: one
FPN feeds both the instance branch (Mask R-CNN, unchanged) and a light semantic branch (fig. 3,
``seglab.heads.semantic_fpn``) predicting the stuff classes plus one "things" class at 1/4 scale,
upsampled 4x. Sec. 3.2: L = L_rpn + L_cls + L_box + L_mask + lambda_s * L_sem, the per-pixel
cross-entropy of the semantic branch weighted by lambda_s = 0.5 on COCO (the authors' release,
detectron2 ``SEM_SEG_HEAD.LOSS_WEIGHT``). Sec. 3.3 / the release: instances and stuff are merged by
``seglab.models.panoptic.fusion`` (scores >= 0.5, overlap <= 0.5, stuff area >= 4096 px).

Labels: the instance branch predicts the dataset's thing classes as 1..T, the semantic branch its
stuff classes as 1..S with 0 for every thing pixel (the release's 80 + 1 and 53 + 1 for COCO);
``model(images)`` returns one ``PanopticPrediction`` per image in the dataset's classes.

Deviations: none in the architecture. Pretrained Panoptic FPN weights (detectron2 pickles) are
not read; ``pretrained_backbone`` takes a local torchvision ImageNet ResNet file.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from seglab.errors import ConfigError
from seglab.heads.semantic_fpn import COMMON_STRIDE, SemanticFPNHead
from seglab.models.instance.inputs import as_image_list
from seglab.models.instance.mask_rcnn import POOLED_LEVELS, mask_rcnn_parts
from seglab.models.instance.two_stage import TwoStageSegmenter
from seglab.models.panoptic.fusion import VOID, FusionSettings, PanopticClasses, fuse_panoptic
from seglab.models.panoptic.inputs import as_panoptic_targets, semantic_batch
from seglab.registry import ModelSpec, register_model
from seglab.structures import PanopticPrediction

SEMANTIC_WEIGHT = 0.5  # lambda_s on COCO (sec. 3.2; detectron2 SEM_SEG_HEAD.LOSS_WEIGHT)


class PanopticFPN(TwoStageSegmenter):
    """Backbone + FPN -> (RPN -> RoI heads) and (semantic FPN head) -> fusion.

    Args:
        semantic_head: {"p2".."p5"} -> [N, S + 1, H/4, W/4] logits.
        classes: the dataset's classes and which are things.
        fusion: the merge thresholds.
        semantic_weight: lambda_s.
        parts: the Mask R-CNN parts (``mask_rcnn_parts``), with ``num_classes`` = T + 1.
    """

    def __init__(self, *, semantic_head: SemanticFPNHead, classes: PanopticClasses, fusion: FusionSettings,
                 semantic_weight: float = SEMANTIC_WEIGHT, **parts: Any) -> None:
        super().__init__(**parts)
        self.semantic_head = semantic_head
        self.classes, self.fusion, self.semantic_weight = classes, fusion, semantic_weight

    def forward(self, images: Any, targets: Any = None) -> list[PanopticPrediction] | dict[str, Any]:
        name = type(self).__name__
        images = as_image_list(images, model=name)
        panoptic = None if targets is None else as_panoptic_targets(targets, images, model=name, classes=self.classes)
        instances = None if panoptic is None else [self.classes.instance_target(t) for t in panoptic]
        batch, instances = self.prepare(images, instances)
        features = self.neck(self.backbone(batch.tensor))
        proposals, losses = self.proposer(features, batch.image_sizes, batch.padded_size, instances)
        semantic_logits = F.interpolate(self.semantic_head(features), scale_factor=COMMON_STRIDE, mode="bilinear",
                                        align_corners=False)
        if self.training:
            assert panoptic is not None and instances is not None  # prepare() refuses training without targets
            labels = semantic_batch([self.classes.semantic_target(t.semantic) for t in panoptic],
                                    batch.image_sizes, batch.padded_size)
            losses |= self.roi_losses(features, proposals.boxes, batch, instances)
            losses["loss_sem_seg"] = self.semantic_weight * F.cross_entropy(semantic_logits, labels, ignore_index=VOID)
            return losses
        detections = self.segment(features, self.detect(features, proposals.boxes, batch), batch)
        return [self._merge(d, logits, size, original) for d, logits, size, original in zip(
            detections, semantic_logits, batch.image_sizes, batch.original_sizes)]

    def _merge(self, detections: Any, logits: Tensor, size: tuple[int, int],
               original: tuple[int, int]) -> PanopticPrediction:
        logits = logits[None, :, : size[0], : size[1]]
        if tuple(size) != tuple(original):
            logits = F.interpolate(logits, size=original, mode="bilinear", align_corners=False)
        stuff = self.classes.class_of_stuff_label.to(logits.device)[logits[0].argmax(0)]
        return fuse_panoptic(detections, stuff, self.classes, self.fusion)

    def cost_forward(self, images: Tensor) -> None:
        """Mask R-CNN's fixed-load inference (see ``TwoStageSegmenter.cost_forward``) plus the semantic branch."""
        batch, _ = self.prepare(images, None)
        features = self.neck(self.backbone(batch.tensor))
        self.cost_heads(features, batch)
        self.semantic_head(features)


def panoptic_fpn(
    *, num_classes: int, thing_classes: Iterable[int] | None = None, semantic_channels: int = 128,
    semantic_weight: float = SEMANTIC_WEIGHT, instance_score_threshold: float = 0.5, overlap_threshold: float = 0.5,
    stuff_area_limit: int = 4096, **mask_rcnn_kwargs: Any,
) -> PanopticFPN:
    """Build Panoptic FPN for a dataset of ``num_classes`` classes.

    Args:
        num_classes: C, the dataset's classes (133 for COCO panoptic).
        thing_classes: the class ids that are things (the dataset's ``thing_classes``; the engine passes
            them from the training data). Default: every class but 0 (a background "stuff" class 0).
        semantic_channels: width of the semantic branch (128, sec. 3.1).
        semantic_weight: lambda_s (0.5 on COCO, sec. 3.2).
        instance_score_threshold, overlap_threshold, stuff_area_limit: the fusion (``FusionSettings``).
        mask_rcnn_kwargs: the instance branch, as ``mask_rcnn_resnet50_fpn`` takes them (backbone,
            fpn_channels, min_size, anchor_sizes, pretrained_backbone, ...).
    """
    things = list(range(1, num_classes)) if thing_classes is None else [int(c) for c in thing_classes]
    classes = PanopticClasses(num_classes, things)
    allowed = [k for k in inspect.signature(mask_rcnn_parts).parameters if k not in ("num_classes", "weighted",
                                                                                        "coco_v1_weights")]
    unknown = sorted(set(mask_rcnn_kwargs) - set(allowed))
    if unknown:
        raise ConfigError(f"panoptic_fpn: unknown argument {unknown[0]!r}; it takes thing_classes, semantic_channels, "
                          f"semantic_weight, instance_score_threshold, overlap_threshold, stuff_area_limit and "
                          f"Mask R-CNN's {', '.join(allowed)}")
    parts, rebuild = mask_rcnn_parts(num_classes=classes.num_instance_labels, **mask_rcnn_kwargs)
    head = SemanticFPNHead(parts["neck"].out_channels, num_classes=classes.num_semantic_labels,
                           levels=[(level, 2 ** int(level[1:])) for level in POOLED_LEVELS], channels=semantic_channels)
    model = PanopticFPN(semantic_head=head, classes=classes, semantic_weight=semantic_weight,
                        fusion=FusionSettings(instance_score_threshold, overlap_threshold, stuff_area_limit), **parts)
    model.rebuild_kwargs = {**rebuild, "thing_classes": things}
    return model


register_model(
    ModelSpec(
        task="panoptic", paper="Panoptic Feature Pyramid Networks", arxiv="1901.02446", year=2019,
        survey_row="panoptic segmentation", exportable=False,
        loss_terms=("loss_rpn_objectness", "loss_rpn_box", "loss_cls", "loss_box_reg", "loss_mask", "loss_sem_seg"),
        export_note="its instance branch has a data-dependent number of detections (NMS, top-k), which the ONNX "
                    "exporter of torch 2.x cannot trace with dynamic image sizes; use the PyTorch model",
        test_kwargs={"backbone": "resnet18", "fpn_channels": 16, "box_hidden": 32, "mask_channels": 16,
                     "semantic_channels": 16, "min_size": None, "rpn_pre_nms_top_n": (200, 100),
                     "rpn_post_nms_top_n": (100, 50), "roi_batch_per_image": 64, "stuff_area_limit": 16},
    ),
    name="panoptic_fpn_resnet50",
)(panoptic_fpn)
