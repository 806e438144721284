"""What is unique to FCIS: exact 21x21 position-sensitive pooling from 7x7 groups, inside/outside scoring, OHEM."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

import seglab
from seglab.heads.fcis import InsideOutsideHead, inside_outside_scores
from seglab.layers.position_sensitive import ps_roi_align_fine
from seglab.losses.fcis import fcis_losses
from seglab.models.instance.fcis import MASK_THRESHOLD, _mask_targets
from seglab.structures import InstanceTarget

NAME = "fcis_resnet101"


def naive_ps_pool(maps: torch.Tensor, rois: torch.Tensor, group: int, output: int, scale: float) -> torch.Tensor:
    """One RoIAlign per output bin, on the channel of its group: the definition, bin by bin."""
    depth = maps.shape[1] // group**2
    out = maps.new_zeros(len(rois), depth, output, output)
    for r, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        bw, bh = (x2 - x1) / output, (y2 - y1) / output
        for d in range(depth):
            for u in range(output):
                for v in range(output):
                    channel = (d * group + u * group // output) * group + v * group // output
                    box = maps.new_tensor([[0, x1 + v * bw, y1 + u * bh, x1 + (v + 1) * bw, y1 + (u + 1) * bh]])
                    out[r, d, u, v] = roi_align(maps[int(b), channel][None, None], box, (1, 1), spatial_scale=scale,
                                                sampling_ratio=2, aligned=True)[0, 0, 0, 0]
    return out


def test_fine_pooling_equals_the_bin_by_bin_definition() -> None:
    torch.manual_seed(0)
    maps = torch.randn(2, 2 * 9, 10, 12, dtype=torch.float64)
    rois = torch.tensor([[0, 3.0, 5.0, 90.0, 70.0], [1, 10.0, 2.0, 40.0, 30.0], [1, 0.0, 0.0, 6.0, 5.0]],
                        dtype=torch.float64)  # the last one smaller than a feature pixel per group
    fast = ps_roi_align_fine(maps, rois, group=3, output=6, spatial_scale=1 / 8)
    torch.testing.assert_close(fast, naive_ps_pool(maps, rois, 3, 6, 1 / 8), rtol=0, atol=1e-12)


def test_output_pixel_reads_its_group_and_class_channel() -> None:
    """Constant maps coding (class, inside/outside, i, j): pixel (u, v) of 21 x 21 reads group (u // 3, v // 3)."""
    k, classes = 7, 3
    codes = torch.zeros(1, 2 * classes * k * k, 8, 8)
    for d in range(2 * classes):
        for i in range(k):
            for j in range(k):
                codes[0, (d * k + i) * k + j] = 1000 * d + 10 * i + j
    pooled = ps_roi_align_fine(codes, torch.tensor([[0, 8.0, 8.0, 100.0, 110.0]]), group=k, output=21,
                               spatial_scale=1 / 16)
    u, v = torch.meshgrid(torch.arange(21), torch.arange(21), indexing="ij")
    for d in range(2 * classes):
        torch.testing.assert_close(pooled[0, d], (1000 * d + 10 * (u // 3) + v // 3).float())


def test_joint_class_score_and_mask_from_inside_outside() -> None:
    torch.manual_seed(0)
    pooled = torch.randn(5, 2 * 4, 21, 21)
    class_logits, mask_logits = inside_outside_scores(pooled)
    outside, inside = pooled[:, 0::2], pooled[:, 1::2]
    torch.testing.assert_close(class_logits, torch.maximum(inside, outside).mean(dim=(2, 3)))
    softmax_inside = F.softmax(torch.stack([outside, inside]), dim=0)[1]
    torch.testing.assert_close(mask_logits.sigmoid(), softmax_inside)


def test_head_layer_shapes_of_the_release() -> None:
    """COCO: conv_new_1 2048 -> 1024, fcis_cls_seg 7 x 7 x 81 x 2 = 7938 maps, fcis_bbox 7 x 7 x 4 x 2 = 392."""
    head = InsideOutsideHead(2048, num_classes=81)
    assert head.reduce.weight.shape == (1024, 2048, 1, 1)
    assert head.inside_outside.weight.shape == (7938, 1024, 1, 1)
    assert head.box.weight.shape == (392, 1024, 1, 1)


def test_parameter_count_of_the_paper_configuration_by_formula() -> None:
    resnet101_trunk = 42_500_160  # torchvision resnet101 without fc (44,549,160 - 2,049,000)
    rpn = (1024 * 512 * 9 + 512) + (512 * 12 + 12) + (512 * 48 + 48)  # 3x3 conv 512 on res4, 12 anchors
    head = (2048 * 1024 + 1024) + (1024 * 7938 + 7938) + (1024 * 392 + 392)
    with torch.device("meta"):
        model = seglab.create_model(NAME, num_classes=81)
    assert sum(p.numel() for p in model.parameters()) == resnet101_trunk + rpn + head == 57_886_470
    assert model.backbone.feature_specs["c5"].stride == 16 and model.proposer.levels == ("c4",)
    assert model.proposer.anchors.num_anchors == [12]


def test_ohem_keeps_the_hardest_rois_of_each_image() -> None:
    torch.manual_seed(0)
    rois, classes = 10, 3
    labels = torch.tensor([1, 0, 2, 0, 0, 1, 0, 0, 2, 0])
    class_logits = torch.zeros(rois, classes, requires_grad=True)
    with torch.no_grad():
        class_logits[torch.arange(rois), labels] = 5.0  # easy
        class_logits[3, 1] = class_logits[3, 0] = 0.0  # hard negative in image 0
        class_logits[3, 2] = 8.0
        class_logits[7, 0] = -10.0  # hard negative in image 1 (harder than a positive's 10 x log 2 mask loss)
    mask_logits = torch.zeros(rois, classes, 4, 4)
    targets = torch.zeros(rois, 4, 4)
    deltas, box_targets = torch.zeros(rois, 4), torch.zeros(rois, 4)
    losses = fcis_losses(class_logits, mask_logits, deltas, labels, targets, box_targets, counts=[5, 5],
                         hard_per_image=1)
    losses["loss_cls"].backward()
    rows_with_gradient = class_logits.grad.abs().sum(1).nonzero().flatten().tolist()
    assert rows_with_gradient == [3, 7]
    expected = F.cross_entropy(class_logits[[3, 7]], labels[[3, 7]])
    torch.testing.assert_close(losses["loss_cls"], expected)
    # segmentation: weight 10, only on positive RoIs (a positive with mask loss log 2 is the hardest of image 0)
    losses = fcis_losses(class_logits.detach(), mask_logits, deltas, labels, targets, box_targets, counts=[5, 5],
                         hard_per_image=5)
    torch.testing.assert_close(losses["loss_mask"], torch.tensor(10 * 0.6931472), rtol=1e-5, atol=0)


def test_mask_targets_are_binarised_at_0_4_on_positive_rois_only() -> None:
    masks = torch.zeros(1, 42, 42, dtype=torch.uint8)
    masks[0, :, :21] = 1
    target = InstanceTarget(boxes_xyxy=torch.tensor([[0.0, 0.0, 21.0, 42.0]]), labels=torch.tensor([1]), masks=masks)
    boxes = torch.tensor([[0.0, 0.0, 42.0, 42.0], [0.0, 0.0, 42.0, 42.0]])
    crops = _mask_targets(target, boxes, torch.tensor([0, 0]), torch.tensor([1, 0]))
    assert MASK_THRESHOLD == 0.4 and set(crops.unique().tolist()) <= {0.0, 1.0}
    assert crops[0, :, :10].all() and not crops[0, :, 11:].any() and not crops[1].any()


def test_published_recipe_loads_and_builds() -> None:
    recipe = seglab.load_recipe("fcis_voc2012")
    assert recipe.model.name == NAME
    with torch.device("meta"):
        model = seglab.create_model(recipe.model.name, num_classes=21, **recipe.model.kwargs)
    assert model.settings.hard_per_image == 128 and model.settings.rois_per_image == 300
    assert model.settings.nms_threshold == 0.3 and model.min_size == (600,) and model.max_size == 1000



def test_output_stride_8_dilates_res4_and_pools_at_one_eighth() -> None:
    torch.manual_seed(0)
    spec = seglab.model_spec(NAME)
    model = seglab.create_model(NAME, num_classes=3, **(spec.test_kwargs | {"output_stride": 8})).eval()
    assert model.stride == 8 and model.backbone.feature_specs["c4"].stride == 8
    with torch.no_grad():
        features = model.backbone(torch.randn(1, 3, 64, 96))
        assert features["c4"].shape[-2:] == features["c5"].shape[-2:] == (8, 12)
        predictions = model([torch.rand(3, 64, 96)])
    assert predictions[0].masks.shape[-2:] == (64, 96)
    cpu = seglab.load_recipe("fcis_synthetic_cpu")
    assert cpu.published is None and cpu.model.kwargs["output_stride"] == 8
    with pytest.raises(seglab.errors.ConfigError, match="output_stride"):
        seglab.create_model(NAME, num_classes=3, **(spec.test_kwargs | {"output_stride": 32}))
