"""What is unique to ParseNet: fc7 plus its global average, both L2-normalised, concatenated, on FCN-32s."""

from __future__ import annotations

import torch

import seglab
from seglab.layers.l2norm import L2Norm


def small_parsenet() -> torch.nn.Module:
    torch.manual_seed(0)
    return seglab.create_model("parsenet_vgg16", num_classes=3, backbone="vgg11", hidden=8).eval()


def test_global_branch_is_broadcast_and_local_branch_is_not() -> None:
    model = small_parsenet()
    pool5 = model.backbone(torch.rand(2, 3, 128, 160))["c5"]
    context = model.head.context(pool5)
    assert context.shape == (2, 16, 4, 5)  # fc7 (8) + global (8) channels
    local, unpooled = context[:, :8], context[:, 8:]
    torch.testing.assert_close(unpooled, unpooled[..., :1, :1].expand_as(unpooled), rtol=0, atol=0)
    assert not torch.allclose(local, local[..., :1, :1].expand_as(local))


def test_both_branches_are_l2_normalised_to_the_scale() -> None:
    model = small_parsenet()
    assert isinstance(model.head.local_norm, L2Norm) and isinstance(model.head.global_norm, L2Norm)
    context = model.head.context(model.backbone(torch.rand(1, 3, 96, 96))["c5"])
    norms = torch.stack([context[:, :8].norm(dim=1), context[:, 8:].norm(dim=1)])
    nonzero = norms > 0  # an all-zero fc7 pixel (ReLU) stays zero
    torch.testing.assert_close(norms[nonzero], torch.full_like(norms[nonzero], 10.0))


def test_default_is_vgg16_fcn32s_with_4096_wide_fc_layers() -> None:
    with torch.device("meta"):
        model = seglab.create_model("parsenet_vgg16", num_classes=21)
    assert model.head.fc6.kernel_size == (7, 7) and model.head.fc6.out_channels == 4096
    assert model.head.score.in_channels == 2 * 4096
    assert model.upscore.stride == (32, 32)
