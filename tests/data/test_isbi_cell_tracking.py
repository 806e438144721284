"""ISBI cell tracking (official CTC layout) on tiny TIFF fixtures: instance ids -> binary, skipped frames."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.data import build_dataset, check_dataset
from seglab.data.datasets.isbi_cell_tracking import ISBICellTracking
from seglab.errors import ConfigError, DataError

H, W = 6, 10
SEQ = "DIC-C2DH-HeLa"
# video -> (frames, annotated frames)
FRAMES = {"01": (["000", "001", "002", "010"], ["002", "010"]), "02": (["000", "001"], ["000"])}


def _instances() -> np.ndarray:
    """16-bit instance ids: background 0, cell 1, cell 300 (needs 16 bits)."""
    ids = np.zeros((H, W), np.uint16)
    ids[1:3, 1:3] = 1
    ids[3:5, 5:9] = 300
    return ids


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for video, (frames, annotated) in FRAMES.items():
        frame_dir, seg_dir = tmp_path / SEQ / video, tmp_path / SEQ / f"{video}_GT" / "SEG"
        frame_dir.mkdir(parents=True)
        seg_dir.mkdir(parents=True)
        for number in frames:
            Image.fromarray(np.full((H, W), 40 + int(number), np.uint8)).save(frame_dir / f"t{number}.tif")
        for number in annotated:
            Image.fromarray(_instances()).save(seg_dir / f"man_seg{number}.tif")
    return tmp_path


def test_binary_masks_from_instance_ids(root: Path) -> None:
    dataset = build_dataset("isbi_cell_tracking", split="01", root=root, sequence=SEQ)
    assert dataset.classes == ("background", "cell") and dataset.num_classes == 2
    assert Image.open(dataset.files(0)[1]).mode.startswith("I;16")  # the fixture is really 16-bit
    image, mask = dataset[0]
    assert tuple(image.shape) == (3, H, W) and image.dtype == torch.uint8 and int(image[0, 0, 0]) == 42
    assert mask.dtype == torch.int64 and tuple(mask.shape) == (H, W)
    assert torch.equal(mask, torch.from_numpy((_instances() > 0).astype(np.int64)))


def test_skipped_frames_counted(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="seglab.data.datasets.isbi_cell_tracking"):
        dataset = ISBICellTracking(split="01", root=root, sequence=SEQ)
    assert [p.name for p, _ in dataset.samples] == ["t002.tif", "t010.tif"]
    assert [p.name for p in dataset.skipped] == ["t000.tif", "t001.tif"]
    assert "skipped 2 frame(s) without a segmentation reference (2 kept)" in caplog.text
    assert "items=2, skipped=2 frames without SEG reference" in repr(dataset)
    both = ISBICellTracking(split="all", root=root, sequence=SEQ)
    assert len(both) == 3 and len(both.skipped) == 3
    assert both.files(2)[1].parent.parent.name == "02_GT"


def test_check_ok_and_bad(root: Path) -> None:
    report = check_dataset(ISBICellTracking(split="all", root=root, sequence=SEQ))
    assert report.ok, report.errors
    assert report.class_pixels == {"background": 3 * (H * W - 12), "cell": 3 * 12}
    bad = root / SEQ / "02_GT" / "SEG" / "man_seg000.tif"
    Image.fromarray(np.zeros((H + 2, W), np.uint16)).save(bad)
    report = check_dataset(ISBICellTracking(split="02", root=root, sequence=SEQ))
    assert not report.ok and "size mismatch" in report.errors[0] and str(bad) in report.errors[0]
    with pytest.raises(DataError, match=r"size mismatch: image .*02/t000\.tif.*label .*man_seg000\.tif"):
        ISBICellTracking(split="02", root=root, sequence=SEQ)[0]


def test_bad_options_and_missing_folders(root: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown sequence 'DIC-C2DH-Hela'; did you mean 'DIC-C2DH-HeLa'"):
        ISBICellTracking(split="01", root=root, sequence="DIC-C2DH-Hela")
    with pytest.raises(ConfigError, match="valid splits: 01, 02, all"):
        ISBICellTracking(split="train", root=root, sequence=SEQ)
    with pytest.raises(DataError, match=r"PhC-C2DH-U373' not found"):
        ISBICellTracking(split="01", root=root)  # the default sequence is not in the fixture
    for path in (root / SEQ / "02_GT" / "SEG").iterdir():
        path.unlink()
    with pytest.raises(DataError, match=r"no frame of .*02' has a reference man_seg<t>\.tif"):
        ISBICellTracking(split="02", root=root, sequence=SEQ)
    (root / SEQ / "02_GT" / "SEG").rmdir()
    with pytest.raises(DataError, match=r"folder .*02_GT/SEG' is missing; extract the official training zip"):
        ISBICellTracking(split="all", root=root, sequence=SEQ)
