"""Panoptic FPN's own pieces: the label spaces, the fusion rule, the semantic branch and its loss weight."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import seglab
from seglab.errors import ConfigError
from seglab.heads.semantic_fpn import SemanticFPNHead
from seglab.models.panoptic.fusion import FusionSettings, PanopticClasses, fuse_panoptic
from seglab.structures import InstancePrediction, PanopticTarget


def instances(masks: list[torch.Tensor], labels: list[int], scores: list[float]) -> InstancePrediction:
    stacked = torch.stack(masks).float()
    return InstancePrediction(masks=stacked, boxes_xyxy=torch.zeros(len(masks), 4),
                              labels=torch.tensor(labels), scores=torch.tensor(scores))


def box(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_label_spaces_of_things_and_stuff() -> None:
    classes = PanopticClasses(6, [4, 1])  # classes 1 and 4 are things; 0, 2, 3, 5 stuff
    assert classes.things == [1, 4] and classes.stuff == [0, 2, 3, 5]
    assert classes.class_of_thing_label.tolist()[1:] == [1, 4]
    semantic = torch.tensor([[0, 1, 2], [3, 4, 255]])
    assert classes.semantic_target(semantic).tolist() == [[1, 0, 2], [3, 0, 255]]
    ids = torch.tensor([[0, 1, 0], [0, 0, 0]])  # the class-4 pixel without an instance is crowd
    target = classes.instance_target(PanopticTarget(semantic, ids))
    assert target.labels.tolist() == [1] and target.masks.sum() == 1
    assert target.boxes_xyxy.tolist() == [[1.0, 0.0, 2.0, 1.0]]
    assert target.crowd.tolist() == [[0, 0, 0], [0, 1, 0]]
    with pytest.raises(ConfigError, match="thing_classes"):
        PanopticClasses(3, [])


def test_fusion_keeps_instances_by_score_drops_overlaps_and_limits_stuff_area() -> None:
    h, w = 10, 10
    classes = PanopticClasses(4, [1, 2, 3])
    stuff = torch.zeros(h, w, dtype=torch.int64)  # the semantic branch says stuff class 0 everywhere...
    stuff[9, 9] = 1  # ...but one thing-class pixel, which never becomes stuff
    found = instances(
        [box(h, w, 0, 4, 0, 4), box(h, w, 0, 4, 2, 6), box(h, w, 1, 4, 1, 4), box(h, w, 6, 8, 6, 8),
         box(h, w, 8, 10, 0, 2)],
        labels=[1, 2, 3, 1, 2], scores=[0.9, 0.8, 0.7, 0.6, 0.4])
    out = fuse_panoptic(found, stuff, classes, FusionSettings(instance_score=0.5, overlap=0.5, stuff_area=10))
    # 1st: 16 px, id 1. 2nd: 8 of its 16 px taken = 0.5, not > 0.5: kept on its 8 free px, id 2.
    # 3rd: 9 of 9 px taken: dropped. 4th: id 3. 5th: score 0.4 < 0.5: the loop stops.
    assert (out.instance_ids == 1).sum() == 16 and (out.semantic[out.instance_ids == 1] == 1).all()
    assert (out.instance_ids == 2).sum() == 8 and (out.semantic[out.instance_ids == 2] == 2).all()
    assert (out.instance_ids == 3).sum() == 4 and int(out.instance_ids.max()) == 3
    assert out.semantic[9, 9] == 255, "a thing-class pixel of the semantic map is not stuff"
    assert (out.semantic[out.instance_ids == 0] != 255).sum() == 100 - 28 - 1  # the rest is stuff 0
    tight = fuse_panoptic(found, stuff, classes, FusionSettings(stuff_area=100))
    assert (tight.semantic[tight.instance_ids == 0] == 255).all(), "71 free px < 100: no stuff segment"


def test_fusion_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="overlap"):
        FusionSettings(overlap=1.5)
    with pytest.raises(ConfigError, match="stuff_area"):
        FusionSettings(stuff_area=-1)


def test_semantic_branch_shapes_and_parameters_follow_the_paper() -> None:
    head = SemanticFPNHead(256, num_classes=54)
    features = {f"p{k}": torch.rand(1, 256, 64 // 2 ** (k - 2), 96 // 2 ** (k - 2)) for k in range(2, 6)}
    assert head(features).shape == (1, 54, 64, 96)
    stage = 256 * 128 * 9 + 2 * 128  # conv 3x3 without bias + GN
    more = 128 * 128 * 9 + 2 * 128
    # P2 and P3 one stage, P4 two, P5 three (sec. 3.1); predictor 1x1 128 -> 54
    expected = 4 * stage + 3 * more + 128 * 54 + 54
    assert sum(p.numel() for p in head.parameters()) == expected
    assert sum(isinstance(m, torch.nn.Upsample) for m in head.stages["p5"]) == 3
    assert sum(isinstance(m, torch.nn.Upsample) for m in head.stages["p2"]) == 0


def test_panoptic_fpn_is_mask_rcnn_plus_the_semantic_branch() -> None:
    with torch.device("meta"):
        panoptic = seglab.create_model("panoptic_fpn_resnet50", num_classes=133, thing_classes=range(80))
        mask_rcnn = seglab.create_model("mask_rcnn_resnet50_fpn", num_classes=81)
    extra = sum(p.numel() for p in panoptic.parameters()) - sum(p.numel() for p in mask_rcnn.parameters())
    assert extra == sum(p.numel() for p in panoptic.semantic_head.parameters())
    assert panoptic.semantic_head.predictor.out_channels == 54  # 53 stuff + "things" (the release's COCO setup)


def test_semantic_loss_is_half_the_cross_entropy_of_the_semantic_branch() -> None:
    torch.manual_seed(0)
    spec = seglab.model_spec("panoptic_fpn_resnet50")
    model = seglab.create_model("panoptic_fpn_resnet50", num_classes=4, thing_classes=[1, 2, 3], **spec.test_kwargs)
    data = seglab.data.build_dataset("synthetic", split="train", task="panoptic", num_images=1, size=(64, 96))
    images, targets = seglab.data.collate_panoptic([data[0]])
    captured = {}
    model.semantic_head.register_forward_hook(lambda m, i, o: captured.update(logits=o))
    losses = model.train()(images, targets)
    logits = F.interpolate(captured["logits"], scale_factor=4, mode="bilinear", align_corners=False)
    labels = model.classes.semantic_target(targets[0].semantic)[None]
    assert torch.allclose(losses["loss_sem_seg"], 0.5 * F.cross_entropy(logits, labels, ignore_index=255))


def test_two_separately_built_models_assemble_into_a_panoptic_model() -> None:
    from seglab.models.panoptic.semantic_instance import SemanticInstanceFusion

    torch.manual_seed(0)
    semantic = seglab.create_model("unet", num_classes=4, base_channels=8)
    instance = seglab.create_model("mask_rcnn_resnet50_fpn", num_classes=4,
                                   **seglab.model_spec("mask_rcnn_resnet50_fpn").test_kwargs)
    model = SemanticInstanceFusion.from_models(semantic, instance, thing_classes=[1, 2, 3]).eval()
    with torch.no_grad():
        out = model([torch.rand(3, 40, 56)])[0]
    assert out.semantic.shape == (40, 56)
    with pytest.raises(ConfigError, match="needs? 3 \\(background \\+ things"):
        SemanticInstanceFusion.from_models(semantic, instance, thing_classes=[1, 2])
