"""DeepLab v1 (DeepLab-LargeFOV, optionally with the fully connected CRF).

Paper: "Semantic Image Segmentation with Deep Convolutional Nets and Fully Connected CRFs", Chen,
Papandreou, Kokkinos, Murphy, Yuille (arXiv 1412.7062). Changes from its ancestor (FCN on VGG16):
pool4 and pool5 keep the resolution (3x3 max-pool, stride 1) and the layers after them are
dilated ("hole algorithm", sec. 3.1) so the scores have output stride 8 instead of 32; fc6 becomes
a 3x3 convolution with dilation 12 and 1024 channels, fc7 a 1x1 with 1024 ("LargeFOV", sec. 4,
Table 2); the scores are upsampled bilinearly instead of by learned deconvolutions; and a fully
connected CRF refines the result (sec. 3.2; seglab.layers.crf).

The VGG conv layers keep torchvision's indices (``features.0.weight`` ...), so a local torchvision
vgg16 file loads; its fc6/fc7 are decimated to the LargeFOV shapes (sec. 4). The CRF runs in eval
mode only and cannot be exported to ONNX (the mean-field loop stays in PyTorch).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seglab.backbones import build_backbone
from seglab.heads.fcn import vgg_classifier_state
from seglab.layers.crf import DenseCRF
from seglab.losses import pixel_criterion
from seglab.models.semantic.segmenter import SegmenterBase
from seglab.registry import ModelSpec, register_model
from seglab.structures import SemanticPrediction

OUTPUT_STRIDE = 8


def atrous_vgg(features: nn.Sequential) -> nn.Sequential:
    """Turn torchvision VGG ``features`` into DeepLab's stride-8 network, in place (sec. 3.1).

    All pools become 3x3 max-pools with padding 1, as in DeepLab's Caffe model; pool1-3 keep
    stride 2, pool4 and pool5 get stride 1, and the convolutions after pool4 (conv5) dilation 2.
    No parameter changes, so torchvision checkpoints still load by key.
    """
    pools = [i for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]
    for level, index in enumerate(pools):
        features[index] = nn.MaxPool2d(3, stride=2 if level < 3 else 1, padding=1)
    for layer in features[pools[3] + 1 :]:
        if isinstance(layer, nn.Conv2d):
            layer.dilation, layer.padding = (2, 2), (2, 2)
    return features


def upsample_corner_aligned(logits: Tensor, factor: int) -> Tensor:
    """Bilinear ``factor``x upsampling where score k sits on pixel factor * k.

    With 3x3, padding-1 pools, stride-8 output k is centred on input pixel 8 k (not 8 k + 3.5), as
    in DeepLab's Caffe interpolation; the last factor - 1 rows/columns repeat the edge.
    """
    h, w = logits.shape[-2:]
    up = F.interpolate(logits, size=((h - 1) * factor + 1, (w - 1) * factor + 1), mode="bilinear", align_corners=True)
    return F.pad(up, (0, factor - 1, 0, factor - 1), mode="replicate")


class DeepLabV1(SegmenterBase):
    """Atrous VGG16, fc6 (3x3, dilation 12), fc7 (1x1), fc8 scores at stride 8, bilinear upsampling, CRF.

    Args:
        features: the atrous VGG conv layers (``atrous_vgg``), stride 8, 512 output channels.
        num_classes: C.
        hidden: fc6/fc7 width (1024 for LargeFOV).
        dropout: dropout after fc6 and fc7 (0.5).
        crf: fully connected CRF applied to the eval-mode prediction, or None.
        criterion: loss module (pixel cross-entropy by default).
    """

    def __init__(
        self,
        *,
        features: nn.Sequential,
        num_classes: int,
        hidden: int = 1024,
        dropout: float = 0.5,
        crf: DenseCRF | None = None,
        criterion: nn.Module | None = None,
    ) -> None:
        super().__init__(num_classes=num_classes, input_multiple=OUTPUT_STRIDE, criterion=criterion)
        in_channels = [m for m in features if isinstance(m, nn.Conv2d)][-1].out_channels
        self.features = features
        self.fc6 = nn.Conv2d(in_channels, hidden, 3, padding=12, dilation=12)  # LargeFOV, Table 2
        self.fc7 = nn.Conv2d(hidden, hidden, 1)
        self.fc8 = nn.Conv2d(hidden, num_classes, 1)
        nn.init.normal_(self.fc8.weight, std=0.01)  # as DeepLab's fc8 (Gaussian, std 0.01)
        nn.init.zeros_(self.fc8.bias)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)
        self.crf = crf
        self.exportable = crf is None  # read by seglab.inference.onnx_export

    def compute_logits(self, x: Tensor) -> dict[str, Tensor]:
        x = self.features(x)  # stride 8
        x = self.drop(self.relu(self.fc6(x)))
        x = self.drop(self.relu(self.fc7(x)))
        return {"out": upsample_corner_aligned(self.fc8(x), OUTPUT_STRIDE)}

    def forward(self, images: Tensor, targets: Tensor | None = None) -> SemanticPrediction | dict[str, Tensor]:
        prediction = super().forward(images, targets)
        if self.crf is None or self.training or targets is not None:
            return prediction
        # Sec. 3.2: the CRF refines the upsampled scores with the image's RGB colours (0..255). It runs in
        # float32 even under bf16 autocast (seglab.inference.fast): its kernel sums need the precision.
        with torch.autocast(images.device.type, enabled=False):
            refined = self.crf(prediction.logits.float(), images.float() * 255)
        return SemanticPrediction(logits=refined, aux=prediction.aux)

    def load_vgg_classifier(self, state_dict: dict[str, Tensor]) -> None:
        """Decimate torchvision VGG fc6/fc7 (``classifier.0`` / ``classifier.3``) into fc6/fc7.

        Sec. 4: fc6's 7x7 taps are subsampled to 3x3 (every third tap: with dilation 12 they span
        what the 7x7 kernel spanned at dilation 4) and 4096 channels to ``hidden`` (every k-th
        filter, our reading of "changing the number of channels from 4096 to 1024").
        """
        fc6, fc7 = state_dict["classifier.0.weight"], state_dict["classifier.3.weight"]
        step = fc6.shape[0] // self.fc6.out_channels
        with torch.no_grad():
            self.fc6.weight.copy_(fc6.view(fc6.shape[0], -1, 7, 7)[::step, :, ::3, ::3])
            self.fc6.bias.copy_(state_dict["classifier.0.bias"][::step])
            self.fc7.weight.copy_(fc7[::step, ::step, None, None])
            self.fc7.bias.copy_(state_dict["classifier.3.bias"][::step])


@register_model(
    ModelSpec(
        task="semantic",
        paper="Semantic Image Segmentation with Deep Convolutional Nets and Fully Connected CRFs",
        arxiv="1412.7062",
        year=2014,
        survey_row="DeepLab",
        input_multiple=OUTPUT_STRIDE,
        test_kwargs={"backbone": "vgg11", "hidden": 32},
        reference_params=20.5e6,  # DeepLab-LargeFOV, Table 2: 20.5 M (we build 20.51 M for 21 classes)
        reference_kwargs={"num_classes": 21},
    )
)
def deeplabv1_vgg16(
    *,
    num_classes: int,
    backbone: str = "vgg16",
    hidden: int = 1024,
    dropout: float = 0.5,
    crf: bool = False,
    pretrained_backbone: str | Path | None = None,
    class_weights: list[float] | None = None,
    loss: str = "ce",
    loss_options: dict[str, float] | None = None,
) -> DeepLabV1:
    """Build DeepLab-LargeFOV (DeepLab-CRF-LargeFOV with ``crf=True``).

    Args:
        num_classes: C.
        backbone: a VGG name from seglab.backbones ("vgg16" in the paper; "vgg11" for small tests).
        hidden: fc6/fc7 width (1024).
        dropout: dropout after fc6 and fc7 (0.5).
        crf: refine eval-mode predictions with the fully connected CRF (paper defaults, see
            seglab.layers.crf.CRFParams); such a model cannot be exported to ONNX.
        pretrained_backbone: local torchvision VGG weights; fc6/fc7 are decimated from its
            classifier when present and shapes allow.
        class_weights: optional [C] cross-entropy weights.
        loss, loss_options: main loss by name and its options (seglab.losses.build_loss).
    """
    encoder = build_backbone(backbone, pretrained=pretrained_backbone)
    model = DeepLabV1(
        features=atrous_vgg(encoder.features),
        num_classes=num_classes,
        hidden=hidden,
        dropout=dropout,
        crf=DenseCRF() if crf else None,
        criterion=pixel_criterion(loss, class_weights, loss_options),
    )
    state = vgg_classifier_state(pretrained_backbone)
    if state is not None:
        fc6 = state["classifier.0.weight"]
        if fc6.shape[1] == model.fc6.in_channels * 49 and fc6.shape[0] % hidden == 0:
            model.load_vgg_classifier(state)
    return model
