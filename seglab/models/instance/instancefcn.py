"""InstanceFCN: instance-sensitive score maps assembled into a mask in every sliding window.

Dai, He, Li, Ren, Sun, "Instance-sensitive Fully Convolutional Networks", ECCV 2016 (arXiv 1603.08678).
Changes from its ancestors: where FCN (arXiv 1411.4038) computes one score map per class, it computes
k^2 instance-sensitive maps, each a pixel classifier of one relative position (cell) on an instance;
where DeepMask (arXiv 1506.06204) regresses each window's mask with an m^2-d fc layer, it copies the
window's k x k cells from those maps (``seglab.heads.instance_sensitive``). Fig. 2, top-down:

- trunk: VGG-16 with the hole algorithm (pool4 stride 1, conv5 dilated), conv5_3 at stride 8
  (sec. 3.3; ``DilatedVGGBackbone``, which removes pool5 too, a no-op on conv5_3);
- instance branch: 1x1 conv 512 + ReLU, 3x3 conv to k^2 = 25 maps (sec. 3.3, k = 5 in sec. 4.1);
- assembling: m x m = 21 x 21 windows on the stride-8 maps (a 168-px window, sec. 3.3);
- objectness branch: 3x3 conv 512 + ReLU, 1x1 conv, one score per window position (sec. 3.3);
- training (sec. 3.3): 256 windows sampled per image, positives and negatives by DeepMask's definition
  (``seglab.boxes.centred_windows``), up to 1:1; loss = sum over windows of the objectness logistic
  loss plus, for positive windows, the per-pixel logistic loss of the assembled mask against the
  instance's mask cropped to the window; scale jittering, shorter side 600 x 1.5^i, i = -4..1;
- inference: every window position of every image scale is scored; the best windows' masks are
  assembled, then NMS and pasting into the image (sec. 3.3).

Deviations (also in the ModelSpec and the builder's docstring):
- labelled detections: the paper's objectness is class-agnostic (categories came from MNC's
  classifier); here the objectness branch predicts K + 1 softmax scores (background 0) per window,
  so detections carry labels 1..K. With ``num_classes=2`` it is the paper's logistic objectness
  (a 2-way softmax of the same branch: one more 1x1 filter than the paper's single sigmoid output).
- sampling: an image with fewer than 128 positive windows makes the 256 up with negatives, as the
  Faster R-CNN sampler the paper cites (exact 1:1 would drop negatives); the objectness term is the
  mean over sampled windows and the mask term the mean over positive-window pixels (the paper writes
  an unnormalised sum); negatives lying mostly inside a crowd region are ignored (seglab's rule).
- mask targets: the instance's mask cropped to the window and resampled to m x m cells (RoIAlign,
  aligned, >= 0.5), the resolution the assembled mask has.
- inference details the paper leaves open: objectness above 0.05, the best 300 windows per scale,
  NMS 0.5 per class on the boxes of the binarised (>= 0.5) window masks, 100 detections; the masks,
  soft, are pasted bilinearly into their windows (``paste_window_masks``: cells of exactly 1/m of
  the window, 0 outside), and boxes come from the pasted masks.
- one training scale per batch (the paper's batch is one image per GPU); a ``backbone`` option takes
  a ResNet at output stride 8 (layer3/4 dilated) for CPU recipes; BN trains when there is any.
- stated from the paper as recalled (its text could not be re-read here): the DeepMask sample
  definition, the 1:1 ratio, the scale set 600 x 1.5^i (also used at test here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms

from seglab.backbones import build_backbone, load_pretrained
from seglab.backbones.dilated_vgg import DilatedVGGBackbone
from seglab.boxes import ignore_crowd_negatives, masks_to_boxes, sample_balanced
from seglab.boxes.centred_windows import label_centred_windows, paste_window_masks
from seglab.boxes.roi_masks import binary_mask_targets
from seglab.errors import ConfigError
from seglab.heads.instance_sensitive import InstanceAssembler, InstanceSensitiveBranch, ObjectnessBranch
from seglab.layers.normalize import Normalize
from seglab.losses.binary import binary_cross_entropy
from seglab.models.instance.inputs import (
    DETECTIONS_EXPORT_NOTE,
    ImageBatch,
    draw_min_size,
    prepare_inputs,
    scale_boxes,
    size_choices,
)
from seglab.registry import ModelSpec, register_model
from seglab.structures import InstancePrediction, InstanceTarget

STRIDE = 8  # conv5_3 with the hole algorithm (sec. 3.3)
SCALES = tuple(round(600 * 1.5**i) for i in range(-4, 2))  # shorter sides 119 ... 900 (sec. 3.3)


@dataclass
class WindowSettings:
    """Sampling and inference settings (sec. 3.3, and the choices declared in the module docstring)."""

    windows_per_image: int = 256  # sec. 3.3
    positive_fraction: float = 0.5  # 1:1 (sec. 3.3)
    score_threshold: float = 0.05
    pre_nms_top_n: int = 300  # per image scale
    nms_threshold: float = 0.5
    max_detections: int = 100


class InstanceFCN(nn.Module):
    """Trunk -> instance-sensitive maps and objectness -> assembled window masks (fig. 2).

    Args:
        backbone: images -> {"c5": stride-8 features}; instance_branch, objectness_branch: the heads.
        assembler: ``InstanceAssembler`` (k, m).
        num_classes: K + 1, background (label 0) included: the objectness branch's outputs.
        min_size: training shorter sides (an int or a tuple), one drawn per batch; None: native size.
        test_sizes: shorter sides of the test image pyramid; None: native size only.
        max_size: cap of the longer side (None: no cap).
        settings: sampling and inference settings.
    """

    def __init__(
        self, *, backbone: nn.Module, instance_branch: InstanceSensitiveBranch, objectness_branch: ObjectnessBranch,
        assembler: InstanceAssembler, num_classes: int, min_size: int | Sequence[int] | None = SCALES,
        test_sizes: int | Sequence[int] | None = SCALES, max_size: int | None = None, settings: WindowSettings | None = None,
    ) -> None:
        super().__init__()
        self.normalize, self.backbone = Normalize(), backbone
        self.instance_branch, self.objectness_branch, self.assembler = instance_branch, objectness_branch, assembler
        self.num_classes, self.max_size, self.settings = num_classes, max_size, settings or WindowSettings()
        self.min_size = size_choices(min_size)
        self.test_sizes = size_choices(test_sizes) or (None,)

    def forward(self, images: Any, targets: Any = None) -> list[InstancePrediction] | dict[str, Tensor]:
        if self.training:
            batch, targets = self.prepare(images, targets, draw_min_size(self.min_size, training=True))
            score_maps, objectness = self.branches(batch.tensor)
            return self.losses(score_maps, objectness, targets)
        per_scale = []
        for size in self.test_sizes:  # the image pyramid (sec. 3.3)
            batch, _ = self.prepare(images, None, size)
            score_maps, objectness = self.branches(batch.tensor)
            per_scale.append([self.candidates(score_maps, objectness, i, batch) for i in range(len(batch.image_sizes))])
        return [self.detect([scale[i] for scale in per_scale], size) for i, size in enumerate(batch.original_sizes)]

    def branches(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised images [N, 3, H, W] -> (k^2 score maps, K + 1 objectness logits), both at stride 8."""
        features = self.backbone(images)["c5"]
        return self.instance_branch(features), self.objectness_branch(features)

    def cost_forward(self, images: Tensor) -> None:
        """The dense computation of one inference (trunk and branches at every test scale), for counting
        FLOPs, also on the meta device; the assembling of the chosen windows, NMS and pasting are not counted."""
        for size in self.test_sizes:
            batch, _ = self.prepare(images, None, size)
            self.branches(batch.tensor)

    def prepare(self, images: Any, targets: Any, size: int | None) -> tuple[ImageBatch, list[InstanceTarget] | None]:
        """Check inputs, normalise, resize to shorter side ``size`` and pad to a multiple of 8."""
        return prepare_inputs(images, targets, model=type(self).__name__, training=self.training,
                              num_classes=self.num_classes, normalize=self.normalize, min_size=lambda: size,
                              max_size=self.max_size, size_divisible=STRIDE)

    def windows(self, height: int, width: int, device: torch.device) -> Tensor:
        """[H W, 4] XYXY pixel boxes of the windows at every map position, row-major (m cells of 8 px)."""
        m, before = self.assembler.m, self.assembler.m // 2
        rows, cols = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device),
                                    indexing="ij")
        x1, y1 = (cols.flatten() - before) * STRIDE, (rows.flatten() - before) * STRIDE
        return torch.stack([x1, y1, x1 + m * STRIDE, y1 + m * STRIDE], 1).float()

    def sample(self, windows: Tensor, target: InstanceTarget) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Sampled windows of one image: (positive indices, their object indices, negative indices, all labels)."""
        matched, positive, negative = label_centred_windows(target.boxes_xyxy, windows)
        labels = torch.full_like(matched, -1)
        labels[negative] = 0
        if len(target):
            labels[positive] = target.labels[matched[positive]]
        labels = ignore_crowd_negatives(labels, windows, target.crowd)
        s = self.settings
        pos, neg = sample_balanced(labels, num_samples=s.windows_per_image, positive_fraction=s.positive_fraction)
        return pos, matched[pos], neg, labels

    def losses(self, score_maps: Tensor, objectness: Tensor, targets: Sequence[InstanceTarget]) -> dict[str, Tensor]:
        """Softmax objectness over the sampled windows, per-pixel logistic loss of the positive windows' masks."""
        height, width = score_maps.shape[-2:]
        windows = self.windows(height, width, score_maps.device)
        logits, labels, assembled, crops = [], [], [], []
        for i, target in enumerate(targets):
            pos, matched, neg, window_labels = self.sample(windows, target)
            chosen = torch.cat([pos, neg])
            logits.append(objectness[i].flatten(1)[:, chosen].T)
            labels.append(window_labels[chosen])
            rows, cols = pos // width, pos % width
            assembled.append(self.assembler(score_maps, torch.full_like(pos, i), rows, cols))
            crops.append(binary_mask_targets(target.masks, matched, windows[pos], self.assembler.m))
        logits, labels = torch.cat(logits), torch.cat(labels)
        loss_objectness = F.cross_entropy(logits, labels) if len(labels) else objectness.sum() * 0.0
        loss_mask = binary_cross_entropy(torch.cat(assembled), torch.cat(crops)) + score_maps.sum() * 0.0
        return {"loss_objectness": loss_objectness, "loss_mask": loss_mask}

    def candidates(self, score_maps: Tensor, objectness: Tensor, image: int, batch: ImageBatch) -> dict[str, Tensor]:
        """One image at one scale: its best windows with their m x m mask probabilities, in input-image pixels."""
        s = self.settings
        size, original = batch.image_sizes[image], batch.original_sizes[image]
        rows_in, cols_in = -(-size[0] // STRIDE), -(-size[1] // STRIDE)  # windows centred inside the image
        probs = objectness[image, :, :rows_in, :cols_in].softmax(0)[1:]  # [K, h, w], background dropped
        scores, labels = probs.max(0)
        scores, labels = scores.flatten(), labels.flatten() + 1
        keep = (scores > s.score_threshold).nonzero().flatten()
        keep = keep[scores[keep].argsort(descending=True, stable=True)[: s.pre_nms_top_n]]
        rows, cols = keep // cols_in, keep % cols_in
        masks = self.assembler(score_maps, torch.full_like(rows, image), rows, cols).sigmoid()  # [D, m, m]
        windows = self.windows(*score_maps.shape[-2:], score_maps.device)[rows * score_maps.shape[-1] + cols]
        cells = masks_to_boxes(masks >= 0.5)  # in cells of the window
        boxes = windows[:, :2].repeat(1, 2) + cells * STRIDE
        nonempty = (cells[:, 2] > cells[:, 0]).nonzero().flatten()
        return {"masks": masks[nonempty], "windows": scale_boxes(windows[nonempty], size, original),
                "boxes": scale_boxes(boxes[nonempty], size, original), "scores": scores[keep][nonempty],
                "labels": labels[keep][nonempty]}

    def detect(self, per_scale: Sequence[dict[str, Tensor]], image_size: tuple[int, int]) -> InstancePrediction:
        """Merge one image's candidates of every scale: NMS per class, then paste the kept masks into the image."""
        s = self.settings
        c = {key: torch.cat([scale[key] for scale in per_scale]) for key in per_scale[0]}
        keep = batched_nms(c["boxes"], c["scores"], c["labels"], s.nms_threshold)[: s.max_detections]
        masks = paste_window_masks(c["masks"][keep], c["windows"][keep], image_size)
        boxes = masks_to_boxes(masks >= 0.5)
        nonempty = (boxes[:, 2] > boxes[:, 0]).nonzero().flatten()
        keep = keep[nonempty]
        return InstancePrediction(masks=masks[nonempty], boxes_xyxy=boxes[nonempty], labels=c["labels"][keep],
                                  scores=c["scores"][keep])


def instancefcn(
    *, num_classes: int, backbone: str = "vgg16", k: int = 5, window: int = 21, instance_channels: int = 512,
    objectness_channels: int = 512, min_size: int | Sequence[int] | None = SCALES,
    test_sizes: int | Sequence[int] | None = SCALES, max_size: int | None = None,
    pretrained_backbone: str | Path | None = None, windows_per_image: int = 256, score_threshold: float = 0.05,
    pre_nms_top_n: int = 300, nms_threshold: float = 0.5, max_detections: int = 100,
) -> InstanceFCN:
    """Build InstanceFCN (see the module docstring for the paper's settings and the deviations).

    Args:
        num_classes: K + 1, background included: the objectness branch's softmax outputs (2 = the
            paper's class-agnostic objectness).
        backbone: "vgg16" (the paper: conv5_3 of VGG-16 with the hole algorithm) or a ResNet
            ("resnet18" ... "resnet101") at output stride 8, for CPU recipes.
        k: cells per side of the relative-position grid (5, sec. 4.1); k^2 score maps.
        window: m, the window side in stride-8 cells (21: a 168-px window, sec. 3.3).
        instance_channels, objectness_channels: the branches' 512-d convs (sec. 3.3).
        min_size: training shorter sides, one drawn per batch (600 x 1.5^i, i = -4..1); None: native.
        test_sizes: shorter sides of the test pyramid (the same six); None: native size only.
        max_size: cap of the longer side (None, the paper gives none).
        pretrained_backbone: a local file of torchvision VGG-16 / ResNet weights (ImageNet in the paper).
        windows_per_image, score_threshold, pre_nms_top_n, nms_threshold, max_detections: sampling
            (256, sec. 3.3) and inference (0.05, 300 per scale, 0.5, 100).
    """
    if num_classes < 2:
        raise ConfigError(f"instancefcn: num_classes is {num_classes}; expected K + 1 >= 2 (background included)")
    if k < 1 or window < k:
        raise ConfigError(f"instancefcn: window {window} and k {k}: expected 1 <= k <= window (each of the k x k "
                          "cells needs at least one map cell)")
    if backbone.startswith("vgg"):
        encoder = DilatedVGGBackbone(arch=backbone)
        if pretrained_backbone is not None:
            load_pretrained(encoder, pretrained_backbone)
    else:
        encoder = build_backbone(backbone, output_stride=STRIDE, pretrained=pretrained_backbone)
    channels = encoder.feature_specs["c5"].channels
    return InstanceFCN(
        backbone=encoder, instance_branch=InstanceSensitiveBranch(channels, k=k, channels=instance_channels),
        objectness_branch=ObjectnessBranch(channels, num_outputs=num_classes, channels=objectness_channels),
        assembler=InstanceAssembler(k=k, m=window), num_classes=num_classes, min_size=min_size,
        test_sizes=test_sizes, max_size=max_size,
        settings=WindowSettings(windows_per_image=windows_per_image, score_threshold=score_threshold,
                                pre_nms_top_n=pre_nms_top_n, nms_threshold=nms_threshold,
                                max_detections=max_detections),
    )


# Parameters of the paper's configuration (class-agnostic objectness: num_classes=2, a 2-way softmax):
#   VGG-16's 13 conv layers                                 14,714,688
#   instance branch: 1x1 512*512 + 512, 3x3 512*25*9 + 25      262,656 + 115,225
#   objectness branch: 3x3 512*512*9 + 512, 1x1 512*2 + 2    2,359,808 + 1,026
#   total                                                   17,453,403  (the paper's 1-output sigmoid: 513 fewer)
register_model(
    ModelSpec(
        task="instance", paper="Instance-sensitive Fully Convolutional Networks", arxiv="1603.08678", year=2016,
        survey_row="InstanceFCN", input_multiple=STRIDE, exportable=False, loss_terms=("loss_objectness", "loss_mask"),
        export_note=DETECTIONS_EXPORT_NOTE,
        test_kwargs={"backbone": "resnet18", "window": 6, "instance_channels": 16, "objectness_channels": 16,
                     "min_size": None, "test_sizes": None, "windows_per_image": 64, "pre_nms_top_n": 50},
        reference_params=17_453_403, reference_kwargs={"num_classes": 2},
    ),
    name="instancefcn_vgg16",
)(instancefcn)
