"""From a semantic map and detected instances to one panoptic map: the label spaces and the heuristic fusion.

Kirillov, He, Girshick, Rother, Dollar, "Panoptic Segmentation" (arXiv 1801.00868), sec. 7 and
Kirillov, Girshick, He, Dollar, "Panoptic Feature Pyramid Networks" (arXiv 1901.02446), sec. 3.3:
the instance and semantic outputs are merged by a heuristic akin to non-maximum suppression.
The rule and its defaults are the authors' release (detectron2 ``combine_semantic_and_instance_outputs``,
``configs/COCO-PanopticSegmentation/Base-Panoptic-FPN.yaml``; read, not copied):

1. instances in decreasing score, stopping below ``instance_score`` (0.5);
2. an instance whose mask lies for more than ``overlap`` (0.5) on pixels already taken is dropped,
   otherwise it takes its pixels that are still free;
3. every stuff class of the semantic map then takes its free pixels if they are at least
   ``stuff_area`` (4096 px); what stays free is void.

``PanopticClasses`` holds the three label spaces involved: the dataset's classes 0..C-1, the
instance branch's labels 1..T (0 = background; label k is ``thing_classes[k - 1]``) and the semantic
branch's labels of Panoptic FPN (0 = "things", k = ``stuff_classes[k - 1]``), as in the release's
COCO setup (80 thing labels, 53 stuff + 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from seglab.boxes.ops import masks_to_boxes
from seglab.errors import ConfigError
from seglab.structures import InstancePrediction, InstanceTarget, PanopticPrediction, PanopticTarget

VOID = 255
MASK_THRESHOLD = 0.5  # soft masks -> binary (Mask R-CNN sec. 3)


@dataclass(frozen=True)
class FusionSettings:
    """The fusion's thresholds, with the reference defaults (detectron2 PANOPTIC_FPN.COMBINE).

    Args:
        instance_score: lowest instance score kept (INSTANCES_CONFIDENCE_THRESH 0.5).
        overlap: largest fraction of an instance's mask that may already be taken (OVERLAP_THRESH 0.5).
        stuff_area: fewest free pixels a stuff class needs to become a segment (STUFF_AREA_LIMIT 4096,
            for COCO images of shorter side 800; scale it with the image area).
    """

    instance_score: float = 0.5
    overlap: float = 0.5
    stuff_area: int = 4096

    def __post_init__(self) -> None:
        for name in ("instance_score", "overlap"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"fusion {name} is {getattr(self, name)}; expected a value in [0, 1]")
        if self.stuff_area < 0:
            raise ConfigError(f"fusion stuff_area is {self.stuff_area}; expected a pixel count >= 0")


class PanopticClasses:
    """The dataset's classes split into things and stuff, and the label maps between the branches.

    Args:
        num_classes: C, the dataset's classes 0..C-1.
        thing_classes: the class ids that are countable things; the rest are stuff.
    """

    def __init__(self, num_classes: int, thing_classes: Iterable[int]) -> None:
        things = sorted({int(c) for c in thing_classes})
        bad = [c for c in things if not 0 <= c < num_classes]
        if bad or not things:
            raise ConfigError(f"thing_classes {things} must be a non-empty list of class ids in 0..{num_classes - 1}")
        self.num_classes = num_classes
        self.things = things
        self.stuff = [c for c in range(num_classes) if c not in set(things)]
        self.class_of_thing_label = torch.tensor([VOID, *things])  # instance label -> class (0 unused)
        self.class_of_stuff_label = torch.tensor([VOID, *self.stuff])  # semantic label -> class (0 = things)
        self.thing_label_of_class = torch.zeros(VOID + 1, dtype=torch.int64)
        self.thing_label_of_class[torch.tensor(things)] = torch.arange(1, len(things) + 1)
        self.stuff_label_of_class = torch.full((VOID + 1,), VOID, dtype=torch.int64)
        self.stuff_label_of_class[torch.tensor(things)] = 0
        if self.stuff:
            self.stuff_label_of_class[torch.tensor(self.stuff)] = torch.arange(1, len(self.stuff) + 1)

    @property
    def num_instance_labels(self) -> int:
        """T + 1: the instance branch's classes, background included."""
        return len(self.things) + 1

    @property
    def num_semantic_labels(self) -> int:
        """S + 1: the semantic branch's classes of Panoptic FPN, "things" included."""
        return len(self.stuff) + 1

    def is_thing(self, semantic: Tensor) -> Tensor:
        """[H, W] bool: pixels of a thing class."""
        return self.thing_label_of_class.to(semantic.device)[semantic.clamp(0, VOID)] > 0

    def instance_target(self, target: PanopticTarget) -> InstanceTarget:
        """The thing instances of a panoptic target, labelled 1..T; thing pixels without an instance are crowd."""
        semantic, ids = target.semantic, target.instance_ids
        thing = self.is_thing(semantic)
        present = torch.unique(ids[thing & (ids > 0)])
        masks = ids[None] == present[:, None, None]
        labels = torch.stack([torch.mode(semantic[m]).values for m in masks]) if len(present) else present
        return InstanceTarget(boxes_xyxy=masks_to_boxes(masks).float(),
                              labels=self.thing_label_of_class.to(labels.device)[labels],
                              masks=masks.to(torch.uint8), crowd=(thing & (ids == 0)).to(torch.uint8))

    def semantic_target(self, semantic: Tensor) -> Tensor:
        """Dataset classes -> Panoptic FPN's semantic labels (0 = any thing, 1..S = stuff, 255 = void)."""
        return self.stuff_label_of_class.to(semantic.device)[semantic.clamp(0, VOID)]


def fuse_panoptic(instances: InstancePrediction, stuff: Tensor, classes: PanopticClasses,
                  settings: FusionSettings | None = None) -> PanopticPrediction:
    """Merge one image's instances and semantic map into a panoptic map (the rule of the module docstring).

    Args:
        instances: the instance branch's detections (labels 1..T, scores high to low or not).
        stuff: [H, W] int64 dataset classes from the semantic branch; pixels of thing classes (or 255)
            never become stuff segments.
        classes: the label spaces.

    Returns:
        PanopticPrediction: thing pixels carry their class and instance ids 1..K in score order,
        stuff pixels their class with id 0, free pixels 255 (void).
    """
    settings = settings or FusionSettings()
    device = stuff.device
    semantic = torch.full_like(stuff, VOID)
    instance_ids = torch.zeros_like(stuff)
    taken = torch.zeros(stuff.shape, dtype=torch.bool, device=device)
    class_of_label = classes.class_of_thing_label.to(device)
    masks = instances.binary_masks(MASK_THRESHOLD)
    next_id = 1
    for k in torch.argsort(instances.scores, descending=True, stable=True).tolist():
        if float(instances.scores[k]) < settings.instance_score:
            break
        mask = masks[k].to(device)
        area = int(mask.sum())
        if area == 0 or int((mask & taken).sum()) / area > settings.overlap:
            continue
        mask = mask & ~taken
        semantic[mask] = class_of_label[instances.labels[k]]
        instance_ids[mask] = next_id
        taken |= mask
        next_id += 1
    stuff_classes = torch.tensor(classes.stuff, dtype=stuff.dtype, device=device)
    for cls in torch.unique(stuff[torch.isin(stuff, stuff_classes)]).tolist():
        region = (stuff == cls) & ~taken
        if int(region.sum()) >= max(settings.stuff_area, 1):
            semantic[region] = cls
            taken |= region
    return PanopticPrediction(semantic=semantic, instance_ids=instance_ids)
