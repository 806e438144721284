"""COCO instances: mask codecs on hand-worked values, the real coco_tiny JSON, and broken fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import require_dataset
from PIL import Image

from seglab.data import build_dataset, check_dataset
from seglab.data.datasets.coco import CocoInstances
from seglab.boxes import masks_to_boxes
from seglab.data.masks import decode_rle, encode_rle, polygons_to_mask, rle_counts_from_string
from seglab.data.transforms import train_transforms
from seglab.errors import DataError


@pytest.fixture
def coco_tiny() -> Path:
    return require_dataset("coco_tiny")


# --- codecs, hand-worked ---------------------------------------------------------------------------


def test_rle_hand_worked() -> None:
    mask = np.array([[0, 1], [1, 1], [0, 0]], dtype=np.uint8)
    # Column-major: column 0 = 0,1,0 then column 1 = 1,1,0 -> runs 1,1,1,2,1.
    assert encode_rle(mask, compressed=False) == {"size": [3, 2], "counts": [1, 1, 1, 2, 1]}
    # Compressed: 1,1,1 as is; from index 3 on the delta to two places back: 2-1=1, 1-1=0 -> "11110".
    assert encode_rle(mask)["counts"] == "11110"
    assert np.array_equal(decode_rle({"size": [3, 2], "counts": "11110"}), mask)
    assert np.array_equal(decode_rle({"size": [3, 2], "counts": [1, 1, 1, 2, 1]}), mask)


def test_rle_string_sign_and_continuation() -> None:
    # 100 = 0b11_00100: low group 4 with the continuation bit (48+4+32 = 'T'), then 3 ('3').
    assert rle_counts_from_string("T3") == [100]
    # counts 0, 10, 2, 1: the last is stored as 1 - 10 = -9 = group 23 with the sign bit (48+23 = 'G').
    assert rle_counts_from_string("0:2G") == [0, 10, 2, 1]
    # Only from the 4th count on (index 3) is a count stored as a delta: runs 10, 2, 1 stay ":21".
    assert encode_rle(np.array([[0] * 10 + [1] * 2 + [0]]).T)["counts"] == ":21"
    assert encode_rle(np.array([[1] * 10 + [0] * 2 + [1]]).T)["counts"] == "0:2G"


def test_rle_round_trip_random() -> None:
    rng = np.random.default_rng(0)
    for shape, density in (((7, 5), 0.5), ((40, 33), 0.1), ((1, 1), 1.0), ((3, 4), 0.0)):
        mask = (rng.random(shape) < density).astype(np.uint8)
        for compressed in (True, False):
            assert np.array_equal(decode_rle(encode_rle(mask, compressed=compressed)), mask)


def test_polygon_hand_worked() -> None:
    # A 3x2 rectangle: the pixel centres inside are columns 1..3 of rows 1..2.
    mask = polygons_to_mask([[1, 1, 4, 1, 4, 3, 1, 3]], 5, 6)
    expected = np.zeros((5, 6), np.uint8)
    expected[1:3, 1:4] = 1
    assert np.array_equal(mask, expected)
    # Two rings are united; a ring reaching past the border is clipped.
    mask = polygons_to_mask([[1, 1, 4, 1, 4, 3, 1, 3], [4, 0, 9, 0, 9, 2, 4, 2]], 5, 6)
    assert int(mask.sum()) == 6 + 4 and mask[0, 5] == 1 and mask[1, 4] == 1
    # Right triangle (0,0), (4,0), (0,4): centres (j+.5, i+.5) strictly inside have i + j <= 2 -> 3+2+1 = 6;
    # centres with i + j = 3 lie on the hypotenuse, a right edge: half-open like rows, they are outside.
    assert int(polygons_to_mask([[0, 0, 4, 0, 0, 4]], 4, 4).sum()) == 6


def test_masks_to_boxes_pixel_edges() -> None:
    masks = torch.zeros(2, 4, 5, dtype=torch.uint8)
    masks[0, 1:3, 2] = 1
    masks[1, 0, 0] = masks[1, 3, 4] = 1
    assert masks_to_boxes(masks).tolist() == [[2, 1, 3, 3], [0, 0, 5, 4]]
    assert masks_to_boxes(torch.zeros(0, 4, 5)).shape == (0, 4)


def test_compressed_rle_area_exact_on_real_file() -> None:
    sample = require_dataset("coco_panoptic_sample")
    annotations = json.loads((sample / "panoptic_coco_detection_format.json").read_text())["annotations"]
    assert len(annotations) == 50
    for ann in annotations:
        mask = decode_rle(ann["segmentation"], height=ann["segmentation"]["size"][0], width=ann["segmentation"]["size"][1])
        assert int(mask.sum()) == ann["area"], ann["id"]
        assert encode_rle(mask)["counts"] == ann["segmentation"]["counts"]  # byte-identical re-encoding


# --- the real coco_tiny ----------------------------------------------------------------------------


@pytest.mark.parametrize("split, images, instances, crowd, empty", [("train", 50, 465, 5, 1), ("val", 50, 377, 5, 2)])
def test_counts(coco_tiny: Path, split: str, images: int, instances: int, crowd: int, empty: int) -> None:
    # SOURCE.md's 470/382 "instances" include the 5 crowd annotations of each split.
    dataset = build_dataset("coco", split=split, root=coco_tiny.parent, folder=coco_tiny.name)
    assert (len(dataset), dataset.num_instances, dataset.num_crowd, dataset.num_empty) == (images, instances, crowd, empty)
    assert dataset.num_instances + dataset.num_crowd == (470 if split == "train" else 382)
    skipping = CocoInstances(split=split, root=coco_tiny.parent, folder=coco_tiny.name, skip_empty=True)
    assert (len(skipping), skipping.num_skipped, skipping.num_empty) == (images - empty, empty, 0)


def test_categories(coco_tiny: Path) -> None:
    dataset = CocoInstances(split="val", root=coco_tiny.parent, folder=coco_tiny.name)
    assert dataset.num_classes == 81 and dataset.classes[0] == "background"
    assert dataset.classes[1] == "person" and dataset.classes[80] == "toothbrush"
    assert dataset.category_to_label[1] == 1 and dataset.category_to_label[90] == 80 and dataset.category_to_label[13] == 12


def _annotation(dataset: CocoInstances, ann_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    for info, anns in zip(dataset.images, dataset.annotations):
        for ann in anns:
            if ann["id"] == ann_id:
                return info, ann
    raise AssertionError(f"annotation {ann_id} not found")


def test_polygon_areas_match_json(coco_tiny: Path) -> None:
    dataset = CocoInstances(split="val", root=coco_tiny.parent, folder=coco_tiny.name)
    info, ann = _annotation(dataset, 168219)  # the largest val polygon, area 226107.08
    assert abs(int(dataset.decode(ann, info["height"], info["width"]).sum()) - ann["area"]) < 0.001 * ann["area"]
    ratios = []
    for info, anns in zip(dataset.images[:20], dataset.annotations[:20]):
        for ann in anns:
            if not ann["iscrowd"] and ann["area"] > 1000:
                ratios.append(dataset.decode(ann, info["height"], info["width"]).sum() / ann["area"])
    assert len(ratios) > 50 and 0.95 < min(ratios) and max(ratios) < 1.05 and abs(np.median(ratios) - 1) < 0.005


def test_crowd_rle_matches_json_bbox(coco_tiny: Path) -> None:
    dataset = CocoInstances(split="val", root=coco_tiny.parent, folder=coco_tiny.name)
    info, ann = _annotation(dataset, 900100087038)
    counts = ann["segmentation"]["counts"]
    mask = dataset.decode(ann, info["height"], info["width"])
    assert int(mask.sum()) == sum(counts[1::2]) == 6125
    # The JSON "area" of COCO crowd regions (6443) is not their RLE pixel count; the box is exact.
    x, y, w, h = ann["bbox"]
    assert masks_to_boxes(torch.from_numpy(mask)[None])[0].tolist() == [x, y, x + w + 1, y + h + 1]


def test_instance_target_and_crowd(coco_tiny: Path) -> None:
    dataset = CocoInstances(split="val", root=coco_tiny.parent, folder=coco_tiny.name)
    index = next(i for i, anns in enumerate(dataset.annotations) if any(a["id"] == 900100087038 for a in anns))
    image, target = dataset[index]
    anns = dataset.annotations[index]
    assert target["labels"].numel() == sum(not a["iscrowd"] for a in anns)
    assert tuple(target["masks"].shape[1:]) == tuple(image.shape[1:]) == tuple(target["crowd"].shape)
    assert int(target["crowd"].sum()) == 6125
    assert (target["boxes"][:, 2:] > target["boxes"][:, :2]).all()
    semantic = dataset.raw_label(index)
    assert int((semantic == 255).sum()) <= 6125 and (semantic[target["crowd"].numpy() == 0] != 255).all()


def test_empty_image_yields_empty_target(coco_tiny: Path) -> None:
    dataset = CocoInstances(split="val", root=coco_tiny.parent, folder=coco_tiny.name)
    index = next(i for i, anns in enumerate(dataset.annotations) if not anns)
    image, target = dataset[index]
    assert target["masks"].shape == (0, *image.shape[1:]) and target["boxes"].shape == (0, 4)
    assert target["labels"].shape == (0,) and int(target["crowd"].sum()) == 0


def test_instance_target_survives_transforms(coco_tiny: Path) -> None:
    torch.manual_seed(0)
    transforms = train_transforms(crop_size=(128, 160), scale_range=(0.5, 0.7), task="instance")
    image, target = CocoInstances(split="val", root=coco_tiny.parent, folder=coco_tiny.name, transforms=transforms)[0]
    k = target["labels"].numel()
    assert tuple(image.shape[1:]) == (128, 160) and tuple(target["crowd"].shape) == (128, 160)
    assert target["masks"].shape == (k, 128, 160) and target["boxes"].shape == (k, 4)


def test_semantic_view_and_check(coco_tiny: Path) -> None:
    dataset = CocoInstances(split="val", root=coco_tiny.parent, folder=coco_tiny.name, task="semantic")
    image, mask = dataset[0]
    assert mask.dtype == torch.int64 and mask.shape == image.shape[1:]
    assert set(mask.unique().tolist()) <= set(range(81)) | {255}
    report = check_dataset(dataset, max_items=4)
    assert report.ok, report.errors
    assert report.class_pixels["person"] > 0 and report.class_pixels["background"] > 0


# --- broken input, as fixtures in the real on-disk format ------------------------------------------


def _write_coco(root: Path, annotations: list[dict[str, Any]], *, images: list[dict[str, Any]] | None = None) -> Path:
    folder = root / "coco"
    (folder / "annotations").mkdir(parents=True)
    (folder / "val2017").mkdir()
    Image.fromarray(np.full((6, 8, 3), 90, np.uint8)).save(folder / "val2017" / "000000000001.jpg")
    Image.fromarray(np.full((6, 8, 3), 90, np.uint8)).save(folder / "val2017" / "000000000002.jpg")
    images = images or [
        {"id": 1, "file_name": "000000000001.jpg", "height": 6, "width": 8},
        {"id": 2, "file_name": "000000000002.jpg", "height": 6, "width": 8},
    ]
    categories = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]
    data = {"images": images, "annotations": annotations, "categories": categories}
    path = folder / "annotations" / "instances_val2017.json"
    path.write_text(json.dumps(data))
    return path


def _ann(ann_id: int, segmentation: Any, *, category_id: int = 18, iscrowd: int = 0) -> dict[str, Any]:
    return {"id": ann_id, "image_id": 1, "category_id": category_id, "iscrowd": iscrowd, "segmentation": segmentation}


def test_fixture_targets_exact(tmp_path: Path) -> None:
    crowd = np.zeros((6, 8), np.uint8)
    crowd[4:, :3] = 1
    _write_coco(tmp_path, [
        _ann(7, [[1, 1, 5, 1, 5, 3, 1, 3]]),
        _ann(8, encode_rle(crowd, compressed=False), category_id=1, iscrowd=1),
        _ann(9, encode_rle(crowd[::-1].copy()), category_id=1),  # compressed RLE instance, rows 0..1
    ])  # fmt: skip
    dataset = CocoInstances(split="val", root=tmp_path)
    assert (len(dataset), dataset.num_instances, dataset.num_crowd, dataset.num_empty) == (2, 2, 1, 1)
    _, target = dataset[0]
    assert target["labels"].tolist() == [2, 1]  # dog (id 18) -> 2, person (id 1) -> 1
    assert target["boxes"].tolist() == [[1, 1, 5, 3], [0, 0, 3, 2]]
    assert np.array_equal(target["crowd"].numpy(), crowd)
    semantic = dataset.raw_label(0)
    assert semantic[1, 1] == 1  # the smaller person painted over the larger dog
    assert semantic[2, 4] == 2 and semantic[5, 0] == 255 and semantic[5, 7] == 0


@pytest.mark.parametrize(
    "annotation, message",
    [
        (_ann(11, [[1, 1, 5, 1]]), r"annotation id 11: polygon 0 has 2 point\(s\); a polygon needs at least 3"),
        (_ann(12, {"size": [5, 8], "counts": [40]}), r"annotation id 12: RLE size \[5, 8\].*\[6, 8\]"),
        (_ann(13, [[1, 1, 5, 1, 5, 3]], category_id=3), "annotation id 13: unknown category_id 3"),
    ],
)
def test_bad_annotations_fail_at_construction(tmp_path: Path, annotation: dict[str, Any], message: str) -> None:
    path = _write_coco(tmp_path, [annotation])
    with pytest.raises(DataError, match=message) as error:
        CocoInstances(split="val", root=tmp_path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    "counts, message",
    [([40, 3], "counts sum to 43 but size"), ("4", "counts sum to 4 but size"), ("T", "truncated")],
)
def test_bad_rle_counts_fail_on_access(tmp_path: Path, counts: Any, message: str) -> None:
    path = _write_coco(tmp_path, [_ann(21, {"size": [6, 8], "counts": counts})])
    dataset = CocoInstances(split="val", root=tmp_path)
    with pytest.raises(DataError, match=f"annotation id 21: .*{message}") as error:
        dataset[0]
    assert str(path) in str(error.value)


def test_broken_json_names_file_and_line(tmp_path: Path) -> None:
    path = _write_coco(tmp_path, [])
    path.write_text('{"images": [], "annotations": [\n  {"id": 1,}\n]}')
    with pytest.raises(DataError, match=r"instances_val2017\.json' is not valid JSON: .* line 2"):
        CocoInstances(split="val", root=tmp_path)


def test_missing_image_file_is_named(tmp_path: Path) -> None:
    images = [{"id": 5, "file_name": "000000000005.jpg", "height": 6, "width": 8}]
    _write_coco(tmp_path, [], images=images)
    with pytest.raises(DataError, match=r"000000000005\.jpg' \(image id 5"):
        CocoInstances(split="val", root=tmp_path)


def test_image_size_differs_from_json(tmp_path: Path) -> None:
    images = [{"id": 1, "file_name": "000000000001.jpg", "height": 7, "width": 8}]
    _write_coco(tmp_path, [], images=images)
    with pytest.raises(DataError, match=r"size mismatch: image .*000000000001\.jpg' is 8x6"):
        CocoInstances(split="val", root=tmp_path)[0]


def test_crowd_mask_survives_sanitising_when_instances_equal_height() -> None:
    """torchvision's SanitizeBoundingBoxes filters every Mask along dim 0; the crowd mask must not be cut."""
    from torchvision import tv_tensors

    from seglab.data.masks import CrowdMask, instance_target
    from seglab.data.transforms import train_transforms

    height, width = 6, 8
    masks = torch.zeros(height, height, width, dtype=torch.uint8)  # K == H instances
    for k in range(height):
        masks[k, k, 1 + (k % 3) : 4 + (k % 3)] = 1
    crowd = torch.zeros(height, width, dtype=torch.uint8)
    crowd[:, -1] = 1
    target = instance_target(masks, torch.arange(1, height + 1), crowd)
    target["masks"][0] = 0  # instance 0 loses its pixels (as if cropped away): its box becomes empty, it is dropped
    image = tv_tensors.Image(torch.zeros(3, height, width, dtype=torch.uint8))
    transform = train_transforms(crop_size=None, scale_range=None, hflip=False, task="instance")
    _, out = transform(image, target)
    assert out["masks"].shape[0] == height - 1 and out["labels"].tolist() == list(range(2, height + 1))
    assert isinstance(out["crowd"], CrowdMask) and out["crowd"].shape == (height, width)
    assert torch.equal(out["crowd"], crowd)


def test_annotation_decoding_to_no_pixel_is_counted_and_warned(tmp_path: Path) -> None:
    _write_coco(tmp_path, [
        _ann(7, [[1, 1, 5, 1, 5, 3, 1, 3]]),
        _ann(8, [[2.1, 2.1, 2.3, 2.1, 2.2, 2.3]]),  # a sliver inside one pixel: no pixel centre covered
    ])  # fmt: skip
    dataset = CocoInstances(split="val", root=tmp_path)
    with pytest.warns(UserWarning, match="annotation id 8 .* empty mask"):
        _, target = dataset[0]
    assert target["labels"].tolist() == [2] and dataset.dropped_annotations == {8}
