"""The validators behind ``seglab data check``: label files (semantic) and instance targets.

``check_dataset`` reads the raw files of a dataset (no class mapping, no transforms) and reports
what would break or silently skew training: unreadable files (also entries a folder dataset found
unreadable without decoding: broken symlinks, directories, no read permission, empty files),
image/label size mismatches, colour masks where index masks are expected, label values the dataset
does not know, and the pixel count of every class; it warns about classes that never occur, palette
and JPEG masks, and files whose EXIF orientation tag viewers apply but seglab does not.

``check_instances`` (``seglab.data.instance_check``) checks instance datasets (``task="instance"``):
their annotation file and the targets of their items; both return a ``CheckReport``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.base import (
    IMAGE_SUFFIXES, INDEX_MASK_MODES, ORIENTATIONS, SegmentationDataset, _format_values, exif_orientation,
    file_problem, open_image_file,
)  # fmt: skip
from seglab.errors import DataError

MAX_LISTED = 5  # files named per problem before "and N more"
JPEG_SUFFIXES = (".jpg", ".jpeg")


@dataclass
class CheckReport:
    """Result of ``check_dataset`` (task "semantic") or ``check_instances`` (task "instance").

    Attributes:
        ok: no errors (warnings allowed).
        num_items: items checked.
        errors: problems that break loading or training, each naming the files and the fix.
        warnings: suspicious but loadable data (palette masks, classes with no pixels or instances).
        class_pixels: class name -> pixel count over the checked items (semantic).
        ignored_pixels: pixels mapped to the ignore index (semantic).
        task: "semantic" or "instance".
        class_instances: class name -> instance count over the checked items (instance).
        images_without_instances: checked items with K = 0 instances (instance).
    """

    ok: bool
    num_items: int
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    class_pixels: dict[str, int] = field(default_factory=dict)
    ignored_pixels: int = 0
    dataset: str = ""
    split: str = ""
    task: str = "semantic"
    class_instances: dict[str, int] = field(default_factory=dict)
    images_without_instances: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (for ``--format json``) with the fields of its task."""
        other = ("class_pixels", "ignored_pixels") if self.task == "instance" else ("class_instances",
                                                                                  "images_without_instances")
        return {key: value for key, value in asdict(self).items() if key not in other}


@dataclass
class _Tally:
    """What the per-item pass collects."""

    unreadable: dict[str, str] = field(default_factory=dict)  # file -> why
    mismatched: list[str] = field(default_factory=list)
    colour_masks: dict[str, list[str]] = field(default_factory=dict)  # mode -> files
    palette_masks: list[str] = field(default_factory=list)
    jpeg_masks: list[str] = field(default_factory=list)
    oriented: list[str] = field(default_factory=list)  # files with an EXIF orientation tag, and the tag
    value_pixels: dict[int, int] = field(default_factory=dict)
    unknown_files: dict[int, list[str]] = field(default_factory=dict)


