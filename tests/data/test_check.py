"""check_dataset on hand-made broken folders: each problem is reported with its file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data import FolderDataset, SyntheticShapes, build_dataset, check_dataset, list_images
from seglab.errors import ConfigError, DataError

CLASSES = ("background", "road", "car")


def _image(path: Path, size: tuple[int, int] = (16, 12)) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def _mask(path: Path, values: np.ndarray, mode: str = "L") -> None:
    Image.fromarray(values.astype(np.uint8), mode=mode).save(path)


def _good_mask(size: tuple[int, int] = (16, 12)) -> np.ndarray:
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[:, :5] = 1
    mask[0, 0] = 255
    return mask


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for stem in ("good", "rgb", "outofrange", "mismatch", "truncated"):
        _image(images / f"{stem}.png")
    _mask(masks / "good.png", _good_mask())
    _mask(masks / "rgb.png", np.zeros((12, 16, 3)), mode="RGB")
    bad = _good_mask()
    bad[3, 3] = 7
    _mask(masks / "outofrange.png", bad)
    _mask(masks / "mismatch.png", _good_mask((10, 10)))
    _mask(masks / "truncated.png", _good_mask())
    # Truncate an image: a noisy PNG cut to half its bytes.
    _image(images / "truncated.png", size=(64, 64))
    data = (images / "truncated.png").read_bytes()
    (images / "truncated.png").write_bytes(data[: len(data) // 2])
    return tmp_path


def _dataset(root: Path) -> FolderDataset:
    return FolderDataset(root / "images", root / "masks", classes=CLASSES)


def test_report_names_every_broken_file(broken: Path) -> None:
    report = check_dataset(_dataset(broken))
    assert not report.ok and report.num_items == 5
    text = "\n".join(report.errors)
    assert "unreadable" in text and "truncated.png" in text
    assert "size mismatch" in text and str(broken / "images" / "mismatch.png") in text
    assert str(broken / "masks" / "mismatch.png") in text
    assert "rgb.png" in text and "'RGB'" in text and "index PNG" in text
    value_error = next(e for e in report.errors if "label value 7" in e)
    assert "outofrange.png" in value_error and "1 pixels" in value_error
    assert "good.png" not in text


def test_class_pixels_and_empty_classes(broken: Path) -> None:
    report = check_dataset(_dataset(broken), max_items=None)
    assert report.class_pixels["road"] > 0
    assert report.class_pixels["car"] == 0
    assert any("'car'" in w and "no pixels" in w for w in report.warnings)
    assert report.ignored_pixels >= 1
    json.dumps(report.to_dict())


def test_palette_mask_warns(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    _image(tmp_path / "images" / "a.png")
    palette_mask = Image.fromarray(_good_mask(), mode="L").convert("P")
    palette_mask.save(tmp_path / "masks" / "a.png")
    report = check_dataset(_dataset(tmp_path))
    assert report.ok
    assert any("a.png" in w and "palette" in w for w in report.warnings)


def test_progress_and_max_items(broken: Path) -> None:
    calls: list[tuple[int, int]] = []
    report = check_dataset(_dataset(broken), max_items=2, progress=lambda done, total: calls.append((done, total)))
    assert report.num_items == 2 and calls == [(1, 2), (2, 2)]


def test_getitem_errors_name_the_file(broken: Path) -> None:
    dataset = _dataset(broken)
    by_stem = {dataset.files(i)[0].stem: i for i in range(len(dataset))}
    assert dataset[by_stem["good"]][1].tolist()[0][:2] == [255, 1]
    for stem, pattern in [
        ("rgb", r"masks/rgb\.png.*index PNG"),
        ("outofrange", r"outofrange\.png.*values 7"),
        ("mismatch", r"images/mismatch\.png.*16x12.*masks/mismatch\.png.*10x10"),
        ("truncated", r"images/truncated\.png"),
    ]:
        with pytest.raises(DataError, match=pattern):
            dataset[by_stem[stem]]


def test_synthetic_check_is_clean() -> None:
    report = check_dataset(SyntheticShapes(num_images=6))
    assert report.ok and report.num_items == 6 and report.class_pixels["background"] > 0


def test_folder_label_map_and_missing_masks(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    _image(tmp_path / "images" / "10.jpg")
    _image(tmp_path / "images" / "2.jpg")
    _mask(tmp_path / "masks" / "2.png", np.where(_good_mask() == 1, 0, 255))
    with pytest.raises(DataError, match=r"10\.jpg"):
        _dataset(tmp_path)
    assert [p.name for p in list_images(tmp_path / "images")] == ["2.jpg", "10.jpg"]
    (tmp_path / "images" / "10.jpg").unlink()
    dataset = FolderDataset(
        tmp_path / "images", tmp_path / "masks", classes=("cell", "membrane"), label_map={0: 1, 255: 0}
    )
    assert set(dataset[0][1].unique().tolist()) == {0, 1}
    assert check_dataset(dataset).ok
    images_only = FolderDataset(tmp_path / "images", classes=("cell", "membrane"))
    assert tuple(images_only[0].shape) == (3, 12, 16) and images_only.files(0)[1] is None


def test_build_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "train" / "images").mkdir(parents=True)
    with pytest.raises(ConfigError, match="valid splits: train"):
        build_dataset("folder", split="val", root=tmp_path, classes=CLASSES)
    with pytest.raises(ConfigError, match="classes"):
        build_dataset("folder", split="train", root=tmp_path)
