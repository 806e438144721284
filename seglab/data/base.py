"""The dataset contract every segmentation dataset follows, and the image/label readers behind it.

A dataset yields ``(image, mask)``: ``tv_tensors.Image`` uint8 ``[3, H, W]`` (grayscale sources are
repeated to 3 channels) and ``tv_tensors.Mask`` int64 ``[H, W]`` with values in ``[0, num_classes)``
or ``ignore_index`` (255). Raw label files are mapped to these train ids by ``map_label``; the raw
values a dataset accepts are ``raw_values`` (used by ``seglab data check``).

Files are read as stored: the EXIF orientation tag is not applied (no ``ImageOps.exif_transpose``),
to images and masks alike, so a mask stays aligned with the pixels of its image as they are stored
(``seglab data check`` warns about tagged files, which viewers show rotated or mirrored).
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from torch.utils.data import Dataset
from torchvision import tv_tensors

from seglab.errors import ConfigError, DataError

IGNORE_INDEX = 255
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
# Single-channel modes whose pixel values are class ids; anything else is not an index mask.
INDEX_MASK_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L", "1")
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, PILImage.DecompressionBombError)

EXIF_ORIENTATION = 0x0112  # the EXIF tag; 1 = as stored, 2..8 = how viewers mirror or rotate the pixels
ORIENTATIONS = {2: "mirrored left-right", 3: "rotated 180 degrees", 4: "mirrored top-bottom",
                5: "mirrored across the main diagonal", 6: "rotated 90 degrees clockwise",
                7: "mirrored across the anti-diagonal",
                8: "rotated 90 degrees counter-clockwise"}  # fmt: skip

Transforms = Callable[..., Any]


def file_problem(path: str | Path) -> str:
    """Say why ``path`` cannot be read as an image file, from its directory entry alone ("" if none).

    Finds what a ``stat`` shows without reading: a missing file or broken symlink, a directory or
    another non-regular entry (reading a FIFO would block), no read permission (judged from the mode
    bits too, so root gets the same answer as other users), zero bytes. Truncated or corrupt files
    show up only when decoded (``open_image_file``).
    """
    path = Path(path)
    try:
        info = path.stat()
    except OSError as err:
        if path.is_symlink():
            return f"broken symlink to {os.readlink(path)!r}; restore its target or remove the link"
        return f"not found ({err.strerror})"
    if stat.S_ISDIR(info.st_mode):
        return "a directory, not an image file; rename or move it out of the folder"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a FIFO, socket or device); replace it with the image file"
    if not info.st_mode & 0o444 or not os.access(path, os.R_OK):
        return f"no read permission (mode {stat.filemode(info.st_mode)}); make it readable (chmod a+r)"
    if info.st_size == 0:
        return "empty file (0 bytes); re-export or re-download it"
    return ""


def exif_orientation(image: PILImage.Image) -> int:
    """Return the EXIF orientation tag of an opened image: 1 (as stored) when absent or malformed, else 2..8."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION)
    except _READ_ERRORS:  # a broken EXIF block: Pillow cannot read the tag, so nothing applies it either
        return 1
    return value if isinstance(value, int) and value in ORIENTATIONS else 1


def file_orientation(path: str | Path) -> int:
    """Return the EXIF orientation tag of an image file, reading its header only (1 when absent or unreadable)."""
    if file_problem(path):
        return 1
    try:
        with PILImage.open(path) as image:
            return exif_orientation(image)
    except _READ_ERRORS:
        return 1


def open_image_file(path: str | Path) -> PILImage.Image:
    """Open and fully decode an image file with Pillow, as stored (the EXIF orientation is not applied).

    Raises:
        DataError: the file is missing, not a readable regular file, not an image, or truncated; the
            message names the file.
    """
    problem = file_problem(path)
    if problem:
        raise DataError(f"cannot read image file {str(path)!r}: {problem} (or remove it and its pair from the dataset)")
    try:
        # Read the bytes first so no file handle outlives this call (even on errors or multi-frame TIFFs).
        image = PILImage.open(io.BytesIO(Path(path).read_bytes()))
        image.load()  # Pillow decodes lazily; force it so truncation shows up here
    except _READ_ERRORS as err:
        raise DataError(
            f"cannot read image file {str(path)!r}: {err}. Re-export or re-download it, "
            f"or remove it (and its pair) from the dataset"
        ) from err
    return image


def read_image(path: str | Path) -> tv_tensors.Image:
    """Read an image file as ``tv_tensors.Image`` uint8 ``[3, H, W]``.

    Grayscale and palette images are converted to RGB and alpha is dropped. 16-bit images are scaled
    to 8 bits (divided by 257); 32-bit integer and float images are min-max scaled per image.
    """
    image = open_image_file(path)
    if image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / max(high - low, 1e-12) * 255.0
        array = np.repeat(np.round(scaled).astype(np.uint8)[..., None], 3, axis=2)
    elif image.mode.startswith("I;16"):
        gray = (np.asarray(image).astype(np.uint32) // 257).astype(np.uint8)
        array = np.repeat(gray[..., None], 3, axis=2)
    else:
        array = np.asarray(image.convert("RGB"))
    return tv_tensors.Image(torch.from_numpy(np.array(array.transpose(2, 0, 1), order="C")))


def read_label(path: str | Path) -> np.ndarray:
    """Read a single-channel index mask as its raw ``[H, W]`` values (uint8, or wider for 16/32 bit).

    Raises:
        DataError: unreadable file, or a colour (RGB/RGBA/...) mask instead of an index mask.
    """
    image = open_image_file(path)
    if image.mode not in INDEX_MASK_MODES:
        raise DataError(
            f"mask {str(path)!r} is a colour image (mode {image.mode!r}); expected a single-channel "
            f"index PNG whose pixel values are class ids. Convert the colours to class ids with the "
            f"dataset palette and save as an 8-bit grayscale ('L') PNG; `seglab data check` lists all such files"
        )
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8)
    return np.asarray(image)