def check_dataset(
    dataset: SegmentationDataset,
    *,
    max_items: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Check a dataset's raw label files.

    Args:
        dataset: any ``SegmentationDataset`` (its ``files(i)``, ``raw_values`` and ``map_label`` are used).
        max_items: check this many items, evenly spaced over the split; ``None`` checks all.
        progress: called as ``progress(done, total)`` after each item.

    Returns:
        a ``CheckReport``; ``ok`` is False when any error was found.
    """
    indices = _pick(len(dataset), max_items)
    tally = _Tally()
    for path, problem in getattr(dataset, "unreadable", {}).items():  # found by FolderDataset, all items
        tally.unreadable[str(path)] = problem
    known = dataset.raw_values
    for done, index in enumerate(indices, start=1):
        raw, label_name = _read_item(dataset, index, tally)
        if raw is not None:
            _count_values(raw, label_name, known, tally)
        if progress is not None:
            progress(done, len(indices))
    errors = _errors(dataset, tally, known)
    class_pixels, ignored = _class_pixels(dataset, tally, known)
    return CheckReport(
        ok=not errors,
        num_items=len(indices),
        errors=errors,
        warnings=_warnings(dataset, tally, class_pixels, len(indices)),
        class_pixels=class_pixels,
        ignored_pixels=ignored,
        dataset=dataset.name or type(dataset).__name__,
        split=str(dataset.split),
    )


def _pick(length: int, max_items: int | None) -> list[int]:
    if max_items is None or max_items >= length:
        return list(range(length))
    if max_items <= 0:
        return []
    return sorted(set(np.linspace(0, length - 1, max_items).round().astype(int).tolist()))


def _read_item(dataset: SegmentationDataset, index: int, tally: _Tally) -> tuple[np.ndarray | None, str]:
    """Return the raw label of item ``index`` (None when it cannot be used) and the name to report."""
    if not dataset.has_files:
        return dataset.raw_label(index), f"item {index}"
    image_path, label_path = dataset.files(index)
    image = _open(image_path, tally)
    if Path(label_path).suffix.lower() not in IMAGE_SUFFIXES:
        return _read_decoded(dataset, index, image_path, image, tally)
    if Path(label_path).suffix.lower() in JPEG_SUFFIXES:
        tally.jpeg_masks.append(str(label_path))
    label = _open(label_path, tally)
    if label is None:
        return None, str(label_path)
    if label.mode not in INDEX_MASK_MODES:
        tally.colour_masks.setdefault(label.mode, []).append(str(label_path))
        return None, str(label_path)
    if label.mode == "P":
        tally.palette_masks.append(str(label_path))
    raw = np.asarray(label, dtype=np.uint8) if label.mode == "1" else np.asarray(label)
    _compare_sizes(image_path, image, label_path, raw.shape, tally)
    return raw, str(label_path)


def _read_decoded(
    dataset: SegmentationDataset, index: int, image_path: Path, image: Any, tally: _Tally
) -> tuple[np.ndarray | None, str]:
    """Read a non-image label (e.g. MATLAB .mat in SBD, SiftFlow) through the dataset's ``raw_label``."""
    label_path = dataset.files(index)[1]
    try:
        raw = dataset.raw_label(index)
    except DataError as err:
        tally.unreadable[str(label_path)] = str(err)
        return None, str(label_path)
    _compare_sizes(image_path, image, label_path, raw.shape, tally)
    return raw, str(label_path)


def _open(path: Path, tally: _Tally) -> Any:
    """Return the decoded image file, or None when it cannot be read (recorded); note an EXIF orientation."""
    problem = file_problem(path)
    if problem:
        tally.unreadable[str(path)] = problem
        return None
    try:
        image = open_image_file(path)
    except DataError as err:
        tally.unreadable[str(path)] = f"{err.__cause__ or err}; re-export or re-download it"
        return None
    orientation = exif_orientation(image)
    if orientation != 1:
        tally.oriented.append(f"{str(path)!r} (orientation {orientation}: shown {ORIENTATIONS[orientation]})")
    return image


def _compare_sizes(image_path: Path, image: Any, label_path: Path, label_hw: tuple[int, ...], tally: _Tally) -> None:
    """Record an image/label size mismatch with its fix, saying when the image's EXIF tag explains it."""
    if image is None or (image.height, image.width) == tuple(label_hw):
        return
    orientation = exif_orientation(image)
    if orientation in (5, 6, 7, 8) and (image.width, image.height) == tuple(label_hw):
        fix = (f"the label matches the image turned by its EXIF orientation {orientation}, so it was drawn on "
               f"the turned view: apply the tag to the image pixels (PIL.ImageOps.exif_transpose) and re-save it")
    else:
        fix = "regenerate the label at the image size"
    tally.mismatched.append(
        f"image {str(image_path)!r} is {image.width}x{image.height} but label {str(label_path)!r} is "
        f"{label_hw[1]}x{label_hw[0]} (WxH); {fix}"
    )


def _count_values(raw: np.ndarray, name: str, known: set[int], tally: _Tally) -> None:
    if raw.dtype == np.uint8:
        counts = np.bincount(raw.ravel(), minlength=256)
        values = np.flatnonzero(counts)
        counts = counts[values]
    else:
        values, counts = np.unique(raw, return_counts=True)
    for value, count in zip(values.tolist(), counts.tolist()):
        tally.value_pixels[value] = tally.value_pixels.get(value, 0) + count
        if value not in known:
            tally.unknown_files.setdefault(value, []).append(name)


def _errors(dataset: SegmentationDataset, tally: _Tally, known: set[int]) -> list[str]:
    errors = []
    if tally.unreadable:
        listed = [f"{path!r} ({why})" for path, why in tally.unreadable.items()]
        errors.append(f"{len(listed)} unreadable file(s): {_listed(listed, sep='; ')}; or remove them (and their "
                      f"pairs)")  # fmt: skip
    for mismatch in tally.mismatched[:MAX_LISTED]:
        errors.append(f"size mismatch: {mismatch}")
    if len(tally.mismatched) > MAX_LISTED:
        errors.append(f"... and {len(tally.mismatched) - MAX_LISTED} more image/label size mismatches")
    for mode, files in tally.colour_masks.items():
        errors.append(
            f"{_files(files)} are colour masks (mode {mode!r}), expected single-channel index PNGs whose "
            f"pixel values are class ids; convert each colour to its class id (the dataset palette) and "
            f"save as 8-bit grayscale ('L') PNG"
        )
    name = dataset.name or type(dataset).__name__
    for value, files in sorted(tally.unknown_files.items()):
        errors.append(
            f"label value {value} ({tally.value_pixels[value]} pixels in {len(files)} file(s)) is not a "
            f"known raw value of {name} (expected {_format_values(known)}): {_listed(files)}; fix the "
            f"labels or map the value (label_map / ignore_values for folder datasets)"
        )
    return errors


def _warnings(dataset: SegmentationDataset, tally: _Tally, class_pixels: dict[str, int], num_items: int) -> list[str]:
    warnings = []
    if tally.palette_masks and not dataset.palette_labels:
        warnings.append(
            f"{_files(tally.palette_masks)} are palette ('P' mode) PNGs: their palette indices are read "
            f"as class ids and the colours are ignored; if the colours carry the classes, convert them "
            f"to single-channel index PNGs"
        )
    if tally.jpeg_masks:
        warnings.append(
            f"{_files(tally.jpeg_masks)} are JPEG files: lossy JPEG compression destroys label values (pixels "
            f"near edges change to other or unknown class ids); save the masks as PNG (lossless) from the "
            f"original labels, not from these JPEGs"
        )
    if tally.oriented:
        warnings.append(
            f"{len(tally.oriented)} file(s) carry an EXIF orientation tag: {_listed(tally.oriented, sep='; ')}; "
            f"seglab ignores the tag for images and masks alike (no exif_transpose), so a mask stays aligned "
            f"with the stored pixels, but viewers and labelling tools show these files turned: if their masks "
            f"were drawn on the turned view, apply the tag to the pixels (PIL.ImageOps.exif_transpose) and "
            f"re-save without it"
        )
    checked = f"{num_items} checked item{'s' if num_items != 1 else ''} of split {dataset.split!r}"
    for class_id, (name, pixels) in enumerate(class_pixels.items()):
        if pixels == 0 and num_items:
            warnings.append(f"class {name!r} (id {class_id}) has no pixels in the {checked}")
    return warnings


def _class_pixels(dataset: SegmentationDataset, tally: _Tally, known: set[int]) -> tuple[dict[str, int], int]:
    class_pixels = {name: 0 for name in dataset.classes}
    ignored = 0
    for value, count in tally.value_pixels.items():
        if value not in known:
            continue
        train_id = int(dataset.map_label(np.array([value])).item())
        if 0 <= train_id < dataset.num_classes:
            class_pixels[dataset.classes[train_id]] += count
        else:
            ignored += count
    return class_pixels, ignored


def _listed(items: list[str], sep: str = ", ") -> str:
    shown = sep.join(items[:MAX_LISTED])
    return shown + (f"{sep}and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _files(files: list[str]) -> str:
    return f"{len(files)} mask(s) ({_listed([repr(f) for f in files])})"
