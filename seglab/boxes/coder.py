"""Box regression deltas (dx, dy, dw, dh) relative to reference boxes (anchors or proposals).

R-CNN's parameterisation (Girshick et al., arXiv 1311.2524, appendix C; Faster R-CNN eq. 2):
``dx = wx (x - xa) / wa``, ``dy = wy (y - ya) / ha``, ``dw = ww log(w / wa)``, ``dh = wh log(h / ha)``
with centres (x, y) and sizes (w, h) in pixels, no "+1" on widths (torchvision and Detectron2's
convention). Weights (wx, wy, ww, wh) are (1, 1, 1, 1) for the RPN and (10, 10, 5, 5) for the RoI box
head (Detectron's ``BBOX_REG_WEIGHTS``); decoded dw, dh are clamped at log(1000 / 16) so exp()
cannot overflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

DEFAULT_CLAMP = math.log(1000.0 / 16)


def _centre_size(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights, widths, heights


def encode_boxes(boxes: Tensor, reference: Tensor, weights: tuple[float, float, float, float]) -> Tensor:
    """Deltas that move ``reference`` onto ``boxes``.

    Args:
        boxes: [N, 4] target boxes XYXY (e.g. the matched ground truth).
        reference: [N, 4] reference boxes XYXY (anchors or proposals), positive sizes.
        weights: (wx, wy, ww, wh).

    Returns:
        [N, 4] deltas (dx, dy, dw, dh).
    """
    wx, wy, ww, wh = weights
    ref_x, ref_y, ref_w, ref_h = _centre_size(reference)
    x, y, w, h = _centre_size(boxes)
    return torch.stack(
        [wx * (x - ref_x) / ref_w, wy * (y - ref_y) / ref_h, ww * torch.log(w / ref_w), wh * torch.log(h / ref_h)],
        dim=1,
    )


def decode_boxes(
    deltas: Tensor, reference: Tensor, weights: tuple[float, float, float, float], *, clamp: float = DEFAULT_CLAMP
) -> Tensor:
    """Apply deltas to reference boxes (the inverse of ``encode_boxes``).

    Args:
        deltas: [N, 4 k] deltas, k boxes per reference (k = number of classes for class-specific heads).
        reference: [N, 4] reference boxes XYXY.
        weights: (wx, wy, ww, wh).
        clamp: upper bound of dw / ww and dh / wh before exp().

    Returns:
        [N, 4 k] boxes XYXY.
    """
    wx, wy, ww, wh = weights
    ref_x, ref_y, ref_w, ref_h = (v[:, None] for v in _centre_size(reference.to(deltas.dtype)))
    dx, dy = deltas[:, 0::4] / wx, deltas[:, 1::4] / wy
    dw = (deltas[:, 2::4] / ww).clamp(max=clamp)
    dh = (deltas[:, 3::4] / wh).clamp(max=clamp)
    x, y = dx * ref_w + ref_x, dy * ref_h + ref_y
    half_w, half_h = 0.5 * torch.exp(dw) * ref_w, 0.5 * torch.exp(dh) * ref_h
    return torch.stack([x - half_w, y - half_h, x + half_w, y + half_h], dim=2).flatten(1)


@dataclass(frozen=True)
class BoxCoder:
    """The weights and clamp of one regression head, bound to ``encode_boxes`` / ``decode_boxes``."""

    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    clamp: float = DEFAULT_CLAMP

    def encode(self, boxes: Tensor, reference: Tensor) -> Tensor:
        return encode_boxes(boxes, reference, self.weights)

    def decode(self, deltas: Tensor, reference: Tensor) -> Tensor:
        return decode_boxes(deltas, reference, self.weights, clamp=self.clamp)
