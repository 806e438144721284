"""Mask R-CNN against torchvision's: parameter counts, weights loaded by key map, identical outputs and losses.

torchvision builds its Mask R-CNN with FrozenBatchNorm2d when it loads weights (its COCO file or an
ImageNet backbone); the same public parts (``MaskRCNN``, ``resnet_fpn_backbone``) build it here with
random weights, and seglab's model loads that state dict through ``pretrained=`` like a user's file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models.detection import MaskRCNN as TVMaskRCNN
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import FrozenBatchNorm2d

import seglab
from seglab.errors import ConfigError
from seglab.models.instance.torchvision_weights import from_torchvision

NAME = "mask_rcnn_resnet50_fpn"
SIZES = {"min_size": 160, "max_size": 256}  # small images keep the R-50 forward to about a second


def torchvision_model(num_classes: int, **kwargs) -> torch.nn.Module:
    """torchvision's Mask R-CNN as it is built for pretrained weights, with non-trivial random weights."""
    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d,
                                   trainable_layers=3)
    model = TVMaskRCNN(backbone, num_classes=num_classes, **SIZES, **kwargs)
    g = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, FrozenBatchNorm2d):  # statistics that really normalise
            n = module.running_mean.numel()
            module.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            module.weight.copy_(torch.rand(n, generator=g) + 0.5)
            module.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model


def images() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return [torch.rand(3, 160, 200, generator=g), torch.rand(3, 150, 230, generator=g)]


@pytest.mark.parametrize(("num_classes", "expected"), [(91, 44_454_513), (81, 44_400_693)])
def test_parameter_count_equals_torchvision(num_classes: int, expected: int) -> None:
    with torch.device("meta"):
        ours = seglab.create_model(NAME, num_classes=num_classes)
        theirs = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes)
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters()) == expected


def test_every_torchvision_key_has_a_seglab_key() -> None:
    with torch.device("meta"):
        ours = seglab.create_model(NAME, num_classes=91, frozen_bn=True)
        theirs = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    renamed = from_torchvision({k: v for k, v in theirs.state_dict().items() if "num_batches_tracked" not in k})
    expected = {k: v.shape for k, v in ours.state_dict().items() if not k.startswith("normalize.")}
    assert {k: v.shape for k, v in renamed.items()} == expected


@pytest.mark.slow
def test_torchvision_weights_give_identical_detections(tmp_path: Path) -> None:
    """Eval with the same weights: the same boxes, scores and labels bit for bit (float32, CPU), and the
    same soft masks to 1e-3 (seglab's mask head runs channels-last, which rounds differently; measured
    5.6e-4 at most here), and 99.99 % of the binary masks (probability >= 0.5) alike."""
    theirs = torchvision_model(91, box_score_thresh=0.0).eval()
    with torch.no_grad():  # spread the class scores so detections are not ties
        theirs.roi_heads.box_predictor.cls_score.weight.mul_(30)
        theirs.rpn.head.cls_logits.weight.mul_(10)
    path = tmp_path / "tv_maskrcnn.pth"
    torch.save(theirs.state_dict(), path)
    ours = seglab.create_model(NAME, num_classes=91, pretrained=path, score_threshold=0.0, **SIZES).eval()
    with torch.no_grad():
        expected, got = theirs(images()), ours(images())
    assert sum(len(e["boxes"]) for e in expected) > 10
    for e, g in zip(expected, got):
        assert torch.equal(g.boxes_xyxy, e["boxes"])  # tolerance 0
        assert torch.equal(g.scores, e["scores"])
        assert torch.equal(g.labels, e["labels"])
        torch.testing.assert_close(g.masks, e["masks"][:, 0], rtol=0, atol=1e-3)
        assert ((g.masks >= 0.5) == (e["masks"][:, 0] >= 0.5)).float().mean() >= 0.9999


@pytest.mark.slow
def test_training_losses_equal_torchvision_with_the_same_rng(tmp_path: Path) -> None:
    """Same weights, same random state: the five loss terms agree (torchvision's box beta 1/9 here)."""
    from seglab.data import build_dataset, collate_instance

    theirs = torchvision_model(4)
    theirs.transform.min_size = (128, 160)  # multi-scale training: one size drawn per image
    path = tmp_path / "tv4.pth"
    torch.save(theirs.state_dict(), path)
    ours = seglab.create_model(NAME, num_classes=4, pretrained=path, min_size=(128, 160), max_size=256,
                               box_loss_beta=1 / 9)
    data = build_dataset("synthetic", split="train", task="instance", num_images=2, size=(64, 96))
    batch, targets = collate_instance([data[0], data[1]])
    tv_targets = [{"boxes": t.boxes_xyxy, "labels": t.labels, "masks": t.masks} for t in targets]
    torch.manual_seed(5)
    expected = theirs.train()(batch, tv_targets)
    torch.manual_seed(5)
    got = ours.train()(batch, targets)
    names = {"loss_objectness": "loss_rpn_objectness", "loss_rpn_box_reg": "loss_rpn_box",
             "loss_classifier": "loss_cls", "loss_box_reg": "loss_box_reg", "loss_mask": "loss_mask"}
    for theirs_name, ours_name in names.items():
        torch.testing.assert_close(got[ours_name], expected[theirs_name], rtol=1e-5, atol=1e-6)


