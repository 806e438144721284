"""Typed predictions returned by ``model(images)`` and instance targets, validated on construction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
class InstanceTarget:
    """The annotated instances of one image, checked on construction.

    Args:
        boxes_xyxy: [K, 4] float, pixels (x1, y1, x2, y2) with x1 < x2 and y1 < y2; pixel edges, so
            a mask covering columns 3..5 has x1 = 3, x2 = 6.
        labels: [K] int64 class ids in 1..C; 0 is the background and never an instance.
        masks: [K, H, W] uint8 (or bool) binary masks at the image size.
        crowd: optional [H, W] uint8 (or bool) crowd region (COCO ``iscrowd``): ignored in training
            and forgiven in evaluation, never an instance.

    Raises:
        InputError: naming the field, its shape or dtype, and what was expected.
    """

    boxes_xyxy: Tensor
    labels: Tensor
    masks: Tensor
    crowd: Tensor | None = None

    def __post_init__(self) -> None:
        for field_name in ("boxes_xyxy", "labels", "masks"):
            if not isinstance(getattr(self, field_name), Tensor):
                raise InputError(f"InstanceTarget.{field_name} must be a torch.Tensor, got "
                                 f"{type(getattr(self, field_name)).__name__}")
        boxes, labels, masks = self.boxes_xyxy, self.labels, self.masks
        if masks.dim() != 3 or masks.dtype not in (torch.uint8, torch.bool):
            raise InputError(f"InstanceTarget.masks has {masks.dtype} {list(masks.shape)}; expected uint8 [K, H, W]")
        k = masks.shape[0]
        if boxes.shape != (k, 4) or not boxes.is_floating_point():
            raise InputError(f"InstanceTarget.boxes_xyxy has {boxes.dtype} {list(boxes.shape)}; expected float [{k}, 4] "
                             f"(one box per mask: masks is {list(masks.shape)})")
        if labels.shape != (k,) or labels.dtype != torch.int64:
            raise InputError(f"InstanceTarget.labels has {labels.dtype} {list(labels.shape)}; expected int64 [{k}] "
                             f"(one label per mask: masks is {list(masks.shape)})")
        if k and int(labels.min()) < 1:
            raise InputError(f"InstanceTarget.labels holds {int(labels.min())}; instances are labelled 1..C "
                             "(0 is the background)")
        if k and not bool(torch.isfinite(boxes).all()):
            raise InputError("InstanceTarget.boxes_xyxy holds non-finite values")
        degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        if bool(degenerate.any()):
            i = int(degenerate.nonzero()[0])
            raise InputError(f"InstanceTarget.boxes_xyxy[{i}] = {boxes[i].tolist()} is degenerate; every box needs "
                             "x2 > x1 and y2 > y1 (drop empty instances, e.g. with seglab.boxes.masks_to_boxes)")
        if self.crowd is not None:
            crowd = self.crowd
            if not isinstance(crowd, Tensor) or crowd.shape != masks.shape[-2:] or crowd.dtype not in (
                torch.uint8, torch.bool
            ):
                got = f"{crowd.dtype} {list(crowd.shape)}" if isinstance(crowd, Tensor) else type(crowd).__name__
                raise InputError(f"InstanceTarget.crowd has {got}; expected uint8 {list(masks.shape[-2:])} (the image size)")

    @classmethod
    def from_dict(cls, target: Mapping[str, Any]) -> InstanceTarget:
        """Build from a dataset target ``dict(boxes, labels, masks[, crowd])`` (tv_tensors unwrapped)."""
        if isinstance(target, InstanceTarget):
            return target
        if not isinstance(target, Mapping):
            raise InputError(f"an instance target must be a dict with boxes, labels and masks, got {type(target).__name__}")
        missing = [k for k in ("labels", "masks") if k not in target]
        if "boxes" not in target and "boxes_xyxy" not in target:
            missing.insert(0, "boxes")
        if missing:
            raise InputError(f"instance target is missing {', '.join(missing)} (it has {', '.join(sorted(target))})")

        def plain(value: Any) -> Any:
            return value.as_subclass(Tensor) if isinstance(value, Tensor) else value

        boxes = plain(target["boxes"] if "boxes" in target else target["boxes_xyxy"])
        crowd = plain(target.get("crowd"))
        return cls(boxes_xyxy=boxes, labels=plain(target["labels"]), masks=plain(target["masks"]), crowd=crowd)

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the masks."""
        return int(self.masks.shape[-2]), int(self.masks.shape[-1])

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> InstanceTarget:
        """A copy on ``device``."""
        return InstanceTarget(
            boxes_xyxy=self.boxes_xyxy.to(device), labels=self.labels.to(device), masks=self.masks.to(device),
            crowd=None if self.crowd is None else self.crowd.to(device),
        )


