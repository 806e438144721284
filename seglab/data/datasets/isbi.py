"""ISBI 2012 EM segmentation challenge: neuronal membranes (the U-Net paper's EM data).

Layout under ``<data root>/isbi2012_em``: ``train/image/k.png`` and ``train/label/k.png`` for the
labelled slices k = 0..23 (512x512, 8-bit gray). Labels hold 0 = membrane and 255 = cell interior.

There is no official validation split, so we hold out the last four slices (the stack is ordered,
so neighbouring slices are correlated and a contiguous hold-out is the honest choice):
"train" = slices 0..19, "val" = slices 20..23, "all" = slices 0..23. Slices are sorted numerically.
For other EM stacks use the ``folder`` dataset with ``label_map={0: 1, 255: 0}``.
"""

from __future__ import annotations

from pathlib import Path

from seglab.data.base import SegmentationDataset, Transforms, check_split
from seglab.data.root import dataset_dir
from seglab.errors import DataError

SPLITS = {"train": range(0, 20), "val": range(20, 24), "all": range(0, 24)}


class ISBI2012EM(SegmentationDataset):
    """ISBI 2012 EM slices, 2 classes: 0 = "cell" (interior), 1 = "membrane".

    Args:
        split: "train" (slices 0..19), "val" (20..23) or "all" (0..23).
        root: the data root holding ``isbi2012_em/``; ``None`` uses ``seglab.data.data_root()``.
        transforms: joint ``(image, mask)`` transform, see ``SegmentationDataset``.
    """

    name = "isbi2012_em"
    folder = "isbi2012_em"
    classes = ("cell", "membrane")
    palette = [(64, 160, 255), (0, 0, 0)]  # cells blue (white is the ignore colour), membranes black as in the PNGs
    label_map = {0: 1, 255: 0}  # png 0 = membrane -> 1, png 255 = cell -> 0 (isbi2012_em/SOURCE.md)
    splits = tuple(SPLITS)

    def __init__(
        self, *, split: str = "train", root: str | Path | None = None, transforms: Transforms | None = None
    ) -> None:
        check_split(self.name, split, self.splits)
        super().__init__(split=split, transforms=transforms)
        self.root = dataset_dir(self.folder, root)
        self.samples = [self._pair(k) for k in SPLITS[split]]

    def slice_index(self, index: int) -> int:
        """Return the stack slice number of item ``index``."""
        return int(self.files(index)[0].stem)

    def _pair(self, k: int) -> tuple[Path, Path]:
        image = self.root / "train" / "image" / f"{k}.png"
        label = self.root / "train" / "label" / f"{k}.png"
        for path in (image, label):
            if not path.is_file():
                raise DataError(
                    f"ISBI 2012 slice {k} is missing: {str(path)!r} not found; split {self.split!r} "
                    f"needs slices {SPLITS[self.split].start}..{SPLITS[self.split].stop - 1}"
                )
        return image, label
