"""COCO panoptic format: encode/decode on hand-worked and synthetic maps, the real sample written and read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require_dataset
from PIL import Image

from seglab.data import build_dataset
from seglab.data.datasets.coco_panoptic import CocoPanoptic, panoptic_ids
from seglab.data.panoptic_format import PanopticWriter, decode_panoptic, encode_panoptic, read_panoptic_folder
from seglab.data.synthetic import SyntheticShapes
from seglab.errors import DataError, InputError

SAMPLE_LAYOUT = dict(json_file="panoptic_examples.json", panoptic_dir="panoptic_examples", image_dir="input_images")
SHAPES = dict(classes=SyntheticShapes.classes, thing_classes=SyntheticShapes.thing_classes,
              category_ids=[5, 10, 20, 30])
TO_CLASS = {5: 0, 10: 1, 20: 2, 30: 3}


@pytest.fixture
def sample() -> CocoPanoptic:
    folder = require_dataset("coco_panoptic_sample")
    return build_dataset("coco_panoptic", split="val", root=folder.parent, folder=folder.name, **SAMPLE_LAYOUT)


def _encode(semantic: np.ndarray, instance_ids: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
    return encode_panoptic(semantic, instance_ids, thing_classes=SHAPES["thing_classes"],
                           category_ids=SHAPES["category_ids"])


def test_encode_exact() -> None:
    semantic = np.array([[0, 0, 1, 1], [255, 2, 2, 1], [3, 3, 0, 255]])
    instance_ids = np.array([[0, 0, 2, 2], [7, 1, 1, 2], [0, 0, 0, 0]])  # void's 7 is dropped; 3 is a crowd
    rgb, segments = _encode(semantic, instance_ids)
    ids = rgb[..., 0] + 256 * rgb[..., 1].astype(np.int64)
    assert ids.tolist() == [[1, 1, 4, 4], [0, 3, 3, 4], [2, 2, 1, 0]]  # stuff, crowd, then instances 1, 2
    assert segments == [
        {"id": 1, "category_id": 5, "iscrowd": 0, "area": 3, "bbox": [0, 0, 3, 3]},
        {"id": 2, "category_id": 30, "iscrowd": 1, "area": 2, "bbox": [0, 2, 2, 1]},
        {"id": 3, "category_id": 20, "iscrowd": 0, "area": 2, "bbox": [1, 1, 2, 1]},
        {"id": 4, "category_id": 10, "iscrowd": 0, "area": 3, "bbox": [2, 0, 2, 2]},
    ]
    semantic_back, instance_back = decode_panoptic(rgb, segments, category_to_class=TO_CLASS, thing_classes=(1, 2, 3))
    assert semantic_back.tolist() == semantic.tolist()
    assert instance_back.tolist() == [[0, 0, 2, 2], [0, 1, 1, 2], [0, 0, 0, 0]]


def test_round_trip_synthetic_with_crowd_and_void() -> None:
    data = SyntheticShapes(task="panoptic", num_images=6, size=(48, 64), split="val")
    for index in range(len(data)):
        _, target = data[index]
        semantic, instance_ids = target["semantic"].numpy().copy(), target["instance_ids"].numpy().copy()
        last = instance_ids.max()
        instance_ids[instance_ids == last] = 0  # the last shape becomes a crowd region of its class
        semantic[:4], instance_ids[:4] = 255, 0  # a void band
        instance_ids = np.unique(instance_ids, return_inverse=True)[1].reshape(semantic.shape)  # ids 1..K again
        rgb, segments = _encode(semantic, instance_ids)
        assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3)
        assert [s["id"] for s in segments] == list(range(1, len(segments) + 1))
        crowd = (semantic > 0) & (semantic != 255) & (instance_ids == 0)
        assert sum(s["iscrowd"] for s in segments) == int(crowd.any())
        back = decode_panoptic(rgb, segments, category_to_class=TO_CLASS, thing_classes=(1, 2, 3))
        np.testing.assert_array_equal(back[0], semantic)
        np.testing.assert_array_equal(back[1], instance_ids)


def test_sample_written_and_read_back(sample: CocoPanoptic, tmp_path: Path) -> None:
    assert sample.category_ids[:3] == [1, 2, 3] and sample.category_ids[-1] == 200 and len(sample.category_ids) == 133
    writer = PanopticWriter(tmp_path / "out", classes=sample.classes, thing_classes=sample.thing_classes,
                            category_ids=sample.category_ids, palette=sample.palette)
    for index, (image_path, png_path) in enumerate(sample.samples):
        writer.add(int(image_path.stem), png_path.stem, *sample.decode(index))
    assert writer.close() == tmp_path / "out" / "panoptic.json"
    items = list(read_panoptic_folder(tmp_path / "out" / "panoptic.json", tmp_path / "out" / "panoptic"))
    assert [item[:2] for item in items] == [(142238, "000000142238.png"), (439180, "000000439180.png")]
    for index, (_, _, semantic, instance_ids) in enumerate(items):
        expected_semantic, expected_instances = sample.decode(index)
        np.testing.assert_array_equal(semantic, expected_semantic)
        np.testing.assert_array_equal(instance_ids, expected_instances)
    # Our segments are the official ones renumbered: same categories, crowd flags, areas and boxes.
    official = json.loads((sample.root / "panoptic_examples.json").read_text())["annotations"]
    written = json.loads((tmp_path / "out" / "panoptic.json").read_text())["annotations"]
    for ours, theirs in zip(written, official):
        key = lambda s: (s["category_id"], s["iscrowd"], s["area"], tuple(s["bbox"]))  # noqa: E731
        assert sorted(map(key, ours["segments_info"])) == sorted(map(key, theirs["segments_info"]))


def test_written_json_follows_the_format(tmp_path: Path) -> None:
    data = SyntheticShapes(task="panoptic", num_images=3, size=(40, 56))
    writer = PanopticWriter(tmp_path, **SHAPES, palette=SyntheticShapes.palette)
    for index in range(3):
        _, target = data[index]
        writer.add(100 + index, f"img_{index}", target["semantic"], target["instance_ids"])  # tensors work too
    written = json.loads(writer.close().read_text())
    assert sorted(written) == ["annotations", "categories"]
    assert written["categories"] == [
        {"id": 5, "name": "background", "isthing": 0, "color": [0, 0, 0]},
        {"id": 10, "name": "circle", "isthing": 1, "color": [230, 25, 75]},
        {"id": 20, "name": "square", "isthing": 1, "color": [60, 180, 75]},
        {"id": 30, "name": "triangle", "isthing": 1, "color": [0, 130, 200]},
    ]
    for index, ann in enumerate(written["annotations"]):
        assert sorted(ann) == ["file_name", "image_id", "segments_info"]
        assert ann["image_id"] == 100 + index and ann["file_name"] == f"img_{index}.png"
        png = Image.open(tmp_path / "panoptic" / ann["file_name"])
        assert png.mode == "RGB" and png.size == (56, 40)
        ids = panoptic_ids(tmp_path / "panoptic" / ann["file_name"])
        assert sorted(s["id"] for s in ann["segments_info"]) == sorted(set(np.unique(ids).tolist()) - {0})
        for info in ann["segments_info"]:
            assert sorted(info) == ["area", "bbox", "category_id", "id", "iscrowd"]
            rows, cols = np.nonzero(ids == info["id"])
            assert info["area"] == rows.size
            assert info["bbox"] == [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]
            assert all(type(v) is int for v in (info["id"], info["area"], *info["bbox"]))


# --- errors -----------------------------------------------------------------------------------------


def _written(folder: Path) -> Path:
    writer = PanopticWriter(folder, **SHAPES)
    writer.add(1, "a", np.array([[0, 1], [1, 1]]), np.array([[0, 1], [1, 1]]))
    return writer.close()


def test_unwritable_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match=r"cannot create the panoptic output folder '.*file/panoptic'"):
        PanopticWriter(tmp_path / "file", **SHAPES)


def test_bad_maps_and_repeated_images(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"semantic holds class\(es\) \[4\]; expected 0\.\.3"):
        _encode(np.array([[4, 0]]), np.zeros((1, 2), np.int64))
    with pytest.raises(InputError, match="must have one shape"):
        _encode(np.zeros((2, 2), np.int64), np.zeros((2, 3), np.int64))
    with pytest.raises(InputError, match="expected an integer"):
        _encode(np.zeros((2, 2)), np.zeros((2, 2), np.int64))
    writer = PanopticWriter(tmp_path, **SHAPES)
    writer.add(1, "a", np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64))
    with pytest.raises(InputError, match="image id 1 or file 'b.png' was already added"):
        writer.add(1, "b", np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64))


def test_missing_png(tmp_path: Path) -> None:
    json_file = _written(tmp_path)
    (tmp_path / "panoptic" / "a.png").unlink()
    with pytest.raises(DataError, match=r"annotations\[0\]: panoptic PNG '.*a\.png' \(image id 1\) is missing"):
        list(read_panoptic_folder(json_file, tmp_path / "panoptic"))


def test_png_id_not_in_json(tmp_path: Path) -> None:
    json_file = _written(tmp_path)
    Image.fromarray(np.full((2, 2, 3), 9, np.uint8)).save(tmp_path / "panoptic" / "a.png")
    with pytest.raises(DataError, match=r"a\.png' has segment id\(s\) \[592137\] not in '.*panoptic\.json'"):
        list(read_panoptic_folder(json_file, tmp_path / "panoptic"))


def test_unknown_category(tmp_path: Path) -> None:
    json_file = _written(tmp_path)
    with pytest.raises(DataError, match=r"json': annotations\[0\] \(image id 1\) segment 2: unknown category_id 10"):
        read_panoptic_folder(json_file, tmp_path / "panoptic", category_to_class={5: 0}, thing_classes=())
    with pytest.raises(DataError, match=r"segment 1 of the panoptic map: unknown category_id 5"):
        decode_panoptic(np.ones((2, 2), np.int64), [{"id": 1, "category_id": 5}], category_to_class={},
                        thing_classes=())
