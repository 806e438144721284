"""What is unique to TensorMask: the assignment rule, the bipyramid's sizes, FL*, the mask loss, RetinaNet's FPN."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import seglab
from seglab.backbones.base import FeatureSpec
from seglab.boxes.containment import assign_by_containment
from seglab.errors import ConfigError
from seglab.heads.tensormask import TensorMaskHead, flatten_levels
from seglab.losses.detection import tensormask_mask_loss
from seglab.losses.focal import sigmoid_focal_loss_star
from seglab.models.instance.tensormask import LEVELS
from seglab.necks.fpn import FPN

NAME = "tensormask_resnet50_fpn"


def box(cx: float, cy: float, w: float, h: float) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def assign(gt: list[list[float]], anchors: list[list[float]], units: list[float]) -> tuple[list[int], list[bool]]:
    matched, positive = assign_by_containment(torch.tensor(gt), torch.tensor(anchors), torch.tensor(units),
                                              min_anchor_size=40.0)
    return matched.tolist(), positive.tolist()


def test_assignment_containment_scale_and_centre() -> None:
    a44 = box(100, 100, 44, 44)  # a P2 anchor, unit 4
    cases = {  # ground truth -> positive for the 44 anchor?
        "contained, 30 px": (box(100, 100, 30, 30), True),
        "not contained (50 px wide)": (box(100, 100, 50, 20), False),
        "small box: the floor 40 lets 44 - 4 <= 40": (box(100, 100, 10, 10), True),
        "centre 2.8 px off (0.71 unit)": (box(102, 102, 10, 10), True),
        "centre 4.2 px off (1.06 units)": (box(103, 103, 10, 10), False),
    }
    for name, (gt, expected) in cases.items():
        _, positive = assign([gt], [a44], [4.0])
        assert positive == [expected], name
    # scale: an 88 anchor (unit 8) contains a 30 px box, but 88 - 8 = 80 > 2 x 30
    assert assign([box(100, 100, 30, 30)], [box(100, 100, 88, 88)], [8.0])[1] == [False]
    assert assign([box(100, 100, 40, 40)], [box(100, 100, 88, 88)], [8.0])[1] == [True]  # 80 <= 2 x 40


def test_a_window_matching_two_boxes_is_negative() -> None:
    gts = [box(100, 100, 30, 30), box(101, 100, 20, 25), box(200, 200, 30, 30)]
    anchors = [box(100, 100, 44, 44), box(200, 200, 44, 44), box(300, 300, 44, 44)]
    matched, positive = assign(gts, anchors, [4.0, 4.0, 4.0])
    assert positive == [False, True, False] and matched[1] == 2
    assert assign([], anchors, [4.0] * 3)[1] == [False] * 3


def test_bipyramid_mask_sizes_per_level() -> None:
    """Level l: masks of (11 2^l)^2 and (15 2^l)^2 cells on the level's grid (H_2 / 2^l)."""
    head = TensorMaskHead(8, num_classes=3, mask_sizes=(11, 15), num_levels=6, cls_channels=8, box_channels=8,
                          mask_channels=8)
    features = [torch.randn(2, 8, 64 // 2**level, 96 // 2**level) for level in range(6)]
    with torch.no_grad():
        out = head(features)
    for level, per_anchor in enumerate(out.masks):
        assert out.class_logits[level].shape == (2, 2 * 3, 64 // 2**level, 96 // 2**level)
        assert out.box_deltas[level].shape == (2, 2 * 4, 64 // 2**level, 96 // 2**level)
        for side, masks in zip((11, 15), per_anchor):
            assert masks.shape == (2, (side * 2**level) ** 2, 64 // 2**level, 96 // 2**level), (level, side)
    assert torch.allclose(out.class_logits[0].sigmoid(), torch.tensor(0.01), atol=1e-3)  # the prior


def test_focal_loss_star_by_hand() -> None:
    """FL* = -log(sigmoid(gamma x_t)) / gamma x alpha_t, x_t = x for positives and -x for negatives."""
    logits, targets = torch.tensor([0.5, 0.5, -2.0]), torch.tensor([1.0, 0.0, 0.0])
    gamma, alpha = 3.0, 0.3

    def hand(x: float, positive: bool) -> float:
        x_t = x if positive else -x
        return -math.log(1 / (1 + math.exp(-gamma * x_t))) / gamma * (alpha if positive else 1 - alpha)

    expected = [hand(0.5, True), hand(0.5, False), hand(-2.0, False)]  # 0.02014, 0.39700, 0.00058
    got = sigmoid_focal_loss_star(logits, targets, alpha=alpha, gamma=gamma, reduction="none")
    assert got.tolist() == pytest.approx(expected, rel=1e-6)
    assert expected[0] == pytest.approx(0.0201413, rel=1e-5)
    assert float(sigmoid_focal_loss_star(logits, targets, alpha=alpha, gamma=gamma)) == pytest.approx(sum(expected))
    # gamma = 1 without alpha is the binary cross-entropy
    assert torch.allclose(sigmoid_focal_loss_star(logits, targets, alpha=None, gamma=1.0, reduction="none"),
                          F.binary_cross_entropy_with_logits(logits, targets, reduction="none"))


def test_mask_loss_weights_positive_pixels_and_window_size() -> None:
    """Logits 0 on a 2x2 window with one foreground pixel: (1.5 + 3) log 2 summed, x 2 / 2^2."""
    logits, target = torch.zeros(1, 2, 2), torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert float(tensormask_mask_loss(logits, target)) == pytest.approx(4.5 * math.log(2) * 2 / 4)
    assert float(tensormask_mask_loss(logits, target, pos_weight=1.0)) == pytest.approx(4 * math.log(2) * 2 / 4)
    empty = torch.zeros(0, 3, 3, requires_grad=True)
    zero = tensormask_mask_loss(empty, torch.zeros(0, 3, 3))
    assert zero.requires_grad and float(zero.detach()) == 0.0


def test_retinanet_fpn_levels_and_average_fuse() -> None:
    specs = {"c4": FeatureSpec(6, 16), "c5": FeatureSpec(10, 32)}
    torch.manual_seed(0)
    fpn = FPN(specs, in_levels=("c4", "c5"), out_channels=4, top_block="p6p7", fuse="avg")
    assert fpn.out_levels == ("p4", "p5", "p6", "p7") and fpn.feature_specs["p7"].stride == 128
    c4, c5 = torch.randn(1, 6, 8, 8), torch.randn(1, 10, 4, 4)
    out = fpn({"c4": c4, "c5": c5})
    inner, layer = fpn.fpn.inner_blocks, fpn.fpn.layer_blocks
    top = inner[1](c5)
    fused = (inner[0](c4) + F.interpolate(top, size=(8, 8), mode="nearest")) / 2
    assert torch.allclose(out["p4"], layer[0](fused), atol=1e-6) and torch.allclose(out["p5"], layer[1](top))
    p6 = fpn.fpn.extra_blocks.p6(c5)  # from C5 (RetinaNet), then P7 from ReLU(P6)
    assert torch.allclose(out["p6"], p6) and torch.allclose(out["p7"], fpn.fpn.extra_blocks.p7(F.relu(p6)))
    summed = FPN(specs, in_levels=("c4", "c5"), out_channels=4)
    assert summed.out_levels == ("p4", "p5", "p6")
    assert list(summed.state_dict()) == ["fpn." + k for k in summed.fpn.state_dict()]  # torchvision's keys


def test_windows_follow_the_flattened_head_outputs() -> None:
    """Window i of the grid is anchor a at (row, col) of level l, and flattened output i is its prediction."""
    torch.manual_seed(0)
    model = seglab.create_model(NAME, num_classes=4, **seglab.model_spec(NAME).test_kwargs).eval()
    batch, _ = model.prepare([torch.rand(3, 64, 96)], None)
    with torch.no_grad():
        outputs = model.head([model.neck(model.backbone(batch.tensor))[level] for level in LEVELS])
    grid = model.anchor_grid(outputs, batch)
    assert batch.padded_size == (128, 128) and torch.equal(grid.unit, 4.0 * 2.0**grid.level)
    centres = (grid.boxes[:, :2] + grid.boxes[:, 2:]) / 2
    assert torch.equal(centres, torch.stack([grid.col, grid.row], 1) * grid.unit[:, None])
    sides = torch.tensor([44.0, 60.0])[grid.anchor] * 2.0**grid.level
    assert torch.equal(grid.boxes[:, 2] - grid.boxes[:, 0], sides)
    flat = flatten_levels(outputs.class_logits, 3)
    for i in (0, 5, 700, len(grid.boxes) - 1):
        level, row, col, anchor = (int(t[i]) for t in (grid.level, grid.row, grid.col, grid.anchor))
        assert torch.equal(flat[0, i], outputs.class_logits[level][0, anchor * 3: anchor * 3 + 3, row, col])


def test_detections_are_well_formed_with_masks_in_their_windows() -> None:
    torch.manual_seed(0)
    kwargs = seglab.model_spec(NAME).test_kwargs | {"score_threshold": 0.0, "max_detections": 7}
    model = seglab.create_model(NAME, num_classes=4, **kwargs).eval()
    with torch.no_grad():
        predictions = model([torch.rand(3, 50, 70), torch.rand(3, 40, 33)])
    for prediction, (height, width) in zip(predictions, [(50, 70), (40, 33)]):
        assert 1 <= len(prediction) <= 7 and prediction.masks.shape == (len(prediction), height, width)
        assert 0 <= float(prediction.masks.min()) and float(prediction.masks.max()) <= 1
        assert float(prediction.masks.max()) > 0  # pasted in the windows' anchors
        assert bool((prediction.scores[:-1] >= prediction.scores[1:]).all())
        assert bool(((prediction.labels >= 1) & (prediction.labels <= 3)).all())
        boxes = prediction.boxes_xyxy
        assert bool((boxes[:, :2] >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all())


def test_builder_checks_its_arguments() -> None:
    with pytest.raises(ConfigError, match="multiples of 4"):
        seglab.create_model(NAME, num_classes=4, backbone="resnet18", anchor_sizes=(42, 60))
    with pytest.raises(ConfigError, match="num_classes"):
        seglab.create_model(NAME, num_classes=1, backbone="resnet18")
