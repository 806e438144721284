"""The MultiPath network: Fast R-CNN with foveal regions, skip connections and the integral loss.

Zagoruyko, Lerer, Lin, Pinheiro, Gross, Chintala, Dollar, "A MultiPath Network for Object Detection",
BMVC 2016 (arXiv 1604.02135). Changes from its ancestor, Fast R-CNN on VGG16 (arXiv 1504.08083), fig. 1:

- four foveal regions per proposal, 1x, 1.5x, 2x and 4x its box about the same centre, each with its own
  fc6 / fc7, the class heads on their concatenation (sec. 3.1);
- skip connections: the regions also pool conv4_3 (1/8) and conv3_3 (1/4), L2-normalised, x1000 and fused
  by a 1x1 conv to 512 channels (sec. 3.2); the extra 1.5x "het" tower regresses the boxes (the code);
- the integral loss: six class heads trained at IoU 0.50, 0.55 .. 0.75, averaged at test time (sec. 3.3);
- proposals from any proposer (``seglab.models.instance.proposals``): DeepMask / SharpMask in the paper
  (the survey's "SharpMask + MPN" row), whose masks become the detections' masks.
The second stage lives in ``seglab.heads.multipath``; the reference is facebookresearch/multipathnet
(``models/multipathnet.lua``, ``models/model_utils.lua``, ``scripts/train_multipathnet_coco.sh``).

Deviations (declared):
- all six heads train on every batch, their log losses averaged (the code's data threads each sample a
  batch at one threshold and train that head only); the box loss uses the IoU >= 0.5 positives;
- the trunk trains with the heads (the code keeps it frozen in phase 1, then frees conv3_1 on); ImageNet
  weights optional (``pretrained_backbone``), random otherwise; the 1x1 fusion convs keep PyTorch's default
  init (the code copies conv5 only without normalisation, which the paper's model does not use);
- box targets use Detectron's fixed weights (10, 10, 5, 5) (the code normalises by the training set's
  mean and std); RoIs: 64 per image, 25 % positive at IoU >= 0.5 (Fast R-CNN sec. 2.3), background
  below 0.5, sampled among the proposer's best 1000 and the jittered ground truth
  (``jittered_ground_truth``, standing in for the code's ground-truth boxes among the proposals);
- inference: the best 400 proposals (the script's test_best_proposals_number), regressed boxes clipped to
  the image, class-specific NMS at 0.3 (Fast R-CNN's test), score > 0.05, at most 100 detections; each
  detection's mask is its proposal's mask (``region_masks``: box proposers give filled boxes);
- for CPU runs: ``backbone="resnet18"`` (or another ResNet, taps res2 / res3 / res4 at 1/4, 1/8, 1/16), and
  ``proposer_in_training=False``: training on the jittered ground truth alone (wider jitter gives the
  negatives), the proposer running at test time only, as SharpMask's multi-scale inference costs seconds
  per image on 2 cores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import box_iou, clip_boxes_to_image

from seglab.boxes import BoxCoder, rois_with_index
from seglab.errors import ConfigError, InputError
from seglab.heads.multipath import MultiPathHead, SkipTrunk, integral_labels, integral_scores
from seglab.losses.detection import integral_losses
from seglab.heads.roi_box import BOX_WEIGHTS, SampledRoIs, detect_boxes, sample_rois
from seglab.layers.normalize import Normalize
from seglab.models.instance.inputs import (
    DETECTIONS_EXPORT_NOTE,
    ImageBatch,
    as_image_list,
    draw_min_size,
    empty_prediction,
    prepare_inputs,
    scale_boxes,
    size_choices,
)
from seglab.models.instance.proposals import (
    ImageProposals,
    ProposerSlot,
    build_proposer,
    checked_proposals,
    jittered_ground_truth,
    region_masks,
)
from seglab.registry import ModelSpec, register_model
from seglab.structures import InstancePrediction, InstanceTarget


@dataclass
class MultiPathSettings:
    """RoI sampling and inference (the module docstring says where each value comes from)."""

    rois_per_image: int = 64
    positive_fraction: float = 0.25
    fg_iou: float = 0.5
    proposals_per_image: tuple[int, int] = (1000, 400)  # (train, test)
    proposer_in_training: bool = True
    jitter_copies: int = 4  # jittered_ground_truth's defaults
    jitter_shift: float = 0.15
    score_threshold: float = 0.05
    nms_threshold: float = 0.3
    max_detections: int = 100


class MultiPath(nn.Module):
    """Proposals -> foveal regions on skip features -> integral class scores and boxes; masks from proposals.

    Args:
        trunk: ``SkipTrunk``; head: ``MultiPathHead``.
        proposer: a ``ProposerSlot`` (frozen), or None: then ``model(images, proposals=...)`` at test time
            (training uses the jittered ground truth alone).
        num_classes: K + 1, background included.
        min_size, max_size: shorter side (800, the script's scale) and cap of the longer side (1000); None: native.
        settings: sampling and inference.

    Forward: ``model(images, targets=None, *, proposals=None)``; proposals: one ``ImageProposals`` per image
    in its pixels (replacing the proposer's).
    """

    def __init__(self, *, trunk: SkipTrunk, head: MultiPathHead, proposer: ProposerSlot | None, num_classes: int,
                 min_size: int | Sequence[int] | None = 800, max_size: int | None = 1000,
                 settings: MultiPathSettings | None = None) -> None:
        super().__init__()
        self.normalize, self.trunk, self.head, self.proposer = Normalize(), trunk, head, proposer
        self.num_classes = num_classes
        self.min_size, self.max_size = size_choices(min_size), max_size
        self.settings = settings or MultiPathSettings()
        self.box_coder = BoxCoder(weights=BOX_WEIGHTS)

    def forward(self, images: Any, targets: Any = None, *,
                proposals: Sequence[ImageProposals] | None = None) -> list[InstancePrediction] | dict[str, Tensor]:
        batch, targets = self.prepare(images, targets)
        features = self.trunk(batch.tensor)
        found = self.image_proposals(as_image_list(images, model=type(self).__name__), proposals)
        if self.training:
            return self.losses(features, self.training_boxes(found, targets, batch), targets)
        return self.detect(features, found, batch)

    def image_proposals(self, images: list[Tensor], given: Sequence[ImageProposals] | None) -> list[ImageProposals]:
        """The proposals of each image in its pixels, best first: ``given``, else the proposer's (else none)."""
        count = self.settings.proposals_per_image[0 if self.training else 1]
        if given is None:
            if self.proposer is None and not self.training:
                raise InputError("MultiPath has no proposer: pass proposals=[ImageProposals, ...] (one per image) "
                                 "or build it with proposer=<checkpoint dir or {model, num_classes, kwargs}>")
            if self.proposer is None or (self.training and not self.settings.proposer_in_training):
                return [ImageProposals(i.new_zeros(0, 4), i.new_zeros(0)) for i in images]
            return [p.top(count) for p in self.proposer(images)]
        return [p.top(count) for p in checked_proposals(given, images, model="MultiPath")]

    def training_boxes(self, found: Sequence[ImageProposals], targets: Sequence[InstanceTarget],
                       batch: ImageBatch) -> list[Tensor]:
        """Per image, the jittered ground truth and the proposals' boxes, in resized-input pixels (only boxes:
        the loss does not read masks, so they are not filled as ``concat_proposals`` would)."""
        s = self.settings
        jittered = [jittered_ground_truth(t, copies=s.jitter_copies, max_shift=s.jitter_shift) for t in targets]
        return [torch.cat([j.boxes.to(p.boxes), scale_boxes(p.boxes, original, size)])
                for j, p, size, original in zip(jittered, found, batch.image_sizes, batch.original_sizes)]

    def losses(self, features: dict[str, Tensor], proposals: list[Tensor],
               targets: Sequence[InstanceTarget]) -> dict[str, Tensor]:
        """Sample RoIs (Fast R-CNN's rule at IoU 0.5), label them for every integral head, then the loss."""
        s = self.settings
        rois = sample_rois(proposals, targets, coder=self.box_coder, batch_per_image=s.rois_per_image,
                           positive_fraction=s.positive_fraction, fg_iou=s.fg_iou, bg_iou=s.fg_iou)
        class_logits, deltas = self.head(features, rois_with_index(rois.boxes))
        labels = integral_labels(torch.cat(rois.labels), matched_ious(rois, targets), self.head.thresholds)
        return integral_losses(class_logits, deltas, labels, torch.cat(rois.box_targets))

    def detect(self, features: dict[str, Tensor], found: Sequence[ImageProposals],
               batch: ImageBatch) -> list[InstancePrediction]:
        """Score every proposal (mean of the six softmaxes), regress its box, NMS per class; masks from proposals."""
        boxes = [scale_boxes(p.boxes, original, size) for p, size, original in
                 zip(found, batch.image_sizes, batch.original_sizes)]
        if sum(len(b) for b in boxes) == 0:
            return [empty_prediction(size, batch.tensor.device) for size in batch.original_sizes]
        class_logits, deltas = self.head(features, rois_with_index(boxes))
        probs = integral_scores(class_logits)
        s = self.settings  # detect_boxes takes logits: the log of probabilities softmaxes back to them
        detections = detect_boxes(probs.clamp(min=torch.finfo(probs.dtype).tiny).log(), deltas, boxes,
                                  batch.image_sizes, coder=self.box_coder, score_threshold=s.score_threshold,
                                  nms_threshold=s.nms_threshold, max_detections=s.max_detections, return_index=True)
        out = []
        for (det_boxes, scores, labels, index), p, size, original in zip(
                detections, found, batch.image_sizes, batch.original_sizes):
            det_boxes = clip_boxes_to_image(scale_boxes(det_boxes, size, original), original)
            masks = region_masks(p, original)[index] if len(index) else det_boxes.new_zeros(0, *original)
            out.append(InstancePrediction(masks=masks.float().clamp(0, 1), boxes_xyxy=det_boxes, labels=labels,
                                          scores=scores))
        return out

    def cost_forward(self, images: Tensor) -> None:
        """One inference's computation for counting FLOPs (also on the meta device): the trunk, and every
        region's fusion and towers on the test-time proposal count (400 per image); RoIPool, the proposer
        and NMS are not counted."""
        batch, _ = self.prepare(images, None)
        features = self.trunk(batch.tensor)
        self.head.cost(self.settings.proposals_per_image[1] * len(batch.image_sizes), features["conv5"])

    def prepare(self, images: Any, targets: Any) -> tuple[ImageBatch, list[InstanceTarget] | None]:
        """Check inputs, then normalise, resize and pad to a multiple of 16; targets follow the resize."""
        return prepare_inputs(images, targets, model=type(self).__name__, training=self.training,
                              num_classes=self.num_classes, normalize=self.normalize,
                              min_size=lambda: draw_min_size(self.min_size, training=self.training),
                              max_size=self.max_size, size_divisible=16)


def matched_ious(rois: SampledRoIs, targets: Sequence[InstanceTarget]) -> Tensor:
    """[R] IoU of every sampled RoI with its matched ground truth (0 in images without objects)."""
    ious = []
    for boxes, matched, target in zip(rois.boxes, rois.matched, targets):
        if len(target):
            iou = box_iou(target.boxes_xyxy.to(boxes.dtype), boxes)
            ious.append(iou[matched, torch.arange(len(boxes), device=boxes.device)])
        else:
            ious.append(boxes.new_zeros(len(boxes)))
    return torch.cat(ious)


def multipath(
    *, num_classes: int, proposer: str | Path | Mapping[str, Any] | None = None, backbone: str = "vgg16",
    fuse_channels: int = 512, tower_hidden: int = 4096, dropout: float = 0.5,
    min_size: int | Sequence[int] | None = 800, max_size: int | None = 1000, rois_per_image: int = 64,
    positive_fraction: float = 0.25, proposals_per_image: Sequence[int] = (1000, 400), score_threshold: float = 0.05,
    nms_threshold: float = 0.3, max_detections: int = 100, proposer_in_training: bool = True,
    jitter_copies: int = 4, jitter_shift: float = 0.15, pretrained_backbone: str | Path | None = None,
) -> MultiPath:
    """Build the MultiPath network (the module docstring gives the sources and the deviations).

    Args:
        num_classes: K + 1, background included (81 for COCO).
        proposer: a ``seglab train`` checkpoint directory of a proposer (SharpMask, DeepMask, an RPN model) or a
            spec {"model", "num_classes", "kwargs"} (random init); None: proposals passed to each call.
        backbone: "vgg16" (the paper's) or a ResNet ("resnet18" for CPU).
        fuse_channels: the skip fusion's 1x1 conv (512); tower_hidden: each region's fc6 / fc7 (4096);
            dropout: after fc6 and fc7 (0.5, VGG16's classifier).
        min_size, max_size: shorter side (800, train_multipathnet_coco.sh) and longer-side cap (1000); None: native.
        rois_per_image, positive_fraction: training RoIs (64, the script's batchSize; 0.25, Fast R-CNN).
        proposals_per_image: (train, test) proposals kept per image (1000, 400).
        score_threshold, nms_threshold, max_detections: inference (0.05, 0.3, 100).
        proposer_in_training: train on the proposer's proposals too (True, the paper); False: on the jittered
            ground truth alone (the proposer then runs at test time only: CPU runs, multipath_synthetic_cpu).
        jitter_copies, jitter_shift: the jittered ground truth (``jittered_ground_truth``: 4 copies, 0.15).
        pretrained_backbone: a local torchvision ImageNet checkpoint of the backbone.
    """
    counts = tuple(int(c) for c in proposals_per_image)
    checks = {  # field: (value, valid, expected)
        "fuse_channels": (fuse_channels, fuse_channels >= 1, ">= 1"),
        "tower_hidden": (tower_hidden, tower_hidden >= 1, ">= 1"),
        "dropout": (dropout, 0 <= dropout < 1, "in [0, 1)"),
        "rois_per_image": (rois_per_image, rois_per_image >= 1, ">= 1"),
        "positive_fraction": (positive_fraction, 0 < positive_fraction <= 1, "in (0, 1]"),
        "proposals_per_image": (counts, len(counts) == 2 and min(counts, default=0) >= 1, "(train, test), each >= 1"),
        "nms_threshold": (nms_threshold, 0 < nms_threshold <= 1, "in (0, 1]"),
        "max_detections": (max_detections, max_detections >= 1, ">= 1"),
        "jitter_copies": (jitter_copies, jitter_copies >= 1, ">= 1"),
        "jitter_shift": (jitter_shift, 0 <= jitter_shift < 1, "in [0, 1)"),
    }
    for field, (value, valid, expected) in checks.items():
        if not valid:
            raise ConfigError(f"multipath: {field} is {value!r}; expected {expected}")
    trunk = SkipTrunk(backbone, pretrained_backbone)
    slot = build_proposer(proposer, top_k=max(counts)) if proposer is not None else None
    model = MultiPath(
        trunk=trunk, proposer=slot, num_classes=num_classes, min_size=min_size, max_size=max_size,
        head=MultiPathHead(channels=trunk.channels, strides=trunk.strides, num_classes=num_classes,
                           fuse_channels=fuse_channels, hidden=tower_hidden, dropout=dropout),
        settings=MultiPathSettings(rois_per_image=rois_per_image, positive_fraction=positive_fraction,
                                   proposals_per_image=counts, score_threshold=score_threshold,
                                   nms_threshold=nms_threshold, max_detections=max_detections,
                                   proposer_in_training=bool(proposer_in_training), jitter_copies=int(jitter_copies),
                                   jitter_shift=float(jitter_shift)),
    )
    if slot is not None:
        model.rebuild_kwargs = {"proposer": slot.spec}  # a checkpoint rebuilds without the proposer's directory
    return model


# Parameters of the paper's configuration (VGG16, COCO: 81 classes, no proposer inside):
#   VGG16's 13 convs (3x3, biases)                                                           14,714,688
#   1x1 fusions: 1x (conv3+4+5) (256+512+512)*512+512 = 655,872; 1.5x, 2x (conv4+5) 2 x 524,800;
#                4x (conv5) 262,656; box tower 1.5x (conv3+4+5) 655,872                        2,624,000
#   5 towers x (fc6 512*7*7*4096 + 4096 = 102,764,544; fc7 4096*4096 + 4096 = 16,781,312)    597,729,280
#   6 integral heads x (4*4096*81 + 81 = 1,327,185)                                            7,963,110
#   box regression 4096*324 + 324                                                              1,327,428
#   total                                                                                    624,358,506
MULTIPATH_SPEC = ModelSpec(
    task="instance", paper="A MultiPath Network for Object Detection", arxiv="1604.02135", year=2016,
    survey_row="MultiPath", input_multiple=16, exportable=False, export_note=DETECTIONS_EXPORT_NOTE,
    loss_terms=("loss_cls", "loss_box_reg"),
    test_kwargs={"backbone": "resnet18", "fuse_channels": 8, "tower_hidden": 16, "min_size": None,
                 "rois_per_image": 16, "proposals_per_image": (50, 20),
                 "proposer": {"model": "deepmask_vgg11", "num_classes": 2,
                              "kwargs": {"backbone": "resnet18", "patch_size": 32, "context": 0,
                                         "embedding_channels": 4, "embedding_dim": 8, "mask_out": 8,
                                         "score_hidden": [8], "scale_exponents": [0.0, 0.0], "top_k": 20}}},
    reference_params=624_358_506, reference_kwargs={"num_classes": 81},
)
register_model(MULTIPATH_SPEC, name="multipath_vgg16")(multipath)
