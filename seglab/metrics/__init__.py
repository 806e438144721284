"""Evaluation metrics: confusion-matrix scores for semantic segmentation (mIoU, pixel accuracy)."""

from __future__ import annotations

from seglab.metrics.confusion import ConfusionMatrix, metrics_from_confusion

__all__ = ["ConfusionMatrix", "metrics_from_confusion"]
