"""Instance chains: boxes tight on what a crop leaves of each mask; K = 0 through every step and collate."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from seglab.data import collate_instance, train_transforms
from seglab.data.augment import build_augmentation
from seglab.data.masks import CrowdMask, instance_target
from seglab.structures import InstanceTarget

SIZE = 64


def _tight(mask: torch.Tensor) -> list[float]:
    """The tight box of one mask, computed here independently: pixel edges (x2 = last column + 1)."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _shape(kind: str) -> torch.Tensor:
    """[H, W] bool: an upright triangle (apex at the top centre) or a circle, filling most of the image."""
    yy, xx = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    if kind == "circle":
        return (xx - 32) ** 2 + (yy - 32) ** 2 <= 26**2
    slope = math.tan(math.radians(30))  # sides 30 degrees off vertical: narrow at the apex
    return (yy >= 6) & (yy <= 58) & ((xx - 32).abs() <= (yy - 6) * slope)


def _sample(masks: torch.Tensor, labels: list[int]) -> tuple[tv_tensors.Image, dict[str, Any]]:
    crowd = torch.zeros(masks.shape[-2:], dtype=torch.uint8)
    crowd[-2:, :] = 1  # a crowd strip along the bottom: moved with the image, never filtered
    image = tv_tensors.Image(torch.full((3, *masks.shape[-2:]), 128, dtype=torch.uint8))
    return image, instance_target(masks.to(torch.uint8), torch.tensor(labels), crowd)


CROPS = {
    "train_transforms": lambda: train_transforms(crop_size=(24, 24), scale_range=None, hflip=False, task="instance"),
    "build_augmentation": lambda: build_augmentation([{"name": "random_crop", "size": [24, 24]}], task="instance"),
}


@pytest.mark.parametrize("chain", sorted(CROPS))
@pytest.mark.parametrize("kind", ["triangle", "circle"])
def test_shape_cut_by_a_crop_gets_the_tight_box_of_its_visible_part(kind: str, chain: str) -> None:
    transform = CROPS[chain]()
    clip_only = v2.Compose([v2.RandomCrop((24, 24)), v2.ClampBoundingBoxes()])  # torchvision alone
    looser = 0
    for seed in range(12):
        image, target = _sample(_shape(kind)[None], [3])
        torch.manual_seed(seed)
        _, out = transform(image, target)
        torch.manual_seed(seed)
        _, clipped = clip_only(image, target)
        visible = clipped["masks"][0].bool()
        if not visible.any():  # the crop missed the shape: it is removed with its label
            assert out["masks"].shape == (0, 24, 24) and out["labels"].numel() == 0
            continue
        assert out["labels"].tolist() == [3]
        assert out["boxes"].as_subclass(torch.Tensor)[0].tolist() == _tight(visible)
        assert torch.equal(out["crowd"], clipped["crowd"])  # the crowd mask was cropped, not filtered
        looser += int(clipped["boxes"].as_subclass(torch.Tensor)[0].tolist() != _tight(visible))
    assert looser > 0  # v2 alone only clips the box: the recomputation is what makes it tight


def test_instances_all_cropped_away_give_empty_tensors_of_the_right_shapes() -> None:
    masks = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    masks[0, 1:4, 1:4] = True  # two small objects in the top-left corner
    masks[1, 0:2, 5:7] = True
    transform = train_transforms(crop_size=(16, 16), scale_range=None, hflip=False, task="instance")
    emptied = 0
    for seed in range(8):
        torch.manual_seed(seed)
        image, out = transform(*_sample(masks, [1, 2]))
        k = out["labels"].numel()
        assert out["masks"].shape == (k, 16, 16) and out["boxes"].shape == (k, 4)
        assert out["crowd"].shape == (16, 16) and isinstance(out["crowd"], CrowdMask)
        if k == 0:
            emptied += 1
            assert out["masks"].dtype == torch.uint8 and out["labels"].dtype == torch.int64
            (float_image,), (instances,) = collate_instance([(image, out)])
            assert float_image.shape == (3, 16, 16) and len(instances) == 0
            assert instances.masks.shape == (0, 16, 16) and instances.boxes_xyxy.shape == (0, 4)
            assert instances.labels.shape == (0,) and instances.crowd.shape == (16, 16)
    assert emptied >= 6  # the corner objects survive a random 16x16 crop of 64x64 only rarely


STEPS = [
    [{"name": "random_resize", "scale_range": [0.5, 1.5]}],
    [{"name": "scale_jitter", "short_side": [48, 80], "max_size": 160}],
    [{"name": "rotate", "degrees": 10}],
    [{"name": "elastic"}],
    [{"name": "local_contrast_norm"}],
    [{"name": "gaussian_blur", "p": 1.0}],
    [{"name": "color_jitter"}],
    [{"name": "hflip", "p": 1.0}],
    [{"name": "vflip", "p": 1.0}],
    [{"name": "random_crop", "size": [40, 48]}],
]


@pytest.mark.parametrize("specs", STEPS + ["built-in"], ids=[s[0]["name"] for s in STEPS] + ["built-in"])
def test_no_instances_pass_every_step_and_collate(specs: Any) -> None:
    if specs == "built-in":
        transform = train_transforms(crop_size=(40, 48), scale_range=(0.5, 1.5), base_size=(56, 72), task="instance")
    else:
        transform = build_augmentation(specs, task="instance")
    torch.manual_seed(0)
    image, out = transform(*_sample(torch.zeros(0, SIZE, 80, dtype=torch.bool), []))
    height, width = image.shape[-2:]
    assert out["masks"].shape == (0, height, width) and out["boxes"].shape == (0, 4)
    assert out["labels"].shape == (0,) and out["crowd"].shape == (height, width)
    images, targets = collate_instance([(image, out), _sample(_shape("circle")[None], [1])])  # a half-empty batch
    assert [len(t) for t in targets] == [0, 1] and all(isinstance(t, InstanceTarget) for t in targets)
    assert images[0].shape == (3, height, width) and images[0].dtype == torch.float32
