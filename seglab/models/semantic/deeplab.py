"""DeepLab v2, v3 and v3+ on a dilated ResNet-101.

Papers:
- v2: "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets, Atrous Convolution, and
  Fully Connected CRFs", Chen et al. (arXiv 1606.00915). Changes from v1 (VGG-16, one atrous fc6):
  a ResNet-101 at output stride 8 and atrous spatial pyramid pooling, four parallel classifier
  branches with rates 6, 12, 18, 24 whose scores are summed (sec. 3.3). The dense CRF
  post-processing is not part of the network and is not included here.
- v3: "Rethinking Atrous Convolution for Semantic Image Segmentation", Chen et al. (arXiv 1706.05587).
  Changes from v2: output stride 16 (or 8), multi-grid rates inside block4 (sec. 3.2), and either
  an ASPP with BN and image-level pooling whose branches are concatenated (sec. 3.3) or a cascade
  of copies of block4 with doubling rates (sec. 3.2, fig. 3); no CRF.
- v3+: "Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation", Chen
  et al. (arXiv 1802.02611). Changes from v3: a decoder that upsamples the ASPP output 4x and
  refines it with 48-channel low-level features (sec. 3.1, fig. 2). The paper's Xception backbone
  and separable convolutions are not used: this is the paper's ResNet-101 variant.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from seglab.backbones import build_backbone
from seglab.errors import ConfigError
from seglab.layers.aspp import ASPP, deeplabv2_aspp, deeplabv3_aspp
from seglab.layers.conv_norm_act import conv_norm_act
from seglab.layers.upsample import resize_to
from seglab.losses import pixel_criterion
from seglab.models.semantic.segmenter import SemanticSegmenter
from seglab.registry import ModelSpec, register_model

ContextHead = Literal["aspp", "cascade"]


def set_block_rate(block: nn.Module, rate: int) -> None:
    """Give every 3x3 conv of a residual block dilation ``rate`` (and the padding that keeps the size)."""
    for conv in block.modules():
        if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3):
            conv.dilation, conv.padding = (rate, rate), (rate, rate)


def apply_multi_grid(stage: nn.Sequential, *, base_rate: int, unit_rates: Sequence[int]) -> None:
    """Multi-grid (v3 sec. 3.2): block i of the stage gets rate ``base_rate * unit_rates[i]``.

    E.g. output stride 16 (block4 base rate 2) with Multi_Grid = (1, 2, 4) gives rates (2, 4, 8).
    """
    if len(unit_rates) != len(stage):
        raise ConfigError(
            f"multi_grid has {len(unit_rates)} unit rates but the stage has {len(stage)} blocks; "
            f"give one rate per block, e.g. {tuple(2**i for i in range(len(stage)))}"
        )
    for block, unit in zip(stage, unit_rates):
        set_block_rate(block, base_rate * unit)


def cascade_blocks(block4: nn.Sequential, *, count: int, base_rate: int, unit_rates: Sequence[int]) -> nn.Sequential:
    """block5 .. block(4 + count): copies of block4 at stride 1, the rate doubling per block (v3 fig. 3b).

    Each copy repeats block4's last unit (input channels = output channels, identity shortcut),
    weights included, so a pretrained block4 also initialises the copies.
    """
    blocks = []
    for k in range(1, count + 1):
        block = nn.Sequential(*(copy.deepcopy(block4[-1]) for _ in block4))
        apply_multi_grid(block, base_rate=base_rate * 2**k, unit_rates=unit_rates)
        blocks.append(block)
    return nn.Sequential(*blocks)


class ContextClassifier(nn.Module):
    """Context module on the deepest features, then a 1x1 classifier (v2, v3 ASPP, v3 cascade).

    Forward: features dict -> logits [N, C, h, w] at the backbone's output stride.
    """

    def __init__(self, context: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.context = context
        self.classifier = classifier

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        return self.classifier(self.context(features["c5"]))


class DeepLabV3PlusDecoder(nn.Module):
    """v3+ decoder (sec. 3.1, fig. 2): upsample encoder features to the low-level stride (4x), concatenate
    1x1-reduced low-level features, two 3x3 convs, then a 1x1 classifier.

    Args:
        encoder_channels: channels of the ASPP output (256).
        low_level_channels: channels of the stride-4 backbone features (256 for ResNet-101 c2).
        num_classes: C.
        reduced: channels of the reduced low-level features (48, sec. 4.1).
        width: channels of the two 3x3 convs (256, sec. 4.1).
    Forward: encoder [N, encoder_channels, h, w], low_level [N, low_level_channels, 4h, 4w]
        -> logits [N, C, 4h, 4w].
    """

    def __init__(
        self, encoder_channels: int, low_level_channels: int, num_classes: int, *, reduced: int = 48, width: int = 256
    ) -> None:
        super().__init__()
        self.reduce = conv_norm_act(low_level_channels, reduced, 1)
        self.refine = nn.Sequential(
            conv_norm_act(encoder_channels + reduced, width, 3), conv_norm_act(width, width, 3)
        )
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, encoder: Tensor, low_level: Tensor) -> Tensor:
        upsampled = resize_to(encoder, low_level.shape[-2:])
        return self.classifier(self.refine(torch.cat([upsampled, self.reduce(low_level)], dim=1)))


class DeepLabV3PlusHead(nn.Module):
    """ASPP on c5, then the decoder with c2 (v3+ fig. 2). Forward: features dict -> logits at stride 4."""

    def __init__(self, aspp: ASPP, decoder: DeepLabV3PlusDecoder) -> None:
        super().__init__()
        self.aspp = aspp
        self.decoder = decoder

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        return self.decoder(self.aspp(features["c5"]), features["c2"])


class DeepLab(SemanticSegmenter):
    """A dilated ResNet, a context head (ASPP or cascaded blocks) and optionally the v3+ decoder.

    The data flow is SemanticSegmenter's (backbone -> head -> logits resized to the input); the
    class names the model in messages. Args: as SemanticSegmenter.
    """


def deeplabv2(
    *,
    num_classes: int,
    backbone: str = "resnet101",
    rates: Sequence[int] = (6, 12, 18, 24),
    branch_hidden: int | None = None,
    dropout: float = 0.5,
    pretrained_backbone: str | Path | None = None,
    class_weights: list[float] | None = None,
    loss: str = "ce",
    loss_options: dict[str, float] | None = None,
) -> DeepLab:
    """Build DeepLab v2: ResNet at output stride 8 and ASPP with summed classifier branches.

    Args:
        num_classes: C.
        backbone: a ResNet name from seglab.backbones ("resnet101" in the paper).
        rates: ASPP rates (ASPP-L: 6, 12, 18, 24).
        branch_hidden: None (default) gives one 3x3 atrous conv per rate straight to C scores, the
            released ResNet-101 model; 1024 gives ASPP-L's fc6/fc7/fc8 branches (the VGG-16 setting).
        dropout: dropout inside the fc6/fc7 branches (only with branch_hidden).
        pretrained_backbone: local torchvision ResNet weights.
        class_weights: optional [C] cross-entropy weights.
        loss, loss_options: main loss by name and its options (seglab.losses.build_loss).
    """
    encoder = build_backbone(backbone, output_stride=8, pretrained=pretrained_backbone)
    # The released model dilates every unit of a stage alike (res4*: 2, res5*: 4), where torchvision
    # keeps the previous stage's rate in a stage's first unit.
    for stage, rate in ((encoder.layer3, 2), (encoder.layer4, 4)):
        for block in stage:
            set_block_rate(block, rate)
    aspp = deeplabv2_aspp(encoder.feature_specs["c5"].channels, num_classes, rates=rates, hidden=branch_hidden,
                          dropout=dropout)
    return DeepLab(
        backbone=encoder,
        head=ContextClassifier(aspp, nn.Identity()),  # the summed branch scores are the logits
        num_classes=num_classes,
        input_multiple=8,
        criterion=pixel_criterion(loss, class_weights, loss_options),
    )


def deeplabv3(
    *,
    num_classes: int,
    decoder: bool = False,
    backbone: str = "resnet101",
    output_stride: int = 16,
    multi_grid: Sequence[int] = (1, 2, 4),
    head: ContextHead = "aspp",
    aspp_channels: int = 256,
    cascade_count: int = 3,
    low_level_channels: int = 48,
    decoder_channels: int = 256,
    pretrained_backbone: str | Path | None = None,
    class_weights: list[float] | None = None,
    loss: str = "ce",
    loss_options: dict[str, float] | None = None,
) -> DeepLab:
    """Build DeepLab v3 (parallel ASPP or cascaded blocks) or, with ``decoder=True``, DeepLab v3+.

    Args:
        num_classes: C.
        decoder: add the v3+ decoder on c2 (needs head="aspp").
        backbone: a ResNet name from seglab.backbones ("resnet101" in the papers).
        output_stride: 16 (default, the papers' training setting) or 8; ASPP rates double at 8.
        multi_grid: unit rates of block4's blocks (v3 sec. 3.2; (1, 2, 4) for ResNet-101's 3 blocks).
        head: "aspp" (parallel, sec. 3.3) or "cascade" (block5..block7 copies of block4, sec. 3.2).
        aspp_channels: width of the ASPP branches and projection (256).
        cascade_count: number of extra blocks for head="cascade" (3: block5 to block7).
        low_level_channels, decoder_channels: v3+ decoder widths (48 and 256).
        pretrained_backbone: local torchvision ResNet weights.
        class_weights: optional [C] cross-entropy weights.
        loss, loss_options: main loss by name and its options (seglab.losses.build_loss).
    """
    _check_v3_settings(output_stride=output_stride, head=head, decoder=decoder)
    encoder = build_backbone(backbone, output_stride=output_stride, pretrained=pretrained_backbone)
    base_rate = 32 // output_stride  # block4's dilation: 2 at output stride 16, 4 at 8
    apply_multi_grid(encoder.layer4, base_rate=base_rate, unit_rates=multi_grid)
    specs = encoder.feature_specs
    if head == "cascade":
        context = cascade_blocks(encoder.layer4, count=cascade_count, base_rate=base_rate, unit_rates=multi_grid)
        module: nn.Module = ContextClassifier(context, nn.Conv2d(specs["c5"].channels, num_classes, 1))
    else:
        rates = tuple(r * 16 // output_stride for r in (6, 12, 18))  # sec. 3.3: doubled at output stride 8
        aspp = deeplabv3_aspp(specs["c5"].channels, out_channels=aspp_channels, rates=rates)
        if decoder:
            refine = DeepLabV3PlusDecoder(
                aspp_channels, specs["c2"].channels, num_classes, reduced=low_level_channels, width=decoder_channels
            )
            module = DeepLabV3PlusHead(aspp, refine)
        else:
            module = ContextClassifier(aspp, nn.Conv2d(aspp_channels, num_classes, 1))
    return DeepLab(
        backbone=encoder,
        head=module,
        num_classes=num_classes,
        input_multiple=output_stride,
        criterion=pixel_criterion(loss, class_weights, loss_options),
    )


def _check_v3_settings(*, output_stride: int, head: str, decoder: bool) -> None:
    if output_stride not in (8, 16):
        raise ConfigError(f"deeplabv3: output_stride must be 8 or 16, got {output_stride}")
    if head not in ("aspp", "cascade"):
        raise ConfigError(f"deeplabv3: head must be 'aspp' or 'cascade', got {head!r}")
    if decoder and head != "aspp":
        raise ConfigError("deeplabv3plus: the decoder follows the parallel ASPP; use head='aspp'")


_SMALL = {"backbone": "resnet18", "multi_grid": [1, 2], "aspp_channels": 16}

register_model(
    ModelSpec(
        task="semantic",
        paper="DeepLab: Semantic Image Segmentation with Deep Convolutional Nets, Atrous Convolution, "
        "and Fully Connected CRFs",
        arxiv="1606.00915",
        year=2016,
        survey_row="DeepLab",
        input_multiple=8,
        test_kwargs={"backbone": "resnet18"},
    ),
    name="deeplabv2_resnet101",
)(deeplabv2)

register_model(
    ModelSpec(
        task="semantic",
        paper="Rethinking Atrous Convolution for Semantic Image Segmentation",
        arxiv="1706.05587",
        year=2017,
        survey_row="DeepLab",
        input_multiple=16,
        test_kwargs=_SMALL,
    ),
    name="deeplabv3_resnet101",
)(partial(deeplabv3, decoder=False))

register_model(
    ModelSpec(
        task="semantic",
        paper="Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation",
        arxiv="1802.02611",
        year=2018,
        survey_row="DeepLab",
        input_multiple=16,
        test_kwargs={**_SMALL, "low_level_channels": 8, "decoder_channels": 16},
    ),
    name="deeplabv3plus_resnet101",
)(partial(deeplabv3, decoder=True))
