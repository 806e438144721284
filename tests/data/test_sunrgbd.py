"""SUN RGB-D (flattened layout) on a tiny fixture: 37 classes, void -> ignore, depth decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.data import build_dataset, check_dataset
from seglab.data.datasets.sunrgbd import SUNRGBD
from seglab.errors import ConfigError, DataError

H, W = 6, 9
STEMS = {"train": ["img-005051", "img-005052"], "test": ["img-000001"]}


def _label() -> np.ndarray:
    """Raw: 0 void, 1 wall, 37 bag, 5 chair."""
    label = np.full((H, W), 5, np.uint8)
    label[0, 0], label[0, 1], label[0, 2] = 0, 1, 37
    return label


def _depth_png(path: Path, millimetres: np.ndarray) -> None:
    """Write depth the way the release does: 16-bit millimetres rotated left by 3 bits."""
    rotated = ((millimetres.astype(np.uint32) << 3) | (millimetres.astype(np.uint32) >> 13)) & 0xFFFF
    Image.fromarray(rotated.astype(np.uint16)).save(path)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "sunrgbd"
    for split, stems in STEMS.items():
        for sub in ("image", "label37", "depth"):
            (folder / sub / split).mkdir(parents=True)
        for stem in stems:
            Image.fromarray(np.full((H, W, 3), 30, np.uint8)).save(folder / "image" / split / f"{stem}.jpg")
            Image.fromarray(_label()).save(folder / "label37" / split / f"{stem}.png")
            depth = np.full((H, W), 1500, np.uint16)
            depth[0, 0], depth[0, 1] = 0, 9000  # no reading, beyond the 8 m clip
            _depth_png(folder / "depth" / split / f"{stem}.png", depth)
    return tmp_path


def test_metadata_and_mapping(root: Path) -> None:
    dataset = build_dataset("sunrgbd", split="train", root=root)
    assert len(dataset) == 2 and len(SUNRGBD(split="test", root=root)) == 1
    assert dataset.num_classes == 37 and len(dataset.palette) == 37
    assert dataset.classes[0] == "wall" and dataset.classes[4] == "chair" and dataset.classes[36] == "bag"
    image, mask = dataset[1]
    assert tuple(image.shape) == (3, H, W) and image.dtype == torch.uint8 and mask.dtype == torch.int64
    assert mask[0, :3].tolist() == [255, 0, 36] and mask[3, 3] == 4


def test_read_depth(root: Path) -> None:
    dataset = SUNRGBD(split="test", root=root)
    depth = dataset.read_depth(0)
    assert depth.dtype == torch.float32 and tuple(depth.shape) == (1, H, W)
    assert depth[0, 0, 0] == 0 and depth[0, 0, 1] == 8.0 and depth[0, 3, 3] == pytest.approx(1.5)
    raw = dataset.read_depth(0, encoding="millimetres")  # the same file read without the bit rotation
    assert raw[0, 3, 3] == pytest.approx((1500 << 3) / 1000)
    with pytest.raises(ConfigError, match="unknown encoding 'metres'"):
        dataset.read_depth(0, encoding="metres")
    path = root / "sunrgbd" / "depth" / "test" / "img-000001.png"
    Image.fromarray(np.zeros((H, W + 1), np.uint16)).save(path)
    with pytest.raises(DataError, match=r"size mismatch: image .*img-000001\.jpg.*depth/test/img-000001\.png"):
        dataset.read_depth(0)
    path.unlink()
    with pytest.raises(DataError, match=r"depth file .*img-000001\.png' not found"):
        dataset.read_depth(0)


def test_check_ok_and_bad(root: Path) -> None:
    report = check_dataset(SUNRGBD(split="train", root=root))
    assert report.ok, report.errors
    assert report.class_pixels["chair"] == 2 * (H * W - 3) and report.ignored_pixels == 2
    bad = root / "sunrgbd" / "label37" / "test" / "img-000001.png"
    label = _label()
    label[2, 2] = 38
    Image.fromarray(label).save(bad)
    report = check_dataset(SUNRGBD(split="test", root=root))
    assert not report.ok and "label value 38" in report.errors[0] and str(bad) in report.errors[0]


def test_missing_folder_label_and_mismatch(root: Path) -> None:
    folder = root / "sunrgbd"
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(folder / "label37" / "train" / "img-005051.png")
    with pytest.raises(DataError, match=r"size mismatch: image .*img-005051\.jpg.*label .*img-005051\.png"):
        SUNRGBD(split="train", root=root)[0]
    (folder / "label37" / "train" / "img-005052.png").unlink()
    with pytest.raises(DataError, match=r"img-005052\.jpg' has no label .*img-005052\.png"):
        SUNRGBD(split="train", root=root)
    for path in (folder / "label37" / "test").iterdir():
        path.unlink()
    (folder / "label37" / "test").rmdir()
    with pytest.raises(DataError, match=r"split folder .*label37/test' is missing"):
        SUNRGBD(split="test", root=root)
    with pytest.raises(ConfigError, match="valid splits: train, test"):
        SUNRGBD(split="val", root=root)
