"""Evaluation metrics: confusion-matrix scores for semantic segmentation (mIoU, pixel accuracy),
COCO box and mask AP for instance segmentation, and panoptic quality (PQ, SQ, RQ)."""

from __future__ import annotations

from seglab.metrics.coco import CocoEvaluator
from seglab.metrics.confusion import ConfusionMatrix, metrics_from_confusion
from seglab.metrics.panoptic import PanopticQuality

__all__ = ["CocoEvaluator", "ConfusionMatrix", "PanopticQuality", "metrics_from_confusion"]
