"""Cityscapes fine annotations: 19 evaluation classes, instance ids of the 8 "thing" classes.

M. Cordts et al., "The Cityscapes Dataset for Semantic Urban Scene Understanding", CVPR 2016.
The label table below is the official one (mcordts/cityscapesScripts,
``cityscapesscripts/helpers/labels.py``), written as data.

Layout under ``<data root>/<folder>`` (folder "cityscapes" by default), as distributed::

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png      RGB, 2048x1024
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png       8-bit label ids 0..33
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png    16-bit, see below

with splits "train" (2975 images), "val" (500) and "test" (1525; its labels are withheld). A flat
layout without split and city folders (``leftImg8bit/*_leftImg8bit.png``, ``gtFine/*_gtFine_*.png``,
as in MMSegmentation's test data and ``cityscapes_sample``) is read as the single split "all".

Encoding: ``labelIds`` hold the 34 label ids; ``LABELS`` maps them to the 19 train ids (road=0 ...
bicycle=18), all other ids to 255 (ignore). ``instanceIds`` hold ``labelId * 1000 + k`` on pixels of
individually annotated objects of classes with instances, and the plain label id elsewhere (also on
"group" regions such as a crowd of people, which have no instance number).

Targets (``task``):
    "semantic": ``Mask`` int64 [H, W] of train ids, 255 = ignore.
    "instance": ``dict(masks, boxes, labels, crowd)`` as in ``seglab.data.synthetic`` (see
        ``seglab.data.masks.instance_target``): one instance per ``instanceIds`` value >= 1000 whose
        label has a train id (caravan and trailer have none and are left out); ``labels`` are the
        train ids 11..18; ``crowd`` marks group regions of those 8 classes (value < 1000).
    "panoptic": ``dict(semantic=Mask [H, W] train ids, instance_ids=Mask [H, W])``, instance ids
        1..K in the order of the ``instanceIds`` values, 0 on stuff, ignore and crowd pixels; a
        thing-class pixel with instance id 0 is a crowd region.
    Instance and panoptic targets are read from ``instanceIds`` alone (label id = value // 1000
    for values >= 1000), so their semantic and instance parts always agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torchvision import tv_tensors

from seglab.data.base import SegmentationDataset, Transforms, check_same_size, check_split, read_image, read_label
from seglab.data.masks import instance_target
from seglab.data.root import dataset_dir
from seglab.errors import ConfigError, DataError

__all__ = ["LABELS", "Cityscapes", "CityscapesLabel"]

TASKS = ("semantic", "instance", "panoptic")
OFFICIAL_SPLITS = ("train", "val", "test")
INSTANCE_OFFSET = 1000  # instanceIds = labelId * 1000 + k (cityscapesScripts, labels.py comments)


class CityscapesLabel(NamedTuple):
    """One row of the official label table."""

    name: str
    id: int
    train_id: int  # 255 = not evaluated (ignored in training)
    category: str
    has_instances: bool
    color: tuple[int, int, int]


# fmt: off
LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel("unlabeled",             0, 255, "void",         False, (0, 0, 0)),
    CityscapesLabel("ego vehicle",           1, 255, "void",         False, (0, 0, 0)),
    CityscapesLabel("rectification border",  2, 255, "void",         False, (0, 0, 0)),
    CityscapesLabel("out of roi",            3, 255, "void",         False, (0, 0, 0)),
    CityscapesLabel("static",                4, 255, "void",         False, (0, 0, 0)),
    CityscapesLabel("dynamic",               5, 255, "void",         False, (111, 74, 0)),
    CityscapesLabel("ground",                6, 255, "void",         False, (81, 0, 81)),
    CityscapesLabel("road",                  7,   0, "flat",         False, (128, 64, 128)),
    CityscapesLabel("sidewalk",              8,   1, "flat",         False, (244, 35, 232)),
    CityscapesLabel("parking",               9, 255, "flat",         False, (250, 170, 160)),
    CityscapesLabel("rail track",           10, 255, "flat",         False, (230, 150, 140)),
    CityscapesLabel("building",             11,   2, "construction", False, (70, 70, 70)),
    CityscapesLabel("wall",                 12,   3, "construction", False, (102, 102, 156)),
    CityscapesLabel("fence",                13,   4, "construction", False, (190, 153, 153)),
    CityscapesLabel("guard rail",           14, 255, "construction", False, (180, 165, 180)),
    CityscapesLabel("bridge",               15, 255, "construction", False, (150, 100, 100)),
    CityscapesLabel("tunnel",               16, 255, "construction", False, (150, 120, 90)),
    CityscapesLabel("pole",                 17,   5, "object",       False, (153, 153, 153)),
    CityscapesLabel("polegroup",            18, 255, "object",       False, (153, 153, 153)),
    CityscapesLabel("traffic light",        19,   6, "object",       False, (250, 170, 30)),
    CityscapesLabel("traffic sign",         20,   7, "object",       False, (220, 220, 0)),
    CityscapesLabel("vegetation",           21,   8, "nature",       False, (107, 142, 35)),
    CityscapesLabel("terrain",              22,   9, "nature",       False, (152, 251, 152)),
    CityscapesLabel("sky",                  23,  10, "sky",          False, (70, 130, 180)),
    CityscapesLabel("person",               24,  11, "human",        True,  (220, 20, 60)),
    CityscapesLabel("rider",                25,  12, "human",        True,  (255, 0, 0)),
    CityscapesLabel("car",                  26,  13, "vehicle",      True,  (0, 0, 142)),
    CityscapesLabel("truck",                27,  14, "vehicle",      True,  (0, 0, 70)),
    CityscapesLabel("bus",                  28,  15, "vehicle",      True,  (0, 60, 100)),
    CityscapesLabel("caravan",              29, 255, "vehicle",      True,  (0, 0, 90)),
    CityscapesLabel("trailer",              30, 255, "vehicle",      True,  (0, 0, 110)),
    CityscapesLabel("train",                31,  16, "vehicle",      True,  (0, 80, 100)),
    CityscapesLabel("motorcycle",           32,  17, "vehicle",      True,  (0, 0, 230)),
    CityscapesLabel("bicycle",              33,  18, "vehicle",      True,  (119, 11, 32)),
    # Official train id -1; id -1 cannot occur in the 8-bit labelIds PNGs, so it is not in label_map.
    CityscapesLabel("license plate",        -1, 255, "vehicle",      False, (0, 0, 142)),
)
# fmt: on

_EVALUATED = sorted((label for label in LABELS if label.train_id != 255), key=lambda label: label.train_id)


class Cityscapes(SegmentationDataset):
    """Cityscapes ``gtFine``: 19 classes (train ids), with instance and panoptic views.

    Args:
        split: "train", "val", "test" (the split folders present), or "all" for the flat layout.
        root: the data root holding ``<folder>/``; ``None`` uses ``seglab.data.data_root()``.
        folder: the dataset folder name under ``root`` (e.g. "cityscapes_sample").
        task: "semantic", "instance" or "panoptic" (see the module docstring for the targets).
        transforms: joint ``(image, target)`` transform, see ``SegmentationDataset``.
    """

    name = "cityscapes"
    classes = tuple(label.name for label in _EVALUATED)
    palette = [label.color for label in _EVALUATED]
    label_map = {label.id: label.train_id for label in LABELS if label.id >= 0}
    thing_classes = tuple(label.train_id for label in _EVALUATED if label.has_instances)  # 11..18

    def __init__(
        self,
        *,
        split: str = "train",
        root: str | Path | None = None,
        folder: str = "cityscapes",
        task: str = "semantic",
        transforms: Transforms | None = None,
    ) -> None:
        if task not in TASKS:
            raise ConfigError(f"cityscapes: unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
        super().__init__(split=split, transforms=transforms)
        self.task = task
        self.root = dataset_dir(folder, root)
        check_split(self.name, split, self.available_splits(self.root))
        self.samples = _pairs(self.root, split)
        self.instance_files = [_gt_path(label, "instanceIds") for _, label in self.samples]
        if task != "semantic":
            for path in self.instance_files:
                if not path.is_file():
                    raise DataError(
                        f"instance file {str(path)!r} is missing; task {task!r} needs *_gtFine_instanceIds.png"
                    )

    @staticmethod
    def available_splits(folder: Path) -> tuple[str, ...]:
        """Return the split folders in ``folder/leftImg8bit`` ("all" for the flat layout).

        Raises:
            DataError: ``leftImg8bit/`` is missing or holds neither split folders nor images.
        """
        images = folder / "leftImg8bit"
        if not images.is_dir():
            raise DataError(f"Cityscapes folder {str(images)!r} is missing; expected leftImg8bit/<split>/<city>/")
        splits = tuple(s for s in OFFICIAL_SPLITS if (images / s).is_dir())
        if any(images.glob("*_leftImg8bit.png")):
            splits += ("all",)
        if not splits:
            raise DataError(
                f"{str(images)!r} has no split folders ({', '.join(OFFICIAL_SPLITS)}) and no *_leftImg8bit.png files"
            )
        return splits

    def __getitem__(self, index: int) -> Any:
        if self.task == "semantic":
            return super().__getitem__(index)
        image_path, _ = self.files(index)
        image = read_image(image_path)
        raw = read_label(self.instance_files[index]).astype(np.int64)
        check_same_size(image_path, tuple(image.shape[-2:]), self.instance_files[index], raw.shape)
        target = self._instance_or_panoptic(raw, self.instance_files[index])
        if self.transforms is not None:
            return self.transforms(image, target)
        return image, target

    def _instance_or_panoptic(self, raw: np.ndarray, source: Path) -> dict[str, Any]:
        label_ids = np.where(raw >= INSTANCE_OFFSET, raw // INSTANCE_OFFSET, raw)
        train_ids = self.map_label(label_ids, source=source)
        is_thing = np.isin(train_ids, self.thing_classes)
        instance_values = np.unique(raw[is_thing & (raw >= INSTANCE_OFFSET)])  # sorted
        crowd = torch.from_numpy(is_thing & (raw < INSTANCE_OFFSET))
        if self.task == "panoptic":
            instance_ids = np.zeros(raw.shape, dtype=np.int64)
            for k, value in enumerate(instance_values.tolist(), start=1):
                instance_ids[raw == value] = k
            return dict(semantic=tv_tensors.Mask(torch.from_numpy(train_ids)),
                        instance_ids=tv_tensors.Mask(torch.from_numpy(instance_ids)))
        masks = torch.from_numpy(raw[None] == instance_values[:, None, None])
        labels = torch.tensor([self.label_map[v // INSTANCE_OFFSET] for v in instance_values.tolist()])
        return instance_target(masks, labels, crowd)


def _gt_path(label_path: Path, kind: str) -> Path:
    return label_path.with_name(label_path.name.replace("_gtFine_labelIds.png", f"_gtFine_{kind}.png"))


def _pairs(folder: Path, split: str) -> list[tuple[Path, Path]]:
    """List (image, labelIds) pairs of ``split``, sorted by image path."""
    if split == "all":
        images = sorted((folder / "leftImg8bit").glob("*_leftImg8bit.png"))
    else:
        images = sorted((folder / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
    if not images:
        raise DataError(f"no *_leftImg8bit.png images found for split {split!r} under {str(folder / 'leftImg8bit')!r}")
    pairs = []
    for image in images:
        relative = image.parent.relative_to(folder / "leftImg8bit")
        stem = image.name[: -len("_leftImg8bit.png")]
        label = folder / "gtFine" / relative / f"{stem}_gtFine_labelIds.png"
        if not label.is_file():
            raise DataError(f"image {str(image)!r} has no label {str(label)!r}; add gtFine or remove the image")
        pairs.append((image, label))
    return pairs
