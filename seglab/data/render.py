"""Pictures of samples and predictions: colour label maps, overlays, image | labels | overlay strips.

Used by ``seglab data render`` (look at a dataset before training on it) and by the predictor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from seglab.data.base import IGNORE_INDEX, default_palette

__all__ = ["colourize", "overlay", "render_sample", "target_labels"]

IGNORE_COLOUR = (255, 255, 255)  # ignored pixels are white in colour label maps


def overlay(image: np.ndarray, labels: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend [H, W, 3] uint8 ``image`` with the palette colours of ``labels`` [H, W]."""
    colours = palette[np.clip(labels, 0, len(palette) - 1)].astype(np.float32)
    return (image.astype(np.float32) * (1 - alpha) + colours * alpha).round().astype(np.uint8)


def colourize(labels: np.ndarray, palette: np.ndarray, *, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """[H, W] class ids -> [H, W, 3] uint8 colours; ``ignore_index`` (and ids beyond the palette) white."""
    out = np.empty((*labels.shape, 3), dtype=np.uint8)
    known = (labels >= 0) & (labels < len(palette)) & (labels != ignore_index)
    out[known] = palette[labels[known]]
    out[~known] = IGNORE_COLOUR
    return out


def target_labels(target: Any) -> tuple[np.ndarray, str]:
    """A [H, W] int64 label map of any dataset target, and what it shows.

    Semantic ``Mask`` -> its class ids; panoptic ``dict(semantic, instance_ids)`` -> the semantic
    map; instance ``dict(masks, labels)`` -> each instance painted with its class id over 0
    (later instances on top), crowd regions (``crowd``) as ignore.
    """
    if isinstance(target, torch.Tensor):
        return target.numpy().astype(np.int64), "classes"
    if "semantic" in target:
        return target["semantic"].numpy().astype(np.int64), "panoptic (classes)"
    if "masks" in target:
        masks = target["masks"].numpy().astype(bool)
        labels = np.zeros(masks.shape[-2:], dtype=np.int64)
        if "crowd" in target:
            labels[target["crowd"].numpy().astype(bool)] = IGNORE_INDEX
        for mask, label in zip(masks, target["labels"].tolist()):
            labels[mask] = label
        return labels, "instances (classes)"
    raise TypeError(f"cannot render a target with keys {sorted(target)}")


def render_sample(image: torch.Tensor, target: Any, palette: Any) -> np.ndarray:
    """One [H, 3W, 3] uint8 strip: the image, its colour labels, and the labels over the image.

    Args:
        image: uint8 [3, H, W] (as datasets yield it).
        target: any dataset target (see ``target_labels``).
        palette: the dataset's colours, a list of (r, g, b); classes beyond it get VOC colours.
    """
    labels, _ = target_labels(target)
    colours = np.asarray(list(palette), dtype=np.uint8).reshape(-1, 3)
    needed = int(labels[labels != IGNORE_INDEX].max(initial=0)) + 1
    if len(colours) < needed:
        colours = np.asarray(default_palette(needed), dtype=np.uint8)
    rgb = image.permute(1, 2, 0).numpy()
    colour = colourize(labels, colours)
    blended = np.where(labels[..., None] == IGNORE_INDEX, rgb, overlay(rgb, labels, colours))
    return np.concatenate([rgb, colour, blended.astype(np.uint8)], axis=1)
