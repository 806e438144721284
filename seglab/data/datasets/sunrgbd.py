"""SUN RGB-D, 37-class indoor scene segmentation (Song, Lichtenberg, Xiao, "SUN RGB-D: A RGB-D Scene Understanding
Benchmark Suite", CVPR 2015).

10335 RGB-D frames from four sensors; the 37-class benchmark splits them into 5285 train and 5050
test. The official release nests each frame in its own sensor folder with the labels inside
``SUNRGBD2Dseg.mat``; we read the usual flattened export of it::

    <data root>/sunrgbd/
        image/{train,test}/<stem>.jpg        RGB (.jpg or .png)
        label37/{train,test}/<stem>.png      8-bit index PNG: 0 = void -> ignore, 1..37 = SUNRGBD_CLASSES
        depth/{train,test}/<stem>.png        optional, 16-bit PNG (see ``read_depth``)

An image and its label share the stem (e.g. ``img-000001``). Frames differ in size (sensor-dependent);
image and label of one frame must match.

Depth is not part of the ``(image, mask)`` item contract; ``SUNRGBD.read_depth(index)`` returns it
on demand. Class order follows the 37-class benchmark (SUNRGBDtoolbox ``seg37list``); colours are the
VOC colour map (not an official palette). Source: https://rgbd.cs.princeton.edu/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from seglab.data.base import (
    SegmentationDataset,
    Transforms,
    check_same_size,
    check_split,
    default_palette,
    read_label,
)
from seglab.data.datasets._files import pair_folders
from seglab.data.root import dataset_dir
from seglab.errors import ConfigError, DataError

__all__ = ["SUNRGBD", "SUNRGBD_CLASSES"]

SUNRGBD_CLASSES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor_mat",
    "clothes", "ceiling", "books", "fridge", "tv", "paper", "towel", "shower_curtain", "box", "whiteboard",
    "person", "night_stand", "toilet", "sink", "lamp", "bathtub", "bag",
)  # fmt: skip
MAX_DEPTH_M = 8.0  # the SUN RGB-D toolbox clips depth at 8 m (read3dPoints.m)


class SUNRGBD(SegmentationDataset):
    """SUN RGB-D 37 classes; raw 0 (void) is ignored, raw k -> k - 1.

    Args:
        split: "train" (5285 frames) or "test" (5050).
        root: the data root holding ``sunrgbd/``; ``None`` uses ``seglab.data.data_root()``.
        transforms: joint ``(image, mask)`` transform, see ``SegmentationDataset``.
    """

    name = "sunrgbd"
    folder = "sunrgbd"
    splits = ("train", "test")
    classes = SUNRGBD_CLASSES
    palette = default_palette(38)[1:]  # VOC colours of raw values 1..37
    label_map = {0: 255, **{k: k - 1 for k in range(1, 38)}}

    def __init__(
        self, *, split: str = "train", root: str | Path | None = None, transforms: Transforms | None = None
    ) -> None:
        check_split(self.name, split, self.splits)
        super().__init__(split=split, transforms=transforms)
        self.root = dataset_dir(self.folder, root)
        image_dir, label_dir = self.root / "image" / split, self.root / "label37" / split
        self.samples = pair_folders(
            image_dir, label_dir, expected=".jpg or .png files",
            missing=f"SUN RGB-D needs image/, label37/ (and optionally depth/) with train/ and test/ sub-folders "
                    f"under {str(self.root)!r}",
        )

    def depth_file(self, index: int) -> Path:
        """Return the depth PNG path of item ``index`` (``depth/<split>/<stem>.png``)."""
        return self.root / "depth" / self.split / f"{self.files(index)[0].stem}.png"

    def read_depth(self, index: int, *, encoding: str = "sunrgbd") -> torch.Tensor:
        """Read the depth map of item ``index`` in metres.

        Args:
            index: item index.
            encoding: "sunrgbd" for the release's PNGs, whose 16-bit values are millimetres rotated
                left by 3 bits (decoded as in the toolbox's ``read3dPoints.m``, then clipped at 8 m);
                "millimetres" for PNGs that already hold plain millimetres.

        Returns:
            float32 ``[1, H, W]`` depth in metres, 0 where the sensor gave no reading. Not transformed
            by ``transforms``: apply the same geometric transform yourself if you need aligned depth.

        Raises:
            ConfigError: unknown ``encoding``.
            DataError: missing or unreadable depth file, or a size different from the image (naming both).
        """
        if encoding not in ("sunrgbd", "millimetres"):
            raise ConfigError(
                f"sunrgbd read_depth: unknown encoding {encoding!r}; expected 'sunrgbd' or 'millimetres'"
            )
        path = self.depth_file(index)
        if not path.is_file():
            raise DataError(f"depth file {str(path)!r} not found; add depth/{self.split}/ to {str(self.root)!r}")
        raw = read_label(path).astype(np.uint32)  # single-channel 16-bit PNG
        if encoding == "sunrgbd":
            raw = ((raw >> 3) | (raw << 13)) & 0xFFFF  # undo the 3-bit rotation of the release's PNGs
        depth = raw.astype(np.float32) / 1000.0
        if encoding == "sunrgbd":
            depth = np.minimum(depth, MAX_DEPTH_M)
        image_path = self.files(index)[0]
        with PILImage.open(image_path) as image:  # header only: the size
            width, height = image.size
        check_same_size(image_path, (height, width), path, depth.shape)
        return torch.from_numpy(depth)[None]
