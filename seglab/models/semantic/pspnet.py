"""PSPNet: a dilated ResNet with a pyramid pooling module and an auxiliary loss on c4.

Paper: "Pyramid Scene Parsing Network", Zhao, Shi, Qi, Wang, Jia (arXiv 1612.01105). Changes from
its ancestor (FCN / DeepLab's dilated ResNet): the stride-8 features are concatenated with context
pooled over 1x1, 2x2, 3x3 and 6x6 bins (pyramid pooling module, sec. 3.2), and a deeply supervised
auxiliary classifier on res4b22 (c4) adds a loss weighted 0.4 during training (sec. 3.3).

Differences from the paper: the ResNet stem is torchvision's single 7x7 conv (the paper's ResNet
replaces it with three 3x3 convs), and upsampling is bilinear with align_corners=False.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from torch import Tensor, nn

from seglab.backbones import build_backbone
from seglab.heads.fcn_head import FCNHead
from seglab.layers.conv_norm_act import conv_norm_act
from seglab.layers.pyramid_pooling import PyramidPooling
from seglab.losses import pixel_criterion
from seglab.models.semantic.segmenter import SemanticSegmenter
from seglab.registry import ModelSpec, register_model


class PSPHead(nn.Module):
    """Pyramid pooling on c5, then 3x3 conv + BN + ReLU, dropout 0.1 and a 1x1 classifier (fig. 3(c)-(d)).

    Args:
        in_channels: channels of c5 (2048 for ResNet-50/101).
        num_classes: C.
        bins: pyramid levels (1, 2, 3, 6 in the paper).
        hidden: width of the 3x3 conv after the concatenation (512 in the paper's released model).
        dropout: dropout before the classifier (0.1).
    Forward: {"c5": [N, in_channels, h, w], ...} -> logits [N, C, h, w].
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        bins: Sequence[int] = (1, 2, 3, 6),
        hidden: int = 512,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.ppm = PyramidPooling(in_channels, bins=bins)
        self.block = conv_norm_act(self.ppm.out_channels, hidden, 3)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(hidden, num_classes, 1)

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        x = self.ppm(features["c5"])
        return self.classifier(self.dropout(self.block(x)))


class PSPNet(SemanticSegmenter):
    """Dilated ResNet -> PSPHead on c5, with FCNHead on c4 as the training-only auxiliary classifier.

    The data flow is SemanticSegmenter's; the class names the model in messages and checkpoints.
    """


def pspnet(
    *,
    num_classes: int,
    backbone: str = "resnet50",
    bins: Sequence[int] = (1, 2, 3, 6),
    head_channels: int = 512,
    aux_weight: float = 0.4,
    pretrained_backbone: str | Path | None = None,
    class_weights: list[float] | None = None,
    loss: str = "ce",
    loss_options: dict[str, float] | None = None,
) -> PSPNet:
    """Build PSPNet on a dilated ResNet at output stride 8.

    Args:
        num_classes: C.
        backbone: a ResNet name ("resnet50" or "resnet101" in the paper; "resnet18" for small tests).
        bins: pyramid pooling levels (1, 2, 3, 6; sec. 3.2).
        head_channels: width of the 3x3 conv after pyramid pooling (512).
        aux_weight: weight of the auxiliary c4 loss (0.4; sec. 3.3). The auxiliary head runs in
            training only.
        pretrained_backbone: local torchvision ResNet weights.
        class_weights: optional [C] cross-entropy weights.
        loss, loss_options: main loss by name and its options (seglab.losses.build_loss).
    """
    encoder = build_backbone(backbone, output_stride=8, pretrained=pretrained_backbone)  # sec. 3.2: dilated FCN
    specs = encoder.feature_specs
    return PSPNet(
        backbone=encoder,
        head=PSPHead(specs["c5"].channels, num_classes, bins=bins, hidden=head_channels),
        aux_head=FCNHead(specs["c4"].channels, num_classes, in_key="c4"),  # res4b22, sec. 3.3
        num_classes=num_classes,
        input_multiple=8,
        aux_weight=aux_weight,
        criterion=pixel_criterion(loss, class_weights, loss_options),
    )


for _depth in ("50", "101"):
    register_model(
        ModelSpec(
            task="semantic",
            paper="Pyramid Scene Parsing Network",
            arxiv="1612.01105",
            year=2017,
            survey_row="PSPNet",
            input_multiple=8,
            test_kwargs={"backbone": "resnet18", "head_channels": 32},
        ),
        name=f"pspnet_resnet{_depth}",
    )(partial(pspnet, backbone=f"resnet{_depth}"))
