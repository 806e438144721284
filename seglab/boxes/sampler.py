"""Balanced sampling of positive and negative examples (Faster R-CNN sec. 3.1.3, Fast R-CNN sec. 2.3)."""

from __future__ import annotations

import torch
from torch import Tensor


def sample_balanced(labels: Tensor, *, num_samples: int, positive_fraction: float) -> tuple[Tensor, Tensor]:
    """Draw up to ``num_samples`` examples, at most ``positive_fraction`` of them positive.

    Missing positives are made up with negatives (the RPN: 256 anchors, up to half positive; the RoI
    heads: 512 RoIs, 25 % positive). Draws with ``torch.randperm`` from the global RNG, positives
    first, then negatives.

    Args:
        labels: [N] int: >= 1 positive, 0 negative, < 0 ignored.
        num_samples: examples per image.
        positive_fraction: the largest share of positives.

    Returns:
        (positive indices, negative indices), int64.
    """
    positive = torch.nonzero(labels >= 1).flatten()
    negative = torch.nonzero(labels == 0).flatten()
    num_positive = min(positive.numel(), int(num_samples * positive_fraction))
    num_negative = min(negative.numel(), num_samples - num_positive)
    pick_positive = torch.randperm(positive.numel(), device=labels.device)[:num_positive]
    pick_negative = torch.randperm(negative.numel(), device=labels.device)[:num_negative]
    return positive[pick_positive], negative[pick_negative]
