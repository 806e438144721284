"""Evaluation of a semantic model on a loader: confusion-matrix metrics, reduced over processes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from seglab.layers.upsample import resize_to
from seglab.metrics.confusion import ConfusionMatrix


@torch.no_grad()
def predict_logits(model: nn.Module, images: Tensor, *, input_size: tuple[int, int] | None = None) -> Tensor:
    """Logits [N, C, H, W] at the resolution of ``images``.

    Args:
        images: [N, 3, H, W] float in [0, 1].
        input_size: when set (reduced-resolution recipes), the model sees images resized to this
            (H, W) and its logits are resized back, so metrics are computed on the original labels.
    """
    size = images.shape[-2:]
    if input_size is not None and tuple(input_size) != tuple(size):
        images = resize_to(images, input_size)
    return resize_to(model(images).logits, size)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    *,
    num_classes: int,
    device: torch.device,
    input_size: tuple[int, int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """mIoU, pixel accuracy, per-class IoU... of ``model`` over ``loader`` (see ConfusionMatrix.compute).

    The model is put in eval mode and restored to its previous mode afterwards.
    """
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(num_classes, device=device)
    for images, targets in loader:
        images, targets = images.to(device), targets.to(device)
        confusion.update(predict_logits(model, images, input_size=input_size), targets)
        if progress is not None:
            progress(images.shape[0])
    confusion.all_reduce()
    model.train(was_training)
    return confusion.compute()
