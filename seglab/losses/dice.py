"""Soft Dice loss (Milletari et al., "V-Net", arXiv 1606.04797, eq. 1) and its sum with cross-entropy.

Per class c, over the labelled pixels of the whole batch, with p the softmax probabilities and g
the one-hot labels:

    D_c = (2 sum(p_c g_c) + smooth) / (sum(p_c) + sum(g_c) + smooth)        (squared=False)
    D_c = (2 sum(p_c g_c) + smooth) / (sum(p_c^2) + sum(g_c^2) + smooth)    (squared=True, V-Net's form)

and the loss is 1 - the (class-weighted) mean of D_c. Dice is insensitive to how many background
pixels there are, the reason V-Net (and many medical-imaging recipes) pair or replace CE with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seglab.errors import InputError
from seglab.losses.cross_entropy import PixelCrossEntropy, check_pixel_inputs

__all__ = ["CrossEntropyDiceLoss", "DiceLoss"]


class DiceLoss(nn.Module):
    """Multi-class soft Dice loss on softmax probabilities.

    Args:
        smooth: added to numerator and denominator (1); keeps an absent class finite.
        squared: square the denominator's terms, as V-Net's eq. 1 does.
        class_weights: optional [C] weights of the per-class Dice terms (default: plain mean).
        ignore_index: pixels with this label are left out of every sum.
    """

    def __init__(
        self,
        *,
        smooth: float = 1.0,
        squared: bool = False,
        class_weights: Sequence[float] | None = None,
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        if smooth < 0:
            raise InputError(f"DiceLoss: smooth is {smooth}; expected smooth >= 0")
        self.smooth = smooth
        self.squared = squared
        self.ignore_index = ignore_index
        weight = None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32)
        self.register_buffer("class_weights", weight)

    def per_class(self, logits: Tensor, targets: Tensor) -> Tensor:
        """The Dice coefficients D_c, [C] float in [0, 1]; inputs as in ``forward``."""
        check_pixel_inputs(
            logits, targets, loss="DiceLoss", ignore_index=self.ignore_index, class_weights=self.class_weights
        )
        num_classes = logits.shape[1]
        valid = (targets != self.ignore_index)[:, None].to(logits.dtype)  # [N, 1, H, W]
        probs = logits.softmax(1) * valid
        labels = torch.where(targets != self.ignore_index, targets, torch.zeros_like(targets))
        one_hot = F.one_hot(labels, num_classes).permute(0, 3, 1, 2).to(logits.dtype) * valid
        dims = (0, 2, 3)
        overlap = (probs * one_hot).sum(dims)
        if self.squared:
            total = probs.square().sum(dims) + one_hot.square().sum(dims)
        else:
            total = probs.sum(dims) + one_hot.sum(dims)
        return (2 * overlap + self.smooth) / (total + self.smooth).clamp_min(1e-12)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Dice loss.

        Args:
            logits: [N, C, H, W] float scores.
            targets: [N, H, W] int64 labels in [0, C) or ignore_index.

        Returns:
            A scalar in [0, 1]; 0 with a gradient path when every pixel is ignored.
        """
        dice = self.per_class(logits, targets)
        if not bool((targets != self.ignore_index).any()):
            return logits.sum() * 0.0
        if self.class_weights is None:
            return 1 - dice.mean()
        weight = self.class_weights.to(dice.dtype)
        return 1 - (weight * dice).sum() / weight.sum()


class CrossEntropyDiceLoss(nn.Module):
    """Cross-entropy plus a weighted soft Dice term: CE + dice_weight * Dice.

    Args:
        dice_weight: weight of the Dice term (1).
        smooth: Dice smoothing (1).
        class_weights: optional [C] weights, used by both terms.
        ignore_index: label of ignored pixels.
    Forward:
        logits: [N, C, H, W]; targets: [N, H, W] int64. Returns a scalar.
    """

    def __init__(
        self,
        *,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        class_weights: Sequence[float] | None = None,
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        self.dice_weight = dice_weight
        self.ce = PixelCrossEntropy(class_weights=class_weights, ignore_index=ignore_index)
        self.dice = DiceLoss(smooth=smooth, class_weights=class_weights, ignore_index=ignore_index)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return self.ce(logits, targets) + self.dice_weight * self.dice(logits, targets)
