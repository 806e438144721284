"""Multi-task detection losses: RPN, Fast R-CNN box head and Mask R-CNN mask head.

- RPN (Ren et al., "Faster R-CNN", arXiv 1506.01497, eq. 1): binary log loss on the objectness of
  the sampled anchors plus a box regression on the positive ones. The paper normalises by
  N_cls = 256 and N_reg ~ 2400 with lambda = 10; dividing both by the number of sampled anchors
  with lambda = 1 is about the same weighting and what common implementations do.
- Fast R-CNN head (Girshick, arXiv 1504.08083, eq. 1-3): L = L_cls(p, u) + lambda [u >= 1] L_loc(t^u, v),
  log loss over the K + 1 classes and smooth-L1 on the 4 deltas of the true class, averaged over
  the R sampled RoIs.
- Mask R-CNN (He et al., arXiv 1703.06870, sec. 3): L = L_cls + L_box + L_mask, where L_mask is
  the average per-pixel binary cross-entropy of the m x m mask of the ground-truth class only, on
  positive RoIs (survey Table 6: "log loss + L1 + average binary cross-entropy").
- TensorMask (Chen et al., arXiv 1903.12174, sec. 4, training): per-pixel BCE of each positive window's
  S x S mask against the ground truth cropped to the window, positives weighted 1.5, each window's
  sum weighted 2 / S^2 (detectron2 TensorMask POSITIVE_WEIGHT, MASK_LOSS_WEIGHT; the model divides
  by the number of foreground windows).
- MultiPath's integral loss (Zagoruyko et al., arXiv 1604.02135, sec. 3.3): the mean over six class heads of
  Fast R-CNN's log loss, head u trained with positives at IoU >= u (0.50 .. 0.75), plus the box regression.

Conventions: labels are int64 in [0, K] with 0 = background; per-class outputs are indexed by the
label (slot 0 unused), or class-agnostic with a single slot.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from seglab.errors import InputError

__all__ = ["fast_rcnn_losses", "mask_rcnn_losses", "mask_rcnn_mask_loss", "rpn_losses", "smooth_l1",
           "tensormask_mask_loss"]


def smooth_l1(inputs: Tensor, targets: Tensor, *, beta: float = 1.0) -> Tensor:
    """Elementwise smooth-L1 (Fast R-CNN eq. 3 for beta = 1; beta = 0 is the plain L1).

    0.5 x^2 / beta where |x| < beta, else |x| - 0.5 beta, with x = inputs - targets.

    Args:
        inputs, targets: [...] float, same shape.
        beta: width of the quadratic zone (>= 0).

    Returns:
        [...] float, the same shape.
    """
    if beta < 0:
        raise InputError(f"smooth_l1: beta is {beta}; expected beta >= 0")
    if inputs.shape != targets.shape:
        raise InputError(f"smooth_l1: targets has shape {list(targets.shape)}; expected {list(inputs.shape)}")
    diff = (inputs - targets).abs()
    if beta == 0:
        return diff
    # Clamp before squaring so the unused branch has no large values in its gradient.
    return torch.where(diff < beta, 0.5 * diff.clamp_max(beta).square() / beta, diff - 0.5 * beta)


def _check_labels(name: str, labels: Tensor, rows: int) -> None:
    if not isinstance(labels, Tensor) or labels.shape != (rows,) or labels.dtype != torch.int64:
        got = f"{list(labels.shape)} {labels.dtype}" if isinstance(labels, Tensor) else type(labels).__name__
        raise InputError(f"{name}: labels has {got}; expected [{rows}] int64")


def _select_class_slot(name: str, arg: str, outputs: Tensor, labels: Tensor, width: int) -> Tensor:
    """Rows of ``outputs`` [R, S * width, ...] -> [R, width, ...] at slot labels (S = K + 1) or slot 0 (S = 1)."""
    slots = outputs.shape[1] // width
    top = int(labels.max()) if labels.numel() else 0
    if outputs.shape[1] % width or (slots != 1 and top >= slots):
        raise InputError(
            f"{name}: {arg} has {outputs.shape[1]} channels; expected {width} (class-agnostic) or "
            f"{width} x (K + 1) with K + 1 > {top}, the largest label"
        )
    per_slot = outputs.unflatten(1, (slots, width))
    index = labels if slots > 1 else torch.zeros_like(labels)
    return per_slot[torch.arange(len(labels), device=labels.device), index]


def fast_rcnn_losses(
    class_logits: Tensor, box_deltas: Tensor, labels: Tensor, box_targets: Tensor, *, beta: float = 1.0,
    box_weight: float = 1.0,
) -> dict[str, Tensor]:
    """Classification log loss and box regression of the R sampled RoIs.

    Args:
        class_logits: [R, K + 1] scores (column 0 = background).
        box_deltas: [R, 4] (class-agnostic) or [R, 4 (K + 1)] predicted (dx, dy, dw, dh).
        labels: [R] int64 in [0, K], 0 = background.
        box_targets: [R, 4] encoded regression targets (used on foreground RoIs only).
        beta: smooth-L1 beta (1 in Fast R-CNN; 0 gives the L1 the survey lists for Mask R-CNN).
        box_weight: lambda of eq. 1 (1).

    Returns:
        {"loss_cls": mean log loss, "loss_box_reg": summed smooth-L1 over foreground RoIs / R};
        both 0 with a gradient path when R = 0.
    """
    name = "fast_rcnn_losses"
    if class_logits.dim() != 2:
        raise InputError(f"{name}: class_logits has shape {list(class_logits.shape)}; expected [R, K + 1]")
    rows = class_logits.shape[0]
    _check_labels(name, labels, rows)
    if box_deltas.dim() != 2 or box_deltas.shape[0] != rows:
        raise InputError(f"{name}: box_deltas has shape {list(box_deltas.shape)}; expected [{rows}, 4 or 4 (K + 1)]")
    if box_targets.shape != (rows, 4):
        raise InputError(f"{name}: box_targets has shape {list(box_targets.shape)}; expected [{rows}, 4]")
    if rows and (int(labels.min()) < 0 or int(labels.max()) >= class_logits.shape[1]):
        raise InputError(
            f"{name}: labels hold values in [{int(labels.min())}, {int(labels.max())}] but class_logits has "
            f"{class_logits.shape[1]} columns (K + 1, 0 = background)"
        )
    if rows == 0:
        zero = class_logits.sum() * 0.0 + box_deltas.sum() * 0.0
        return {"loss_cls": zero, "loss_box_reg": zero.clone()}
    loss_cls = F.cross_entropy(class_logits, labels)
    deltas = _select_class_slot(name, "box_deltas", box_deltas, labels, 4)  # [R, 4]
    foreground = (labels > 0).to(deltas.dtype)[:, None]
    loss_box = (smooth_l1(deltas, box_targets.to(deltas.dtype), beta=beta) * foreground).sum() / rows
    return {"loss_cls": loss_cls, "loss_box_reg": box_weight * loss_box}


def mask_rcnn_mask_loss(mask_logits: Tensor, labels: Tensor, mask_targets: Tensor) -> Tensor:
    """Average per-pixel binary cross-entropy of the ground-truth class's mask on positive RoIs.

    Args:
        mask_logits: [R, K + 1, M, M] (slot 0 unused) or [R, 1, M, M] (class-agnostic) mask scores.
        labels: [R] int64 in [0, K]; RoIs labelled 0 (background) are left out.
        mask_targets: [R, M, M] float in {0, 1}, the ground-truth mask cropped to each RoI.

    Returns:
        A scalar, the mean over the M x M pixels of all positive RoIs; 0 with a gradient path when none.
    """
    name = "mask_rcnn_mask_loss"
    if mask_logits.dim() != 4:
        raise InputError(f"{name}: mask_logits has shape {list(mask_logits.shape)}; expected [R, K + 1, M, M]")
    rows = mask_logits.shape[0]
    _check_labels(name, labels, rows)
    if mask_targets.shape != (rows, *mask_logits.shape[2:]):
        raise InputError(
            f"{name}: mask_targets has shape {list(mask_targets.shape)}; expected "
            f"[{rows}, {mask_logits.shape[2]}, {mask_logits.shape[3]}]"
        )
    positive = labels > 0
    if not bool(positive.any()):
        return mask_logits.sum() * 0.0
    masks = _select_class_slot(name, "mask_logits", mask_logits, labels, 1)[:, 0]  # [R, M, M]
    return F.binary_cross_entropy_with_logits(masks[positive], mask_targets[positive].to(masks.dtype))


def mask_rcnn_losses(
    class_logits: Tensor, box_deltas: Tensor, mask_logits: Tensor, labels: Tensor, box_targets: Tensor,
    mask_targets: Tensor, *, beta: float = 1.0,
) -> dict[str, Tensor]:
    """Mask R-CNN's per-RoI multi-task loss L = L_cls + L_box + L_mask (sec. 3), as named terms.

    Args: as in ``fast_rcnn_losses`` and ``mask_rcnn_mask_loss`` (same R RoIs and labels).

    Returns:
        {"loss_cls", "loss_box_reg", "loss_mask"}, summed with unit weights by the engine.
    """
    terms = fast_rcnn_losses(class_logits, box_deltas, labels, box_targets, beta=beta)
    terms["loss_mask"] = mask_rcnn_mask_loss(mask_logits, labels, mask_targets)
    return terms


def rpn_losses(
    objectness_logits: Tensor, anchor_labels: Tensor, box_deltas: Tensor, box_targets: Tensor, *,
    beta: float = 1.0 / 9, box_weight: float = 1.0,
) -> dict[str, Tensor]:
    """RPN objectness and box losses over the sampled anchors (Faster R-CNN eq. 1).

    Args:
        objectness_logits: [A] scores of all anchors of the batch.
        anchor_labels: [A] int64: 1 positive, 0 negative, -1 not sampled (ignored).
        box_deltas: [A, 4] predicted deltas; box_targets: [A, 4] encoded targets (positives only matter).
        beta: smooth-L1 beta (1/9 in the released Faster R-CNN; 1 in the paper's eq.; 0 for L1).
        box_weight: lambda (1 with this normalisation).

    Returns:
        {"loss_rpn_objectness", "loss_rpn_box"}: both summed and divided by the number of sampled
        anchors; 0 with a gradient path when no anchor is sampled.
    """
    name = "rpn_losses"
    if objectness_logits.dim() != 1:
        raise InputError(f"{name}: objectness_logits has shape {list(objectness_logits.shape)}; expected [A]")
    count = objectness_logits.shape[0]
    if not isinstance(anchor_labels, Tensor) or anchor_labels.shape != (count,):
        got = list(anchor_labels.shape) if isinstance(anchor_labels, Tensor) else type(anchor_labels).__name__
        raise InputError(f"{name}: anchor_labels has shape {got}; expected [{count}] in {{1, 0, -1}}")
    for arg, value in (("box_deltas", box_deltas), ("box_targets", box_targets)):
        if value.shape != (count, 4):
            raise InputError(f"{name}: {arg} has shape {list(value.shape)}; expected [{count}, 4]")
    sampled = anchor_labels >= 0
    num_sampled = int(sampled.sum())
    if num_sampled == 0:
        zero = objectness_logits.sum() * 0.0 + box_deltas.sum() * 0.0
        return {"loss_rpn_objectness": zero, "loss_rpn_box": zero.clone()}
    objectness = F.binary_cross_entropy_with_logits(
        objectness_logits[sampled], anchor_labels[sampled].to(objectness_logits.dtype), reduction="sum"
    )
    positive = (anchor_labels == 1).to(box_deltas.dtype)[:, None]
    box = (smooth_l1(box_deltas, box_targets.to(box_deltas.dtype), beta=beta) * positive).sum()
    return {"loss_rpn_objectness": objectness / num_sampled, "loss_rpn_box": box_weight * box / num_sampled}


def tensormask_mask_loss(mask_logits: Tensor, mask_targets: Tensor, *, pos_weight: float = 1.5,
                         loss_weight: float = 2.0) -> Tensor:
    """Summed per-pixel BCE of P windows' S x S masks, weighted ``loss_weight / S^2`` per pixel.

    Args:
        mask_logits: [P, S, S] float, the natural-form masks of the positive windows of one size.
        mask_targets: [P, S, S] float in {0, 1}, their ground truth cropped to the windows.
        pos_weight: weight of the foreground pixels (1.5, TensorMask POSITIVE_WEIGHT).
        loss_weight: the weight of one window's mean-like sum (2, MASK_LOSS_WEIGHT).

    Returns:
        A scalar: sum over windows of ``loss_weight`` x (weighted BCE summed over the S^2 pixels) / S^2;
        0 with a gradient path when P = 0.
    """
    name = "tensormask_mask_loss"
    if mask_logits.dim() != 3 or mask_logits.shape[1] != mask_logits.shape[2]:
        raise InputError(f"{name}: mask_logits has shape {list(mask_logits.shape)}; expected [P, S, S]")
    if mask_targets.shape != mask_logits.shape:
        raise InputError(f"{name}: mask_targets has shape {list(mask_targets.shape)}; expected "
                         f"{list(mask_logits.shape)}")
    if mask_logits.shape[0] == 0:
        return mask_logits.sum() * 0.0
    side = mask_logits.shape[-1]
    bce = F.binary_cross_entropy_with_logits(
        mask_logits, mask_targets.to(mask_logits.dtype), reduction="sum",
        pos_weight=torch.tensor(pos_weight, dtype=mask_logits.dtype, device=mask_logits.device),
    )
    return bce * (loss_weight / side**2)


def integral_losses(class_logits: Tensor, deltas: Tensor, labels: Tensor, box_targets: Tensor) -> dict[str, Tensor]:
    """The integral loss (sec. 3.3): the mean over heads of Fast R-CNN's log loss, plus box regression.

    Args:
        class_logits: [T, R, K + 1]; deltas: [R, 4 (K + 1)]; labels: [T, R] int64 from ``integral_labels``;
        box_targets: [R, 4] encoded deltas to each RoI's matched ground truth.

    Returns:
        {"loss_cls": mean of the T heads' log losses, "loss_box_reg": smooth-L1 on the positives of the
        lowest threshold (head 0, IoU >= 0.5, as Fast R-CNN)}; zero with a gradient path when R = 0.
    """
    terms = [fast_rcnn_losses(logits, deltas, head_labels, box_targets) for logits, head_labels in
             zip(class_logits, labels)]
    return {"loss_cls": torch.stack([t["loss_cls"] for t in terms]).mean(),
            "loss_box_reg": terms[0]["loss_box_reg"]}
