"""Pooling switches: unpooling puts values back at the argmax, odd sizes survive, torchvision layout."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from seglab.layers.unpool import (
    VGG16_STAGES,
    PoolingIndicesEncoder,
    Switch,
    UnpoolingDecoder,
    UnpoolStage,
    mirrored_stages,
    vgg16_stages,
)


def test_unpooling_writes_each_maximum_back_where_it_was() -> None:
    x = torch.tensor(
        [
            [1.0, 5.0, 2.0, 0.0, 9.0],
            [3.0, 4.0, 7.0, 1.0, 9.0],
            [0.0, 2.0, 9.0, 8.0, 9.0],
            [6.0, 1.0, 3.0, 3.5, 9.0],
            [9.0, 9.0, 9.0, 9.0, 9.0],
        ]
    ).view(1, 1, 5, 5)
    pooled, indices = nn.MaxPool2d(2, stride=2, return_indices=True)(x)  # the last row and column are dropped
    assert pooled.flatten().tolist() == [5.0, 7.0, 6.0, 9.0]
    unpooled = UnpoolStage((1,), layer=nn.Conv2d)(pooled, Switch(indices, x.shape[-2:]))  # no layers: unpool only
    expected = torch.zeros(5, 5)
    expected[0, 1], expected[1, 2], expected[3, 0], expected[2, 2] = 5.0, 7.0, 6.0, 9.0
    assert torch.equal(unpooled[0, 0], expected)  # 5x5 again, thanks to the stored size


def test_decoder_mirrors_the_13_vgg16_convs() -> None:
    assert mirrored_stages(VGG16_STAGES) == [
        (512, 512, 512, 512),
        (512, 512, 512, 256),
        (256, 256, 256, 128),
        (128, 128, 64),
        (64, 64, 64),  # the mirror of conv1_1 keeps 64 channels for the classifier
    ]
    assert vgg16_stages(8) == ((8, 8), (16, 16), (32, 32, 32), (64, 64, 64), (64, 64, 64))


def test_encoder_has_the_torchvision_vgg16_bn_layout() -> None:
    with torch.device("meta"):
        reference = torchvision.models.vgg16_bn(weights=None).features.state_dict()
        encoder = PoolingIndicesEncoder(VGG16_STAGES).features.state_dict()
    assert {k: v.shape for k, v in encoder.items()} == {k: v.shape for k, v in reference.items()}


def test_switches_keep_odd_sizes_and_the_decoder_restores_them() -> None:
    torch.manual_seed(0)
    stages = vgg16_stages(4)
    encoder, decoder = PoolingIndicesEncoder(stages).eval(), UnpoolingDecoder(stages, layer=nn.Conv2d).eval()
    with torch.no_grad():
        features, switches = encoder(torch.rand(1, 3, 37, 45))
        out = decoder(features, switches)
    assert [tuple(s.size) for s in switches] == [(37, 45), (18, 22), (9, 11), (4, 5), (2, 2)]
    assert features.shape == (1, 32, 1, 1)
    assert out.shape == (1, 4, 37, 45)
