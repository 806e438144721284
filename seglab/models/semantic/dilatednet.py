"""DilatedNet: a dilated VGG-16 front end at output stride 8, then a context module of dilated convs.

Paper: "Multi-Scale Context Aggregation by Dilated Convolutions", Yu & Koltun (arXiv 1511.07122).
Changes from its ancestor (FCN-32s on VGG-16): pool4 and pool5 are removed and the later layers
dilated instead (conv5 by 2, fc6 by 4), giving class scores at stride 8 without skip layers
(sec. 4, the "front end"); a context module of 3x3 convolutions with exponentially growing dilation
(Table 1), identity-initialised, then refines those scores (sec. 3).

Two-stage training (sec. 5): train the front end alone (``context="none"``), then build the model
with ``context="basic"`` or ``"large"``, load the front end's weights, call ``freeze_front_end()``
and train the context module on the front end's fixed output.

Differences from the paper: every convolution is "same"-padded (the paper removes the padding of
intermediate feature maps and reflection-pads the input instead), and logits are upsampled
bilinearly to the input size by the shared segmenter base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch import Tensor, nn

from seglab.backbones import load_pretrained
from seglab.backbones.dilated_vgg import DilatedVGGBackbone
from seglab.heads.fcn import ConvolutionalizedClassifier, vgg_classifier_state
from seglab.layers.context_module import ContextModule
from seglab.losses import pixel_criterion
from seglab.models.semantic.segmenter import SegmenterBase
from seglab.registry import ModelSpec, register_model

Context = Literal["none", "basic", "large"]


class FrontEnd(nn.Module):
    """Dilated VGG conv layers, then fc6 (7x7, dilation 4), fc7 (1x1) and fc-final (1x1 to C).

    Args:
        backbone: DilatedVGGBackbone (conv5_3 at stride 8 as "c5").
        num_classes: C.
        hidden: width of fc6/fc7 (4096).
    Forward: images [N, 3, H, W] (normalised) -> class scores [N, C, H/8, W/8].
    """

    def __init__(self, *, backbone: DilatedVGGBackbone, num_classes: int, hidden: int = 4096) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = ConvolutionalizedClassifier(
            backbone.feature_specs["c5"].channels, num_classes, hidden=hidden, kernel_size=7
        )
        # Sec. 4: fc6 follows both removed pools, so its 7x7 kernel is dilated by 4.
        self.classifier.fc6.dilation, self.classifier.fc6.padding = (4, 4), (12, 12)

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier(self.backbone(images)["c5"])


class DilatedNet(SegmenterBase):
    """Front end (stride-8 class scores) -> optional context module -> logits.

    Args:
        front_end: FrontEnd.
        num_classes: C.
        context: "none" (front end only, stage 1), "basic" or "large" (Table 1).
        criterion: loss module (pixel cross-entropy by default).
    """

    def __init__(
        self, *, front_end: FrontEnd, num_classes: int, context: Context = "large", criterion: nn.Module | None = None
    ) -> None:
        super().__init__(num_classes=num_classes, input_multiple=8, criterion=criterion)
        self.front_end = front_end
        self.context = None if context == "none" else ContextModule(num_classes, variant=context)
        self.front_end_frozen = False

    def compute_logits(self, x: Tensor) -> dict[str, Tensor]:
        scores = self.front_end(x)  # stride 8
        if self.context is not None:
            scores = self.context(scores)
        return {"out": scores}

    def freeze_front_end(self) -> DilatedNet:
        """Stage 2 of the training (sec. 5): fix the front end, so only the context module learns.

        The front end's parameters stop requiring gradients and it stays in eval mode (no dropout)
        even when the model is put in training mode. Returns the model.
        """
        for parameter in self.front_end.parameters():
            parameter.requires_grad_(False)
        self.front_end_frozen = True
        self.front_end.eval()
        return self

    def train(self, mode: bool = True) -> DilatedNet:
        super().train(mode)
        if self.front_end_frozen:
            self.front_end.eval()
        return self


@register_model(
    ModelSpec(
        task="semantic",
        paper="Multi-Scale Context Aggregation by Dilated Convolutions",
        arxiv="1511.07122",
        year=2016,
        survey_row="DilatedNet",
        input_multiple=8,
        test_kwargs={"backbone": "vgg11", "hidden": 32},
    )
)
def dilatednet_vgg16(
    *,
    num_classes: int,
    context: Context = "large",
    backbone: str = "vgg16",
    hidden: int = 4096,
    pretrained_backbone: str | Path | None = None,
    class_weights: list[float] | None = None,
    loss: str = "ce",
    loss_options: dict[str, float] | None = None,
) -> DilatedNet:
    """Build DilatedNet (front end + context module).

    Args:
        num_classes: C.
        context: "none" (front end alone: stage 1), "basic" or "large" (Table 1; the large module
            gives the paper's best results, Table 3).
        backbone: a VGG name ("vgg16" in the paper; "vgg11" for small tests).
        hidden: fc6/fc7 width (4096).
        pretrained_backbone: local torchvision VGG weights; fc6/fc7 are convolutionalised from its
            classifier when present.
        class_weights: optional [C] cross-entropy weights.
        loss, loss_options: main loss by name and its options (seglab.losses.build_loss).
    """
    encoder = DilatedVGGBackbone(arch=backbone)
    if pretrained_backbone is not None:
        load_pretrained(encoder, pretrained_backbone)
    front_end = FrontEnd(backbone=encoder, num_classes=num_classes, hidden=hidden)
    state = vgg_classifier_state(pretrained_backbone)
    if state is not None and hidden == 4096:
        front_end.classifier.load_vgg_classifier(state)
    return DilatedNet(
        front_end=front_end,
        num_classes=num_classes,
        context=context,
        criterion=pixel_criterion(loss, class_weights, loss_options),
    )
