"""ISBI 2015 Cell Tracking Challenge: the 2-D light-microscopy sequences of U-Net (Ronneberger et al., 1505.04597).

Two sequences of the challenge (Ulman et al., "An objective comparison of cell-tracking algorithms",
Nature Methods 2017), each an official training zip extracted into the data root::

    <data root>/PhC-C2DH-U373/          (phase contrast, 115 frames per video, 520x696)
    <data root>/DIC-C2DH-HeLa/          (differential interference contrast, 84 frames, 512x512)
        01/t000.tif, t001.tif, ...      video 01, 8- or 16-bit gray frames
        01_GT/SEG/man_seg000.tif, ...   16-bit instance ids, 0 = background, k > 0 = cell k
        02/, 02_GT/SEG/                 video 02, same layout

Only some frames have a segmentation reference (``man_seg<t>.tif`` with the frame's number). Frames
without one are skipped and counted: ``dataset.skipped`` lists them, ``repr`` and the log say how
many. The tracking references (``*_GT/TRA``) and silver truth (``*_ST``) are not read.

The instance ids become a binary semantic mask: 0 -> "background" (0), any id > 0 -> "cell" (1), as
in U-Net's experiments (sec. 4). Cells the reference leaves unannotated count as background.
Splits: "01", "02" (one video each) and "all" (both). Source: http://celltrackingchallenge.net/.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from seglab.data.base import SegmentationDataset, Transforms, check_split
from seglab.data.root import dataset_dir
from seglab.errors import ConfigError, DataError, closest

__all__ = ["ISBICellTracking", "SEQUENCES"]

logger = logging.getLogger(__name__)

SEQUENCES = ("PhC-C2DH-U373", "DIC-C2DH-HeLa")
SPLITS = {"01": ("01",), "02": ("02",), "all": ("01", "02")}
_FRAME = re.compile(r"^t(\d+)\.tif$")
# Every 16-bit instance id is a cell; 0 is background.
_BINARY_LABEL_MAP = {0: 0, **dict.fromkeys(range(1, 1 << 16), 1)}


class ISBICellTracking(SegmentationDataset):
    """ISBI cell tracking frames with a segmentation reference, 2 classes: "background", "cell".

    Args:
        split: "01", "02" (one video) or "all" (both).
        root: the data root holding the sequence folder; ``None`` uses ``seglab.data.data_root()``.
        transforms: joint ``(image, mask)`` transform, see ``SegmentationDataset``.
        sequence: "PhC-C2DH-U373" or "DIC-C2DH-HeLa".

    Attributes:
        skipped: image files of the split that have no segmentation reference (not in the dataset).
    """

    name = "isbi_cell_tracking"
    splits = tuple(SPLITS)
    classes = ("background", "cell")
    palette = [(0, 0, 0), (64, 160, 255)]  # cells blue: white is the ignore colour
    label_map = _BINARY_LABEL_MAP

    def __init__(
        self,
        *,
        split: str = "01",
        root: str | Path | None = None,
        transforms: Transforms | None = None,
        sequence: str = "PhC-C2DH-U373",
    ) -> None:
        if sequence not in SEQUENCES:
            hint = closest(sequence, SEQUENCES)
            raise ConfigError(
                f"isbi_cell_tracking: unknown sequence {sequence!r}; {hint + ' ' if hint else ''}"
                f"expected one of {', '.join(SEQUENCES)}"
            )
        check_split(self.name, split, self.splits)
        super().__init__(split=split, transforms=transforms)
        self.sequence = sequence
        self.root = dataset_dir(sequence, root)
        self.skipped: list[Path] = []
        for video in SPLITS[split]:
            self._add_video(video)
        if self.skipped:
            logger.info(
                "%s %s split %s: skipped %d frame(s) without a segmentation reference (%d kept)",
                self.name, sequence, split, len(self.skipped), len(self.samples),
            )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(sequence={self.sequence!r}, split={self.split!r}, items={len(self)}, "
            f"skipped={len(self.skipped)} frames without SEG reference, classes={self.num_classes})"
        )

    def _add_video(self, video: str) -> None:
        frame_dir, seg_dir = self.root / video, self.root / f"{video}_GT" / "SEG"
        for folder in (frame_dir, seg_dir):
            if not folder.is_dir():
                raise DataError(
                    f"{self.sequence} folder {str(folder)!r} is missing; extract the official training "
                    f"zip {self.sequence}.zip into {str(self.root.parent)!r}"
                )
        # (frame number, its digits as written, path): sorted numerically, the padding kept for man_seg<t>.
        frames = sorted((int(m.group(1)), m.group(1), p) for p in frame_dir.iterdir() if (m := _FRAME.match(p.name)))
        if not frames:
            raise DataError(f"no frames t<number>.tif found in {str(frame_dir)!r}")
        for _, digits, frame in frames:
            label = seg_dir / f"man_seg{digits}.tif"
            if label.is_file():
                self.samples.append((frame, label))
            else:
                self.skipped.append(frame)
        if not any(path.parent == frame_dir for path, _ in self.samples):
            raise DataError(f"no frame of {str(frame_dir)!r} has a reference man_seg<t>.tif in {str(seg_dir)!r}")
