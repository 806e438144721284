"""MaskLab's own mechanisms: direction targets and direction pooling against naive loops, the per-box crops
(class channel, direction channels, hypercolumn), the coarse and refinement shapes, the reused semantic
head, the atrous res5, parameter counts by formula, and the published recipe."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

import seglab
from seglab.backbones import build_backbone
from seglab.boxes.directions import IGNORE, crop_direction_index, direction_targets, semantic_targets
from seglab.heads.masklab import MaskLabCropper, MaskLabCrops, MaskLabMaskHead, direction_pool
from seglab.layers.aspp import ASPP
from seglab.models.semantic.deeplab import ContextClassifier
from seglab.recipes import load_recipe, model_kwargs

NAME = "masklab_resnet101"


def naive_bin(dx: float, dy: float) -> int:
    """8 directions of 45 degrees centred on 0, 45, .. (from +x towards +y), 4 distance bins of a quarter
    of the half side."""
    degrees = (math.degrees(math.atan2(dy, dx)) + 22.5) % 360.0
    return int(degrees // 45) * 4 + min(int(math.hypot(dx, dy) * 4), 3)


def build(**kwargs) -> nn.Module:
    torch.manual_seed(0)
    return seglab.create_model(NAME, num_classes=4, **(seglab.model_spec(NAME).test_kwargs | kwargs))


@pytest.mark.parametrize("size", [5, 8, 41])
def test_direction_pooling_picks_the_bin_of_each_pixel_relative_to_the_crop_centre(size: int) -> None:
    index = crop_direction_index(size)
    for i in range(size):
        for j in range(size):  # crop pixel (i, j) sits at 2 (j + 0.5) / S - 1 half sides from the centre
            assert index[i, j] == naive_bin(2 * (j + 0.5) / size - 1, 2 * (i + 0.5) / size - 1), (i, j)
    constant = torch.arange(32.0)[None, :, None, None].expand(3, 32, size, size)  # map c holds the value c
    assert torch.equal(direction_pool(constant, index), index.float().expand(3, 1, size, size))
    crops = torch.randn(3, 32, size, size)
    pooled = direction_pool(crops, index)
    for r in range(3):
        for i in range(size):
            for j in range(size):
                assert pooled[r, 0, i, j] == crops[r, index[i, j], i, j]
    if size == 41:
        assert set(index.flatten().tolist()) == set(range(32)), "every bin occurs in the paper-sized crop"


def test_direction_targets_of_a_hand_made_square() -> None:
    masks = torch.zeros(1, 8, 8, dtype=torch.uint8)
    masks[0, 2:6, 2:6] = 1  # box (2, 2, 6, 6): centre (4, 4), half side 2
    target = direction_targets(masks, torch.tensor([[2.0, 2.0, 6.0, 6.0]]))
    # pixel (y, x) is the point (x + 0.5, y + 0.5): (y=2, x=5) is 0.75 right, 0.75 up -> 315 deg, r 1.06;
    # (y=4, x=2) is 0.75 left, 0.25 down -> 161.6 deg, in the bin centred on 180
    assert target[2, 5] == 7 * 4 + 3 and target[3, 4] == 7 * 4 + 1
    assert target[4, 4] == 1 * 4 + 1 and target[5, 2] == 3 * 4 + 3 and target[4, 2] == 4 * 4 + 3
    for y in range(8):
        for x in range(8):
            expected = naive_bin((x + 0.5 - 4) / 2, (y + 0.5 - 4) / 2) if masks[0, y, x] else IGNORE
            assert target[y, x] == expected, (y, x)


def test_overlaps_and_crowd_carry_no_direction_and_conflicting_classes_no_semantic_label() -> None:
    masks = torch.zeros(3, 6, 6, dtype=torch.uint8)
    masks[0, 0:3, 0:3] = 1
    masks[1, 2:5, 2:5] = 1  # overlaps instance 0 at (2, 2), a different class
    masks[2, 4:6, 4:6] = 1  # overlaps instance 1 at (4, 4), the same class
    labels = torch.tensor([1, 2, 2])
    boxes = torch.tensor([[0.0, 0.0, 3.0, 3.0], [2.0, 2.0, 5.0, 5.0], [4.0, 4.0, 6.0, 6.0]])
    crowd = torch.zeros(6, 6, dtype=torch.uint8)
    crowd[0, 5] = 1
    semantic = semantic_targets(masks, labels, crowd=crowd)
    direction = direction_targets(masks, boxes, crowd=crowd)
    assert semantic[2, 2] == IGNORE and semantic[4, 4] == 2 and semantic[0, 0] == 1 and semantic[0, 4] == 0
    assert semantic[0, 5] == IGNORE
    assert direction[2, 2] == IGNORE and direction[4, 4] == IGNORE and direction[0, 4] == IGNORE
    assert direction[1, 1] == naive_bin(0.0, 0.0) and direction[3, 3] == naive_bin(0.0, 0.0)
    empty = torch.zeros(0, 6, 6, dtype=torch.uint8)
    assert (semantic_targets(empty, torch.zeros(0, dtype=torch.int64)) == 0).all()
    assert (direction_targets(empty, torch.zeros(0, 4)) == IGNORE).all()


def test_pooling_the_target_bins_of_an_instance_recovers_them_inside_its_box() -> None:
    """Perfect direction logits (one-hot targets at stride 1), cropped at the instance's box and pooled, are 1."""
    masks = torch.zeros(1, 40, 60, dtype=torch.uint8)
    masks[0, 5:35, 10:50] = 1  # a 40 x 30 box: bins are measured in half sides, so aspect does not matter
    box = torch.tensor([[10.0, 5.0, 50.0, 35.0]])
    target = direction_targets(masks, box)
    one_hot = torch.nn.functional.one_hot(target.clamp(max=31), 32).permute(2, 0, 1)[None].float()
    features = {"semantic": torch.zeros(1, 2, 40, 60), "direction": one_hot, "c1": torch.zeros(1, 1, 40, 60)}
    crops = MaskLabCropper(crop_size=21, dense_stride=1, hypercolumn={"c1": 1})(features, [box], torch.tensor([1]))
    index = crop_direction_index(21)
    # the bin each crop pixel reads is the bin the targets gave the image pixels it samples (blurred at bin edges)
    assert (crops.direction[0].argmax(0) == index).float().mean() > 0.95
    assert direction_pool(crops.direction, index).mean() > 0.8


