"""Class-agnostic proposal recall (AR@10/100/1000) of CocoEvaluator, against a hand-computed case."""

from __future__ import annotations

import pytest
import torch

from seglab.errors import ConfigError
from seglab.metrics.coco import CocoEvaluator
from seglab.structures import InstancePrediction, InstanceTarget

SIZE = (40, 40)


def mask(x1: int, y1: int, x2: int, y2: int) -> torch.Tensor:
    m = torch.zeros(SIZE)
    m[y1:y2, x1:x2] = 1
    return m


def case(filler: int) -> tuple[InstancePrediction, InstanceTarget]:
    """GT 1 (class 1) at [0, 0, 10, 10], GT 2 (class 2) at [20, 0, 30, 10]. Proposals (all label 1): an
    exact copy of GT 1 (score 1.0), ``filler`` far-away boxes (scores 0.9 ...), then an 8 x 8 box inside
    GT 2: IoU 64 / 100 = 0.64, a hit at the thresholds 0.50, 0.55, 0.60 of .50:.05:.95, 3 of 10."""
    gt_masks = torch.stack([mask(0, 0, 10, 10), mask(20, 0, 30, 10)]).to(torch.uint8)
    target = InstanceTarget(boxes_xyxy=torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10]]), labels=torch.tensor([1, 2]),
                            masks=gt_masks)
    masks = [mask(0, 0, 10, 10)] + [mask(34, 30 + i % 8, 36, 32 + i % 8) for i in range(filler)] + [mask(20, 0, 28, 8)]
    boxes = [[0.0, 0, 10, 10]] + [[34.0, 30 + i % 8, 36, 32 + i % 8] for i in range(filler)] + [[20.0, 0, 28, 8]]
    scores = [1.0] + [0.9 - 0.01 * i for i in range(filler)] + [0.1]
    prediction = InstancePrediction(masks=torch.stack(masks), boxes_xyxy=torch.tensor(boxes),
                                    labels=torch.ones(len(masks), dtype=torch.int64), scores=torch.tensor(scores))
    return prediction, target


def evaluate(filler: int, **kwargs: object) -> dict:
    evaluator = CocoEvaluator(classes=["background", "a", "b"], **kwargs)
    prediction, target = case(filler)
    evaluator.update([prediction], [target])
    return evaluator.compute()


def test_class_agnostic_recall_matches_the_hand_computation() -> None:
    # Recall at each threshold t: (1 + [t <= 0.64]) / 2 over the two objects; mean over 10 thresholds
    # = (10 + 3) / 20 = 0.65 once the 0.64 proposal is within the budget.
    metrics = evaluate(0, class_agnostic=True, max_dets=(10, 100, 1000))
    for iou_type in ("bbox", "segm"):
        assert metrics[f"{iou_type}_ar10"] == pytest.approx(0.65)
        assert metrics[f"{iou_type}_ar100"] == pytest.approx(0.65)
        assert metrics[f"{iou_type}_ar1000"] == pytest.approx(0.65)
    assert metrics["per_class"] == {"bbox": {}, "segm": {}}


def test_the_budget_counts_proposals_by_rank() -> None:
    # 12 fillers push the 0.64 proposal to rank 14: outside the top 10, inside the top 100.
    metrics = evaluate(12, class_agnostic=True, max_dets=(10, 100, 1000))
    assert metrics["segm_ar10"] == pytest.approx(0.5) and metrics["segm_ar100"] == pytest.approx(0.65)
    assert metrics["bbox_ar10"] == pytest.approx(0.5) and metrics["bbox_ar1000"] == pytest.approx(0.65)


def test_with_categories_a_label_1_proposal_cannot_recall_a_class_2_object() -> None:
    # Per category: class 1 recall 1, class 2 recall 0 (its only match is labelled 1); mean 0.5.
    metrics = evaluate(0, max_dets=(10, 100, 1000))
    assert metrics["segm_ar100"] == pytest.approx(0.5)
    assert "segm_ar100" in evaluate(0) and "segm_ar10" not in evaluate(0)  # the int form keeps its keys


def test_bad_max_dets_is_a_config_error() -> None:
    for bad in ((100, 10, 1000), (10, 100), (0, 10, 100), "100"):
        with pytest.raises(ConfigError, match="max_dets"):
            CocoEvaluator(classes=["background", "a"], max_dets=bad)
