"""Gated-SCNN: a regular stream, a gated shape stream for boundaries, and ASPP fusion.

Paper: "Gated-SCNN: Gated Shape CNNs for Semantic Segmentation", Takikawa, Acuna, Jampani, Fidler
(arXiv 1907.05740). Changes from its ancestor (DeepLab v3+ on a dilated ResNet, output stride 8):
a shallow shape stream at input resolution, made of residual blocks and gated convolutional layers
(GCL) whose attention maps come from the regular stream's c3, c4 and c5 (sec. 3.1-3.2, fig. 2),
predicts boundaries; the boundary map, fused with the image gradient, enters the ASPP as an extra
branch (sec. 3.3); boundaries are supervised with BCE and tied to the segmentation by the
dual-task regulariser (sec. 3.4, seglab/losses/dual_task.py).

Differences from the paper: the image gradient is the Sobel gradient magnitude of the grayscale
image computed in torch (the paper uses Canny edges from OpenCV, which is not differentiable and
would not export); the regular stream is a torchvision ResNet-101 or Wide ResNet-50-2 (the paper's
best model uses WideResNet-38), with its stride-2 stem ("c1") feeding the shape stream and c2
(stride 4) feeding the decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

from seglab.backbones import build_backbone
from seglab.layers.aspp import deeplabv3_aspp
from seglab.layers.conv_norm_act import conv_norm_act
from seglab.layers.upsample import resize_to
from seglab.losses import pixel_criterion
from seglab.losses.dual_task import DualTaskLoss, spatial_gradient_magnitude
from seglab.models.semantic.deeplab import DeepLabV3PlusDecoder
from seglab.models.semantic.segmenter import SegmenterBase
from seglab.registry import ModelSpec, register_model

GRAY = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights


class GatedConv(nn.Module):
    """Gated convolutional layer (GCL, sec. 3.2): the regular stream decides where the shape stream looks.

    alpha = sigmoid(C(s || r)) (eq. 1), then s_hat = ((s * alpha) + s) w, w a 1x1 conv (eq. 2).
    C is a normalised 1x1 conv net (BN, 1x1, ReLU, 1x1, BN), as in the released code.

    Args:
        channels: channels of the shape-stream features s.
    Forward: shape [N, channels, H, W], regular [N, 1, H, W] -> [N, channels, H, W].
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.BatchNorm2d(channels + 1),
            nn.Conv2d(channels + 1, channels + 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels + 1, 1, 1),
            nn.BatchNorm2d(1),
            nn.Sigmoid(),
        )
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)

    def attention(self, shape: Tensor, regular: Tensor) -> Tensor:
        """The attention map alpha [N, 1, H, W] in [0, 1] (eq. 1)."""
        return self.gate(torch.cat([shape, regular], dim=1))

    def forward(self, shape: Tensor, regular: Tensor) -> Tensor:
        alpha = self.attention(shape, regular)
        return self.conv(shape * alpha + shape)


class ShapeStream(nn.Module):
    """Residual block -> 1x1 conv -> GCL, three times at input resolution, then a 1x1 to boundary logits.

    The first block takes the regular stream's stem features; GCL k is gated by a 1-channel 1x1
    projection of c3, c4, c5 (the released code's "dsn" side outputs), upsampled to the input size.

    Args:
        stem_channels: channels of c1 (64).
        regular_channels: channels of c3, c4, c5.
        widths: channels after each 1x1 reduction ((32, 16, 8) in the released code).
    Forward: stem [N, stem_channels, h, w], regular [c3, c4, c5], size (H, W) -> logits [N, 1, H, W].
    """

    def __init__(
        self, stem_channels: int, regular_channels: Sequence[int], *, widths: Sequence[int] = (32, 16, 8)
    ) -> None:
        super().__init__()
        inputs = [stem_channels, *widths[:-1]]
        self.blocks = nn.ModuleList(BasicBlock(c, c) for c in inputs)
        self.reduce = nn.ModuleList(nn.Conv2d(c_in, c_out, 1) for c_in, c_out in zip(inputs, widths))
        self.side = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in regular_channels)
        self.gates = nn.ModuleList(GatedConv(c) for c in widths)
        self.to_logits = nn.Conv2d(widths[-1], 1, 1, bias=False)

    def forward(self, stem: Tensor, regular: Sequence[Tensor], size: torch.Size) -> Tensor:
        shape = resize_to(stem, size)
        for block, reduce, side, gate, features in zip(self.blocks, self.reduce, self.side, self.gates, regular):
            shape = gate(reduce(block(shape)), resize_to(side(features), size))
        return self.to_logits(shape)


