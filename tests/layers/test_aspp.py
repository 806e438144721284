"""ASPP: rates land in the convs, summed fusion is the sum of the branches, image pooling is constant."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seglab.layers.aspp import ASPP, AtrousClassifierBranch, ImagePooling, deeplabv2_aspp, deeplabv3_aspp


def dilations(module: nn.Module) -> list[tuple[int, int]]:
    return [m.dilation for m in module.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


def test_v2_rates_land_in_the_fc6_dilations() -> None:
    aspp = deeplabv2_aspp(8, 3, rates=(6, 12, 18, 24), hidden=4)
    assert dilations(aspp) == [(6, 6), (12, 12), (18, 18), (24, 24)]
    assert [b.fc6.padding for b in aspp.branches] == [(6, 6), (12, 12), (18, 18), (24, 24)]
    assert [type(b.fc7) for b in aspp.branches] == [nn.Conv2d] * 4  # ASPP-L: fc6 -> fc7 -> fc8


def test_v3_rates_land_in_the_atrous_branch_dilations() -> None:
    aspp = deeplabv3_aspp(8, out_channels=4, rates=(12, 24, 36))
    assert dilations(aspp) == [(12, 12), (24, 24), (36, 36)]
    assert isinstance(aspp.branches[0][0], nn.Conv2d) and aspp.branches[0][0].kernel_size == (1, 1)
    assert isinstance(aspp.branches[-1], ImagePooling)


@pytest.mark.parametrize("hidden", [None, 6])
def test_summed_output_is_the_sum_of_the_branch_outputs(hidden: int | None) -> None:
    torch.manual_seed(0)
    aspp = deeplabv2_aspp(5, 3, rates=(1, 2, 3), hidden=hidden).eval()
    x = torch.rand(2, 5, 9, 11)
    expected = sum(branch(x) for branch in aspp.branches)
    torch.testing.assert_close(aspp(x), expected)
    assert aspp(x).shape == (2, 3, 9, 11)


def test_single_conv_branch_is_one_atrous_conv_to_the_classes() -> None:
    branch = AtrousClassifierBranch(5, 3, rate=4, hidden=None)
    assert len(branch) == 1 and branch.fc.dilation == (4, 4) and branch.fc.out_channels == 3


def test_concat_output_is_the_projection_of_the_stacked_branches() -> None:
    torch.manual_seed(0)
    aspp = deeplabv3_aspp(6, out_channels=4, rates=(1, 2)).eval()
    x = torch.rand(2, 6, 7, 5)
    stacked = torch.cat([branch(x) for branch in aspp.branches], dim=1)
    assert stacked.shape == (2, 4 * 4, 7, 5)  # 1x1, two atrous, image pooling
    torch.testing.assert_close(aspp(x), aspp.project(stacked))


def test_image_pooling_branch_is_spatially_constant_and_equals_the_pooled_conv() -> None:
    torch.manual_seed(0)
    pool = ImagePooling(6, 4).eval()
    x = torch.rand(2, 6, 7, 9)
    out = pool(x)
    assert out.shape == (2, 4, 7, 9)
    torch.testing.assert_close(out, out[..., :1, :1].expand_as(out), rtol=0, atol=0)
    torch.testing.assert_close(out[..., 0, 0], pool.conv(x.mean((2, 3), keepdim=True))[..., 0, 0])


def test_output_shapes_and_extra_branches() -> None:
    x = torch.rand(2, 8, 6, 10)
    assert deeplabv3_aspp(8, out_channels=4).eval()(x).shape == (2, 4, 6, 10)
    assert deeplabv2_aspp(8, 5, hidden=None).eval()(x).shape == (2, 5, 6, 10)
    assert deeplabv2_aspp(8, 5, hidden=None, fusion="concat").eval()(x).shape == (2, 5, 6, 10)
    with_edge = deeplabv3_aspp(8, out_channels=4, extra_channels=3).eval()
    assert with_edge(x, extra=[torch.rand(2, 3, 6, 10)]).shape == (2, 4, 6, 10)
    summed = deeplabv3_aspp(8, out_channels=4, fusion="sum", image_pooling=False).eval()
    assert summed(x).shape == (2, 4, 6, 10)


def test_unknown_fusion_is_rejected() -> None:
    with pytest.raises(ValueError, match="sum"):
        ASPP([nn.Identity()], fusion="max")  # type: ignore[arg-type]
