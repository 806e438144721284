"""Typed predictions returned by ``model(images)``, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seglab.errors import InputError


@dataclass
class SemanticPrediction:
    """Per-pixel class scores for a batch.

    Args:
        logits: [N, C, H, W] float, unnormalised class scores at the input resolution.
        aux: optional extra named maps (e.g. Gated-SCNN's "boundary_logits": [N, 1, H, W]).
    """

    logits: Tensor
    aux: dict[str, Tensor] | None = None

    def __post_init__(self) -> None:
        if self.logits.dim() != 4 or not self.logits.is_floating_point():
            raise InputError(
                f"SemanticPrediction.logits must be a float [N, C, H, W] tensor, got "
                f"{self.logits.dtype} {list(self.logits.shape)}"
            )

    @property
    def labels(self) -> Tensor:
        """[N, H, W] int64 arg-max class per pixel."""
        return self.logits.argmax(dim=1)

    @property
    def probs(self) -> Tensor:
        """[N, C, H, W] softmax probabilities."""
        return self.logits.softmax(dim=1)


@dataclass
class InstancePrediction:
    """Instances found in one image.

    Args:
        masks: [K, H, W] float in [0, 1] (soft) or bool.
        boxes_xyxy: [K, 4] float, pixels.
        labels: [K] int64 class ids.
        scores: [K] float confidence.
    """

    masks: Tensor
    boxes_xyxy: Tensor
    labels: Tensor
    scores: Tensor

    def __post_init__(self) -> None:
        k = self.labels.shape[0]
        ok = (
            self.masks.dim() == 3
            and self.masks.shape[0] == k
            and self.boxes_xyxy.shape == (k, 4)
            and self.scores.shape == (k,)
        )
        if not ok:
            raise InputError(
                "InstancePrediction fields disagree: masks "
                f"{list(self.masks.shape)}, boxes_xyxy {list(self.boxes_xyxy.shape)}, labels "
                f"{list(self.labels.shape)}, scores {list(self.scores.shape)}; expected [K, H, W], [K, 4], [K], [K]"
            )


@dataclass
class PanopticPrediction:
    """Panoptic result for one image.

    Args:
        semantic: [H, W] int64 class id per pixel (255 = void).
        instance_ids: [H, W] int64 instance id per pixel (0 = stuff or void).
    """

    semantic: Tensor
    instance_ids: Tensor

    def __post_init__(self) -> None:
        if self.semantic.shape != self.instance_ids.shape or self.semantic.dim() != 2:
            raise InputError(
                f"PanopticPrediction: semantic {list(self.semantic.shape)} and instance_ids "
                f"{list(self.instance_ids.shape)} must both be [H, W]"
            )


def check_images(images: Tensor, *, model: str, channels: int = 3, min_size: int = 1) -> None:
    """Raise InputError unless ``images`` is a float [N, channels, H, W] batch with H, W >= min_size."""
    if not isinstance(images, Tensor):
        raise InputError(f"{model}: images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4:
        raise InputError(
            f"{model}: images has shape {list(images.shape)}; expected [N, {channels}, H, W]. "
            "Add a batch dimension with images.unsqueeze(0)."
        )
    if images.shape[1] != channels:
        raise InputError(
            f"{model}: images has shape {list(images.shape)}; expected {channels} channels "
            f"([N, {channels}, H, W]). Convert grayscale with images.expand(-1, 3, -1, -1)."
        )
    if images.shape[0] == 0:
        raise InputError(f"{model}: images is an empty batch (N = 0)")
    if not images.is_floating_point():
        raise InputError(
            f"{model}: images has dtype {images.dtype}; expected float in [0, 1]. "
            "Use images.float() / 255."
        )
    if torch.compiler.is_compiling():  # shapes are symbolic while exporting; checked eagerly before
        return
    h, w = images.shape[-2:]
    if h < min_size or w < min_size:
        raise InputError(
            f"{model}: images has shape {list(images.shape)}; H and W must be at least {min_size}"
        )
