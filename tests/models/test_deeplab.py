"""What is unique to DeepLab: atrous rates in block4 (multi-grid), ASPP variants, cascade, v3+ decoder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import seglab
from seglab.errors import ConfigError
from seglab.layers.aspp import ImagePooling


def rates(stage: nn.Module) -> list[int]:
    """Dilation of the first 3x3 conv of each block of a stage."""
    first_3x3 = (next(m for m in block.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
                 for block in stage)
    return [conv.dilation[0] for conv in first_3x3]


def meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):  # structure only
        return seglab.create_model(name, num_classes=21, **kwargs)


@pytest.mark.parametrize(
    ("output_stride", "block4", "aspp"), [(16, [2, 4, 8], [6, 12, 18]), (8, [4, 8, 16], [12, 24, 36])]
)
def test_v3_multi_grid_and_aspp_rates_follow_the_output_stride(output_stride: int, block4, aspp) -> None:
    model = meta_model("deeplabv3_resnet101", output_stride=output_stride)
    assert rates(model.backbone.layer4) == block4  # base rate x Multi_Grid (1, 2, 4), v3 sec. 3.2
    assert rates(model.head.context.branches[1:4]) == aspp  # doubled at output stride 8, v3 sec. 3.3
    assert any(isinstance(m, ImagePooling) for m in model.head.modules())
    assert model.input_multiple == output_stride


def test_v3_cascade_copies_block4_with_doubling_rates() -> None:
    model = meta_model("deeplabv3_resnet101", head="cascade")
    blocks = model.head.context
    assert len(blocks) == 3  # block5, block6, block7
    assert [rates(b) for b in blocks] == [[4, 8, 16], [8, 16, 32], [16, 32, 64]]
    assert not any(isinstance(m, ImagePooling) for m in model.head.modules())
    assert type(blocks[0][0]) is type(model.backbone.layer4[-1])


def test_cascade_runs_and_keeps_the_output_stride() -> None:
    torch.manual_seed(0)
    model = seglab.create_model("deeplabv3_resnet101", num_classes=3, backbone="resnet18", multi_grid=[1, 2],
                                head="cascade", cascade_count=2).eval()
    logits = model.compute_logits(torch.rand(1, 3, 64, 48))["out"]
    assert logits.shape == (1, 3, 4, 3)  # output stride 16
    assert model(torch.rand(1, 3, 37, 45)).logits.shape == (1, 3, 37, 45)


def test_v2_sums_four_atrous_classifiers_on_a_stride_8_resnet() -> None:
    model = meta_model("deeplabv2_resnet101")
    aspp = model.head.context
    assert aspp.fusion == "sum" and [b.rate for b in aspp.branches] == [6, 12, 18, 24]
    assert all(b.fc.out_channels == 21 for b in aspp.branches)  # one conv to the scores per rate
    assert set(rates(model.backbone.layer3)) == {2} and set(rates(model.backbone.layer4)) == {4}
    aspp_l = meta_model("deeplabv2_resnet101", branch_hidden=1024).head.context
    assert [b.fc6.out_channels for b in aspp_l.branches] == [1024] * 4  # ASPP-L, v2 fig. 4


def test_v3plus_decoder_predicts_at_stride_4_from_c2() -> None:
    torch.manual_seed(0)
    spec = seglab.model_spec("deeplabv3plus_resnet101")
    model = seglab.create_model("deeplabv3plus_resnet101", num_classes=3, **spec.test_kwargs).eval()
    assert model.compute_logits(torch.rand(1, 3, 64, 32))["out"].shape == (1, 3, 16, 8)
    decoder = model.head.decoder
    assert decoder.reduce[0].in_channels == 64 and decoder.reduce[0].out_channels == 8  # resnet18 c2 -> 48 (8 here)
    full = meta_model("deeplabv3plus_resnet101").head.decoder
    assert full.reduce[0].out_channels == 48 and full.refine[0][0].out_channels == 256


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="multi_grid"):
        meta_model("deeplabv3_resnet101", multi_grid=(1, 2))
    with pytest.raises(ConfigError, match="output_stride"):
        meta_model("deeplabv3_resnet101", output_stride=32)
    with pytest.raises(ConfigError, match="head='aspp'"):
        meta_model("deeplabv3plus_resnet101", head="cascade")


def test_variants_share_the_survey_row() -> None:
    names = ["deeplabv2_resnet101", "deeplabv3_resnet101", "deeplabv3plus_resnet101"]
    assert {seglab.model_spec(n).survey_row for n in names} == {"DeepLab"}
