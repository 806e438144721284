"""Joint transforms keep image and targets aligned; collate pads and converts."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors

from seglab.data import (
    SyntheticShapes, collate_instance, collate_panoptic, collate_semantic, eval_transforms, train_transforms,
)  # fmt: skip
from seglab.data.masks import CrowdMask
from seglab.errors import DataError
from seglab.structures import InstanceTarget


def _encoded_pair(height: int = 64, width: int = 96, block: int = 8) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """An image whose pixel values encode the mask: value = 20 + 60 * class, in square blocks."""
    generator = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 4, (height // block, width // block), generator=generator)
    mask = blocks.repeat_interleave(block, 0).repeat_interleave(block, 1)
    image = (20 + 60 * mask).to(torch.uint8)[None].repeat(3, 1, 1)
    return tv_tensors.Image(image), tv_tensors.Mask(mask)


def _decode(image: torch.Tensor) -> torch.Tensor:
    return ((image[0].float() - 20) / 60).round().long()


def test_crop_and_flip_keep_alignment_exactly() -> None:
    transform = train_transforms(crop_size=(48, 40), scale_range=None)
    for seed in range(6):
        torch.manual_seed(seed)
        image, mask = transform(*_encoded_pair())
        assert tuple(image.shape) == (3, 48, 40) and tuple(mask.shape) == (48, 40)
        assert torch.equal(_decode(image), mask)


def test_random_scale_keeps_alignment() -> None:
    transform = train_transforms(crop_size=(64, 64), scale_range=(0.5, 2.0))
    for seed in range(6):
        torch.manual_seed(seed)
        image, mask = transform(*_encoded_pair(block=16))
        assert image.dtype == torch.uint8 and mask.dtype == torch.int64
        valid = mask != 255
        agree = (_decode(image)[valid] == mask[valid]).float().mean()
        assert agree > 0.9  # only blurred block edges may disagree; a misaligned pair scores about 0.3


def test_crop_pads_mask_with_ignore() -> None:
    image = tv_tensors.Image(torch.full((3, 32, 32), 200, dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.ones(32, 32, dtype=torch.int64))
    torch.manual_seed(0)
    out_image, out_mask = train_transforms(crop_size=(64, 64), scale_range=None, hflip=False)(image, mask)
    assert tuple(out_mask.shape) == (64, 64)
    padded = out_mask == 255
    assert int(padded.sum()) == 64 * 64 - 32 * 32
    assert (out_image[:, padded] == 0).all() and (out_image[:, ~padded] == 200).all()
    assert (out_mask[~padded] == 1).all()


def test_instance_targets_follow_flip_and_crop() -> None:
    transform = train_transforms(crop_size=(80, 80), scale_range=(0.8, 1.2), task="instance")
    dataset = SyntheticShapes(num_images=6, task="instance", transforms=transform)
    for seed in range(6):
        torch.manual_seed(seed)
        _, target = dataset[seed]
        masks, boxes = target["masks"], target["boxes"]
        assert masks.shape[0] == boxes.shape[0] == target["labels"].shape[0]
        for k in range(masks.shape[0]):
            ys, xs = torch.nonzero(masks[k], as_tuple=True)
            if xs.numel() == 0:
                continue
            x1, y1, x2, y2 = boxes[k].tolist()
            assert x1 <= xs.min() + 1 and xs.max() <= x2 + 1 and y1 <= ys.min() + 1 and ys.max() <= y2 + 1


def test_eval_resize_uses_nearest_for_masks() -> None:
    image, mask = _encoded_pair()
    out_image, out_mask = eval_transforms(size=(32, 48))(image, mask)
    assert tuple(out_image.shape) == (3, 32, 48) and tuple(out_mask.shape) == (32, 48)
    assert set(out_mask.unique().tolist()) <= set(mask.unique().tolist())
    same_image, same_mask = eval_transforms()(image, mask)
    assert torch.equal(same_image, image) and torch.equal(same_mask, mask)


def test_collate_semantic_pads_to_largest() -> None:
    small = (
        tv_tensors.Image(torch.full((3, 4, 6), 255, dtype=torch.uint8)),
        tv_tensors.Mask(torch.zeros(4, 6, dtype=torch.int64)),
    )
    large = (
        tv_tensors.Image(torch.zeros(3, 5, 7, dtype=torch.uint8)),
        tv_tensors.Mask(torch.ones(5, 7, dtype=torch.int64)),
    )
    images, masks = collate_semantic([small, large])
    assert images.dtype == torch.float32 and tuple(images.shape) == (2, 3, 5, 7)
    assert masks.dtype == torch.int64 and tuple(masks.shape) == (2, 5, 7)
    assert type(images) is torch.Tensor and type(masks) is torch.Tensor
    assert images[0, :, :4, :6].eq(1.0).all() and images[0, :, 4:].eq(0).all()
    assert masks[0, :4, :6].eq(0).all() and masks[0, 4:].eq(255).all() and masks[0, :, 6:].eq(255).all()


def test_collate_instance_returns_instance_targets() -> None:
    dataset = SyntheticShapes(num_images=2, task="instance")
    images, targets = collate_instance([dataset[0], dataset[1]])
    assert len(images) == len(targets) == 2
    assert images[0].dtype == torch.float32 and float(images[0].max()) <= 1.0
    assert all(isinstance(target, InstanceTarget) for target in targets)
    target = targets[0]
    assert target.boxes_xyxy.dtype == torch.float32 and target.labels.dtype == torch.int64
    assert target.masks.dtype == torch.uint8 and target.crowd is None
    assert type(target.masks) is torch.Tensor and type(target.boxes_xyxy) is torch.Tensor
    assert torch.equal(target.boxes_xyxy, dataset[0][1]["boxes"].as_subclass(torch.Tensor))


def test_collate_instance_converts_boxes_and_crowd() -> None:
    masks = torch.zeros(1, 4, 6, dtype=torch.bool)
    masks[0, 1:3, 2:5] = True
    target = dict(masks=tv_tensors.Mask(masks), labels=torch.tensor([2], dtype=torch.int32),
                  boxes=tv_tensors.BoundingBoxes([[2, 1, 3, 2]], format="XYWH", canvas_size=(4, 6)),
                  crowd=CrowdMask(torch.zeros(4, 6, dtype=torch.bool)))
    _, (out,) = collate_instance([(tv_tensors.Image(torch.zeros(3, 4, 6, dtype=torch.uint8)), target)])
    assert out.boxes_xyxy.tolist() == [[2, 1, 5, 3]] and out.labels.dtype == torch.int64
    assert out.masks.dtype == torch.uint8 and out.crowd.dtype == torch.uint8 and out.crowd.shape == (4, 6)


def test_collate_instance_names_the_bad_item() -> None:
    dataset = SyntheticShapes(num_images=2, task="instance")
    good = dataset[0]
    image, target = dataset[1]
    bad = dict(target, labels=torch.zeros_like(target["labels"]))  # 0 is the background, never an instance
    with pytest.raises(DataError, match=r"batch item 1: InstanceTarget\.labels holds 0"):
        collate_instance([good, (image, bad)])
    with pytest.raises(DataError, match=r"batch item 0: .*missing boxes"):
        collate_instance([(image, {"masks": target["masks"], "labels": target["labels"]})])
    with pytest.raises(DataError, match=r"batch item 0: an instance target must be a dict.*task='instance'"):
        collate_instance([SyntheticShapes(num_images=1)[0]])
    with pytest.raises(DataError, match=r"batch item 0: image is \[3, 32, 32\] but the instance labels are 96x128"):
        collate_instance([(tv_tensors.Image(torch.zeros(3, 32, 32, dtype=torch.uint8)), target)])
    with pytest.raises(DataError, match="empty batch"):
        collate_instance([])


def test_collate_panoptic_names_the_bad_item() -> None:
    dataset = SyntheticShapes(num_images=2, task="panoptic")
    images, targets = collate_panoptic([dataset[0], dataset[1]])
    assert len(images) == 2 and images[0].dtype == torch.float32 and targets[1].semantic.dtype == torch.int64
    image, target = dataset[1]
    with pytest.raises(DataError, match=r"batch item 1: a panoptic target must be a dict.*task='panoptic'"):
        collate_panoptic([dataset[0], SyntheticShapes(num_images=2, task="instance")[1]])
    with pytest.raises(DataError, match=r"batch item 0: image is \[3, 32, 32\] but the panoptic labels are 96x128"):
        collate_panoptic([(tv_tensors.Image(torch.zeros(3, 32, 32, dtype=torch.uint8)), target)])
    with pytest.raises(DataError, match="collate_panoptic got an empty batch"):
        collate_panoptic([])
