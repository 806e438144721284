"""PanopticQuality and pq_stats: one hand-worked map per panopticapi rule, ground truth as prediction
on the real samples, a perturbed real prediction and random maps against a brute-force reference,
accumulation, all_reduce across two processes, and bad input."""

from __future__ import annotations

import datetime
import json
import math
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seglab.errors import ConfigError, InputError
from seglab.metrics import PanopticQuality
from seglab.metrics.panoptic import pq_stats
from seglab.structures import PanopticPrediction

# seglab.data (torchvision) and conftest are imported where used: the spawned processes of the
# all_reduce test import this module.
V = 255  # void
CLASSES = ("road", "sky", "person", "car")
R, S, P, C = range(4)  # road and sky are stuff, person and car things
THINGS = (P, C)


def _maps(semantic: list, instances: list | None = None) -> dict[str, torch.Tensor]:
    semantic = torch.tensor(semantic)
    return {"semantic": semantic, "instance_ids": torch.zeros_like(semantic) if instances is None
            else torch.tensor(instances)}


def _stats(pred: dict, gt: dict) -> dict[int, tuple[int, int, int, float]]:
    """{class: (tp, fp, fn, iou_sum)} of the classes with any count."""
    stats = pq_stats(pred["semantic"], pred["instance_ids"], gt["semantic"], gt["instance_ids"],
                     num_classes=len(CLASSES), thing_classes=THINGS)
    rows = zip(stats.tp.tolist(), stats.fp.tolist(), stats.fn.tolist(), stats.iou_sum.tolist())
    return {k: row for k, row in enumerate(rows) if any(row)}


def _compute(*pairs: tuple[dict, dict]) -> dict[str, Any]:
    metric = PanopticQuality(CLASSES, THINGS)
    for pred, gt in pairs:
        metric.update([pred], [gt])
    return metric.compute()


# ---------------------------------------------------------------- one rule per hand-worked map


def test_perfect_match() -> None:
    gt = _maps([[R, R, P, P], [R, R, P, P]], [[0, 0, 1, 1], [0, 0, 1, 1]])
    # road: 4 px vs 4 px, IoU 1; person 1: 4 px vs 4 px, IoU 1. Every PQ, SQ, RQ = 1 over 2 classes.
    assert _stats(gt, gt) == {R: (1, 0, 0, 1.0), P: (1, 0, 0, 1.0)}
    scores = _compute((gt, gt))
    assert [scores[k] for k in ("pq", "sq", "rq", "pq_things", "pq_stuff")] == [1.0] * 5
    assert (scores["n"], scores["n_things"], scores["n_stuff"], scores["images"]) == (2, 1, 1, 1)
    assert scores["per_class"] == {
        "road": {"pq": 1.0, "sq": 1.0, "rq": 1.0, "tp": 1, "fp": 0, "fn": 0, "isthing": False},
        "person": {"pq": 1.0, "sq": 1.0, "rq": 1.0, "tp": 1, "fp": 0, "fn": 0, "isthing": True},
    }


def test_iou_exactly_half_does_not_match_and_just_above_does() -> None:
    # gt: person 1 on 22 px; pred: person 1 on the first 11 of them, void elsewhere.
    # IoU = 11 / (11 + 22 - 11) = 0.5, not > 0.5: the gt is an FN and the pred an FP (on person, not void).
    gt = _maps([[P] * 22], [[1] * 22])
    pred = _maps([[P] * 11 + [V] * 11], [[1] * 11 + [0] * 11])
    assert _stats(pred, gt) == {P: (0, 1, 1, 0.0)}
    # gt on 21 px, the same pred: IoU = 11 / 21 = 0.5238 > 0.5, a match.
    gt = _maps([[P] * 21 + [V]], [[1] * 21 + [0]])
    assert _stats(pred, gt) == {P: (1, 0, 0, pytest.approx(11 / 21, abs=1e-15))}


