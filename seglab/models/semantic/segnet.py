"""SegNet on VGG16.

Paper: "SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image Segmentation",
Badrinarayanan, Kendall, Cipolla (arXiv 1511.00561). Changes from its ancestors (FCN, DeconvNet):
the fully connected layers are dropped (the encoder is VGG16's 13 conv layers, 14.7 M parameters
instead of 134 M), and the decoder upsamples by reusing the encoder's max-pooling indices instead of
learning to upsample or storing encoder feature maps (fig. 2, fig. 3); trainable 3x3 convolutions
after each unpooling densify the sparse maps, and a per-pixel classifier ends the network.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from seglab.backbones import load_pretrained
from seglab.layers.unpool import PoolingIndicesEncoder, UnpoolingDecoder, vgg16_stages
from seglab.losses import pixel_criterion
from seglab.models.semantic.segmenter import SegmenterBase
from seglab.registry import ModelSpec, register_model


class SegNet(SegmenterBase):
    """13-conv VGG16 encoder keeping pooling indices, mirrored 13-conv decoder, 1x1 classifier.

    Args:
        num_classes: C (11 for the CamVid road scenes).
        base_channels: width of the first conv (64 in the paper); all widths scale with it.
        criterion: loss module (pixel cross-entropy by default; the paper median-frequency-balances it).
    """

    def __init__(self, *, num_classes: int, base_channels: int = 64, criterion: nn.Module | None = None) -> None:
        # Five 2x2 pools: inputs are padded to a multiple of 32 (the unpooling would also restore odd
        # sizes, since each switch keeps its pool's input size).
        super().__init__(num_classes=num_classes, input_multiple=32, criterion=criterion)
        stages = vgg16_stages(base_channels)
        self.encoder = PoolingIndicesEncoder(stages)
        self.decoder = UnpoolingDecoder(stages, layer=nn.Conv2d)  # sec. 3: conv + BN + ReLU after unpooling
        # Sec. 3: "the output of the final decoder is fed to a trainable soft-max classifier" (per pixel).
        self.classifier = nn.Conv2d(self.decoder.out_channels, num_classes, 1)

    def compute_logits(self, x: Tensor) -> dict[str, Tensor]:
        features, switches = self.encoder(x)  # stride 32, one set of pooling indices per pool
        features = self.decoder(features, switches)  # unpool with those indices, convolve: stride 1
        return {"out": self.classifier(features)}


@register_model(
    ModelSpec(
        task="semantic",
        paper="SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image Segmentation",
        arxiv="1511.00561",
        year=2016,  # the survey's table (TPAMI 2017; arXiv 2015)
        survey_row="SegNet",
        input_multiple=32,
        test_kwargs={"base_channels": 8},
        reference_params=29.5e6,  # issue 3 (from the paper): "about 29.5 M parameters"; CamVid has 11 classes
        reference_kwargs={"num_classes": 11},
    )
)
def segnet_vgg16(
    *,
    num_classes: int,
    base_channels: int = 64,
    pretrained_backbone: str | Path | None = None,
    class_weights: list[float] | None = None,
    loss: str = "ce",
    loss_options: dict[str, float] | None = None,
) -> SegNet:
    """Build SegNet.

    Args:
        num_classes: C.
        base_channels: first-layer width (64 in the paper; e.g. 8 for small tests).
        pretrained_backbone: local torchvision ``vgg16_bn`` weights; they initialise the encoder's
            13 conv + BN layers (paper sec. 3: encoder initialised from VGG16 trained on ImageNet).
            The decoder and classifier keep their He et al. init.
        class_weights: optional [C] cross-entropy weights (sec. 3.2: median frequency balancing).
        loss, loss_options: main loss by name and its options (seglab.losses.build_loss).
    """
    model = SegNet(
        num_classes=num_classes,
        base_channels=base_channels,
        criterion=pixel_criterion(loss, class_weights, loss_options),
    )
    if pretrained_backbone is not None:
        load_pretrained(model.encoder, pretrained_backbone)
    return model
