"""VGG backbone: the outputs of the five max-pools as c1..c5.

Paper: "Very Deep Convolutional Networks for Large-Scale Image Recognition", arXiv 1409.1556.
Configuration A of the paper is torchvision's ``vgg11``; D is ``vgg16``.
"""

from __future__ import annotations


from torch import Tensor, nn
from torchvision.models import vgg

from seglab.backbones.base import Backbone, FeatureSpec, check_backbone_args


class VGGBackbone(Backbone):
    """VGG (Simonyan & Zisserman, arXiv 1409.1556): c1..c5 are pool1..pool5 (stride 2..32).

    Keeps torchvision's ``features`` module, so torchvision checkpoints load by key
    (``features.0.weight``); the ``classifier`` (fc6-fc8) is not part of the backbone.

    Args:
        arch: one of ``ARCHS`` ("vgg11", "vgg11_bn", "vgg16", "vgg16_bn").
        output_stride: 32, or 16 without pool5 (c5 = conv5_3 at stride 16: the trunk of Fast/Faster
            R-CNN and MNC on VGG16, which pool RoIs from conv5_3); FCN and DeepLab add their own atrous
            layers on top.
    """

    # torchvision's layer configuration (paper Table 1 column) and whether it adds BatchNorm.
    ARCHS: dict[str, tuple[str, bool]] = {
        "vgg11": ("A", False),
        "vgg11_bn": ("A", True),
        "vgg16": ("D", False),
        "vgg16_bn": ("D", True),
    }
    SUPPORTED_OUTPUT_STRIDES: tuple[int, ...] = (16, 32)

    def __init__(self, *, arch: str = "vgg16", output_stride: int = 32) -> None:
        super().__init__()
        check_backbone_args(arch, self.ARCHS, output_stride, self.SUPPORTED_OUTPUT_STRIDES)
        config, batch_norm = self.ARCHS[arch]
        # Only the conv layers: building torchvision's whole VGG would also initialise fc6-fc8
        # (120M parameters, over a second on a CPU) just to throw them away.
        self.features = vgg.make_layers(vgg.cfgs[config], batch_norm=batch_norm)
        _init_like_torchvision(self.features)
        self._level_after = _pool_levels(self.features)
        self.feature_specs = _pool_specs(self.features)
        if output_stride == 16:  # pool5 becomes an identity: torchvision's layer indices (and keys) stay
            pool5 = max(self._level_after)
            self.features[pool5] = nn.Identity()
            self.feature_specs["c5"] = FeatureSpec(channels=self.feature_specs["c5"].channels, stride=16)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Args: images: [N, 3, H, W] normalised. Returns: {"c1": [N, 64, H/2, W/2], ..., "c5"}."""
        features: dict[str, Tensor] = {}
        x = images
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self._level_after:
                features[self._level_after[index]] = x
        return features


def _init_like_torchvision(features: nn.Sequential) -> None:
    """Initialise as ``torchvision.models.VGG`` does, so random-init training matches torchvision."""
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _pool_levels(features: nn.Sequential) -> dict[int, str]:
    """Map the index of each max-pool in ``features`` to its level name ("c1".."c5")."""
    pool_indices = [i for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]
    return {index: f"c{level}" for level, index in enumerate(pool_indices, start=1)}


def _pool_specs(features: nn.Sequential) -> dict[str, FeatureSpec]:
    """Read each pool's channels from the conv before it; each pool halves the resolution."""
    specs: dict[str, FeatureSpec] = {}
    channels, stride = 0, 1
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            channels = layer.out_channels
        elif isinstance(layer, nn.MaxPool2d):
            stride *= 2
            specs[f"c{len(specs) + 1}"] = FeatureSpec(channels=channels, stride=stride)
    return specs
