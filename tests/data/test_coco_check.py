"""Instance checks: a COCO JSON with one problem of each kind, strict and lenient reading, your own
COCO folder, and the per-item checks on hand-made targets."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import require_dataset
from PIL import Image
from torchvision import tv_tensors

from seglab.data import SegmentationDataset, build_dataset, check_dataset, check_instances, dataset_tasks
from seglab.data.datasets.coco import CocoInstances
from seglab.data.masks import encode_rle
from seglab.errors import ConfigError, DataError

BOX = [[1, 1, 5, 1, 5, 3, 1, 3]]  # a valid 4x2 polygon inside the 8x6 images


def _ann(ann_id: int, image_id: int = 1, segmentation: Any = None, **extra: Any) -> dict[str, Any]:
    record = {"id": ann_id, "image_id": image_id, "category_id": 18, "iscrowd": 0, "bbox": [1, 1, 4, 2],
              "segmentation": BOX if segmentation is None else segmentation}
    return {**record, **extra}


def _write(folder: Path, images: list[dict[str, Any]], annotations: list[dict[str, Any]], *, files: tuple[int, ...],
           name: str = "annotations/instances_val2017.json", image_dir: str = "val2017") -> Path:
    """Write a COCO instances JSON and 8x6 JPEGs (for the image ids in ``files``) under ``folder``."""
    (folder / image_dir).mkdir(parents=True, exist_ok=True)
    for image_id in files:
        Image.fromarray(np.full((6, 8, 3), 90, np.uint8)).save(folder / image_dir / f"{image_id:012d}.jpg")
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    categories = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def _image(image_id: int, file_id: int | None = None) -> dict[str, Any]:
    return {"id": image_id, "file_name": f"{file_id or image_id:012d}.jpg", "height": 6, "width": 8}


# One problem of each kind, each naming its id (a regex on the one error it must give).
PROBLEMS = {
    "undeclared category": r"annotation id 102: unknown category_id 3 \(not in 'categories'\)",
    "duplicate annotation id": r"annotation id 101 appears twice \(annotations\[0\] and annotations\[2\]\)",
    "bbox outside": r"annotation id 104 \(image id 1\): bbox \[4, 2, 10, 3\] reaches outside the 8x6 image",
    "bbox negative": r"annotation id 105 \(image id 3\): bbox \[1, 1, -2, 2\] has a negative size",
    "decodes empty": r"annotation id 106 \(image id 3, 000000000003\.jpg\) decodes to an empty mask",
    "RLE counts": r"annotation id 107: RLE counts sum to 43 but size \[6, 8\]",
    "RLE size": r"annotation id 108: RLE size \[5, 8\] \(H, W\) differs from the image size \[6, 8\]",
    "polygon": r"annotation id 109: polygon 0 has 2 point\(s\)",
    "unknown image": r"annotation id 110: image_id 99 is not in 'images'",
    "missing file": r"000000000004\.jpg' \(image id 4 in .*\) is missing",
    "duplicate image id": r"images\[4\]: image id 2 appears twice \(images\[1\] and images\[4\]\)",
}


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    images = [_image(1), _image(2), _image(3), _image(4), _image(2, file_id=5)]
    annotations = [
        _ann(101), _ann(102, category_id=3), _ann(101, image_id=3), _ann(104, bbox=[4, 2, 10, 3]),
        _ann(105, image_id=3, bbox=[1, 1, -2, 2]),
        _ann(106, image_id=3, segmentation=[[2.1, 2.1, 2.3, 2.1, 2.2, 2.3]]),  # inside one pixel: no centre
        _ann(107, image_id=2, segmentation={"size": [6, 8], "counts": [40, 3]}),
        _ann(108, segmentation={"size": [5, 8], "counts": [40]}), _ann(109, segmentation=[[1, 1, 5, 1]]),
        _ann(110, image_id=99), _ann(111, image_id=4),  # 111: on the image without file, left out with it
    ]  # fmt: skip
    _write(tmp_path / "coco", images, annotations, files=(1, 2, 3, 5))
    return tmp_path


def test_each_problem_gives_one_error_naming_its_id(broken: Path) -> None:
    dataset = CocoInstances(split="val", root=broken, strict=False)
    report = check_instances(dataset)
    assert not report.ok and report.task == "instance" and report.num_items == 3
    for kind, pattern in PROBLEMS.items():
        matching = [error for error in report.errors if re.search(pattern, error)]
        assert len(matching) == 1, (kind, report.errors)
        assert str(dataset.json_path) in matching[0] or kind == "missing file"
    assert len(report.errors) == len(PROBLEMS), report.errors
    assert report.class_instances == {"person": 0, "dog": 3}  # 101 and 104 on image 1, 105 on image 3
    assert report.images_without_instances == 1  # image 2: its only annotation (107) does not decode
    json.dumps(report.to_dict())
    assert "class_pixels" not in report.to_dict() and report.to_dict()["class_instances"]["dog"] == 3


def test_lenient_reading_records_problems_and_leaves_the_bad_records_out(broken: Path) -> None:
    dataset = CocoInstances(split="val", root=broken, strict=False)
    assert [info["id"] for info in dataset.images] == [1, 2, 3]  # 4: no file; the second id 2: left out
    kept = sorted(ann["id"] for anns in dataset.annotations for ann in anns)
    assert kept == [101, 104, 105, 106, 107]
    assert len(dataset.problems) == 7  # construction: everything but the bboxes and the decoding
    assert all(str(dataset.json_path) in p and "is left out" in p for p in dataset.problems)
    _, target = dataset[1]  # image 2: the RLE of annotation 107 fails on access and is recorded
    assert target["labels"].numel() == 0 and "annotation id 107" in dataset.problems[-1]


@pytest.mark.parametrize(
    "images, annotations, message",
    [
        ([_image(1), _image(1)], [], r"images\[1\]: image id 1 appears twice"),
        ([_image(1)], [_ann(7), _ann(7)], r"annotation id 7 appears twice"),
    ],
)
def test_strict_raises_on_duplicate_ids(tmp_path: Path, images: list, annotations: list, message: str) -> None:
    path = _write(tmp_path / "coco", images, annotations, files=(1,))
    with pytest.raises(DataError, match=message) as error:
        CocoInstances(split="val", root=tmp_path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_own_coco_folder_with_any_split_name(tmp_path: Path) -> None:
    path = _write(tmp_path / "mine", [_image(1)], [_ann(7), _ann(8, category_id=1)], files=(1,),
                  name="labels/fold_a.json", image_dir="pictures")  # fmt: skip
    absolute = build_dataset("coco", split="fold_a", json_file=str(path), image_dir=str(tmp_path / "mine/pictures"))
    relative = build_dataset("coco", split="fold_a", root=tmp_path / "mine", json_file="labels/{split}.json",
                             image_dir="pictures")  # fmt: skip
    for dataset in (absolute, relative):
        assert dataset.json_path == path and dataset.split == "fold_a" and len(dataset) == 1
        assert dataset.classes == ("background", "person", "dog") and dataset.category_ids == [0, 1, 18]
        _, target = dataset[0]
        labels = target["labels"].tolist()
        assert [dataset.category_ids[label] for label in labels] == [18, 1]  # labels map back to COCO ids
    with pytest.raises(ConfigError, match="json_file= needs image_dir="):
        build_dataset("coco", split="fold_a", json_file=str(path))
    with pytest.raises(ConfigError, match="valid splits: train, val"):
        build_dataset("coco", split="fold_a", root=tmp_path)  # the official layout keeps its splits


def test_coco_tiny_passes_the_instance_check() -> None:
    root = require_dataset("coco_tiny")
    dataset = CocoInstances(split="val", root=root.parent, folder=root.name, strict=False)
    report = check_instances(dataset, max_items=12)
    assert report.ok, report.errors
    assert report.num_items == 12 and dataset.problems == [] and dataset.bbox_problems() == []
    assert report.class_instances["person"] > 0 and dataset.category_ids[1] == 1 and dataset.category_ids[80] == 90


def test_dataset_tasks() -> None:
    assert dataset_tasks("coco") == ("semantic", "instance")
    assert dataset_tasks("cityscapes") == dataset_tasks("synthetic") == ("semantic", "instance", "panoptic")
    assert dataset_tasks("coco_panoptic") == ("semantic", "panoptic")
    assert dataset_tasks("camvid") == ("semantic",)
    with pytest.raises(ConfigError, match="did you mean 'coco'"):
        dataset_tasks("cocoo")


class _Targets(SegmentationDataset):
    """Hand-made instance targets on 8x6 images (classes: background, a, b)."""

    name = "targets"
    classes = ("background", "a", "b")
    task = "instance"
    has_files = False

    def __init__(self, targets: list[dict[str, Any]]) -> None:
        super().__init__(split="val")
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> Any:
        return tv_tensors.Image(torch.zeros(3, 6, 8, dtype=torch.uint8)), self.targets[index]


def _target(boxes: list[list[float]], labels: list[int], *, masks: int | None = None, empty: int = -1) -> dict[str, Any]:
    k = len(labels) if masks is None else masks
    stack = torch.zeros(k, 6, 8, dtype=torch.uint8)
    stack[:, 1:3, 1:5] = 1
    if 0 <= empty < k:
        stack[empty] = 0
    return dict(masks=tv_tensors.Mask(stack), labels=torch.tensor(labels, dtype=torch.int64),
                boxes=tv_tensors.BoundingBoxes(torch.tensor(boxes).reshape(-1, 4), format="XYXY", canvas_size=(6, 8)))


def test_per_item_problems_are_named() -> None:
    good = [1, 1, 5, 3]
    dataset = _Targets([
        _target([good, good], [1, 2]),
        _target([good], [2], empty=0),
        _target([[1, 1, 9, 3]], [1]),
        _target([good], [3]),
        _target([good], [1], masks=2),
        _target([], []),
    ])  # fmt: skip
    report = check_instances(dataset)
    expected = [r"item 1: instance\(s\) \[0\] \(labels \[2\]\) have empty mask", r"item 2: .*outside the 8x6 image",
                r"item 3: .*\(labels \[3\]\) have label\(s\) outside 1\.\.2", r"item 4: masks \[2, 6, 8\], boxes \[1, 4\]"]
    assert len(report.errors) == len(expected), report.errors
    for pattern, error in zip(expected, report.errors):
        assert re.search(pattern, error), (pattern, error)
    assert report.class_instances == {"a": 2, "b": 2} and report.images_without_instances == 1
    with pytest.raises(ConfigError, match="task='instance'"):
        check_instances(build_dataset("synthetic", split="train", num_images=2))


def test_semantic_check_of_coco_is_unchanged(broken: Path) -> None:
    with pytest.raises(DataError, match=r"000000000004\.jpg. \(image id 4"):  # strict by default: the first raises
        CocoInstances(split="val", root=broken, task="semantic")
    images = [_image(1)]
    _write(broken / "clean", images, [_ann(7, segmentation=encode_rle(np.ones((6, 8), np.uint8)))], files=(1,))
    report = check_dataset(CocoInstances(split="val", root=broken, folder="clean", task="semantic"))
    assert report.ok and report.class_pixels["dog"] == 48 and "class_instances" not in report.to_dict()
