"""PASCAL VOC 2012 segmentation (Everingham et al., IJCV 2010) and SBD's extra labels (Hariharan et al., ICCV 2011).

VOC 2012, the official ``VOCtrainval_11-May-2012.tar`` extracted into the data root::

    <data root>/VOCdevkit/VOC2012/
        JPEGImages/<id>.jpg
        SegmentationClass/<id>.png           palette PNG (mode "P"): index = class id, 255 = border/void
        ImageSets/Segmentation/{train,val,trainval}.txt   one id per line (1464 / 1449 / 2913)

SBD, the official ``benchmark.tgz`` extracted into the data root::

    <data root>/benchmark_RELEASE/dataset/
        img/<id>.jpg
        cls/<id>.mat       struct GTcls with field Segmentation: uint8 [H, W], 0 = background, 1..20
        train.txt, val.txt (8498 / 2857 ids)

Classes (index = label value): background and the 20 VOC object classes listed in ``VOC_CLASSES``;
255 (VOC's object borders and "difficult" regions) is the ignore index. SBD labels use the same ids
and have no 255. Colours are the VOC colour map (``seglab.data.base.default_palette``).

Split "train_aug" of "voc2012" is the usual augmented training set (as in DeepLab and mmsegmentation):
VOC train + SBD train + SBD val, minus VOC val (10582 ids). An id with a VOC label
(``SegmentationClass/<id>.png``) uses it, the others use the SBD ``.mat``; images come from
``JPEGImages``. Source: http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ and
http://home.bharathh.info/pubs/codes/SBD/download.html.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seglab.data.base import SegmentationDataset, Transforms, check_split, default_palette
from seglab.data.datasets._files import pair_ids, read_id_list, read_mat_label
from seglab.data.root import dataset_dir

__all__ = ["SBD", "VOC2012", "VOC_CLASSES"]

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
_VOC_LABEL_MAP = {**{i: i for i in range(21)}, 255: 255}  # 255 = border/void, kept as ignore


class _VOCLabels(SegmentationDataset):
    """Shared metadata and label reading (PNG or SBD ``.mat``) of the VOC-style datasets."""

    classes = VOC_CLASSES
    palette = default_palette(21)
    palette_labels = True  # SegmentationClass PNGs are mode "P": the index is the class, by design
    label_map = _VOC_LABEL_MAP

    def raw_label(self, index: int) -> np.ndarray:
        """Return item ``index``'s raw label ``[H, W]`` (SBD ``.mat``: ``GTcls.Segmentation``)."""
        label_path = self.files(index)[1]
        if label_path.suffix == ".mat":
            return read_mat_label(label_path, "GTcls", "Segmentation")
        return super().raw_label(index)


class VOC2012(_VOCLabels):
    """PASCAL VOC 2012 semantic segmentation, 21 classes (background + 20 objects).

    Args:
        split: "train", "val", "trainval", or "train_aug" (VOC train + SBD, minus VOC val; needs SBD).
        root: the data root holding ``VOCdevkit/`` (and ``benchmark_RELEASE/`` for "train_aug");
            ``None`` uses ``seglab.data.data_root()``.
        transforms: joint ``(image, mask)`` transform, see ``SegmentationDataset``.
    """

    name = "voc2012"
    folder = "VOCdevkit"
    splits = ("train", "val", "trainval", "train_aug")

    def __init__(
        self, *, split: str = "train", root: str | Path | None = None, transforms: Transforms | None = None
    ) -> None:
        check_split(self.name, split, self.splits)
        super().__init__(split=split, transforms=transforms)
        self.root = dataset_dir(self.folder, root) / "VOC2012"
        if split == "train_aug":
            self.samples = self._train_aug(dataset_dir(SBD.folder, root) / "dataset")
        else:
            list_file = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
            ids = read_id_list(list_file, dataset=self.name)
            self.samples = pair_ids(
                ids, self.root / "JPEGImages", ".jpg", self.root / "SegmentationClass", ".png", source=list_file
            )

    def _train_aug(self, sbd_root: Path) -> list[tuple[Path, Path]]:
        lists = self.root / "ImageSets" / "Segmentation"
        voc_train = read_id_list(lists / "train.txt", dataset=self.name)
        voc_val = set(read_id_list(lists / "val.txt", dataset=self.name))
        sbd_lists = {f: read_id_list(sbd_root / f, dataset="sbd") for f in ("train.txt", "val.txt")}
        images, voc_labels = self.root / "JPEGImages", self.root / "SegmentationClass"
        pairs = pair_ids(voc_train, images, ".jpg", voc_labels, ".png", source=lists / "train.txt")
        seen = set(voc_train) | voc_val
        for list_name, ids in sbd_lists.items():  # SBD ids without a VOC label use the SBD .mat
            extra = [i for i in dict.fromkeys(ids) if i not in seen]
            pairs += pair_ids(extra, images, ".jpg", sbd_root / "cls", ".mat", source=sbd_root / list_name)
            seen.update(extra)
        return sorted(pairs)


class SBD(_VOCLabels):
    """Semantic Boundaries Dataset's class labels (the VOC 2011 images it re-annotated), 21 VOC classes.

    Args:
        split: "train" (8498 ids) or "val" (2857 ids), SBD's own lists.
        root: the data root holding ``benchmark_RELEASE/``; ``None`` uses ``seglab.data.data_root()``.
        transforms: joint ``(image, mask)`` transform, see ``SegmentationDataset``.
    """

    name = "sbd"
    folder = "benchmark_RELEASE"
    splits = ("train", "val")

    def __init__(
        self, *, split: str = "train", root: str | Path | None = None, transforms: Transforms | None = None
    ) -> None:
        check_split(self.name, split, self.splits)
        super().__init__(split=split, transforms=transforms)
        self.root = dataset_dir(self.folder, root) / "dataset"
        list_file = self.root / f"{split}.txt"
        ids = read_id_list(list_file, dataset=self.name)
        self.samples = pair_ids(ids, self.root / "img", ".jpg", self.root / "cls", ".mat", source=list_file)
