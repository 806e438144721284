"""The entry of every panoptic model: check panoptic targets, and bring semantic labels to the network's batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from seglab.errors import InputError
from seglab.models.panoptic.fusion import VOID, PanopticClasses
from seglab.structures import PanopticTarget


def as_panoptic_targets(targets: Any, images: Sequence[Tensor], *, model: str,
                        classes: PanopticClasses) -> list[PanopticTarget]:
    """One checked ``PanopticTarget`` per image: at the image's size, classes in 0..C-1 or 255."""
    if not isinstance(targets, (list, tuple)) or len(targets) != len(images):
        got = len(targets) if isinstance(targets, (list, tuple)) else type(targets).__name__
        raise InputError(f"{model}: targets must be a list with one panoptic target (semantic, instance_ids) per "
                         f"image: {len(images)} images, got {got}")
    checked = []
    for i, (target, image) in enumerate(zip(targets, images)):
        try:
            target = PanopticTarget.from_dict(target)
        except InputError as exc:
            raise InputError(f"{model}: targets[{i}]: {exc}") from None
        if target.image_size != tuple(image.shape[-2:]):
            raise InputError(f"{model}: targets[{i}] is {target.image_size[1]}x{target.image_size[0]} but images[{i}] "
                             f"is {image.shape[-1]}x{image.shape[-2]}; labels must be at the image size")
        labelled = target.semantic[target.semantic != VOID]
        if labelled.numel() and (int(labelled.min()) < 0 or int(labelled.max()) >= classes.num_classes):
            raise InputError(f"{model}: targets[{i}].semantic holds classes in [{int(labelled.min())}, "
                             f"{int(labelled.max())}] but the model has {classes.num_classes} (255 = void)")
        checked.append(target)
    return checked


def semantic_batch(labels: Sequence[Tensor], image_sizes: Sequence[tuple[int, int]],
                   padded_size: tuple[int, int]) -> Tensor:
    """[N, H_pad, W_pad] int64: each [H, W] label map resized (nearest) to its resized image, padding 255."""
    batch = torch.full((len(labels), *padded_size), VOID, dtype=torch.int64, device=labels[0].device)
    for i, (label, (h, w)) in enumerate(zip(labels, image_sizes)):
        if tuple(label.shape) != (h, w):
            label = F.interpolate(label[None, None].float(), size=(h, w), mode="nearest")[0, 0].long()
        batch[i, :h, :w] = label
    return batch
