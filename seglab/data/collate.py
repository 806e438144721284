"""Batch collation: uint8 tv_tensors from the datasets become float model inputs here, and instance
target dicts become validated ``seglab.structures.InstanceTarget``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from seglab.data.base import IGNORE_INDEX
from seglab.errors import DataError, InputError
from seglab.structures import InstanceTarget, PanopticTarget


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


def collate_instance(batch: Sequence[tuple[Tensor, Mapping[str, Any]]]) -> tuple[list[Tensor], list[InstanceTarget]]:
    """Keep instance samples as lists (sizes and instance counts differ per image).

    Args:
        batch: N pairs of image uint8 [3, H, W] (float images are taken as already in [0, 1]) and a
            target dict ``masks`` [K, H, W], ``boxes`` [K, 4] (``BoundingBoxes`` in any format, or
            XYXY), ``labels`` [K] in 1..C, optional ``crowd`` [H, W]; K = 0 is allowed.

    Returns:
        images: N float32 [3, H, W] in [0, 1]; targets: N ``seglab.structures.InstanceTarget``
        (plain tensors: boxes_xyxy float32, labels int64, masks uint8, crowd uint8 or None).

    Raises:
        DataError: an empty batch, or an invalid target, naming the batch item and the problem.
    """
    return _collate_lists(batch, "instance", lambda target: InstanceTarget.from_dict(_plain_target(target)))


def collate_panoptic(batch: Sequence[tuple[Tensor, Mapping[str, Any]]]) -> tuple[list[Tensor], list[PanopticTarget]]:
    """Keep panoptic samples as lists, like instance ones (panoptic models resize and batch inside).

    Args:
        batch: N pairs of image uint8 [3, H, W] (float images are taken as already in [0, 1]) and a
            target ``dict(semantic=[H, W], instance_ids=[H, W])`` (the datasets' ``task="panoptic"`` view).

    Returns:
        images: N float32 [3, H, W] in [0, 1]; targets: N ``seglab.structures.PanopticTarget`` (int64).

    Raises:
        DataError: an empty batch, or an invalid target, naming the batch item and the problem.
    """
    return _collate_lists(batch, "panoptic", PanopticTarget.from_dict)


def _collate_lists(batch: Sequence[tuple[Tensor, Any]], task: str, convert: Any) -> tuple[list[Tensor], list[Any]]:
    """Float images and ``convert(target)`` per item, checked to be at the image size; errors name the item."""
    if len(batch) == 0:
        raise DataError(f"collate_{task} got an empty batch")
    images, targets = [], []
    for i, (image, target) in enumerate(batch):
        try:
            checked = convert(target)
        except InputError as err:
            raise DataError(
                f"batch item {i}: {err}. {task.capitalize()} models need the dataset's task='{task}' targets "
                f"(check the data with `seglab data check <dataset> -O task={task}`)"
            ) from err
        if checked.image_size != tuple(image.shape[-2:]):
            h, w = checked.image_size
            raise DataError(
                f"batch item {i}: image is {list(image.shape)} but the {task} labels are {h}x{w} (H x W); "
                f"a transform moved one without the other (wrap masks in tv_tensors.Mask)"
            )
        images.append(_to_float(image))
        targets.append(checked)
    return images, targets


def _plain_target(target: Any) -> Any:
    """Unwrap tv_tensors and cast to the dtypes of ``InstanceTarget``; boxes become XYXY."""
    if not isinstance(target, Mapping):
        return target  # InstanceTarget.from_dict names the type
    plain = dict(target)
    boxes = plain.get("boxes")
    if isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format != tv_tensors.BoundingBoxFormat.XYXY:
        plain["boxes"] = TF.convert_bounding_box_format(boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY)
    casts = {"boxes": torch.float32, "boxes_xyxy": torch.float32, "labels": torch.int64, "masks": torch.uint8,
             "crowd": torch.uint8}  # fmt: skip
    for key, dtype in casts.items():
        if isinstance(plain.get(key), Tensor):
            plain[key] = plain[key].as_subclass(Tensor).to(dtype)
    return plain


def _to_float(image: Tensor) -> Tensor:
    image = image.as_subclass(Tensor)
    if image.dtype == torch.uint8:
        return image.to(torch.float32) / 255.0
    return image.to(torch.float32)
