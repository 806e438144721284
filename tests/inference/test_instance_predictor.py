"""InstancePredictor on a stub model: overlays per image and one COCO results.json with every detection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from seglab.data.masks import decode_rle
from seglab.errors import InputError
from seglab.inference.instance_predictor import InstancePredictor
from seglab.structures import InstancePrediction

H, W = 48, 64
CONFIG = {"model": "stub", "num_classes": 3, "classes": ["background", "cat", "dog"], "category_ids": [0, 17, 18]}


class StubInstanceModel(nn.Module):
    """Returns two fixed detections per image (scores 0.9 and 0.3); records what it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[Tensor]] = []

    def forward(self, images: list[Tensor]) -> list[InstancePrediction]:
        self.calls.append(images)
        predictions = []
        for image in images:
            masks = torch.zeros(2, *image.shape[-2:])
            masks[0, 10:30, 5:25] = 0.8
            masks[0, 12, 6] = 0.4  # below the 0.5 mask threshold
            masks[1, 20:40, 30:60] = 0.6
            boxes = torch.tensor([[5.0, 10.0, 25.0, 30.0], [30.0, 20.0, 60.0, 40.0]])
            predictions.append(InstancePrediction(masks=masks, boxes_xyxy=boxes, labels=torch.tensor([1, 2]),
                                                  scores=torch.tensor([0.9, 0.3])))
        return predictions


def write_images(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(folder / name)


def test_predict_calls_the_model_with_a_list_of_one_float_image() -> None:
    stub = StubInstanceModel().train()
    predictor = InstancePredictor.from_model(stub, CONFIG)
    prediction = predictor.predict(torch.full((3, H, W), 255, dtype=torch.uint8))
    assert not stub.training
    (images,) = stub.calls
    assert len(images) == 1 and images[0].shape == (3, H, W) and images[0].dtype == torch.float32
    assert float(images[0].max()) == 1.0
    assert isinstance(prediction, InstancePrediction) and len(prediction) == 2
    with pytest.raises(InputError, match=r"expected one \[3, H, W\] tensor"):
        predictor.predict(torch.zeros(1, 3, H, W))


def test_predict_files_writes_overlays_and_coco_results(tmp_path: Path) -> None:
    write_images(tmp_path / "images")
    predictor = InstancePredictor.from_model(StubInstanceModel(), CONFIG, score_threshold=0.5)
    written = predictor.predict_files(tmp_path / "images", tmp_path / "out")
    assert [w.overlay.name for w in written] == ["a_overlay.png", "b_overlay.png"]
    assert all(w.overlay.is_file() and w.results == tmp_path / "out" / "results.json" for w in written)
    assert [w.detections for w in written] == [2, 2]

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results) == 4  # every score, below the drawing threshold too
    names = [(r["image_id"], r["file_name"]) for r in results]
    assert names == [(0, "a.png"), (0, "a.png"), (1, "b.png"), (1, "b.png")]
    assert [r["category_id"] for r in results] == [17, 18, 17, 18]
    assert [r["score"] for r in results] == pytest.approx([0.9, 0.3, 0.9, 0.3])
    assert results[1]["bbox"] == [30.0, 20.0, 30.0, 20.0]  # x, y, width, height
    expected = StubInstanceModel()([torch.zeros(3, H, W)])[0].binary_masks().numpy()
    for result, mask in zip(results, [*expected, *expected]):
        assert isinstance(result["segmentation"]["counts"], str)
        np.testing.assert_array_equal(decode_rle(result["segmentation"], height=H, width=W), mask.astype(np.uint8))


def test_score_threshold_filters_what_is_drawn_only(tmp_path: Path) -> None:
    write_images(tmp_path / "images")
    image = np.asarray(Image.open(tmp_path / "images" / "a.png"))
    overlays = {}
    for threshold in (0.5, 0.2):
        predictor = InstancePredictor.from_model(StubInstanceModel(), CONFIG, score_threshold=threshold)
        (first, _) = predictor.predict_files(tmp_path / "images", tmp_path / f"out{threshold}")
        overlays[threshold] = np.asarray(Image.open(first.overlay))
        assert len(json.loads(first.results.read_text())) == 4
    low_score_region = (slice(25, 40), slice(35, 60))  # inside the 0.3 detection, clear of its label
    np.testing.assert_array_equal(overlays[0.5][low_score_region], image[low_score_region])
    assert (overlays[0.2][low_score_region] != image[low_score_region]).any()
    assert (overlays[0.5][15:30, 8:25] != image[15:30, 8:25]).any()  # the 0.9 detection is drawn


def test_labels_are_category_ids_without_a_mapping(tmp_path: Path) -> None:
    write_images(tmp_path / "images")
    config = {key: value for key, value in CONFIG.items() if key != "category_ids"}
    predictor = InstancePredictor.from_model(StubInstanceModel(), config)
    written = predictor.predict_files(tmp_path / "images" / "b.png", tmp_path / "out")
    results = json.loads(written[0].results.read_text())
    assert [(r["image_id"], r["category_id"]) for r in results] == [(0, 1), (0, 2)]
