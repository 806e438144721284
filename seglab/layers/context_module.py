"""Context module of dilated convolutions with identity initialisation (Yu & Koltun).

Paper: "Multi-Scale Context Aggregation by Dilated Convolutions", Yu & Koltun (arXiv 1511.07122),
sec. 3 and Table 1.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Variant = Literal["basic", "large"]

# Table 1: seven 3x3 layers with exponentially growing dilation (receptive field 67x67), then 1x1.
DILATIONS = (1, 1, 2, 4, 8, 16, 1)
# Table 1, output channels of layers 1-7 in units of C; layer 8 (1x1) always outputs C.
WIDTHS: dict[str, tuple[int, ...]] = {"basic": (1, 1, 1, 1, 1, 1, 1), "large": (2, 2, 4, 8, 16, 32, 32)}


def identity_init_(conv: nn.Conv2d, channels: int, *, noise_std: float = 0.0) -> nn.Conv2d:
    """Initialise ``conv`` so a stack of such layers passes C channels of input through unchanged.

    Sec. 3: k^b(t, a) = C / c_out if t = 0 (the centre tap) and floor(a C / c_in) = floor(b C / c_out),
    else noise ~ N(0, sigma^2) with sigma = ``noise_std`` * C / c_out. Input channel a and output
    channel b then carry the same one of the C original channels: widening copies it, narrowing
    averages the copies back. With c_in = c_out = C this is the identity (the basic module).
    """
    c_out, c_in, kh, kw = conv.weight.shape
    gain = channels / c_out
    with torch.no_grad():
        if noise_std > 0:
            conv.weight.normal_(0.0, noise_std * gain)
        else:
            conv.weight.zero_()
        group_in = torch.arange(c_in) * channels // c_in
        group_out = torch.arange(c_out) * channels // c_out
        same = (group_out[:, None] == group_in[None, :]).to(conv.weight.dtype)
        conv.weight[:, :, kh // 2, kw // 2] = gain * same
        nn.init.zeros_(conv.bias)
    return conv


class ContextModule(nn.Module):
    """Seven 3x3 convolutions dilated 1, 1, 2, 4, 8, 16, 1, each with ReLU, then a 1x1 to C channels.

    Args:
        channels: C, the number of input and output feature maps (the front end's class scores).
        variant: "basic" (C channels throughout) or "large" (2C, 2C, 4C, 8C, 16C, 32C, 32C, then C).
        init_noise: std of the noise off the identity pattern, relative to C / c_out (sec. 3:
            sigma << C / c_out breaks the symmetry between copied channels of the large module).
            None: 0 for "basic" (exact identity) and 0.01 for "large".
    Forward: [N, C, h, w] -> [N, C, h, w]; at initialisation (without noise) the identity for
        non-negative input (the ReLUs truncate negative values).
    """

    def __init__(self, channels: int, *, variant: Variant = "basic", init_noise: float | None = None) -> None:
        super().__init__()
        noise = init_noise if init_noise is not None else (0.0 if variant == "basic" else 0.01)
        widths = [channels * w for w in WIDTHS[variant]]
        layers: list[nn.Module] = []
        for c_in, c_out, dilation in zip([channels, *widths[:-1]], widths, DILATIONS):
            conv = nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation)
            layers += [identity_init_(conv, channels, noise_std=noise), nn.ReLU(inplace=True)]
        layers.append(identity_init_(nn.Conv2d(widths[-1], channels, 1), channels, noise_std=noise))  # no ReLU
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