def test_crops_take_the_class_channel_the_direction_channels_and_the_hypercolumn() -> None:
    semantic = (torch.arange(2)[:, None] * 10 + torch.arange(5)[None, :]).float()[:, :, None, None]
    features = {"semantic": semantic.expand(2, 5, 8, 8), "direction": torch.randn(2, 32, 8, 8),
                "c1": torch.randn(2, 3, 64, 64), "c2": torch.randn(2, 4, 32, 32)}
    boxes = [torch.tensor([[8.0, 8.0, 72.0, 100.0]]), torch.tensor([[16.0, 0.0, 48.0, 64.0], [0.0, 0.0, 128.0, 128.0]])]
    cropper = MaskLabCropper(crop_size=7, dense_stride=16, hypercolumn={"c1": 2, "c2": 4})
    crops = cropper(features, boxes, torch.tensor([3, 1, 4]))
    assert crops.semantic.shape == (3, 1, 7, 7) and crops.direction.shape == (3, 32, 7, 7)
    assert crops.hypercolumn.shape == (3, 3 + 4, 7, 7)
    assert torch.allclose(crops.semantic[:, 0, 3, 3], torch.tensor([3.0, 11.0, 14.0]))  # image n, class k -> 10n + k
    rois = torch.tensor([[0.0, 8.0, 8.0, 72.0, 100.0], [1.0, 16.0, 0.0, 48.0, 64.0], [1.0, 0.0, 0.0, 128.0, 128.0]])
    expected = torchvision.ops.roi_align(features["c2"], rois, 7, spatial_scale=0.25, sampling_ratio=2, aligned=True)
    assert torch.equal(crops.hypercolumn[:, 3:], expected)


def test_coarse_mask_and_refinement_shapes_and_channels() -> None:
    head = MaskLabMaskHead(crop_size=9, hypercolumn_channels=7, channels=16, kernel_size=3)
    assert (head.coarse.in_channels, head.coarse.out_channels, head.coarse.kernel_size) == (2, 1, (1, 1))
    convs = [m for m in head.refine if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3, "three convolutions refine the coarse mask (sec. 3.2)"
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1 + 7, 16, (3, 3)), (16, 16, (3, 3)), (16, 1, (1, 1))]
    crops = MaskLabCrops(torch.randn(4, 1, 9, 9), torch.randn(4, 32, 9, 9), torch.randn(4, 7, 9, 9))
    coarse, mask = head(crops)
    assert coarse.shape == mask.shape == (4, 1, 9, 9)
    pooled = direction_pool(crops.direction, crop_direction_index(9))
    assert torch.allclose(coarse, head.coarse(torch.cat([crops.semantic, pooled], 1)))
    assert torch.allclose(mask, head.refine(torch.cat([coarse, crops.hypercolumn], 1)))