def test_void_pixels_are_left_out_of_the_union() -> None:
    gt = _maps([[P, P, P, P, V, V, V, V]], [[1, 1, 1, 1, 0, 0, 0, 0]])
    pred = _maps([[V, P, P, P, P, P, P, P]], [[0, 1, 1, 1, 1, 1, 1, 1]])
    # inter 3; |pred| 7 of which 4 on void: union = 7 + 4 - 3 - 4 = 4, IoU 3/4 -> TP.
    # (Counting the void pixels, union 8 would give IoU 3/8 and no match.)
    assert _stats(pred, gt) == {P: (1, 0, 0, 0.75)}
    assert _compute((pred, gt))["pq"] == 0.75


def test_wrong_class_does_not_match() -> None:
    gt = _maps([[C, C, C, C]], [[1, 1, 1, 1]])
    pred = _maps([[P, P, P, P]], [[1, 1, 1, 1]])
    # Same pixels, other class: car 1 is an FN, person 1 an FP. Both PQ 0 over n = 2.
    assert _stats(pred, gt) == {P: (0, 1, 0, 0.0), C: (0, 0, 1, 0.0)}
    scores = _compute((pred, gt))
    assert (scores["pq"], scores["n"]) == (0.0, 2)


def test_unmatched_gt_is_a_false_negative() -> None:
    gt = _maps([[R, R, R, R, P, P]], [[0, 0, 0, 0, 1, 1]])
    pred = _maps([[R, R, R, R, V, V]])
    # road IoU 1 (TP); person 1 has no prediction: FN. person PQ = SQ = RQ = 0 / (0 + 0 + 1/2) = 0.
    assert _stats(pred, gt) == {R: (1, 0, 0, 1.0), P: (0, 0, 1, 0.0)}
    scores = _compute((pred, gt))
    assert (scores["pq"], scores["pq_things"], scores["pq_stuff"]) == (0.5, 0.0, 1.0)
    assert scores["per_class"]["person"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 0, "fn": 1,
                                             "isthing": True}


