"""Any folder of images and index-PNG masks, paired by file stem.

``FolderDataset(image_dir, mask_dir, classes=...)`` pairs ``image_dir/a.jpg`` with ``mask_dir/a.png``
(images may be png/jpg/tif/bmp; masks are single-channel index images). ``label_map`` maps raw mask
values to train ids (``{0: 1, 255: 0}`` for ISBI-style membrane PNGs) and ``ignore_values`` lists raw
values that become the ignore index. With ``mask_dir=None`` (prediction) items are images only.

Entries with an image suffix that cannot be read (a broken symlink, a directory named ``x.png``, a
file without read permission, an empty file) are not left out: the dataset warns once, naming them,
keeps them in ``unreadable``, and reading such an item raises a ``DataError`` naming the file, as
for a truncated image; ``seglab data check`` lists them all.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from seglab.data.base import (
    IGNORE_INDEX,
    IMAGE_SUFFIXES,
    SegmentationDataset,
    Transforms,
    default_palette,
    file_problem,
    read_image,
)
from seglab.errors import ConfigError, DataError

IMAGE_SUBDIRS = ("images", "image", "img")
MASK_SUBDIRS = ("masks", "mask", "labels", "label", "annotations")


def list_images(path: str | Path) -> list[Path]:
    """Return the image files in a folder (not recursive, natural order), or ``[path]`` for one file.

    Every entry with an image suffix is returned, also one that cannot be read (a broken symlink, a
    directory named ``x.png``): reading it then raises a ``DataError`` naming it, where leaving it
    out would drop it silently. ``unreadable_entries`` says which ones.

    Raises:
        DataError: the path is missing, is not an image file, or the folder holds no images.
    """
    path = Path(path).expanduser()
    suffixes = ", ".join(IMAGE_SUFFIXES)
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{str(path)!r} is not an image file; expected one of {suffixes}")
        return [path]
    if not path.is_dir():
        raise DataError(f"image path {str(path)!r} not found; pass an image file or a folder of images")
    images = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural)
    if not images:
        raise DataError(f"no images ({suffixes}) found in folder {str(path)!r}")
    return images


def unreadable_entries(paths: Iterable[Path]) -> dict[Path, str]:
    """Return path -> why it cannot be read, for the entries ``file_problem`` finds (no file is decoded)."""
    problems = {path: file_problem(path) for path in paths}
    return {path: problem for path, problem in problems.items() if problem}


class FolderDataset(SegmentationDataset):
    """Images and index masks from two folders, paired by stem (mask stem = image stem + ``mask_suffix``).

    Args:
        image_dir: folder of images (png/jpg/tif/bmp).
        mask_dir: folder of index masks; ``None`` yields images only (``tv_tensors.Image``) and
            ``files(i)`` returns ``(image, None)``.
        classes: class names, index = train id.
        palette: one RGB colour per class; default the PASCAL VOC colour map.
        label_map: raw mask value -> train id (or ``ignore_index``); default: raw values are train ids.
        ignore_values: raw values mapped to ``ignore_index`` (e.g. a "void" label).
        ignore_index: the train id of ignored pixels (255).
        mask_suffix: extra text after the image stem in mask file names (e.g. "_mask").
        split: a display name for the split.
        transforms: joint ``(image, mask)`` transform (or ``image`` only without masks).

    Attributes:
        unreadable: path -> reason for the entries of both folders that cannot be read (see the
            module docstring); empty for a clean dataset.

    Warns:
        UserWarning: once, naming the unreadable entries, when there are any.
    """

    name = "folder"

    def __init__(
        self,
        image_dir: str | Path,
        mask_dir: str | Path | None = None,
        *,
        classes: Sequence[str],
        palette: Sequence[tuple[int, int, int]] | None = None,
        label_map: dict[int, int] | None = None,
        ignore_values: Iterable[int] = (),
        ignore_index: int = IGNORE_INDEX,
        mask_suffix: str = "",
        split: str = "folder",
        transforms: Transforms | None = None,
    ) -> None:
        super().__init__(split=split, transforms=transforms)
        self.classes = tuple(classes)
        if not self.classes:
            raise ConfigError(
                "folder dataset: classes is empty; pass the class names, e.g. classes=['background', 'object']"
            )
        self.palette = [tuple(c) for c in palette] if palette is not None else default_palette(len(self.classes))
        if len(self.palette) != len(self.classes):
            raise ConfigError(
                f"folder dataset: palette has {len(self.palette)} colours for {len(self.classes)} classes"
            )
        self.ignore_index = ignore_index
        self.label_map = self._build_label_map(label_map, ignore_values)
        self.image_dir = Path(image_dir)
        self.mask_dir = Path(mask_dir) if mask_dir is not None else None
        images = list_images(self.image_dir)
        masks = list_images(self.mask_dir) if self.mask_dir is not None else []
        self.unreadable = unreadable_entries([*images, *masks])
        if self.unreadable:
            _warn_unreadable(self.unreadable)
        if self.mask_dir is None:
            self.samples = [(image, None) for image in images]  # type: ignore[misc]
        else:
            self.samples = _pair_by_stem(images, masks, self.mask_dir, mask_suffix)

    def __getitem__(self, index: int) -> Any:
        if self.mask_dir is not None:
            return super().__getitem__(index)
        image = read_image(self.files(index)[0])
        return self.transforms(image) if self.transforms is not None else image

    def raw_label(self, index: int) -> Any:
        if self.mask_dir is None:
            raise DataError(f"folder dataset over {str(self.image_dir)!r} has no masks (mask_dir=None)")
        return super().raw_label(index)

    def _build_label_map(self, label_map: dict[int, int] | None, ignore_values: Iterable[int]) -> dict[int, int]:
        if label_map is None:
            table = {v: v for v in range(len(self.classes))}
            table[self.ignore_index] = self.ignore_index
        else:
            table = {int(k): int(v) for k, v in label_map.items()}
            bad = {k: v for k, v in table.items() if not (0 <= v < len(self.classes) or v == self.ignore_index)}
            if bad:
                raise ConfigError(
                    f"folder dataset: label_map sends {bad} outside 0..{len(self.classes) - 1} and "
                    f"ignore_index {self.ignore_index}; map each raw value to a class id"
                )
        for value in ignore_values:
            table[int(value)] = self.ignore_index
        return table


def resolve_split_dirs(root: Path, split: str) -> tuple[Path, Path | None]:
    """Find ``<root>/<split>/{images,image,img}`` and ``<root>/<split>/{masks,mask,labels,label,annotations}``.

    Raises:
        ConfigError: the split folder or its image folder is missing (lists the splits present).
    """
    split_dir = root / split
    if not split_dir.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise ConfigError(
            f"unknown split {split!r} for folder dataset {str(root)!r}; valid splits: "
            f"{', '.join(present) or '(none: no sub-folders)'}; or pass image_dir= and mask_dir="
        )
    image_dir = next((split_dir / d for d in IMAGE_SUBDIRS if (split_dir / d).is_dir()), None)
    if image_dir is None:
        raise ConfigError(
            f"folder dataset: no image folder in {str(split_dir)!r}; expected one of "
            f"{', '.join(IMAGE_SUBDIRS)}, or pass image_dir= and mask_dir="
        )
    mask_dir = next((split_dir / d for d in MASK_SUBDIRS if (split_dir / d).is_dir()), None)
    return image_dir, mask_dir


def _warn_unreadable(unreadable: dict[Path, str]) -> None:
    shown = "; ".join(f"{str(path)!r} ({problem})" for path, problem in list(unreadable.items())[:5])
    more = f"; and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
    warnings.warn(
        f"folder dataset: {len(unreadable)} unreadable entr{'y' if len(unreadable) == 1 else 'ies'}: {shown}{more}. "
        f"They are kept: reading one raises a DataError; `seglab data check folder` lists them all",
        stacklevel=3,
    )


def _pair_by_stem(
    images: list[Path], mask_files: list[Path], mask_dir: Path, mask_suffix: str
) -> list[tuple[Path, Path]]:
    masks: dict[str, Path] = {}
    for mask in mask_files:
        if mask.stem in masks:
            raise DataError(
                f"two masks share the stem {mask.stem!r}: {str(masks[mask.stem])!r} and {str(mask)!r}; keep one"
            )
        masks[mask.stem] = mask
    missing = [image for image in images if image.stem + mask_suffix not in masks]
    if missing:
        shown = ", ".join(repr(p.name) for p in missing[:5])
        shown += f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(
            f"{len(missing)} image(s) have no mask in {str(mask_dir)!r}: {shown}; masks are matched by file "
            f"stem{f' + {mask_suffix!r}' if mask_suffix else ''} (any of {', '.join(IMAGE_SUFFIXES)})"
        )
    return [(image, masks[image.stem + mask_suffix]) for image in images]


def _natural(path: Path) -> list[Any]:
    """Sort key that orders "2.png" before "10.png"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]
