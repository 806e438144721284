"""Max-pooling switches: a VGG encoder that remembers where each maximum came from, and the
mirrored decoder that puts values back there (SegNet, arXiv 1511.00561; DeconvNet, arXiv 1505.04366).

Both papers upsample without learning an interpolation: each 2x2 max-pool of the encoder stores the
position of its maximum (the "switch" / "pooling index"), and the matching unpooling layer of the
decoder writes every value back at that position, leaving the other three zero. The dense maps are
then recovered by convolutions (SegNet) or deconvolutions (DeconvNet) after the unpooling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

# VGG16 (configuration D of arXiv 1409.1556): the widths of the 13 conv layers, grouped by the
# five stages that each end with a 2x2 max-pool.
VGG16_STAGES: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)


def vgg16_stages(base_channels: int = 64) -> tuple[tuple[int, ...], ...]:
    """VGG16 stage widths scaled so the first layer has ``base_channels`` (64 = the paper)."""
    return tuple(tuple(width * base_channels // 64 for width in stage) for stage in VGG16_STAGES)


class Switch(NamedTuple):
    """What one max-pool remembers for its unpooling layer.

    indices: [N, C, h // 2, w // 2] int64, flat position of each maximum in its h x w input plane.
    size: (h, w) of the pool's input, so unpooling restores odd sizes exactly.
    """

    indices: Tensor
    size: torch.Size


def bn_relu_after(layer: nn.Conv2d | nn.ConvTranspose2d) -> nn.Sequential:
    """``layer`` followed by BatchNorm2d and ReLU (both papers normalise after every layer)."""
    return nn.Sequential(layer, nn.BatchNorm2d(layer.out_channels), nn.ReLU(inplace=True))


def he_init(module: nn.Module) -> None:
    """He et al. init for every (de)convolution, unit BN (SegNet sec. 3.2; torchvision's VGG init)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class PoolingIndicesEncoder(nn.Module):
    """VGG conv layers (3x3 conv, BN, ReLU), each stage closed by a 2x2/2 max-pool that keeps its switches.

    ``features`` has exactly the layout of torchvision's ``vgg16_bn().features`` (``features.0`` conv,
    ``features.1`` BN, ``features.2`` ReLU, ..., a pool after each stage), so
    ``seglab.backbones.load_pretrained(encoder, path)`` fills it from a torchvision checkpoint.

    Args:
        stages: conv widths per stage (``vgg16_stages()``: the 13 conv layers of VGG16).
        in_channels: 3 for RGB.

    Forward: [N, in_channels, H, W] -> ([N, stages[-1][-1], H / 32, W / 32], one Switch per pool,
    shallowest first). Sizes need not be even: pools floor, and the switches keep the sizes.
    """

    def __init__(self, stages: Sequence[Sequence[int]] = VGG16_STAGES, *, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for stage in stages:
            for width in stage:
                layers += list(bn_relu_after(nn.Conv2d(channels, width, 3, padding=1)))
                channels = width
            layers.append(nn.MaxPool2d(2, stride=2, return_indices=True))
        self.features = nn.Sequential(*layers)
        self.stages = tuple(tuple(stage) for stage in stages)
        self.out_channels = channels
        he_init(self)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Switch]]:
        switches: list[Switch] = []
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                size = x.shape[-2:]
                x, indices = layer(x)
                switches.append(Switch(indices, size))
            else:
                x = layer(x)
        return x, switches


class UnpoolStage(nn.Module):
    """Unpool by switches (x2, values back at the argmax positions), then (de)conv-BN-ReLU layers.

    Args:
        widths: channels from the stage input to each layer's output, e.g. (512, 512, 512, 256).
        layer: nn.Conv2d (SegNet's decoder filters) or nn.ConvTranspose2d (DeconvNet's
            deconvolutions); 3x3 with padding 1, so the unpooled size is kept.
    """

    def __init__(self, widths: Sequence[int], *, layer: type[nn.Conv2d] | type[nn.ConvTranspose2d]) -> None:
        super().__init__()
        self.unpool = nn.MaxUnpool2d(2, stride=2)
        self.layers = nn.Sequential(
            *(bn_relu_after(layer(c_in, c_out, 3, padding=1)) for c_in, c_out in zip(widths[:-1], widths[1:]))
        )

    def forward(self, x: Tensor, switch: Switch) -> Tensor:
        """Args: x [N, widths[0], h, w]; switch of the matching pool. Returns [N, widths[-1], *switch.size]."""
        return self.layers(self.unpool(x, switch.indices, output_size=switch.size))


def mirrored_stages(stages: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Decoder widths per stage, deepest first: every encoder layer c_in -> c_out becomes c_out -> c_in.

    The mirror of the first encoder layer (3 -> 64) keeps 64 channels instead of producing RGB: the
    last decoder feeds a classifier (SegNet sec. 3, "the decoder corresponding to the first encoder
    produces a multi-channel feature map"). VGG16 gives (512, 512, 512, 512), (512, 512, 512, 256),
    (256, 256, 256, 128), (128, 128, 64), (64, 64, 64): 13 layers.
    """
    inputs = [stages[0][0]] + [stage[-1] for stage in stages[:-1]]  # channels entering each stage
    return [tuple(reversed((c_in, *stage))) for c_in, stage in zip(inputs, stages)][::-1]


class UnpoolingDecoder(nn.Module):
    """The mirror of a PoolingIndicesEncoder: one UnpoolStage per pool, deepest first.

    Args:
        stages: the encoder's stage widths.
        layer: nn.Conv2d (SegNet) or nn.ConvTranspose2d (DeconvNet).

    Forward: x [N, stages[-1][-1], h, w] and the encoder's switches (shallowest first)
    -> [N, stages[0][0], H, W] at the encoder's input size.
    """

    def __init__(
        self, stages: Sequence[Sequence[int]] = VGG16_STAGES, *, layer: type[nn.Conv2d] | type[nn.ConvTranspose2d]
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList(UnpoolStage(widths, layer=layer) for widths in mirrored_stages(stages))
        self.out_channels = stages[0][0]
        he_init(self)

    def forward(self, x: Tensor, switches: Sequence[Switch]) -> Tensor:
        for stage, switch in zip(self.stages, reversed(switches)):
            x = stage(x, switch)
        return x
