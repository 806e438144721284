"""The entry and exit of every instance model: check, normalise, resize and batch images (and targets).

Mask R-CNN (arXiv 1703.06870, sec. 3.1) resizes images "such that their scale (shorter edge) is 800
pixels" (with Detectron's cap of 1333 on the longer side); the network sees them zero-padded to a
multiple of 32 so every FPN level aligns. Results are mapped back to the input image: boxes scaled,
masks pasted at its size. The resize is torchvision's (bilinear, ``recompute_scale_factor``), so
torchvision weights give the same detections; ``min_size=None`` keeps images at their own size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from seglab.boxes import paste_masks
from seglab.errors import InputError
from seglab.structures import InstancePrediction, InstanceTarget


# Why instance models refuse ONNX export (their ModelSpec.export_note; `seglab export` prints it).
DETECTIONS_EXPORT_NOTE = ("its detections have a data-dependent count (score threshold, top-k, NMS per image), which "
                          "the ONNX exporter of torch 2.x cannot trace with dynamic image sizes; use the PyTorch model")


@dataclass
class ImageBatch:
    """Normalised images resized and zero-padded into one tensor.

    Attributes:
        tensor: [N, 3, H_pad, W_pad] normalised images.
        image_sizes: (h, w) of each resized image inside the padded tensor.
        original_sizes: (H, W) of each input image.
    """

    tensor: Tensor
    image_sizes: list[tuple[int, int]]
    original_sizes: list[tuple[int, int]]

    @property
    def padded_size(self) -> tuple[int, int]:
        return int(self.tensor.shape[-2]), int(self.tensor.shape[-1])


def as_image_list(images: Any, *, model: str, min_size: int = 1) -> list[Tensor]:
    """Check ``images`` (a list of [3, H, W] or a [N, 3, H, W] batch, float in [0, 1]) and return a list."""
    if isinstance(images, Tensor):
        if images.dim() != 4:
            raise InputError(f"{model}: images has shape {list(images.shape)}; expected a list of [3, H, W] "
                             "float tensors or a [N, 3, H, W] batch")
        images = list(images)
    if not isinstance(images, (list, tuple)) or len(images) == 0:
        raise InputError(f"{model}: images must be a non-empty list of [3, H, W] float tensors, got "
                         f"{type(images).__name__}{' (empty)' if isinstance(images, (list, tuple)) else ''}")
    for i, image in enumerate(images):
        if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
            shape = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise InputError(f"{model}: images[{i}] has shape {shape}; expected [3, H, W] (RGB, channels first)")
        if not image.is_floating_point():
            raise InputError(f"{model}: images[{i}] has dtype {image.dtype}; expected float in [0, 1]. "
                             "Use image.float() / 255.")
        if min(image.shape[-2:]) < min_size:
            raise InputError(f"{model}: images[{i}] is {image.shape[-1]}x{image.shape[-2]}; both sides must be at "
                             f"least {min_size} px")
    return list(images)


def as_targets(targets: Any, images: Sequence[Tensor], *, model: str, num_classes: int) -> list[InstanceTarget]:
    """Check targets against their images and the model's classes (labels 1..num_classes - 1)."""
    if not isinstance(targets, (list, tuple)) or len(targets) != len(images):
        got = len(targets) if isinstance(targets, (list, tuple)) else type(targets).__name__
        raise InputError(f"{model}: targets must be a list with one InstanceTarget (or dict) per image: "
                         f"{len(images)} images, got {got}")
    checked = []
    for i, (target, image) in enumerate(zip(targets, images)):
        try:
            target = InstanceTarget.from_dict(target)
        except InputError as exc:
            raise InputError(f"{model}: targets[{i}]: {exc}") from None
        if target.image_size != tuple(image.shape[-2:]):
            raise InputError(f"{model}: targets[{i}].masks are {target.image_size[1]}x{target.image_size[0]} but "
                             f"images[{i}] is {image.shape[-1]}x{image.shape[-2]}; masks must be at the image size")
        if len(target) and int(target.labels.max()) >= num_classes:
            raise InputError(f"{model}: targets[{i}].labels holds {int(target.labels.max())} but the model has "
                             f"{num_classes} classes (labels 1..{num_classes - 1}, 0 = background)")
        checked.append(target)
    return checked


def size_choices(min_size: int | Sequence[int] | None) -> tuple[int, ...] | None:
    """A model's ``min_size`` argument as a tuple of shorter sides (None: native size)."""
    if min_size is None:
        return None
    return tuple(int(size) for size in min_size) if isinstance(min_size, Sequence) else (int(min_size),)


def draw_min_size(choices: tuple[int, ...] | None, *, training: bool) -> int | None:
    """The shorter side of one image: drawn among ``choices`` in training, the last one at test.

    torchvision's rule (``GeneralizedRCNNTransform``), drawn with torch's RNG (not Python's), so a
    resumed run draws the same sizes.
    """
    if choices is None:
        return None
    if not training:
        return choices[-1]
    return choices[int(torch.empty(1).uniform_(0.0, float(len(choices))).item())]


