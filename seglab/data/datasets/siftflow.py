"""SiftFlow / LMO scene parsing (Liu, Yuen, Torralba, "Nonparametric Scene Parsing via Label Transfer", TPAMI 2011).

2688 outdoor images of 256x256 pixels (8 scene categories from the LabelMe Outdoor set), each with
a per-pixel label of 33 semantic classes. The official ``SiftFlowDataset.zip`` extracted into
``<data root>/siftflow``::

    <data root>/siftflow/
        Images/spatial_envelope_256x256_static_8outdoorcategories/<name>.jpg
        SemanticLabels/spatial_envelope_256x256_static_8outdoorcategories/<name>.mat
            variable S: [256, 256] (double), 0 = unlabelled -> ignore, 1..33 = SIFTFLOW_CLASSES
        TestSet1.txt     the standard test list (200 names), provided by the user

Splits: "test" = the 200 images named in ``TestSet1.txt``, "train" = the other 2488. Each line of
``TestSet1.txt`` names one image; directories and the extension are dropped, so ``coast_arnat59``,
``coast_arnat59.jpg`` and ``Images\\...\\coast_arnat59.jpg`` all work. The geometric labels
(``GeoLabels/``, 3 classes) are not read. Class order is the alphabetical order of the release's
``names`` variable. Colours are the VOC colour map (not an official palette).
Source: https://people.csail.mit.edu/celiu/SIFTflow/ (the LabelMe Outdoor "LMO" dataset).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from seglab.data.base import SegmentationDataset, Transforms, check_split, default_palette
from seglab.data.datasets._files import read_id_list, read_mat_label
from seglab.data.root import dataset_dir
from seglab.errors import DataError

__all__ = ["SIFTFLOW_CLASSES", "SiftFlow"]

SUBSET = "spatial_envelope_256x256_static_8outdoorcategories"
TEST_LIST = "TestSet1.txt"
SIFTFLOW_CLASSES = (
    "awning", "balcony", "bird", "boat", "bridge", "building", "bus", "car", "cow", "crosswalk",
    "desert", "door", "fence", "field", "grass", "moon", "mountain", "person", "plant", "pole",
    "river", "road", "rock", "sand", "sea", "sidewalk", "sign", "sky", "staircase", "streetlight",
    "sun", "tree", "window",
)  # fmt: skip


class SiftFlow(SegmentationDataset):
    """SiftFlow semantic labels, 33 classes; raw 0 (unlabelled) is ignored, raw k -> k - 1.

    Args:
        split: "train" (all images not in ``TestSet1.txt``, 2488) or "test" (the 200 listed).
        root: the data root holding ``siftflow/``; ``None`` uses ``seglab.data.data_root()``.
        transforms: joint ``(image, mask)`` transform, see ``SegmentationDataset``.
    """

    name = "siftflow"
    folder = "siftflow"
    splits = ("train", "test")
    classes = SIFTFLOW_CLASSES
    palette = default_palette(34)[1:]  # VOC colours of raw values 1..33
    label_map = {0: 255, **{k: k - 1 for k in range(1, 34)}}

    def __init__(
        self, *, split: str = "train", root: str | Path | None = None, transforms: Transforms | None = None
    ) -> None:
        check_split(self.name, split, self.splits)
        super().__init__(split=split, transforms=transforms)
        self.root = dataset_dir(self.folder, root)
        image_dir, label_dir = self.root / "Images" / SUBSET, self.root / "SemanticLabels" / SUBSET
        for folder in (image_dir, label_dir):
            if not folder.is_dir():
                raise DataError(f"SiftFlow folder {str(folder)!r} is missing; extract SiftFlowDataset.zip into it")
        images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() == ".jpg"}
        test_names = self._test_names(images)
        names = sorted(test_names if split == "test" else set(images) - test_names)
        self.samples = []
        for stem in names:
            label = label_dir / f"{stem}.mat"
            if not label.is_file():
                raise DataError(f"image {str(images[stem])!r} has no label {str(label)!r}; restore it")
            self.samples.append((images[stem], label))

    def raw_label(self, index: int) -> np.ndarray:
        """Return item ``index``'s raw label ``[256, 256]`` (the ``S`` variable of its ``.mat``)."""
        return read_mat_label(self.files(index)[1], "S")

    def _test_names(self, images: dict[str, Path]) -> set[str]:
        list_file = self.root / TEST_LIST
        if not list_file.is_file():
            raise DataError(
                f"SiftFlow test list {str(list_file)!r} not found; put the standard 200-image list "
                f"{TEST_LIST} there (it defines both splits)"
            )
        names = {Path(re.split(r"[\\/]", line)[-1]).stem for line in read_id_list(list_file, dataset=self.name)}
        missing = sorted(names - set(images))
        if missing:
            raise DataError(
                f"{str(list_file)!r} names {len(missing)} image(s) not in {str(self.root / 'Images' / SUBSET)!r}: "
                f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}"
            )
        return names
