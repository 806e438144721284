"""COCO panoptic (2017): 133 categories (80 things + 53 stuff), panoptic PNG + JSON segments.

A. Kirillov et al., "Panoptic Segmentation", CVPR 2019; format from https://cocodataset.org/#format-data
and cocodataset/panopticapi (read for the format, not copied).

Layout under ``<data root>/<folder>`` (folder "coco" by default), as distributed::

    annotations/panoptic_<split>2017.json      images, annotations[*].segments_info, categories
    annotations/panoptic_<split>2017/<id>.png  RGB panoptic PNGs (annotations[*].file_name)
    <split>2017/<id>.jpg                       images

Splits "train" and "val". Other layouts pass ``json_file``, ``panoptic_dir`` and ``image_dir``
relative to the folder; panopticapi's ``sample_data`` (``coco_panoptic_sample``) is
``json_file="panoptic_examples.json", panoptic_dir="panoptic_examples", image_dir="input_images"``.

Encoding: a PNG pixel's segment id is ``R + 256 G + 256^2 B``; 0 is void (unlabelled). Each non-zero
id is one entry of ``segments_info`` (``id``, ``category_id``, ``iscrowd``, ``area``, ``bbox``).
Classes: the JSON's categories sorted by id become the contiguous class ids 0..132 (person = 0,
things first since thing ids 1..90 precede stuff ids 92..200); ``thing_classes`` lists those with
``isthing == 1``; ``category_ids[class]`` is the category id back (for ``seglab.data.panoptic_format``).

Targets (``task``):
    "panoptic": ``dict(semantic=Mask int64 [H, W], instance_ids=Mask int64 [H, W])`` as in
        ``seglab.data.synthetic``: semantic class 0..132 and 255 on void; instance ids 1..K for the
        non-crowd thing segments in ``segments_info`` order, 0 on stuff, void and crowd segments
        (a thing-class pixel with instance id 0 is a crowd region).
    "semantic": the ``semantic`` part alone (``Mask`` int64 [H, W]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
import torch
from torchvision import tv_tensors

from seglab.data.base import SegmentationDataset, Transforms, check_same_size, check_split, default_palette, read_image
from seglab.data.datasets.coco_json import _field, leaves_folder, load_coco_json
from seglab.data.panoptic_format import check_segments_info, decode_panoptic, panoptic_ids, sorted_categories
from seglab.data.root import dataset_dir
from seglab.errors import ConfigError, DataError

__all__ = ["CocoPanoptic", "panoptic_ids"]

TASKS = ("panoptic", "semantic")
SPLITS = ("train", "val")


class CocoPanoptic(SegmentationDataset):
    """COCO panoptic segmentation, 133 classes, semantic + instance id maps.

    Args:
        split: "train" or "val".
        root: the data root holding ``<folder>/``; ``None`` uses ``seglab.data.data_root()``.
        folder: the dataset folder name under ``root`` (e.g. "coco_panoptic_sample").
        json_file, panoptic_dir, image_dir: paths relative to the folder, overriding the official
            layout (see the module docstring).
        task: "panoptic" or "semantic".
        transforms: joint ``(image, target)`` transform, see ``SegmentationDataset``.
    """

    name = "coco_panoptic"
    has_files = False  # labels are RGB-coded PNGs: `seglab data check` reads raw_label()

    def __init__(
        self,
        *,
        split: str = "val",
        root: str | Path | None = None,
        folder: str = "coco",
        json_file: str | None = None,
        panoptic_dir: str | None = None,
        image_dir: str | None = None,
        task: str = "panoptic",
        transforms: Transforms | None = None,
    ) -> None:
        check_split(self.name, split, SPLITS)
        if task not in TASKS:
            raise ConfigError(f"coco_panoptic: unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
        super().__init__(split=split, transforms=transforms)
        self.task = task
        self.root = dataset_dir(folder, root)
        self.json_path = self.root / (json_file or f"annotations/panoptic_{split}2017.json")
        self.panoptic_dir = self.root / (panoptic_dir or f"annotations/panoptic_{split}2017")
        self.image_dir = self.root / (image_dir or f"{split}2017")
        for path in (self.panoptic_dir, self.image_dir):
            if not path.is_dir():
                raise DataError(f"COCO panoptic folder {str(path)!r} is missing")
        data = load_coco_json(self.json_path, required=("images", "annotations", "categories"))
        self.category_to_class = self._read_categories(data["categories"])
        self.samples, self.segments = self._read_annotations(data["images"], data["annotations"])

    def _read_categories(self, categories: list[Any]) -> dict[int, int]:
        """Map category id -> class 0..N-1 (sorted by id); set classes, palette, thing_classes, category_ids."""
        ordered = sorted_categories(categories, source=self.json_path)
        self.classes = tuple(c["name"] for c in ordered)
        fallback = default_palette(len(ordered))
        self.palette = [
            tuple(c["color"]) if isinstance(c.get("color"), list) else fallback[i] for i, c in enumerate(ordered)
        ]
        self.thing_classes = tuple(i for i, c in enumerate(ordered) if c["isthing"])
        self.category_ids: list[int] = [c["id"] for c in ordered]
        return {c["id"]: i for i, c in enumerate(ordered)}

    def _read_annotations(
        self, images: list[Any], annotations: list[Any]
    ) -> tuple[list[tuple[Path, Path]], list[list[dict[str, Any]]]]:
        files = {}
        for k, image in enumerate(images):
            where = f"{str(self.json_path)!r}: images[{k}]"
            files[_field(image, "id", int, where)] = _field(image, "file_name", str, where)
        samples, segments = [], []
        for k, ann in enumerate(annotations):
            where = f"{str(self.json_path)!r}: annotations[{k}]"
            image_id = _field(ann, "image_id", int, where)
            if image_id not in files:
                raise DataError(f"{where}: image_id {image_id} is not in 'images'")
            png_name = _field(ann, "file_name", str, where)
            for name, folder in ((files[image_id], self.image_dir), (png_name, self.panoptic_dir)):
                if leaves_folder(name):
                    raise DataError(f"{where}: file_name {name!r} (image id {image_id}) points outside {str(folder)!r}; "
                                    "file names must be relative paths inside it (the file is not read)")
            png = self.panoptic_dir / png_name
            image = self.image_dir / files[image_id]
            for path in (image, png):
                if not path.is_file():
                    raise DataError(f"{where}: file {str(path)!r} (image id {image_id}) is missing")
            infos = _field(ann, "segments_info", list, where)
            check_segments_info(infos, where=f"{where} (image id {image_id})", category_to_class=self.category_to_class)
            samples.append((image, png))
            segments.append(infos)
        return samples, segments

    def __getitem__(self, index: int) -> Any:
        image_path, png_path = self.samples[index]
        image = read_image(image_path)
        semantic, instance_ids = self.decode(index)
        check_same_size(image_path, tuple(image.shape[-2:]), png_path, semantic.shape)
        target: Any = tv_tensors.Mask(torch.from_numpy(semantic))
        if self.task == "panoptic":
            target = dict(semantic=target, instance_ids=tv_tensors.Mask(torch.from_numpy(instance_ids)))
        if self.transforms is not None:
            return self.transforms(image, target)
        return image, target

    def raw_label(self, index: int) -> np.ndarray:
        """Return the semantic map of item ``index``: [H, W] int64 classes 0..132, 255 = void.

        Raises:
            DataError: also when the PNG's size differs from its image's (read from the image header).
        """
        semantic = self.decode(index)[0]
        image_path, png_path = self.samples[index]
        with PILImage.open(image_path) as image:
            check_same_size(image_path, (image.height, image.width), png_path, semantic.shape)
        return semantic

    def decode(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode item ``index``'s PNG into (semantic [H, W] int64, instance_ids [H, W] int64).

        Raises:
            DataError: the PNG holds an id missing from ``segments_info``, or a listed segment has no pixel.
        """
        png_path = self.samples[index][1]
        return decode_panoptic(
            panoptic_ids(png_path), self.segments[index], category_to_class=self.category_to_class,
            thing_classes=self.thing_classes, ignore_index=self.ignore_index, png=png_path, json_file=self.json_path,
        )
