"""What is unique to MNC: RoI warping differentiable in the boxes, the cascade's gradient into the RPN, its heads."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import roi_align

import seglab
from seglab.data import build_dataset, collate_instance
from seglab.heads.mnc import MaskedCategorizationHead, MaskEstimationHead
from seglab.layers.roi_warp import roi_warp
from seglab.models.instance.mnc import StageOutputs, mask_iou_in_boxes

NAME = "mnc_vgg16"


def test_warping_samples_the_box_like_roi_align_inside_the_map() -> None:
    torch.manual_seed(0)
    features = torch.randn(2, 3, 10, 12, dtype=torch.float64)
    boxes = [torch.tensor([[10.0, 20.0, 90.0, 70.0]], dtype=torch.float64),
             torch.tensor([[3.0, 4.0, 50.0, 60.0], [40.0, 8.0, 41.0, 9.5]], dtype=torch.float64)]
    warped = roi_warp(features, boxes, output_size=5, spatial_scale=1 / 8)
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i), dtype=torch.float64), b], 1)
                      for i, b in enumerate(boxes)])
    expected = roi_align(features, rois, 5, spatial_scale=1 / 8, sampling_ratio=1, aligned=True)
    torch.testing.assert_close(warped, expected, rtol=0, atol=1e-12)


def test_warping_gradient_reaches_the_box_and_matches_finite_differences() -> None:
    torch.manual_seed(0)
    features = torch.randn(1, 2, 9, 11, dtype=torch.float64)
    box = torch.tensor([[12.3, 10.7, 61.9, 50.2]], dtype=torch.float64, requires_grad=True)
    weights = torch.randn(1, 2, 4, 4, dtype=torch.float64)

    def loss(b: torch.Tensor) -> torch.Tensor:
        return (roi_warp(features, [b], output_size=4, spatial_scale=1 / 8) * weights).sum()

    (grad,) = torch.autograd.grad(loss(box), box)
    assert bool((grad != 0).all()), grad
    eps = 1e-6
    numeric = torch.stack([(loss(box.detach() + eps * e) - loss(box.detach() - eps * e)) / (2 * eps)
                           for e in torch.eye(4, dtype=torch.float64)[:, None]]).view(1, 4)
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-8)
    rois = torch.cat([box.new_zeros(1, 1), box], 1)
    pooled = roi_align(features.requires_grad_(), rois, 4, 1 / 8, aligned=True)
    (align_grad,) = torch.autograd.grad((pooled * weights).sum(), rois, allow_unused=True)
    assert align_grad is None, "roi_align gives no gradient to the boxes: the reason for warping"


def test_cascade_losses_reach_the_rpn_box_regression_through_the_boxes() -> None:
    torch.manual_seed(0)
    model = seglab.create_model(NAME, num_classes=4, **seglab.model_spec(NAME).test_kwargs).train()
    data = build_dataset("synthetic", split="train", task="instance", num_images=2, size=(64, 96))
    images, targets = collate_instance([data[0], data[1]])
    losses = model(images, targets)
    losses["loss_mask"].backward()  # stage 2 only: its one path to the RPN is the warped boxes
    grad = model.proposer.head.deltas.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0
    full = grad.clone()
    model.zero_grad()
    model.proposer.box_gradient_scale = 0.1  # the CPU recipe's damping: the same forward, a tenth of the gradient
    torch.manual_seed(1)
    model(images, targets)["loss_mask"].backward()
    scaled = model.proposer.head.deltas.weight.grad.clone()
    model.zero_grad()
    model.proposer.box_gradient_scale = 1.0
    torch.manual_seed(1)
    model(images, targets)["loss_mask"].backward()
    torch.testing.assert_close(scaled, 0.1 * model.proposer.head.deltas.weight.grad)
    assert float(full.abs().sum()) > 0
    model.zero_grad()
    model.proposer.box_gradients = False
    model(images, targets)["loss_mask"].backward()
    grad = model.proposer.head.deltas.weight.grad
    assert grad is None or float(grad.abs().sum()) == 0


def test_three_stage_variant_has_no_stage_4_and_5_terms() -> None:
    torch.manual_seed(0)
    kwargs = seglab.model_spec(NAME).test_kwargs | {"stages": 3}
    model = seglab.create_model(NAME, num_classes=4, **kwargs).train()
    data = build_dataset("synthetic", split="train", task="instance", num_images=1, size=(64, 96))
    losses = model(*collate_instance([data[0]]))
    assert tuple(losses) == seglab.model_spec(NAME).loss_terms[:6]


def test_stage_bridge_regresses_by_the_best_mask_level_class_with_gradient() -> None:
    torch.manual_seed(0)
    model = seglab.create_model(NAME, num_classes=3, **seglab.model_spec(NAME).test_kwargs)
    boxes = [torch.tensor([[10.0, 10.0, 30.0, 40.0]], requires_grad=True)]
    deltas = torch.zeros(1, 12, requires_grad=True)
    seg = torch.tensor([[5.0, 0.0, 2.0]])  # background scores highest: the best foreground class is 2
    with torch.no_grad():
        d = deltas.view(1, 3, 4)
        d[0, 2] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # move right by 0.1 width (weights 10, 10, 5, 5)
    out = StageOutputs(torch.zeros(1, 21, 21), torch.zeros(1, 3), seg, deltas)
    (moved,) = model.bridge(boxes, out, [(64, 96)])
    torch.testing.assert_close(moved, torch.tensor([[12.0, 10.0, 32.0, 40.0]]))
    moved.sum().backward()
    assert float(boxes[0].grad.abs().sum()) > 0 and float(deltas.grad.abs().sum()) > 0


def test_mask_iou_counts_the_ground_truth_outside_the_box() -> None:
    predicted = torch.zeros(1, 4, 4, dtype=torch.bool)
    predicted[0, :, :2] = True  # left half of a 40 x 40 box: 800 px
    crops = predicted.clone()
    boxes = torch.tensor([[0.0, 0.0, 40.0, 40.0]])
    torch.testing.assert_close(mask_iou_in_boxes(predicted, crops, boxes, torch.tensor([800.0])),
                               torch.tensor([1.0]))
    # the same ground truth continuing outside the box (1600 px in all): IoU 800 / 1600
    torch.testing.assert_close(mask_iou_in_boxes(predicted, crops, boxes, torch.tensor([1600.0])),
                               torch.tensor([0.5]))


def test_head_shapes_of_the_release() -> None:
    """fc6_maskest 512 x 14 x 14 -> 256, mask_pred 441; fc6 / fc6_mask 512 x 7 x 7 -> 4096; join 8192 -> 21/21/84."""
    with torch.device("meta"):
        masks = MaskEstimationHead(512)
        head = MaskedCategorizationHead(512, num_classes=21)
    assert masks.fc.weight.shape == (256, 512 * 14 * 14) and masks.mask.weight.shape == (441, 256)
    assert head.box_path[2].weight.shape == (4096, 25088) and head.mask_path[4].weight.shape == (4096, 4096)
    assert head.cls_score.weight.shape == (21, 8192) and head.seg_cls_score.weight.shape == (21, 8192)
    assert head.bbox_pred.weight.shape == (84, 8192)
    warped = torch.rand(3, 32, 14, 14)
    small = MaskedCategorizationHead(32, num_classes=5, hidden=16)
    cls, seg, deltas = small(warped, torch.rand(3, 21, 21))
    assert cls.shape == seg.shape == (3, 5) and deltas.shape == (3, 20)
    assert MaskEstimationHead(32, hidden=8)(warped).shape == (3, 21, 21)


def test_parameter_count_of_the_paper_configuration_by_formula() -> None:
    vgg16_convs = 14_714_688
    rpn = (512 * 512 * 9 + 512) + (512 * 9 + 9) + (512 * 36 + 36)
    stage2 = (512 * 14 * 14 * 256 + 256) + (256 * 441 + 441)
    fc67 = (25088 * 4096 + 4096) + (4096 * 4096 + 4096)
    stage3 = 2 * fc67 + 2 * (8192 * 21 + 21) + (8192 * 84 + 84)
    with torch.device("meta"):
        model = seglab.create_model(NAME, num_classes=21)
    assert sum(p.numel() for p in model.parameters()) == vgg16_convs + rpn + stage2 + stage3 == 283_025_316
    assert model.backbone.feature_specs["c5"].stride == 16 and model.settings.stages == 5


def test_published_recipe_loads_and_builds() -> None:
    recipe = seglab.load_recipe("mnc_voc2012")
    assert recipe.model.name == NAME
    with torch.device("meta"):
        model = seglab.create_model(recipe.model.name, num_classes=21, **recipe.model.kwargs)
    assert model.proposer.box_gradients and model.settings.mask_weight == 2.0


def test_output_stride_8_on_a_resnet_warps_at_one_eighth() -> None:
    torch.manual_seed(0)
    spec = seglab.model_spec(NAME)
    model = seglab.create_model(NAME, num_classes=3, **(spec.test_kwargs | {"output_stride": 8})).eval()
    assert model.stride == 8 and model.backbone.feature_specs["c5"].stride == 8
    with torch.no_grad():
        assert model.backbone(torch.randn(1, 3, 64, 96))["c5"].shape[-2:] == (8, 12)
        predictions = model([torch.rand(3, 64, 96)])
    assert predictions[0].masks.shape[-2:] == (64, 96)
    with pytest.raises(seglab.errors.ConfigError, match="output_stride"):
        seglab.create_model(NAME, num_classes=3, **(spec.test_kwargs | {"output_stride": 32}))


def test_the_bridge_keeps_boxes_clipped_to_nothing_at_a_least_side() -> None:
    model = seglab.create_model(NAME, num_classes=3, **seglab.model_spec(NAME).test_kwargs)
    boxes = [torch.tensor([[90.0, 10.0, 95.0, 20.0], [10.0, 10.0, 30.0, 30.0]], requires_grad=True)]
    deltas = torch.zeros(2, 3, 4)
    deltas[0, :, 0] = 100.0  # pushes the first box far right of the 64-wide image: clipped to zero width
    out = StageOutputs(torch.zeros(2, 21, 21), torch.zeros(2, 3), torch.zeros(2, 3), deltas.view(2, 12))
    bridged = model.bridge(boxes, out, [(48, 64)])[0]
    widths, heights = bridged[:, 2] - bridged[:, 0], bridged[:, 3] - bridged[:, 1]
    assert bool((widths >= 1).all() and (heights >= 1).all()) and torch.allclose(bridged[1], boxes[0][1])
    targets = model.box_coder.encode(bridged.detach(), bridged.detach())
    assert torch.isfinite(targets).all()
    bridged.sum().backward()
    assert torch.isfinite(boxes[0].grad).all()
