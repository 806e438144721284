"""Gated-SCNN's boundary and dual-task losses (Takikawa et al., arXiv 1907.05740, sec. 3.4).

The shape stream's boundary logits are supervised with a class-balanced binary cross-entropy on
boundaries derived from the label map; the dual-task regulariser asks the boundary implied by the
predicted segmentation (the spatial gradient magnitude of its (Gumbel-)softmax) to match the one
implied by the labels (eq. 4), and the segmentation to be right where the shape stream sees a
boundary (eq. 5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Sobel derivative along x (columns); its transpose is the derivative along y.
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def spatial_gradient_magnitude(maps: Tensor) -> Tensor:
    """Per-channel Sobel gradient magnitude, scaled so that a unit step gives 1.

    Args:
        maps: [N, C, H, W] float (e.g. class probabilities, or a grayscale image in [0, 1]).

    Returns:
        [N, C, H, W] float >= 0; borders are replicated, so the image edge is no boundary. The
        square root is taken of a value clamped at 1e-12, so flat regions give 1e-6 and a finite
        gradient.
    """
    channels = maps.shape[1]
    kernel_x = (_SOBEL_X / 4).to(maps.dtype).to(maps.device)
    weight = torch.stack([kernel_x, kernel_x.T])[:, None].repeat(channels, 1, 1, 1)  # [2C, 1, 3, 3]
    grads = F.conv2d(F.pad(maps, (1, 1, 1, 1), mode="replicate"), weight, groups=channels)
    grads = grads.unflatten(1, (channels, 2))  # [N, C, (dx, dy), H, W]
    return grads.square().sum(2).clamp_min(1e-12).sqrt()


def boundary_targets(labels: Tensor, *, ignore_index: int = 255) -> tuple[Tensor, Tensor]:
    """Boundary pixels of a label map: pixels whose 3x3 neighbourhood holds another (non-ignored) label.

    Args:
        labels: [N, H, W] int64 in [0, C) or ignore_index.

    Returns:
        (targets, valid): [N, 1, H, W] float in {0, 1}, and [N, 1, H, W] bool, False on ignored pixels.
        Ignored neighbours and pixels beyond the image border do not make a boundary.
    """
    valid = (labels != ignore_index)[:, None]
    x = labels[:, None].float()
    # Max and min label over the 3x3 neighbourhood, with ignored / outside pixels neutral.
    low = torch.where(valid, x, torch.full_like(x, -1.0))
    high = torch.where(valid, x, torch.full_like(x, float(ignore_index) + 1))
    neighbour_max = F.max_pool2d(F.pad(low, (1, 1, 1, 1), value=-1.0), 3, stride=1)
    neighbour_min = -F.max_pool2d(F.pad(-high, (1, 1, 1, 1), value=-(ignore_index + 1.0)), 3, stride=1)
    boundary = ((neighbour_max != x) | (neighbour_min != x)) & valid
    return boundary.float(), valid


def balanced_bce(logits: Tensor, targets: Tensor, valid: Tensor) -> Tensor:
    """Class-balanced BCE (as in HED and the released Gated-SCNN code): positives weighted by the
    fraction of negatives and vice versa, averaged over the valid pixels.

    Args: logits, targets: [N, 1, H, W] float; valid: [N, 1, H, W] bool.
    """
    valid = valid.to(logits.dtype)
    positives = (targets * valid).sum()
    negatives = ((1 - targets) * valid).sum()
    total = (positives + negatives).clamp_min(1.0)
    weight = (targets * negatives + (1 - targets) * positives) / total * valid
    loss = F.binary_cross_entropy_with_logits(logits, targets, weight=weight, reduction="sum")
    return loss / total


def dual_task_regularizer(
    seg_logits: Tensor, labels: Tensor, *, ignore_index: int = 255, gumbel_tau: float | None = 0.5,
    threshold: float = 1e-3,
) -> Tensor:
    """Eq. 4: L1 between the boundary of the predicted segmentation and that of the labels, on boundary pixels.

    zeta = |grad softmax(y)| per class (a Gumbel-softmax sample with temperature ``gumbel_tau``
    when given, the paper's differentiable arg-max), zeta_hat the same on the one-hot labels. The
    mean |zeta - zeta_hat| is taken over the predicted boundary (zeta > threshold) and over the
    label boundary (zeta_hat > threshold), half each (the released code's normalisation of the
    sum over p+). Pixels next to ignored ones are left out, since their label boundary is unknown.

    Args:
        seg_logits: [N, C, H, W]; labels: [N, H, W] int64.
    Returns: a scalar >= 0; 0 when the prediction is the one-hot labels.
    """
    num_classes = seg_logits.shape[1]
    valid = labels != ignore_index
    if gumbel_tau is None:
        probs = seg_logits.softmax(1)
    else:
        probs = F.gumbel_softmax(seg_logits, tau=gumbel_tau, hard=False, dim=1)
    one_hot = F.one_hot(torch.where(valid, labels, 0), num_classes).permute(0, 3, 1, 2).to(probs.dtype)
    zeta, zeta_hat = spatial_gradient_magnitude(probs), spatial_gradient_magnitude(one_hot)
    # Keep pixels whose whole 3x3 neighbourhood is labelled (an erosion of the valid mask).
    keep = -F.max_pool2d(-valid[:, None].to(probs.dtype), 3, stride=1, padding=1) > 0.5
    error = (zeta - zeta_hat).abs()
    terms = []
    for on_boundary in (zeta.detach() > threshold, zeta_hat > threshold):
        mask = (on_boundary & keep).to(error.dtype)
        terms.append((error * mask).sum() / mask.sum().clamp_min(1.0))
    return 0.5 * (terms[0] + terms[1])


class DualTaskLoss(nn.Module):
    """Gated-SCNN's shape-stream and regularisation terms (sec. 3.4), each weighted.

    Args:
        boundary_weight: lambda_1 of the boundary BCE (20, the released code's factor).
        dual_weight: lambda_3 of eq. 4 (1).
        attention_weight: lambda_4 of eq. 5 (1); 0 drops the term.
        attention_threshold: boundary probability above which eq. 5 applies (0.8).
        gumbel_tau: Gumbel-softmax temperature of eq. 4 (0.5); None uses the plain softmax.
        ignore_index: label of ignored pixels.
    Forward:
        seg_logits: [N, C, H, W]; boundary_logits: [N, 1, H, W]; labels: [N, H, W] int64.
        Returns {"loss_boundary", "loss_dual", "loss_dual_attention"} (weighted scalars).
    """

    def __init__(
        self,
        *,
        boundary_weight: float = 20.0,
        dual_weight: float = 1.0,
        attention_weight: float = 1.0,
        attention_threshold: float = 0.8,
        gumbel_tau: float | None = 0.5,
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        self.boundary_weight = boundary_weight
        self.dual_weight = dual_weight
        self.attention_weight = attention_weight
        self.attention_threshold = attention_threshold
        self.gumbel_tau = gumbel_tau
        self.ignore_index = ignore_index

    def forward(self, seg_logits: Tensor, boundary_logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        targets, valid = boundary_targets(labels, ignore_index=self.ignore_index)
        terms = {
            "loss_boundary": self.boundary_weight * balanced_bce(boundary_logits, targets, valid),
            "loss_dual": self.dual_weight * dual_task_regularizer(
                seg_logits, labels, ignore_index=self.ignore_index, gumbel_tau=self.gumbel_tau
            ),
        }
        if self.attention_weight > 0:
            # Eq. 5: cross-entropy only where the shape stream is confident of a boundary.
            on_edge = boundary_logits.detach().sigmoid()[:, 0] > self.attention_threshold
            edge_labels = torch.where(on_edge, labels, torch.full_like(labels, self.ignore_index))
            attention = F.cross_entropy(seg_logits, edge_labels, ignore_index=self.ignore_index, reduction="sum")
            count = (edge_labels != self.ignore_index).sum().clamp_min(1)
            terms["loss_dual_attention"] = self.attention_weight * attention / count
        return terms
