"""Deterministic, resumable data order and per-sample augmentation.

An interrupted run resumes mid-epoch with exactly the batches, and the augmentations, of an
uninterrupted one: the order of epoch e is a permutation seeded by (seed, e), the resumed epoch
skips the batches already seen, and each sample's random augmentation is seeded by
(seed, epoch, index) rather than drawn from a global stream that a restart would reset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from seglab.errors import DataError, SeglabError


class ResumableSampler(Sampler[int]):
    """Shuffled (or ordered) indices for this rank, starting at a given batch of the epoch.

    Like DistributedSampler, indices are padded by repetition to a multiple of world_size and
    rank r takes every world_size-th one.
    """

    def __init__(
        self, num_samples: int, *, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1, batch_size: int = 1
    ) -> None:
        self.num_samples = num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.batch_size = batch_size
        self.epoch = 0
        self.skip_batches = 0

    def set_epoch(self, epoch: int, *, skip_batches: int = 0) -> None:
        """Select the epoch's order and how many of this rank's batches were already consumed."""
        self.epoch = epoch
        self.skip_batches = skip_batches

    def _rank_indices(self) -> list[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.num_samples, generator=gen).tolist()
        else:
            order = list(range(self.num_samples))
        total = -(-self.num_samples // self.world_size) * self.world_size
        order += order[: total - len(order)]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._rank_indices()[self.skip_batches * self.batch_size :])

    def __len__(self) -> int:
        return len(self._rank_indices()) - self.skip_batches * self.batch_size


class SeededTransforms(Dataset):
    """Applies ``transforms`` to ``dataset[i]`` under an RNG seeded by (seed, epoch, i).

    The global RNG is forked, so the model's own randomness (dropout) is not disturbed.
    """

    def __init__(self, dataset: Dataset, transforms: Callable[..., Any] | None, *, seed: int) -> None:
        self.dataset = dataset
        self.transforms = transforms
        self.seed = seed
        self.epoch = 0
        self.note = ""  # how samples are read, for the start-of-run line (e.g. "decoded once and cached")

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        # The item is drawn under the same seed: a dataset wrapper that samples (DeepMask's patches,
        # seglab.data.patches) is then as reproducible and resumable as the transforms.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index)
            try:
                sample = self.dataset[index]
                return sample if self.transforms is None else self.transforms(*sample)
            except SeglabError:
                raise  # already names its file
            except Exception as exc:  # noqa: BLE001 - any failure inside a loader worker, named by its sample
                raise DataError(f"{describe_item(self.dataset, index)}: {type(exc).__name__}: "
                                f"{' '.join(str(exc).split())[:200]}") from exc


def describe_item(dataset: Any, index: int) -> str:
    """How an error names training item ``index``: its files where the dataset has them, else its index."""
    name = f"item {index} of {type(dataset).__name__}"
    try:
        files = dataset.files(index)
    except Exception:  # noqa: BLE001 - a dataset without files (synthetic) or one that failed on this item
        return name
    return f"{name} ({', '.join(str(f) for f in files if f is not None)})"
