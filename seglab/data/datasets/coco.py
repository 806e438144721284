"""COCO instances (2017): 80 thing classes, polygons and RLE masks, crowd regions reported.

T.-Y. Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014. Annotation format:
https://cocodataset.org/#format-data; masks are decoded by ``seglab.data.masks`` (pure numpy).

Layout under ``<data root>/<folder>`` (folder "coco" by default; "coco_tiny" is the 50+50 image
sample), as distributed::

    annotations/instances_<split>2017.json     images, annotations, categories
    <split>2017/<file_name>                    JPEG images named in images[*].file_name

Splits "train" and "val". Classes: the 80 categories sorted by COCO category id (ids 1..90 with
gaps) become the contiguous labels 1..80; label 0 is "background", as in ``seglab.data.synthetic``
(its shapes are labels 1..3 and 0 is the background), so ``classes[label]`` names every label and
the semantic view has 81 classes.

Targets (``task``):
    "instance": ``dict(masks, boxes, labels, crowd)`` (``seglab.data.masks.instance_target``) from
        the ``iscrowd == 0`` annotations; boxes are recomputed from the decoded masks. Crowd
        annotations (``iscrowd == 1``, usually uncompressed RLE) are not instances: their union is
        the ``crowd`` mask [H, W]. An annotation whose mask decodes to no pixel (a polygon thinner
        than a pixel) is left out with a warning naming it, and its id is added to
        ``dataset.dropped_annotations``.
    "semantic": ``Mask`` int64 [H, W]: 0 background, 1..80 instances painted largest first (so
        small objects stay visible), 255 on crowd pixels that no instance covers.
Images without annotations are kept (``skip_empty=False``) and counted in ``num_empty``; with
``skip_empty=True`` they are left out and counted in ``num_skipped``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors

from seglab.data.base import (
    SegmentationDataset, Transforms, check_same_size, check_split, default_palette, read_image,
)
from seglab.data.masks import check_polygons, decode_rle, instance_target, polygons_to_mask
from seglab.data.root import dataset_dir
from seglab.errors import ConfigError, DataError

__all__ = ["CocoInstances", "load_coco_json"]

TASKS = ("semantic", "instance")
SPLITS = ("train", "val")


def load_coco_json(path: Path, *, required: tuple[str, ...]) -> dict[str, Any]:
    """Read a COCO-style JSON file and check its top-level keys.

    Raises:
        DataError: missing file, invalid JSON (with line and column), or a missing top-level key.
    """
    if not path.is_file():
        raise DataError(f"annotation file {str(path)!r} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{str(path)!r} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read annotation file {str(path)!r}: {err}") from err
    if not isinstance(data, dict):
        raise DataError(f"{str(path)!r}: expected a JSON object at the top level, got {type(data).__name__}")
    missing = [key for key in required if not isinstance(data.get(key), list)]
    if missing:
        raise DataError(f"{str(path)!r}: missing top-level list(s) {', '.join(repr(k) for k in missing)}")
    return data


def _field(record: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(record, dict) or not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
        raise DataError(f"{where}: field {key!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return record[key]


class CocoInstances(SegmentationDataset):
    """COCO 2017 instances: masks, boxes and labels 1..80, or the 81-class semantic view.

    Args:
        split: "train" or "val".
        root: the data root holding ``<folder>/``; ``None`` uses ``seglab.data.data_root()``.
        folder: the dataset folder name under ``root`` (e.g. "coco_tiny").
        task: "instance" or "semantic" (see the module docstring).
        skip_empty: leave out images without any annotation (counted in ``num_skipped``).
        transforms: joint ``(image, target)`` transform, see ``SegmentationDataset``.

    Attributes:
        num_instances: non-crowd annotations of the kept images; num_crowd: crowd annotations;
        num_empty: kept images without annotations; num_skipped: images left out.
    """

    name = "coco"
    has_files = False  # labels are JSON, not label images: `seglab data check` reads raw_label()

    def __init__(
        self,
        *,
        split: str = "train",
        root: str | Path | None = None,
        folder: str = "coco",
        task: str = "instance",
        skip_empty: bool = False,
        transforms: Transforms | None = None,
    ) -> None:
        check_split(self.name, split, SPLITS)
        if task not in TASKS:
            raise ConfigError(f"coco: unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
        super().__init__(split=split, transforms=transforms)
        self.task = task
        self.root = dataset_dir(folder, root)
        self.json_path = self.root / "annotations" / f"instances_{split}2017.json"
        self.image_dir = self.root / f"{split}2017"
        if not self.image_dir.is_dir():
            raise DataError(f"COCO image folder {str(self.image_dir)!r} is missing")
        data = load_coco_json(self.json_path, required=("images", "annotations", "categories"))
        self.category_to_label = self._read_categories(data["categories"])
        images = self._read_images(data["images"])
        annotations = self._read_annotations(data["annotations"], images)
        by_image: dict[int, list[dict[str, Any]]] = {image_id: [] for image_id in images}
        for ann in annotations:
            by_image[ann["image_id"]].append(ann)
        empty = [image_id for image_id, anns in by_image.items() if not anns]
        self.num_skipped = len(empty) if skip_empty else 0
        self.num_empty = 0 if skip_empty else len(empty)
        self.dropped_annotations: set[int] = set()  # ids of annotations that decoded to no pixel (seen so far)
        kept = [image_id for image_id in images if by_image[image_id] or not skip_empty]
        self.images = [images[image_id] for image_id in kept]
        self.annotations = [by_image[image_id] for image_id in kept]
        self.samples = [(self.image_dir / image["file_name"], self.json_path) for image in self.images]
        self.num_crowd = sum(ann["iscrowd"] for anns in self.annotations for ann in anns)
        self.num_instances = sum(len(anns) for anns in self.annotations) - self.num_crowd

    def _read_categories(self, categories: list[Any]) -> dict[int, int]:
        """Map COCO category id -> contiguous label 1..N (sorted by id) and set ``classes``."""
        names: dict[int, str] = {}
        for k, category in enumerate(categories):
            where = f"{str(self.json_path)!r}: categories[{k}]"
            category_id = _field(category, "id", int, where)
            if category_id in names:
                raise DataError(f"{where}: category id {category_id} appears twice")
            names[category_id] = str(_field(category, "name", str, where))
        ids = sorted(names)
        self.classes = ("background", *(names[i] for i in ids))
        self.palette = default_palette(len(self.classes))  # COCO has no official colours
        return {category_id: label for label, category_id in enumerate(ids, start=1)}

    def _read_images(self, records: list[Any]) -> dict[int, dict[str, Any]]:
        images: dict[int, dict[str, Any]] = {}
        for k, record in enumerate(records):
            where = f"{str(self.json_path)!r}: images[{k}]"
            image = {key: _field(record, key, kind, where) for key, kind in
                     (("id", int), ("file_name", str), ("height", int), ("width", int))}  # fmt: skip
            if not (self.image_dir / image["file_name"]).is_file():
                raise DataError(
                    f"image file {str(self.image_dir / image['file_name'])!r} (image id {image['id']} in "
                    f"{str(self.json_path)!r}) is missing; restore it or remove the image from the JSON"
                )
            images[image["id"]] = image
        return images

    def _read_annotations(self, records: list[Any], images: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
        """Validate every annotation's ids and the cheap parts of its segmentation (RLE size, polygon points)."""
        annotations = []
        for k, record in enumerate(records):
            ann_id = record.get("id", f"#{k}") if isinstance(record, dict) else f"#{k}"
            where = f"{str(self.json_path)!r}: annotation id {ann_id}"
            ann = {key: _field(record, key, int, where) for key in ("id", "image_id", "category_id")}
            ann["iscrowd"] = int(record.get("iscrowd", 0))
            ann["area"], ann["bbox"] = record.get("area"), record.get("bbox")
            ann["segmentation"] = segmentation = record.get("segmentation")
            if ann["category_id"] not in self.category_to_label:
                raise DataError(f"{where}: unknown category_id {ann['category_id']} (not in 'categories')")
            if ann["image_id"] not in images:
                raise DataError(f"{where}: image_id {ann['image_id']} is not in 'images'")
            height, width = images[ann["image_id"]]["height"], images[ann["image_id"]]["width"]
            if isinstance(segmentation, dict):
                size = segmentation.get("size")
                if size != [height, width]:
                    raise DataError(
                        f"{where}: RLE size {size!r} (H, W) differs from the image size [{height}, {width}]"
                    )
            else:
                check_polygons(segmentation, where=where)
            annotations.append(ann)
        return annotations

    def __getitem__(self, index: int) -> Any:
        image_path = self.samples[index][0]
        image = read_image(image_path)
        info = self.images[index]
        check_same_size(image_path, tuple(image.shape[-2:]), f"{self.json_path} (image id {info['id']})",
                        (info["height"], info["width"]))  # fmt: skip
        target: Any = self._semantic(index) if self.task == "semantic" else self._instances(index)
        if self.task == "semantic":
            target = tv_tensors.Mask(torch.from_numpy(target))
        if self.transforms is not None:
            return self.transforms(image, target)
        return image, target

    def raw_label(self, index: int) -> np.ndarray:
        """Return the semantic view of item ``index``: [H, W] int64 labels 0..80, 255 = crowd."""
        return self._semantic(index)

    def decode(self, ann: dict[str, Any], height: int, width: int) -> np.ndarray:
        """Decode one annotation's segmentation (polygons or RLE) into a [H, W] uint8 mask."""
        where = f"{str(self.json_path)!r}: annotation id {ann['id']}"
        segmentation = ann["segmentation"]
        if isinstance(segmentation, dict):
            return decode_rle(segmentation, height=height, width=width, where=where)
        return polygons_to_mask(segmentation, height, width, where=where)

    def _decoded(self, index: int) -> tuple[list[np.ndarray], list[int], np.ndarray]:
        """Return the non-empty instance masks, their labels and the crowd mask of item ``index``."""
        info = self.images[index]
        height, width = info["height"], info["width"]
        masks, labels = [], []
        crowd = np.zeros((height, width), dtype=bool)
        for ann in self.annotations[index]:
            mask = self.decode(ann, height, width)
            if ann["iscrowd"]:
                crowd |= mask.astype(bool)
            elif mask.any():
                masks.append(mask)
                labels.append(self.category_to_label[ann["category_id"]])
            elif ann["id"] not in self.dropped_annotations:
                self.dropped_annotations.add(ann["id"])
                warnings.warn(
                    f"{self.json_path}: annotation id {ann['id']} (image {self.samples[index][0].name}) decodes "
                    f"to an empty mask and is left out", stacklevel=3)  # fmt: skip
        return masks, labels, crowd

    def _instances(self, index: int) -> dict[str, Any]:
        masks, labels, crowd = self._decoded(index)
        height, width = crowd.shape
        stacked = torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, height, width, dtype=torch.uint8)
        return instance_target(stacked, torch.tensor(labels, dtype=torch.int64), torch.from_numpy(crowd))

    def _semantic(self, index: int) -> np.ndarray:
        masks, labels, crowd = self._decoded(index)
        semantic = np.where(crowd, self.ignore_index, 0).astype(np.int64)
        for k in sorted(range(len(masks)), key=lambda k: -int(masks[k].sum())):  # largest first
            semantic[masks[k].astype(bool)] = labels[k]
        return semantic
