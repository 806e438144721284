"""FCN-32s / FCN-16s / FCN-8s on VGG16.

Paper: "Fully Convolutional Networks for Semantic Segmentation", Long, Shelhamer, Darrell
(arXiv 1411.4038). Changes from its ancestor (the VGG16 classifier): fc6/fc7 become convolutions,
a 1x1 score layer predicts C classes at stride 32, learnable deconvolutions initialised to bilinear
upsample the scores, and skip connections fuse finer scores from pool4 (16s) and pool3 (8s).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Literal

from torch import Tensor, nn

from seglab.backbones import build_backbone
from seglab.heads.fcn import ConvolutionalizedClassifier, vgg_classifier_state, zero_init_score
from seglab.layers.upsample import BilinearDeconv
from seglab.losses import pixel_criterion
from seglab.models.semantic.segmenter import SegmenterBase
from seglab.registry import ModelSpec, register_model

Variant = Literal["32s", "16s", "8s"]


class FCN(SegmenterBase):
    """VGG16 conv layers -> convolutionalised fc6/fc7 -> scores, fused with pool4 / pool3 scores.

    Args:
        backbone: VGG feature extractor returning pool3 ("c3"), pool4 ("c4"), pool5 ("c5").
        num_classes: C.
        variant: "32s" (no skips), "16s" (+ pool4), "8s" (+ pool4 + pool3).
        hidden: width of fc6/fc7 (4096 in the paper).
        criterion: loss module (pixel cross-entropy by default).
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        num_classes: int,
        variant: Variant = "8s",
        hidden: int = 4096,
        criterion: nn.Module | None = None,
    ) -> None:
        super().__init__(num_classes=num_classes, input_multiple=32, criterion=criterion)
        specs = backbone.feature_specs
        self.variant = variant
        self.backbone = backbone
        self.classifier = ConvolutionalizedClassifier(specs["c5"].channels, num_classes, hidden=hidden)
        if variant in ("16s", "8s"):
            self.score_pool4 = zero_init_score(nn.Conv2d(specs["c4"].channels, num_classes, 1))
            self.up_pool5 = BilinearDeconv(num_classes, factor=2)
        if variant == "8s":
            self.score_pool3 = zero_init_score(nn.Conv2d(specs["c3"].channels, num_classes, 1))
            self.up_pool4 = BilinearDeconv(num_classes, factor=2)
        self.upscore = BilinearDeconv(num_classes, factor={"32s": 32, "16s": 16, "8s": 8}[variant])

    def compute_logits(self, x: Tensor) -> dict[str, Tensor]:
        features = self.backbone(x)
        scores = self.classifier(features["c5"])  # stride 32
        if self.variant in ("16s", "8s"):
            scores = self.up_pool5(scores) + self.score_pool4(features["c4"])  # stride 16
        if self.variant == "8s":
            scores = self.up_pool4(scores) + self.score_pool3(features["c3"])  # stride 8
        return {"out": self.upscore(scores)}


def fcn_vgg16(
    *,
    num_classes: int,
    variant: Variant = "8s",
    backbone: str = "vgg16",
    hidden: int = 4096,
    pretrained_backbone: str | Path | None = None,
    class_weights: list[float] | None = None,
    loss: str = "ce",
    loss_options: dict[str, float] | None = None,
) -> FCN:
    """Build FCN-32s/16s/8s.

    Args:
        num_classes: C.
        variant: "32s", "16s" or "8s".
        backbone: a VGG name from seglab.backbones ("vgg16" in the paper; "vgg11" for small tests).
        hidden: fc6/fc7 width (4096 in the paper).
        pretrained_backbone: local torchvision VGG weights; the classifier's fc6/fc7 are
            convolutionalised into the head when present (FCN sec. 3.1).
        class_weights: optional [C] cross-entropy weights.
        loss, loss_options: main loss by name and its options (seglab.losses.build_loss).
    """
    encoder = build_backbone(backbone, pretrained=pretrained_backbone)
    model = FCN(
        backbone=encoder,
        num_classes=num_classes,
        variant=variant,
        hidden=hidden,
        criterion=pixel_criterion(loss, class_weights, loss_options),
    )
    state = vgg_classifier_state(pretrained_backbone)
    if state is not None and hidden == 4096:
        model.classifier.load_vgg_classifier(state)
    return model


for _variant in ("32s", "16s", "8s"):
    register_model(
        ModelSpec(
            task="semantic",
            paper="Fully Convolutional Networks for Semantic Segmentation",
            arxiv="1411.4038",
            year=2014,
            survey_row="FCN-VGG16",
            input_multiple=32,
            test_kwargs={"backbone": "vgg11", "hidden": 64},
            reference_params=134e6,  # the paper's Caffe models: about 134 M for 21 classes
            reference_kwargs={"num_classes": 21},
        ),
        name=f"fcn{_variant}_vgg16",
    )(partial(fcn_vgg16, variant=_variant))
