"""CamVid (SegNet 11-class version) on the real files: counts, shapes, void -> ignore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seglab.data import build_dataset, check_dataset, list_datasets
from seglab.data.datasets.camvid import CamVid
from seglab.errors import ConfigError, DataError


def test_split_sizes(camvid_dir: Path) -> None:
    # Counting only lists files; nothing is decoded.
    assert len(build_dataset("camvid", split="train", root=camvid_dir.parent)) == 367
    assert len(build_dataset("camvid", split="val", root=camvid_dir.parent)) == 101


def test_metadata(camvid_dir: Path) -> None:
    dataset = CamVid(split="val", root=camvid_dir.parent)
    assert dataset.num_classes == 11 and len(dataset.palette) == 11
    assert dataset.classes[0] == "Sky" and dataset.classes[-1] == "Bicyclist"
    assert dataset.ignore_index == 255 and dataset.task == "semantic"
    image_path, label_path = dataset.files(0)
    assert image_path.name == label_path.name and label_path.parent.name == "valannot"


def test_samples(camvid_dir: Path) -> None:
    dataset = CamVid(split="train", root=camvid_dir.parent)
    allowed = set(range(11)) | {255}
    for index in (0, len(dataset) - 1):
        image, mask = dataset[index]
        assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 360, 480)
        assert mask.dtype == torch.int64 and tuple(mask.shape) == (360, 480)
        assert set(mask.unique().tolist()) <= allowed


def test_void_becomes_ignore(camvid_dir: Path) -> None:
    dataset = CamVid(split="train", root=camvid_dir.parent)
    raw = dataset.raw_label(0)
    assert (raw == 11).any(), "first training label is expected to contain void pixels"
    _, mask = dataset[0]
    mask = mask.numpy()
    assert (mask[raw == 11] == 255).all()
    assert np.array_equal(mask[raw < 11], raw[raw < 11])


def test_check_report_ok(camvid_dir: Path) -> None:
    report = check_dataset(CamVid(split="val", root=camvid_dir.parent), max_items=3)
    assert report.ok, report.errors
    assert report.num_items == 3
    assert report.class_pixels["Road"] > 0 and sum(report.class_pixels.values()) > 0


def test_unknown_split_lists_valid(camvid_dir: Path) -> None:
    with pytest.raises(ConfigError, match="train, val"):
        build_dataset("camvid", split="tset", root=camvid_dir.parent)


def test_unknown_dataset_suggests_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'camvid'"):
        build_dataset("camvd", split="train")
    assert {"camvid", "folder", "isbi2012_em", "synthetic"} <= set(list_datasets())
    assert list_datasets() == sorted(list_datasets())


def test_missing_root_names_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--data-root"):
        build_dataset("camvid", split="train", root=tmp_path)
