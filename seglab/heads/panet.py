"""PANet's RoI heads: a per-level first layer fused by max (adaptive feature pooling), and the mask
head's fully-connected fusion.

Liu et al., "Path Aggregation Network for Instance Segmentation" (arXiv 1803.01534). Box head (sec.
3.2, the authors' ``roi_Xconv1fc_gn_head_panet``): each level's 7x7 RoI features go through their own
3x3 conv 256 + GN + ReLU, an element-wise max fuses the levels, then 3 more such convs and one fc
1024 + ReLU (Detectron's FAST_RCNN.NUM_STACKED_CONVS 4, CONV_HEAD_DIM 256, MLP_HEAD_DIM 1024) before
the Fast R-CNN predictors. Mask head (sec. 3.3, fig. 4, ``mask_rcnn_fcn_head_v1upXconvs_gn_adp_ff``):
per-level conv1 + max, conv2, conv3; the FCN path conv4, 2x2 deconv to 28x28 and a 1x1 conv to a
mask per class; the fc path from conv3: conv4_fc, conv5_fc (half the channels), fc to 28 x 28 = 784
(with a ReLU, as the code has it), reshaped and added to every class's mask logits (class-agnostic).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seglab.heads.roi_box import RoIBoxHead


def conv_gn_relu(in_channels: int, out_channels: int, *, groups: int = 32) -> nn.Sequential:
    """3x3 conv (no bias) + GroupNorm + ReLU, MSRA init (Detectron's MSRAFill)."""
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(conv, nn.GroupNorm(math.gcd(groups, out_channels), out_channels), nn.ReLU(inplace=True))


def fuse_levels(first_layers: nn.ModuleList, pooled: list[Tensor]) -> Tensor:
    """Each level's own first layer, then the element-wise max across levels (sec. 3.2)."""
    if len(pooled) != len(first_layers):
        raise ValueError(f"{len(pooled)} pooled levels for {len(first_layers)} per-level layers")
    fused = first_layers[0](pooled[0])
    for layer, x in zip(first_layers[1:], pooled[1:]):
        fused = torch.maximum(fused, layer(x))
    return fused


class AdaptiveBoxHead(nn.Module):
    """Per-level conv -> max -> 3 convs -> fc 1024 -> (class logits, class-specific deltas).

    Args:
        in_channels: channels of the pooled features (256).
        num_levels: pyramid levels pooled (4: N2..N5).
        num_classes: K + 1, background included.
        channels, num_convs, hidden, pool_size: 256, 4 (the first one per level), 1024, 7.
    """

    def __init__(self, in_channels: int, *, num_levels: int, num_classes: int, channels: int = 256,
                 num_convs: int = 4, hidden: int = 1024, pool_size: int = 7) -> None:
        super().__init__()
        self.first = nn.ModuleList(conv_gn_relu(in_channels, channels) for _ in range(num_levels))
        self.convs = nn.Sequential(*(conv_gn_relu(channels, channels) for _ in range(num_convs - 1)))
        self.fc = nn.Linear(channels * pool_size * pool_size, hidden)
        nn.init.xavier_uniform_(self.fc.weight)  # Detectron's XavierFill
        nn.init.zeros_(self.fc.bias)
        predictors = RoIBoxHead(in_channels, pool_size=1, hidden=hidden, num_classes=num_classes)
        self.cls_score, self.bbox_pred = predictors.cls_score, predictors.bbox_pred  # Fast R-CNN's, sec. 2.3 init

    def forward(self, pooled: list[Tensor]) -> tuple[Tensor, Tensor]:
        x = self.convs(fuse_levels(self.first, pooled))
        x = torch.relu(self.fc(x.flatten(1)))
        return self.cls_score(x), self.bbox_pred(x)


class FusedMaskHead(nn.Module):
    """Per-level conv1 -> max -> conv2, conv3 -> (FCN: conv4, deconv, 1x1 per class) + (fc: 784, every class).

    Args:
        in_channels: channels of the pooled features (256).
        num_levels: pyramid levels pooled (4).
        num_classes: K + 1, background included (slot 0 unused, as Mask R-CNN's head).
        channels: width of the convs (256); conv5_fc has half.
        pool_size: side of the pooled features (14); masks are twice that (28).

    Forward: list of [R, C, 14, 14] -> mask logits [R, K + 1, 28, 28].
    """

    def __init__(self, in_channels: int, *, num_levels: int, num_classes: int, channels: int = 256,
                 pool_size: int = 14) -> None:
        super().__init__()
        self.first = nn.ModuleList(conv_gn_relu(in_channels, channels) for _ in range(num_levels))
        self.convs = nn.Sequential(conv_gn_relu(channels, channels), conv_gn_relu(channels, channels))
        self.conv4 = conv_gn_relu(channels, channels)
        self.deconv = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.logits = nn.Conv2d(channels, num_classes, 1)
        self.conv4_fc = conv_gn_relu(channels, channels)
        self.conv5_fc = conv_gn_relu(channels, channels // 2)
        self.mask_size = 2 * pool_size
        self.fc = nn.Linear(channels // 2 * pool_size * pool_size, self.mask_size ** 2)
        nn.init.kaiming_normal_(self.deconv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.deconv.bias)
        nn.init.kaiming_normal_(self.logits.weight, mode="fan_out", nonlinearity="relu")  # MRCNN.CONV_INIT MSRAFill
        nn.init.zeros_(self.logits.bias)
        nn.init.normal_(self.fc.weight, std=0.01)  # the authors' init of the fc
        nn.init.zeros_(self.fc.bias)

    def forward(self, pooled: list[Tensor]) -> Tensor:
        x = self.convs(fuse_levels(self.first, pooled))
        per_class = self.logits(torch.relu(self.deconv(self.conv4(x))))
        agnostic = torch.relu(self.fc(self.conv5_fc(self.conv4_fc(x)).flatten(1)))
        return per_class + agnostic.view(-1, 1, self.mask_size, self.mask_size)
