"""ADE20K scene parsing, the 150-class SceneParsing benchmark (Zhou et al., "Scene Parsing through ADE20K
Dataset", CVPR 2017).

The official ``ADEChallengeData2016.zip`` extracted into the data root::

    <data root>/ADEChallengeData2016/
        images/{training,validation}/ADE_{train,val}_<8 digits>.jpg       20210 / 2000 images
        annotations/{training,validation}/ADE_{train,val}_<8 digits>.png  8-bit index PNG, same stem

Label values: 0 = "other objects" (not one of the 150) -> ignore, k = 1..150 -> train id k - 1 in
the order of ``ADE20K_CLASSES`` (the first name of each row of the release's ``objectInfo150.txt``).
Splits: "train" (images/training) and "val" (images/validation). Colours are the VOC colour map (not
the benchmark's palette). Source: http://sceneparsing.csail.mit.edu/.
"""

from __future__ import annotations

from pathlib import Path

from seglab.data.base import SegmentationDataset, Transforms, check_split, default_palette
from seglab.data.datasets._files import pair_folders
from seglab.data.root import dataset_dir


__all__ = ["ADE20K", "ADE20K_CLASSES"]

SPLIT_FOLDERS = {"train": "training", "val": "validation"}
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence",
    "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag",
)  # fmt: skip


class ADE20K(SegmentationDataset):
    """ADE20K SceneParsing, 150 classes; raw 0 ("other") is ignored, raw k -> k - 1.

    Args:
        split: "train" (20210 images) or "val" (2000).
        root: the data root holding ``ADEChallengeData2016/``; ``None`` uses ``seglab.data.data_root()``.
        transforms: joint ``(image, mask)`` transform, see ``SegmentationDataset``.
    """

    name = "ade20k"
    folder = "ADEChallengeData2016"
    splits = tuple(SPLIT_FOLDERS)
    classes = ADE20K_CLASSES
    palette = default_palette(151)[1:]  # VOC colours of raw values 1..150
    label_map = {0: 255, **{k: k - 1 for k in range(1, 151)}}

    def __init__(
        self, *, split: str = "train", root: str | Path | None = None, transforms: Transforms | None = None
    ) -> None:
        check_split(self.name, split, self.splits)
        super().__init__(split=split, transforms=transforms)
        self.root = dataset_dir(self.folder, root)
        image_dir = self.root / "images" / SPLIT_FOLDERS[split]
        label_dir = self.root / "annotations" / SPLIT_FOLDERS[split]
        self.samples = pair_folders(
            image_dir, label_dir, expected="ADE_*.jpg files",
            missing=f"extract ADEChallengeData2016.zip into {str(self.root.parent)!r}",
        )
