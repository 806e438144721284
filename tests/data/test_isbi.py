"""ISBI 2012 EM on the real slices, plus label-value validation on a tiny copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.data import build_dataset
from seglab.data.datasets.isbi import ISBI2012EM
from seglab.errors import ConfigError, DataError


def test_split_sizes_and_order(isbi_dir: Path) -> None:
    root = isbi_dir.parent
    sizes = {split: len(ISBI2012EM(split=split, root=root)) for split in ("train", "val", "all")}
    assert sizes == {"train": 20, "val": 4, "all": 24}
    all_slices = ISBI2012EM(split="all", root=root)
    assert [all_slices.slice_index(i) for i in range(len(all_slices))] == list(range(24))  # numeric order


def test_sample(isbi_dir: Path) -> None:
    dataset = build_dataset("isbi2012_em", split="val", root=isbi_dir.parent)
    image, mask = dataset[0]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 512, 512)
    assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])  # gray repeated
    assert set(mask.unique().tolist()) == {0, 1}
    membrane = (mask == 1).float().mean().item()
    assert 0.15 < membrane < 0.30
    assert dataset.classes == ("cell", "membrane")


def test_folder_dataset_reads_isbi_layout(isbi_dir: Path) -> None:
    folder = build_dataset(
        "folder", split="train", root=isbi_dir, classes=["cell", "membrane"], label_map={0: 1, 255: 0}
    )
    assert len(folder) == 24
    isbi = ISBI2012EM(split="all", root=isbi_dir.parent)
    assert folder.files(2) == isbi.files(2)
    assert torch.equal(folder[2][1], isbi[2][1])


def _write_slices(root: Path, label_values: dict[int, int]) -> None:
    for folder in ("image", "label"):
        (root / "isbi2012_em" / "train" / folder).mkdir(parents=True, exist_ok=True)
    for k in range(20, 24):
        Image.fromarray(np.full((8, 8), 100, np.uint8)).save(root / "isbi2012_em" / "train" / "image" / f"{k}.png")
        label = np.full((8, 8), 255, np.uint8)
        label[0, :] = 0
        label[1, 1] = label_values.get(k, 255)
        Image.fromarray(label).save(root / "isbi2012_em" / "train" / "label" / f"{k}.png")


def test_unexpected_label_value_names_file(tmp_path: Path) -> None:
    _write_slices(tmp_path, {22: 128})
    dataset = ISBI2012EM(split="val", root=tmp_path)
    assert dataset[0][1].sum() == 8  # one membrane row
    with pytest.raises(DataError, match=r"22\.png.*128"):
        dataset[2]


def test_missing_slice_and_bad_split(tmp_path: Path) -> None:
    _write_slices(tmp_path, {})
    with pytest.raises(DataError, match=r"0\.png"):
        ISBI2012EM(split="train", root=tmp_path)
    with pytest.raises(ConfigError, match="train, val, all"):
        ISBI2012EM(split="test", root=tmp_path)
