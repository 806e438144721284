"""Pictures of samples and predictions: colour label maps, overlays, image | labels | overlay strips.

Used by ``seglab data render`` (look at a dataset before training on it) and by the predictors;
``draw_instances`` draws instance masks, boxes and "class score" labels, one colour per instance;
``draw_panoptic`` a panoptic map, each thing instance in its own shade of its class colour.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont
from scipy import ndimage
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from seglab.boxes.ops import masks_to_boxes
from seglab.data.base import IGNORE_INDEX
from seglab.data.colours import GOLDEN_RATIO_CONJUGATE, IGNORE_COLOUR, class_colours, label_font

__all__ = [
    "colourize",
    "draw_instances",
    "draw_panoptic",
    "instance_colours",
    "instance_outline",
    "instance_shade",
    "overlay",
    "render_sample",
    "target_labels",
]



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


def render_sample(image: torch.Tensor, target: Any, palette: Any, *, classes: Sequence[str] = ()) -> np.ndarray:
    """One [H, 3W, 3] uint8 strip: the image, its colour labels, and the labels over the image.

    For instance targets the third panel is ``draw_instances`` of the ground truth: each instance
    filled and outlined in its own colour, with its box and class name; crowd regions stay unblended.

    Args:
        image: uint8 [3, H, W] (as datasets yield it).
        target: any dataset target (see ``target_labels``).
        palette: the dataset's colours, a list of (r, g, b), made distinct by ``class_colours``.
        classes: the dataset's class names (index = class id) for instance labels; ids are shown
            for classes beyond it.
    """
    labels, _ = target_labels(target)
    needed = int(labels[labels != IGNORE_INDEX].max(initial=0)) + 1
    colours = class_colours(list(palette), max(needed, len(list(palette))))
    rgb = image.permute(1, 2, 0).numpy()
    colour = colourize(labels, colours)
    if isinstance(target, Mapping) and "masks" in target and "semantic" not in target:
        boxes = target.get("boxes", target.get("boxes_xyxy"))
        if isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format != tv_tensors.BoundingBoxFormat.XYXY:
            boxes = F.convert_bounding_box_format(boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY)
        blended = draw_instances(rgb, target["masks"].numpy(), None if boxes is None else boxes.numpy(),
                                 target["labels"].tolist(), classes=classes)
    else:
        blended = np.where(labels[..., None] == IGNORE_INDEX, rgb, overlay(rgb, labels, colours))
    return np.concatenate([rgb, colour, blended.astype(np.uint8)], axis=1)


def instance_colours(count: int) -> np.ndarray:
    """[count, 3] uint8 distinct, saturated colours, the same for every call; never white (= ignored).

    Hues step by the golden ratio of a turn, so any two instances (neighbours above all) differ.
    """
    hues = (0.02 + np.arange(count) * GOLDEN_RATIO_CONJUGATE) % 1.0
    rgb = np.asarray([colorsys.hsv_to_rgb(hue, 0.8, 0.95) for hue in hues], dtype=np.float64).reshape(-1, 3)
    return (rgb * 255).round().astype(np.uint8)


def instance_outline(mask: np.ndarray, *, width: int = 1) -> np.ndarray:
    """[H, W] bool: the pixels of ``mask`` [H, W] within ``width`` pixels of its boundary.

    The mask minus its erosion by a 3x3 square; pixels on the image border count as boundary.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    eroded = ndimage.binary_erosion(mask, structure=np.ones((3, 3), dtype=bool), iterations=width, border_value=0)
    return mask & ~eroded


