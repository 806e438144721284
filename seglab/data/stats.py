"""Class statistics behind ``seglab data stats``: pixel counts, frequencies and median-frequency weights.

Median-frequency balancing (Eigen & Fergus, "Predicting Depth, Surface Normals and Semantic Labels
with a Common Multi-Scale Convolutional Architecture", ICCV 2015, sec. 4.3; used by SegNet,
Badrinarayanan et al., TPAMI 2017, sec. 3.5): the weight of class c is
``w_c = median_freq / freq_c``, where ``freq_c`` is the number of pixels of class c divided by the
total number of pixels in the images where c is present, and ``median_freq`` is the median of these
frequencies over the classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seglab.data.base import SegmentationDataset
from seglab.errors import ConfigError, InputError

__all__ = ["ClassStats", "compute_class_stats", "median_frequency_weights"]


def median_frequency_weights(pixel_counts: Sequence[float], image_pixel_totals: Sequence[float]) -> np.ndarray:
    """Return SegNet's median-frequency class weights.

    ``freq_c = pixel_counts[c] / image_pixel_totals[c]`` and ``w_c = median(freq) / freq_c``, the
    median being taken over the classes that occur (numpy's median: the mean of the two middle
    values for an even number of classes). Classes that never occur get weight 0 (they contribute
    no loss anyway).

    Args:
        pixel_counts: [C] pixels of each class over the dataset.
        image_pixel_totals: [C] total pixels of the images in which each class is present (all
            pixels of those images, ignore pixels included).

    Returns:
        [C] float64 weights.

    Raises:
        InputError: lengths differ, negative values, a count above its total, or no class occurs.
    """
    counts = np.asarray(pixel_counts, dtype=np.float64)
    totals = np.asarray(image_pixel_totals, dtype=np.float64)
    if counts.ndim != 1 or counts.shape != totals.shape:
        raise InputError(
            f"pixel_counts has shape {list(counts.shape)} and image_pixel_totals {list(totals.shape)}; "
            f"expected two [C] vectors of the same length"
        )
    if (counts < 0).any() or (totals < 0).any() or (counts > totals).any():
        raise InputError(
            "pixel_counts and image_pixel_totals must be non-negative with pixel_counts[c] <= "
            "image_pixel_totals[c] (a class cannot cover more than the images it occurs in)"
        )
    present = counts > 0
    if not present.any():
        raise InputError("no class has any pixel; median-frequency weights are undefined")
    freq = np.zeros_like(counts)
    freq[present] = counts[present] / totals[present]
    weights = np.zeros_like(counts)
    weights[present] = np.median(freq[present]) / freq[present]
    return weights


@dataclass
class ClassStats:
    """Per-class statistics of a dataset split (see ``compute_class_stats``).

    Attributes:
        classes: class names, index = train id.
        pixel_counts: [C] pixels of each class.
        image_counts: [C] number of images containing each class.
        image_pixel_totals: [C] total pixels of the images containing each class.
        ignored_pixels: pixels labelled with the ignore index.
        ignored_image_pixel_totals: total pixels of the images containing ignore pixels.
        total_pixels: all pixels of the items read.
        num_items: items read.
    """

    dataset: str
    split: str
    classes: tuple[str, ...]
    pixel_counts: np.ndarray
    image_counts: np.ndarray
    image_pixel_totals: np.ndarray
    ignored_pixels: int
    ignored_image_pixel_totals: int
    total_pixels: int
    num_items: int

    @property
    def share(self) -> np.ndarray:
        """[C] pixels of each class / all pixels (ignore included)."""
        return self.pixel_counts / max(self.total_pixels, 1)

    @property
    def frequency(self) -> np.ndarray:
        """[C] ``freq_c`` of median-frequency balancing (0 for absent classes)."""
        return np.divide(self.pixel_counts, self.image_pixel_totals,
                         out=np.zeros(len(self.classes)), where=self.image_pixel_totals > 0)

    @property
    def image_frequency(self) -> np.ndarray:
        """[C] fraction of the images that contain each class."""
        return self.image_counts / max(self.num_items, 1)

    @property
    def weights(self) -> np.ndarray:
        """[C] median-frequency class weights."""
        return median_frequency_weights(self.pixel_counts, self.image_pixel_totals)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per class: class, pixels, share, images, image_freq, freq, weight."""
        columns = zip(self.classes, self.pixel_counts, self.share, self.image_counts, self.image_frequency,
                      self.frequency, self.weights)
        return [
            {"class": name, "pixels": int(pixels), "share": float(share), "images": int(images),
             "image_freq": float(image_freq), "freq": float(freq), "weight": float(weight)}
            for name, pixels, share, images, image_freq, freq, weight in columns
        ]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (for ``--format json``)."""
        return {"dataset": self.dataset, "split": self.split, "num_items": self.num_items,
                "total_pixels": self.total_pixels, "ignored_pixels": self.ignored_pixels, "classes": self.rows()}


def compute_class_stats(
    dataset: SegmentationDataset,
    *,
    max_items: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ClassStats:
    """Count the pixels of every class over a dataset split (labels only; images are not decoded).

    Args:
        dataset: a ``SegmentationDataset``, read through ``raw_label`` and ``map_label`` (no
            transforms, images not decoded).
        max_items: read this many items, evenly spaced over the split; ``None`` reads all.
        progress: called as ``progress(done, total)`` after each item.

    Returns:
        a ``ClassStats``.

    Raises:
        DataError: an unreadable label or unknown label values (from the dataset).
    """
    num_classes = dataset.num_classes
    indices = _spread(len(dataset), max_items)
    pixel_counts = np.zeros(num_classes, dtype=np.int64)
    image_counts = np.zeros(num_classes, dtype=np.int64)
    image_totals = np.zeros(num_classes, dtype=np.int64)
    ignored = ignored_totals = total = 0
    for done, index in enumerate(indices, 1):
        mask = _train_ids(dataset, index)
        hist = np.bincount(mask[mask != dataset.ignore_index].ravel(), minlength=num_classes)[:num_classes]
        present = hist > 0
        pixel_counts += hist
        image_counts += present
        image_totals += present * mask.size
        item_ignored = int((mask == dataset.ignore_index).sum())
        ignored += item_ignored
        ignored_totals += mask.size if item_ignored else 0
        total += mask.size
        if progress is not None:
            progress(done, len(indices))
    return ClassStats(
        dataset=dataset.name or type(dataset).__name__, split=dataset.split, classes=tuple(dataset.classes),
        pixel_counts=pixel_counts, image_counts=image_counts, image_pixel_totals=image_totals,
        ignored_pixels=ignored, ignored_image_pixel_totals=ignored_totals, total_pixels=total,
        num_items=len(indices),
    )


def _train_ids(dataset: SegmentationDataset, index: int) -> np.ndarray:
    """[H, W] int64 train ids of item ``index`` (the label file, or the JSON/generated label, mapped)."""
    source = dataset.files(index)[1] if dataset.has_files else f"{dataset.name or 'dataset'} item {index}"
    return dataset.map_label(dataset.raw_label(index), source=source)


def _spread(length: int, max_items: int | None) -> list[int]:
    """``max_items`` indices evenly spaced over ``range(length)`` (all of them when ``None``)."""
    if max_items is None or max_items >= length:
        return list(range(length))
    if max_items < 1:
        raise ConfigError(f"max_items must be at least 1, got {max_items}")
    return sorted({int(i) for i in np.linspace(0, length - 1, max_items)})
