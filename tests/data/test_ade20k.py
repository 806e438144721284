"""ADE20K (ADEChallengeData2016 layout) on a tiny fixture: 150 classes, 0 = other -> ignore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.data import build_dataset, check_dataset
from seglab.data.datasets.ade20k import ADE20K
from seglab.errors import ConfigError, DataError

H, W = 7, 5
FILES = {"training": ["ADE_train_00000001", "ADE_train_00000002"], "validation": ["ADE_val_00000001"]}


def _label() -> np.ndarray:
    """Raw: 0 other, 1 wall, 150 flag, 13 person."""
    label = np.full((H, W), 13, np.uint8)
    label[0, 0], label[0, 1], label[0, 2] = 0, 1, 150
    return label


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "ADEChallengeData2016"
    for folder, stems in FILES.items():
        (base / "images" / folder).mkdir(parents=True)
        (base / "annotations" / folder).mkdir(parents=True)
        for stem in stems:
            Image.fromarray(np.full((H, W, 3), 200, np.uint8)).save(base / "images" / folder / f"{stem}.jpg")
            Image.fromarray(_label()).save(base / "annotations" / folder / f"{stem}.png")
    return tmp_path


def test_metadata_splits_and_mapping(root: Path) -> None:
    train = build_dataset("ade20k", split="train", root=root)
    assert len(train) == 2 and len(ADE20K(split="val", root=root)) == 1
    assert train.num_classes == 150 and len(train.palette) == 150 and len(set(train.classes)) == 150
    assert train.classes[0] == "wall" and train.classes[12] == "person" and train.classes[149] == "flag"
    assert train.files(1)[1].name == "ADE_train_00000002.png"
    image, mask = train[0]
    assert tuple(image.shape) == (3, H, W) and image.dtype == torch.uint8 and mask.dtype == torch.int64
    assert mask[0, :3].tolist() == [255, 0, 149] and mask[4, 4] == 12


def test_check_ok_and_bad(root: Path) -> None:
    report = check_dataset(ADE20K(split="train", root=root))
    assert report.ok, report.errors
    assert report.class_pixels["person"] == 2 * (H * W - 3) and report.ignored_pixels == 2
    bad = root / "ADEChallengeData2016" / "annotations" / "validation" / "ADE_val_00000001.png"
    label = _label()
    label[1, 1] = 151
    Image.fromarray(label).save(bad)
    report = check_dataset(ADE20K(split="val", root=root))
    assert not report.ok and "label value 151" in report.errors[0] and str(bad) in report.errors[0]
    with pytest.raises(DataError, match=r"ADE_val_00000001\.png' has label values 151"):
        ADE20K(split="val", root=root)[0]


def test_missing_label_folder_and_mismatch(root: Path) -> None:
    base = root / "ADEChallengeData2016"
    Image.fromarray(np.zeros((H, W + 1), np.uint8)).save(base / "annotations" / "training" / "ADE_train_00000001.png")
    with pytest.raises(DataError, match=r"size mismatch: image .*ADE_train_00000001\.jpg.*label .*00000001\.png"):
        ADE20K(split="train", root=root)[0]
    (base / "annotations" / "training" / "ADE_train_00000002.png").unlink()
    with pytest.raises(DataError, match=r"ADE_train_00000002\.jpg' has no label .*ADE_train_00000002\.png"):
        ADE20K(split="train", root=root)
    (base / "annotations" / "validation" / "ADE_val_00000001.png").unlink()
    (base / "annotations" / "validation").rmdir()
    with pytest.raises(DataError, match=r"split folder .*annotations/validation' is missing"):
        ADE20K(split="val", root=root)
    with pytest.raises(ConfigError, match="valid splits: train, val"):
        ADE20K(split="validation", root=root)
