"""Context module (Yu & Koltun, arXiv 1511.07122, Table 1): widths, dilations, identity initialisation."""

from __future__ import annotations

import pytest
import torch

from seglab.layers.context_module import ContextModule, identity_init_


def convs(module: ContextModule) -> list[torch.nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]


def test_table_1_dilations_and_kernels() -> None:
    layers = convs(ContextModule(5))
    assert [c.dilation[0] for c in layers] == [1, 1, 2, 4, 8, 16, 1, 1]
    assert [c.kernel_size for c in layers] == [(3, 3)] * 7 + [(1, 1)]
    assert all(c.padding == c.dilation for c in layers[:7])  # the map keeps its size


@pytest.mark.parametrize(
    ("variant", "widths"),
    [("basic", [5] * 8), ("large", [10, 10, 20, 40, 80, 160, 160, 5])],
)
def test_basic_and_large_widths(variant: str, widths: list[int]) -> None:
    layers = convs(ContextModule(5, variant=variant))
    assert [c.out_channels for c in layers] == widths
    assert layers[0].in_channels == 5


def test_relu_after_every_layer_but_the_last() -> None:
    kinds = [type(m).__name__ for m in ContextModule(3).layers]
    assert kinds == ["Conv2d", "ReLU"] * 7 + ["Conv2d"]


@pytest.mark.parametrize("variant", ["basic", "large"])
def test_identity_initialisation_returns_non_negative_input(variant: str) -> None:
    x = torch.rand(2, 4, 19, 23)  # non-negative: the ReLUs pass it
    module = ContextModule(4, variant=variant, init_noise=0.0)
    torch.testing.assert_close(module(x), x)


def test_default_noise_of_the_large_module_stays_close_to_identity() -> None:
    torch.manual_seed(0)
    basic, large = ContextModule(4), ContextModule(4, variant="large")
    x = torch.rand(1, 4, 16, 16)
    torch.testing.assert_close(basic(x), x, rtol=0, atol=0)  # basic: exact identity, no noise
    assert not torch.equal(large(x), x)
    torch.testing.assert_close(large(x), x, rtol=0, atol=0.5)


def test_widening_copies_and_narrowing_averages_hand_worked() -> None:
    # C = 2 widened to 4: output b holds input channel b // 2 scaled by C / c_out = 1/2.
    conv = identity_init_(torch.nn.Conv2d(2, 4, 3, padding=1), 2)
    assert conv.weight[:, :, 1, 1].tolist() == [[0.5, 0.0], [0.5, 0.0], [0.0, 0.5], [0.0, 0.5]]
    assert conv.weight[:, :, 0].abs().sum() == 0 and conv.bias.abs().sum() == 0
    # 4 back to C = 2: output b sums its two copies with weight C / c_out = 1.
    back = identity_init_(torch.nn.Conv2d(4, 2, 1), 2)
    assert back.weight[:, :, 0, 0].tolist() == [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]
