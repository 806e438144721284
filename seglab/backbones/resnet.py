"""ResNet-family backbones (ResNet, Wide ResNet, ResNeXt): stem and four stages as c1..c5.

Papers: "Deep Residual Learning for Image Recognition", arXiv 1512.03385; "Wide Residual Networks",
arXiv 1605.07146; "Aggregated Residual Transformations for Deep Neural Networks", arXiv 1611.05431.
Output stride 16 or 8 replaces the stride of the last one or two stages with dilation, as
torchvision's ``replace_stride_with_dilation`` does, so every level keeps its pretrained weights.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torchvision import models

from seglab.backbones.base import Backbone, FeatureSpec, check_backbone_args


class ResNetBackbone(Backbone):
    """ResNet (He et al., arXiv 1512.03385): c1 = stem ReLU (stride 2), c2..c5 = layer1..layer4.

    Keeps torchvision's submodule names (``conv1``, ``bn1``, ``layer1`` ...), so torchvision
    checkpoints load by key; ``avgpool`` and ``fc`` are dropped.

    Args:
        arch: one of ``ARCHS``.
        output_stride: 32, 16 (layer4 dilated by 2) or 8 (layer3 by 2, layer4 by 4).
    """

    ARCHS: dict[str, Callable[..., models.ResNet]] = {
        "resnet18": models.resnet18,
        "resnet34": models.resnet34,
        "resnet50": models.resnet50,
        "resnet101": models.resnet101,
        "resnet152": models.resnet152,
    }
    SUPPORTED_OUTPUT_STRIDES: tuple[int, ...] = (8, 16, 32)

    def __init__(self, *, arch: str = "resnet50", output_stride: int = 32) -> None:
        super().__init__()
        check_backbone_args(arch, self.ARCHS, output_stride, self.SUPPORTED_OUTPUT_STRIDES)
        net = self.ARCHS[arch](weights=None)
        _dilate_late_stages(net, output_stride=output_stride)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.feature_specs = _resnet_specs(net, output_stride=output_stride)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Args: images: [N, 3, H, W] normalised. Returns: {"c1": [N, 64, H/2, W/2], ..., "c5"}."""
        c1 = self.relu(self.bn1(self.conv1(images)))
        c2 = self.layer1(self.maxpool(c1))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return {"c1": c1, "c2": c2, "c3": c3, "c4": c4, "c5": c5}


class WideResNetBackbone(ResNetBackbone):
    """Wide ResNet (Zagoruyko & Komodakis, arXiv 1605.07146): ResNet-50 with 2x wider bottlenecks."""

    ARCHS: dict[str, Callable[..., models.ResNet]] = {"wide_resnet50_2": models.wide_resnet50_2}

    def __init__(self, *, arch: str = "wide_resnet50_2", output_stride: int = 32) -> None:
        super().__init__(arch=arch, output_stride=output_stride)


class ResNeXtBackbone(ResNetBackbone):
    """ResNeXt (Xie et al., arXiv 1611.05431): ResNet with grouped 3x3 convolutions (cardinality)."""

    ARCHS: dict[str, Callable[..., models.ResNet]] = {"resnext101_32x8d": models.resnext101_32x8d}

    def __init__(self, *, arch: str = "resnext101_32x8d", output_stride: int = 32) -> None:
        super().__init__(arch=arch, output_stride=output_stride)


def _resnet_specs(net: models.ResNet, *, output_stride: int) -> dict[str, FeatureSpec]:
    """Channels from the block type (expansion 1 or 4); dilated stages keep the stride they reach."""
    expansion = type(net.layer1[0]).expansion
    specs = {"c1": FeatureSpec(channels=64, stride=2)}
    for level, width, nominal_stride in (("c2", 64, 4), ("c3", 128, 8), ("c4", 256, 16), ("c5", 512, 32)):
        specs[level] = FeatureSpec(channels=width * expansion, stride=min(nominal_stride, output_stride))
    return specs


def _dilate_late_stages(net: models.ResNet, *, output_stride: int) -> None:
    """Trade the stride of layer3/layer4 for dilation until the net reaches ``output_stride``.

    Done after construction (not through torchvision's ``replace_stride_with_dilation``) because
    torchvision's BasicBlock (ResNet-18/34) refuses dilation; the result is the same as
    torchvision's for Bottleneck nets (the tests compare them).
    """
    dilation = 1
    for layer, stage_stride in ((net.layer3, 16), (net.layer4, 32)):
        if stage_stride > output_stride:
            previous, dilation = dilation, dilation * 2
            _dilate_stage(layer, first_dilation=previous, dilation=dilation)


def _dilate_stage(layer: nn.Sequential, *, first_dilation: int, dilation: int) -> None:
    """Make a stage stride 1: its first block keeps ``first_dilation``, later blocks use ``dilation``.

    This is torchvision's ``_make_layer(dilate=True)`` rule: every strided conv (the 3x3 and the
    1x1 shortcut) becomes stride 1, and every 3x3 conv gets the block's dilation with matching
    padding so the map size is unchanged.
    """
    for index, block in enumerate(layer):
        block_dilation = first_dilation if index == 0 else dilation
        for conv in block.modules():
            if not isinstance(conv, nn.Conv2d):
                continue
            conv.stride = (1, 1)
            if conv.kernel_size == (3, 3):
                conv.dilation = (block_dilation, block_dilation)
                conv.padding = (block_dilation, block_dilation)
