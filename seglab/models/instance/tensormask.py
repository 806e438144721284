"""TensorMask: dense sliding-window instance segmentation with 4D (V, U, H, W) mask tensors.

Chen, Girshick, He, Dollar, "TensorMask: A Foundation for Dense Object Segmentation" (arXiv 1903.12174).
Changes from its ancestor (RetinaNet, arXiv 1708.02002): besides a class and a box for every sliding
window, a mask branch predicts a mask for every window, as a 4D tensor; the tensor bipyramid (sec. 3-4;
``seglab.heads.tensormask``) gives windows of level l masks of (S 2^l)^2 cells at 4 pixels,
made from aligned-form predictions on P2 by ``SwapAlign2Nat(2^l)`` (``seglab.layers.swap_align2nat``).
One stage: no proposals, no RoI pooling. Settings of the authors' release (detectron2
``projects/TensorMask``: ``arch.py``, ``config.py``, ``configs/Base-TensorMask.yaml``):

- ResNet-FPN P2..P7, RetinaNet-style (P6 from C5, P7 from P6; FPN.FUSE_TYPE "avg"); images padded
  to a multiple of 128, the stride of P7 (the FPN's size_divisibility), so every level aligns;
- 2 anchors per position, ratio 1, sizes [44, 60] x 2^l on P_(l+2) (ANCHOR_GENERATOR.SIZES); mask
  sizes S = 44 / 4 = 11 and 60 / 4 = 15 on P2;
- assignment (``seglab.boxes.containment``): the window contains the box, its size minus its unit is
  at most twice the box's longer side (at least 40 = 44 - 4), its centre within one unit; windows
  matching two boxes are negative;
- losses, each divided by the number of foreground windows: FL* with gamma 3, alpha 0.3 over all
  windows and classes (FOCAL_LOSS_GAMMA, FOCAL_LOSS_ALPHA), box deltas with weights (1.5, 1.5, 0.75,
  0.75) (BBOX_REG_WEIGHTS) under smooth-L1 with beta 0 (= L1, the release's ``smooth_l1_loss(beta=0)``),
  mask BCE with positive pixels weighted 1.5 and each window's sum by 2 / S^2 (POSITIVE_WEIGHT,
  MASK_LOSS_WEIGHT) against the ground truth cropped to the window (RoIAlign aligned, >= 0.5);
- inference: scores > 0.05, the best 6000 (window, class) pairs over all levels, boxes decoded and
  clipped, NMS 0.5 per class, 100 detections, each mask the sigmoid of its window's S 2^l x S 2^l
  cells pasted into the window's anchor box (SCORE_THRESH_TEST, TOPK_CANDIDATES_TEST, NMS_THRESH_TEST,
  TEST.DETECTIONS_PER_IMAGE);
- scales: shorter side 640..800 in training (the release's 6x schedule, the paper's scale jitter),
  800 at test, longer side at most 1333.

Deviations: SwapAlign2Nat runs in pure PyTorch (the release's is CUDA only), same values; the losses'
foreground count is the whole batch's (the release's is per GPU, 2 images of 16); masks are
pasted with seglab's ``paste_masks`` (torchvision's algorithm) and returned soft, where the release
pastes with detectron2's ``paste_masks_in_image`` and binarises at 0.5; training sizes are drawn from
6 values (640, 672, ..., 800) rather than the continuous range; windows that would be negatives but
lie mostly (> 0.7) inside a COCO crowd region are ignored, as seglab's Mask R-CNN does (the release
drops crowd annotations, so they are plain negatives); without weights, batch norm trains (FrozenBN
and frozen stem + res2 when ImageNet weights are given, as the release); labels are 1..K (seglab's
``num_classes`` = K + 1 counts the background, which has no output: the head predicts K sigmoids).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, clip_boxes_to_image

from seglab.boxes import AnchorGenerator, BoxCoder, ignore_crowd_negatives, paste_masks
from seglab.boxes.containment import assign_by_containment
from seglab.boxes.roi_masks import binary_mask_targets
from seglab.errors import ConfigError
from seglab.heads.tensormask import AnchorGrid, DenseOutputs, TensorMaskHead, flatten_levels, window_grid
from seglab.layers.normalize import Normalize
from seglab.losses.detection import smooth_l1, tensormask_mask_loss
from seglab.losses.focal import sigmoid_focal_loss_star
from seglab.models.instance.inputs import (
    DETECTIONS_EXPORT_NOTE,
    ImageBatch,
    draw_min_size,
    prepare_inputs,
    scale_boxes,
    size_choices,
)
from seglab.models.instance.mask_rcnn import resnet_encoder
from seglab.necks.fpn import FPN
from seglab.registry import ModelSpec, register_model
from seglab.structures import InstancePrediction, InstanceTarget

LEVELS = ("p2", "p3", "p4", "p5", "p6", "p7")  # TENSOR_MASK.IN_FEATURES
ANCHOR_SIZES = (44, 60)  # ANCHOR_GENERATOR.SIZES on P2; x 2^l on level l
FINE_STRIDE = 4  # stride of P2: the mask cell of every level, and S = anchor size / 4
BOX_WEIGHTS = (1.5, 1.5, 0.75, 0.75)  # TENSOR_MASK.BBOX_REG_WEIGHTS
TRAIN_SIZES = (640, 672, 704, 736, 768, 800)  # shorter side 640-800 (6x schedule); the last one at test
SIZE_DIVISIBLE = 128  # the stride of P7


@dataclass
class DenseSettings:
    """Loss and inference settings (detectron2 TensorMask config keys in brackets)."""

    focal_alpha: float = 0.3  # FOCAL_LOSS_ALPHA
    focal_gamma: float = 3.0  # FOCAL_LOSS_GAMMA
    mask_loss_weight: float = 2.0  # MASK_LOSS_WEIGHT
    mask_pos_weight: float = 1.5  # POSITIVE_WEIGHT
    score_threshold: float = 0.05  # SCORE_THRESH_TEST
    topk_candidates: int = 6000  # TOPK_CANDIDATES_TEST
    nms_threshold: float = 0.5  # NMS_THRESH_TEST
    max_detections: int = 100  # TEST.DETECTIONS_PER_IMAGE


class TensorMask(nn.Module):
    """Backbone -> FPN P2..P7 -> class, box and bipyramid mask heads on every window.

    Args:
        backbone: images -> {"c2".."c5"}; neck: -> {"p2".."p7"}; head: ``TensorMaskHead``.
        anchor_sizes: per level, the anchor sizes (([44, 60] x 2^l)).
        num_classes: K + 1, background (label 0) included; the head has K outputs per anchor.
        min_size, max_size: shorter side (a tuple: drawn per image in training, the last at test)
            and the cap of the longer side; None: native size.
        settings: loss and inference settings.
    """

    def __init__(
        self, *, backbone: nn.Module, neck: nn.Module, head: TensorMaskHead, anchor_sizes: Sequence[Sequence[int]],
        num_classes: int, min_size: int | Sequence[int] | None = TRAIN_SIZES, max_size: int | None = 1333,
        settings: DenseSettings | None = None,
    ) -> None:
        super().__init__()
        self.normalize, self.backbone, self.neck, self.head = Normalize(), backbone, neck, head
        self.anchors = AnchorGenerator(sizes=anchor_sizes, ratios=[(1.0,)] * len(anchor_sizes))
        self.num_classes = num_classes
        self.min_size = size_choices(min_size)
        self.max_size, self.settings = max_size, settings or DenseSettings()
        self.box_coder = BoxCoder(weights=BOX_WEIGHTS)
        # the scale rule's floor: smallest anchor minus its unit (arch.py min_anchor_size)
        self.min_anchor_size = float(min(anchor_sizes[0]) - FINE_STRIDE)

    def forward(self, images: Any, targets: Any = None) -> list[InstancePrediction] | dict[str, Tensor]:
        batch, targets = self.prepare(images, targets)
        features = self.neck(self.backbone(batch.tensor))
        outputs = self.head([features[level] for level in LEVELS])
        grid = self.anchor_grid(outputs, batch)
        if self.training:
            return self.losses(outputs, grid, targets)
        return [self.detect(outputs, grid, i, batch) for i in range(len(batch.image_sizes))]

    def cost_forward(self, images: Tensor) -> None:
        """The dense computation of one inference, for counting FLOPs (also on the meta device): every
        level's towers, bipyramid and SwapAlign2Nat. Selection, NMS and pasting are not counted."""
        batch, _ = self.prepare(images, None)
        features = self.neck(self.backbone(batch.tensor))
        self.head([features[level] for level in LEVELS])

    def prepare(self, images: Any, targets: Any) -> tuple[ImageBatch, list[InstanceTarget] | None]:
        """Check inputs, then normalise, resize and pad to a multiple of 128; targets follow the resize."""
        return prepare_inputs(images, targets, model=type(self).__name__, training=self.training,
                              num_classes=self.num_classes, normalize=self.normalize, min_size=self._min_size,
                              max_size=self.max_size, size_divisible=SIZE_DIVISIBLE)

    def _min_size(self) -> int | None:
        return draw_min_size(self.min_size, training=self.training)

    def anchor_grid(self, outputs: DenseOutputs, batch: ImageBatch) -> AnchorGrid:
        """The windows of the padded batch with their level, position and anchor index."""
        grids = [tuple(x.shape[-2:]) for x in outputs.class_logits]
        boxes = self.anchors(grids, batch.padded_size, device=batch.tensor.device)
        return window_grid(boxes, grids, batch.padded_size, len(self.head.mask_sizes))

    def assign(self, grid: AnchorGrid, target: InstanceTarget) -> tuple[Tensor, Tensor]:
        """Per window: label (1..K positive, 0 negative, -1 ignored in a crowd) and matched box index."""
        matched, positive = assign_by_containment(target.boxes_xyxy, grid.boxes, grid.unit,
                                                  min_anchor_size=self.min_anchor_size)
        labels = torch.where(positive, target.labels[matched] if len(target) else matched, 0)
        return ignore_crowd_negatives(labels, grid.boxes, target.crowd), matched

    def losses(self, outputs: DenseOutputs, grid: AnchorGrid, targets: Sequence[InstanceTarget]) -> dict[str, Tensor]:
        """FL* over every window and class, L1 on the foreground boxes, BCE of the foreground masks; / #fg."""
        s = self.settings
        logits = flatten_levels(outputs.class_logits, self.num_classes - 1)  # [N, M, K]
        deltas = flatten_levels(outputs.box_deltas, 4)
        labels, matched = (torch.stack(t) for t in zip(*(self.assign(grid, t) for t in targets)))  # [N, M]
        foreground, valid = labels > 0, labels >= 0
        normaliser = max(1, int(foreground.sum()))
        class_targets = F.one_hot(labels.clamp_min(0), self.num_classes)[..., 1:].to(logits.dtype)
        loss_cls = sigmoid_focal_loss_star(logits[valid], class_targets[valid], alpha=s.focal_alpha,
                                           gamma=s.focal_gamma)
        images, windows = foreground.nonzero(as_tuple=True)
        gt_boxes = torch.cat([targets[i].boxes_xyxy[matched[i, windows[images == i]]] for i in range(len(targets))])
        box_targets = self.box_coder.encode(gt_boxes, grid.boxes[windows])
        loss_box = smooth_l1(deltas[images, windows], box_targets, beta=0.0).sum() + deltas.sum() * 0.0
        loss_mask = self.mask_loss(outputs.masks, grid, foreground, matched, targets)
        return {"loss_cls": loss_cls / normaliser, "loss_box_reg": loss_box / normaliser,
                "loss_mask": loss_mask / normaliser}

    def mask_loss(self, masks: list[list[Tensor]], grid: AnchorGrid, foreground: Tensor, matched: Tensor,
                  targets: Sequence[InstanceTarget]) -> Tensor:
        """Summed mask BCE of the foreground windows, one (level, anchor size) at a time."""
        total = masks[0][0].sum() * 0.0
        for level, per_anchor in enumerate(masks):
            for anchor, logits in enumerate(per_anchor):  # [N, (S 2^l)^2, H_l, W_l]
                here = (grid.level == level) & (grid.anchor == anchor)
                images, windows = (foreground & here).nonzero(as_tuple=True)
                if len(windows) == 0:
                    total = total + logits.sum() * 0.0
                    continue
                side = math.isqrt(logits.shape[1])
                predicted = logits[images, :, grid.row[windows], grid.col[windows]].reshape(-1, side, side)
                per_image = [windows[images == i] for i in range(len(targets))]
                crops = torch.cat([binary_mask_targets(t.masks, matched[i, w], grid.boxes[w], side)
                                   for i, (t, w) in enumerate(zip(targets, per_image))])
                total = total + tensormask_mask_loss(predicted, crops, pos_weight=self.settings.mask_pos_weight,
                                                     loss_weight=self.settings.mask_loss_weight)
        return total

    def detect(self, outputs: DenseOutputs, grid: AnchorGrid, image: int, batch: ImageBatch) -> InstancePrediction:
        """One image's detections: best-scoring (window, class) pairs, boxes, NMS, masks of their windows."""
        s, classes = self.settings, self.num_classes - 1
        probs = flatten_levels([x[image: image + 1] for x in outputs.class_logits], classes)[0].sigmoid().flatten()
        candidates = (probs > s.score_threshold).nonzero().flatten()
        scores, order = probs[candidates].sort(descending=True)
        top, scores = candidates[order[: s.topk_candidates]], scores[: s.topk_candidates]
        windows, labels = top // classes, top % classes
        deltas = flatten_levels([x[image: image + 1] for x in outputs.box_deltas], 4)[0]
        size, original = batch.image_sizes[image], batch.original_sizes[image]
        boxes = clip_boxes_to_image(self.box_coder.decode(deltas[windows], grid.boxes[windows]), size)
        nonempty = ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).nonzero().flatten()
        keep = nonempty[batched_nms(boxes[nonempty], scores[nonempty], labels[nonempty], s.nms_threshold)]
        keep = keep[: s.max_detections]
        windows = windows[keep]
        boxes = clip_boxes_to_image(scale_boxes(boxes[keep], size, original), original)
        masks = self.window_masks(outputs.masks, grid, windows, image, scale_boxes(grid.boxes[windows], size, original),
                                  original)
        return InstancePrediction(masks=masks, boxes_xyxy=boxes, labels=labels[keep] + 1, scores=scores[keep])

    def window_masks(self, masks: list[list[Tensor]], grid: AnchorGrid, windows: Tensor, image: int, anchors: Tensor,
                     image_size: tuple[int, int]) -> Tensor:
        """Probabilities of the windows' natural masks pasted into their anchor boxes: [D, H, W] in [0, 1]."""
        pasted = anchors.new_zeros(len(windows), *image_size)
        for level, per_anchor in enumerate(masks):
            for anchor, logits in enumerate(per_anchor):
                chosen = ((grid.level[windows] == level) & (grid.anchor[windows] == anchor)).nonzero().flatten()
                if len(chosen):
                    side = math.isqrt(logits.shape[1])
                    cells = logits[image, :, grid.row[windows[chosen]], grid.col[windows[chosen]]]  # [(S 2^l)^2, D]
                    probs = cells.T.reshape(-1, side, side).sigmoid()
                    pasted[chosen] = paste_masks(probs, anchors[chosen], image_size)
        return pasted


