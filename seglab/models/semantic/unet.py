"""U-Net.

Paper: "U-Net: Convolutional Networks for Biomedical Image Segmentation", Ronneberger, Fischer,
Brox (arXiv 1505.04597). Changes from its ancestor (FCN): a symmetric expansive path with 2x2
up-convolutions that halve the channels, concatenation with the cropped feature map of the
contracting path at every scale, and no fully connected layers (fig. 1).

Padding: the paper uses unpadded ("valid") 3x3 convolutions, so the output is smaller than the
input, and segments large images tile by tile with the missing context mirrored (overlap-tile,
fig. 2). ``padding="valid"`` does exactly that internally: the input is mirror-padded so the
output covers it, then cropped. ``padding="same"`` (default) pads every conv and needs no crops.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from seglab.layers.conv_norm_act import conv_norm_act
from seglab.layers.padding import mirror_pad
from seglab.losses import pixel_criterion
from seglab.models.semantic.segmenter import SegmenterBase
from seglab.registry import ModelSpec, register_model

Padding = Literal["same", "valid"]
DEPTH = 4  # four 2x2 max-pools (fig. 1)


def double_conv(in_channels: int, out_channels: int, *, padding: Padding, batch_norm: bool) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by ReLU (and BN when enabled): one U-Net stage."""
    pad = 1 if padding == "same" else 0
    return nn.Sequential(
        conv_norm_act(in_channels, out_channels, 3, padding=pad, norm=batch_norm),
        conv_norm_act(out_channels, out_channels, 3, padding=pad, norm=batch_norm),
    )


def center_crop(features: Tensor, size: torch.Size) -> Tensor:
    """Crop [N, C, h, w] to its central ``size`` (fig. 1: "copy and crop")."""
    top = (features.shape[-2] - size[0]) // 2
    left = (features.shape[-1] - size[1]) // 2
    return features[..., top : top + size[0], left : left + size[1]]


class UpStage(nn.Module):
    """2x2 up-convolution halving the channels, concatenation with the skip, double conv."""

    def __init__(self, in_channels: int, *, padding: Padding, batch_norm: bool) -> None:
        super().__init__()
        out_channels = in_channels // 2
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = double_conv(in_channels, out_channels, padding=padding, batch_norm=batch_norm)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x)
        return self.conv(torch.cat([center_crop(skip, x.shape[-2:]), x], dim=1))


class UNet(SegmenterBase):
    """Contracting path (64..1024 channels), expansive path with skip concatenation, 1x1 classifier.

    Args:
        num_classes: C (2 for the ISBI membranes).
        base_channels: channels of the first stage (64 in the paper); stage k has base * 2**k.
        padding: "same" or "valid" (the paper's unpadded convs with overlap-tile input mirroring).
        batch_norm: BN after every conv (not in the paper; helps training from scratch).
        dropout: dropout at the end of the contracting path (paper sec. 3.1), on the bottleneck.
        criterion: loss module (pixel cross-entropy by default).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        base_channels: int = 64,
        padding: Padding = "same",
        batch_norm: bool = False,
        dropout: float = 0.5,
        criterion: nn.Module | None = None,
    ) -> None:
        # "same" needs sizes divisible by 2**4; "valid" sizes are chosen in compute_logits.
        super().__init__(
            num_classes=num_classes,
            input_multiple=2**DEPTH if padding == "same" else 1,
            criterion=criterion,
        )
        self.padding = padding
        widths = [base_channels * 2**k for k in range(DEPTH + 1)]
        self.down = nn.ModuleList(
            double_conv(c_in, c_out, padding=padding, batch_norm=batch_norm)
            for c_in, c_out in zip([3, *widths[:-1]], widths)
        )
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout2d(dropout)
        self.up = nn.ModuleList(UpStage(c, padding=padding, batch_norm=batch_norm) for c in reversed(widths[1:]))
        self.classifier = nn.Conv2d(base_channels, num_classes, 1)

    def compute_logits(self, x: Tensor) -> dict[str, Tensor]:
        if self.padding == "valid":
            return {"out": self._overlap_tile(x)}
        return {"out": self._unet(x)}

    def _unet(self, x: Tensor) -> Tensor:
        skips = []
        for k, stage in enumerate(self.down):
            x = stage(x if k == 0 else self.pool(x))
            skips.append(x)
        x = self.dropout(skips.pop())
        for stage in self.up:
            x = stage(x, skips.pop())
        return self.classifier(x)

    def _overlap_tile(self, x: Tensor) -> Tensor:
        """Mirror-pad so the valid-conv output covers the whole input, run, crop (paper fig. 2)."""
        h, w = x.shape[-2:]
        in_h, in_w = valid_input_size(h), valid_input_size(w)
        border = VALID_BORDER
        padded = mirror_pad(x, (border, in_w - w - border, border, in_h - h - border))
        out = self._unet(padded)  # output pixel (0, 0) sits at input pixel (border, border)
        return out[..., :h, :w]


# Each valid 3x3 conv removes 2 pixels; an input of 16 m + 124 gives an output of 16 m - 60
# (572 -> 388 in fig. 1, m = 28), so the output starts 92 pixels into the input.
VALID_BORDER = 92


def valid_input_size(output_size: int) -> int:
    """Smallest input side whose valid-conv U-Net output is at least ``output_size``."""
    m = max(1, math.ceil((output_size + 60) / 16))
    return 16 * m + 124


@register_model(
    ModelSpec(
        task="semantic",
        paper="U-Net: Convolutional Networks for Biomedical Image Segmentation",
        arxiv="1505.04597",
        year=2015,
        survey_row="U-Net",
        input_multiple=16,
        test_kwargs={"base_channels": 8},
        reference_params=31.0e6,  # issue #2 / the common reference count for 2 classes
        reference_kwargs={"num_classes": 2},
    )
)
def unet(
    *,
    num_classes: int,
    base_channels: int = 64,
    padding: Padding = "same",
    batch_norm: bool = False,
    dropout: float = 0.5,
    class_weights: list[float] | None = None,
    loss: str = "ce",
    loss_options: dict[str, float] | None = None,
) -> UNet:
    """Build U-Net (see UNet for the arguments)."""
    return UNet(
        num_classes=num_classes,
        base_channels=base_channels,
        padding=padding,
        batch_norm=batch_norm,
        dropout=dropout,
        criterion=pixel_criterion(loss, class_weights, loss_options),
    )
