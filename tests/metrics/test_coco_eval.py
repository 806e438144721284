"""CocoEvaluator: agreement with the original pycocotools on coco_tiny, hand-worked AP, crowd regions,
category ids, empty input, gathering across two processes, and bad input."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import math
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.coco
import pycocotools.cocoeval
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seglab.errors import ConfigError, InputError
from seglab.metrics import CocoEvaluator
from seglab.metrics.coco import encode_masks
from seglab.structures import InstancePrediction, InstanceTarget

# seglab.data (torchvision) and conftest are imported where used: the spawned processes of the
# gather test import this module, and each import is seconds of their start-up.
TYPES = ("bbox", "segm")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Whole-image mask ops are memory-bound: on a shared 2-core machine, 2 threads were 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def coco_val() -> tuple[Any, list[InstanceTarget]]:
    """The coco_tiny val CocoInstances and its 50 targets."""
    from conftest import require_dataset

    import seglab.data

    require_dataset("coco_tiny")
    dataset = seglab.data.build_dataset("coco", split="val", folder="coco_tiny", task="instance")
    return dataset, [InstanceTarget.from_dict(target) for _, target in dataset]


def _evaluator(dataset: Any, **kwargs: Any) -> CocoEvaluator:
    category_ids = dataset.category_ids
    return CocoEvaluator(classes=dataset.classes, category_ids=category_ids, **kwargs)


def _shift(masks: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move [..., H, W] masks by (dy, dx) pixels; what leaves the image is lost."""
    h, w = masks.shape[-2:]
    out = torch.zeros_like(masks)
    out[..., max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)] = masks[..., max(-dy, 0): h + min(-dy, 0),
                                                                             max(-dx, 0): w + min(-dx, 0)]
    return out


def _dilate(masks: torch.Tensor) -> torch.Tensor:
    """[K, H, W] bool grown by one pixel towards its 4 neighbours."""
    return masks | _shift(masks, 1, 0) | _shift(masks, -1, 0) | _shift(masks, 0, 1) | _shift(masks, 0, -1)


def jittered(target: InstanceTarget, generator: torch.Generator, num_classes: int = 80) -> InstancePrediction:
    """Detections made from the ground truth: ~10% dropped, masks shifted, dilated or eroded, boxes
    moved and scaled by a few pixels, ~10% relabelled, 2 false positives, random scores."""
    keep = torch.rand(len(target), generator=generator) > 0.1
    masks, labels = target.masks[keep].bool(), target.labels[keep].clone()
    h, w = target.image_size
    modes = torch.randint(0, 3, (len(labels),), generator=generator)
    moved = torch.cat([masks, torch.zeros(2, h, w, dtype=torch.bool)])  # 2 rows for the false positives
    moved[:-2][modes == 1] = _dilate(masks[modes == 1])
    moved[:-2][modes == 2] = ~_dilate(~masks[modes == 2])  # eroded: the background dilated
    for k in (modes == 0).nonzero().view(-1).tolist():
        moved[k] = _shift(masks[k], *torch.randint(-3, 4, (2,), generator=generator).tolist())
    boxes = target.boxes_xyxy[keep].clone()
    centre, size = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
    centre += torch.randn(centre.shape, generator=generator) * 2
    size = (size * (1 + 0.08 * torch.randn(size.shape, generator=generator))).clamp(min=1)
    boxes = [torch.cat([centre - size / 2, centre + size / 2], dim=1)]
    relabel = torch.rand(len(labels), generator=generator) < 0.1
    labels[relabel] = torch.randint(1, num_classes + 1, (int(relabel.sum()),), generator=generator)
    for k in (1, 2):  # false positives: random rectangles
        x1, y1 = [int(torch.randint(0, side - 8, (), generator=generator)) for side in (w, h)]
        x2, y2 = [v + int(torch.randint(4, 60, (), generator=generator)) for v in (x1, y1)]
        moved[-k, y1:y2, x1:x2] = True
        boxes.append(torch.tensor([[x1, y1, min(x2, w), min(y2, h)]], dtype=torch.float32))
    labels = torch.cat([labels, torch.randint(1, num_classes + 1, (2,), generator=generator)])
    return InstancePrediction(masks=moved, boxes_xyxy=torch.cat(boxes), labels=labels,
                              scores=torch.rand(len(labels), generator=generator))


