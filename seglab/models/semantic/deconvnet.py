"""DeconvNet on VGG16.

Paper: "Learning Deconvolution Network for Semantic Segmentation", Noh, Hong, Han (arXiv 1505.04366).
Changes from its ancestor (FCN-VGG16): instead of one coarse score map upsampled by a fixed-size
deconvolution, a multi-layer deconvolution network mirrors the convolution network (fig. 2):
unpooling layers put activations back at the locations the max-pools recorded ("switch
variables", sec. 3.2.1), and 3x3 deconvolution layers densify the sparse maps, so shapes are
reconstructed coarse to fine. Batch normalization follows every convolution and deconvolution
(sec. 4.1).

Not part of the model: the paper's inference on edge-box object proposals whose outputs are
aggregated per image (sec. 5.1), its two-stage training (easy then hard examples, sec. 4.2) and the
ensemble with FCN + CRF (EDeconvNet, sec. 5.2). Here the network segments the whole (padded) image
at once.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from seglab.backbones import load_pretrained
from seglab.heads.fcn import vgg_classifier_state
from seglab.layers.unpool import PoolingIndicesEncoder, UnpoolingDecoder, bn_relu_after, he_init, vgg16_stages
from seglab.losses import pixel_criterion
from seglab.models.semantic.segmenter import SegmenterBase
from seglab.registry import ModelSpec, register_model

FC_KERNEL = 7  # VGG16's fc6 covers the 7x7 pool5 map of a 224x224 input (Table 1: fc6 7x7, 1x1x4096)


class DeconvNet(SegmenterBase):
    """Convolution network (VGG16 conv layers, fc6, fc7) and its mirror, the deconvolution network.

    fc6 / deconv-fc6: in the paper fc6 is a valid 7x7 convolution that reduces the 7x7 pool5 map of
    a 224x224 proposal to 1x1, and deconv-fc6 a 7x7 deconvolution that expands it back to 7x7
    (Table 1). Here both are padded by 3 so they keep the pool5 size for any input size: the
    weights (and the parameter count) are the same, and on a 7x7 pool5 map the centre of fc6's
    output sees exactly the paper's input.

    Args:
        num_classes: C (21 for PASCAL VOC 2012, the paper's benchmark).
        base_channels: width of the first conv (64 in the paper); all conv/deconv widths scale with it.
        fc_channels: width of fc6 / fc7 (4096 in the paper).
        criterion: loss module (pixel cross-entropy by default).
    """

    def __init__(
        self, *, num_classes: int, base_channels: int = 64, fc_channels: int = 4096, criterion: nn.Module | None = None
    ) -> None:
        super().__init__(num_classes=num_classes, input_multiple=32, criterion=criterion)  # five 2x2 pools
        stages = vgg16_stages(base_channels)
        self.encoder = PoolingIndicesEncoder(stages)  # conv1_1 .. pool5, keeping the switches
        pool5 = self.encoder.out_channels
        self.fc6 = bn_relu_after(nn.Conv2d(pool5, fc_channels, FC_KERNEL, padding=FC_KERNEL // 2))
        self.fc7 = bn_relu_after(nn.Conv2d(fc_channels, fc_channels, 1))
        self.deconv_fc6 = bn_relu_after(nn.ConvTranspose2d(fc_channels, pool5, FC_KERNEL, padding=FC_KERNEL // 2))
        self.decoder = UnpoolingDecoder(stages, layer=nn.ConvTranspose2d)  # unpool5, deconv5_1 .. deconv1_2
        self.classifier = nn.Conv2d(self.decoder.out_channels, num_classes, 1)  # Table 1: 1x1 output layer
        he_init(self.fc6)
        he_init(self.fc7)
        he_init(self.deconv_fc6)

    def compute_logits(self, x: Tensor) -> dict[str, Tensor]:
        features, switches = self.encoder(x)  # convolution network: pool5, stride 32
        features = self.fc7(self.fc6(features))  # fully connected layers as convolutions
        features = self.deconv_fc6(features)  # back to the pool5 map
        features = self.decoder(features, switches)  # unpooling by switches + deconvolutions: stride 1
        return {"out": self.classifier(features)}

    def load_vgg_classifier(self, state_dict: dict[str, Tensor]) -> None:
        """Copy torchvision VGG ``classifier.0`` / ``classifier.3`` (fc6 / fc7) into the conv fc6 / fc7."""
        with torch.no_grad():
            for block, key in ((self.fc6, "classifier.0"), (self.fc7, "classifier.3")):
                conv = block[0]
                conv.weight.copy_(state_dict[f"{key}.weight"].view_as(conv.weight))
                conv.bias.copy_(state_dict[f"{key}.bias"])


@register_model(
    ModelSpec(
        task="semantic",
        paper="Learning Deconvolution Network for Semantic Segmentation",
        arxiv="1505.04366",
        year=2015,
        survey_row="DeconvNet",
        input_multiple=32,
        test_kwargs={"base_channels": 8, "fc_channels": 16},
        reference_params=252e6,  # issue 3 (from the paper): about 252 M parameters; PASCAL VOC, 21 classes
        reference_kwargs={"num_classes": 21},
    )
)
def deconvnet_vgg16(
    *,
    num_classes: int,
    base_channels: int = 64,
    fc_channels: int = 4096,
    pretrained_backbone: str | Path | None = None,
    class_weights: list[float] | None = None,
    loss: str = "ce",
    loss_options: dict[str, float] | None = None,
) -> DeconvNet:
    """Build DeconvNet.

    Args:
        num_classes: C.
        base_channels: first-layer width (64 in the paper; e.g. 8 for small tests).
        fc_channels: fc6 / fc7 width (4096 in the paper).
        pretrained_backbone: local torchvision ``vgg16_bn`` weights: they initialise the 13 conv + BN
            layers, and fc6 / fc7 (reshaped to convolutions) when the file has ``classifier.*`` keys
            and ``fc_channels`` is 4096 (implementation details: the convolution network starts from
            VGG16 trained on ImageNet, the deconvolution network from zero-mean Gaussians).
        class_weights: optional [C] cross-entropy weights.
        loss, loss_options: main loss by name and its options (seglab.losses.build_loss).
    """
    model = DeconvNet(
        num_classes=num_classes,
        base_channels=base_channels,
        fc_channels=fc_channels,
        criterion=pixel_criterion(loss, class_weights, loss_options),
    )
    if pretrained_backbone is not None:
        load_pretrained(model.encoder, pretrained_backbone)
        state = vgg_classifier_state(pretrained_backbone)
        if state is not None and fc_channels == 4096:
            model.load_vgg_classifier(state)
    return model
