"""Decode each training image once: an in-memory cache of samples at training resolution (``data.cache``).

A reduced-resolution recipe resizes every image to ``data.resize`` before its random augmentation
(``seglab.data.transforms.train_transforms``). That resize and the decoding before it are deterministic,
so ``DecodedCache`` does both once per item and keeps the uint8 image and mask in memory; the loader's
transforms then start after the resize. Samples are bit-identical to the uncached ones
(tests/data/test_cache.py), so runs and resumes do not change.

``data.cache: auto`` (the default) caches when the samples fit in ``CACHE_FRACTION`` of the memory
available now (at most ``CACHE_MAX_BYTES``) and the loader has no worker processes (workers would each fill
their own copy); ``true`` caches regardless of the budget and fills the cache before the workers start.
"""

from __future__ import annotations

import os
from typing import Any

from torch.utils.data import Dataset
from torchvision.transforms import v2

CACHE_FRACTION = 0.25  # of MemAvailable: the model, activations and evaluation need the rest
CACHE_MAX_BYTES = 4 * 2**30


def available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable`` of /proc/meminfo), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def sample_bytes(sample: Any) -> int:
    """Bytes held by a sample's tensors (image, mask, ...)."""
    return sum(t.numel() * t.element_size() for t in sample if hasattr(t, "element_size"))


class DecodedCache(Dataset):
    """``dataset[i]`` decoded (and resized to ``size`` when given) once, then served from memory.

    Args:
        dataset: a semantic dataset returning (image, mask) tv_tensors, with no transforms of its own.
        size: (H, W) every sample is resized to, as ``train_transforms(base_size=...)`` would; None keeps it.
    """

    def __init__(self, dataset: Dataset, size: tuple[int, int] | None) -> None:
        self.dataset = dataset
        self.resize = None if size is None else v2.Resize(list(size), antialias=True)
        self.samples: dict[int, tuple[Any, ...]] = {}

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        sample = self.samples.get(index)
        if sample is None:
            sample = self.dataset[index]
            sample = tuple(self.resize(*sample) if self.resize is not None else sample)
            self.samples[index] = sample
        return sample

    def fill(self) -> None:
        """Decode every item now (before loader workers fork, so they share the filled cache)."""
        for index in range(len(self)):
            self[index]

    def files(self, index: int) -> Any:  # errors name the files (seglab.engine.sampling.describe_item)
        return self.dataset.files(index)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:  # num_classes, classes, ignore_index... of the dataset
        if name in ("dataset", "resize", "samples"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def estimated_bytes(dataset: Dataset, size: tuple[int, int] | None) -> int:
    """Bytes the cache of ``dataset`` would hold: its first sample (resized to ``size``) times its length."""
    first = DecodedCache(dataset, size)[0]
    return sample_bytes(first) * len(dataset)  # type: ignore[arg-type]


def cache_decision(setting: bool | str, dataset: Dataset, size: tuple[int, int] | None, *,
                   workers: int) -> tuple[bool, str]:
    """(cache or not, why) for ``data.cache`` = ``setting`` (True, False or "auto")."""
    if setting is False:
        return False, "data.cache is false"
    if setting == "auto" and workers > 0:  # decided before any sample is decoded
        return False, f"data.workers={workers} (each worker would fill its own copy; set data.cache: true)"
    need = estimated_bytes(dataset, size)
    if setting is True:
        return True, f"data.cache: {need / 2**20:.0f} MiB"
    available = available_memory()
    budget = CACHE_MAX_BYTES if available is None else min(CACHE_MAX_BYTES, int(available * CACHE_FRACTION))
    if need > budget:
        return False, f"{need / 2**20:.0f} MiB would not fit the cache budget of {budget / 2**20:.0f} MiB"
    return True, f"{need / 2**20:.0f} MiB of decoded samples"
