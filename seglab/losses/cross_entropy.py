"""Per-pixel multinomial logistic loss (FCN sec. 3, U-Net sec. 3) with an ignore index and class weights."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PixelCrossEntropy(nn.Module):
    """Cross-entropy over pixels, averaged over the pixels that are not ignored.

    Args:
        ignore_index: target value that contributes no loss (255: void / unlabelled).
        class_weights: optional [C] weights (e.g. SegNet's median-frequency balancing); the mean is
            then weighted, as in torch.nn.functional.cross_entropy.
    """

    def __init__(self, *, ignore_index: int = 255, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        weight = None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32)
        self.register_buffer("class_weights", weight)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Mean loss.

        Args:
            logits: [N, C, H, W] float scores.
            targets: [N, H, W] int64 labels in [0, C) or ignore_index.

        Returns:
            A scalar; exactly 0 (with a gradient path) when every pixel is ignored, instead of NaN.
        """
        valid = targets != self.ignore_index
        if not bool(valid.any()):
            return logits.sum() * 0.0
        weight = None if self.class_weights is None else self.class_weights.to(logits.dtype)
        return F.cross_entropy(logits, targets, weight=weight, ignore_index=self.ignore_index)
