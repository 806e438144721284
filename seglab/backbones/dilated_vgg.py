"""VGG without its last two max-pools, the later convolutions dilated instead (output stride 8).

Paper: "Multi-Scale Context Aggregation by Dilated Convolutions", Yu & Koltun (arXiv 1511.07122),
sec. 4: the front end removes pool4 and pool5 of VGG-16 and dilates every later convolution by 2
for each removed pooling layer, so conv5 is dilated by 2 (and fc6, built by the model, by 4).
"""

from __future__ import annotations

from torch import nn

from seglab.backbones.base import FeatureSpec
from seglab.backbones.vgg import VGGBackbone


class DilatedVGGBackbone(VGGBackbone):
    """VGG with pool4 and pool5 replaced by identities and conv5_x dilated by 2.

    The identities keep torchvision's layer indices, so torchvision VGG checkpoints load by key
    (``features.24.weight`` is still conv5_1 of VGG16). Levels are read where the pools were:
    c1..c3 at strides 2, 4, 8, and c4 (conv4_3) and c5 (conv5_3) also at stride 8.

    Args:
        arch: one of ``ARCHS`` ("vgg11", "vgg11_bn", "vgg16", "vgg16_bn").
    """

    def __init__(self, *, arch: str = "vgg16") -> None:
        super().__init__(arch=arch, output_stride=32)
        pools = [i for i, layer in enumerate(self.features) if isinstance(layer, nn.MaxPool2d)]
        pool4, pool5 = pools[3], pools[4]
        self.features[pool4] = nn.Identity()
        self.features[pool5] = nn.Identity()
        for layer in self.features[pool4:pool5]:  # conv5_x follow one removed pool: dilation 2
            if isinstance(layer, nn.Conv2d):
                layer.dilation, layer.padding = (2, 2), (2, 2)
        self.feature_specs = {
            level: FeatureSpec(channels=spec.channels, stride=min(spec.stride, 8))
            for level, spec in self.feature_specs.items()
        }