class GatedSCNN(SegmenterBase):
    """Regular stream + shape stream, fused by an ASPP with a boundary branch, then the v3+ decoder.

    Args:
        backbone: a ResNet-family backbone at output stride 8 (features c1..c5).
        num_classes: C.
        aspp_channels: width of the ASPP branches (256).
        low_level_channels, decoder_channels: decoder widths (48 and 256).
        shape_widths: shape-stream widths after each reduction ((32, 16, 8)).
        criterion: segmentation loss (pixel cross-entropy by default).
        dual_task: the boundary and regulariser terms (DualTaskLoss with the paper's weights by default).
    compute_logits returns {"out": [N, C, H/4, W/4], "boundary_logits": [N, 1, H, W]}; the boundary
    logits reach SemanticPrediction.aux.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        num_classes: int,
        aspp_channels: int = 256,
        low_level_channels: int = 48,
        decoder_channels: int = 256,
        shape_widths: Sequence[int] = (32, 16, 8),
        criterion: nn.Module | None = None,
        dual_task: DualTaskLoss | None = None,
    ) -> None:
        super().__init__(num_classes=num_classes, input_multiple=8, criterion=criterion)
        specs = backbone.feature_specs
        self.backbone = backbone  # the regular stream
        self.shape_stream = ShapeStream(
            specs["c1"].channels, [specs[k].channels for k in ("c3", "c4", "c5")], widths=shape_widths
        )
        self.edge_fusion = nn.Conv2d(2, 1, 1, bias=False)  # boundary probability + image gradient
        self.edge_branch = conv_norm_act(1, aspp_channels, 1)
        # Sec. 3.3: ASPP at output stride 8 (rates 12, 24, 36) with the boundary map as one more branch.
        self.aspp = deeplabv3_aspp(
            specs["c5"].channels, out_channels=aspp_channels, rates=(12, 24, 36), extra_channels=aspp_channels
        )
        self.decoder = DeepLabV3PlusDecoder(
            aspp_channels, specs["c2"].channels, num_classes, reduced=low_level_channels, width=decoder_channels
        )
        self.dual_task = dual_task if dual_task is not None else DualTaskLoss()
        self.register_buffer("gray", torch.tensor(GRAY).view(1, 3, 1, 1), persistent=False)

    def compute_logits(self, x: Tensor) -> dict[str, Tensor]:
        features = self.backbone(x)
        regular = [features[k] for k in ("c3", "c4", "c5")]
        boundary_logits = self.shape_stream(features["c1"], regular, x.shape[-2:])
        edges = torch.cat([boundary_logits.sigmoid(), self.image_gradient(x)], dim=1)
        edges = self.edge_fusion(edges).sigmoid()
        c5 = features["c5"]
        context = self.aspp(c5, extra=[self.edge_branch(resize_to(edges, c5.shape[-2:]))])
        return {"out": self.decoder(context, features["c2"]), "boundary_logits": boundary_logits}

    def image_gradient(self, x: Tensor) -> Tensor:
        """Sobel gradient magnitude [N, 1, H, W] of the grayscale image (stands in for Canny edges)."""
        images = x * self.normalize.std + self.normalize.mean  # back to [0, 1]
        return spatial_gradient_magnitude((images * self.gray).sum(1, keepdim=True))

    def losses(self, logits: dict[str, Tensor], targets: Tensor) -> dict[str, Tensor]:
        """Segmentation CE plus the weighted boundary BCE and dual-task terms (sec. 3.4)."""
        terms = {"loss_ce": self.criterion(logits["out"], targets)}
        terms.update(self.dual_task(logits["out"], logits["boundary_logits"], targets))
        return terms


@register_model(
    ModelSpec(
        task="semantic",
        paper="Gated-SCNN: Gated Shape CNNs for Semantic Segmentation",
        arxiv="1907.05740",
        year=2019,
        survey_row="Gated-SCNN",
        input_multiple=8,
        test_kwargs={"backbone": "resnet18", "aspp_channels": 16, "low_level_channels": 8, "decoder_channels": 16},
    ),
    name="gated_scnn_resnet101",
)
def gated_scnn(
    *,
    num_classes: int,
    backbone: str = "resnet101",
    aspp_channels: int = 256,
    low_level_channels: int = 48,
    decoder_channels: int = 256,
    boundary_weight: float = 20.0,
    dual_weight: float = 1.0,
    attention_weight: float = 1.0,
    gumbel_tau: float | None = 0.5,
    pretrained_backbone: str | Path | None = None,
    class_weights: list[float] | None = None,
    loss: str = "ce",
    loss_options: dict[str, float] | None = None,
) -> GatedSCNN:
    """Build Gated-SCNN.

    Args:
        num_classes: C.
        backbone: regular stream, "resnet101" (default) or "wide_resnet50_2"; any ResNet-family name works.
        aspp_channels, low_level_channels, decoder_channels: fusion widths (256, 48, 256).
        boundary_weight: weight of the boundary BCE (lambda_1 = 20, the released code's factor).
        dual_weight: weight of the dual-task L1 term (eq. 4, lambda_3 = 1).
        attention_weight: weight of the boundary-gated CE term (eq. 5, lambda_4 = 1); 0 drops it.
        gumbel_tau: Gumbel-softmax temperature in eq. 4 (0.5); None uses the plain softmax.
        pretrained_backbone: local torchvision weights for the regular stream.
        class_weights: optional [C] cross-entropy weights.
        loss, loss_options: main loss by name and its options (seglab.losses.build_loss).
    """
    return GatedSCNN(
        backbone=build_backbone(backbone, output_stride=8, pretrained=pretrained_backbone),
        num_classes=num_classes,
        aspp_channels=aspp_channels,
        low_level_channels=low_level_channels,
        decoder_channels=decoder_channels,
        criterion=pixel_criterion(loss, class_weights, loss_options),
        dual_task=DualTaskLoss(
            boundary_weight=boundary_weight, dual_weight=dual_weight, attention_weight=attention_weight,
            gumbel_tau=gumbel_tau,
        ),
    )
