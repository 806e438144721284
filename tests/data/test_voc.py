"""VOC 2012 and SBD on tiny fixtures in the official layouts (palette PNGs, GTcls .mat structs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import loadmat, savemat

from seglab.data import build_dataset, check_dataset
from seglab.data.base import default_palette
from seglab.data.datasets._files import _struct_field, read_mat_label
from seglab.data.datasets.voc import SBD, VOC2012
from seglab.errors import ConfigError, DataError

H, W = 6, 8
VOC_TRAIN, VOC_VAL = ["2007_000032", "2007_000039"], ["2007_000033"]
SBD_TRAIN, SBD_VAL = ["2008_000002", "2007_000033"], ["2007_000039", "2008_000003"]


def _jpg(path: Path, size: tuple[int, int] = (H, W)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(path)


def _label(value: int) -> np.ndarray:
    """A [H, W] label: background, a block of ``value`` and a 255 border row (VOC style)."""
    label = np.zeros((H, W), np.uint8)
    label[1:4, 2:6] = value
    label[4, :] = 255
    return label


def _voc_png(path: Path, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(label, mode="P")
    colours = default_palette(256)
    image.putpalette([c for rgb in colours for c in rgb])
    image.save(path)


def _sbd_mat(path: Path, segmentation: np.ndarray, variable: str = "GTcls") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    boundaries = np.empty((20, 1), dtype=object)
    for k in range(20):
        boundaries[k, 0] = np.zeros((2, 2), np.uint8)  # sparse matrices in the release; content unused
    present = np.unique(segmentation[segmentation > 0]).astype(np.uint8).reshape(-1, 1)
    savemat(path, {variable: {"Segmentation": segmentation, "Boundaries": boundaries, "CategoriesPresent": present}})


def _write_voc(root: Path) -> Path:
    voc = root / "VOCdevkit" / "VOC2012"
    lists = voc / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    for name, ids in {"train": VOC_TRAIN, "val": VOC_VAL, "trainval": VOC_TRAIN + VOC_VAL}.items():
        (lists / f"{name}.txt").write_text("\n".join(ids) + "\n")
    for k, item in enumerate(VOC_TRAIN + VOC_VAL + ["2008_000002", "2008_000003"]):
        _jpg(voc / "JPEGImages" / f"{item}.jpg")
        if item in VOC_TRAIN + VOC_VAL:
            _voc_png(voc / "SegmentationClass" / f"{item}.png", _label(15 if k == 0 else 1))
    return voc


def _write_sbd(root: Path) -> Path:
    dataset = root / "benchmark_RELEASE" / "dataset"
    dataset.mkdir(parents=True)
    (dataset / "train.txt").write_text("\n".join(SBD_TRAIN) + "\n")
    (dataset / "val.txt").write_text("\n".join(SBD_VAL) + "\n")
    for item in SBD_TRAIN + SBD_VAL:
        _jpg(dataset / "img" / f"{item}.jpg")
        segmentation = np.zeros((H, W), np.uint8)
        segmentation[:2, :2] = 20  # tvmonitor; SBD has no 255 borders
        _sbd_mat(dataset / "cls" / f"{item}.mat", segmentation)
    return dataset


@pytest.fixture
def root(tmp_path: Path) -> Path:
    _write_voc(tmp_path)
    _write_sbd(tmp_path)
    return tmp_path


def test_metadata_and_splits(root: Path) -> None:
    sizes = {split: len(VOC2012(split=split, root=root)) for split in ("train", "val", "trainval")}
    assert sizes == {"train": 2, "val": 1, "trainval": 3}
    dataset = build_dataset("voc2012", split="train", root=root)
    assert dataset.num_classes == 21 and len(dataset.palette) == 21
    assert dataset.classes[0] == "background" and dataset.classes[15] == "person"
    assert dataset.palette[15] == (192, 128, 128)  # VOC's person colour
    assert dataset.files(0)[1].name == "2007_000032.png"


def test_palette_indices_are_class_ids(root: Path) -> None:
    image, mask = VOC2012(split="train", root=root)[0]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, H, W)
    assert mask.dtype == torch.int64 and tuple(mask.shape) == (H, W)
    assert mask[0, 0] == 0 and mask[2, 3] == 15 and mask[4, 0] == 255  # background, person, border
    assert torch.equal(mask, torch.from_numpy(_label(15).astype(np.int64)))


def test_check_ok_and_out_of_range_value(root: Path) -> None:
    report = check_dataset(VOC2012(split="trainval", root=root))
    assert report.ok, report.errors
    assert not any("palette" in w for w in report.warnings)  # palette PNGs are VOC's format, not a mistake
    assert report.class_pixels["person"] == 12 and report.ignored_pixels == 3 * W
    bad = root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000033.png"
    _voc_png(bad, _label(21))  # 21 is past tvmonitor (20)
    report = check_dataset(VOC2012(split="val", root=root))
    assert not report.ok and "label value 21" in report.errors[0] and str(bad) in report.errors[0]
    with pytest.raises(DataError, match="label values 21"):
        VOC2012(split="val", root=root)[0]


def test_missing_list_and_missing_file(root: Path) -> None:
    lists = root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation"
    (lists / "val.txt").unlink()
    with pytest.raises(DataError, match=r"split list '.*val\.txt' not found"):
        VOC2012(split="val", root=root)
    (root / "VOCdevkit" / "VOC2012" / "JPEGImages" / "2007_000039.jpg").unlink()
    with pytest.raises(DataError, match=r"2007_000039\.jpg' not found \(id '2007_000039' listed in .*train\.txt"):
        VOC2012(split="train", root=root)
    with pytest.raises(ConfigError, match="train, val, trainval, train_aug"):
        VOC2012(split="test", root=root)


def test_size_mismatch_names_both_files(root: Path) -> None:
    voc = root / "VOCdevkit" / "VOC2012"
    _jpg(voc / "JPEGImages" / "2007_000033.jpg", size=(H + 1, W))
    with pytest.raises(DataError, match=r"size mismatch: image .*2007_000033\.jpg.* label .*2007_000033\.png"):
        VOC2012(split="val", root=root)[0]


def test_sbd_reads_gtcls_segmentation(root: Path) -> None:
    dataset = build_dataset("sbd", split="val", root=root)
    assert [p.name for p, _ in dataset.samples] == ["2007_000039.jpg", "2008_000003.jpg"]
    _, mask = dataset[0]
    assert mask[0, 0] == 20 and mask[3, 3] == 0 and mask.unique().tolist() == [0, 20]
    report = check_dataset(dataset)
    assert report.ok, report.errors
    assert report.class_pixels["tvmonitor"] == 8


def test_train_aug_union_minus_val(root: Path) -> None:
    dataset = VOC2012(split="train_aug", root=root)
    labels = {image.stem: label for image, label in dataset.samples}
    # VOC train + SBD train/val minus VOC val (2007_000033); VOC labels win where they exist.
    assert sorted(labels) == ["2007_000032", "2007_000039", "2008_000002", "2008_000003"]
    assert labels["2007_000039"].suffix == ".png" and labels["2008_000002"].suffix == ".mat"
    assert all(image.parent.name == "JPEGImages" for image, _ in dataset.samples)
    assert check_dataset(dataset).ok


def test_mat_errors_name_file_and_variable(root: Path) -> None:
    cls = root / "benchmark_RELEASE" / "dataset" / "cls"
    _sbd_mat(cls / "2008_000003.mat", np.zeros((H, W), np.uint8), variable="GTinst")
    with pytest.raises(DataError, match=r"2008_000003\.mat' has no variable 'GTcls'.*GTcls\.Segmentation"):
        SBD(split="val", root=root)[1]
    savemat(cls / "2007_000039.mat", {"GTcls": {"Boundaries": np.zeros((2, 2))}})
    with pytest.raises(DataError, match=r"2007_000039\.mat.*no field 'Segmentation' \(fields: Boundaries\)"):
        SBD(split="val", root=root)[0]
    report = check_dataset(SBD(split="val", root=root))
    assert not report.ok and "2 unreadable" in report.errors[0] and "2008_000003.mat" in report.errors[0]
    (cls / "2007_000039.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match=r"cannot read MATLAB file .*2007_000039\.mat"):
        read_mat_label(cls / "2007_000039.mat", "GTcls", "Segmentation")


def test_struct_field_both_loadmat_forms(root: Path) -> None:
    path = root / "benchmark_RELEASE" / "dataset" / "cls" / "2008_000002.mat"
    as_record = loadmat(path)["GTcls"]  # [1, 1] record array
    as_object = loadmat(path, struct_as_record=False, squeeze_me=True)["GTcls"]  # mat_struct
    for value in (as_record, as_object):
        segmentation = _struct_field(value, "Segmentation", path=path, name="GTcls.Segmentation")
        assert segmentation.shape == (H, W) and segmentation[0, 0] == 20