def test_unmatched_prediction_is_a_false_positive() -> None:
    gt = _maps([[R, R, R, R, R, R]])
    pred = _maps([[R, R, R, R, P, P]], [[0, 0, 0, 0, 1, 1]])
    # road: inter 4, union 4 + 6 - 4 = 6, IoU 2/3 -> TP: PQ = SQ = 2/3, RQ = 1.
    # person 1 lies on road (no void, no crowd): FP; PQ 0 = 0 / (0 + 1/2).
    assert _stats(pred, gt) == {R: (1, 0, 0, pytest.approx(2 / 3)), P: (0, 1, 0, 0.0)}
    road = _compute((pred, gt))["per_class"]["road"]
    assert (road["pq"], road["sq"], road["rq"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 1.0)


def test_prediction_mostly_on_void_is_not_a_false_positive() -> None:
    gt = _maps([[R, R, V, V, V]])
    pred = _maps([[R, R, P, P, P]], [[0, 0, 1, 1, 1]])
    # person 1: 3 of 3 px on void, 3/3 > 0.5: ignored. road: IoU 1.
    assert _stats(pred, gt) == {R: (1, 0, 0, 1.0)}
    # Exactly half on void is not more than half: person 1 (2 px road, 2 px void) is an FP.
    # road: inter 2, union 2 + 4 - 2 = 4, IoU 0.5: no match either (road FN and, with its 2 px, FP).
    gt = _maps([[R, R, R, R, V, V]])
    pred = _maps([[R, R, P, P, P, P]], [[0, 0, 1, 1, 1, 1]])
    assert _stats(pred, gt) == {R: (0, 1, 1, 0.0), P: (0, 1, 0, 0.0)}


def test_prediction_mostly_on_a_crowd_of_its_class_is_not_a_false_positive() -> None:
    # gt: a person crowd (person pixels with instance id 0) on px 0-2, road on px 3-5.
    gt = _maps([[P, P, P, R, R, R]], [[0, 0, 0, 0, 0, 0]])
    person = _maps([[P, P, P, R, R, R]], [[1, 1, 1, 0, 0, 0]])
    # person 1 lies wholly on the person crowd: neither TP (crowds never match) nor FP; no FN either.
    assert _stats(person, gt) == {R: (1, 0, 0, 1.0)}
    car = _maps([[C, C, C, R, R, R]], [[1, 1, 1, 0, 0, 0]])
    # car 1 on a crowd of another class: an FP.
    assert _stats(car, gt) == {R: (1, 0, 0, 1.0), C: (0, 1, 0, 0.0)}
    # Void and same-class crowd add up: person 1 on 1 px void + 2 px crowd + 1 px road, 3/4 > 0.5.
    gt = _maps([[V, P, P, R, R, R]], [[0, 0, 0, 0, 0, 0]])
    pred = _maps([[P, P, P, P, R, R]], [[1, 1, 1, 1, 0, 0]])
    # road: inter 2, union 2 + 3 - 2 = 3, IoU 2/3 -> TP.
    assert _stats(pred, gt) == {R: (1, 0, 0, pytest.approx(2 / 3))}


def test_crowd_never_matches_and_never_gives_a_false_negative() -> None:
    gt = _maps([[P, P, P, P, R, R]], [[0, 0, 0, 0, 0, 0]])
    same = _maps([[P, P, P, P, R, R]], [[1, 1, 1, 1, 0, 0]])
    # The person crowd and person 1 coincide (IoU 1), yet no TP; person 1 is forgiven (on its crowd).
    assert _stats(same, gt) == {R: (1, 0, 0, 1.0)}
    # Without any prediction on it, the crowd is no FN.
    assert _stats(_maps([[V, V, V, V, R, R]]), gt) == {R: (1, 0, 0, 1.0)}
    scores = _compute((same, gt))
    assert "person" not in scores["per_class"] and (scores["n"], scores["n_things"]) == (1, 0)


def test_class_absent_from_both_is_skipped() -> None:
    gt = _maps([[R, R], [R, R]])
    # Only road is seen: sky, person, car (TP + FP + FN = 0) are left out; no thing class is averaged,
    # so the things group scores 0.0 (never nan) with n_things = 0.
    scores = _compute((gt, gt))
    assert (scores["pq"], scores["n"], scores["n_stuff"]) == (1.0, 1, 1)
    assert (scores["pq_things"], scores["sq_things"], scores["rq_things"], scores["n_things"]) == (0.0, 0.0, 0.0, 0)
    assert list(scores["per_class"]) == ["road"]


def _split_example() -> tuple[dict, dict]:
    # gt:   road 0-1, sky 2-3, person 1 on 4-7, road 8-11 (one road segment of 6 px)
    # pred: road 0-1, void 2-3, car 1 on 4, person 1 on 5-7, road 8-11
    gt = _maps([[R, R, S, S, P, P, P, P, R, R, R, R]], [[0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]])
    pred = _maps([[R, R, V, V, C, P, P, P, R, R, R, R]], [[0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]])
    return pred, gt


def test_things_and_stuff_averages() -> None:
    pred, gt = _split_example()
    # road: IoU 1, TP. sky: no prediction, FN. person: inter 3, union 3 + 4 - 3 = 4, IoU 0.75, TP.
    # car 1 (1 px on person): FP.
    assert _stats(pred, gt) == {R: (1, 0, 0, 1.0), S: (0, 0, 1, 0.0), P: (1, 0, 0, 0.75), C: (0, 1, 0, 0.0)}
    # per class (PQ, SQ, RQ): road (1, 1, 1), sky (0, 0, 0), person (.75, .75, 1), car (0, 0, 0)
    scores = _compute((pred, gt))
    expected = {"pq": 1.75 / 4, "sq": 1.75 / 4, "rq": 0.5, "pq_things": 0.375, "sq_things": 0.375, "rq_things": 0.5,
                "pq_stuff": 0.5, "sq_stuff": 0.5, "rq_stuff": 0.5, "n": 4, "n_things": 2, "n_stuff": 2, "images": 1}
    assert {k: scores[k] for k in expected} == expected


def test_stuff_instance_ids_are_ignored_and_a_predicted_thing_without_id_is_one_segment() -> None:
    gt = _maps([[R, R, P, P]], [[3, 4, 1, 1]])  # instance ids on road mean nothing
    pred = _maps([[R, R, P, P]], [[0, 0, 0, 0]])  # person pixels without id: one (non-crowd) segment
    assert _stats(pred, gt) == {R: (1, 0, 0, 1.0), P: (1, 0, 0, 1.0)}


def test_two_updates_equal_one_update_with_both_images() -> None:
    first, second = _split_example(), (_maps([[R, R, R, R, R, R]]), _maps([[R, R, R, R, P, P]], [[0, 0, 0, 0, 1, 1]]))
    metric = PanopticQuality(CLASSES, THINGS)
    metric.update([first[0], second[0]], [first[1], second[1]])
    both = metric.compute()
    assert _compute(first, second) == both and both["images"] == 2
    # road: TP 1 (IoU 1) + TP 1 (IoU 4/6); person: TP .75 + FN 1 (the second gt person has no prediction).
    assert both["per_class"]["road"]["sq"] == pytest.approx((1 + 4 / 6) / 2)
    assert (both["per_class"]["person"]["tp"], both["per_class"]["person"]["fn"]) == (1, 1)
    metric.reset()
    assert metric.compute()["n"] == 0 and metric.compute()["images"] == 0


# ---------------------------------------------------------------- brute-force reference


def _reference(pred: dict, gt: dict, num_classes: int, things: tuple[int, ...]) -> np.ndarray:
    """[C, 4] rows (tp, fp, fn, iou_sum) by a plain loop over segment pairs, with one boolean mask per
    segment, following panopticapi's rules (float IoU > 0.5, float ratio > 0.5 for ignored FPs)."""
    def segments(maps: dict, crowd_allowed: bool) -> list[tuple[int, np.ndarray, bool]]:
        semantic, instances = maps["semantic"].numpy(), maps["instance_ids"].numpy()
        found = []
        for cls in np.unique(semantic).tolist():
            if cls == V:
                continue
            in_class = semantic == cls
            if cls not in things:
                found.append((cls, in_class, False))
                continue
            for instance in np.unique(instances[in_class]).tolist():
                found.append((cls, in_class & (instances == instance), crowd_allowed and instance == 0))
        return found

    void = gt["semantic"].numpy() == V
    gts, preds = segments(gt, True), segments(pred, False)
    stats = np.zeros((num_classes, 4))
    gt_matched, pred_matched = set(), set()
    for i, (gt_cls, gt_mask, crowd) in enumerate(gts):
        for j, (pred_cls, pred_mask, _) in enumerate(preds):
            if gt_cls != pred_cls or crowd:
                continue
            inter = int((gt_mask & pred_mask).sum())
            union = int(pred_mask.sum()) + int(gt_mask.sum()) - inter - int((pred_mask & void).sum())
            if inter / union > 0.5:
                stats[gt_cls] += (1, 0, 0, inter / union)
                gt_matched.add(i)
                pred_matched.add(j)
    for i, (gt_cls, _, crowd) in enumerate(gts):
        if i not in gt_matched and not crowd:
            stats[gt_cls, 2] += 1
    for j, (pred_cls, pred_mask, _) in enumerate(preds):
        if j in pred_matched:
            continue
        ignored = int((pred_mask & void).sum())
        ignored += sum(int((pred_mask & mask).sum()) for cls, mask, crowd in gts if crowd and cls == pred_cls)
        if ignored / int(pred_mask.sum()) <= 0.5:
            stats[pred_cls, 1] += 1
    return stats


def _reference_pq(stats: np.ndarray, things: tuple[int, ...]) -> dict[str, float]:
    tp, fp, fn, iou = stats.T
    seen = tp + fp + fn > 0
    pq = np.divide(iou, tp + fp / 2 + fn / 2, out=np.zeros_like(iou), where=seen)
    is_thing = np.isin(np.arange(len(tp)), things)
    return {"pq": pq[seen].mean(), "pq_things": pq[seen & is_thing].mean(), "pq_stuff": pq[seen & ~is_thing].mean()}


def _assert_matches_reference(metric: PanopticQuality, reference: np.ndarray) -> None:
    counts = torch.stack([metric.tp, metric.fp, metric.fn], dim=1).numpy()
    np.testing.assert_array_equal(counts, reference[:, :3])
    np.testing.assert_allclose(metric.iou_sum.numpy(), reference[:, 3], rtol=0, atol=1e-9)


def _random_pair(generator: torch.Generator, num_classes: int = 5) -> tuple[dict, dict]:
    """Blocky 8x10 maps, classes 0-1 stuff and 2-4 things, void and crowd in the gt; pred = the gt with
    25% of its pixels given a random class and instance id."""
    def blocks(high: int) -> torch.Tensor:
        return torch.randint(0, high, (4, 5), generator=generator).repeat_interleave(2, 0).repeat_interleave(2, 1)
    semantic = blocks(num_classes)
    semantic[blocks(6) == 0] = V
    instances = torch.where(semantic >= 2, blocks(3), 0)  # instance 0 on a thing: crowd
    pred_semantic, pred_instances = semantic.clone(), instances.clone()
    noisy = torch.rand(semantic.shape, generator=generator) < 0.25
    pred_semantic[noisy] = torch.randint(0, num_classes, (int(noisy.sum()),), generator=generator)
    pred_instances[noisy] = torch.randint(0, 3, (int(noisy.sum()),), generator=generator)
    return _maps(pred_semantic.tolist(), pred_instances.tolist()), _maps(semantic.tolist(), instances.tolist())


def test_random_maps_match_the_reference() -> None:
    generator = torch.Generator().manual_seed(0)
    things, totals = (2, 3, 4), np.zeros(4)
    for seed in range(40):
        pred, gt = _random_pair(generator)
        metric = PanopticQuality([f"c{k}" for k in range(5)], things)
        metric.update([pred], [gt])
        reference = _reference(pred, gt, 5, things)
        _assert_matches_reference(metric, reference)
        scores, expected = metric.compute(), _reference_pq(reference, things)
        assert {k: scores[k] for k in expected} == pytest.approx(expected, abs=1e-12), seed
        totals += reference.sum(axis=0)
    assert (totals[:3] > 20).all()  # every kind of count occurred


# ---------------------------------------------------------------- real samples


def _coco_panoptic():
    from conftest import require_dataset

    from seglab.data import build_dataset

    folder = require_dataset("coco_panoptic_sample")
    layout = dict(json_file="panoptic_examples.json", panoptic_dir="panoptic_examples", image_dir="input_images")
    return build_dataset("coco_panoptic", split="val", root=folder.parent, folder=folder.name, **layout)


def _cityscapes():
    from conftest import require_dataset

    from seglab.data import build_dataset

    folder = require_dataset("cityscapes_sample")
    return build_dataset("cityscapes", split="all", root=folder.parent, folder=folder.name, task="panoptic")


@pytest.mark.parametrize("name", ["coco_panoptic", "cityscapes"])
def test_ground_truth_as_prediction_is_perfect(name: str) -> None:
    dataset = _coco_panoptic() if name == "coco_panoptic" else _cityscapes()
    targets = [target for _, target in dataset]
    predictions = [PanopticPrediction(semantic=t["semantic"], instance_ids=t["instance_ids"]) for t in targets]
    metric = PanopticQuality(dataset.classes, dataset.thing_classes)
    metric.update(predictions, targets)
    scores = metric.compute()
    # Crowd regions come back as one predicted segment per class, wholly on their crowd: no FP.
    assert [scores[f"{m}{g}"] for m in ("pq", "sq", "rq") for g in ("", "_things", "_stuff")] == [1.0] * 9
    assert scores["n_things"] > 0 and scores["n_stuff"] > 0 and scores["images"] == len(dataset)
    assert int(metric.fp.sum()) == int(metric.fn.sum()) == 0


def test_perturbed_cityscapes_prediction_matches_hand_values_and_the_reference() -> None:
    dataset = _cityscapes()
    gt = dataset[0][1]
    semantic, instances = gt["semantic"].clone(), gt["instance_ids"].clone()
    car = dataset.classes.index("car")
    person = dataset.classes.index("person")
    # The sample's persons 1-4 (1 in columns 119-120, 2-4 in 145-156) and cars 5-7 (7 is the largest).
    assert semantic[instances == 7].unique().tolist() == [car]
    assert semantic[instances == 1].unique().tolist() == [person]
    semantic[instances == 7], instances[instances == 7] = V, 0  # erase car 7: an FN, no FP (void)
    instances[instances == 1] = 2  # merge person 1 into person 2 (42 px + 6 px)
    moved = (instances == 6).nonzero()  # shift car 6 (columns 128-145) left by 2 px, over car 5 and stuff
    semantic[instances == 6], instances[instances == 6] = V, 0
    semantic[moved[:, 0], moved[:, 1] - 2], instances[moved[:, 0], moved[:, 1] - 2] = car, 6
    pred = {"semantic": semantic, "instance_ids": instances}

    metric = PanopticQuality(dataset.classes, dataset.thing_classes)
    metric.update([pred], [gt])
    # person: 2 matches 42 / 48 (IoU .875), 3 and 4 are untouched (IoU 1), 1 is an FN.
    assert (int(metric.tp[person]), int(metric.fp[person]), int(metric.fn[person])) == (3, 0, 1)
    assert float(metric.iou_sum[person]) == pytest.approx(2.875, abs=1e-12)
    assert int(metric.fn[car]) >= 1  # car 7; car 6 is for the reference to judge
    reference = _reference(pred, gt, len(dataset.classes), dataset.thing_classes)
    _assert_matches_reference(metric, reference)
    expected = _reference_pq(reference, dataset.thing_classes)
    assert {k: metric.compute()[k] for k in expected} == pytest.approx(expected, abs=1e-9)


def test_perturbed_coco_panoptic_predictions_match_the_reference() -> None:
    dataset = _coco_panoptic()
    generator = torch.Generator().manual_seed(3)
    stuff = torch.tensor([k for k in range(len(dataset.classes)) if k not in dataset.thing_classes])
    metric = PanopticQuality(dataset.classes, dataset.thing_classes)
    reference = np.zeros((len(dataset.classes), 4))
    for _, gt in dataset:
        semantic, instances = gt["semantic"].clone(), gt["instance_ids"].clone()
        semantic[instances == 1], instances[instances == 1] = V, 0  # erase instance 1
        instances[instances == 3] = 2  # instance 3 renumbered 2: merged with 2 where both have one class
        crowd = torch.isin(semantic, torch.tensor(dataset.thing_classes)) & (instances == 0)
        instances[crowd] = 99  # a prediction on each crowd region
        noisy = torch.rand(semantic.shape, generator=generator) < 0.05
        semantic[noisy] = stuff[torch.randint(0, len(stuff), (int(noisy.sum()),), generator=generator)]  # 5% noise
        instances[noisy] = 0
        pred = {"semantic": semantic, "instance_ids": instances}
        metric.update([pred], [gt])
        reference += _reference(pred, gt, len(dataset.classes), dataset.thing_classes)
    _assert_matches_reference(metric, reference)
    expected = _reference_pq(reference, dataset.thing_classes)
    assert {k: metric.compute()[k] for k in expected} == pytest.approx(expected, abs=1e-9)


# ---------------------------------------------------------------- all_reduce


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _halves() -> list[list[tuple[dict, dict]]]:
    """The same 6 random images in every process, split into 2 halves."""
    generator = torch.Generator().manual_seed(7)
    pairs = [_random_pair(generator) for _ in range(6)]
    return [pairs[:3], pairs[3:]]


def _summed(pairs: list[tuple[dict, dict]]) -> PanopticQuality:
    metric = PanopticQuality([f"c{k}" for k in range(5)], (2, 3, 4))
    metric.update([p for p, _ in pairs], [g for _, g in pairs])
    return metric


def _all_reduce_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=30))
    try:
        metric = _summed(_halves()[rank])
        metric.all_reduce()
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(metric.compute(), sort_keys=True))
        dist.barrier()  # neither rank tears gloo down while the other still uses it
    finally:
        dist.destroy_process_group()


