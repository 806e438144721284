"""ParseNet: FCN-32s with global context, the image-level average of fc7 appended at every pixel.

Paper: "ParseNet: Looking Wider to See Better", Liu, Rabinovich, Berg (arXiv 1506.04579). Changes
from its ancestor (FCN-32s on VGG16): the fc7 features are average-pooled over the whole image
(sec. 3.1), the global vector is "unpooled" (copied to every position, sec. 3.2), both the local and
the global features are L2-normalised with a learnable per-channel scale (sec. 3.3), and the
classifier sees their concatenation.

Differences from the paper: fc6 is padded by 3 instead of the 100-pixel input padding of FCN (as
in seglab's FCN), and the scale is initialised to 10 on both branches (sec. 3.3 says a normalised
feature rescaled to about 10 or 20 trains well; the released models' exact values are not in the
paper).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from seglab.backbones import Backbone, build_backbone
from seglab.heads.fcn import ConvolutionalizedClassifier, vgg_classifier_state
from seglab.layers.l2norm import L2Norm
from seglab.layers.upsample import BilinearDeconv
from seglab.losses import pixel_criterion
from seglab.models.semantic.segmenter import SegmenterBase
from seglab.registry import ModelSpec, register_model


class ParseNetContextHead(ConvolutionalizedClassifier):
    """FCN's fc6/fc7, then [L2Norm(fc7), unpool(L2Norm(global_avg(fc7)))] -> 1x1 score layer (fig. 1).

    Keeps ConvolutionalizedClassifier's fc6/fc7 (and its loading of VGG's fully connected weights);
    only the score layer sees twice the channels.

    Args:
        in_channels: channels of pool5 (512 for VGG16).
        num_classes: C.
        hidden: width of fc6/fc7 (4096).
        scale: initial L2Norm scale of both branches (sec. 3.3).
    Forward: [N, in_channels, h, w] -> [N, C, h, w].
    """

    def __init__(self, in_channels: int, num_classes: int, *, hidden: int = 4096, scale: float = 10.0) -> None:
        super().__init__(in_channels, num_classes, hidden=hidden)
        self.local_norm = L2Norm(hidden, scale=scale)
        self.global_norm = L2Norm(hidden, scale=scale)
        self.score = nn.Conv2d(2 * hidden, num_classes, 1)

    def context(self, features: Tensor) -> Tensor:
        """[N, 2 * hidden, h, w]: normalised fc7 features, then the normalised global vector at every pixel."""
        x = self.drop(self.relu(self.fc6(features)))
        local = self.drop(self.relu(self.fc7(x)))
        global_ = local.mean((2, 3), keepdim=True)  # sec. 3.1: global average pooling
        # Sec. 3.2: unpooling copies the global vector to every position (a broadcast).
        unpooled = self.global_norm(global_).expand_as(local)
        return torch.cat([self.local_norm(local), unpooled], dim=1)

    def forward(self, features: Tensor) -> Tensor:
        return self.score(self.context(features))


class ParseNet(SegmenterBase):
    """VGG16 conv layers -> fc6/fc7 + global context -> scores at stride 32 -> 32x deconvolution.

    Args:
        backbone: VGG feature extractor returning pool5 ("c5").
        num_classes: C.
        hidden: width of fc6/fc7 (4096).
        scale: initial L2Norm scale (10).
        criterion: loss module (pixel cross-entropy by default).
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        num_classes: int,
        hidden: int = 4096,
        scale: float = 10.0,
        criterion: nn.Module | None = None,
    ) -> None:
        super().__init__(num_classes=num_classes, input_multiple=32, criterion=criterion)
        self.backbone = backbone
        self.head = ParseNetContextHead(backbone.feature_specs["c5"].channels, num_classes, hidden=hidden, scale=scale)
        self.upscore = BilinearDeconv(num_classes, factor=32)  # FCN-32s upsampling

    def compute_logits(self, x: Tensor) -> dict[str, Tensor]:
        features = self.backbone(x)
        scores = self.head(features["c5"])  # stride 32
        return {"out": self.upscore(scores)}


@register_model(
    ModelSpec(
        task="semantic",
        paper="ParseNet: Looking Wider to See Better",
        arxiv="1506.04579",
        year=2016,
        survey_row="ParseNet",
        input_multiple=32,
        test_kwargs={"backbone": "vgg11", "hidden": 32},
    )
)
def parsenet_vgg16(
    *,
    num_classes: int,
    backbone: str = "vgg16",
    hidden: int = 4096,
    scale: float = 10.0,
    pretrained_backbone: str | Path | None = None,
    class_weights: list[float] | None = None,
    loss: str = "ce",
    loss_options: dict[str, float] | None = None,
) -> ParseNet:
    """Build ParseNet on FCN-32s.

    Args:
        num_classes: C.
        backbone: a VGG name ("vgg16" in the paper; "vgg11" for small tests).
        hidden: fc6/fc7 width (4096).
        scale: initial per-channel L2Norm scale of the local and global features.
        pretrained_backbone: local torchvision VGG weights; fc6/fc7 are convolutionalised from its
            classifier when present (as in FCN).
        class_weights: optional [C] cross-entropy weights.
        loss, loss_options: main loss by name and its options (seglab.losses.build_loss).
    """
    model = ParseNet(
        backbone=build_backbone(backbone, pretrained=pretrained_backbone),
        num_classes=num_classes,
        hidden=hidden,
        scale=scale,
        criterion=pixel_criterion(loss, class_weights, loss_options),
    )
    state = vgg_classifier_state(pretrained_backbone)
    if state is not None and hidden == 4096:
        model.head.load_vgg_classifier(state)
    return model
