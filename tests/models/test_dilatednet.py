"""What is unique to DilatedNet: a stride-8 dilated VGG front end, a context module, two-stage training."""

from __future__ import annotations

import torch

import seglab
from seglab.backbones.dilated_vgg import DilatedVGGBackbone


def small(context: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return seglab.create_model("dilatednet_vgg16", num_classes=3, backbone="vgg11", hidden=16, context=context)


def test_front_end_drops_pool4_pool5_and_dilates_conv5_by_2_and_fc6_by_4() -> None:
    backbone = DilatedVGGBackbone(arch="vgg16")
    features = backbone.features
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in features) == 3
    convs = [m for m in features if isinstance(m, torch.nn.Conv2d)]
    assert [c.dilation[0] for c in convs] == [1] * 10 + [2] * 3  # conv5_1..conv5_3 dilated
    assert isinstance(features[23], torch.nn.Identity) and isinstance(features[30], torch.nn.Identity)
    assert features[24] is convs[10]  # torchvision's index of conv5_1 kept: checkpoints load by key
    out = backbone(torch.rand(1, 3, 64, 48))
    assert {k: v.shape[-2:] for k, v in out.items()}["c5"] == (8, 6)
    assert {k: s.stride for k, s in backbone.feature_specs.items()} == {"c1": 2, "c2": 4, "c3": 8, "c4": 8, "c5": 8}
    with torch.device("meta"):
        model = seglab.create_model("dilatednet_vgg16", num_classes=21)
    fc6 = model.front_end.classifier.fc6
    assert fc6.kernel_size == (7, 7) and fc6.dilation == (4, 4) and fc6.out_channels == 4096


def test_scores_at_stride_8_and_context_variants() -> None:
    x = torch.rand(1, 3, 64, 40)
    for context in ("none", "basic", "large"):
        model = small(context).eval()
        assert model.compute_logits(x)["out"].shape == (1, 3, 8, 5)
        assert (model.context is None) == (context == "none")


def test_identity_initialised_context_starts_from_the_front_end() -> None:
    model = small("basic").eval()
    x = torch.rand(1, 3, 64, 64)
    scores = model.front_end(x)
    torch.testing.assert_close(model.compute_logits(x)["out"], scores.clamp(min=0))  # ReLU truncation


def test_freeze_front_end_trains_only_the_context_module() -> None:
    model = small("large").freeze_front_end().train()
    assert not model.front_end.training and model.context.training  # no dropout in the fixed front end
    images, targets = torch.rand(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    sum(model(images, targets).values()).backward()
    assert all(p.grad is None and not p.requires_grad for p in model.front_end.parameters())
    assert all(p.grad is not None for p in model.context.parameters())


def test_torchvision_vgg_weights_load_by_key(tmp_path) -> None:
    from safetensors.torch import save_file

    from seglab.backbones import VGGBackbone

    torch.manual_seed(0)
    plain = VGGBackbone(arch="vgg11")  # torchvision's key names: features.<index>.weight
    save_file(plain.state_dict(), str(tmp_path / "vgg11.safetensors"))
    model = seglab.create_model(
        "dilatednet_vgg16", num_classes=3, backbone="vgg11", hidden=16,
        pretrained_backbone=str(tmp_path / "vgg11.safetensors"),
    )
    loaded = model.front_end.backbone.state_dict()
    assert loaded.keys() == plain.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in plain.state_dict().items())
