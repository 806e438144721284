"""Atrous spatial pyramid pooling (ASPP): parallel atrous branches over one feature map.

DeepLab v2 ("DeepLab: Semantic Image Segmentation with Deep Convolutional Nets, Atrous Convolution,
and Fully Connected CRFs", arXiv 1606.00915, sec. 3.3 and fig. 4): four branches with rates
6, 12, 18, 24, each a small classifier producing class scores; the scores are summed.

DeepLab v3 ("Rethinking Atrous Convolution for Semantic Image Segmentation", arXiv 1706.05587,
sec. 3.3 and fig. 5): a 1x1 conv, three 3x3 atrous convs (rates 6, 12, 18 at output stride 16,
doubled at 8) and image-level pooling, each 256 channels with BN and ReLU; the branches are
concatenated and projected by a 1x1 conv (256, BN, ReLU).

``ASPP`` holds the branches and the fusion ("sum" or "concat"); ``deeplabv2_aspp`` and
``deeplabv3_aspp`` build the two papers' modules, with the rates and the fusion as arguments.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from seglab.layers.conv_norm_act import conv_norm_act

Fusion = Literal["sum", "concat"]


class AtrousClassifierBranch(nn.Sequential):
    """One DeepLab v2 branch: class scores from one field of view.

    With ``hidden`` set this is ASPP-L's branch (v2 fig. 4b, VGG-16 experiments): fc6 (3x3, rate r,
    ``hidden`` channels), fc7 (1x1, ``hidden``), each ReLU + dropout, then fc8 (1x1, C). With
    ``hidden=None`` it is a single 3x3 atrous conv straight to C scores, as in the released
    DeepLab-v2 ResNet-101 model (``fc1_voc12_c0..c3`` on res5c).

    Args:
        in_channels: channels of the input feature map.
        num_classes: C.
        rate: atrous rate (dilation) of the 3x3 conv.
        hidden: fc6/fc7 width (1024 in ASPP-L), or None for the single-conv branch.
        dropout: dropout after fc6 and fc7 (0.5, as in the Caffe prototxt).
    Forward: [N, in_channels, h, w] -> [N, C, h, w].
    """

    def __init__(
        self, in_channels: int, num_classes: int, *, rate: int, hidden: int | None = 1024, dropout: float = 0.5
    ) -> None:
        if hidden is None:
            layers = OrderedDict(fc=nn.Conv2d(in_channels, num_classes, 3, padding=rate, dilation=rate))
        else:
            layers = OrderedDict(
                fc6=nn.Conv2d(in_channels, hidden, 3, padding=rate, dilation=rate),
                relu6=nn.ReLU(inplace=True),
                drop6=nn.Dropout(dropout),
                fc7=nn.Conv2d(hidden, hidden, 1),
                relu7=nn.ReLU(inplace=True),
                drop7=nn.Dropout(dropout),
                fc8=nn.Conv2d(hidden, num_classes, 1),
            )
        super().__init__(layers)
        self.rate = rate


class ImagePooling(nn.Module):
    """Image-level features (v3 sec. 3.3): global average pooling -> 1x1 conv -> BN -> ReLU -> broadcast.

    Forward: [N, in_channels, h, w] -> [N, out_channels, h, w], constant over h and w.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = conv_norm_act(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.conv(x.mean((2, 3), keepdim=True))
        # Bilinear upsampling of a 1x1 map is a broadcast; expand keeps H, W symbolic for export.
        return pooled.expand(-1, -1, x.shape[-2], x.shape[-1])


class ASPP(nn.Module):
    """Parallel branches over one feature map, fused by summation or by concatenation.

    Args:
        branches: modules mapping [N, C_in, h, w] to [N, C_b, h, w].
        fusion: "sum" (v2: the branches' scores are added) or "concat" (v3: channels stacked).
        project: optional module applied to the fused map (v3: 1x1 conv + BN + ReLU).
    Forward:
        x: [N, C_in, h, w].
        extra: maps computed elsewhere at the same size, fused after the branches (Gated-SCNN's
            boundary branch); with "sum" they must have the branches' channels.
        Returns the fused (and projected) map [N, C_out, h, w].
    """

    def __init__(self, branches: Iterable[nn.Module], *, fusion: Fusion, project: nn.Module | None = None) -> None:
        super().__init__()
        if fusion not in ("sum", "concat"):
            raise ValueError(f"ASPP fusion must be 'sum' or 'concat', got {fusion!r}")
        self.branches = nn.ModuleList(branches)
        self.fusion = fusion
        self.project = project

    def forward(self, x: Tensor, extra: Sequence[Tensor] = ()) -> Tensor:
        maps = [branch(x) for branch in self.branches] + list(extra)
        fused = torch.stack(maps).sum(0) if self.fusion == "sum" else torch.cat(maps, dim=1)
        return fused if self.project is None else self.project(fused)


def deeplabv2_aspp(
    in_channels: int,
    num_classes: int,
    *,
    rates: Sequence[int] = (6, 12, 18, 24),
    hidden: int | None = 1024,
    dropout: float = 0.5,
    fusion: Fusion = "sum",
) -> ASPP:
    """DeepLab v2's ASPP: one classifier branch per rate, scores fused (v2 sec. 3.3, fig. 4).

    Args:
        in_channels: channels of the deepest features (2048 for ResNet-101 res5c).
        num_classes: C.
        rates: atrous rates, one branch each (ASPP-L: 6, 12, 18, 24; ASPP-S: 2, 4, 8, 12).
        hidden: fc6/fc7 width (1024 in ASPP-L), or None for one 3x3 conv per branch.
        dropout: dropout after fc6 and fc7.
        fusion: "sum" (the paper) or "concat" (then a 1x1 conv maps the stacked scores to C).
    Returns: ASPP mapping [N, in_channels, h, w] to scores [N, C, h, w].
    """
    branches = [AtrousClassifierBranch(in_channels, num_classes, rate=r, hidden=hidden, dropout=dropout) for r in rates]
    project = None if fusion == "sum" else nn.Conv2d(len(branches) * num_classes, num_classes, 1)
    return ASPP(branches, fusion=fusion, project=project)


def deeplabv3_aspp(
    in_channels: int,
    *,
    out_channels: int = 256,
    rates: Sequence[int] = (6, 12, 18),
    image_pooling: bool = True,
    fusion: Fusion = "concat",
    extra_channels: int = 0,
) -> ASPP:
    """DeepLab v3's ASPP: 1x1 conv, one 3x3 atrous conv per rate, image pooling, then a 1x1 projection.

    Args:
        in_channels: channels of the deepest features.
        out_channels: width of every branch and of the projection (256 in the paper).
        rates: atrous rates of the 3x3 branches: (6, 12, 18) at output stride 16, (12, 24, 36) at 8.
        image_pooling: add the image-level branch (v3 sec. 3.3).
        fusion: "concat" (the paper) or "sum".
        extra_channels: channels of maps passed as ``extra`` to forward (concat only).
    Returns: ASPP mapping [N, in_channels, h, w] to [N, out_channels, h, w].
    """
    branches: list[nn.Module] = [conv_norm_act(in_channels, out_channels, 1)]
    branches += [conv_norm_act(in_channels, out_channels, 3, dilation=r) for r in rates]
    if image_pooling:
        branches.append(ImagePooling(in_channels, out_channels))
    fused = out_channels if fusion == "sum" else out_channels * len(branches) + extra_channels
    return ASPP(branches, fusion=fusion, project=conv_norm_act(fused, out_channels, 1))