def draw_instances(
    image: np.ndarray,
    masks: np.ndarray,
    boxes_xyxy: np.ndarray | None,
    labels: Sequence[int],
    *,
    classes: Sequence[str],
    scores: Sequence[float] | None = None,
    alpha: float = 0.45,
    colours: np.ndarray | None = None,
) -> np.ndarray:
    """Draw instances over an image: filled and outlined masks, boxes and "class 0.93" labels.

    Instance i gets ``colours[i]``: its mask blended with ``alpha`` (later instances on top), a
    1-2 px outline and its box in the full colour, and its label on a filled background just above
    the box (inside it when the box touches the top of the image).

    Args:
        image: [H, W, 3] uint8.
        masks: [K, H, W] bool (or 0/1) masks at the image size.
        boxes_xyxy: [K, 4] pixels (x1, y1, x2, y2), x2 = last column + 1; None draws no boxes and
            puts the labels above the masks.
        labels: [K] class ids; the text shows ``classes[label]`` (the id beyond ``classes``).
        classes: class names, index = class id.
        scores: [K] confidences shown after the class name, or None for none (ground truth).
        alpha: opacity of the mask fill.
        colours: [>= K, 3] uint8 one colour per instance; default ``instance_colours(K)``.

    Returns:
        [H, W, 3] uint8, a new array (``image`` is not modified).

    Raises:
        ValueError: shapes that disagree, naming the argument and the expected shape.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"draw_instances: image has {image.dtype} {list(image.shape)}; expected uint8 [H, W, 3]")
    labels = [int(label) for label in labels]
    masks = np.asarray(masks)
    k, (h, w) = len(labels), image.shape[:2]
    if masks.ndim != 3 or masks.shape[0] != k or (k and masks.shape[1:] != (h, w)):
        raise ValueError(f"draw_instances: masks has shape {list(masks.shape)}; expected [{k}, {h}, {w}] "
                         f"(one mask per label, at the image size {h}x{w}); resize or paste masks to the image first")
    if k == 0:
        return image.copy()
    boxes = None if boxes_xyxy is None else np.asarray(boxes_xyxy, dtype=np.float64)
    if boxes is not None and boxes.shape != (k, 4):
        raise ValueError(f"draw_instances: boxes_xyxy has shape {list(boxes.shape)}; expected [{k}, 4]")
    if scores is not None and len(scores) != k:
        raise ValueError(f"draw_instances: {len(scores)} scores for {k} instances; expected one per instance")
    colours = instance_colours(k) if colours is None else np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    if len(colours) < k:
        raise ValueError(f"draw_instances: {len(colours)} colours for {k} instances; expected [>= {k}, 3]")
    masks = masks.astype(bool)

    out = image.astype(np.float32)
    for mask, colour in zip(masks, colours):
        out[mask] = out[mask] * (1 - alpha) + colour.astype(np.float32) * alpha
    line = 1 if min(h, w) < 256 else 2  # thin on small images, still visible on large ones
    for mask, colour in zip(masks, colours):
        out[instance_outline(mask, width=line)] = colour
    canvas = PILImage.fromarray(out.round().astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    font = label_font(int(np.clip(min(h, w) / 32, 10, 24)))
    mask_boxes = masks_to_boxes(torch.from_numpy(masks)).numpy() if boxes is None else None
    for i, (label, colour) in enumerate(zip(labels, colours)):
        box = mask_boxes[i] if boxes is None else boxes[i]
        if boxes is None and not masks[i].any():  # an empty mask without a box: nothing to point at
            continue
        fill = tuple(int(c) for c in colour)
        x1, y1, x2, y2 = _pixel_box(box, h, w)
        if boxes is not None:
            draw.rectangle([x1, y1, x2, y2], outline=fill, width=line)
        name = classes[label] if 0 <= label < len(classes) else str(label)
        text = name if scores is None else f"{name} {float(scores[i]):.2f}"
        _draw_label(draw, text, (x1, y1), fill, font, (h, w))
    return np.array(canvas)


def draw_panoptic(
    image: np.ndarray | torch.Tensor | PILImage.Image,
    semantic: np.ndarray | torch.Tensor,
    instance_ids: np.ndarray | torch.Tensor,
    *,
    palette: Sequence[Sequence[int]],
    thing_classes: Sequence[int],
    alpha: float = 0.5,
    ignore_index: int = IGNORE_INDEX,
) -> PILImage.Image:
    """Draw a panoptic map over an image: stuff in its class colour, thing instances in shades of theirs.

    Each thing instance (class, instance id > 0) is filled with ``instance_shade`` of its class
    colour and outlined (1 px, ``instance_outline``) in that shade at full strength; crowd pixels
    (thing class, instance id 0) get the plain class colour and no outline; void stays the image.

    Args:
        image: [H, W, 3] uint8 array, [3, H, W] uint8 tensor (as datasets yield it) or PIL image.
        semantic: [H, W] int class per pixel, ``ignore_index`` = void.
        instance_ids: [H, W] int, > 0 on thing instances, 0 on stuff, void and crowd.
        palette: one (r, g, b) per class, index = class id.
        thing_classes: the class ids that are things.
        alpha: opacity of the fill.

    Returns:
        An RGB PIL image of the image's size (``image`` is not modified).

    Raises:
        ValueError: shapes that disagree, or a class without a palette colour.
    """
    rgb = _rgb_array(image)
    semantic, instance_ids = _numpy_map(semantic), _numpy_map(instance_ids)
    if semantic.shape != rgb.shape[:2] or instance_ids.shape != rgb.shape[:2]:
        raise ValueError(f"draw_panoptic: semantic {list(semantic.shape)} and instance_ids {list(instance_ids.shape)} "
                         f"must both be [H, W] at the image size {list(rgb.shape[:2])}")
    colours = np.asarray([tuple(c) for c in palette], dtype=np.uint8).reshape(-1, 3)
    void = semantic == ignore_index
    bad = np.unique(semantic[~void & ((semantic < 0) | (semantic >= len(colours)))])
    if bad.size:
        raise ValueError(f"draw_panoptic: semantic holds class(es) {bad[:5].tolist()} but the palette has "
                         f"{len(colours)} colours; pass one colour per class")
    fill = colours[np.where(void, 0, semantic)]
    is_instance = np.isin(semantic, list(thing_classes)) & ~void & (instance_ids > 0)
    span = int(instance_ids.max(initial=0)) + 1
    key = np.where(is_instance, semantic * span + instance_ids, -1)  # one key per (class, instance id)
    keys, inverse = np.unique(key, return_inverse=True)
    inverse = inverse.reshape(key.shape)
    shades = np.zeros((len(keys), 3), dtype=np.uint8)
    for k in np.flatnonzero(keys >= 0):
        shades[k] = instance_shade(colours[keys[k] // span], int(keys[k] % span))
    fill[is_instance] = shades[inverse[is_instance]]
    out = (rgb.astype(np.float32) * (1 - alpha) + fill.astype(np.float32) * alpha).round().astype(np.uint8)
    out[void] = rgb[void]
    for k in np.flatnonzero(keys >= 0):
        out[instance_outline(inverse == k)] = shades[k]
    return PILImage.fromarray(out)


def instance_shade(colour: Sequence[int], instance_id: int) -> np.ndarray:
    """[3] uint8 a shade of class ``colour`` for one instance, the same for every call.

    Brightness moves by up to 0.4 (darker for light colours, lighter for dark ones) and hue by up
    to 0.025 of a turn, both by the golden-ratio fraction of the id, so consecutive ids differ.
    """
    hue, saturation, value = colorsys.rgb_to_hsv(*(float(c) / 255 for c in colour))
    step = (instance_id * GOLDEN_RATIO_CONJUGATE) % 1.0
    value = value - 0.4 * step if value >= 0.5 else value + 0.4 * step
    rgb = colorsys.hsv_to_rgb((hue + 0.05 * (step - 0.5)) % 1.0, saturation, value)
    return (np.asarray(rgb) * 255).round().astype(np.uint8)


def _rgb_array(image: np.ndarray | torch.Tensor | PILImage.Image) -> np.ndarray:
    """[H, W, 3] uint8 from a PIL image, a [3, H, W] uint8 tensor or a [H, W, 3] uint8 array."""
    if isinstance(image, PILImage.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        image = (image.permute(1, 2, 0) if image.dim() == 3 and image.shape[0] == 3 else image).numpy()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"draw_panoptic: image has {image.dtype} {list(image.shape)}; expected uint8 [H, W, 3]")
    return image


def _numpy_map(values: np.ndarray | torch.Tensor) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    return array.astype(np.int64)


def _pixel_box(box: np.ndarray, h: int, w: int) -> tuple[int, int, int, int]:
    """Pixel edges (x2 = last column + 1) -> inclusive pixel corners inside the image, for PIL."""
    x1 = int(np.clip(round(float(box[0])), 0, w - 1))
    y1 = int(np.clip(round(float(box[1])), 0, h - 1))
    x2 = int(np.clip(round(float(box[2])) - 1, x1, w - 1))
    y2 = int(np.clip(round(float(box[3])) - 1, y1, h - 1))
    return x1, y1, x2, y2


def _draw_label(draw: ImageDraw.ImageDraw, text: str, corner: tuple[int, int], fill: tuple[int, ...],
                font: Any, size: tuple[int, int]) -> None:
    """Text on a filled box above ``corner`` (the box's top-left), or just below it at the image top."""
    h, w = size
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = 1
    width, height = right - left + 2 * pad, bottom - top + 2 * pad
    x = min(corner[0], max(w - width, 0))
    y = corner[1] - height if corner[1] >= height else corner[1]
    y = max(min(y, h - height), 0)
    draw.rectangle([x, y, x + width - 1, y + height - 1], fill=fill)
    luminance = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)  # readable on light and dark colours
    draw.text((x + pad - left, y + pad - top), text, fill=ink, font=font)