def test_the_built_model_wires_crops_of_c1_c2_and_its_dense_logits_at_stride_16() -> None:
    model = build().eval()
    assert model.mask_pooler.hypercolumn == {"c1": 2, "c2": 4} and model.mask_pooler.dense_stride == 16
    assert model.mask_head.refine[0].in_channels == 1 + 64 + 64  # ResNet-18 conv1 and res2
    with torch.no_grad():
        features = model.dense_features(torch.randn(1, 3, 64, 96))
    assert features["semantic"].shape == (1, 4, 4, 6) and features["direction"].shape == (1, 32, 4, 6)
    assert features["c4"].shape[-2:] == (4, 6) and features["c5"].shape[-2:] == (4, 6)
    assert model.proposer.levels == ("c4",) and model.proposer.anchors.num_anchors == [3 * 3]


def test_semantic_branch_reuses_the_deeplab_head() -> None:
    model = build()
    assert isinstance(model.semantic_head, ContextClassifier) and isinstance(model.direction_head, ContextClassifier)
    assert isinstance(model.semantic_head.context, nn.Identity)  # the paper's 1x1 conv on res5
    assert (model.semantic_head.classifier.in_channels, model.semantic_head.classifier.out_channels) == (512, 4)
    assert model.direction_head.classifier.out_channels == 32
    aspp = build(semantic_context="aspp", aspp_channels=8)
    assert isinstance(aspp.semantic_head.context, ASPP) and aspp.semantic_head.classifier.in_channels == 8
    with pytest.raises(seglab.errors.ConfigError, match="semantic_context"):
        build(semantic_context="psp")


@pytest.mark.parametrize("output_stride", [16, 8])
def test_res5_is_atrous_as_seglabs_dilated_backbone_and_the_box_res5_is_not(output_stride: int) -> None:
    model = build(output_stride=output_stride)
    reference = build_backbone("resnet18", output_stride=output_stride)
    for stage in ("layer3", "layer4"):
        ours = [(m.stride, m.dilation, m.padding) for m in getattr(model.backbone, stage).modules()
                if isinstance(m, nn.Conv2d)]
        theirs = [(m.stride, m.dilation, m.padding) for m in getattr(reference, stage).modules()
                  if isinstance(m, nn.Conv2d)]
        assert ours == theirs, stage
    box_res5 = [m for m in model.box_head.res5.modules() if isinstance(m, nn.Conv2d)]
    assert box_res5[0].stride == (2, 2) and all(m.dilation == (1, 1) for m in box_res5)
    assert model.backbone.feature_specs["c5"].stride == output_stride


def test_reference_configuration_parameters_add_up() -> None:
    with torch.device("meta"):
        model = seglab.create_model(NAME, num_classes=81)
        resnet101 = torchvision.models.resnet101()
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    trunk = count(resnet101) - count(resnet101.fc)
    rpn = (1024 * 512 * 9 + 512) + (512 * 12 + 12) + (512 * 48 + 48)  # 3x3 conv 512, 4 sizes x 3 ratios
    box = count(resnet101.layer4) + (2048 * 81 + 81) + (2048 * 324 + 324)  # duplicate res5, cls, class boxes
    semantic, direction = 2048 * 81 + 81, 2048 * 32 + 32  # 1x1 convs on res5
    mask = 3 + ((1 + 64 + 256) * 256 * 9 + 256) + (256 * 256 * 9 + 256) + (256 + 1)  # coarse 1x1, 3 refine convs
    assert count(model.backbone) == trunk and count(model.proposer) == rpn and count(model.box_head) == box
    assert count(model.semantic_head) == semantic and count(model.direction_head) == direction
    assert count(model.mask_head) == mask
    assert count(model) == trunk + rpn + box + semantic + direction + mask == seglab.model_spec(NAME).reference_params


def test_published_and_cpu_recipes_load_and_build() -> None:
    recipe = seglab.load_recipe("masklab_coco")
    assert recipe.model.name == NAME and recipe.published.row == seglab.model_spec(NAME).survey_row
    with torch.device("meta"):
        seglab.create_model(NAME, num_classes=81, **model_kwargs(recipe))
    cpu = load_recipe("masklab_synthetic_cpu")
    assert cpu.published is None and cpu.model.kwargs["backbone"] == "resnet18"
    with torch.device("meta"):
        seglab.create_model(NAME, num_classes=4, **model_kwargs(cpu))
