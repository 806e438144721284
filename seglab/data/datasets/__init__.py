"""Datasets by name: ``build_dataset("camvid", split="train")`` and ``list_datasets()``.

| name          | class             | splits                         |
|---------------|-------------------|--------------------------------|
| "camvid"      | CamVid            | train, val (test if present)   |
| "isbi2012_em" | ISBI2012EM        | train (0..19), val (20..23), all |
| "synthetic"   | SyntheticShapes   | train, val                     |
| "folder"      | FolderDataset     | sub-folders of root, or image_dir=/mask_dir= |
| "voc2012"     | VOC2012           | train, val, trainval, train_aug (+ SBD) |
| "sbd"         | SBD               | train, val                     |
| "pascal_context" | PascalContext  | train, val; num_classes=59 or 60 |
| "siftflow"    | SiftFlow          | train, test (TestSet1.txt)     |
| "sunrgbd"     | SUNRGBD           | train, test; read_depth(i)     |
| "ade20k"      | ADE20K            | train, val                     |
| "isbi_cell_tracking" | ISBICellTracking | 01, 02, all; sequence="PhC-C2DH-U373" or "DIC-C2DH-HeLa" |
| "cityscapes"  | Cityscapes        | train, val, test (all: flat layout); folder=, task= |
| "coco"        | CocoInstances     | train, val; folder=, task="instance"/"semantic", skip_empty=, strict=; or any split with json_file=, image_dir= (your own COCO JSON) |
| "coco_panoptic" | CocoPanoptic    | train, val; folder=, json_file=, panoptic_dir=, image_dir=, task= |

``dataset_tasks(name)`` says which targets ("semantic", "instance", "panoptic") a dataset can produce;
the ones with more than one take ``task=``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from seglab.data.base import SegmentationDataset, Transforms
from seglab.data.datasets.ade20k import ADE20K
from seglab.data.datasets.camvid import CamVid
from seglab.data.datasets import cityscapes, coco, coco_panoptic
from seglab.data.datasets.cityscapes import Cityscapes
from seglab.data.datasets.coco import CocoInstances
from seglab.data.datasets.coco_panoptic import CocoPanoptic
from seglab.data.datasets.folder import FolderDataset, list_images, resolve_split_dirs
from seglab.data.datasets.isbi import ISBI2012EM
from seglab.data.datasets.isbi_cell_tracking import ISBICellTracking
from seglab.data.datasets.pascal_context import PascalContext
from seglab.data.datasets.siftflow import SiftFlow
from seglab.data.datasets.sunrgbd import SUNRGBD
from seglab.data.datasets.voc import SBD, VOC2012
from seglab.data import synthetic
from seglab.data.synthetic import SyntheticShapes
from seglab.errors import ConfigError, closest

__all__ = ["CamVid", "FolderDataset", "ISBI2012EM", "SyntheticShapes", "build_dataset", "list_datasets", "list_images"]
__all__ += ["dataset_tasks"]
__all__ += ["Cityscapes", "CocoInstances", "CocoPanoptic"]
__all__ += ["ADE20K", "ISBICellTracking", "PascalContext", "SBD", "SUNRGBD", "SiftFlow", "VOC2012"]


def _camvid(*, split: str, root: str | Path | None, transforms: Transforms | None) -> CamVid:
    return CamVid(split=split, root=root, transforms=transforms)


def _isbi(*, split: str, root: str | Path | None, transforms: Transforms | None) -> ISBI2012EM:
    return ISBI2012EM(split=split, root=root, transforms=transforms)


def _synthetic(*, split: str, root: str | Path | None, transforms: Transforms | None, **kwargs: Any) -> SyntheticShapes:
    return SyntheticShapes(split=split, transforms=transforms, **kwargs)  # no files: root is unused


def _folder(
    *,
    split: str,
    root: str | Path | None,
    transforms: Transforms | None,
    image_dir: str | Path | None = None,
    mask_dir: str | Path | None = None,
    **kwargs: Any,
) -> FolderDataset:
    """Images from ``image_dir`` (relative paths are under ``root``), or from ``<root>/<split>/images``."""
    base = Path(root).expanduser() if root is not None else Path()
    if image_dir is not None:
        image_dir = base / image_dir  # an absolute image_dir ignores root
        mask_dir = base / mask_dir if mask_dir is not None else None
    elif root is None:
        raise ConfigError("folder dataset needs root= (with <root>/<split>/images and masks) or image_dir=")
    else:
        image_dir, found_masks = resolve_split_dirs(base, split)
        mask_dir = base / mask_dir if mask_dir is not None else found_masks
    if "classes" not in kwargs:
        raise ConfigError("folder dataset needs classes=[...] (class names, index = label value)")
    return FolderDataset(image_dir, mask_dir, split=split, transforms=transforms, **kwargs)


_BUILDERS: dict[str, Callable[..., SegmentationDataset]] = {
    "camvid": _camvid,
    "isbi2012_em": _isbi,
    "synthetic": _synthetic,
    "folder": _folder,
    # Classes with keyword-only (split, root, transforms, options...) constructors are their own builders.
    "voc2012": VOC2012,
    "sbd": SBD,
    "pascal_context": PascalContext,
    "siftflow": SiftFlow,
    "sunrgbd": SUNRGBD,
    "ade20k": ADE20K,
    "isbi_cell_tracking": ISBICellTracking,
    "cityscapes": Cityscapes,
    "coco": CocoInstances,
    "coco_panoptic": CocoPanoptic,
}


# Datasets with more than the semantic target, read from each module's own TASKS (its ``task=`` values).
_TASKS: dict[str, tuple[str, ...]] = {
    "coco": coco.TASKS,
    "cityscapes": cityscapes.TASKS,
    "synthetic": synthetic.TASKS,
    "coco_panoptic": coco_panoptic.TASKS,
}
_ALL_TASKS = ("semantic", "instance", "panoptic")


def list_datasets() -> list[str]:
    """Return the registered dataset names, sorted."""
    return sorted(_BUILDERS)


def dataset_tasks(name: str) -> tuple[str, ...]:
    """Return the targets dataset ``name`` can produce, in the order semantic, instance, panoptic.

    E.g. ``dataset_tasks("coco") == ("semantic", "instance")``; datasets without a ``task=`` option
    give ``("semantic",)``. Pass one of them as ``build_dataset(name, ..., task=...)``.

    Raises:
        ConfigError: unknown name (with the closest registered names).
    """
    _check_name(name)
    supported = _TASKS.get(name, ("semantic",))
    return tuple(task for task in _ALL_TASKS if task in supported)


def _check_name(name: str) -> None:
    if name not in _BUILDERS:
        hint = closest(name, _BUILDERS)
        raise ConfigError(
            f"unknown dataset {name!r}; {hint + ' ' if hint else ''}available: {', '.join(list_datasets())}"
        )


def build_dataset(
    name: str,
    *,
    split: str,
    root: str | Path | None = None,
    transforms: Transforms | None = None,
    **kwargs: Any,
) -> SegmentationDataset:
    """Build a dataset by name.

    Args:
        name: one of ``list_datasets()``.
        split: the split name (each dataset lists its own; an unknown one raises ConfigError).
        root: the data root (``None``: ``seglab.data.data_root()``); for "folder", the folder.
        transforms: joint ``(image, mask)`` transform.
        **kwargs: dataset-specific options ("synthetic": num_images, size, seed, task; "folder":
            image_dir, mask_dir, classes, label_map, ignore_values, palette, mask_suffix;
            "pascal_context": num_classes; "isbi_cell_tracking": sequence; "coco": folder, task,
            skip_empty, strict, json_file and image_dir; ``task`` is one of ``dataset_tasks(name)``).

    Raises:
        ConfigError: unknown name, split or option.
        DataError: missing or broken data.
    """
    _check_name(name)
    try:
        return _BUILDERS[name](split=split, root=root, transforms=transforms, **kwargs)
    except TypeError as err:
        if "unexpected keyword argument" not in str(err):
            raise
        raise ConfigError(f"dataset {name!r}: {err}") from err
