"""What is unique to FC-DenseNet: Table 2's channels, an up path fed only the new maps, depth, init."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

import seglab
from seglab.layers.dense_block import DenseBlock, TransitionUp
from seglab.models.semantic.fc_densenet import fc_densenet
from seglab.registry import _BUILDERS


def test_channels_follow_table_2_for_fc_densenet103() -> None:
    with torch.device("meta"):
        model = seglab.create_model("fc_densenet103", num_classes=11)
    assert model.first_conv.out_channels == 48
    assert [b.out_channels for b in model.down_blocks] == [112, 192, 304, 464, 656]
    assert model.bottleneck.new_channels == 15 * 16 == 240
    # Each transition up carries the previous block's new maps only: 15, 12, 10, 7, 5 layers * 16.
    assert [t.up.in_channels for t in model.transitions_up] == [240, 192, 160, 112, 80]
    assert [b.in_channels for b in model.up_blocks] == [240 + 656, 192 + 464, 160 + 304, 112 + 192, 80 + 112]
    assert model.up_blocks[-1].out_channels == model.classifier.in_channels == 256


def test_up_path_receives_only_the_new_feature_maps() -> None:
    model = seglab.create_model("fc_densenet103", num_classes=11).eval()
    seen: list[int] = []
    for up in model.transitions_up:
        up.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].shape[1]))
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    assert seen == [240, 192, 160, 112, 80]


def test_dense_block_concatenates_input_and_new_maps() -> None:
    block = DenseBlock(5, num_layers=3, growth_rate=2, dropout=0.0).eval()
    x = torch.rand(1, 5, 4, 4)
    out = block(x)
    assert out.shape[1] == 5 + 3 * 2
    torch.testing.assert_close(out[:, :5], x)  # the input passes through unchanged
    assert block.new_features(out).shape[1] == 6
    up = TransitionUp(6)
    assert up(block.new_features(out), torch.rand(1, 7, 8, 8)).shape == (1, 6 + 7, 8, 8)


def test_depth_matches_the_name() -> None:
    # The paper counts every convolution: the first, one per dense layer, transitions down and up, the 1x1.
    for depth in (56, 67, 103):
        with torch.device("meta"):
            model = seglab.create_model(f"fc_densenet{depth}", num_classes=11)
        convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        assert len(convs) == depth


def test_dropout_is_0_2_after_every_dense_and_transition_down_conv() -> None:
    with torch.device("meta"):
        model = seglab.create_model("fc_densenet103", num_classes=11)
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert {d.p for d in dropouts} == {0.2}
    assert len(dropouts) == len(convs) - 2  # all but the first conv and the 1x1 classifier


def test_he_uniform_initialisation() -> None:
    torch.manual_seed(0)
    model = seglab.create_model("fc_densenet56", num_classes=11)
    conv = model.up_blocks[0].layers[-1][2]  # a 3x3 conv with a large fan-in
    fan_in = conv.weight[0].numel()
    bound = math.sqrt(6 / fan_in)
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.95 * bound
    assert abs(conv.weight.std().item() - math.sqrt(2 / fan_in)) < 0.05 * math.sqrt(2 / fan_in)
    assert conv.bias.abs().sum() == 0


def test_variants_share_one_builder_and_parameter_counts() -> None:
    for depth in (56, 67, 103):
        builder = _BUILDERS[f"fc_densenet{depth}"]
        assert isinstance(builder, partial) and builder.func is fc_densenet
        assert seglab.model_spec(f"fc_densenet{depth}").survey_row == "FC-DenseNet103"
    with torch.device("meta"):
        params = sum(p.numel() for p in seglab.create_model("fc_densenet56", num_classes=11).parameters())
    # The paper's Table 3 says 1.5 M; the architecture it describes has 1.38 M (see fc_densenet.py).
    assert 1.37e6 < params < 1.39e6