def pycocotools_eval(evaluator: CocoEvaluator, iou_type: str) -> pycocotools.cocoeval.COCOeval:
    """The original pycocotools COCOeval on the evaluator's own in-memory ground truth and results."""
    gt, results = evaluator.coco_inputs(iou_type)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = pycocotools.coco.COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        reference = pycocotools.cocoeval.COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        reference.params.maxDets = [1, 10, evaluator.max_dets]
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
    return reference


def test_ap_agrees_with_pycocotools_on_coco_tiny(coco_val, capsys) -> None:
    # The reference is the original: faster_coco_eval.init_as_pycocotools() (never called) would alias it.
    for module in (pycocotools.coco, pycocotools.cocoeval):
        assert Path(module.__file__).parent.name == "pycocotools" and "faster_coco_eval" not in module.__file__
    assert pycocotools.cocoeval.COCOeval.__module__ == "pycocotools.cocoeval"
    dataset, targets = coco_val
    generator = torch.Generator().manual_seed(0)
    evaluator = _evaluator(dataset)
    for start in range(0, len(targets), 8):
        batch = targets[start: start + 8]
        evaluator.update([jittered(t, generator) for t in batch], batch, image_ids=range(start, start + len(batch)))
    scores = evaluator.compute()
    assert capsys.readouterr().out == ""
    assert scores["num_images"] == 50 and scores["num_detections"] > 300
    for iou_type in TYPES:
        reference = pycocotools_eval(evaluator, iou_type)
        expected = [math.nan if s < 0 else s for s in reference.stats]
        np.testing.assert_allclose(scores["stats"][iou_type], expected, atol=1e-6, err_msg=iou_type)
        assert 0.2 < scores[f"{iou_type}_ap"] < 0.9  # jittered: neither trivial 0 nor 1
        precision = reference.eval["precision"][:, :, :, 0, -1]
        for k, category in enumerate(reference.params.catIds):
            valid = precision[:, :, k][precision[:, :, k] > -1]
            name = dataset.classes[dataset.category_to_label[category]]
            np.testing.assert_allclose(scores["per_class"][iou_type][name], valid.mean() if valid.size else math.nan,
                                       atol=1e-6, err_msg=f"{iou_type} {name}")
        assert np.nanmean(list(scores["per_class"][iou_type].values())) == pytest.approx(scores[f"{iou_type}_ap"])
    assert scores["table"].count("Average Precision") == 12 and "IoU metric: segm" in scores["table"]


def test_ground_truth_as_predictions_gives_ap_one(coco_val) -> None:
    dataset, targets = coco_val
    assert sum(bool(t.crowd.any()) for t in targets) >= 3  # crowd regions are part of the test
    evaluator = _evaluator(dataset)
    predictions = [InstancePrediction(masks=t.masks.bool(), boxes_xyxy=t.boxes_xyxy, labels=t.labels,
                                      scores=torch.ones(len(t))) for t in targets]
    evaluator.update(predictions, targets)
    scores = evaluator.compute()
    for iou_type in TYPES:  # all but AR at 1 and 10 detections (images hold more objects than that)
        stats = scores["stats"][iou_type]
        assert [s for k, s in enumerate(stats) if k not in (6, 7) and not math.isnan(s)] == [1.0] * 10, iou_type


def _square_target(size: int = 40, label: int = 1, crowd: torch.Tensor | None = None) -> InstanceTarget:
    masks = torch.zeros(1, size, size, dtype=torch.uint8)
    masks[0, 10:20, 10:20] = 1
    return InstanceTarget(boxes_xyxy=torch.tensor([[10.0, 10, 20, 20]]), labels=torch.tensor([label]), masks=masks,
                          crowd=crowd)


