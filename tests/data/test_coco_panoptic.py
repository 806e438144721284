"""COCO panoptic on panopticapi's real sample (2 val images) and on broken fixtures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import require_dataset
from PIL import Image

from seglab.data import build_dataset, check_dataset
from seglab.data.datasets.coco_panoptic import CocoPanoptic, panoptic_ids
from seglab.errors import ConfigError, DataError

SAMPLE_LAYOUT = dict(json_file="panoptic_examples.json", panoptic_dir="panoptic_examples", image_dir="input_images")


@pytest.fixture
def sample() -> Path:
    return require_dataset("coco_panoptic_sample")


def _sample(sample: Path, **kwargs: Any) -> CocoPanoptic:
    return build_dataset("coco_panoptic", split="val", root=sample.parent, folder=sample.name, **SAMPLE_LAYOUT, **kwargs)


def test_categories(sample: Path) -> None:
    dataset = _sample(sample)
    assert len(dataset) == 2 and dataset.num_classes == 133 and len(dataset.palette) == 133
    assert dataset.classes[0] == "person" and dataset.classes[-1] == "rug-merged"
    assert dataset.thing_classes == tuple(range(80))  # thing ids 1..90 sort before stuff ids 92..200
    assert dataset.category_to_class[90] == 79 and dataset.category_to_class[92] == 80
    assert dataset.palette[0] == (220, 20, 60)


def test_segment_areas_match_json(sample: Path) -> None:
    dataset = _sample(sample)
    annotations = json.loads((sample / "panoptic_examples.json").read_text())["annotations"]
    for index, (ann, void) in enumerate(zip(annotations, (2712, 7189))):  # void pixels from SOURCE.md
        image, target = dataset[index]
        semantic, instance_ids = target["semantic"].numpy(), target["instance_ids"].numpy()
        assert semantic.shape == instance_ids.shape == tuple(image.shape[1:])
        assert int((semantic == 255).sum()) == void
        ids = panoptic_ids(sample / "panoptic_examples" / ann["file_name"])
        next_instance = 1
        for info in ann["segments_info"]:
            assert int((ids == info["id"]).sum()) == info["area"]
            cls = dataset.category_to_class[info["category_id"]]
            assert (semantic[ids == info["id"]] == cls).all()
            if info["category_id"] <= 90 and not info["iscrowd"]:
                assert int((instance_ids == next_instance).sum()) == info["area"]
                next_instance += 1
            else:  # stuff and crowd segments have no instance id
                assert (instance_ids[ids == info["id"]] == 0).all()
        assert instance_ids.max() == next_instance - 1 == (14, 26)[index]  # 15 - 1 crowd, 28 - 2 crowd
        # The per-class pixel counts equal the JSON areas summed per category.
        for category_id in {info["category_id"] for info in ann["segments_info"]}:
            areas = sum(info["area"] for info in ann["segments_info"] if info["category_id"] == category_id)
            assert int((semantic == dataset.category_to_class[category_id]).sum()) == areas


def test_semantic_agrees_with_two_channel_format(sample: Path) -> None:
    # panoptic_examples_2ch_format: R = category id (0 = void), an independent encoding of the same labels.
    dataset = _sample(sample, task="semantic")
    for index in range(2):
        _, mask = dataset[index]
        png = dataset.samples[index][1].name
        category = np.asarray(Image.open(sample / "panoptic_examples_2ch_format" / png))[..., 0].astype(np.int64)
        lut = np.full(256, 255, dtype=np.int64)
        for category_id, cls in dataset.category_to_class.items():
            lut[category_id] = cls
        assert np.array_equal(mask.numpy(), lut[category])


def test_check_report(sample: Path) -> None:
    report = check_dataset(_sample(sample))
    assert report.ok, report.errors
    assert report.ignored_pixels == 2712 + 7189
    assert report.class_pixels["person"] > 0 and report.class_pixels["bicycle"] == 0


def test_official_layout(tmp_path: Path, sample: Path) -> None:
    folder = tmp_path / "coco"
    (folder / "annotations").mkdir(parents=True)
    shutil.copy(sample / "panoptic_examples.json", folder / "annotations" / "panoptic_val2017.json")
    shutil.copytree(sample / "panoptic_examples", folder / "annotations" / "panoptic_val2017")
    shutil.copytree(sample / "input_images", folder / "val2017")
    dataset = build_dataset("coco_panoptic", split="val", root=tmp_path)
    assert len(dataset) == 2 and dataset.samples[0][0].parent.name == "val2017"
    with pytest.raises(DataError, match=r"panoptic_train2017' is missing"):
        build_dataset("coco_panoptic", split="train", root=tmp_path)
    with pytest.raises(ConfigError, match="valid splits: train, val"):
        build_dataset("coco_panoptic", split="test", root=tmp_path)


# --- broken input, as fixtures in the real format --------------------------------------------------


def _write(root: Path, ids: np.ndarray, segments: list[dict[str, Any]], *, mode: str = "RGB") -> Path:
    folder = root / "coco"
    for sub in ("annotations/panoptic_val2017", "val2017"):
        (folder / sub).mkdir(parents=True)
    height, width = ids.shape
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(folder / "val2017" / "000000000001.jpg")
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).convert(mode).save(folder / "annotations/panoptic_val2017/000000000001.png")
    data = {
        "images": [{"id": 1, "file_name": "000000000001.jpg", "height": height, "width": width}],
        "annotations": [{"image_id": 1, "file_name": "000000000001.png", "segments_info": segments}],
        "categories": [{"id": 1, "name": "person", "isthing": 1}, {"id": 184, "name": "tree-merged", "isthing": 0}],
    }
    path = folder / "annotations" / "panoptic_val2017.json"
    path.write_text(json.dumps(data))
    return path


def _segment(segment_id: int, category_id: int, iscrowd: int = 0) -> dict[str, Any]:
    return {"id": segment_id, "category_id": category_id, "iscrowd": iscrowd}


def test_fixture_exact(tmp_path: Path) -> None:
    ids = np.zeros((4, 5), np.int64)
    ids[:, 3:] = 70000  # tree (stuff), an id that needs all three channels
    ids[1:3, :2] = 300  # a person
    ids[0, 0] = 5  # a crowd of persons
    _write(tmp_path, ids, [_segment(70000, 184), _segment(5, 1, iscrowd=1), _segment(300, 1)])
    _, target = CocoPanoptic(split="val", root=tmp_path)[0]
    assert target["semantic"].tolist() == [
        [0, 255, 255, 1, 1], [0, 0, 255, 1, 1], [0, 0, 255, 1, 1], [255, 255, 255, 1, 1],
    ]  # fmt: skip
    assert target["instance_ids"].tolist() == [[0] * 5, [1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0] * 5]


def test_png_id_missing_from_json(tmp_path: Path) -> None:
    ids = np.zeros((4, 5), np.int64)
    ids[0, 0] = 300
    ids[1, 1] = 301
    _write(tmp_path, ids, [_segment(300, 1)])
    with pytest.raises(DataError, match=r"000000000001\.png' has segment id\(s\) \[301\] not in"):
        CocoPanoptic(split="val", root=tmp_path)[0]


def test_json_segment_missing_from_png(tmp_path: Path) -> None:
    _write(tmp_path, np.zeros((4, 5), np.int64), [_segment(300, 1)])
    with pytest.raises(DataError, match=r"segment id\(s\) \[300\] of 000000000001\.png have no pixel"):
        CocoPanoptic(split="val", root=tmp_path)[0]


def test_grayscale_png_rejected(tmp_path: Path) -> None:
    _write(tmp_path, np.zeros((4, 5), np.int64), [], mode="L")
    with pytest.raises(DataError, match=r"000000000001\.png' has mode 'L'; expected RGB"):
        CocoPanoptic(split="val", root=tmp_path)[0]


def test_unknown_category_and_broken_json(tmp_path: Path) -> None:
    path = _write(tmp_path, np.zeros((4, 5), np.int64), [_segment(300, 7)])
    with pytest.raises(DataError, match=r"annotations\[0\] \(image id 1\) segment 300: unknown category_id 7"):
        CocoPanoptic(split="val", root=tmp_path)
    path.write_text('{"images": [')
    with pytest.raises(DataError, match=r"panoptic_val2017\.json' is not valid JSON"):
        CocoPanoptic(split="val", root=tmp_path)


def test_bad_task(sample: Path) -> None:
    with pytest.raises(ConfigError, match="unknown task 'instance'"):
        _sample(sample, task="instance")
    assert isinstance(_sample(sample, task="semantic")[0][1], torch.Tensor)
