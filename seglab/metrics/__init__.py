"""Evaluation metrics: confusion-matrix scores for semantic segmentation (mIoU, pixel accuracy) and
COCO box and mask AP for instance segmentation."""

from __future__ import annotations

from seglab.metrics.coco import CocoEvaluator
from seglab.metrics.confusion import ConfusionMatrix, metrics_from_confusion

__all__ = ["CocoEvaluator", "ConfusionMatrix", "metrics_from_confusion"]