def _boxes_as_predictions(boxes: list[list[int]], labels: list[int], scores: list[float],
                          size: int = 40) -> InstancePrediction:
    """Detections whose soft masks fill their (integer) boxes exactly once thresholded at 0.5."""
    masks = torch.full((len(boxes), size, size), 0.3)  # soft: thresholded at 0.5
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        masks[k, y1:y2, x1:x2] = 0.6
    return InstancePrediction(masks=masks, boxes_xyxy=torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
                              labels=torch.tensor(labels, dtype=torch.int64), scores=torch.tensor(scores))


@pytest.mark.parametrize(("shift", "ap50", "ap"), [(3, 1.0, 0.1), (4, 0.0, 0.0)])
def test_iou_just_above_or_below_one_half(shift: int, ap50: float, ap: float, capsys) -> None:
    # A 10x10 square moved by 3 columns: IoU 70 / 130 = 0.54 passes only the 0.50 threshold (AP =
    # 1 of 10 thresholds); by 4: IoU 60 / 140 = 0.43 passes none.
    evaluator = CocoEvaluator(classes=["background", "a"])
    evaluator.update([_boxes_as_predictions([[10 + shift, 10, 20 + shift, 20]], [1], [0.9])], [_square_target()])
    scores = evaluator.compute()
    for iou_type in TYPES:
        assert scores[f"{iou_type}_ap50"] == ap50 and scores[f"{iou_type}_ap75"] == 0.0
        assert scores[f"{iou_type}_ap"] == pytest.approx(ap) and scores[f"{iou_type}_aps"] == pytest.approx(ap)
        assert math.isnan(scores[f"{iou_type}_apm"]) and math.isnan(scores[f"{iou_type}_apl"])  # no such GT
    assert capsys.readouterr().out == ""


def test_false_positive_ranked_first_halves_precision() -> None:
    evaluator = CocoEvaluator(classes=["background", "a"])
    evaluator.update([_boxes_as_predictions([[25, 25, 35, 35], [10, 10, 20, 20]], [1, 1], [0.9, 0.5])],
                     [_square_target()])
    scores = evaluator.compute()  # precision 1/2 at every recall up to 1
    assert (scores["bbox_ap"], scores["segm_ap"], scores["segm_ar100"]) == pytest.approx((0.5, 0.5, 1.0))


@pytest.mark.parametrize("with_crowd", [True, False])
def test_detection_of_any_class_inside_a_crowd_is_forgiven(with_crowd: bool) -> None:
    crowd = torch.zeros(40, 40, dtype=torch.uint8)
    crowd[25:40, 25:40] = 1
    evaluator = CocoEvaluator(classes=["background", "a", "b"])
    # Image 0: a class-a object and a crowd; class a found, and a confident class-b detection in the
    # crowd. Image 1: a class-b object, found with a lower score.
    evaluator.update([_boxes_as_predictions([[10, 10, 20, 20], [27, 27, 37, 37]], [1, 2], [0.5, 0.9]),
                      _boxes_as_predictions([[10, 10, 20, 20]], [2], [0.5])],
                     [_square_target(crowd=crowd if with_crowd else None), _square_target(label=2)])
    scores = evaluator.compute()
    for iou_type in TYPES:  # without the crowd, class b's ranking is FP, TP: AP 0.5
        assert scores["per_class"][iou_type] == pytest.approx({"a": 1.0, "b": 1.0 if with_crowd else 0.5})


def test_results_use_the_dataset_category_ids(coco_val) -> None:
    from seglab.data.masks import decode_rle

    dataset, _ = coco_val
    evaluator = _evaluator(dataset)
    target = InstanceTarget(boxes_xyxy=torch.tensor([[10.0, 10, 20, 20], [25, 5, 30, 35]]),
                            labels=torch.tensor([1, 80]), masks=torch.zeros(2, 40, 40, dtype=torch.uint8))
    target.masks[0, 10:20, 10:20] = target.masks[1, 5:35, 25:30] = 1
    evaluator.update([_boxes_as_predictions([[10, 10, 20, 20], [25, 5, 30, 35]], [1, 80], [0.9, 0.8])], [target])
    results = evaluator.results()
    assert [(r["category_id"], r["bbox"]) for r in results] == [(1, [10, 10, 10, 10]), (90, [25, 5, 5, 30])]
    assert decode_rle(results[1]["segmentation"]).sum() == 150
    scores = evaluator.compute()
    assert scores["per_class"]["segm"]["person"] == 1.0 and scores["per_class"]["bbox"]["toothbrush"] == 1.0
    assert math.isnan(scores["per_class"]["segm"]["bicycle"]) and scores["segm_ap"] == 1.0