def test_published_file_names_get_detectron_eps(tmp_path: Path) -> None:
    """torchvision's COCO_V1 file was trained with FrozenBN eps 0 (torchvision's builder sets it too)."""
    with torch.device("meta"):
        theirs = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    state = {k: torch.zeros(v.shape) for k, v in theirs.state_dict().items()}
    state = {k: (v + 1 if k.endswith("running_var") else v) for k, v in state.items()}
    path = tmp_path / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    torch.save(state, path)
    model = seglab.create_model(NAME, num_classes=91, pretrained=path)
    eps = {m.eps for m in model.backbone.modules() if isinstance(m, FrozenBatchNorm2d)}
    assert eps == {0.0}
    assert not model.backbone.conv1.weight.requires_grad and model.backbone.layer4[0].conv1.weight.requires_grad


def test_legacy_torchvision_key_names_load(tmp_path: Path) -> None:
    """The published COCO file predates torchvision's renames (rpn.head.conv, mask_head.mask_fcn1)."""
    with torch.device("meta"):
        theirs = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    legacy = {}
    for key, value in theirs.state_dict().items():
        key = key.replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        for i in range(4):
            key = key.replace(f"roi_heads.mask_head.{i}.0.", f"roi_heads.mask_head.mask_fcn{i + 1}.")
        legacy[key] = torch.full(value.shape, 0.5)
    path = tmp_path / "legacy.pth"
    torch.save(legacy, path)
    model = seglab.create_model(NAME, num_classes=91, pretrained=path)
    assert bool((model.mask_head.convs[0].weight == 0.5).all()) and bool((model.proposer.head.conv.bias == 0.5).all())


def test_wrong_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    with torch.device("meta"):
        theirs = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path / "tv.pth"
    torch.save({k: torch.zeros(v.shape) for k, v in theirs.state_dict().items()}, path)
    with pytest.raises(ConfigError, match="not a torchvision Mask R-CNN checkpoint for this model") as info:
        seglab.create_model(NAME, num_classes=91, pretrained=path, backbone="resnet18")
    assert str(path) in str(info.value) and "backbone" in str(info.value)
    with pytest.raises(ConfigError, match="does not exist"):
        seglab.create_model(NAME, num_classes=91, pretrained=tmp_path / "missing.pth")


def test_fine_tuning_coco_weights_on_other_classes(tmp_path: Path) -> None:
    """91-class weights into a 3-class model: everything loads but the class-specific layers."""
    with torch.device("meta"):
        theirs = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path / "coco.pth"
    torch.save({k: torch.full(v.shape, 0.25) for k, v in theirs.state_dict().items()}, path)
    with pytest.warns(UserWarning, match="trained for 91 classes"):
        model = seglab.create_model(NAME, num_classes=3, pretrained=path)
    assert bool((model.box_head.fc6.weight == 0.25).all()) and bool((model.mask_head.convs[0].weight == 0.25).all())
    assert model.box_head.cls_score.weight.shape == (3, 1024) and not bool((model.box_head.cls_score.weight == 0.25).all())


def test_checkpoints_rebuild_without_the_weight_files(tmp_path: Path) -> None:
    """config.json keeps what the weight file decided (FrozenBN, eps, frozen stages), not its path."""
    from seglab.engine.checkpoint import load_model, save_weights
    from seglab.engine.train import _weights_config
    from seglab.recipes import load_recipe

    with torch.device("meta"):
        theirs = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    torch.save({k: torch.rand(v.shape) for k, v in theirs.state_dict().items()}, path)
    recipe = load_recipe("mask_rcnn_coco", overrides=[f"model.kwargs={{pretrained: {path}}}"])
    model = seglab.create_model(NAME, num_classes=91, pretrained=path)

    class Dataset:
        num_classes, classes, palette, label_map = 91, ["background", *map(str, range(90))], [], None

    config = _weights_config(recipe, Dataset(), model)
    assert "pretrained" not in config["model_kwargs"]
    assert config["model_kwargs"] == {"frozen_bn": True, "trainable_layers": 3, "frozen_bn_eps": 0.0}
    save_weights(model, tmp_path / "final", config)
    path.unlink()
    loaded, _ = load_model(tmp_path / "final")
    assert {m.eps for m in loaded.modules() if isinstance(m, FrozenBatchNorm2d)} == {0.0}
    assert torch.equal(loaded.box_head.fc6.weight, model.box_head.fc6.weight)


def test_backbones_through_the_same_builder() -> None:
    with torch.device("meta"):
        counts = {b: sum(p.numel() for p in seglab.create_model(NAME, num_classes=2, backbone=b).parameters())
                  for b in ("resnet18", "resnet34", "resnet101")}
    assert counts["resnet18"] < counts["resnet34"] < counts["resnet101"]


def test_frozen_bn_and_trainable_layers_options() -> None:
    model = seglab.create_model(NAME, num_classes=2, backbone="resnet18", frozen_bn=True, trainable_layers=2)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.modules())
    trainable = {n.split(".")[0] for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "layer4"}
    default = seglab.create_model(NAME, num_classes=2, backbone="resnet18")  # random init: train everything
    assert all(p.requires_grad for p in default.parameters())
