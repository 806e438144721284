"""SyntheticShapes: determinism, target consistency across tasks, and basic learnability."""

from __future__ import annotations

import pytest
import torch

from seglab.data import SyntheticShapes, build_dataset
from seglab.errors import ConfigError


def test_deterministic_per_index() -> None:
    dataset = SyntheticShapes(num_images=8, seed=3)
    image_a, mask_a = dataset[5]
    image_b, mask_b = dataset[5]
    assert torch.equal(image_a, image_b) and torch.equal(mask_a, mask_b)
    image_c, mask_c = SyntheticShapes(num_images=8, seed=3)[5]
    assert torch.equal(image_a, image_c) and torch.equal(mask_a, mask_c)


def test_seeds_and_splits_differ() -> None:
    image, _ = SyntheticShapes(seed=0)[0]
    assert not torch.equal(image, SyntheticShapes(seed=1)[0][0])
    assert not torch.equal(image, SyntheticShapes(seed=0, split="val")[0][0])
    assert not torch.equal(image, SyntheticShapes(seed=0)[1][0])


def test_semantic_sample() -> None:
    dataset = build_dataset("synthetic", split="train", num_images=6, size=(64, 80))
    assert len(dataset) == 6 and dataset.num_classes == 4
    image, mask = dataset[0]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 64, 80)
    assert mask.dtype == torch.int64 and tuple(mask.shape) == (64, 80)
    assert 0 <= int(mask.min()) and int(mask.max()) <= 3
    with pytest.raises(IndexError):
        dataset[6]


def test_instance_targets_match_semantic() -> None:
    semantic = SyntheticShapes(num_images=12)
    instance = SyntheticShapes(num_images=12, task="instance")
    for index in range(12):
        _, mask = semantic[index]
        _, target = instance[index]
        masks, boxes, labels = target["masks"], target["boxes"], target["labels"]
        assert masks.dtype == torch.uint8 and labels.dtype == torch.int64
        assert masks.shape[0] == boxes.shape[0] == labels.shape[0] >= 1
        assert torch.equal(masks.bool().any(0), mask > 0)  # union of instances = things
        assert (masks.sum(0) <= 1).all()  # visible masks do not overlap
        for k in range(labels.numel()):
            visible = masks[k].bool()
            assert visible.any(), "hidden shapes must be dropped"
            assert (mask[visible] == labels[k]).all()
            ys, xs = torch.nonzero(visible, as_tuple=True)
            expected = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
            assert torch.equal(boxes[k].as_subclass(torch.Tensor), expected)


def test_panoptic_targets_match_semantic() -> None:
    for index in range(8):
        _, mask = SyntheticShapes(num_images=8)[index]
        _, target = SyntheticShapes(num_images=8, task="panoptic")[index]
        assert torch.equal(target["semantic"], mask)
        ids = target["instance_ids"]
        assert ids.dtype == torch.int64
        assert torch.equal(ids > 0, mask > 0)
        present = sorted(set(ids.unique().tolist()) - {0})
        assert present == list(range(1, len(present) + 1))
        for instance_id in present:
            assert mask[ids == instance_id].unique().numel() == 1


def test_shapes_stand_out_from_background() -> None:
    # Learnability proxy: large shapes whose colour differs clearly from the background.
    dataset = SyntheticShapes(num_images=16)
    gaps, fractions = [], []
    for index in range(16):
        image, mask = dataset[index]
        image = image.float()
        gaps.append((image[:, mask > 0].mean(1) - image[:, mask == 0].mean(1)).abs().mean())
        fractions.append((mask > 0).float().mean())
    assert torch.stack(gaps).mean() > 30
    assert 0.05 < torch.stack(fractions).mean() < 0.6


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="train, val"):
        SyntheticShapes(split="test")
    with pytest.raises(ConfigError, match="semantic, instance, panoptic"):
        SyntheticShapes(task="depth")
    with pytest.raises(ConfigError, match="size"):
        SyntheticShapes(size=(8, 8))
    with pytest.raises(ConfigError, match="num_imgs"):
        build_dataset("synthetic", split="train", num_imgs=3)