@dataclass
class InstancePrediction:
    """Instances found in one image.

    Args:
        masks: [K, H, W] float in [0, 1] (soft, at the image size) or bool.
        boxes_xyxy: [K, 4] float, pixels of the input image.
        labels: [K] int64 class ids (1..C).
        scores: [K] float confidence, sorted high to low by the models.
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

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def binary_masks(self, threshold: float = 0.5) -> Tensor:
        """[K, H, W] bool: soft masks thresholded at ``threshold`` (Mask R-CNN sec. 3: 0.5)."""
        return self.masks if self.masks.dtype == torch.bool else self.masks >= threshold

    def to(self, device: torch.device | str) -> InstancePrediction:
        """A copy on ``device``."""
        return InstancePrediction(masks=self.masks.to(device), boxes_xyxy=self.boxes_xyxy.to(device),
                                  labels=self.labels.to(device), scores=self.scores.to(device))


@dataclass
class PanopticTarget:
    """The panoptic annotation of one image (the ``task="panoptic"`` targets of every dataset).

    Args:
        semantic: [H, W] int64 class id per pixel, 255 = void.
        instance_ids: [H, W] int64, k > 0 on the pixels of the k-th thing instance, 0 on stuff and
            void; thing-class pixels with id 0 are a crowd region of that class.

    Raises:
        InputError: naming the field, its shape or dtype, and what was expected.
    """

    semantic: Tensor
    instance_ids: Tensor

    def __post_init__(self) -> None:
        for name in ("semantic", "instance_ids"):
            value = getattr(self, name)
            if not isinstance(value, Tensor) or value.dim() != 2 or value.dtype != torch.int64:
                got = f"{value.dtype} {list(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
                raise InputError(f"PanopticTarget.{name} has {got}; expected int64 [H, W]")
        if self.semantic.shape != self.instance_ids.shape:
            raise InputError(f"PanopticTarget: semantic {list(self.semantic.shape)} and instance_ids "
                             f"{list(self.instance_ids.shape)} must have the same [H, W]")

    @classmethod
    def from_dict(cls, target: Any) -> PanopticTarget:
        """Build from a dataset target ``dict(semantic, instance_ids)`` (tv_tensors unwrapped, cast to int64)."""
        if isinstance(target, PanopticTarget):
            return target
        if not isinstance(target, Mapping) or not {"semantic", "instance_ids"} <= set(target):
            has = ", ".join(sorted(target)) if isinstance(target, Mapping) else type(target).__name__
            raise InputError(f"a panoptic target must be a dict with semantic and instance_ids, got {has}")
        plain = [target[k].as_subclass(Tensor).to(torch.int64) if isinstance(target[k], Tensor) else target[k]
                 for k in ("semantic", "instance_ids")]
        return cls(semantic=plain[0], instance_ids=plain[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.semantic.shape[0]), int(self.semantic.shape[1])

    def to(self, device: torch.device | str) -> PanopticTarget:
        """A copy on ``device``."""
        return PanopticTarget(semantic=self.semantic.to(device), instance_ids=self.instance_ids.to(device))


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

    def to(self, device: torch.device | str) -> PanopticPrediction:
        """A copy on ``device``."""
        return PanopticPrediction(semantic=self.semantic.to(device), instance_ids=self.instance_ids.to(device))


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
