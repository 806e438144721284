"""Conversions run by ``seglab data fetch`` after extraction, so the loaders read plain index PNGs.

Each converter takes the dataset folder and an optional ``progress(done, total)`` callback, writes
its outputs next to the originals (which are kept) and returns the number of files written. It is
listed by name in ``seglab.data.sources`` and looked up in ``CONVERTERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from seglab.data.base import open_image_file, read_label
from seglab.data.datasets.cityscapes import LABELS as CITYSCAPES_LABELS
from seglab.data.datasets._files import read_mat_label
from seglab.errors import DataError

__all__ = ["CONVERTERS", "cityscapes_train_ids", "coco_panoptic_unzip", "isbi2012_tiff_to_png", "sbd_mat_to_png"]

Progress = Callable[[int, int], None]

SBD_NUM_CLASSES = 21  # background + the 20 PASCAL VOC classes (Hariharan et al., ICCV 2011)


def sbd_mat_to_png(folder: Path, progress: Progress | None = None) -> int:
    """Write SBD's class labels ``cls/<id>.mat`` (``GTcls.Segmentation``) as 8-bit index PNGs.

    SBD (Hariharan et al., "Semantic Contours from Inverse Detectors", ICCV 2011) stores each label in
    a MATLAB struct ``GTcls`` whose ``Segmentation`` field is ``[H, W]`` with 0 = background and 1..20
    = the VOC classes. Output: ``benchmark_RELEASE/dataset/cls_png/<id>.png`` (mode "L", same values).

    Args:
        folder: the ``sbd`` folder holding ``benchmark_RELEASE/``.
        progress: called as ``progress(done, total)`` after each file.

    Returns:
        the number of PNGs written.

    Raises:
        DataError: no ``cls/*.mat`` found, or a file that is unreadable or holds values above 20.
    """
    cls_dir = folder / "benchmark_RELEASE" / "dataset" / "cls"
    mats = sorted(cls_dir.glob("*.mat"))
    if not mats:
        raise DataError(f"SBD conversion: no .mat files in {str(cls_dir)!r}; is benchmark.tgz fully extracted?")
    out_dir = cls_dir.parent / "cls_png"
    out_dir.mkdir(exist_ok=True)
    for done, mat in enumerate(mats, 1):
        label = read_mat_label(mat, "GTcls", "Segmentation")
        if label.size and (label.min() < 0 or label.max() >= SBD_NUM_CLASSES):
            raise DataError(
                f"SBD label {str(mat)!r} holds values {int(label.min())}..{int(label.max())}; expected 0..20 "
                f"(background + 20 VOC classes); re-download benchmark.tgz"
            )
        Image.fromarray(label.astype(np.uint8), mode="L").save(out_dir / f"{mat.stem}.png")
        if progress is not None:
            progress(done, len(mats))
    return len(mats)


def isbi2012_tiff_to_png(folder: Path, progress: Progress | None = None) -> int:
    """Split the ISBI 2012 multi-page TIFF stacks into one PNG per slice.

    ``train-volume.tif`` -> ``train/image/<k>.png``, ``train-labels.tif`` -> ``train/label/<k>.png``
    and ``test-volume.tif`` (if present) -> ``test/image/<k>.png``, k = page index from 0, which is
    the layout ``seglab.data.datasets.isbi`` reads (Arganda-Carreras et al., Front. Neuroanat. 2015).

    Returns:
        the number of PNGs written.

    Raises:
        DataError: a training stack is missing or unreadable, or the image and label stacks differ
            in page count.
    """
    stacks = {"train-volume.tif": folder / "train" / "image", "train-labels.tif": folder / "train" / "label",
              "test-volume.tif": folder / "test" / "image"}
    counts: dict[str, int] = {}
    written = 0
    for done, (name, out_dir) in enumerate(stacks.items(), 1):
        path = folder / name
        if not path.is_file():
            if name.startswith("test"):
                continue  # the test stack is optional: it has no labels
            raise DataError(f"ISBI 2012 conversion: {str(path)!r} is missing; download it from the challenge site")
        stack = open_image_file(path)
        out_dir.mkdir(parents=True, exist_ok=True)
        pages = 0
        for pages, page in enumerate(ImageSequence.Iterator(stack), 1):
            page.convert("L").save(out_dir / f"{pages - 1}.png")
        counts[name], written = pages, written + pages
        if progress is not None:
            progress(done, len(stacks))
    if counts["train-volume.tif"] != counts["train-labels.tif"]:
        raise DataError(
            f"ISBI 2012: {str(folder / 'train-volume.tif')!r} has {counts['train-volume.tif']} slices but "
            f"train-labels.tif has {counts['train-labels.tif']}; re-download both"
        )
    return written


def coco_panoptic_unzip(folder: Path, progress: Progress | None = None) -> int:
    """Unpack the PNG archives nested in COCO's panoptic annotations zip.

    ``panoptic_annotations_trainval2017.zip`` holds ``annotations/panoptic_{train,val}2017.zip``;
    their PNGs go to ``<folder>/annotations/panoptic_{train,val}2017/``, the layout
    ``seglab.data.datasets.coco_panoptic`` reads. The nested zips are removed once unpacked.

    Returns:
        the number of files unpacked.

    Raises:
        DataError: neither nested zip is present, or one is unsafe or corrupt.
    """
    from seglab.data.fetch import extract_archive  # fetch imports this module

    nested = sorted((folder / "annotations").glob("panoptic_*2017.zip"))
    if not nested:
        raise DataError(
            f"COCO panoptic: no annotations/panoptic_*2017.zip in {str(folder)!r}; "
            f"is panoptic_annotations_trainval2017.zip fully extracted?"
        )
    count = 0
    for done, archive in enumerate(nested, 1):
        count += extract_archive(archive, archive.parent, kind="zip")
        archive.unlink()
        if progress is not None:
            progress(done, len(nested))
    return count


def cityscapes_train_ids(folder: Path, progress: Progress | None = None) -> int:
    """Write ``*_gtFine_labelTrainIds.png`` next to every ``*_gtFine_labelIds.png`` (19 train ids, 255 = ignore).

    The same files as cityscapesScripts' ``createTrainIdLabelImgs`` (Cordts et al., CVPR 2016), made
    with the official label table ``seglab.data.datasets.cityscapes.LABELS``. The loader maps
    labelIds itself; these PNGs serve other tools and a quick look at the 19 classes.

    Returns:
        the number of PNGs written.

    Raises:
        DataError: no labelIds PNG under ``gtFine/``, or one holding ids outside the table (0..33).
    """
    lut = np.full(256, -1, dtype=np.int16)
    for label in CITYSCAPES_LABELS:
        if label.id >= 0:  # "license plate" has id -1, which never occurs in the PNGs
            lut[label.id] = label.train_id
    labels = sorted((folder / "gtFine").rglob("*_gtFine_labelIds.png"))
    if not labels:
        raise DataError(f"Cityscapes conversion: no *_gtFine_labelIds.png under {str(folder / 'gtFine')!r}; "
                        f"is gtFine_trainvaltest.zip extracted?")
    for done, path in enumerate(labels, 1):
        label_ids = read_label(path)
        train_ids = lut[np.clip(label_ids, 0, 255)] if label_ids.max(initial=0) < 256 else np.full_like(label_ids, -1)
        if (train_ids < 0).any():
            bad = np.unique(label_ids[train_ids < 0]).tolist()
            raise DataError(f"Cityscapes label {str(path)!r} holds ids {bad} outside the label table (0..33)")
        out = path.with_name(path.name.replace("_gtFine_labelIds.png", "_gtFine_labelTrainIds.png"))
        Image.fromarray(train_ids.astype(np.uint8), mode="L").save(out)
        if progress is not None:
            progress(done, len(labels))
    return len(labels)


CONVERTERS: dict[str, Callable[..., int]] = {
    "sbd_mat_to_png": sbd_mat_to_png,
    "isbi2012_tiff_to_png": isbi2012_tiff_to_png,
    "coco_panoptic_unzip": coco_panoptic_unzip,
    "cityscapes_train_ids": cityscapes_train_ids,
}
