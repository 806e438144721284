"""PASCAL-Context: 59/60-class full-scene labels of PASCAL VOC 2010.

Paper: Mottaghi et al., "The Role of Context for Object Detection and Semantic Segmentation in the
Wild", CVPR 2014.

Full-scene labels for the PASCAL VOC 2010 images. The release labels 459 categories; the benchmark
uses the 59 most frequent plus "background" (everything else). We read the common converted layout
in which the 459 -> 60 mapping is already applied (as written by mmsegmentation's
``tools/dataset_converters/pascal_context.py`` from ``trainval_merged.json`` with the Detail API)::

    <data root>/VOCdevkit/VOC2010/
        JPEGImages/<id>.jpg
        SegmentationClassContext/<id>.png      8-bit index PNG, 0 = background, 1..59 = CONTEXT59_CLASSES
        ImageSets/SegmentationContext/{train,val}.txt   one id per line (4998 / 5105)

Two class settings (``num_classes``):

- 59 (the usual benchmark, e.g. FCN, RefineNet): background is ignored: raw 0 -> 255, raw k -> k - 1.
- 60: background is class 0 and raw values are the train ids.

Colours are the VOC colour map of the raw values 0..59 (``seglab.data.base.default_palette``), not an
official palette.
Source: https://cs.stanford.edu/~roozbeh/pascal-context/ (labels) and the VOC 2010 images.
"""

from __future__ import annotations

from pathlib import Path

from seglab.data.base import SegmentationDataset, Transforms, check_split, default_palette
from seglab.data.datasets._files import pair_ids, read_id_list
from seglab.data.root import dataset_dir
from seglab.errors import ConfigError

__all__ = ["CONTEXT59_CLASSES", "PascalContext"]

# The 59 categories of the PASCAL-Context 59 benchmark, in label order 1..59 (alphabetical).
CONTEXT59_CLASSES = (
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle",
    "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow",
    "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food", "grass", "ground",
    "horse", "keyboard", "light", "motorbike", "mountain", "mouse", "person", "plate", "platform", "pottedplant",
    "road", "rock", "sheep", "shelves", "sidewalk", "sign", "sky", "snow", "sofa", "table",
    "track", "train", "tree", "truck", "tvmonitor", "wall", "water", "window", "wood",
)  # fmt: skip


class PascalContext(SegmentationDataset):
    """PASCAL-Context, 59 classes (background ignored) or 60 classes (background = class 0).

    Args:
        split: "train" or "val".
        root: the data root holding ``VOCdevkit/VOC2010/``; ``None`` uses ``seglab.data.data_root()``.
        transforms: joint ``(image, mask)`` transform, see ``SegmentationDataset``.
        num_classes: 59 or 60 (see the module docstring for the label mapping of each).
    """

    name = "pascal_context"
    folder = "VOCdevkit"
    splits = ("train", "val")

    def __init__(
        self,
        *,
        split: str = "train",
        root: str | Path | None = None,
        transforms: Transforms | None = None,
        num_classes: int = 59,
    ) -> None:
        check_split(self.name, split, self.splits)
        if num_classes not in (59, 60):
            raise ConfigError(f"pascal_context: num_classes={num_classes!r}; expected 59 or 60")
        super().__init__(split=split, transforms=transforms)
        if num_classes == 59:
            self.classes = CONTEXT59_CLASSES
            self.label_map = {0: self.ignore_index, **{k: k - 1 for k in range(1, 60)}}
        else:
            self.classes = ("background", *CONTEXT59_CLASSES)
            self.label_map = {k: k for k in range(60)}
        self.palette = default_palette(60)[60 - num_classes :]  # same colour per class in both settings
        self.root = dataset_dir(self.folder, root) / "VOC2010"
        list_file = self.root / "ImageSets" / "SegmentationContext" / f"{split}.txt"
        ids = read_id_list(list_file, dataset=self.name)
        self.samples = pair_ids(
            ids, self.root / "JPEGImages", ".jpg", self.root / "SegmentationClassContext", ".png", source=list_file
        )
