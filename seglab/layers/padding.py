"""Padding inputs to a size a network accepts, and cropping outputs back."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def pad_to_multiple(images: Tensor, multiple: int, *, mode: str = "constant") -> Tensor:
    """Pad [N, C, H, W] on the bottom/right so H and W are multiples of ``multiple``.

    Padding at the bottom/right keeps pixel (0, 0) in place, so cropping back is ``[..., :H, :W]``.
    """
    if multiple == 1:
        return images
    h, w = images.shape[-2:]
    # ceil(h / m) * m - h with non-negative operands only: ONNX integer division truncates, so
    # the -(-h // m) idiom would round the wrong way in an exported graph. No branch on the pad
    # amount either, or the exporter would specialise on it.
    pad_h = (h + multiple - 1) // multiple * multiple - h
    pad_w = (w + multiple - 1) // multiple * multiple - w
    if mode == "reflect":
        return mirror_pad(images, (0, pad_w, 0, pad_h))
    return F.pad(images, (0, pad_w, 0, pad_h), mode=mode)


def mirror_pad(images: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """Reflect-pad by (left, right, top, bottom), repeating the reflection when a pad exceeds the size.

    U-Net's overlap-tile strategy (paper fig. 2) mirrors the image to fill missing context, and
    the mirror may need to be wider than a small image.
    """
    left, right, top, bottom = pad
    while left or right or top or bottom:
        h, w = images.shape[-2:]
        step = (min(left, w - 1), min(right, w - 1), min(top, h - 1), min(bottom, h - 1))
        if max(step) == 0:  # a 1-pixel-wide image cannot be reflected; repeat its edge instead
            return F.pad(images, (left, right, top, bottom), mode="replicate")
        images = F.pad(images, step, mode="reflect")
        left, right, top, bottom = (p - s for p, s in zip((left, right, top, bottom), step))
    return images