def _all_nan(scores: dict) -> bool:
    flat = [v for k, v in scores.items() if k.startswith(TYPES)]
    per_class = [v for t in TYPES for v in scores["per_class"][t].values()]
    return all(math.isnan(v) for v in flat + per_class + scores["stats"]["bbox"] + scores["stats"]["segm"])


def test_empty_inputs_give_nan(capsys) -> None:
    evaluator = CocoEvaluator(classes=["background", "a", "b"])
    scores = evaluator.compute()
    assert scores["num_images"] == 0 and _all_nan(scores) and evaluator.results() == []
    nothing = InstancePrediction(masks=torch.zeros(0, 8, 8), boxes_xyxy=torch.zeros(0, 4),
                                 labels=torch.zeros(0, dtype=torch.int64), scores=torch.zeros(0))
    no_gt = InstanceTarget(boxes_xyxy=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.int64),
                           masks=torch.zeros(0, 8, 8, dtype=torch.uint8), crowd=torch.zeros(8, 8, dtype=torch.uint8))
    evaluator.update([nothing, nothing], [no_gt, no_gt])
    scores = evaluator.compute()
    assert scores["num_images"] == 2 and scores["num_detections"] == 0 and _all_nan(scores)
    evaluator.update([_boxes_as_predictions([[1, 1, 4, 4]], [1], [0.3], size=8)], [no_gt])  # detections, no GT
    assert _all_nan(evaluator.compute())
    missed = CocoEvaluator(classes=["background", "a"])
    missed.update([_boxes_as_predictions([], [], [])], [_square_target()])  # GT, no detections: AP 0
    assert missed.compute()["stats"]["segm"][:4] == [0.0, 0.0, 0.0, 0.0]
    assert capsys.readouterr().out == ""


def test_max_dets_keeps_the_top_scores_of_each_image() -> None:
    evaluator = CocoEvaluator(classes=["background", "a"], iou_types=("bbox",), max_dets=2)
    evaluator.update([_boxes_as_predictions([[0, 0, 5, 5], [1, 1, 6, 6], [2, 2, 7, 7]], [1, 1, 1], [0.2, 0.9, 0.5])],
                     [_square_target()])
    assert [r["score"] for r in evaluator.results()] == pytest.approx([0.9, 0.5])
    assert "segmentation" not in evaluator.results()[0] and "bbox_ar2" in evaluator.compute()


def test_encode_masks_matches_the_numpy_encoder() -> None:
    from seglab.data.masks import decode_rle, encode_rle

    generator = torch.Generator().manual_seed(3)
    masks = torch.rand(5, 13, 17, generator=generator) > 0.6
    masks[0], masks[1] = False, True
    for batch in (masks, masks.to(torch.uint8)):
        counts = encode_masks(batch)
        assert counts == [encode_rle(m.numpy())["counts"] for m in masks]
        for mask, count in zip(masks, counts):
            assert np.array_equal(decode_rle({"size": [13, 17], "counts": count}), mask.numpy())
    assert encode_masks(torch.zeros(0, 4, 4, dtype=torch.bool)) == []


