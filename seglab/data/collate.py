"""Batch collation: uint8 tv_tensors from the datasets become float model inputs here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from seglab.data.base import IGNORE_INDEX
from seglab.errors import DataError


def collate_semantic(
    batch: Sequence[tuple[Tensor, Tensor]], *, ignore_index: int = IGNORE_INDEX
) -> tuple[Tensor, Tensor]:
    """Stack ``(image, mask)`` pairs into a batch.

    Items of different sizes are padded at the bottom and right to the largest H and W in the batch:
    images with 0, masks with ``ignore_index`` (so padding never counts in the loss or metrics).

    Args:
        batch: N pairs of image uint8 [3, H, W] (float images are taken as already in [0, 1]) and
            mask int [H, W].

    Returns:
        images [N, 3, H, W] float32 in [0, 1]; masks [N, H, W] int64.
    """
    if len(batch) == 0:
        raise DataError("collate_semantic got an empty batch")
    height = max(int(image.shape[-2]) for image, _ in batch)
    width = max(int(image.shape[-1]) for image, _ in batch)
    channels = int(batch[0][0].shape[0])
    images = torch.zeros(len(batch), channels, height, width, dtype=torch.float32)
    masks = torch.full((len(batch), height, width), ignore_index, dtype=torch.int64)
    for i, (image, mask) in enumerate(batch):
        if tuple(image.shape[-2:]) != tuple(mask.shape[-2:]):
            raise DataError(
                f"batch item {i}: image is {list(image.shape)} but mask is {list(mask.shape)}; "
                f"a transform moved one without the other (wrap masks in tv_tensors.Mask)"
            )
        h, w = image.shape[-2:]
        images[i, :, :h, :w] = _to_float(image)
        masks[i, :h, :w] = mask.as_subclass(Tensor).to(torch.int64)
    return images, masks


def collate_instance(batch: Sequence[tuple[Tensor, dict[str, Any]]]) -> tuple[list[Tensor], list[dict[str, Any]]]:
    """Keep instance samples as lists (sizes and instance counts differ per image).

    Args:
        batch: N pairs of image uint8 [3, H, W] and a target dict (e.g. masks [K, H, W], boxes
            [K, 4], labels [K]).

    Returns:
        images: N float32 [3, H, W] in [0, 1]; targets: N dicts with plain tensors (tv_tensors
        unwrapped; boxes float32, labels int64, masks uint8).
    """
    images = [_to_float(image) for image, _ in batch]
    targets = []
    for _, target in batch:
        plain = {k: v.as_subclass(Tensor) if isinstance(v, Tensor) else v for k, v in target.items()}
        if "boxes" in plain:
            plain["boxes"] = plain["boxes"].to(torch.float32)
        if "labels" in plain:
            plain["labels"] = plain["labels"].to(torch.int64)
        if "masks" in plain:
            plain["masks"] = plain["masks"].to(torch.uint8)
        targets.append(plain)
    return images, targets


def _to_float(image: Tensor) -> Tensor:
    image = image.as_subclass(Tensor)
    if image.dtype == torch.uint8:
        return image.to(torch.float32) / 255.0
    return image.to(torch.float32)
