"""Named augmentations: image and targets stay aligned, fills, determinism, recipe errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from seglab.data import SyntheticShapes, eval_transforms, train_transforms
from seglab.data.augment import (
    ElasticGrid,
    LocalContrastNorm,
    build_augmentation,
    list_augmentations,
    local_contrast_norm,
)
from seglab.boxes import masks_to_boxes
from seglab.errors import ConfigError

ALL = [
    {"name": "random_resize", "scale_range": [0.5, 2.0]},
    {"name": "scale_jitter", "short_side": [48, 80], "max_size": 160},
    {"name": "rotate", "degrees": 10},
    {"name": "elastic"},
    {"name": "local_contrast_norm"},
    {"name": "gaussian_blur"},
    {"name": "color_jitter", "hue": 0.05},
    {"name": "hflip"},
    {"name": "vflip"},
    {"name": "random_crop", "size": [56, 72]},
]


def _encoded_pair(height: int = 64, width: int = 96, block: int = 8) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """An image whose pixel values encode the mask: value = 20 + 60 * class, in square blocks."""
    generator = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 4, (height // block, width // block), generator=generator)
    mask = blocks.repeat_interleave(block, 0).repeat_interleave(block, 1)
    image = (20 + 60 * mask).to(torch.uint8)[None].repeat(3, 1, 1)
    return tv_tensors.Image(image), tv_tensors.Mask(mask)


def _decode(image: torch.Tensor) -> torch.Tensor:
    return ((image[0].float() - 20) / 60).round().long()


def test_list_augmentations_names_the_survey_entries() -> None:
    assert list_augmentations() == sorted(
        ["hflip", "vflip", "random_resize", "random_crop", "rotate", "gaussian_blur", "elastic",
         "scale_jitter", "local_contrast_norm", "color_jitter"]
    )
    assert sorted(spec["name"] for spec in ALL) == list_augmentations()


@pytest.mark.parametrize(
    "spec",
    [{"name": "hflip", "p": 1.0}, {"name": "vflip", "p": 1.0}, {"name": "random_crop", "size": [40, 56]},
     {"name": "random_crop", "size": [80, 120]}],
)
def test_flips_and_crops_keep_alignment_exactly_and_pad_with_ignore(spec: dict) -> None:
    transform = build_augmentation([spec])
    for seed in range(4):
        torch.manual_seed(seed)
        image, mask = transform(*_encoded_pair())
        valid = mask != 255
        assert torch.equal(_decode(image)[valid], mask[valid])
        assert (image[:, ~valid] == 0).all()  # padded image pixels are 0
    if spec.get("size") == [80, 120]:  # 64x96 padded to 80x120: exactly the padding is ignore
        assert int((~valid).sum()) == 80 * 120 - 64 * 96
    if spec["name"] == "hflip":
        assert torch.equal(mask, _encoded_pair()[1].flip(-1))


@pytest.mark.parametrize(
    "spec",
    [{"name": "random_resize", "scale_range": [0.5, 2.0]}, {"name": "rotate", "degrees": 10},
     {"name": "elastic"}, {"name": "scale_jitter", "short_side": [40, 100]}],
)
def test_resampling_augmentations_keep_alignment(spec: dict) -> None:
    transform = build_augmentation([spec])
    source_image, source_mask = _encoded_pair(block=16)
    moved = 0
    for seed in range(4):
        torch.manual_seed(seed)
        image, mask = transform(source_image, source_mask)
        assert image.dtype == torch.uint8 and mask.dtype == torch.int64
        assert image.shape[-2:] == mask.shape[-2:]
        assert set(mask.unique().tolist()) <= {0, 1, 2, 3, 255}  # NEAREST: no blended labels
        valid = mask != 255
        agree = (_decode(image)[valid] == mask[valid]).float().mean()
        assert agree > 0.9  # only interpolated block edges may disagree; a misaligned pair scores ~0.3
        moved += int(mask.shape != source_mask.shape or not torch.equal(mask, source_mask))
    assert moved >= 3  # the augmentation really changed the geometry


@pytest.mark.parametrize("name", ["gaussian_blur", "color_jitter", "local_contrast_norm"])
def test_photometric_augmentations_leave_masks_untouched(name: str) -> None:
    transform = build_augmentation([{"name": name, "p": 1.0} if name != "local_contrast_norm" else {"name": name}])
    source_image, source_mask = _encoded_pair()
    source_image = tv_tensors.Image((source_image.int() + torch.arange(96) % 7).to(torch.uint8))  # some texture
    torch.manual_seed(0)
    image, mask = transform(source_image, source_mask)
    assert torch.equal(mask, source_mask)
    assert image.dtype == torch.uint8 and image.shape == source_image.shape
    assert not torch.equal(image, source_image)


def test_rotate_fills_masks_with_ignore_and_instances_with_zero() -> None:
    image = tv_tensors.Image(torch.full((3, 64, 64), 200, dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.ones(64, 64, dtype=torch.int64))
    rotate = build_augmentation([{"name": "rotate", "degrees": 10}])
    filled = 0
    for seed in range(6):
        torch.manual_seed(seed)
        out_image, out_mask = rotate(image, mask)
        assert set(out_mask.unique().tolist()) <= {1, 255}
        filled += int((out_mask == 255).sum())
        assert (out_image[:, out_mask == 255] < 200).all()  # the image's fill (0) reaches those pixels
    assert filled > 6 * 20  # corners of a 64x64 square rotated by up to 10 degrees
    instance = dict(masks=tv_tensors.Mask(torch.ones(1, 64, 64, dtype=torch.uint8)),
                    boxes=tv_tensors.BoundingBoxes([[0, 0, 64, 64]], format="XYXY", canvas_size=(64, 64)),
                    labels=torch.tensor([1]))
    torch.manual_seed(3)  # an angle of -9.9 degrees
    _, target = build_augmentation([{"name": "rotate", "degrees": 10}], task="instance")(image, instance)
    assert set(target["masks"].unique().tolist()) == {0, 1}


def test_panoptic_semantic_and_instance_ids_move_together() -> None:
    transform = build_augmentation([{"name": "rotate"}, {"name": "elastic"}, {"name": "random_crop", "size": 80}],
                                   task="panoptic")
    dataset = SyntheticShapes(num_images=4, task="panoptic", size=(64, 96), transforms=transform)
    for index in range(4):
        torch.manual_seed(index)
        _, target = dataset[index]
        semantic, ids = target["semantic"], target["instance_ids"]
        assert torch.equal(semantic == 255, ids == 255)
        assert torch.equal((semantic >= 1) & (semantic <= 3), (ids >= 1) & (ids < 255))


@pytest.mark.parametrize(
    "specs",
    [[{"name": "hflip"}, {"name": "vflip"}, {"name": "random_crop", "size": [48, 64]}], ALL,
     [{"name": "color_jitter"}]],
)
def test_instance_boxes_are_tight_on_their_masks(specs: list) -> None:
    """Every instance chain ends with the boxes recomputed from the masks (after crops too, where
    v2 only clips a box to the window), and instances cropped away are removed."""
    transform = build_augmentation(specs, task="instance")
    dataset = SyntheticShapes(num_images=6, task="instance", size=(64, 96), transforms=transform)
    kept = 0
    for index in range(6):
        torch.manual_seed(index)
        _, target = dataset[index]
        masks, boxes = target["masks"], target["boxes"].as_subclass(torch.Tensor)
        assert masks.shape[0] == boxes.shape[0] == target["labels"].shape[0]
        assert (masks.flatten(1).sum(1) > 0).all()  # instances cropped away are removed
        assert torch.equal(boxes, masks_to_boxes(masks))
        kept += masks.shape[0]
    assert kept > 0


def test_same_seed_same_sample_and_only_torch_rng_used() -> None:
    transform = build_augmentation(ALL)
    random.seed(1)
    np.random.seed(1)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    outputs = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        outputs.append(transform(*_encoded_pair()))
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])
    assert not torch.equal(outputs[0][0], outputs[2][0])
    assert random.getstate() == python_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state()[1:3], numpy_state[1:3]))


def test_elastic_field_is_bicubic_over_coarse_nodes() -> None:
    elastic = ElasticGrid(grid=3, sigma=10.0)
    torch.manual_seed(0)
    nodes = torch.randn(1, 2, 3, 3) * 10.0  # the draw ElasticGrid makes, in pixels
    torch.manual_seed(0)
    field = elastic.displacement_field(33, 65)  # node i sits at pixel i * (size - 1) / 2
    assert field.shape == (1, 33, 65, 2)
    pixel_of_node = {(0, 0): (0, 0), (16, 32): (1, 1), (32, 64): (2, 2), (0, 64): (0, 2)}
    for (row, col), (i, j) in pixel_of_node.items():
        assert field[0, row, col, 0].item() == pytest.approx(nodes[0, 0, i, j].item() * 2 / 65, abs=1e-6)
        assert field[0, row, col, 1].item() == pytest.approx(nodes[0, 1, i, j].item() * 2 / 33, abs=1e-6)
    image, mask = _encoded_pair()
    same_image, same_mask = ElasticGrid(sigma=0.0)(image, mask)  # zero displacement: identity
    assert torch.equal(same_mask, mask) and torch.equal(same_image, image)


def test_local_contrast_norm_hand_worked() -> None:
    step = torch.zeros(3, 16, 20)
    step[..., 10:] = 1.0  # a vertical edge in the middle
    out = local_contrast_norm(step)
    assert torch.allclose(out, -out.flip(-1), atol=1e-5)  # antisymmetric about the edge
    assert out[0, 8, 9] < 0 < out[0, 8, 10]
    assert torch.allclose(local_contrast_norm(3 * step + 0.2), out, atol=1e-4)  # contrast invariant
    flat = tv_tensors.Image(torch.full((3, 8, 8), 77, dtype=torch.uint8))
    lcn = LocalContrastNorm()(flat)
    assert lcn.dtype == torch.uint8 and (lcn == 128).all()  # local mean -> 128


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([{"name": "rotat"}],
         r"data\.augment\[0\]\.name: unknown augmentation 'rotat'; did you mean 'rotate'\? valid names: "),
        ([{"name": "hflip"}, {"name": "rotate", "degrees": -5}],
         r"data\.augment\[1\]\.degrees: Input should be greater than 0"),
        ([{"name": "rotate", "degree": 5}],
         r"data\.augment\[0\]\.degree: unknown parameter of 'rotate'; did you mean 'degrees'"),
        ([{"name": "random_crop"}], r"data\.augment\[0\]\.size: required parameter of 'random_crop'"),
        ([{"name": "random_resize", "scale_range": [2, 1]}], r"data\.augment\[0\]\.scale_range: .*0 < low <= high"),
        ([{"name": "gaussian_blur", "kernel_size": 4}], r"data\.augment\[0\]\.kernel_size: kernel_size must be odd"),
        ([{"degrees": 3}], r"data\.augment\[0\]: missing 'name'"),
        (["hflip"], r"data\.augment\[0\]: expected a mapping"),
    ],
)
def test_bad_specs_name_the_field(specs: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_augmentation(specs)


def test_train_transforms_with_augment_resizes_first_then_replaces_the_chain() -> None:
    transform = train_transforms(crop_size=(8, 8), base_size=(32, 48), augment=[{"name": "vflip", "p": 1.0}])
    assert isinstance(transform.transforms[0], v2.Resize)
    source_image, source_mask = _encoded_pair(block=16)
    image, mask = transform(source_image, source_mask)
    assert tuple(mask.shape) == (32, 48)  # no crop: data.augment replaced crop_size
    assert torch.equal(mask, v2.Resize((32, 48))(source_mask).flip(0))  # resized, then flipped
    assert (_decode(image) == mask).float().mean() > 0.9
    with pytest.raises(ConfigError, match="unknown task"):
        build_augmentation([], task="depth")


def test_eval_transforms_keep_only_the_input_normalisation() -> None:
    specs = [{"name": "rotate"}, {"name": "local_contrast_norm"}, {"name": "hflip", "p": 1.0}]
    image, mask = _encoded_pair()
    out_image, out_mask = eval_transforms(augment=specs)(image, mask)
    assert torch.equal(out_mask, mask)  # no geometry at evaluation
    assert torch.equal(out_image, LocalContrastNorm()(image))
    assert isinstance(eval_transforms(augment=[{"name": "rotate"}]), v2.Identity)


def test_recipe_augment_is_validated_and_passed_to_the_loader() -> None:
    from seglab.engine.distributed import DistInfo
    from seglab.engine.train import build_train_loader
    from seglab.recipes import load_recipe

    overrides = ["data.hflip=false", "data.augment=[{name: rotate, degrees: 5}]"]
    recipe = load_recipe("unet_synthetic_cpu", overrides=overrides)
    assert recipe.data.augment == [{"name": "rotate", "degrees": 5}]
    _, seeded, _ = build_train_loader(recipe, DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu")))
    (rotation,) = seeded.transforms.transforms[-1].transforms
    assert isinstance(rotation, v2.RandomRotation) and rotation.degrees == [-5.0, 5.0]
    with pytest.raises(ConfigError, match=r"unet_synthetic_cpu\.yaml.*data\.augment\[0\]\.degrees"):
        load_recipe("unet_synthetic_cpu", overrides=["data.hflip=false", "data.augment=[{name: rotate, degrees: 500}]"])
    with pytest.raises(ConfigError, match=r"data\.augment replaces data\.crop_size"):
        load_recipe("unet_synthetic_cpu", overrides=["data.hflip=false", "data.crop_size=[32, 32]",
                                                     "data.augment=[{name: hflip}]"])
