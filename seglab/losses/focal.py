"""Focal loss (Lin et al., "Focal Loss for Dense Object Detection", arXiv 1708.02002, eq. 5).

FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t): cross-entropy scaled down on well-classified
examples, so the many easy pixels (or anchors) stop dominating the gradient. TensorMask uses it
for class imbalance (survey Table 6). ``FocalLoss`` is the softmax form over pixels, a drop-in for
PixelCrossEntropy (gamma = 0 gives it back exactly); ``sigmoid_focal_loss`` is the paper's
per-class binary form; ``sigmoid_focal_loss_star`` is FL*, the variant of the paper's appendix A
that TensorMask trains with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seglab.errors import InputError
from seglab.losses.binary import _check_same_shape
from seglab.losses.cross_entropy import check_pixel_inputs

__all__ = ["FocalLoss", "sigmoid_focal_loss", "sigmoid_focal_loss_star"]


class FocalLoss(nn.Module):
    """Softmax focal loss over labelled pixels.

    Args:
        gamma: focusing parameter (2 in the paper; 0 gives cross-entropy).
        class_weights: optional [C] weights, the paper's alpha_t per class; the mean is then
            sum(w_y * fl) / sum(w_y), as PixelCrossEntropy weights its mean.
        ignore_index: target value that contributes no loss.
        reduction: "mean" over labelled pixels or "sum".
    """

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        class_weights: Sequence[float] | None = None,
        ignore_index: int = 255,
        reduction: Literal["mean", "sum"] = "mean",
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise InputError(f"FocalLoss: gamma is {gamma}; expected gamma >= 0")
        if reduction not in ("mean", "sum"):
            raise InputError(f"FocalLoss: reduction is {reduction!r}; expected 'mean' or 'sum'")
        self.gamma = gamma
        self.ignore_index = ignore_index
        self.reduction = reduction
        weight = None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32)
        self.register_buffer("class_weights", weight)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Focal loss.

        Args:
            logits: [N, C, H, W] float scores.
            targets: [N, H, W] int64 labels in [0, C) or ignore_index.

        Returns:
            A scalar; 0 with a gradient path when every pixel is ignored.
        """
        check_pixel_inputs(
            logits, targets, loss="FocalLoss", ignore_index=self.ignore_index, class_weights=self.class_weights
        )
        valid = targets != self.ignore_index
        if not bool(valid.any()):
            return logits.sum() * 0.0
        labels = torch.where(valid, targets, torch.zeros_like(targets))
        log_p = logits.log_softmax(1).gather(1, labels[:, None])[:, 0]  # [N, H, W] log p_t
        # (1 - p_t)^gamma; gamma = 0 skips it, so that FocalLoss is then exactly cross-entropy. The clamp
        # keeps the gradient of a fractional power finite where p_t rounds to 1.
        modulator = (1 - log_p.exp()).clamp_min(1e-12).pow(self.gamma) if self.gamma > 0 else torch.ones_like(log_p)
        weight = valid.to(logits.dtype)
        if self.class_weights is not None:
            weight = weight * self.class_weights.to(logits.dtype)[labels]
        total = -(weight * modulator * log_p).sum()
        return total if self.reduction == "sum" else total / weight.sum()


def sigmoid_focal_loss(
    logits: Tensor, targets: Tensor, *, alpha: float | None = 0.25, gamma: float = 2.0,
    reduction: Literal["mean", "sum", "none"] = "sum",
) -> Tensor:
    """Binary focal loss per element (RetinaNet, eq. 5 with alpha_t of sec. 3.1).

    Args:
        logits: [...] float scores, one per (anchor, class) or pixel.
        targets: [...] float in {0, 1}, same shape as logits.
        alpha: weight of the positives (0.25 in the paper); 1 - alpha on negatives; None: no weighting.
        gamma: focusing parameter (2).
        reduction: "sum" (RetinaNet then divides by the number of positive anchors), "mean" or "none".

    Returns:
        A scalar, or a tensor shaped like logits for "none".
    """
    _check_same_shape("sigmoid_focal_loss", logits, targets, "targets")
    targets = targets.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = logits.sigmoid()
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t).pow(gamma) if gamma > 0 else ce
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def sigmoid_focal_loss_star(
    logits: Tensor, targets: Tensor, *, alpha: float | None = 0.3, gamma: float = 3.0,
    reduction: Literal["mean", "sum", "none"] = "sum",
) -> Tensor:
    """FL*, the focal loss variant of RetinaNet's appendix A, per element.

    With x_t = x (2 y - 1) (the logit signed by the label), p*_t = sigmoid(gamma x_t) and
    FL* = -log(p*_t) / gamma, weighted by alpha_t (appendix A with beta = 0, as fvcore's
    ``sigmoid_focal_loss_star`` that TensorMask calls). TensorMask uses gamma = 3, alpha = 0.3
    (detectron2 ``projects/TensorMask`` config FOCAL_LOSS_GAMMA, FOCAL_LOSS_ALPHA); gamma = 1 without
    alpha is the binary cross-entropy.

    Args:
        logits: [...] float scores, one per (anchor, class).
        targets: [...] float in {0, 1}, same shape as logits.
        alpha: weight of the positives (1 - alpha on negatives); None: no weighting.
        gamma: > 0; larger values make the loss of well-classified examples fall off faster.
        reduction: "sum" (TensorMask divides by the number of foreground anchors), "mean" or "none".

    Returns:
        A scalar, or a tensor shaped like logits for "none".
    """
    _check_same_shape("sigmoid_focal_loss_star", logits, targets, "targets")
    if gamma <= 0:
        raise InputError(f"sigmoid_focal_loss_star: gamma is {gamma}; expected gamma > 0")
    targets = targets.to(logits.dtype)
    loss = -F.logsigmoid(gamma * logits * (2 * targets - 1)) / gamma
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()
