"""Per-pixel multinomial logistic loss (FCN sec. 3, U-Net sec. 3) with an ignore index and class weights.

Two reductions: the mean over labelled pixels (the common choice) and the plain sum. The sum is
the loss as FCN defines it, a sum over the spatial positions of the last layer (Long et al., arXiv
1411.4038, sec. 3; the released Caffe solvers train it unnormalised), and DeepLab's "sum of
cross-entropy terms" over the output map (Chen et al., arXiv 1412.7062; survey Table 2). The sum equals the
mean times the number of labelled pixels (times their mean weight, when class-weighted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seglab.errors import InputError

__all__ = ["PixelCrossEntropy", "check_pixel_inputs"]

Reduction = Literal["mean", "sum"]


def check_pixel_inputs(
    logits: Tensor, targets: Tensor, *, loss: str, ignore_index: int = 255, class_weights: Tensor | None = None
) -> None:
    """Raise InputError unless logits are [N, C, H, W] and targets [N, H, W] int64 labels in [0, C) or ignored.

    Args:
        logits: [N, C, H, W] float scores.
        targets: [N, H, W] int64.
        loss: the caller's name, used in the message.
        ignore_index: label that is exempt from the range check.
        class_weights: optional [C] weights whose length is checked against C.
    """
    if not isinstance(logits, Tensor) or logits.dim() != 4 or not logits.is_floating_point():
        got = f"shape {list(logits.shape)} ({logits.dtype})" if isinstance(logits, Tensor) else type(logits).__name__
        raise InputError(f"{loss}: logits has {got}; expected [N, C, H, W] float scores")
    n, c, h, w = logits.shape
    if not isinstance(targets, Tensor) or targets.shape != (n, h, w):
        got = list(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise InputError(f"{loss}: targets has shape {got}; expected [N, H, W] = [{n}, {h}, {w}] to match logits")
    if targets.dtype != torch.int64:
        raise InputError(f"{loss}: targets has dtype {targets.dtype}; expected torch.int64 class indices")
    if class_weights is not None and class_weights.numel() != c:
        raise InputError(f"{loss}: class_weights has {class_weights.numel()} entries but logits has {c} classes")
    labelled = targets[targets != ignore_index]
    if labelled.numel() and (int(labelled.min()) < 0 or int(labelled.max()) >= c):
        raise InputError(
            f"{loss}: targets hold labels in [{int(labelled.min())}, {int(labelled.max())}] but logits has {c} "
            f"classes; use {ignore_index} for ignored pixels"
        )


class PixelCrossEntropy(nn.Module):
    """Cross-entropy over pixels, averaged over (or summed over) the pixels that are not ignored.

    Args:
        ignore_index: target value that contributes no loss (255: void / unlabelled).
        class_weights: optional [C] weights (e.g. SegNet's median-frequency balancing); the mean is
            then weighted, sum(w_y * ce) / sum(w_y), as in torch.nn.functional.cross_entropy.
        reduction: "mean" over labelled pixels, or "sum" (FCN's and DeepLab's unnormalised loss).
    """

    def __init__(
        self, *, ignore_index: int = 255, class_weights: Sequence[float] | None = None, reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise InputError(f"PixelCrossEntropy: reduction is {reduction!r}; expected 'mean' or 'sum'")
        self.ignore_index = ignore_index
        self.reduction = reduction
        weight = None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32)
        self.register_buffer("class_weights", weight)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss over the labelled pixels.

        Args:
            logits: [N, C, H, W] float scores.
            targets: [N, H, W] int64 labels in [0, C) or ignore_index.

        Returns:
            A scalar; exactly 0 (with a gradient path) when every pixel is ignored, instead of NaN.
        """
        check_pixel_inputs(
            logits, targets, loss="PixelCrossEntropy", ignore_index=self.ignore_index, class_weights=self.class_weights
        )
        valid = targets != self.ignore_index
        if not bool(valid.any()):
            return logits.sum() * 0.0
        weight = None if self.class_weights is None else self.class_weights.to(logits.dtype)
        return F.cross_entropy(logits, targets, weight=weight, ignore_index=self.ignore_index, reduction=self.reduction)

