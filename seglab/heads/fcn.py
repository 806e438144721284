"""FCN heads: VGG's fully connected layers turned into convolutions, and a score layer."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from seglab.backbones import read_state_dict


class ConvolutionalizedClassifier(nn.Module):
    """fc6 (k x k conv) and fc7 (1x1 conv), each ReLU + dropout, then a 1x1 score layer.

    FCN sec. 3.1: the classifier's fully connected layers become convolutions covering their input
    regions, so VGG16's fc6 is a 7x7 conv over pool5 and fc7 a 1x1 conv.
    We pad fc6 by k // 2 (instead of the paper's 100-pixel input padding and later crop) so the
    score map stays aligned with pool4/pool3 for any input size.

    Args:
        in_channels: channels of the pool5 features (512 for VGG16).
        num_classes: C.
        hidden: width of fc6/fc7 (4096 in VGG16).
        kernel_size: fc6 kernel (7 for VGG16).
        dropout: dropout after fc6 and fc7 (0.5, as in VGG16 and FCN).
    Forward: [N, in_channels, h, w] -> [N, C, h, w].
    """

    def __init__(
        self, in_channels: int, num_classes: int, *, hidden: int = 4096, kernel_size: int = 7, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.fc6 = nn.Conv2d(in_channels, hidden, kernel_size, padding=kernel_size // 2)
        self.fc7 = nn.Conv2d(hidden, hidden, 1)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout2d(dropout)
        self.score = nn.Conv2d(hidden, num_classes, 1)

    def forward(self, features: Tensor) -> Tensor:
        x = self.drop(self.relu(self.fc6(features)))
        x = self.drop(self.relu(self.fc7(x)))
        return self.score(x)

    def load_vgg_classifier(self, state_dict: dict[str, Tensor]) -> None:
        """Copy torchvision VGG ``classifier.0`` / ``classifier.3`` (fc6 / fc7) weights, reshaped to convs."""
        with torch.no_grad():
            for conv, key in ((self.fc6, "classifier.0"), (self.fc7, "classifier.3")):
                weight = state_dict[f"{key}.weight"]
                conv.weight.copy_(weight.view_as(conv.weight))
                conv.bias.copy_(state_dict[f"{key}.bias"])


def vgg_classifier_state(path: str | Path | None) -> dict[str, Tensor] | None:
    """The state dict of a local torchvision VGG checkpoint if it holds the classifier (fc6/fc7), else None.

    FCN sec. 3.1 and its descendants start their convolutionalised fc6/fc7 from these weights.
    """
    if path is None:
        return None
    state = read_state_dict(path)
    return state if "classifier.0.weight" in state and "classifier.3.weight" in state else None


def zero_init_score(conv: nn.Conv2d) -> nn.Conv2d:
    """Zero-initialise a skip score layer so fusion starts from the coarser net's output (FCN sec. 4.2)."""
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv
