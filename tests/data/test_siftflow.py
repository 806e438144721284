"""SiftFlow on a tiny fixture in the official layout (JPEGs, .mat labels with variable S, TestSet1.txt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from seglab.data import build_dataset, check_dataset
from seglab.data.datasets.siftflow import SUBSET, SiftFlow
from seglab.errors import ConfigError, DataError

SIZE = 8  # the real images are 256x256
NAMES = ["coast_arnat59", "forest_for114", "street_art256", "tallbuilding_a212"]


def _label() -> np.ndarray:
    """Raw S: 0 unlabelled, 1 awning, 28 sky, 33 window (MATLAB double, as in the release)."""
    label = np.full((SIZE, SIZE), 28.0)
    label[0, 0], label[0, 1], label[0, 2] = 0, 1, 33
    return label


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "siftflow"
    (folder / "Images" / SUBSET).mkdir(parents=True)
    (folder / "SemanticLabels" / SUBSET).mkdir(parents=True)
    for name in NAMES:
        Image.fromarray(np.full((SIZE, SIZE, 3), 60, np.uint8)).save(folder / "Images" / SUBSET / f"{name}.jpg")
        savemat(folder / "SemanticLabels" / SUBSET / f"{name}.mat", {"S": _label(), "names": np.array(["x"])})
    # The list names images with a Windows-style path in one line and a bare name in the other.
    (folder / "TestSet1.txt").write_text(f"Images\\{SUBSET}\\street_art256.jpg\r\ncoast_arnat59\r\n")
    return tmp_path


def test_splits_from_test_list(root: Path) -> None:
    test = build_dataset("siftflow", split="test", root=root)
    train = SiftFlow(split="train", root=root)
    assert [p.stem for p, _ in test.samples] == ["coast_arnat59", "street_art256"]
    assert [p.stem for p, _ in train.samples] == ["forest_for114", "tallbuilding_a212"]
    assert train.num_classes == 33 and len(train.palette) == 33
    assert train.classes[0] == "awning" and train.classes[27] == "sky" and train.classes[32] == "window"


def test_label_mapping(root: Path) -> None:
    image, mask = SiftFlow(split="train", root=root)[0]
    assert tuple(image.shape) == (3, SIZE, SIZE) and image.dtype == torch.uint8
    assert mask.dtype == torch.int64 and tuple(mask.shape) == (SIZE, SIZE)
    assert mask[0, :3].tolist() == [255, 0, 32] and mask[5, 5] == 27


def test_check_ok_and_bad(root: Path) -> None:
    report = check_dataset(SiftFlow(split="test", root=root))
    assert report.ok, report.errors
    assert report.class_pixels["sky"] == 2 * (SIZE * SIZE - 3) and report.ignored_pixels == 2
    bad = root / "siftflow" / "SemanticLabels" / SUBSET / "coast_arnat59.mat"
    label = _label()
    label[3, 3] = 34
    savemat(bad, {"S": label})
    report = check_dataset(SiftFlow(split="test", root=root))
    assert not report.ok and "label value 34" in report.errors[0] and str(bad) in report.errors[0]


def test_missing_variable_and_size_mismatch(root: Path) -> None:
    labels = root / "siftflow" / "SemanticLabels" / SUBSET
    savemat(labels / "forest_for114.mat", {"names": np.array(["x"])})
    with pytest.raises(DataError, match=r"forest_for114\.mat' has no variable 'S'"):
        SiftFlow(split="train", root=root)[0]
    savemat(labels / "tallbuilding_a212.mat", {"S": np.zeros((SIZE, SIZE + 2))})
    with pytest.raises(DataError, match=r"size mismatch: image .*tallbuilding_a212\.jpg.*label .*a212\.mat"):
        SiftFlow(split="train", root=root)[1]
    report = check_dataset(SiftFlow(split="train", root=root))
    assert not report.ok and any("forest_for114.mat" in e and "unreadable" in e for e in report.errors)
    assert any("size mismatch" in e and "tallbuilding_a212.mat" in e for e in report.errors)


def test_missing_list_folder_and_split(root: Path) -> None:
    folder = root / "siftflow"
    (folder / "TestSet1.txt").write_text("coast_arnat59\nbeach_missing1\n")
    with pytest.raises(DataError, match=r"TestSet1\.txt' names 1 image\(s\) not in .*: beach_missing1"):
        SiftFlow(split="train", root=root)
    (folder / "TestSet1.txt").unlink()
    with pytest.raises(DataError, match=r"test list .*TestSet1\.txt' not found"):
        SiftFlow(split="test", root=root)
    with pytest.raises(ConfigError, match="valid splits: train, test"):
        SiftFlow(split="val", root=root)
    (folder / "SemanticLabels" / SUBSET / "forest_for114.mat").unlink()
    (folder / "TestSet1.txt").write_text("coast_arnat59\n")
    with pytest.raises(DataError, match=r"forest_for114\.jpg' has no label .*forest_for114\.mat"):
        SiftFlow(split="train", root=root)