def resized_size(size: tuple[int, int], min_size: int | None, max_size: int | None) -> float:
    """Scale factor bringing the shorter side to ``min_size`` with the longer side at most ``max_size``."""
    if min_size is None:
        return 1.0
    short, long = min(size), max(size)
    return min(min_size / short, max_size / long) if max_size is not None else min_size / short


def batch_images(
    images: Sequence[Tensor], normalize: Any, *, min_sizes: Sequence[int | None], max_size: int | None,
    size_divisible: int = 32,
) -> ImageBatch:
    """Normalise, resize (bilinear; image i to shorter side ``min_sizes[i]``) and pad ``images`` into an ImageBatch."""
    resized, sizes = [], []
    for image, min_size in zip(images, min_sizes):
        x = normalize(image[None])
        scale = resized_size(tuple(image.shape[-2:]), min_size, max_size)
        if scale != 1.0:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", recompute_scale_factor=True, align_corners=False)
        resized.append(x[0])
        sizes.append((int(x.shape[-2]), int(x.shape[-1])))
    height = int(math.ceil(max(h for h, _ in sizes) / size_divisible) * size_divisible)
    width = int(math.ceil(max(w for _, w in sizes) / size_divisible) * size_divisible)
    tensor = resized[0].new_zeros(len(resized), 3, height, width)
    for i, x in enumerate(resized):
        tensor[i, :, : x.shape[-2], : x.shape[-1]] = x
    return ImageBatch(tensor, sizes, [(int(i.shape[-2]), int(i.shape[-1])) for i in images])


def resize_target(target: InstanceTarget, size: tuple[int, int]) -> InstanceTarget:
    """The target at a resized image: boxes scaled, masks and crowd resized with nearest neighbour."""
    if target.image_size == tuple(size):
        return target
    masks = _resize_binary(target.masks, size)
    crowd = None if target.crowd is None else _resize_binary(target.crowd[None], size)[0]
    boxes = scale_boxes(target.boxes_xyxy, target.image_size, size)
    return InstanceTarget(boxes_xyxy=boxes, labels=target.labels, masks=masks, crowd=crowd)


def _resize_binary(masks: Tensor, size: tuple[int, int]) -> Tensor:
    resized = F.interpolate(masks[:, None].float(), size=size, mode="nearest")[:, 0]
    return resized.to(masks.dtype)


def scale_boxes(boxes: Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> Tensor:
    """Boxes of an image of ``from_size`` (H, W) in pixels of ``to_size``."""
    ratio_h = torch.tensor(to_size[0], dtype=torch.float32) / torch.tensor(from_size[0], dtype=torch.float32)
    ratio_w = torch.tensor(to_size[1], dtype=torch.float32) / torch.tensor(from_size[1], dtype=torch.float32)
    ratios = torch.stack([ratio_w, ratio_h, ratio_w, ratio_h]).to(boxes.device)
    return boxes * ratios.to(boxes.dtype)


def empty_prediction(size: tuple[int, int], device: torch.device | str = "cpu") -> InstancePrediction:
    """No instances in an image of ``size`` (H, W): what a model returns for an image without proposals."""
    return InstancePrediction(masks=torch.zeros(0, *size, device=device), boxes_xyxy=torch.zeros(0, 4, device=device),
                              labels=torch.zeros(0, dtype=torch.int64, device=device),
                              scores=torch.zeros(0, device=device))


def pasted_predictions(detections: Sequence[Sequence[Tensor]], masks: Sequence[Tensor],
                       batch: ImageBatch) -> list[InstancePrediction]:
    """Detections in the resized input, mapped back to each original image with their masks pasted.

    Args:
        detections: per image (boxes [D, 4] in resized-input pixels, scores [D], labels [D], ...).
        masks: per image [D, m, m] box-local mask probabilities.
        batch: the ImageBatch the detections were found in.
    """
    predictions = []
    for (boxes, scores, labels, *_), image_masks, size, original in zip(
        detections, masks, batch.image_sizes, batch.original_sizes
    ):
        boxes = scale_boxes(boxes, size, original)
        predictions.append(InstancePrediction(masks=paste_masks(image_masks, boxes, original), boxes_xyxy=boxes,
                                              labels=labels, scores=scores))
    return predictions


def prepare_inputs(
    images: Any, targets: Any, *, model: str, training: bool, num_classes: int, normalize: Any,
    min_size: Callable[[], int | None], max_size: int | None, size_divisible: int,
) -> tuple[ImageBatch, list[InstanceTarget] | None]:
    """Check images and targets, then normalise, resize (shorter side ``min_size()`` per image) and pad
    into an ImageBatch; targets follow the resize. Every instance model's ``prepare``.

    Raises:
        InputError: bad images or targets, or training without targets.
    """
    images = as_image_list(images, model=model)
    if training and targets is None:
        raise InputError(f"{model} is in training mode: pass targets, or call model.eval() to predict")
    checked = as_targets(targets, images, model=model, num_classes=num_classes) if targets is not None else None
    batch = batch_images(images, normalize, min_sizes=[min_size() for _ in images], max_size=max_size,
                         size_divisible=size_divisible)
    if checked is not None:
        checked = [resize_target(t, size) for t, size in zip(checked, batch.image_sizes)]
    return batch, checked
