"""What is MultiPath's own: foveal regions, which levels each region pools, the integral loss's six IoU
thresholds and test-time mean of softmaxes, the paper's parameter count, and the proposer it records."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torchvision.ops import box_iou

import seglab
from seglab.data import build_dataset, collate_instance
from seglab.engine.checkpoint import load_model, save_weights
from seglab.errors import ConfigError, InputError
from seglab.heads import multipath as mp_head
from seglab.heads.multipath import (
    FOVEAL_SCALES,
    INTEGRAL_THRESHOLDS,
    MultiPathHead,
    SkipTrunk,
    foveal_boxes,
    integral_labels,
    integral_scores,
)
from seglab.models.instance.proposals import ImageProposals
from seglab.structures import InstanceTarget

NAME = "multipath_vgg16"
SMALL = {"backbone": "resnet18", "fuse_channels": 8, "tower_hidden": 16, "min_size": None, "rois_per_image": 16,
         "proposals_per_image": (50, 20)}  # no proposer: proposals passed in, or the jittered ground truth
TINY_DEEPMASK = {"model": "deepmask_vgg11", "num_classes": 2,
                 "kwargs": seglab.model_spec(NAME).test_kwargs["proposer"]["kwargs"]}


def build(**kwargs: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return seglab.create_model(NAME, num_classes=4, **{**SMALL, **kwargs})


def samples(n: int = 2) -> tuple[list[torch.Tensor], list[InstanceTarget]]:
    data = build_dataset("synthetic", split="train", task="instance", num_images=n, size=(64, 96))
    return collate_instance([data[i] for i in range(n)])


def test_foveal_regions_share_the_centre_and_scale_the_sides() -> None:
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 8.0, 4.0]])
    assert FOVEAL_SCALES == (1.0, 1.5, 2.0, 4.0)
    for scale in FOVEAL_SCALES:
        grown = foveal_boxes(boxes, scale)
        assert torch.allclose((grown[:, :2] + grown[:, 2:]) / 2, (boxes[:, :2] + boxes[:, 2:]) / 2)
        assert torch.allclose(grown[:, 2:] - grown[:, :2], scale * (boxes[:, 2:] - boxes[:, :2]))
    assert torch.equal(foveal_boxes(boxes, 1.5)[0], torch.tensor([5.0, 10.0, 35.0, 70.0]))  # Foveal.lua: x - w/4


def test_each_region_pools_its_levels_at_their_strides(monkeypatch: pytest.MonkeyPatch) -> None:
    channels, strides = {"conv3": 4, "conv4": 6, "conv5": 8}, {"conv3": 4, "conv4": 8, "conv5": 16}
    head = MultiPathHead(channels=channels, strides=strides, num_classes=3, fuse_channels=5, hidden=7)
    features = {name: torch.rand(1, c, 64 // strides[name], 64 // strides[name]) for name, c in channels.items()}
    calls = []
    real = mp_head.roi_pool

    def spy(x: torch.Tensor, rois: torch.Tensor, size: int, scale: float) -> torch.Tensor:
        calls.append((x.shape[1], scale, rois[0, 1:].clone()))
        return real(x, rois, size, scale)

    monkeypatch.setattr(mp_head, "roi_pool", spy)
    rois = torch.tensor([[0.0, 16.0, 16.0, 32.0, 40.0]])
    head(features, rois)
    expected = [(1.0, ("conv5", "conv4", "conv3")), (1.5, ("conv5", "conv4")), (2.0, ("conv5", "conv4")),
                (4.0, ("conv5",)), (1.5, ("conv5", "conv4", "conv3"))]  # four regions, then the box tower
    assert len(calls) == sum(len(levels) for _, levels in expected)
    for scale, levels in expected:
        box = foveal_boxes(rois[:, 1:], scale)[0]
        for level in levels:
            got_channels, got_scale, got_box = calls.pop(0)
            assert (got_channels, got_scale) == (channels[level], 1 / strides[level]) and torch.allclose(got_box, box)
    for region, (_, levels) in zip([*head.regions, head.box_region], expected):
        assert region.fusion.mix.in_channels == sum(channels[level] for level in levels)
        assert region.fusion.mix.out_channels == 5 and region.tower[0].in_features == 5 * 7 * 7


def test_vgg16_taps_are_conv3_3_conv4_3_conv5_3() -> None:
    trunk = SkipTrunk("vgg16")
    taps = trunk(torch.rand(1, 3, 64, 96))
    for name, stride in {"conv3": 4, "conv4": 8, "conv5": 16}.items():
        assert taps[name].shape[-2:] == (64 // stride, 96 // stride) and trunk.strides[name] == stride
        assert taps[name].shape[1] == trunk.channels[name] == {"conv3": 256, "conv4": 512, "conv5": 512}[name]
    assert bool((taps["conv3"] >= 0).all())  # ReLU outputs before the pools


def test_integral_heads_label_a_proposal_of_iou_0_6_positive_up_to_0_6() -> None:
    assert INTEGRAL_THRESHOLDS == (0.50, 0.55, 0.60, 0.65, 0.70, 0.75)
    labels = integral_labels(torch.tensor([2, 3, 0]), torch.tensor([0.6, 0.74, 0.3]), INTEGRAL_THRESHOLDS)
    assert labels.tolist() == [[2, 3, 0], [2, 3, 0], [2, 3, 0], [0, 3, 0], [0, 3, 0], [0, 0, 0]]


def test_training_labels_each_head_by_the_rois_iou(monkeypatch: pytest.MonkeyPatch) -> None:
    from seglab.models.instance import multipath as mp_model

    model = build(rois_per_image=64).train()
    gt = torch.tensor([[10.0, 10.0, 60.0, 60.0]])
    masks = torch.zeros(1, 64, 96, dtype=torch.uint8)
    masks[0, 10:60, 10:60] = 1
    target = InstanceTarget(boxes_xyxy=gt, labels=torch.tensor([2]), masks=masks)
    proposal = torch.tensor([[10.0, 10.0, 60.0, 40.0]])  # IoU 0.6
    assert float(box_iou(proposal, gt)) == pytest.approx(0.6)
    seen = {}
    real = mp_model.integral_losses

    def spy(class_logits: torch.Tensor, deltas: torch.Tensor, labels: torch.Tensor, box_targets: torch.Tensor):
        seen["labels"] = labels
        return real(class_logits, deltas, labels, box_targets)

    monkeypatch.setattr(mp_model, "integral_losses", spy)
    features = model.trunk(torch.rand(1, 3, 64, 96))
    model.losses(features, [proposal], [target])
    assert seen["labels"].shape == (6, 2)  # the proposal and the ground truth box sample_rois adds
    assert seen["labels"][:, 0].tolist() == [2, 2, 2, 0, 0, 0] and seen["labels"][:, 1].tolist() == [2] * 6


def test_test_scores_are_the_mean_of_the_six_softmaxes() -> None:
    logits = torch.randn(6, 5, 4)
    expected = sum(torch.softmax(logits[t], dim=1) for t in range(6)) / 6
    assert torch.allclose(integral_scores(logits), expected)
    model = build(nms_threshold=1.0, score_threshold=0.0).eval()
    image = torch.rand(3, 64, 96)
    boxes = torch.tensor([[4.0, 4.0, 40.0, 40.0], [30.0, 10.0, 90.0, 60.0]])
    with torch.no_grad():
        prediction = model([image], proposals=[ImageProposals(boxes, torch.tensor([0.9, 0.8]))])[0]
        class_logits, _ = model.head(model.trunk(model.prepare([image], None)[0].tensor),
                                     torch.cat([torch.zeros(2, 1), boxes], 1))
    probs = integral_scores(class_logits)
    assert len(prediction) == 2 * 3  # every (proposal, class) pair above 0 survives NMS at 1.0
    for score, label in zip(prediction.scores, prediction.labels):
        assert torch.isclose(probs[:, label], score).any()
    assert set(prediction.labels.tolist()) == {1, 2, 3}


def test_masks_are_the_proposals_masks_and_no_proposals_give_an_empty_prediction() -> None:
    model = build(score_threshold=0.0).eval()
    image = torch.rand(3, 64, 96)
    masks = torch.zeros(2, 64, 96)
    masks[0, 5:30, 5:30], masks[1, 20:50, 40:80] = 0.8, 0.6
    proposals = ImageProposals(torch.tensor([[5.0, 5.0, 30.0, 30.0], [40.0, 20.0, 80.0, 50.0]]), torch.ones(2), masks)
    empty = ImageProposals(torch.zeros(0, 4), torch.zeros(0))
    with torch.no_grad():
        found, none = model([image, image], proposals=[proposals, empty])
        alone = model([image], proposals=[empty])[0]
    assert len(found) and all(any(torch.equal(m, p) for p in masks) for m in found.masks)
    assert len(none) == 0 and none.masks.shape == (0, 64, 96) and len(alone) == 0
    with pytest.raises(InputError, match="proposer"):
        model([image])


def test_parameter_count_of_the_paper_configuration() -> None:
    vgg16 = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256)] + \
        [(256, 512)] + [(512, 512)] * 5
    trunk = sum(i * o * 9 + o for i, o in vgg16)
    fusions = sum(c * 512 + 512 for c in (1280, 1024, 1024, 512, 1280))  # inputs: conv3 256, conv4 and conv5 512
    towers = 5 * ((512 * 7 * 7 * 4096 + 4096) + (4096 * 4096 + 4096))
    heads = 6 * (4 * 4096 * 81 + 81) + (4096 * 81 * 4 + 81 * 4)
    spec = seglab.model_spec(NAME)
    with torch.device("meta"):
        model = seglab.create_model(NAME, **spec.reference_kwargs)
    assert trunk == 14_714_688
    assert sum(p.numel() for p in model.parameters()) == trunk + fusions + towers + heads == spec.reference_params


def test_training_returns_named_finite_losses_with_gradients() -> None:
    model = build().train()
    images, targets = samples()
    extra = [ImageProposals(torch.tensor([[0.0, 0.0, 40.0, 40.0]]), torch.ones(1)) for _ in images]
    for proposals in (None, extra):  # the jittered ground truth alone, or with given proposals
        model.zero_grad()
        losses = model(images, targets, proposals=proposals)
        assert tuple(losses) == ("loss_cls", "loss_box_reg") and all(torch.isfinite(v) for v in losses.values())
        sum(losses.values()).backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_checkpoint_rebuilds_from_the_recorded_proposer_spec(tmp_path: Path) -> None:
    torch.manual_seed(0)
    proposer = seglab.create_model("deepmask_vgg11", num_classes=2, **TINY_DEEPMASK["kwargs"])
    save_weights(proposer, tmp_path / "proposer", {"model": "deepmask_vgg11", "num_classes": 2,
                                                   "model_kwargs": TINY_DEEPMASK["kwargs"]})
    model = build(proposer=str(tmp_path / "proposer")).eval()
    assert model.rebuild_kwargs == {"proposer": {"model": "deepmask_vgg11", "num_classes": 2,
                                                 "kwargs": TINY_DEEPMASK["kwargs"]}}
    assert not any(p.requires_grad for p in model.proposer.parameters())
    save_weights(model, tmp_path / "mpn", {"model": NAME, "num_classes": 4, "model_kwargs": {
        **SMALL, "proposals_per_image": list(SMALL["proposals_per_image"]), **model.rebuild_kwargs}})
    shutil.rmtree(tmp_path / "proposer")  # the checkpoint must not need it
    loaded, _ = load_model(tmp_path / "mpn")
    images, _ = samples()
    with torch.no_grad():
        for a, b in zip(model(images), loaded(images)):
            assert torch.equal(a.boxes_xyxy, b.boxes_xyxy) and torch.equal(a.scores, b.scores)
            assert torch.equal(a.masks, b.masks)


@pytest.mark.parametrize("field, value", [("fuse_channels", 0), ("tower_hidden", 0), ("dropout", 1.0),
                                          ("rois_per_image", 0), ("positive_fraction", 0.0),
                                          ("proposals_per_image", (100,)), ("nms_threshold", 0.0),
                                          ("max_detections", 0), ("backbone", "alexnet"),
                                          ("proposer", "/nonexistent/proposer")])
def test_bad_settings_raise_config_error_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        build(**{field: value})


def test_cost_forward_runs_on_the_meta_device() -> None:
    with torch.device("meta"):
        model = build().eval()
        model.cost_forward(torch.empty(1, 3, 64, 96))