def tensormask(
    *, num_classes: int, backbone: str = "resnet50", fpn_channels: int = 256, cls_channels: int = 256,
    box_channels: int = 128, mask_channels: int = 128, anchor_sizes: Sequence[int] = ANCHOR_SIZES,
    min_size: int | Sequence[int] | None = TRAIN_SIZES, max_size: int | None = 1333, frozen_bn: bool | None = None,
    trainable_layers: int | None = None, pretrained_backbone: str | Path | None = None,
    score_threshold: float = 0.05, topk_candidates: int = 6000, nms_threshold: float = 0.5, max_detections: int = 100,
) -> TensorMask:
    """Build TensorMask (bipyramid, aligned representation) with a ResNet-FPN backbone.

    Args:
        num_classes: K + 1, background included (81 for COCO's 80 classes).
        backbone: "resnet50" (the paper's R-50-FPN), "resnet101", or "resnet18"/"resnet34" for CPU.
        fpn_channels, cls_channels, box_channels, mask_channels: FPN d = 256, class tower 256, box and
            mask towers 128 (the release); smaller for CPU recipes.
        anchor_sizes: the anchors of P2, multiples of 4 (44, 60); level l uses them x 2^l and their
            masks are (size / 4 x 2^l)^2 cells.
        min_size, max_size: resize (training: shorter side drawn from the tuple, test: its last value);
            None keeps native sizes.
        frozen_bn, trainable_layers, pretrained_backbone: as ``mask_rcnn_resnet50_fpn`` (FrozenBN and 3
            trained stages when ImageNet weights are given, the release's FREEZE_AT = 2).
        score_threshold, topk_candidates, nms_threshold, max_detections: inference (0.05, 6000, 0.5, 100).
    """
    if num_classes < 2:
        raise ConfigError(f"tensormask: num_classes is {num_classes}; expected K + 1 >= 2 (background included)")
    if any(int(size) % FINE_STRIDE or int(size) <= 0 for size in anchor_sizes):
        raise ConfigError(f"tensormask: anchor_sizes {list(anchor_sizes)} must be positive multiples of {FINE_STRIDE} "
                          "(the P2 stride: masks have size / 4 cells)")
    encoder, rebuild = resnet_encoder(backbone, pretrained_backbone=pretrained_backbone, frozen_bn=frozen_bn,
                                      trainable_layers=trainable_layers, frozen_bn_eps=None, weighted=False,
                                      coco_v1_weights=False)
    neck = FPN(encoder.feature_specs, out_channels=fpn_channels, top_block="p6p7", fuse="avg")
    head = TensorMaskHead(fpn_channels, num_classes=num_classes - 1, num_levels=len(LEVELS),
                          mask_sizes=[int(s) // FINE_STRIDE for s in anchor_sizes], cls_channels=cls_channels,
                          box_channels=box_channels, mask_channels=mask_channels)
    model = TensorMask(
        backbone=encoder, neck=neck, head=head, num_classes=num_classes, min_size=min_size, max_size=max_size,
        anchor_sizes=[tuple(int(s) * 2**level for s in anchor_sizes) for level in range(len(LEVELS))],
        settings=DenseSettings(score_threshold=score_threshold, topk_candidates=topk_candidates,
                               nms_threshold=nms_threshold, max_detections=max_detections),
    )
    model.rebuild_kwargs = {k: v for k, v in rebuild.items() if k != "frozen_bn_eps"}
    return model


# Parameters of the reference (R-50-FPN, 80 classes: num_classes=81 here, K = 80 sigmoid outputs), with
# trainable BN affine terms counted as torchvision counts them (detectron2's FrozenBN keeps 53,120 of them
# as buffers):
#   ResNet-50 without fc                                   23,508,032
#   FPN laterals 1x1 (256+512+1024+2048)*256 + 4*256         984,064
#   FPN outputs 3x3 4*(256*256*9 + 256)                    2,360,320
#   P6 3x3 on C5 2048*256*9 + 256, P7 3x3 256*256*9 + 256  4,718,848 + 590,080
#   class tower 4*(256*256*9 + 256)                        2,360,320
#   class logits 3x3 256*(2*80)*9 + 160                      368,800
#   box tower (256*128*9 + 128) + 3*(128*128*9 + 128)        737,792
#   box deltas 3x3 128*(2*4)*9 + 8                             9,224
#   mask tower (as the box tower)                            737,792
#   mask fuse 3x3 128*128*9 + 128                            147,584
#   mask 1x1 convs 128*121 + 121, 128*225 + 225           15,609 + 29,025
#   total                                                 36,567,490
register_model(
    ModelSpec(
        task="instance", paper="TensorMask: A Foundation for Dense Object Segmentation", arxiv="1903.12174", year=2019,
        survey_row="TensorMask", exportable=False, loss_terms=("loss_cls", "loss_box_reg", "loss_mask"),
        export_note=DETECTIONS_EXPORT_NOTE,
        test_kwargs={"backbone": "resnet18", "fpn_channels": 16, "cls_channels": 16, "box_channels": 8,
                     "mask_channels": 8, "min_size": None, "topk_candidates": 200},
        reference_params=36_567_490, reference_kwargs={"num_classes": 81},
    ),
    name="tensormask_resnet50_fpn",
)(tensormask)
