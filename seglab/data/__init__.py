"""Datasets, augmentation, collation and label checks.

Datasets yield ``(tv_tensors.Image uint8 [3, H, W], tv_tensors.Mask int64 [H, W])`` with 255 =
ignore; ``collate_semantic`` turns a list of them into float images in [0, 1] and int64 masks.
Instance datasets (``dataset_tasks(name)`` holds "instance"; build them with ``task="instance"``)
yield ``(image, dict(masks, boxes, labels[, crowd]))``; ``collate_instance`` turns a list of them into
float images and ``seglab.structures.InstanceTarget``. ``check_dataset`` checks label files,
``check_instances`` instance targets (``seglab data check`` picks by the dataset's task).
"""

from __future__ import annotations

from seglab.data.base import IGNORE_INDEX, SegmentationDataset, read_image, read_label
from seglab.data.check import CheckReport, check_dataset
from seglab.data.instance_check import check_instances
from seglab.data.collate import collate_instance, collate_panoptic, collate_semantic
from seglab.data.datasets import (
    CamVid,
    FolderDataset,
    ISBI2012EM,
    SyntheticShapes,
    build_dataset,
    dataset_tasks,
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
    "check_instances",
    "collate_instance",
    "collate_panoptic",
    "collate_semantic",
    "data_root",
    "dataset_dir",
    "dataset_tasks",
    "eval_transforms",
    "list_datasets",
    "list_images",
    "read_image",
    "read_label",
    "train_transforms",
]
