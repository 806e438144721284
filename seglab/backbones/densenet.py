"""DenseNet backbone: the stem and the outputs of the four dense blocks as c1..c5.

Paper: "Densely Connected Convolutional Networks", arXiv 1608.06993.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models

from seglab.backbones.base import Backbone, FeatureSpec, check_backbone_args

# Which child of torchvision's ``features`` ends each level. c2..c4 are taken before the
# transition layer (its 1x1 conv halves the channels and its pool halves the resolution).
_LEVEL_AFTER = {"relu0": "c1", "denseblock1": "c2", "denseblock2": "c3", "denseblock3": "c4", "norm5": "c5"}


class DenseNetBackbone(Backbone):
    """DenseNet (Huang et al., arXiv 1608.06993): c1 = stem, c2..c4 = dense blocks 1-3, c5 = ReLU(norm5).

    Keeps torchvision's ``features`` module, so torchvision checkpoints load by key
    (``features.conv0.weight``); the ``classifier`` is dropped.

    Args:
        arch: one of ``ARCHS`` ("densenet121").
        output_stride: must be 32 (the transitions' average pools have no dilated equivalent).
    """

    ARCHS: dict[str, Callable[..., models.DenseNet]] = {"densenet121": models.densenet121}
    SUPPORTED_OUTPUT_STRIDES: tuple[int, ...] = (32,)

    def __init__(self, *, arch: str = "densenet121", output_stride: int = 32) -> None:
        super().__init__()
        check_backbone_args(arch, self.ARCHS, output_stride, self.SUPPORTED_OUTPUT_STRIDES)
        self.features = self.ARCHS[arch](weights=None).features
        self.feature_specs = _densenet_specs(self.features)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Args: images: [N, 3, H, W] normalised. Returns: {"c1": [N, 64, H/2, W/2], ..., "c5"}."""
        features: dict[str, Tensor] = {}
        x = images
        for name, layer in self.features.named_children():
            x = layer(x)
            if name in _LEVEL_AFTER:
                features[_LEVEL_AFTER[name]] = x
        # torchvision applies this ReLU in DenseNet.forward, after norm5, not inside ``features``.
        features["c5"] = F.relu(features["c5"])
        return features


def _densenet_specs(features: nn.Sequential) -> dict[str, FeatureSpec]:
    """Read channels from torchvision's modules; each transition's pool halves the resolution."""
    specs = {"c1": FeatureSpec(channels=features.conv0.out_channels, stride=2)}
    for block_index, (level, stride) in enumerate((("c2", 4), ("c3", 8), ("c4", 16)), start=1):
        block = features.get_submodule(f"denseblock{block_index}")
        specs[level] = FeatureSpec(channels=_dense_block_out_channels(block), stride=stride)
    specs["c5"] = FeatureSpec(channels=features.norm5.num_features, stride=32)
    return specs


def _dense_block_out_channels(block: nn.Module) -> int:
    """A dense block concatenates its input with every layer's output (growth rate each)."""
    layers = list(block.children())
    return layers[0].norm1.num_features + sum(layer.conv2.out_channels for layer in layers)
