"""The detection kit against torchvision's own parts (exact), and hand-worked cases.

torchvision's coder and matcher are reached through the public objects that use them (a Mask R-CNN
built on the meta device), never through its private ``_utils`` module.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import paste_masks_in_image, project_masks_on_boxes
from torchvision.ops import box_iou

from seglab.boxes import (
    BELOW_LOW, BETWEEN, AnchorGenerator, BoxCoder, boxes_inside_crowd, ignore_crowd_negatives, mask_targets,
    masks_to_boxes, match_boxes, paste_masks, sample_balanced,
)


@pytest.fixture(scope="module")
def torchvision_parts():
    with torch.device("meta"):
        model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    return model.rpn, model.roi_heads


def random_boxes(n: int, generator: torch.Generator, size: float = 200.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator) * size
    wh = torch.rand(n, 2, generator=generator) * size / 2 + 1
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_coder_equals_torchvision(torchvision_parts, weights) -> None:
    rpn, roi_heads = torchvision_parts
    theirs = rpn.box_coder if weights[0] == 1.0 else roi_heads.box_coder
    assert tuple(theirs.weights) == weights
    g = torch.Generator().manual_seed(0)
    gt, reference = random_boxes(500, g), random_boxes(500, g)
    ours = BoxCoder(weights=weights)
    assert torch.equal(ours.encode(gt, reference), theirs.encode_single(gt, reference))
    deltas = torch.randn(500, 4 * 3, generator=g) * 3  # 3 boxes per reference, some clamped
    assert torch.equal(ours.decode(deltas, reference), theirs.decode_single(deltas, reference))


def test_decode_inverts_encode() -> None:
    g = torch.Generator().manual_seed(1)
    reference = random_boxes(100, g)
    gt = reference + torch.randn(100, 4, generator=g) * 0.1 * (reference[:, 2:] - reference[:, :2]).repeat(1, 2)
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    torch.testing.assert_close(coder.decode(coder.encode(gt, reference), reference), gt, rtol=0, atol=1e-3)


@pytest.mark.parametrize("rpn_matcher", [True, False])
def test_matcher_equals_torchvision(torchvision_parts, rpn_matcher: bool) -> None:
    rpn, roi_heads = torchvision_parts
    theirs = rpn.proposal_matcher if rpn_matcher else roi_heads.proposal_matcher
    g = torch.Generator().manual_seed(2)
    for trial in range(5):
        gt, predictions = random_boxes(7, g), random_boxes(300, g)
        iou = box_iou(gt, predictions)
        if trial == 0:  # ties of the best IoU of a ground truth
            iou[0, 10] = iou[0, 11] = iou[0].max()
        ours = match_boxes(iou.clone(), high=theirs.high_threshold, low=theirs.low_threshold,
                           allow_low_quality=theirs.allow_low_quality_matches)
        assert torch.equal(ours, theirs(iou.clone()))


def test_matcher_hand_worked() -> None:
    iou = torch.tensor([[0.8, 0.5, 0.1, 0.25], [0.2, 0.6, 0.2, 0.0]])
    assert match_boxes(iou.clone(), high=0.7, low=0.3).tolist() == [0, BETWEEN, BELOW_LOW, BELOW_LOW]
    # the best prediction of ground truth 1 (column 1, IoU 0.6) becomes a low-quality match
    assert match_boxes(iou.clone(), high=0.7, low=0.3, allow_low_quality=True).tolist() == [0, 1, BELOW_LOW, BELOW_LOW]


def test_anchors_equal_torchvision() -> None:
    sizes, ratios = ((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5
    theirs = TVAnchorGenerator(sizes, ratios)
    ours = AnchorGenerator(sizes=sizes, ratios=ratios)
    padded = (224, 320)
    features = [torch.zeros(2, 1, 224 // s, 320 // s) for s in (4, 8, 16, 32, 64)]
    expected = theirs(ImageList(torch.zeros(2, 3, *padded), [(224, 300), (200, 320)]), features)
    got = ours([tuple(f.shape[-2:]) for f in features], padded)
    assert torch.equal(got, expected[0]) and torch.equal(got, expected[1])
    assert ours.num_anchors == [3] * 5


def test_sampler_fraction_and_determinism() -> None:
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 50)
    torch.manual_seed(0)
    pos, neg = sample_balanced(labels, num_samples=32, positive_fraction=0.25)
    assert pos.numel() == 8 and neg.numel() == 24
    assert bool((labels[pos] == 1).all()) and bool((labels[neg] == 0).all())
    torch.manual_seed(0)
    pos2, neg2 = sample_balanced(labels, num_samples=32, positive_fraction=0.25)
    assert torch.equal(pos, pos2) and torch.equal(neg, neg2)
    few = torch.tensor([1, 0, 0, -1])  # too few of both: take what there is
    pos, neg = sample_balanced(few, num_samples=32, positive_fraction=0.5)
    assert pos.tolist() == [0] and sorted(neg.tolist()) == [1, 2]


def test_masks_to_boxes_pixel_edges_and_empty() -> None:
    masks = torch.zeros(3, 6, 8, dtype=torch.uint8)
    masks[0, 1:3, 2:5] = 1
    masks[1, 5, 7] = 1
    assert masks_to_boxes(masks).tolist() == [[2, 1, 5, 3], [7, 5, 8, 6], [0, 0, 0, 0]]
    assert masks_to_boxes(torch.zeros(0, 4, 5)).shape == (0, 4)


def test_boxes_inside_crowd() -> None:
    crowd = torch.zeros(20, 20, dtype=torch.uint8)
    crowd[:10, :10] = 1
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 12.0], [5.0, 5.0, 15.0, 15.0], [10, 10, 20, 20]])
    # covered fractions 1, 100/120, 25/100, 0
    assert boxes_inside_crowd(boxes, crowd, threshold=0.7).tolist() == [True, True, False, False]
    assert boxes_inside_crowd(boxes, crowd, threshold=0.9).tolist() == [True, False, False, False]
    assert not boxes_inside_crowd(boxes, torch.zeros(20, 20)).any()


def test_ignore_crowd_negatives_leaves_positives_alone() -> None:
    crowd = torch.zeros(20, 20, dtype=torch.uint8)
    crowd[:10, :10] = 1
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 9.0, 9.0], [10, 10, 20, 20], [1.0, 1.0, 8.0, 8.0]])
    labels = torch.tensor([0, 2, 0, -1])
    assert ignore_crowd_negatives(labels.clone(), boxes, crowd).tolist() == [-1, 2, 0, -1]
    assert ignore_crowd_negatives(labels.clone(), boxes, None).tolist() == [0, 2, 0, -1]


def test_mask_targets_equal_torchvision() -> None:
    g = torch.Generator().manual_seed(3)
    gt = (torch.rand(4, 60, 80, generator=g) > 0.5).to(torch.uint8)
    boxes = random_boxes(20, g, size=50)
    matched = torch.randint(0, 4, (20,), generator=g)
    assert torch.equal(mask_targets(gt, boxes, matched, 28), project_masks_on_boxes(gt, boxes, matched, 28))


def test_paste_masks_equals_torchvision() -> None:
    g = torch.Generator().manual_seed(4)
    masks = torch.rand(12, 28, 28, generator=g)
    boxes = random_boxes(12, g, size=90)  # some boxes cross the right or bottom border
    expected = paste_masks_in_image(masks[:, None], boxes, (90, 100))[:, 0]
    assert torch.equal(paste_masks(masks, boxes, (90, 100)), expected)
    assert paste_masks(masks[:0], boxes[:0], (90, 100)).shape == (0, 90, 100)
    outside = torch.tensor([[120.0, 10.0, 140.0, 30.0]])  # torchvision fails on a box outside the image
    assert paste_masks(masks[:1], outside, (90, 100)).sum() == 0
