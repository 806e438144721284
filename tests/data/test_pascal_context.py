"""PASCAL-Context (converted VOC2010 layout) on a tiny fixture: 59- and 60-class label mappings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.data import build_dataset, check_dataset
from seglab.data.datasets.pascal_context import PascalContext
from seglab.errors import ConfigError, DataError

H, W = 5, 7
IDS = {"train": ["2008_000002", "2008_000003"], "val": ["2008_000007"]}


def _label() -> np.ndarray:
    """Raw values: 0 background, 1 aeroplane, 59 wood, 37 person."""
    label = np.zeros((H, W), np.uint8)
    label[0, 1], label[0, 2], label[1, :] = 1, 59, 37
    return label


@pytest.fixture
def root(tmp_path: Path) -> Path:
    voc = tmp_path / "VOCdevkit" / "VOC2010"
    lists = voc / "ImageSets" / "SegmentationContext"
    lists.mkdir(parents=True)
    (voc / "JPEGImages").mkdir()
    (voc / "SegmentationClassContext").mkdir()
    for split, ids in IDS.items():
        (lists / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for item in ids:
            Image.fromarray(np.full((H, W, 3), 120, np.uint8)).save(voc / "JPEGImages" / f"{item}.jpg")
            Image.fromarray(_label()).save(voc / "SegmentationClassContext" / f"{item}.png")
    return tmp_path


def test_59_classes_ignore_background(root: Path) -> None:
    dataset = build_dataset("pascal_context", split="train", root=root)
    assert len(dataset) == 2 and dataset.num_classes == 59 and len(dataset.palette) == 59
    assert dataset.classes[0] == "aeroplane" and dataset.classes[36] == "person" and dataset.classes[58] == "wood"
    _, mask = dataset[0]
    assert mask.dtype == torch.int64 and tuple(mask.shape) == (H, W)
    assert mask[0, 0] == 255 and mask[0, 1] == 0 and mask[0, 2] == 58 and mask[1, 3] == 36


def test_60_classes_background_is_zero(root: Path) -> None:
    dataset = PascalContext(split="train", root=root, num_classes=60)
    assert dataset.num_classes == 60 and dataset.classes[0] == "background" and dataset.classes[37] == "person"
    assert dataset.palette[1:] == PascalContext(split="val", root=root).palette  # same colour per class
    _, mask = dataset[1]
    assert torch.equal(mask, torch.from_numpy(_label().astype(np.int64)))
    with pytest.raises(ConfigError, match="num_classes=21; expected 59 or 60"):
        PascalContext(split="train", root=root, num_classes=21)


def test_check_reports_value_60(root: Path) -> None:
    assert check_dataset(PascalContext(split="train", root=root, num_classes=60)).ok
    report = check_dataset(PascalContext(split="val", root=root))
    assert report.ok and report.ignored_pixels == H * W - W - 2 and report.class_pixels["person"] == W
    bad = root / "VOCdevkit" / "VOC2010" / "SegmentationClassContext" / "2008_000007.png"
    label = _label()
    label[4, 4] = 60
    Image.fromarray(label).save(bad)
    report = check_dataset(PascalContext(split="val", root=root, num_classes=60))
    assert not report.ok and "label value 60" in report.errors[0] and str(bad) in report.errors[0]


def test_missing_list_and_split(root: Path) -> None:
    (root / "VOCdevkit" / "VOC2010" / "ImageSets" / "SegmentationContext" / "val.txt").unlink()
    with pytest.raises(DataError, match=r"SegmentationContext/val\.txt' not found"):
        PascalContext(split="val", root=root)
    with pytest.raises(ConfigError, match="valid splits: train, val"):
        PascalContext(split="test", root=root)
    with pytest.raises(ConfigError, match="unexpected keyword argument 'classes'"):
        build_dataset("pascal_context", split="train", root=root, classes=60)
