"""The instance check behind ``seglab data check`` for datasets built with ``task="instance"``.

``check_instances`` reads the items of an instance dataset and reports the problems of its
annotation file (``dataset.problems`` and ``dataset.bbox_problems()`` where the dataset has them:
a COCO JSON built with ``strict=False`` lists undeclared categories, duplicate image and annotation
ids, missing image files, RLE and polygon errors, JSON bboxes outside the image), items that fail
to load, warnings raised while loading (annotations left out, e.g. masks that decode empty), and
per item: instances with empty masks, boxes outside the image, labels outside 1..C, and masks,
boxes and labels of different counts; plus the instance count of every class and the number of
images without instances. It warns (not an error) about images without instances and images with
only crowd regions, naming them, and about image files with an EXIF orientation tag (seglab reads
the stored pixels, while annotation tools may have drawn on the turned view). ``seglab.data.check``
holds ``CheckReport`` and the semantic check.
"""

from __future__ import annotations

import warnings as _warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from seglab.data.base import IMAGE_SUFFIXES, ORIENTATIONS, SegmentationDataset, file_orientation
from seglab.data.check import MAX_LISTED, CheckReport, _listed, _pick
from seglab.errors import ConfigError, DataError

__all__ = ["check_instances"]

MAX_ERRORS = 20  # messages shown per kind of problem before "and N more"


