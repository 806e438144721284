"""Joint augmentation built on ``torchvision.transforms.v2``.

Every transform here moves the image and its targets together: v2 dispatches on the tv_tensors type,
so masks are resized with NEAREST, boxes and instance masks follow crops and flips. Images stay
uint8; ``seglab.data.collate`` converts them to float.

Reduced-resolution recipes (e.g. CamVid at 240x180 on CPU) pass ``base_size`` to
``train_transforms`` and ``size`` to ``eval_transforms``: a ``v2.Resize`` to that size runs first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from seglab.data.base import IGNORE_INDEX
from seglab.errors import ConfigError

TASKS = ("semantic", "instance", "panoptic")


class RandomScale(v2.Transform):
    """Resize by a random factor drawn uniformly from ``scale_range`` (aspect ratio kept).

    Args:
        scale_range: (low, high) factor relative to the input size.
    """

    def __init__(self, scale_range: tuple[float, float]) -> None:
        super().__init__()
        low, high = float(scale_range[0]), float(scale_range[1])
        if not 0 < low <= high:
            raise ConfigError(f"scale_range must satisfy 0 < low <= high, got {tuple(scale_range)}")
        self.scale_range = (low, high)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = _query_size(flat_inputs)
        low, high = self.scale_range
        factor = low + (high - low) * float(torch.rand(()))
        return dict(size=[max(1, round(height * factor)), max(1, round(width * factor))])

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(TF.resize, inpt, size=params["size"], antialias=True)


def train_transforms(
    *,
    crop_size: tuple[int, int] | None,
    scale_range: tuple[float, float] | None = (0.5, 2.0),
    hflip: bool = True,
    ignore_index: int = IGNORE_INDEX,
    base_size: tuple[int, int] | None = None,
    task: str = "semantic",
) -> Callable[..., Any]:
    """Training augmentation: [resize to base_size], random scale, random crop with padding, flip.

    Args:
        crop_size: (H, W) of the random crop; inputs smaller than it are padded (image with 0, mask
            with ``ignore_index``). ``None``: no crop (batches of mixed sizes are padded in collate).
        scale_range: (low, high) random resize factor; ``None`` or (1, 1) disables it.
        hflip: random horizontal flip with probability 0.5.
        ignore_index: fill value of padded mask pixels.
        base_size: (H, W) to resize every input to first (reduced-resolution recipes).
        task: "semantic", "instance" or "panoptic". Instance masks are padded with 0 (not ignore)
            and boxes that crops leave empty are removed with their masks and labels.

    Returns:
        a callable ``(image, target) -> (image, target)``.
    """
    if task not in TASKS:
        raise ConfigError(f"train_transforms: unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    steps: list[Any] = []
    if base_size is not None:
        steps.append(v2.Resize(_pair(base_size, "base_size"), antialias=True))
    if scale_range is not None and tuple(scale_range) != (1.0, 1.0):
        steps.append(RandomScale(scale_range))
    if crop_size is not None:
        mask_fill = 0 if task == "instance" else ignore_index
        fill = {tv_tensors.Image: 0, tv_tensors.Mask: mask_fill, "others": 0}
        steps.append(v2.RandomCrop(_pair(crop_size, "crop_size"), pad_if_needed=True, fill=fill))
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    if task == "instance":
        steps.append(v2.ClampBoundingBoxes())
        steps.append(v2.SanitizeBoundingBoxes())
    return v2.Compose(steps) if steps else v2.Identity()


def eval_transforms(*, size: tuple[int, int] | None = None) -> Callable[..., Any]:
    """Evaluation transform: an optional resize to ``size`` (H, W); bilinear for images, NEAREST for masks.

    Metrics computed after this resize are at the reduced resolution; pass ``None`` to keep the
    dataset's native size.
    """
    if size is None:
        return v2.Identity()
    return v2.Resize(_pair(size, "size"), antialias=True)


def _pair(size: Sequence[int], field: str) -> list[int]:
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or min(int(s) for s in size) < 1:
        raise ConfigError(f"{field} must be (H, W) with positive integers, got {size!r}")
    return [int(size[0]), int(size[1])]


def _query_size(flat_inputs: list[Any]) -> tuple[int, int]:
    for inpt in flat_inputs:
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask)) or (
            isinstance(inpt, torch.Tensor) and not isinstance(inpt, tv_tensors.TVTensor) and inpt.dim() >= 2
        ):
            height, width = TF.get_size(inpt)
            return height, width
    raise ConfigError("RandomScale needs an image or mask among its inputs")
