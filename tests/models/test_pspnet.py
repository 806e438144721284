"""What is unique to PSPNet: stride-8 dilated ResNet, pyramid pooling on c5, auxiliary c4 loss weighted 0.4."""

from __future__ import annotations

import torch

import seglab
from seglab.layers.padding import pad_to_multiple
from seglab.layers.upsample import resize_to


def small_pspnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return seglab.create_model("pspnet_resnet50", num_classes=3, backbone="resnet18", head_channels=16)


def test_backbone_is_dilated_to_stride_8_and_heads_read_c5_and_c4() -> None:
    model = small_pspnet()
    assert model.backbone.feature_specs["c5"].stride == 8
    assert model.head.ppm.bins == (1, 2, 3, 6)
    assert model.aux_head.in_key == "c4"
    assert model.aux_head.block[0].out_channels == 256 // 4  # c4 of ResNet-18 has 256 channels


def test_aux_head_runs_in_training_only() -> None:
    model = small_pspnet()
    x = torch.rand(2, 3, 32, 32)
    assert set(model.train().compute_logits(x)) == {"out", "aux"}
    assert set(model.eval().compute_logits(x)) == {"out"}


def test_aux_loss_is_cross_entropy_of_the_aux_logits_weighted_0_4() -> None:
    model = small_pspnet().train()
    for module in model.modules():  # dropout off, BN keeps batch statistics: two passes agree
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    images = torch.rand(2, 3, 37, 45)
    targets = torch.randint(0, 3, (2, 37, 45))
    losses = model(images, targets)
    x = pad_to_multiple(model.normalize(images), 8)
    aux = resize_to(model.compute_logits(x)["aux"], x.shape[-2:])[..., :37, :45]
    assert model.aux_weight == 0.4
    torch.testing.assert_close(losses["loss_aux"], 0.4 * torch.nn.functional.cross_entropy(aux, targets))


def test_variants_share_one_builder_and_survey_row() -> None:
    specs = [seglab.model_spec(n) for n in ("pspnet_resnet50", "pspnet_resnet101")]
    assert {s.survey_row for s in specs} == {"PSPNet"}
    with torch.device("meta"):
        r50 = seglab.create_model("pspnet_resnet50", num_classes=21)
        r101 = seglab.create_model("pspnet_resnet101", num_classes=21)
    assert len(r101.backbone.layer3) == 23 and len(r50.backbone.layer3) == 6
