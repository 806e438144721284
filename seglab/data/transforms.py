"""Joint augmentation built on ``torchvision.transforms.v2``.

Every transform here moves the image and its targets together: v2 dispatches on the tv_tensors type,
so masks are resized with NEAREST, boxes and instance masks follow crops and flips. Images stay
uint8; ``seglab.data.collate`` converts them to float.

A recipe's ``data.augment`` list (named augmentations, see ``seglab.data.augment``) replaces the
built-in scale/crop/flip chain; without it that chain is unchanged.

Reduced-resolution recipes (e.g. CamVid at 240x180 on CPU) pass ``base_size`` to
``train_transforms`` and ``size`` to ``eval_transforms``: a ``v2.Resize`` to that size runs first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torchvision import tv_tensors
from torchvision.transforms import v2

from seglab.data.augment import PREPROCESSING, TASKS, RandomScale, build_augmentation, instance_steps
from seglab.data.base import IGNORE_INDEX
from seglab.errors import ConfigError

__all__ = ["RandomScale", "eval_transforms", "train_transforms"]


def train_transforms(
    *,
    crop_size: tuple[int, int] | None,
    scale_range: tuple[float, float] | None = (0.5, 2.0),
    hflip: bool = True,
    ignore_index: int = IGNORE_INDEX,
    base_size: tuple[int, int] | None = None,
    task: str = "semantic",
    augment: Sequence[Mapping[str, Any]] | None = None,
) -> Callable[..., Any]:
    """Training augmentation: [resize to base_size], random scale, random crop with padding, flip.

    With ``augment``, the chain is [resize to base_size] then ``build_augmentation(augment)``, and
    ``crop_size``, ``scale_range`` and ``hflip`` are not used.

    Args:
        crop_size: (H, W) of the random crop; inputs smaller than it are padded (image with 0, mask
            with ``ignore_index``). ``None``: no crop (batches of mixed sizes are padded in collate).
        scale_range: (low, high) random resize factor; ``None`` or (1, 1) disables it.
        hflip: random horizontal flip with probability 0.5.
        ignore_index: fill value of padded mask pixels.
        base_size: (H, W) to resize every input to first (reduced-resolution recipes).
        task: "semantic", "instance" or "panoptic". Instance masks are padded with 0 (not ignore);
            for "instance" the chain ends with ``seglab.data.augment.instance_steps()``: boxes
            recomputed from the masks (a box cut by the crop is tight on what is left), clamped, and
            instances cropped away removed with their masks and labels (K = 0 is a valid sample).
        augment: named augmentations, e.g. ``[{"name": "rotate", "degrees": 10}]`` (recipe
            ``data.augment``); ``None`` keeps the built-in chain.

    Returns:
        a callable ``(image, target) -> (image, target)``.
    """
    if task not in TASKS:
        raise ConfigError(f"train_transforms: unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    steps: list[Any] = []
    if base_size is not None:
        steps.append(v2.Resize(_pair(base_size, "base_size"), antialias=True))
    if augment is not None:
        steps.append(build_augmentation(augment, task=task, ignore_index=ignore_index))
        return v2.Compose(steps)
    if scale_range is not None and tuple(scale_range) != (1.0, 1.0):
        steps.append(RandomScale(scale_range))
    if crop_size is not None:
        mask_fill = 0 if task == "instance" else ignore_index
        fill = {tv_tensors.Image: 0, tv_tensors.Mask: mask_fill, "others": 0}
        steps.append(v2.RandomCrop(_pair(crop_size, "crop_size"), pad_if_needed=True, fill=fill))
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    if task == "instance":
        steps += instance_steps()  # boxes tight on the cropped masks; instances cropped away removed
    return v2.Compose(steps) if steps else v2.Identity()


def eval_transforms(
    *, size: tuple[int, int] | None = None, augment: Sequence[Mapping[str, Any]] | None = None
) -> Callable[..., Any]:
    """Evaluation transform: an optional resize to ``size`` (H, W); bilinear for images, NEAREST for masks.

    Metrics computed after this resize are at the reduced resolution; pass ``None`` to keep the
    dataset's native size. Of a recipe's ``augment`` list only the deterministic input
    normalisation (``seglab.data.augment.PREPROCESSING``, e.g. SegNet's ``local_contrast_norm``)
    applies, after the resize, so the model sees inputs prepared as in training.
    """
    steps: list[Any] = [] if size is None else [v2.Resize(_pair(size, "size"), antialias=True)]
    if augment is not None:
        kept = [spec for spec in augment if isinstance(spec, Mapping) and spec.get("name") in PREPROCESSING]
        if kept:
            steps.append(build_augmentation(kept))
    if not steps:
        return v2.Identity()
    return steps[0] if len(steps) == 1 else v2.Compose(steps)


def _pair(size: Sequence[int], field: str) -> list[int]:
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or min(int(s) for s in size) < 1:
        raise ConfigError(f"{field} must be (H, W) with positive integers, got {size!r}")
    return [int(size[0]), int(size[1])]

