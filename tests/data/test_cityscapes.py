"""Cityscapes on the real sample (flat layout) and on fixtures in the official layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_dataset
from PIL import Image

from seglab.data import build_dataset, check_dataset
from seglab.data.datasets.cityscapes import LABELS, Cityscapes
from seglab.data.transforms import train_transforms
from seglab.errors import ConfigError, DataError

STEM = "frankfurt_000000_000294"
# The label ids present in the sample and their train ids, from the official table (written out by hand).
SAMPLE_TRAIN_IDS = {1: 255, 2: 255, 3: 255, 4: 255, 7: 0, 8: 1, 11: 2, 13: 4, 17: 5, 20: 7, 21: 8, 23: 10, 24: 11, 26: 13}


@pytest.fixture
def sample() -> Path:
    return require_dataset("cityscapes_sample")


def _sample(sample: Path, task: str = "semantic") -> Cityscapes:
    return build_dataset("cityscapes", split="all", root=sample.parent, folder=sample.name, task=task)


def _raw(sample: Path, kind: str) -> np.ndarray:
    return np.asarray(Image.open(sample / "gtFine" / f"{STEM}_gtFine_{kind}.png")).astype(np.int64)


def test_label_table() -> None:
    assert [label.id for label in LABELS] == [*range(34), -1]
    assert sorted(label.train_id for label in LABELS if label.train_id != 255) == list(range(19))
    assert Cityscapes.classes[0] == "road" and Cityscapes.classes[18] == "bicycle" and len(Cityscapes.palette) == 19
    assert Cityscapes.thing_classes == tuple(range(11, 19))
    assert Cityscapes.label_map[29] == 255 and Cityscapes.label_map[30] == 255  # caravan, trailer: not evaluated
    assert set(Cityscapes.label_map) == set(range(34))


def test_semantic_counts_match_raw_png(sample: Path) -> None:
    dataset = _sample(sample)
    assert len(dataset) == 1 and dataset.available_splits(sample) == ("all",)
    image, mask = dataset[0]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 128, 256)
    raw = _raw(sample, "labelIds")
    expected = np.vectorize(SAMPLE_TRAIN_IDS.__getitem__)(raw)
    assert np.array_equal(
        np.bincount(mask.numpy().ravel(), minlength=256), np.bincount(expected.ravel(), minlength=256)
    )
    assert set(mask.unique().tolist()) == {0, 1, 2, 4, 5, 7, 8, 10, 11, 13, 255}  # SOURCE.md
    # The shipped labelTrainIds were downscaled separately: they agree on 99.77% of pixels (SOURCE.md).
    agreement = (mask.numpy() == _raw(sample, "labelTrainIds")).mean()
    assert 0.997 < agreement < 1.0


def test_instances_match_raw_png(sample: Path) -> None:
    image, target = _sample(sample, "instance")[0]
    raw = _raw(sample, "instanceIds")
    values = [24000, 24001, 24002, 24003, 26000, 26001, 26002]  # 4 persons, 3 cars (SOURCE.md)
    assert target["labels"].tolist() == [11, 11, 11, 11, 13, 13, 13]
    assert target["masks"].dtype == torch.uint8 and tuple(target["masks"].shape) == (7, 128, 256)
    for k, value in enumerate(values):
        assert np.array_equal(target["masks"][k].numpy(), (raw == value).astype(np.uint8))
        ys, xs = np.nonzero(raw == value)
        assert target["boxes"][k].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert target["boxes"].canvas_size == (128, 256)
    assert int(target["crowd"].sum()) == 0


def test_panoptic_matches_semantic_and_instances(sample: Path) -> None:
    _, mask = _sample(sample)[0]
    _, panoptic = _sample(sample, "panoptic")[0]
    assert torch.equal(panoptic["semantic"], mask)  # instanceIds // 1000 equals labelIds on this sample
    raw = _raw(sample, "instanceIds")
    instance_ids = panoptic["instance_ids"].numpy()
    assert instance_ids.max() == 7
    assert np.array_equal(instance_ids > 0, raw >= 1000)
    assert np.array_equal(instance_ids == 5, raw == 26000)  # ids follow the sorted instanceIds values


def test_check_report_on_sample(sample: Path) -> None:
    report = check_dataset(_sample(sample))
    assert report.ok, report.errors
    raw = _raw(sample, "labelIds")
    assert report.class_pixels["road"] == int((raw == 7).sum())
    assert report.class_pixels["wall"] == 0
    assert report.ignored_pixels == int(np.isin(raw, [1, 2, 3, 4]).sum())


def test_instance_target_survives_transforms(sample: Path) -> None:
    torch.manual_seed(0)
    transforms = train_transforms(crop_size=(64, 96), scale_range=(0.9, 1.1), task="instance")
    dataset = Cityscapes(split="all", root=sample.parent, folder=sample.name, task="instance", transforms=transforms)
    for _ in range(3):
        image, target = dataset[0]
        k = target["labels"].numel()
        assert tuple(image.shape[-2:]) == (64, 96) and tuple(target["crowd"].shape) == (64, 96)
        assert target["masks"].shape[0] == k and target["boxes"].shape[0] == k


def _official(tmp_path: Path, sample: Path, split: str = "val") -> Path:
    """Copy the real sample into the official layout leftImg8bit/<split>/<city>/..."""
    folder = tmp_path / "cityscapes"
    for top, kinds in (("leftImg8bit", ["leftImg8bit"]), ("gtFine", ["gtFine_labelIds", "gtFine_instanceIds"])):
        target = folder / top / split / "frankfurt"
        target.mkdir(parents=True)
        for kind in kinds:
            shutil.copy(sample / top / f"{STEM}_{kind}.png", target)
    return folder


def test_official_layout(tmp_path: Path, sample: Path) -> None:
    _official(tmp_path, sample)
    dataset = build_dataset("cityscapes", split="val", root=tmp_path, task="instance")
    assert len(dataset) == 1 and dataset.files(0)[1].parent.name == "frankfurt"
    assert dataset[0][1]["labels"].numel() == 7
    with pytest.raises(ConfigError, match="valid splits: val"):
        build_dataset("cityscapes", split="train", root=tmp_path)


def test_missing_files_are_named(tmp_path: Path, sample: Path) -> None:
    folder = _official(tmp_path, sample)
    instance_file = folder / "gtFine" / "val" / "frankfurt" / f"{STEM}_gtFine_instanceIds.png"
    instance_file.unlink()
    assert len(Cityscapes(split="val", root=tmp_path)) == 1  # semantic does not need instanceIds
    with pytest.raises(DataError, match="instanceIds.png"):
        Cityscapes(split="val", root=tmp_path, task="panoptic")
    (folder / "gtFine" / "val" / "frankfurt" / f"{STEM}_gtFine_labelIds.png").unlink()
    with pytest.raises(DataError, match=f"{STEM}_gtFine_labelIds.png"):
        Cityscapes(split="val", root=tmp_path)


def _write_pair(folder: Path, label_ids: np.ndarray, instance_ids: np.ndarray) -> None:
    for sub in ("leftImg8bit/val/aachen", "gtFine/val/aachen"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    height, width = label_ids.shape
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(folder / "leftImg8bit/val/aachen/a_0_0_leftImg8bit.png")
    Image.fromarray(label_ids.astype(np.uint8)).save(folder / "gtFine/val/aachen/a_0_0_gtFine_labelIds.png")
    Image.fromarray(instance_ids.astype(np.uint16)).save(folder / "gtFine/val/aachen/a_0_0_gtFine_instanceIds.png")


def test_crowd_and_unevaluated_instances(tmp_path: Path) -> None:
    instance_ids = np.full((4, 6), 7, dtype=np.int64)  # road
    instance_ids[0, :2] = 24  # a group of persons without instance number: crowd
    instance_ids[1:3, 1:3] = 26001  # one car
    instance_ids[3, 4:] = 29000  # a caravan instance: train id 255, not an instance
    label_ids = np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids)
    _write_pair(tmp_path / "cityscapes", label_ids, instance_ids)
    _, target = Cityscapes(split="val", root=tmp_path, task="instance")[0]
    assert target["labels"].tolist() == [13]
    assert target["boxes"].tolist() == [[1.0, 1.0, 3.0, 3.0]]
    assert target["crowd"].nonzero().tolist() == [[0, 0], [0, 1]]
    _, panoptic = Cityscapes(split="val", root=tmp_path, task="panoptic")[0]
    assert panoptic["semantic"][0, :2].tolist() == [11, 11] and panoptic["instance_ids"][0, :2].tolist() == [0, 0]
    assert panoptic["semantic"][3, 4:].tolist() == [255, 255] and int(panoptic["instance_ids"].sum()) == 4


def test_unknown_label_value_names_file(tmp_path: Path) -> None:
    label_ids = np.full((4, 6), 7)
    label_ids[0, 0] = 40
    _write_pair(tmp_path / "cityscapes", label_ids, label_ids)
    with pytest.raises(DataError, match=r"a_0_0_gtFine_labelIds\.png.*40"):
        Cityscapes(split="val", root=tmp_path)[0]
    with pytest.raises(DataError, match=r"a_0_0_gtFine_instanceIds\.png.*40"):
        Cityscapes(split="val", root=tmp_path, task="instance")[0]


def test_bad_task_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "cityscapes").mkdir()
    with pytest.raises(DataError, match="leftImg8bit"):
        Cityscapes(split="val", root=tmp_path)
    with pytest.raises(ConfigError, match="unknown task 'instances'"):
        Cityscapes(split="val", root=tmp_path, task="instances")