def check_split(dataset: str, split: str, valid: Iterable[str]) -> None:
    """Raise ConfigError when ``split`` is not one of ``valid`` (listing the valid ones)."""
    valid = tuple(valid)
    if split not in valid:
        raise ConfigError(
            f"unknown split {split!r} for dataset {dataset!r}; valid splits: {', '.join(valid)}"
        )


def default_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """Return the PASCAL VOC colour map's first ``num_classes`` colours (bit-interleaved, distinct)."""
    palette = []
    for index in range(num_classes):
        r = g = b = 0
        value = index
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette.append((r, g, b))
    return palette


class SegmentationDataset(Dataset):
    """Base class of semantic segmentation datasets backed by (image file, label file) pairs.

    Subclasses set ``classes`` and ``palette`` and fill ``self.samples`` with (image, label) paths;
    ``label_map`` (raw value -> train id or ``ignore_index``) describes the label encoding, ``None``
    meaning raw values already are train ids.

    Args:
        split: the split name, kept for display.
        transforms: a callable applied jointly as ``transforms(image, mask)`` and returning the pair,
            e.g. a ``torchvision.transforms.v2.Compose`` (see ``seglab.data.transforms``).
    """

    name: str = ""
    classes: tuple[str, ...] = ()
    palette: list[tuple[int, int, int]] = []
    ignore_index: int = IGNORE_INDEX
    task: str = "semantic"
    label_map: dict[int, int] | None = None
    has_files: bool = True  # False for generated data (no files to check)
    palette_labels: bool = False  # True where the format stores class ids as palette indices (VOC)

    def __init__(self, *, split: str, transforms: Transforms | None = None) -> None:
        self.split = split
        self.transforms = transforms
        self.samples: list[tuple[Path, Path]] = []

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def raw_values(self) -> set[int]:
        """The raw label-file values this dataset understands (all others are errors)."""
        if self.label_map is not None:
            return set(self.label_map)
        return set(range(self.num_classes)) | {self.ignore_index}

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={self.split!r}, items={len(self)}, classes={self.num_classes})"

    def files(self, index: int) -> tuple[Path, Path]:
        """Return the (image, label) file paths of item ``index``."""
        return self.samples[index]

    def raw_label(self, index: int) -> np.ndarray:
        """Return item ``index``'s label file as raw values ``[H, W]``, before ``map_label``."""
        return read_label(self.files(index)[1])

    def map_label(self, raw: np.ndarray, *, source: str | Path = "label") -> np.ndarray:
        """Map raw label values to train ids.

        Args:
            raw: [H, W] integer array of raw label values.
            source: what to name in the error message (usually the label file).

        Returns:
            [H, W] int64 with values in ``[0, num_classes)`` or ``ignore_index``.

        Raises:
            DataError: ``raw`` holds values outside ``raw_values``.
        """
        lut = self._label_lut()
        raw64 = raw.astype(np.int64, copy=False)
        inside = (raw64 >= 0) & (raw64 < lut.size)
        mapped = lut[np.where(inside, raw64, 0)]
        mapped[~inside] = -1
        if (mapped < 0).any():
            bad = np.unique(raw64[mapped < 0])
            shown = ", ".join(str(v) for v in bad[:10]) + (", ..." if bad.size > 10 else "")
            raise DataError(
                f"{str(source)!r} has label values {shown} that {self.name or type(self).__name__} does "
                f"not know (expected {_format_values(self.raw_values)}); fix the file or run "
                f"`seglab data check` to list every affected file"
            )
        return mapped

    def __getitem__(self, index: int) -> Any:
        image_path, label_path = self.files(index)
        image = read_image(image_path)
        raw = self.raw_label(index)  # subclasses with non-image labels (.mat) override raw_label
        check_same_size(image_path, tuple(image.shape[-2:]), label_path, raw.shape)
        mask = tv_tensors.Mask(torch.from_numpy(self.map_label(raw, source=label_path)))
        if self.transforms is not None:
            return self.transforms(image, mask)
        return image, mask

    def _label_lut(self) -> np.ndarray:
        lut = self.__dict__.get("_lut")
        if lut is None:
            table = self.label_map if self.label_map is not None else {v: v for v in self.raw_values}
            lut = np.full(max(256, max(table, default=0) + 1), -1, dtype=np.int64)
            for raw_value, train_id in table.items():
                lut[raw_value] = train_id
            self.__dict__["_lut"] = lut
        return lut


def check_same_size(
    image_path: str | Path, image_hw: Sequence[int], label_path: str | Path, label_hw: Sequence[int]
) -> None:
    """Raise DataError naming both files when an image and its label differ in size."""
    if tuple(image_hw) != tuple(label_hw):
        raise DataError(
            f"size mismatch: image {str(image_path)!r} is {image_hw[1]}x{image_hw[0]} (WxH) but label "
            f"{str(label_path)!r} is {label_hw[1]}x{label_hw[0]}; regenerate the label at the image size "
            f"or remove the pair"
        )


def _format_values(values: Iterable[int]) -> str:
    values = sorted(values)
    # Show runs compactly: 0..10, 255
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}..{v}")
            start = None
    return "{" + ", ".join(parts) + "}"
