"""Binary logistic losses: per-pixel BCE with a validity mask, and DeepMask's joint loss.

DeepMask (Pinheiro et al., "Learning to Segment Object Candidates", arXiv 1506.06204, sec. 3.2,
eq. 1) trains its mask and objectness branches with a sum of binary logistic regression losses
(survey Table 6), over a batch of K patches with y_k in {-1, +1} and mask labels m_k^ij in {-1, +1}:

    L = sum_k [ (1 + y_k) / (2 w h) * sum_ij log(1 + exp(-m_k^ij f_ij(x_k))) + lambda * log(1 + exp(-y_k s(x_k))) ]

The mask term counts only for positive patches and is the mean over the w x h mask; lambda = 1/32.
With labels t in {0, 1} (t = (1 + m) / 2), log(1 + exp(-m f)) is the BCE-with-logits of (f, t),
which is how it is computed here.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from seglab.errors import InputError

__all__ = ["DeepMaskLoss", "binary_cross_entropy"]


def _check_same_shape(name: str, logits: Tensor, other: Tensor, other_name: str) -> None:
    """InputError unless ``other`` is a tensor shaped like ``logits`` (shared by the binary and focal losses)."""
    if not isinstance(logits, Tensor) or not isinstance(other, Tensor) or other.shape != logits.shape:
        got = list(other.shape) if isinstance(other, Tensor) else type(other).__name__
        want = list(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise InputError(f"{name}: {other_name} has shape {got}; expected the shape of the logits {want}")


def binary_cross_entropy(
    logits: Tensor,
    targets: Tensor,
    *,
    valid: Tensor | None = None,
    pos_weight: float | None = None,
    reduction: Literal["mean", "sum"] = "mean",
) -> Tensor:
    """Binary cross-entropy with logits, over the valid elements.

    Args:
        logits: [...] float scores (e.g. [N, 1, H, W] boundary or mask logits).
        targets: [...] float in [0, 1], same shape.
        valid: optional [...] bool, same shape; False elements contribute nothing (an ignore mask).
        pos_weight: optional weight of the positive term (e.g. #negatives / #positives).
        reduction: "mean" over the valid elements or "sum".

    Returns:
        A scalar; 0 with a gradient path when nothing is valid.
    """
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise InputError(f"binary_cross_entropy: logits must be a float tensor, got {type(logits).__name__}")
    _check_same_shape("binary_cross_entropy", logits, targets, "targets")
    if valid is not None:
        _check_same_shape("binary_cross_entropy", logits, valid, "valid")
    weight = None if valid is None else valid.to(logits.dtype)
    pos = None if pos_weight is None else logits.new_tensor(pos_weight)
    total = F.binary_cross_entropy_with_logits(
        logits, targets.to(logits.dtype), weight=weight, pos_weight=pos, reduction="sum"
    )
    if reduction == "sum":
        return total
    count = logits.numel() if valid is None else int(valid.sum())
    return total / count if count > 0 else logits.sum() * 0.0


class DeepMaskLoss(nn.Module):
    """DeepMask's joint mask + objectness loss (eq. 1), returned as two named terms.

    Args:
        score_weight: lambda, the weight of the objectness term (1/32, sec. 3.2).
        reduction: "sum" over the K patches as eq. 1 writes it, or "mean" (divide both terms by K).
    Forward:
        mask_logits: [K, h, w] (or [K, 1, h, w]) float mask scores f(x_k).
        mask_targets: same shape, float in {0, 1} (1 = object pixel).
        score_logits: [K] float objectness scores s(x_k).
        score_labels: [K] in {0, 1} (1 = a centred, fully contained object).
        Returns {"loss_mask", "loss_score"} whose sum is eq. 1.
    """

    def __init__(self, *, score_weight: float = 1.0 / 32, reduction: Literal["mean", "sum"] = "sum") -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise InputError(f"DeepMaskLoss: reduction is {reduction!r}; expected 'mean' or 'sum'")
        self.score_weight = score_weight
        self.reduction = reduction

    def forward(
        self, mask_logits: Tensor, mask_targets: Tensor, score_logits: Tensor, score_labels: Tensor
    ) -> dict[str, Tensor]:
        if not isinstance(score_logits, Tensor) or score_logits.dim() != 1:
            got = list(score_logits.shape) if isinstance(score_logits, Tensor) else type(score_logits).__name__
            raise InputError(f"DeepMaskLoss: score_logits has shape {got}; expected [K]")
        _check_same_shape("DeepMaskLoss", score_logits, score_labels, "score_labels")
        if not isinstance(mask_logits, Tensor) or mask_logits.dim() not in (3, 4) or (
            mask_logits.shape[0] != score_logits.shape[0]
        ):
            got = list(mask_logits.shape) if isinstance(mask_logits, Tensor) else type(mask_logits).__name__
            raise InputError(
                f"DeepMaskLoss: mask_logits has shape {got}; expected [K, h, w] with K = {score_logits.shape[0]}"
            )
        _check_same_shape("DeepMaskLoss", mask_logits, mask_targets, "mask_targets")
        positive = score_labels.to(mask_logits.dtype)  # (1 + y_k) / 2
        targets = mask_targets.to(mask_logits.dtype)
        per_pixel = F.binary_cross_entropy_with_logits(mask_logits, targets, reduction="none")
        mask_term = (positive * per_pixel.flatten(1).mean(1)).sum()
        score_term = self.score_weight * F.binary_cross_entropy_with_logits(score_logits, positive, reduction="sum")
        if self.reduction == "mean":
            count = max(score_logits.shape[0], 1)
            mask_term, score_term = mask_term / count, score_term / count
        return {"loss_mask": mask_term, "loss_score": score_term}