def _rounded(scores: Any) -> Any:
    """Scores with floats rounded to 12 places: the two processes sum the IoUs in another order."""
    if isinstance(scores, dict):
        return {k: _rounded(v) for k, v in scores.items()}
    return round(scores, 12) if isinstance(scores, float) else scores


def test_all_reduce_sums_across_two_processes(tmp_path: Path) -> None:
    single = _summed(_halves()[0] + _halves()[1])
    before = json.dumps(single.compute(), sort_keys=True)
    single.all_reduce()  # no process group here: a no-op
    assert json.dumps(single.compute(), sort_keys=True) == before and single.compute()["images"] == 6
    mp.spawn(_all_reduce_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        reduced = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert _rounded(reduced) == _rounded(json.loads(before)), rank


# ---------------------------------------------------------------- bad input


def test_bad_input_is_reported() -> None:
    metric = PanopticQuality(CLASSES, THINGS)
    good = _maps([[R, R]])
    with pytest.raises(InputError, match=r"image 1.*\[1, 2\].*\[1, 3\]"):
        metric.update([good, good], [good, _maps([[R, R, R]])])
    with pytest.raises(InputError, match=r"target semantic holds class id\(s\) 7"):
        metric.update([good], [_maps([[R, 7]])])
    with pytest.raises(InputError, match=r"prediction semantic holds class id\(s\) 100"):  # between C and void
        metric.update([_maps([[100, V]])], [good])
    with pytest.raises(InputError, match="instance ids must be >= 0"):
        metric.update([good], [_maps([[P, P]], [[-1, 1]])])
    with pytest.raises(InputError, match="2 predictions and 1 targets"):
        metric.update([good, good], [good])
    with pytest.raises(InputError, match="expected an integer tensor"):
        metric.update([{"semantic": torch.zeros(1, 2), "instance_ids": torch.zeros(1, 2)}], [good])
    with pytest.raises(InputError, match="predictions\\[0\\] is a list"):
        metric.update([[1, 2]], [good])
    assert metric.compute()["images"] == 0 and int(metric.tp.sum()) == 0  # nothing was counted
    with pytest.raises(ConfigError, match="thing_classes"):
        PanopticQuality(CLASSES, (2, 4))
    with pytest.raises(ConfigError, match="ignore_index"):
        PanopticQuality(CLASSES, THINGS, ignore_index=1)


def test_empty_image_counts_nothing() -> None:
    empty = {"semantic": torch.zeros(0, 3, dtype=torch.int64), "instance_ids": torch.zeros(0, 3, dtype=torch.int64)}
    scores = _compute((empty, empty))
    assert scores["n"] == 0 and scores["images"] == 1 and not math.isnan(scores["pq"])
