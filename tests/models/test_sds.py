"""What is SDS's own (the contract test covers the rest): the region pathway masks the background, the shapes
of the classifier and the refinement, the paper's parameter count, explicit proposals, the losses, region NMS,
a checkpoint that rebuilds its proposer from the recorded spec, and settings checked by name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import seglab
from seglab.data import build_dataset, collate_instance
from seglab.engine.checkpoint import load_model, save_weights
from seglab.errors import ConfigError, InputError
from seglab.layers.normalize import IMAGENET_MEAN, IMAGENET_STD
from seglab.models.instance.deepmask import DEEPMASK_SPEC
from seglab.models.instance.proposals import ImageProposals, jittered_ground_truth
from seglab.models.instance.sds import region_nms

NUM_CLASSES = 4
SMALL = {"crop_size": 64, "widths": (8, 8, 8, 8, 8), "fc_channels": 16, "batch_per_image": 16,
         "score_threshold": 0.0, "max_detections": 10}


def build(**kwargs: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return seglab.create_model("sds_alexnet", num_classes=NUM_CLASSES, **{**SMALL, **kwargs})


def samples(n: int = 2) -> tuple[list[torch.Tensor], list]:
    data = build_dataset("synthetic", split="train", task="instance", num_images=n, size=(64, 96))
    return collate_instance([data[i] for i in range(n)])


def test_region_pathway_sets_the_background_to_the_mean() -> None:
    model = build(context=0.0).eval()
    image = torch.rand(3, 80, 90)
    ys, xs = torch.meshgrid(torch.arange(80), torch.arange(90), indexing="ij")
    region = (((ys - 37) ** 2 + (xs - 42) ** 2) < 25**2).float()[None]  # a disk inside the box
    box = torch.tensor([[10.0, 5.0, 74.0, 69.0]])  # 64 x 64: the warp to 64 px is the identity
    box_crops, region_inputs, region_crops = model.pathway_inputs(image, box, region)
    normalised = (image - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    assert torch.allclose(box_crops[0], normalised[:, 5:69, 10:74], atol=1e-5)
    inside = region_crops[0] >= 0.5
    assert torch.equal(inside, region[0, 5:69, 10:74].bool())
    assert torch.equal(region_inputs[0][:, inside], box_crops[0][:, inside])  # the image inside the region
    background = region_inputs[0][:, ~inside] * torch.tensor(IMAGENET_STD)[:, None] + torch.tensor(IMAGENET_MEAN)[:, None]
    assert torch.allclose(background, torch.tensor(IMAGENET_MEAN)[:, None].expand_as(background))  # the mean


def test_classifier_and_refinement_shapes() -> None:
    model = build().eval()
    image, regions = torch.rand(3, 64, 96), torch.zeros(3, 64, 96)
    regions[:, 10:40, 20:60] = 1
    boxes = torch.tensor([[20.0, 10.0, 60.0, 40.0]]).repeat(3, 1)
    pool5, logits = model.features(image, boxes, regions)
    assert pool5.shape == (3, 8, 6, 6) and logits.shape == (3, NUM_CLASSES)  # C + 1 outputs
    coarse, expanded = model.coarse_logits(pool5, boxes, regions, torch.tensor([1, 2, 3]))
    assert coarse.shape == (3, 10, 10) and model.refinement.cells.out_features == (NUM_CLASSES - 1) * 100
    assert bool((expanded[:, :2] < boxes[:, :2]).all() and (expanded[:, 2:] > boxes[:, 2:]).all())  # context
    assert model.refinement.combined_logits(coarse.sigmoid(), regions[:, :10, :10], torch.tensor([1, 2, 3])).shape \
        == (3, 10, 10)


def test_paper_parameter_count_by_formula() -> None:
    convs = 3 * 64 * 121 + 64 * 192 * 25 + 192 * 384 * 9 + 384 * 256 * 9 + 256 * 256 * 9 + (64 + 192 + 384 + 256 + 256)
    fcs = 256 * 36 * 4096 + 4096 + 4096 * 4096 + 4096
    classifier = 2 * 4096 * 21 + 21
    refinement = 20 * 100 * (256 * 36 + 100) + 20 * 100 + 20 * 3
    with torch.device("meta"):
        model = seglab.create_model("sds_alexnet", **seglab.model_spec("sds_alexnet").reference_kwargs)
    expected = 2 * (convs + fcs) + classifier + refinement
    assert sum(p.numel() for p in model.parameters()) == expected == seglab.model_spec("sds_alexnet").reference_params


def test_explicit_jittered_ground_truth_proposals_give_predictions() -> None:
    model = build().eval()
    images, targets = samples()
    proposals = [jittered_ground_truth(t, generator=torch.Generator().manual_seed(0)) for t in targets]
    with torch.no_grad():
        predictions = model(images, proposals=proposals)
        empty = model(images[:1], proposals=[ImageProposals(torch.zeros(0, 4), torch.zeros(0))])
    for prediction, image in zip(predictions, images):
        assert len(prediction) > 0 and prediction.masks.shape[1:] == image.shape[-2:]
        assert bool((prediction.scores[:-1] >= prediction.scores[1:]).all())
    assert len(empty[0]) == 0 and empty[0].masks.shape[1:] == images[0].shape[-2:]
    with pytest.raises(InputError, match="no proposer"):
        model(images)
    with pytest.raises(InputError, match="proposals"):
        model(images, proposals=proposals[:1])


def test_training_returns_named_finite_losses_with_gradients() -> None:
    model = build().train()
    images, targets = samples()
    proposals = [jittered_ground_truth(t, copies=2, max_shift=0.5) for t in targets]
    for given in (None, proposals):
        model.zero_grad()
        losses = model(images, targets, proposals=given)
        assert set(losses) == {"loss_cls", "loss_refine"} and all(torch.isfinite(v) for v in losses.values())
        assert float(losses["loss_refine"].detach()) > 0  # the exact ground-truth copies overlap >= 0.7
        sum(losses.values()).backward()
        for p in (model.classifier.weight, model.refinement.cells.weight, model.refinement.combine,
                  model.net.region.features[0].weight):
            assert p.grad is not None and bool(p.grad.abs().sum() > 0)


def test_region_nms_suppresses_overlapping_regions_by_mask_iou() -> None:
    regions = torch.zeros(3, 20, 20)
    regions[0, :10, :10] = 1
    regions[1, :10, 2:12] = 1  # IoU 8/12 with region 0
    regions[2, 12:, 12:] = 1
    scores = torch.tensor([0.5, 0.9, 0.4])
    assert region_nms(scores, regions, 0.0).tolist() == [1, 2]
    assert region_nms(scores, regions, 0.7).tolist() == [1, 0, 2]


def test_checkpoint_rebuilds_from_the_recorded_proposer_spec(tmp_path: Path) -> None:
    torch.manual_seed(1)
    kwargs = dict(DEEPMASK_SPEC.test_kwargs)
    proposer = seglab.create_model("deepmask_vgg11", num_classes=2, **kwargs).eval()
    save_weights(proposer, tmp_path / "proposer", {"model": "deepmask_vgg11", "num_classes": 2, "model_kwargs": kwargs})
    model = build(proposer=str(tmp_path / "proposer"), num_proposals=10).eval()
    assert model.rebuild_kwargs["proposer"]["model"] == "deepmask_vgg11"
    save_weights(model, tmp_path / "sds", {"model": "sds_alexnet", "num_classes": NUM_CLASSES,
                                           "model_kwargs": {**SMALL, "num_proposals": 10, **model.rebuild_kwargs}})
    shutil.rmtree(tmp_path / "proposer")  # the checkpoint must not need it
    loaded, _ = load_model(tmp_path / "sds")
    images, _ = samples(1)
    with torch.no_grad():
        a, b = model(images)[0], loaded(images)[0]
    assert torch.equal(a.masks, b.masks) and torch.equal(a.scores, b.scores)


@pytest.mark.parametrize(("field", "value"), [
    ("crop_size", 32), ("widths", (8, 8, 8)), ("grid", 0), ("fg_iou", 0.0), ("positive_fraction", 1.5),
    ("nms_threshold", 1.0), ("num_proposals", 0), ("max_detections", 0),
])
def test_bad_settings_raise_config_error_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        build(**{field: value})
    with pytest.raises(ConfigError, match="proposer"):
        build(proposer="/nonexistent/run/final")
