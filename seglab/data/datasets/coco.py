"""COCO instances (2017): 80 thing classes, polygons and RLE masks, crowd regions reported.

T.-Y. Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014. Annotation format:
https://cocodataset.org/#format-data; masks are decoded by ``seglab.data.masks`` (pure numpy), the
JSON is read and checked by ``seglab.data.datasets.coco_json``.

Layout under ``<data root>/<folder>`` (folder "coco" by default; "coco_tiny" is the 50+50 image
sample), as distributed::

    annotations/instances_<split>2017.json     images, annotations, categories
    <split>2017/<file_name>                    JPEG images named in images[*].file_name

Splits "train" and "val". Classes: the categories sorted by COCO category id (ids 1..90 with gaps
for COCO's 80) become the contiguous labels 1..N; label 0 is "background", as in
``seglab.data.synthetic`` (its shapes are labels 1..3 and 0 is the background), so
``classes[label]`` names every label and the semantic view has N + 1 classes. ``category_ids[label]``
is the COCO category id back (``category_ids[0] = 0`` for the background), for evaluation files.

Your own data in COCO format: pass ``json_file`` and ``image_dir`` (absolute, or relative to
``root``, or to the current directory without ``root``); ``split`` is then only a label (any
string), and ``{split}`` in either path is replaced by it, so one recipe serves train and val::

    data:
      dataset: coco
      kwargs: {json_file: my_data/annotations/{split}.json, image_dir: my_data/images/{split}}

``seglab data check coco -O json_file=... -O image_dir=...`` lists every problem of such a file.

Problems in the JSON (undeclared category, duplicate image or annotation id, missing image file, RLE
of the wrong size, polygon under 3 points, ...): with ``strict=True`` (default) the first raises a
one-line ``DataError`` naming the file and the id; with ``strict=False`` each is recorded in
``problems`` and the bad annotation or image is left out (also an RLE that fails to decode on access).

Targets (``task``):
    "instance": ``dict(masks, boxes, labels, crowd)`` (``seglab.data.masks.instance_target``) from
        the ``iscrowd == 0`` annotations; boxes are recomputed from the decoded masks (the JSON
        ``bbox`` is not used). Crowd annotations (``iscrowd == 1``, usually uncompressed RLE) are
        not instances: their union is the ``crowd`` mask [H, W]. An annotation whose mask decodes
        to no pixel (a polygon thinner than a pixel) is left out, its id added to
        ``dataset.dropped_annotations``, with a warning (strict) or a problem (not strict).
    "semantic": ``Mask`` int64 [H, W]: 0 background, 1..N instances painted largest first (so
        small objects stay visible), 255 on crowd pixels that no instance covers.
Images without annotations are kept (``skip_empty=False``) and counted in ``num_empty``; with
``skip_empty=True`` they are left out and counted in ``num_skipped``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors

from seglab.data.base import (
    SegmentationDataset, Transforms, check_split, default_palette, exif_orientation, open_image_file, read_image,
)  # fmt: skip
from seglab.data.datasets.coco_json import (
    CocoRecords, Problems, bbox_problems, load_coco_json, read_instances,
)  # fmt: skip
from seglab.data.masks import decode_rle, instance_target, polygons_to_mask
from seglab.data.root import dataset_dir
from seglab.errors import ConfigError, DataError

__all__ = ["CocoInstances", "load_coco_json"]

TASKS = ("semantic", "instance")
SPLITS = ("train", "val")


class CocoInstances(SegmentationDataset):
    """COCO 2017 instances (or your own COCO JSON): masks, boxes and labels 1..N, or the semantic view.

    Args:
        split: "train" or "val"; with ``json_file``, any name (a label, and the value of ``{split}``).
        root: the data root holding ``<folder>/``; ``None`` uses ``seglab.data.data_root()``. With
            ``json_file``, the folder that relative ``json_file`` and ``image_dir`` start from.
        folder: the dataset folder name under ``root`` (e.g. "coco_tiny"); unused with ``json_file``.
        task: "instance" or "semantic" (see the module docstring).
        skip_empty: leave out images without any annotation (counted in ``num_skipped``).
        json_file: your own COCO instances JSON, instead of the official layout; needs ``image_dir``.
        image_dir: the folder holding ``images[*].file_name`` of ``json_file``.
        strict: raise on the first problem of the JSON; False records each in ``problems`` and leaves
            the bad annotation or image out.
        transforms: joint ``(image, target)`` transform, see ``SegmentationDataset``.

    Attributes:
        category_ids: COCO category id of each label (index = label; 0 for the background).
        category_to_label: COCO category id -> label 1..N.
        problems: the problems recorded with ``strict=False``, each naming the file, id and fix; it
            grows on access (RLE that fails to decode, mask that decodes empty), in this process only.
        num_instances: non-crowd annotations of the kept images; num_crowd: crowd annotations;
        num_empty: kept images without annotations; num_skipped: images left out by ``skip_empty``.

    Raises:
        ConfigError: unknown split or task, ``json_file`` without ``image_dir`` (or the reverse).
        DataError: missing folder or JSON, unreadable JSON, or (strict) a problem in it.
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
        json_file: str | Path | None = None,
        image_dir: str | Path | None = None,
        strict: bool = True,
        transforms: Transforms | None = None,
    ) -> None:
        if task not in TASKS:
            raise ConfigError(f"coco: unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
        super().__init__(split=split, transforms=transforms)
        self.task, self.strict = task, bool(strict)
        self.root, self.json_path, self.image_dir = _locate(split, root, folder, json_file, image_dir)
        if not self.image_dir.is_dir():
            raise DataError(f"COCO image folder {str(self.image_dir)!r} is missing (images of {str(self.json_path)!r})")
        self._problems = Problems(strict=self.strict)
        self.problems: list[str] = self._problems.messages  # grows on access too (RLE that fails to decode)
        records = read_instances(self.json_path, self.image_dir, self._problems)
        self._set_categories(records.category_names)
        self._index(records, skip_empty)

    def _set_categories(self, names: dict[int, str]) -> None:
        """Labels 1..N for the category ids sorted; set ``classes``, ``palette`` and the id maps."""
        ids = sorted(names)
        self.classes = ("background", *(names[i] for i in ids))
        self.palette = default_palette(len(self.classes))  # COCO has no official colours
        self.category_ids: list[int] = [0, *ids]
        self.category_to_label = {category_id: label for label, category_id in enumerate(ids, start=1)}

    def _index(self, records: CocoRecords, skip_empty: bool) -> None:
        by_image: dict[int, list[dict[str, Any]]] = {image_id: [] for image_id in records.images}
        for ann in records.annotations:
            by_image[ann["image_id"]].append(ann)
        empty = [image_id for image_id, anns in by_image.items() if not anns]
        self.num_skipped = len(empty) if skip_empty else 0
        self.num_empty = 0 if skip_empty else len(empty)
        self.dropped_annotations: set[int] = set()  # ids of annotations that decoded to no pixel (seen so far)
        self._undecodable: set[int] = set()  # ids whose segmentation failed to decode (strict=False)
        kept = [image_id for image_id in records.images if by_image[image_id] or not skip_empty]
        self.images = [records.images[image_id] for image_id in kept]
        self.annotations = [by_image[image_id] for image_id in kept]
        self.samples = [(self.image_dir / image["file_name"], self.json_path) for image in self.images]
        self.num_crowd = sum(ann["iscrowd"] for anns in self.annotations for ann in anns)
        self.num_instances = sum(len(anns) for anns in self.annotations) - self.num_crowd

    def bbox_problems(self) -> list[str]:
        """The JSON ``bbox`` fields outside their image or of negative size (see ``coco_json.bbox_problems``)."""
        return bbox_problems(self.json_path, self.images, self.annotations)

    def __getitem__(self, index: int) -> Any:
        image_path = self.samples[index][0]
        image = read_image(image_path)
        self._check_size(index, tuple(image.shape[-2:]))
        target: Any = self._semantic(index) if self.task == "semantic" else self._instances(index)
        if self.task == "semantic":
            target = tv_tensors.Mask(torch.from_numpy(target))
        if self.transforms is not None:
            return self.transforms(image, target)
        return image, target

    def _check_size(self, index: int, image_hw: tuple[int, ...]) -> None:
        """Raise DataError when the JSON's width and height of image ``index`` differ from its file."""
        info, image_path = self.images[index], self.samples[index][0]
        if image_hw == (info["height"], info["width"]):
            return
        fix = "fix width and height in the JSON (masks are decoded at that size) or restore the right image file"
        orientation = exif_orientation(open_image_file(image_path))
        if orientation in (5, 6, 7, 8) and image_hw == (info["width"], info["height"]):
            fix = (f"the file's EXIF orientation {orientation} turns it to the JSON size, but seglab reads the "
                   f"stored pixels: apply the tag to the pixels (PIL.ImageOps.exif_transpose) and re-save the file")
        raise DataError(
            f"size mismatch: image {str(image_path)!r} is {image_hw[1]}x{image_hw[0]} (width x height) but image id "
            f"{info['id']} in {str(self.json_path)!r} says {info['width']}x{info['height']}; {fix}"
        )

    def raw_label(self, index: int) -> np.ndarray:
        """Return the semantic view of item ``index``: [H, W] int64 labels 0..N, 255 = crowd."""
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
            mask = self._decode_or_report(ann, height, width)
            if mask is None:
                continue
            if ann["iscrowd"]:
                crowd |= mask.astype(bool)
            elif mask.any():
                masks.append(mask)
                labels.append(self.category_to_label[ann["category_id"]])
            elif ann["id"] not in self.dropped_annotations:
                self.dropped_annotations.add(ann["id"])
                self._report_empty(ann, info)
        return masks, labels, crowd

    def _decode_or_report(self, ann: dict[str, Any], height: int, width: int) -> np.ndarray | None:
        """Decode ``ann``; a bad RLE raises (strict) or is recorded once in ``problems`` and skipped."""
        try:
            return self.decode(ann, height, width)
        except DataError as err:
            if self.strict:
                raise
            if ann["id"] not in self._undecodable:
                self._undecodable.add(ann["id"])
                self._problems.add(DataError(f"{err}; re-encode the mask or remove the annotation"),
                                   left_out="the annotation")  # fmt: skip
            return None

    def _report_empty(self, ann: dict[str, Any], info: dict[str, Any]) -> None:
        message = (
            f"{str(self.json_path)!r}: annotation id {ann['id']} (image id {info['id']}, {info['file_name']}) "
            f"decodes to an empty mask (no pixel centre inside); fix its segmentation or remove it"
        )
        if self.strict:
            warnings.warn(f"{message} (it is left out)", stacklevel=4)
        else:
            self._problems.add(DataError(message), left_out="the annotation")

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


def _locate(
    split: str, root: str | Path | None, folder: str, json_file: str | Path | None, image_dir: str | Path | None
) -> tuple[Path, Path, Path]:
    """Return (dataset folder, JSON file, image folder): the official layout, or ``json_file`` and ``image_dir``."""
    if json_file is None and image_dir is None:
        check_split(CocoInstances.name, split, SPLITS)
        base = dataset_dir(folder, root)
        return base, base / "annotations" / f"instances_{split}2017.json", base / f"{split}2017"
    if json_file is None or image_dir is None:
        given, missing = ("json_file", "image_dir") if image_dir is None else ("image_dir", "json_file")
        raise ConfigError(
            f"coco: {given}= needs {missing}= too (your own COCO JSON and the folder of its images), e.g. "
            f"-O json_file=annotations/train.json -O image_dir=images/train"
        )
    base = Path(root).expanduser() if root is not None else Path()
    paths = [base / Path(str(path).replace("{split}", split)).expanduser() for path in (json_file, image_dir)]
    return base, paths[0], paths[1]
