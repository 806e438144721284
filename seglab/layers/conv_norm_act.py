"""Convolution, optional batch norm and ReLU: the block most segmentation models repeat."""

from __future__ import annotations

from torch import nn


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    *,
    padding: int | None = None,
    dilation: int = 1,
    norm: bool = True,
    act: bool = True,
) -> nn.Sequential:
    """Conv2d (+ BatchNorm2d) (+ ReLU).

    Args:
        padding: defaults to "same" padding for odd kernels (``dilation * (kernel_size // 2)``).
        norm: add BatchNorm2d; the conv then has no bias (BN's shift replaces it).
    """
    if padding is None:
        padding = dilation * (kernel_size // 2)
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=not norm)
    ]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)
