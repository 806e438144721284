"""SyntheticShapes: a tiny, learnable, fully deterministic dataset for tests and smoke runs.

Each image has a smooth random colour-gradient background with pixel noise and 1-4 shapes
(circle, square, triangle) of random colour, size and position; later shapes are drawn on top of
earlier ones. Item ``i`` of split ``s`` is generated on access from a ``torch.Generator`` seeded by
``(seed, s, i)``, so every access returns identical data and "train"/"val" never share an image.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import tv_tensors

from seglab.boxes.ops import masks_to_boxes
from seglab.data.base import SegmentationDataset, Transforms, check_split
from seglab.errors import ConfigError, DataError

TASKS = ("semantic", "instance", "panoptic")
MIN_SIZE = 32
# Shape radius range at the reference size 96x128; scaled with min(H, W) / 96.
RADIUS_RANGE = (10.0, 30.0)
MIN_COLOUR_DISTANCE = 80.0  # mean |RGB difference| between a shape and the background under it


@dataclass
class Scene:
    """One rendered item: image uint8 [3, H, W]; semantic int64 [H, W]; instance_ids int64 [H, W]
    (0 = background, k = k-th visible shape); labels int64 [K] class of each visible shape."""

    image: Tensor
    semantic: Tensor
    instance_ids: Tensor
    labels: Tensor


class SyntheticShapes(SegmentationDataset):
    """Random shapes on textured backgrounds; 4 classes: background, circle, square, triangle.

    Args:
        split: "train" or "val" (disjoint seeds).
        num_images: number of items.
        size: (H, W) in pixels, each at least 32.
        seed: base seed; items depend only on (seed, split, index).
        transforms: joint transform applied to ``(image, target)``.
        task: what ``__getitem__`` returns after the image:
            "semantic": ``Mask`` int64 [H, W];
            "instance": ``dict(masks=Mask uint8 [K, H, W], boxes=BoundingBoxes XYXY float [K, 4],
            labels=int64 [K])``; boxes are pixel edges of the visible mask (x2 = last column + 1),
            and shapes hidden entirely by later shapes are dropped;
            "panoptic": ``dict(semantic=Mask int64 [H, W], instance_ids=Mask int64 [H, W])`` with
            instance id 0 for the background "stuff" and 1..K for the shapes ("things").
    """

    name = "synthetic"
    classes = ("background", "circle", "square", "triangle")
    palette = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200)]
    splits = ("train", "val")
    thing_classes = (1, 2, 3)
    has_files = False

    def __init__(
        self,
        *,
        split: str = "train",
        num_images: int = 64,
        size: tuple[int, int] = (96, 128),
        seed: int = 0,
        transforms: Transforms | None = None,
        task: str = "semantic",
    ) -> None:
        check_split(self.name, split, self.splits)
        if task not in TASKS:
            raise ConfigError(f"synthetic dataset: unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
        if int(num_images) < 0:
            raise ConfigError(f"synthetic dataset: num_images must be >= 0, got {num_images}")
        if len(size) != 2 or min(size) < MIN_SIZE:
            raise ConfigError(f"synthetic dataset: size must be (H, W) with both >= {MIN_SIZE}, got {tuple(size)}")
        super().__init__(split=split, transforms=transforms)
        self.num_images = int(num_images)
        self.size = (int(size[0]), int(size[1]))
        self.seed = int(seed)
        self.task = task

    def __len__(self) -> int:
        return self.num_images

    def files(self, index: int) -> tuple[Any, Any]:
        raise DataError("synthetic data is generated in memory and has no files")

    def raw_label(self, index: int) -> np.ndarray:
        return self.render(index).semantic.numpy()

    def __getitem__(self, index: int) -> Any:
        scene = self.render(index)
        image = tv_tensors.Image(scene.image)
        if self.task == "semantic":
            target: Any = tv_tensors.Mask(scene.semantic)
        elif self.task == "instance":
            target = _instance_target(scene)
        else:
            target = dict(semantic=tv_tensors.Mask(scene.semantic), instance_ids=tv_tensors.Mask(scene.instance_ids))
        if self.transforms is not None:
            return self.transforms(image, target)
        return image, target

    def render(self, index: int) -> Scene:
        """Generate item ``index`` (same result on every call)."""
        if index < 0:
            index += self.num_images
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} synthetic images")
        generator = torch.Generator().manual_seed(_item_seed(self.seed, self.split, index))
        return _render(self.size, generator)


def _item_seed(seed: int, split: str, index: int) -> int:
    digest = hashlib.blake2b(f"seglab-synthetic/{seed}/{split}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _render(size: tuple[int, int], g: torch.Generator) -> Scene:
    height, width = size
    image = _background(height, width, g)
    semantic = torch.zeros(height, width, dtype=torch.int64)
    instance_ids = torch.zeros(height, width, dtype=torch.int64)
    yy, xx = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    scale = min(height, width) / 96
    num_shapes = int(torch.randint(1, 5, (), generator=g))
    shape_classes = []
    for k in range(num_shapes):
        cls = int(torch.randint(1, 4, (), generator=g))
        radius = _uniform(g, *RADIUS_RANGE) * scale
        cx = _uniform(g, radius * 0.5, width - radius * 0.5)
        cy = _uniform(g, radius * 0.5, height - radius * 0.5)
        inside = _shape_mask(cls, xx, yy, cx, cy, radius)
        colour = _shape_colour(image[:, min(int(cy), height - 1), min(int(cx), width - 1)], g)
        image[:, inside] = colour[:, None]
        semantic[inside] = cls
        instance_ids[inside] = k + 1
        shape_classes.append(cls)
    noise_std = _uniform(g, 4.0, 12.0)
    image = image + torch.randn(image.shape, generator=g) * noise_std
    image = image.round().clamp(0, 255).to(torch.uint8)
    return _renumber_visible(image, semantic, instance_ids, shape_classes)


def _background(height: int, width: int, g: torch.Generator) -> Tensor:
    """[3, H, W] float: a base colour plus a smooth gradient through a random 3x4 colour grid."""
    base = torch.rand(3, 1, 1, generator=g) * 255
    grid = (base + (torch.rand(3, 3, 4, generator=g) - 0.5) * 120).clamp(0, 255)
    return F.interpolate(grid[None], size=(height, width), mode="bilinear", align_corners=True)[0]


def _shape_colour(background: Tensor, g: torch.Generator) -> Tensor:
    """A random colour at least MIN_COLOUR_DISTANCE (mean over RGB) from ``background``."""
    for _ in range(10):
        colour = torch.rand(3, generator=g) * 255
        if (colour - background).abs().mean() >= MIN_COLOUR_DISTANCE:
            return colour
    return 255 - background  # the complement is far from mid-grey backgrounds too


def _shape_mask(cls: int, xx: Tensor, yy: Tensor, cx: float, cy: float, radius: float) -> Tensor:
    dx, dy = xx - cx, yy - cy
    if cls == 1:  # circle
        return dx * dx + dy * dy <= radius * radius
    if cls == 2:  # axis-aligned square, half side 0.85 r (area close to the circle's)
        half = 0.85 * radius
        return (dx.abs() <= half) & (dy.abs() <= half)
    # upright equilateral triangle, circumradius 1.3 r (area close to the circle's)
    big = 1.3 * radius
    corners = [(cx + big * math.cos(a), cy + big * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    inside = torch.ones_like(xx, dtype=torch.bool)
    for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1]):
        inside &= (bx - ax) * (yy - ay) - (by - ay) * (xx - ax) >= 0
    return inside


def _renumber_visible(image: Tensor, semantic: Tensor, instance_ids: Tensor, shape_classes: list[int]) -> Scene:
    """Drop shapes hidden by later ones and number the visible ones 1..K in drawing order."""
    present = torch.unique(instance_ids)
    visible = [int(i) for i in present if i > 0]
    lut = torch.zeros(len(shape_classes) + 1, dtype=torch.int64)
    for new_id, old_id in enumerate(visible, start=1):
        lut[old_id] = new_id
    labels = torch.tensor([shape_classes[i - 1] for i in visible], dtype=torch.int64)
    return Scene(image=image, semantic=semantic, instance_ids=lut[instance_ids], labels=labels)


def _instance_target(scene: Scene) -> dict[str, Any]:
    height, width = scene.semantic.shape
    masks = scene.instance_ids[None] == torch.arange(1, scene.labels.numel() + 1)[:, None, None]  # [K, H, W]
    return dict(
        masks=tv_tensors.Mask(masks.to(torch.uint8)),
        boxes=tv_tensors.BoundingBoxes(masks_to_boxes(masks), format="XYXY", canvas_size=(height, width)),
        labels=scene.labels,
    )
