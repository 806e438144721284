"""The proposal protocol (seglab.models.instance.proposals): every proposer gives the same ImageProposals,
a ProposerSlot stays frozen inside a host, checkpoints and specs build one, ground truth jitters as stated."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import seglab
from seglab.data import build_dataset, collate_instance
from seglab.engine.checkpoint import save_weights
from seglab.errors import ConfigError
from seglab.models.instance.proposals import (
    ImageProposals,
    Proposer,
    build_proposer,
    concat_proposals,
    jittered_ground_truth,
    mask_iou,
    region_masks,
)

PROPOSERS = ["deepmask_vgg11", "sharpmask_resnet50", "mask_rcnn_resnet50_fpn"]


def spec(name: str) -> dict:
    return {"model": name, "num_classes": 4, "kwargs": seglab.model_spec(name).test_kwargs}


@pytest.mark.parametrize("name", PROPOSERS)
def test_every_proposer_gives_ranked_proposals_in_image_pixels(name: str) -> None:
    torch.manual_seed(0)
    slot = build_proposer(spec(name))
    assert isinstance(slot.proposer, Proposer)
    images = [torch.rand(3, 64, 96), torch.rand(3, 50, 70)]
    out = slot(images)
    assert len(out) == 2
    for proposals, image in zip(out, images):
        height, width = image.shape[-2:]
        assert isinstance(proposals, ImageProposals)
        assert bool((proposals.scores[:-1] >= proposals.scores[1:]).all())
        if len(proposals):
            b = proposals.boxes
            assert float(b.min()) >= 0 and bool((b[:, 2] <= width).all()) and bool((b[:, 3] <= height).all())
        masks = region_masks(proposals, (height, width))
        assert masks.shape == (len(proposals), height, width)
        if name == "mask_rcnn_resnet50_fpn":
            assert proposals.masks is None  # box proposals: the regions are the filled boxes
        else:
            assert proposals.masks is not None and proposals.masks.shape[1:] == (height, width)


def test_the_slot_is_frozen_and_stays_in_eval_mode_inside_a_training_host() -> None:
    slot = build_proposer(spec("deepmask_vgg11"))
    host = torch.nn.ModuleDict({"slot": slot}).train()
    assert not slot.proposer.training and host.training
    assert not any(p.requires_grad for p in slot.parameters())
    out = slot([torch.rand(3, 64, 64)])[0]
    assert not out.scores.requires_grad


def test_a_checkpoint_directory_builds_the_same_proposer_and_its_spec(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = seglab.create_model("deepmask_vgg11", num_classes=4, **seglab.model_spec("deepmask_vgg11").test_kwargs)
    save_weights(model, tmp_path / "final", {"model": "deepmask_vgg11", "num_classes": 4,
                                             "model_kwargs": seglab.model_spec("deepmask_vgg11").test_kwargs,
                                             "task": "instance"})
    slot = build_proposer(tmp_path / "final")
    assert slot.spec["model"] == "deepmask_vgg11" and slot.spec["num_classes"] == 4
    for name, tensor in model.state_dict().items():
        assert torch.equal(slot.proposer.state_dict()[name], tensor), name
    image = torch.rand(3, 64, 80)
    assert torch.equal(slot([image])[0].scores, model.eval().proposals([image])[0].scores)


def test_bad_proposers_are_named() -> None:
    with pytest.raises(ConfigError, match="does not exist.*seglab train"):
        build_proposer("runs/none/final")
    with pytest.raises(ConfigError, match="not a proposer"):
        build_proposer(spec("fcis_resnet101"))
    with pytest.raises(ConfigError, match="checkpoint directory or"):
        build_proposer({"model": "deepmask_vgg11", "weights": "x"})


def test_jittered_ground_truth_keeps_the_objects_and_moves_the_copies() -> None:
    data = build_dataset("synthetic", split="train", task="instance", num_images=2, size=(96, 128))
    _, targets = collate_instance([data[i] for i in range(2)])
    target = targets[0]
    proposals = jittered_ground_truth(target, copies=3, max_shift=0.2, generator=torch.Generator().manual_seed(0))
    assert len(proposals) == 3 * len(target)
    iou = mask_iou(proposals.masks, target.masks.float())
    best = iou.amax(1)
    assert int((best == 1).sum()) >= len(target)  # the exact copies
    assert bool((best > 0.3).all())  # a shift of at most 20 % of the box keeps the object overlapping
    assert bool((proposals.scores[:-1] >= proposals.scores[1:]).all()) and float(proposals.scores.max()) == 1.0
    with pytest.raises(ConfigError, match="copies"):
        jittered_ground_truth(target, copies=0)


def test_region_masks_fill_boxes_and_mask_iou_and_concat() -> None:
    boxes = ImageProposals(torch.tensor([[1.0, 2.0, 4.0, 3.0]]), torch.tensor([0.9]))
    filled = region_masks(boxes, (5, 6))
    assert filled.sum() == 3 and filled[0, 2, 1:4].tolist() == [1, 1, 1]
    a = torch.zeros(2, 4, 4)
    a[0, :2] = 1
    a[1, :, :2] = 1
    assert mask_iou(a, a[:1]).flatten().tolist() == [1.0, pytest.approx(1 / 3)]
    assert mask_iou(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4)).item() == 0
    masks = ImageProposals(torch.tensor([[0.0, 0.0, 4.0, 2.0]]), torch.tensor([0.95]), a[:1])
    both = concat_proposals([ImageProposals(boxes.boxes, boxes.scores), masks], (4, 4))
    assert both.scores.tolist() == pytest.approx([0.95, 0.9]) and both.masks.shape == (2, 4, 4)


def test_two_stage_proposals_are_mapped_back_to_the_input_size() -> None:
    torch.manual_seed(0)
    kwargs = {**seglab.model_spec("mask_rcnn_resnet50_fpn").test_kwargs, "min_size": 128, "max_size": 256}
    model = seglab.create_model("mask_rcnn_resnet50_fpn", num_classes=4, **kwargs).eval()
    out = model.proposals([torch.rand(3, 48, 64)])[0]  # resized x2.67 inside the model
    assert len(out) and float(out.boxes[:, 2].max()) <= 64 and float(out.boxes[:, 3].max()) <= 48
    assert float(out.boxes[:, 2].max()) > 32  # in input pixels, not clipped to a quarter


@pytest.mark.parametrize("name", PROPOSERS)
def test_top_k_bounds_the_proposals_of_every_proposer(name: str) -> None:
    torch.manual_seed(0)
    full = build_proposer(spec(name))([torch.rand(3, 64, 96)])[0]
    torch.manual_seed(0)
    few = build_proposer(spec(name), top_k=3)([torch.rand(3, 64, 96)])[0]
    assert len(few) <= 3 and torch.equal(few.scores, full.scores[: len(few)])
    with pytest.raises(ConfigError, match="top_k"):
        build_proposer(spec(name), top_k=0)


def test_second_stages_check_given_proposals_naming_the_item() -> None:
    from seglab.errors import InputError
    from seglab.models.instance.proposals import checked_proposals

    images = [torch.rand(3, 40, 50), torch.rand(3, 30, 20)]
    good = [ImageProposals(torch.tensor([[0.0, 0.0, 5.0, 5.0]]), torch.ones(1), torch.zeros(1, 40, 50)),
            ImageProposals(torch.zeros(0, 4), torch.zeros(0))]
    assert checked_proposals(None, images, model="SDS") is None
    assert checked_proposals(good, images, model="SDS") == good
    with pytest.raises(InputError, match="SDS: proposals must be a list of one ImageProposals per image"):
        checked_proposals(good[:1], images, model="SDS")
    with pytest.raises(InputError, match=r"MultiPath: proposals\[1\].masks are \(40, 50\)"):
        checked_proposals([good[0], good[0]], images, model="MultiPath")
