"""Dense blocks and transitions of FC-DenseNet (the "Tiramisu").

Paper: "The One Hundred Layers Tiramisu: Fully Convolutional DenseNets for Semantic Segmentation",
Jégou, Drozdzal, Vazquez, Romero, Bengio (arXiv 1611.09326), Table 1 and fig. 2. Changes from its
ancestor (DenseNet, arXiv 1608.06993): no bottleneck or compression in the blocks, dropout 0.2 after
every convolution, and a transition up (strided transposed convolution) for the upsampling path.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def he_uniform_(module: nn.Module) -> nn.Module:
    """HeUniform initialisation of every (transposed) convolution, zero biases (paper sec. 5.1).

    Keras' HeUniform draws from U(-sqrt(6 / fan_in), sqrt(6 / fan_in)), i.e. ``kaiming_uniform_``
    with the ReLU gain.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class DenseLayer(nn.Sequential):
    """BN, ReLU, 3x3 convolution giving ``growth_rate`` new feature maps, dropout (Table 1, "Layer").

    Forward: [N, in_channels, H, W] -> [N, growth_rate, H, W].
    """

    def __init__(self, in_channels: int, growth_rate: int, *, dropout: float = 0.2) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, growth_rate, 3, padding=1),
            nn.Dropout(dropout),
        )


class DenseBlock(nn.Module):
    """``num_layers`` dense layers, each fed the concatenation of the block input and all previous outputs.

    Fig. 2: the output is [input, new_1, ..., new_L], i.e. ``in_channels + num_layers * growth_rate``
    channels; ``new_features(output)`` returns only the ``num_layers * growth_rate`` maps the block
    created, which is what the upsampling path passes on (sec. 3.2).

    Forward: [N, in_channels, H, W] -> [N, out_channels, H, W].
    """

    def __init__(self, in_channels: int, num_layers: int, growth_rate: int, *, dropout: float = 0.2) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.new_channels = num_layers * growth_rate
        self.out_channels = in_channels + self.new_channels
        self.layers = nn.ModuleList(
            DenseLayer(in_channels + k * growth_rate, growth_rate, dropout=dropout) for k in range(num_layers)
        )

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return x

    def new_features(self, output: Tensor) -> Tensor:
        """The maps this block created: the last ``new_channels`` channels of its output."""
        return output[:, self.in_channels :]


class TransitionDown(nn.Sequential):
    """BN, ReLU, 1x1 convolution keeping the channels, dropout, 2x2 max-pool (Table 1, "Transition Down").

    Forward: [N, C, H, W] -> [N, C, H/2, W/2].
    """

    def __init__(self, channels: int, *, dropout: float = 0.2) -> None:
        super().__init__(
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1),
            nn.Dropout(dropout),
            nn.MaxPool2d(2),
        )


class TransitionUp(nn.Module):
    """3x3 transposed convolution with stride 2, then concatenation with the skip (Table 1, "Transition Up").

    The transposed convolution keeps the channels of its input (the new maps of the previous dense
    block). padding=1 with output_padding=1 gives exactly twice the size, so no crop is needed.

    Forward: x [N, C, h, w], skip [N, S, 2h, 2w] -> [N, C + S, 2h, 2w].
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return torch.cat([self.up(x), skip], dim=1)
