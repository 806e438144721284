"""Backbones: torchvision classification nets that return features keyed "c1".."c5"."""

from __future__ import annotations

from pathlib import Path

from seglab.backbones.base import Backbone, FeatureSpec
from seglab.backbones.densenet import DenseNetBackbone
from seglab.backbones.resnet import ResNetBackbone, ResNeXtBackbone, WideResNetBackbone
from seglab.backbones.vgg import VGGBackbone
from seglab.backbones.weights import load_pretrained, read_state_dict
from seglab.errors import ConfigError, closest

__all__ = [
    "Backbone",
    "DenseNetBackbone",
    "FeatureSpec",
    "ResNeXtBackbone",
    "ResNetBackbone",
    "VGGBackbone",
    "WideResNetBackbone",
    "build_backbone",
    "list_backbones",
    "load_pretrained",
    "read_state_dict",
]

# Each class lists the torchvision architectures it wraps; a name maps to the class that knows it.
_CLASSES: tuple[type[VGGBackbone | ResNetBackbone | DenseNetBackbone], ...] = (
    VGGBackbone,
    ResNetBackbone,
    WideResNetBackbone,
    ResNeXtBackbone,
    DenseNetBackbone,
)
_BACKBONES: dict[str, type[VGGBackbone | ResNetBackbone | DenseNetBackbone]] = {
    arch: cls for cls in _CLASSES for arch in cls.ARCHS
}


def list_backbones() -> list[str]:
    """Return the names ``build_backbone`` accepts, sorted."""
    return sorted(_BACKBONES)


def build_backbone(
    name: str, *, output_stride: int = 32, pretrained: str | Path | None = None
) -> Backbone:
    """Build a backbone by name with random init, optionally filled from a local checkpoint.

    Args:
        name: one of ``list_backbones()``, e.g. "resnet50", "vgg16", "densenet121".
        output_stride: stride of the deepest level: 32 for every backbone, 16 or 8 for the ResNet
            family (through dilation), 16 for VGG (pool5 removed).
        pretrained: a local ``.safetensors``/``.pt``/``.pth``/``.bin`` file with torchvision key
            names (see ``load_pretrained``); None keeps the random init.

    Returns:
        The backbone; ``feature_specs`` gives each level's channels and stride.

    Raises:
        ConfigError: unknown name, unsupported output_stride, or unusable weights file.
    """
    if name not in _BACKBONES:
        hint = closest(name, _BACKBONES)
        raise ConfigError(
            f"unknown backbone {name!r}; {hint + ' ' if hint else ''}"
            f"available: {', '.join(list_backbones())}."
        )
    backbone = _BACKBONES[name](arch=name, output_stride=output_stride)
    if pretrained is not None:
        load_pretrained(backbone, pretrained)
    return backbone
