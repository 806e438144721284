"""Datasets, augmentation, collation and label checks.

Datasets yield ``(tv_tensors.Image uint8 [3, H, W], tv_tensors.Mask int64 [H, W])`` with 255 =
ignore; ``collate_semantic`` turns a list of them into float images in [0, 1] and int64 masks.
"""

from __future__ import annotations

from seglab.data.base import IGNORE_INDEX, SegmentationDataset, read_image, read_label
from seglab.data.check import CheckReport, check_dataset
from seglab.data.collate import collate_instance, collate_semantic
from seglab.data.datasets import (
    CamVid,
    FolderDataset,
    ISBI2012EM,
    SyntheticShapes,
    build_dataset,
    list_datasets,
    list_images,
)
from seglab.data.root import data_root, dataset_dir
from seglab.data.transforms import eval_transforms, train_transforms

__all__ = [
    "IGNORE_INDEX",
    "CamVid",
    "CheckReport",
    "FolderDataset",
    "ISBI2012EM",
    "SegmentationDataset",
    "SyntheticShapes",
    "build_dataset",
    "check_dataset",
    "collate_instance",
    "collate_semantic",
    "data_root",
    "dataset_dir",
    "eval_transforms",
    "list_datasets",
    "list_images",
    "read_image",
    "read_label",
    "train_transforms",
]
