"""data.cache: each training image decoded (and resized) once, the samples bit-identical to the uncached ones."""

from __future__ import annotations

import pytest
import torch

from seglab.data import build_dataset
from seglab.data import cache as cache_module
from seglab.data.cache import DecodedCache, cache_decision, estimated_bytes
from seglab.engine.distributed import DistInfo
from seglab.engine.train import build_train_loader
from seglab.recipes import load_recipe

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def _batches(overrides: list[str], count: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    recipe = load_recipe("unet_camvid_cpu", overrides=overrides)
    loader, seeded, sampler = build_train_loader(recipe, CPU)
    sampler.set_epoch(1)  # a later epoch: the random crops and flips of epoch 1, from the cache
    seeded.epoch = 1
    batches = []
    for images, targets in loader:
        batches.append((images, targets))
        if len(batches) == count:
            break
    return batches, seeded


def test_cached_training_batches_equal_the_decoded_ones() -> None:
    cached, seeded = _batches(["data.cache=true"])
    assert isinstance(seeded.dataset, DecodedCache) and "decoded once and cached" in seeded.note
    plain, seeded = _batches(["data.cache=false"])
    assert not isinstance(seeded.dataset, DecodedCache) and "data.cache is false" in seeded.note
    for (a, b), (c, d) in zip(cached, plain, strict=True):
        assert a.shape == (4, 3, 120, 160)
        assert torch.equal(a, c) and torch.equal(b, d)


def test_the_cache_decodes_each_item_once_and_keeps_the_dataset_attributes() -> None:
    data = build_dataset("synthetic", split="train", num_images=5, size=(40, 48))
    calls = []
    original = type(data).__getitem__

    class Counting(type(data)):  # type: ignore[misc]
        def __getitem__(self, index: int):  # noqa: ANN204
            calls.append(index)
            return original(self, index)

    data.__class__ = Counting
    cached = DecodedCache(data, (20, 24))
    first = cached[2]
    again = cached[2]
    assert calls == [2] and first is again
    assert first[0].shape[-2:] == (20, 24) and first[1].shape[-2:] == (20, 24)
    assert cached.num_classes == data.num_classes and len(cached) == 5
    cached.fill()
    assert sorted(set(calls)) == [0, 1, 2, 3, 4] and len(calls) == 5


def test_auto_caches_only_what_fits_and_never_with_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    data = build_dataset("synthetic", split="train", num_images=8, size=(40, 48))
    need = estimated_bytes(data, None)
    assert need == 8 * (3 * 40 * 48 * data[0][0].element_size() + 40 * 48 * data[0][1].element_size())
    monkeypatch.setattr(cache_module, "available_memory", lambda: 100 * need)
    assert cache_decision("auto", data, None, workers=0)[0]
    cached, why = cache_decision("auto", data, None, workers=2)
    assert not cached and "data.workers=2" in why
    monkeypatch.setattr(cache_module, "available_memory", lambda: 2 * need)  # a quarter of it is too little
    cached, why = cache_decision("auto", data, None, workers=0)
    assert not cached and "would not fit" in why
    assert cache_decision(True, data, None, workers=2)[0]  # asked for: cached regardless
    assert not cache_decision(False, data, None, workers=0)[0]
