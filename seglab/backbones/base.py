"""Backbone contract: features keyed by level with declared channels and stride."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import Tensor, nn

from seglab.errors import ConfigError, closest


@dataclass(frozen=True)
class FeatureSpec:
    """Channels and stride (input pixels per feature pixel) of one feature level."""

    channels: int
    stride: int


class Backbone(nn.Module):
    """Base class: ``forward(images) -> dict[str, Tensor]`` keyed "c1".."c5" (stride 2..32 nominal).

    Subclasses set ``feature_specs``; tests compare it with real outputs.
    """

    feature_specs: dict[str, FeatureSpec]

    def forward(self, images: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


def check_backbone_args(
    arch: str, archs: Iterable[str], output_stride: int, supported: tuple[int, ...]
) -> None:
    """Raise ConfigError if ``arch`` is unknown or ``output_stride`` is not one it can produce."""
    if arch not in archs:
        hint = closest(arch, archs)
        hint = hint + " " if hint else ""
        raise ConfigError(f"unknown arch {arch!r}; {hint}choose one of {sorted(archs)}.")
    if output_stride not in supported:
        choices = ", ".join(str(s) for s in supported)
        # Only ResNets dilate inside the backbone; VGG-based FCN/DeepLab add atrous layers in their heads.
        hint = " ResNet backbones reach 8 or 16 through dilation." if supported == (32,) else ""
        raise ConfigError(
            f"backbone {arch!r} does not support output_stride={output_stride}; "
            f"supported: {choices}.{hint}"
        )