def test_bad_input_is_named() -> None:
    evaluator = CocoEvaluator(classes=["background", "a", "b"], category_ids=[0, 3, 7])
    target = _square_target()
    for label in (0, 3):
        with pytest.raises(InputError, match=rf"predictions\[0\]\.labels holds label {label} which has no category"):
            evaluator.update([_boxes_as_predictions([[10, 10, 20, 20]], [label], [0.5])], [target])
    with pytest.raises(InputError, match=r"targets\[0\]\.labels holds label 3"):
        evaluator.update([_boxes_as_predictions([], [], [])], [_square_target(label=3)])
    with pytest.raises(InputError, match="paste the masks at the image size"):
        evaluator.update([_boxes_as_predictions([[1, 1, 4, 4]], [1], [0.5], size=8)], [target])
    evaluator.update([_boxes_as_predictions([], [], [])], [target], image_ids=[4])
    with pytest.raises(InputError, match="image id 4 .* already recorded"):
        evaluator.update([_boxes_as_predictions([], [], [])], [target], image_ids=[4])
    with pytest.raises(ConfigError, match="repeat an id"):
        CocoEvaluator(classes=["background", "a", "b"], category_ids=[0, 3, 3])
    with pytest.raises(ConfigError, match="iou_types"):
        CocoEvaluator(classes=["background", "a"], iou_types=("mask",))


# ---------------------------------------------------------------- distributed


def _synthetic(num_images: int) -> tuple[list[InstancePrediction], list[InstanceTarget]]:
    """Small images with 1-3 rectangles each and jittered detections (the same in every process)."""
    generator = torch.Generator().manual_seed(11)
    predictions, targets = [], []
    for _ in range(num_images):
        corners = torch.randint(0, 20, (int(torch.randint(1, 4, (), generator=generator)), 2), generator=generator)
        boxes = torch.cat([corners, corners + torch.randint(3, 12, corners.shape, generator=generator)], 1)
        masks = torch.zeros(len(boxes), 32, 32, dtype=torch.uint8)
        for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            masks[k, y1:y2, x1:x2] = 1
        labels = torch.randint(1, 3, (len(boxes),), generator=generator)
        target = InstanceTarget(boxes_xyxy=boxes.float(), labels=labels, masks=masks)
        targets.append(target)
        predictions.append(jittered(target, generator, num_classes=2))
    return predictions, targets


def _evaluate_pair(predictions, targets, mine: slice, ids: list[int]) -> tuple[CocoEvaluator, CocoEvaluator]:
    """Evaluator A: the images ``mine`` with default ids; B: the images ``ids`` with their indices as ids."""
    classes = ["background", "a", "b"]
    by_default, by_index = CocoEvaluator(classes=classes), CocoEvaluator(classes=classes)
    by_default.update(predictions[mine], targets[mine])
    by_index.update([predictions[i] for i in ids], [targets[i] for i in ids], image_ids=ids)
    return by_default, by_index


def _summary(evaluator: CocoEvaluator) -> str:
    return json.dumps([evaluator.compute(), evaluator.results()], sort_keys=True)  # nan reads "NaN" in both


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gather_worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))
    try:
        predictions, targets = _synthetic(6)
        # A: images rank, rank + 2, ... (DistributedSampler without shuffling) with default ids.
        # B: 5 images padded to 6 by DistributedSampler, repeating image 0 on rank 1: 0, 2, 4 | 1, 3, 0.
        evaluators = _evaluate_pair(predictions, targets, slice(rank, None, 2), [[0, 2, 4], [1, 3, 0]][rank])
        for evaluator in evaluators:
            evaluator.gather()
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps([_summary(e) for e in evaluators]))
        dist.barrier()  # neither rank tears gloo down while the other still uses it
    finally:
        dist.destroy_process_group()


def test_gather_across_two_processes_equals_one_process(tmp_path: Path) -> None:
    predictions, targets = _synthetic(6)
    by_default, by_index = _evaluate_pair(predictions, targets, slice(None), list(range(5)))
    before = _summary(by_default)
    by_default.gather()  # no process group: a no-op
    assert _summary(by_default) == before and json.loads(before)[0]["num_images"] == 6
    mp.spawn(_gather_worker, args=(_free_port(), str(tmp_path)), nprocs=2)
    for rank in (0, 1):  # every rank holds everything after gather
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == [before, _summary(by_index)], rank
    assert json.loads(_summary(by_index))[0]["num_images"] == 5