def check_instances(
    dataset: SegmentationDataset,
    *,
    max_items: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Check an instance dataset: its annotation file and the target of each item (see the module docstring).

    Args:
        dataset: a dataset built with ``task="instance"`` whose items are ``(image, dict(masks
            [K, H, W], boxes [K, 4], labels [K][, crowd]))``; build it without transforms (and COCO
            with ``strict=False``, so every problem of the JSON is listed, not only the first).
        max_items: check this many items, evenly spaced over the split; ``None`` checks all.
        progress: called as ``progress(done, total)`` after each item.

    Returns:
        a ``CheckReport`` with ``task="instance"``; ``ok`` is False when any error was found.

    Raises:
        ConfigError: the dataset's task is not "instance" (use ``check_dataset`` for label files).
    """
    task = getattr(dataset, "task", "semantic")
    if task != "instance":
        raise ConfigError(f"check_instances needs a dataset built with task='instance', got task {task!r}; "
                          f"use check_dataset for semantic labels")  # fmt: skip
    indices = _pick(len(dataset), max_items)
    tally = _InstanceTally(counts={dataset.classes[c]: 0 for c in _thing_classes(dataset)})
    for done, index in enumerate(indices, start=1):
        _check_item(dataset, index, tally)
        if progress is not None:
            progress(done, len(indices))
    bbox_problems = getattr(dataset, "bbox_problems", None)
    tally.add_all("annotation file", getattr(dataset, "problems", []))  # after the pass: it grows on access
    tally.add_all("bbox", bbox_problems() if callable(bbox_problems) else [])
    return CheckReport(
        ok=not tally.errors, num_items=len(indices), errors=tally.messages(),
        warnings=_report_warnings(tally, len(indices)),
        dataset=dataset.name or type(dataset).__name__, split=str(dataset.split), task="instance",
        class_instances=tally.counts, images_without_instances=tally.without_instances,
    )  # fmt: skip


@dataclass
class _InstanceTally:
    """What the instance check collects: messages by kind, instances per class, empty images."""

    counts: dict[str, int]
    errors: dict[str, list[str]] = field(default_factory=dict)
    without_instances: int = 0
    empty_items: list[str] = field(default_factory=list)  # no instance and no crowd region
    crowd_only: list[str] = field(default_factory=list)  # crowd regions but no instance
    oriented: list[str] = field(default_factory=list)  # image files with an EXIF orientation tag

    def add_all(self, kind: str, messages: list[str]) -> None:
        if messages:
            self.errors.setdefault(kind, []).extend(messages)

    def messages(self) -> list[str]:
        shown = []
        for kind, messages in self.errors.items():
            shown += messages[:MAX_ERRORS]
            if len(messages) > MAX_ERRORS:
                shown.append(f"... and {len(messages) - MAX_ERRORS} more problem(s) of kind {kind!r}")
        return shown


def _report_warnings(tally: _InstanceTally, num_items: int) -> list[str]:
    warnings = []
    empty_classes = [name for name, count in tally.counts.items() if count == 0]
    if empty_classes and num_items:
        warnings.append(f"{len(empty_classes)} class(es) have no instance in the {num_items} checked item(s): "
                        f"{_listed(empty_classes)}")  # fmt: skip
    if tally.empty_items:
        warnings.append(f"{len(tally.empty_items)} image(s) have no instance (no annotation, or none usable): "
                        f"{_listed(tally.empty_items)}; they train as background only (coco: skip_empty=True "
                        f"leaves them out)")  # fmt: skip
    if tally.crowd_only:
        warnings.append(f"{len(tally.crowd_only)} image(s) have only crowd regions (iscrowd=1) and no instance: "
                        f"{_listed(tally.crowd_only)}; they give no instance to learn from")  # fmt: skip
    if tally.oriented:
        warnings.append(f"{len(tally.oriented)} image file(s) carry an EXIF orientation tag: "
                        f"{_listed(tally.oriented, sep='; ')}; seglab ignores the tag and reads the stored pixels "
                        f"(no exif_transpose), so annotations must be in stored-pixel coordinates: if they were drawn "
                        f"on the turned view, apply the tag to the pixels (PIL.ImageOps.exif_transpose) and re-save "
                        f"without it")  # fmt: skip
    return warnings


def _item_name(dataset: SegmentationDataset, index: int) -> str:
    """``item 3 (image id 7, 'path')``: the index, the record id where the dataset has ``images``, the file."""
    samples, images = getattr(dataset, "samples", []), getattr(dataset, "images", [])
    details = []
    if index < len(images) and isinstance(images[index], Mapping) and "id" in images[index]:
        details.append(f"image id {images[index]['id']}")
    if index < len(samples):
        details.append(repr(str(samples[index][0])))
    return f"item {index}" + (f" ({', '.join(details)})" if details else "")


def _thing_classes(dataset: SegmentationDataset) -> list[int]:
    """The labels instances may carry: ``thing_classes`` where declared, else 1..C (0 = background)."""
    return list(getattr(dataset, "thing_classes", range(1, dataset.num_classes)))


def _check_item(dataset: SegmentationDataset, index: int, tally: _InstanceTally) -> None:
    name = _item_name(dataset, index)
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        try:
            image, target = dataset[index]
        except DataError as err:
            tally.add_all("unreadable", [f"{name}: {err}"])
            return
    tally.add_all("left out", [str(warning.message) for warning in caught])
    problems, labels = _target_problems(target, tuple(image.shape[-2:]), dataset.num_classes)
    for kind, message in problems:
        tally.add_all(kind, [f"{name}: {message}"])
    if not problems and not labels:
        tally.without_instances += 1
        crowd = target.get("crowd")
        (tally.crowd_only if isinstance(crowd, Tensor) and bool(crowd.any()) else tally.empty_items).append(name)
    _note_orientation(dataset, index, tally)
    for label in labels:
        class_name = dataset.classes[label]
        tally.counts[class_name] = tally.counts.get(class_name, 0) + 1


def _note_orientation(dataset: SegmentationDataset, index: int, tally: _InstanceTally) -> None:
    samples = getattr(dataset, "samples", [])
    path = samples[index][0] if index < len(samples) else None
    if path is None or Path(path).suffix.lower() not in IMAGE_SUFFIXES:
        return
    orientation = file_orientation(path)
    if orientation != 1:
        tally.oriented.append(f"{str(path)!r} (orientation {orientation}: shown {ORIENTATIONS[orientation]})")


def _target_problems(target: Any, image_hw: tuple[int, ...], num_classes: int) -> tuple[list[tuple[str, str]], list[int]]:
    """Return (kind, message) per problem of one instance target, and its labels within 1..C."""
    keys = ("masks", "boxes", "labels")
    if not isinstance(target, Mapping) or not all(isinstance(target.get(key), Tensor) for key in keys):
        got = f"a dict with keys {sorted(target)}" if isinstance(target, Mapping) else type(target).__name__
        return [("target", f"target is {got}; expected a dict with tensors masks, boxes and labels "
                           f"(build the dataset with task='instance')")], []  # fmt: skip
    masks, boxes, labels = (target[key].as_subclass(Tensor) for key in keys)
    counts = (masks.shape[0] if masks.dim() == 3 else -1, boxes.shape[0] if boxes.dim() == 2 else -1, labels.numel())
    if masks.dim() != 3 or boxes.dim() != 2 or boxes.shape[-1] != 4 or len(set(counts)) != 1:
        return [("count", f"masks {list(masks.shape)}, boxes {list(boxes.shape)} and labels {list(labels.shape)} "
                          f"disagree; expected [K, H, W], [K, 4] and [K]: one box and one label per mask")], []  # fmt: skip
    if tuple(masks.shape[-2:]) != image_hw:
        return [("size", f"masks are {list(masks.shape)} but the image is {list(image_hw)} (H, W)")], []
    if isinstance(target["boxes"], tv_tensors.BoundingBoxes):
        boxes = TF.convert_bounding_box_format(target["boxes"], new_format="XYXY").as_subclass(Tensor)
    height, width = image_hw
    x1, y1, x2, y2 = boxes.to(torch.float64).unbind(1)
    checks = [
        ("empty mask", masks.flatten(1).ne(0).sum(1) == 0,
         "empty mask(s); drop them (SanitizeInstances) or fix their annotation"),
        ("box", (x1 < 0) | (y1 < 0) | (x2 > width) | (y2 > height) | (x2 <= x1) | (y2 <= y1),
         f"box(es) outside the {width}x{height} image or degenerate; expected 0 <= x1 < x2 <= {width}, "
         f"0 <= y1 < y2 <= {height} (recompute them with seglab.boxes.masks_to_boxes)"),
        ("label", (labels < 1) | (labels >= num_classes),
         f"label(s) outside 1..{num_classes - 1} (0 is the background); fix the class mapping"),
    ]  # fmt: skip
    problems = []
    for kind, bad, what in checks:
        if bool(bad.any()):
            which = bad.nonzero().flatten().tolist()
            problems.append((kind, f"instance(s) {which[:MAX_LISTED]}{' ...' if len(which) > MAX_LISTED else ''} "
                                   f"(labels {labels[bad][:MAX_LISTED].tolist()}) have {what}"))  # fmt: skip
    valid = (labels >= 1) & (labels < num_classes)
    return problems, labels[valid].tolist()
