"""SDS: classify region proposals with a box and a region network, then refine the kept regions.

Hariharan, Arbelaez, Girshick, Malik, "Simultaneous Detection and Segmentation", ECCV 2014 (arXiv
1407.1808). Changes from its ancestor R-CNN (arXiv 1311.2524): the candidates are regions (MCG
segments), not boxes; a second network sees the region with its background masked out; detections
are suppressed by region overlap; a top-down figure-ground prediction refines each region. Fig. 1:

- proposals: any proposer of ``seglab.models.instance.proposals`` (the paper: 2000 MCG regions per
  image, sec. 3.1), or ``proposals=[ImageProposals, ...]`` passed to ``forward``;
- features (``seglab.heads.sds.TwoPathwayNet``, network C of sec. 3.2): the region's box, enlarged by
  16 px of context at the 227-px scale (R-CNN's padding; ``expand_box(box, 16/(227-32))`` in the code),
  is warped to 227 x 227; the box pathway sees the crop, the region pathway the same crop with the
  pixels outside the region set to the image mean, which is 0 after the model's normalisation; each
  is AlexNet conv1 .. fc7 (4096), concatenated to 8192;
- classification (sec. 3.3): one linear layer with C + 1 outputs (background and C categories);
- region NMS per category on mask IoU (``mask_iou``): the authors' ``misc/region_nms.m`` suppresses
  every region that overlaps a kept one at all (``nms_threshold`` 0: IoU > 0);
- refinement (sec. 4, ``refinement/train_refiner.m``): per category, a 10 x 10 grid of logistic
  figure-ground classifiers on the box pathway's pool5 and the region's 10 x 10 mask in the enlarged
  box, trained on regions overlapping their ground truth by >= 0.7; then, per category, a logistic
  combination of the coarse mask and the region (``seglab.heads.sds.FigureGround``).

Deviations (also in the builder's docstring):
- MCG has no Python port: proposals come from a seglab proposer (SharpMask on the CPU recipe) and, in
  training, from the jittered ground truth beside them (``jittered_ground_truth``);
- torchvision's AlexNet (64, 192, 384, 256, 256 channels, no grouping or LRN) instead of R-CNN's
  CaffeNet (96, 256, 384, 384, 256); ImageNet weights are optional (``pretrained_backbone``, both
  pathways), random by default; CPU variants use narrow copies of its layers (``widths``);
- the paper trains the networks (fine-tuning with softmax), then linear SVMs, then the refinement
  classifiers, each in its own stage; here everything trains jointly: the classifier with softmax
  cross-entropy (its probabilities score the detections) instead of hinge-loss SVMs, both refinement
  stages with logistic (BCE) losses; the second stage sees the coarse mask detached and works per pixel
  of a ``refine_size`` crop (the code: per superpixel);
- a region is its mask >= 0.5; pixels of a crop outside the image are the mean (0), as R-CNN's crops;
- the proposer hands on its best ``num_proposals`` (DeepMask and SharpMask then refine only those);
  ``train_with_proposer=False`` (the CPU recipe, where SharpMask costs ~1.5 s an image)
  trains on the jittered ground truth and ``random_negatives`` random boxes instead of the proposer's regions;
- inference keeps, per category, regions with a probability >= ``score_threshold`` (the best
  ``pre_nms_top_n``), then ``max_detections`` overall; boxes are the proposal boxes clipped to the image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from seglab.boxes import mask_targets, paste_masks, sample_balanced
from seglab.boxes.roi_masks import binary_mask_targets
from seglab.errors import ConfigError, InputError
from seglab.heads.sds import (
    ALEXNET_WIDTHS, FC_CHANNELS, POOL5_SIZE, AlexNetPathway, FigureGround, TwoPathwayNet, expand_boxes, masked_crops,
)
from seglab.layers.normalize import Normalize
from seglab.models.instance.deepmask import DEEPMASK_SPEC
from seglab.models.instance.inputs import DETECTIONS_EXPORT_NOTE, as_image_list, as_targets, empty_prediction
from seglab.models.instance.proposals import (
    ImageProposals, ProposerSlot, build_proposer, checked_proposals, concat_proposals, jittered_ground_truth, mask_iou,
    region_masks,
)
from seglab.registry import ModelSpec, register_model
from seglab.structures import InstancePrediction, InstanceTarget

CROP_SIZE = 227  # the warped box (sec. 3.2)
CONTEXT = 16 / (227 - 32)  # R-CNN's 16 px of context around a box warped to 227 (the code's expand_box)
COST_PROPOSALS = 2000  # MCG regions per image (sec. 3.1): the fixed load of cost_forward


@dataclass
class SDSSettings:
    """Training and inference settings (module docstring; R-CNN sec. 2.3 for the mini-batch)."""

    num_proposals: int = 2000  # proposer regions per image (sec. 3.1)
    batch_per_image: int = 128  # R-CNN fine-tuning: 128 regions ...
    positive_fraction: float = 0.25  # ... 32 of them foreground
    fg_iou: float = 0.5  # a positive overlaps its ground truth by >= 0.5 (sec. 3.3, as R-CNN fine-tuning)
    refine_iou: float = 0.7  # refinement trains on regions overlapping their ground truth by >= 0.7 (the code)
    refine_size: int = 28  # pixels per side where the second refinement stage trains
    score_threshold: float = 0.05
    nms_threshold: float = 0.0  # misc/region_nms.m: any overlap suppresses
    pre_nms_top_n: int = 200
    max_detections: int = 100
    chunk: int = 256  # crops per forward at inference (memory)
    jitter_copies: int = 4  # copies of each ground-truth object among the training regions ...
    jitter_shift: float = 0.15  # ... shifted by up to this fraction of its box (``jittered_ground_truth``)
    train_with_proposer: bool = True  # training regions include the proposer's (the paper: MCG's)
    random_negatives: int = 0  # random boxes added as training regions (a cheap stand-in for the proposer's)


def region_nms(scores: Tensor, regions: Tensor, threshold: float) -> Tensor:
    """Greedy NMS on mask IoU: indices into ``scores`` [P] of the kept regions [P, H, W], best first."""
    order = scores.argsort(descending=True, stable=True)
    iou = mask_iou(regions[order], regions[order])
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=scores.device)
    keep = []
    for i in range(len(order)):
        if not bool(suppressed[i]):
            keep.append(i)
            suppressed |= iou[i] > threshold
    return order[torch.tensor(keep, dtype=torch.int64, device=scores.device)]


def random_boxes(count: int, size: tuple[int, int], device: torch.device) -> ImageProposals:
    """``count`` box proposals with corners drawn uniformly in an image of ``size`` (H, W), score 0."""
    corners = torch.rand(count, 2, 2, device=device) * torch.tensor([size[1], size[0]], device=device)
    low = corners.amin(dim=1).floor()
    high = torch.minimum(corners.amax(dim=1).ceil() + 1, torch.tensor([size[1], size[0]], device=device))
    return ImageProposals(torch.cat([low, high], dim=1), torch.zeros(count, device=device))


class SDS(nn.Module):
    """Proposals -> two-pathway features -> classifier -> region NMS -> figure-ground refinement (fig. 1).

    Args:
        net: the two AlexNet pathways; classifier: 2 * fc7 -> C + 1 logits; refinement: ``FigureGround``.
        proposer: a ``ProposerSlot`` (frozen) or None (then ``forward`` needs ``proposals=``).
        num_classes: C + 1, background (label 0) included; crop_size: the warped box side (227).
        context: the box enlargement per side, a fraction of its side; settings: ``SDSSettings``.
    """

    def __init__(self, *, net: TwoPathwayNet, classifier: nn.Linear, refinement: FigureGround,
                 proposer: ProposerSlot | None, num_classes: int, crop_size: int = CROP_SIZE,
                 context: float = CONTEXT, settings: SDSSettings | None = None) -> None:
        super().__init__()
        self.normalize, self.net, self.classifier, self.refinement = Normalize(), net, classifier, refinement
        self.proposer, self.num_classes, self.crop_size, self.context = proposer, num_classes, crop_size, context
        self.settings = settings or SDSSettings()

    def forward(self, images: Any, targets: Any = None, *,
                proposals: Sequence[ImageProposals] | None = None) -> list[InstancePrediction] | dict[str, Tensor]:
        images = as_image_list(images, model="SDS")
        given = checked_proposals(proposals, images, model="SDS")
        if self.training:
            if targets is None:
                raise InputError("SDS is in training mode: pass targets, or call model.eval() to predict")
            return self.losses(images, as_targets(targets, images, model="SDS", num_classes=self.num_classes), given)
        if given is None:
            given = [p.top(self.settings.num_proposals) for p in self.propose(images)]
        return [self.detect(image, p) for image, p in zip(images, given)]

    def propose(self, images: list[Tensor]) -> list[ImageProposals]:
        """The proposer's regions of each image."""
        if self.proposer is None:
            raise InputError("SDS has no proposer: pass proposals=[ImageProposals, ...] or build it with "
                             "proposer=<a seglab train checkpoint directory or {model, num_classes, kwargs}>")
        return self.proposer(images)

    def pathway_inputs(self, image: Tensor, boxes: Tensor, regions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The warped crops of one image [3, H, W] for boxes [P, 4] and their regions [P, H, W]:
        (box crops [P, 3, S, S] normalised, region-pathway crops (background 0 = the mean), region masks [P, S, S])."""
        expanded = expand_boxes(boxes.float(), self.context)
        rois = torch.cat([expanded.new_zeros(len(expanded), 1), expanded], dim=1)
        box_crops = roi_align(self.normalize(image[None]), rois, (self.crop_size,) * 2, spatial_scale=1.0,
                              sampling_ratio=0, aligned=True)
        index = torch.arange(len(boxes), device=boxes.device)
        region_crops = binary_mask_targets(regions, index, expanded, self.crop_size)
        return box_crops, masked_crops(box_crops, region_crops), region_crops

    def features(self, image: Tensor, boxes: Tensor, regions: Tensor) -> tuple[Tensor, Tensor]:
        """(box pool5 [P, C5, 6, 6], class logits [P, C + 1]) of the regions of one image."""
        box_crops, region_inputs, _ = self.pathway_inputs(image, boxes, regions)
        pool5, features = self.net(box_crops, region_inputs)
        return pool5, self.classifier(features)

    def coarse_logits(self, pool5: Tensor, boxes: Tensor, regions: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(coarse figure-ground logits [R, g, g] of category ``labels``, the enlarged boxes [R, 4])."""
        expanded = expand_boxes(boxes.float(), self.context)
        grid = mask_targets(regions, expanded, torch.arange(len(boxes), device=boxes.device), self.refinement.grid)
        return self.refinement.coarse_logits(pool5, grid, labels), expanded

    @torch.no_grad()
    def detect(self, image: Tensor, proposals: ImageProposals) -> InstancePrediction:
        """Classify, suppress and refine the proposals of one image [3, H, W]."""
        size = (int(image.shape[-2]), int(image.shape[-1]))
        if len(proposals) == 0:
            return empty_prediction(size, image.device)
        regions, boxes = (region_masks(proposals, size) >= 0.5).float(), proposals.boxes.float()
        pool5, logits = (torch.cat(parts) for parts in zip(*(
            self.features(image, boxes[i:i + self.settings.chunk], regions[i:i + self.settings.chunk])
            for i in range(0, len(boxes), self.settings.chunk))))
        keep, labels, scores = self.suppress(logits.softmax(dim=1), regions)
        coarse, expanded = self.coarse_logits(pool5[keep], boxes[keep], regions[keep], labels)
        pasted = paste_masks(coarse.sigmoid(), expanded, size)
        masks = self.refinement.combined_logits(pasted, regions[keep], labels).sigmoid()
        clipped = torch.stack([boxes[keep, 0].clamp(0, size[1]), boxes[keep, 1].clamp(0, size[0]),
                               boxes[keep, 2].clamp(0, size[1]), boxes[keep, 3].clamp(0, size[0])], dim=1)
        return InstancePrediction(masks=masks, boxes_xyxy=clipped, labels=labels, scores=scores)

    def suppress(self, probs: Tensor, regions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per category: threshold, best ``pre_nms_top_n``, region NMS; then the best ``max_detections``.
        Returns (region indices, labels, scores), scores high to low."""
        s, kept = self.settings, []
        for label in range(1, probs.shape[1]):
            candidates = (probs[:, label] >= s.score_threshold).nonzero().flatten()
            candidates = candidates[probs[candidates, label].argsort(descending=True, stable=True)][: s.pre_nms_top_n]
            chosen = candidates[region_nms(probs[candidates, label], regions[candidates], s.nms_threshold)] \
                if len(candidates) else candidates
            kept.append(torch.stack([chosen, torch.full_like(chosen, label)], dim=1))
        index, labels = torch.cat(kept).unbind(1)
        scores = probs[index, labels]
        order = scores.argsort(descending=True, stable=True)[: s.max_detections]
        return index[order], labels[order], scores[order]

    def training_regions(self, image: Tensor, target: InstanceTarget, given: ImageProposals | None) -> ImageProposals:
        """The training candidates of one image: the jittered ground truth, plus the given or proposed regions
        (and ``random_negatives`` random boxes)."""
        s, size = self.settings, (int(image.shape[-2]), int(image.shape[-1]))
        parts = [jittered_ground_truth(target, copies=s.jitter_copies, max_shift=s.jitter_shift)]
        if given is not None:
            parts.append(given)
        elif self.proposer is not None and s.train_with_proposer:
            parts.append(self.propose([image])[0].top(s.num_proposals))
        if s.random_negatives:
            parts.append(random_boxes(s.random_negatives, size, image.device))
        return concat_proposals(parts, size)

    def sample(self, image: Tensor, target: InstanceTarget, given: ImageProposals | None) -> dict[str, Tensor]:
        """Label the candidates by mask IoU (>= fg_iou: its ground truth's class) and draw a balanced sample."""
        p = self.training_regions(image, target, given)
        regions = (p.masks >= 0.5).float()
        iou = mask_iou(regions, target.masks.float()) if len(target) else regions.new_zeros(len(regions), 1)
        best, matched = iou.max(dim=1) if len(regions) else (iou.new_zeros(0), iou.new_zeros(0, dtype=torch.int64))
        labels = torch.where(best >= self.settings.fg_iou, target.labels[matched] if len(target) else 0, 0)
        pos, neg = sample_balanced(labels, num_samples=self.settings.batch_per_image,
                                   positive_fraction=self.settings.positive_fraction)
        pick = torch.cat([pos, neg])
        refine = labels[pick] > 0
        refine &= best[pick] >= self.settings.refine_iou
        return {"boxes": p.boxes[pick].float(), "regions": regions[pick], "labels": labels[pick],
                "matched": matched[pick], "refine": refine}

    def losses(self, images: list[Tensor], targets: list[InstanceTarget],
               given: list[ImageProposals] | None) -> dict[str, Tensor]:
        """loss_cls (softmax CE over the sampled regions) and loss_refine (both refinement stages, BCE)."""
        samples = [self.sample(im, t, None if given is None else given[i]) for i, (im, t) in enumerate(zip(images, targets))]
        outputs = [self.features(im, s["boxes"], s["regions"]) for im, s in zip(images, samples)]
        logits, labels = torch.cat([o[1] for o in outputs]), torch.cat([s["labels"] for s in samples])
        loss_cls = F.cross_entropy(logits, labels, reduction="sum") / max(len(labels), 1)
        refine = [self.refine_terms(o[0], s, t) for o, s, t in zip(outputs, samples, targets)]
        count = max(sum(int(s["refine"].sum()) for s in samples), 1)
        loss_refine = sum(refine) / count + self.refinement.combine.sum() * 0.0 + logits.sum() * 0.0
        return {"loss_cls": loss_cls, "loss_refine": loss_refine}

    def refine_terms(self, pool5: Tensor, sample: dict[str, Tensor], target: InstanceTarget) -> Tensor:
        """Summed BCE of both refinement stages over one image's regions that overlap their ground truth >= 0.7."""
        chosen = sample["refine"]
        if not bool(chosen.any()):
            return pool5.sum() * 0.0
        boxes, regions, labels, matched = (sample[k][chosen] for k in ("boxes", "regions", "labels", "matched"))
        expanded = expand_boxes(boxes, self.context)
        index, g, m = torch.arange(len(boxes), device=boxes.device), self.refinement.grid, self.settings.refine_size
        return self.refinement.losses(pool5[chosen], mask_targets(regions, expanded, index, g), labels,
                                      mask_targets(regions, expanded, index, m),
                                      binary_mask_targets(target.masks, matched, expanded, g),
                                      binary_mask_targets(target.masks, matched, expanded, m))

    def cost_forward(self, images: Tensor) -> None:
        """One inference at a fixed load, for counting FLOPs (also on the meta device): both pathways and the
        classifier on ``COST_PROPOSALS`` (2000) regions, the refinement on ``max_detections``; cropping,
        NMS and pasting are not counted."""
        n, d = COST_PROPOSALS * len(images), self.settings.max_detections * len(images)
        crops = images.new_empty(n, 3, self.crop_size, self.crop_size)
        pool5, features = self.net(crops, crops)
        self.classifier(features)
        grid = images.new_empty(d, self.refinement.grid, self.refinement.grid)
        self.refinement.coarse_logits(pool5[:d], grid, torch.ones(d, dtype=torch.int64, device=images.device))


def check_settings(*, num_classes: int, crop_size: int, widths: Sequence[int], fc_channels: int, grid: int,
                   context: float, settings: SDSSettings) -> None:
    """Raise ConfigError naming the first builder argument out of range."""
    s = settings
    rules = {
        "num_classes": (num_classes >= 2, "at least 2 (background and one category)"),
        "crop_size": (crop_size >= 63, "at least 63 px (AlexNet's stride-4 conv1 and three 3x3 stride-2 pools)"),
        "widths": (len(widths) == 5 and all(int(w) >= 1 for w in widths), "5 positive conv1..conv5 widths"),
        "fc_channels": (fc_channels >= 1, "positive"), "grid": (grid >= 1, "positive (10 in the paper)"),
        "context": (context >= 0, "a fraction >= 0 of the box side"),
        "num_proposals": (s.num_proposals >= 1, "positive"), "batch_per_image": (s.batch_per_image >= 1, "positive"),
        "positive_fraction": (0 < s.positive_fraction <= 1, "in (0, 1]"),
        "fg_iou": (0 < s.fg_iou <= 1, "in (0, 1]"), "refine_iou": (0 < s.refine_iou <= 1, "in (0, 1]"),
        "score_threshold": (0 <= s.score_threshold < 1, "in [0, 1)"),
        "nms_threshold": (0 <= s.nms_threshold < 1, "in [0, 1) (0: any overlap suppresses, as the code)"),
        "max_detections": (s.max_detections >= 1, "positive"), "jitter_copies": (s.jitter_copies >= 1, "positive"),
        "jitter_shift": (0 <= s.jitter_shift < 1, "in [0, 1)"), "random_negatives": (s.random_negatives >= 0, ">= 0"),
    }
    for field, (ok, expected) in rules.items():
        if not ok:
            value = {"num_classes": num_classes, "crop_size": crop_size, "widths": widths, "fc_channels": fc_channels,
                     "grid": grid, "context": context}.get(field, getattr(s, field, None))
            raise ConfigError(f"sds: {field} = {value!r}; expected {expected}")


def sds(
    *, num_classes: int, proposer: str | Path | Mapping[str, Any] | None = None, crop_size: int = CROP_SIZE,
    widths: Sequence[int] = ALEXNET_WIDTHS, fc_channels: int = FC_CHANNELS, dropout: float = 0.5, grid: int = 10,
    context: float = CONTEXT, num_proposals: int = 2000, batch_per_image: int = 128, positive_fraction: float = 0.25,
    fg_iou: float = 0.5, refine_iou: float = 0.7, score_threshold: float = 0.05, nms_threshold: float = 0.0,
    max_detections: int = 100, jitter_copies: int = 4, jitter_shift: float = 0.15, train_with_proposer: bool = True,
    random_negatives: int = 0, pretrained_backbone: str | Path | None = None,
) -> SDS:
    """Build SDS (see the module docstring for the paper's settings and the deviations).

    Args:
        num_classes: C + 1, background included (21 for VOC).
        proposer: a ``seglab train`` checkpoint directory of a proposer (SharpMask, DeepMask, Mask R-CNN's RPN)
            or a ``{"model", "num_classes", "kwargs"}`` spec (random init); None: pass ``proposals=``.
        crop_size: the warped box side (227, sec. 3.2); widths: AlexNet's conv1..conv5 channels (torchvision's;
            narrower for CPU); fc_channels: fc6/fc7 (4096); dropout: before fc6 and fc7 (0.5).
        grid: the refinement grid side (10, sec. 4); context: box enlargement per side (16 / 195, R-CNN).
        num_proposals: proposer regions used per image (2000 MCG regions, sec. 3.1).
        batch_per_image, positive_fraction: sampled training regions (128, 0.25: R-CNN sec. 2.3).
        fg_iou: mask IoU of a positive (0.5); refine_iou: of a refinement example (0.7, the code).
        score_threshold, nms_threshold, max_detections: inference (0.05; 0 = any overlap, the code; 100).
        jitter_copies, jitter_shift: copies of each ground-truth object among the training regions and their
            largest shift, a fraction of the box (``jittered_ground_truth``: 4, 0.15).
        train_with_proposer: add the proposer's regions to the training regions (the paper; off on CPU, where
            SharpMask costs ~1.5 s an image); random_negatives: random boxes added as training regions (0).
        pretrained_backbone: a local torchvision AlexNet ImageNet state dict for both pathways.
    """
    settings = SDSSettings(num_proposals=num_proposals, batch_per_image=batch_per_image,
                           positive_fraction=positive_fraction, fg_iou=fg_iou, refine_iou=refine_iou,
                           score_threshold=score_threshold, nms_threshold=nms_threshold, max_detections=max_detections,
                           jitter_copies=jitter_copies, jitter_shift=jitter_shift,
                           train_with_proposer=train_with_proposer, random_negatives=random_negatives)
    check_settings(num_classes=num_classes, crop_size=crop_size, widths=widths, fc_channels=fc_channels, grid=grid,
                   context=context, settings=settings)
    pathways = [AlexNetPathway(widths=widths, fc_channels=fc_channels, dropout=dropout, pretrained=pretrained_backbone)
                for _ in range(2)]
    net = TwoPathwayNet(box=pathways[0], region=pathways[1])
    slot = build_proposer(proposer, top_k=num_proposals) if proposer is not None else None
    model = SDS(net=net, classifier=nn.Linear(net.out_channels, num_classes),
                refinement=FigureGround(in_channels=pathways[0].pool5_channels * POOL5_SIZE**2,
                                        num_categories=num_classes - 1, grid=grid),
                proposer=slot, num_classes=num_classes, crop_size=crop_size, context=context, settings=settings)
    if slot is not None:
        model.rebuild_kwargs = {"proposer": slot.spec}  # a checkpoint rebuilds without the proposer's directory
    return model


# Parameters of the paper's configuration (VOC: 20 categories + background, 227-px crops), per AlexNet pathway
# (torchvision's widths, conv1..fc7, with biases):
#   conv 3*64*11*11 + 64*192*5*5 + 192*384*9 + 384*256*9 + 256*256*9 (+ 1152 biases)          2,469,696
#   fc6 256*6*6*4096 + 4096 = 37,752,832; fc7 4096*4096 + 4096 = 16,781,312                   54,534,144
#   one pathway 57,003,840; two pathways                                                     114,007,680
#   classifier 8192*21 + 21                                                                      172,053
#   refinement grid: 20 categories x 100 cells x (9216 pool5 + 100 region cells) + 2000 biases 18,634,000
#   second refinement stage: 20 x (2 weights + bias)                                                  60
#   total                                                                                    132,813,793
SDS_SPEC = ModelSpec(
    task="instance", paper="Simultaneous Detection and Segmentation", arxiv="1407.1808", year=2014,
    survey_row="SDS", exportable=False, export_note=DETECTIONS_EXPORT_NOTE, loss_terms=("loss_cls", "loss_refine"),
    test_kwargs={"proposer": {"model": "deepmask_vgg11", "num_classes": 2, "kwargs": DEEPMASK_SPEC.test_kwargs},
                 "crop_size": 64, "widths": (8, 8, 8, 8, 8), "fc_channels": 16, "num_proposals": 10,
                 "batch_per_image": 16, "score_threshold": 0.0, "max_detections": 10},
    reference_params=132_813_793, reference_kwargs={"num_classes": 21},
)
register_model(SDS_SPEC, name="sds_alexnet")(sds)
