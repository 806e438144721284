"""The MultiPath network's second stage: foveal regions, skip pooling, per-region towers, integral heads.

Zagoruyko et al., "A MultiPath Network for Object Detection" (arXiv 1604.02135), fig. 1 and sec. 3, as
built by the authors' code (facebookresearch/multipathnet ``modules/Foveal.lua``, ``models/model_utils.lua``
``conv345Combine`` / ``integral``, ``models/multipathnet.lua``):

- the skip taps (``SkipTrunk``): VGG16's conv3_3 (1/4), conv4_3 (1/8), conv5_3 (1/16), read before pool3 and
  pool4, pool5 removed (multipathnet.lua's ``skip_features``);
- foveal regions (sec. 3.1): each proposal is seen at 1x, 1.5x, 2x and 4x its size, same centre;
- skip connections (sec. 3.2): region 1x pools 7x7 from conv3 (1/4), conv4 (1/8) and conv5 (1/16), regions
  1.5x and 2x from conv4 and conv5, region 4x from conv5 only; each pooled map is L2-normalised over its
  7 * 7 * C values (``nn.Normalize(2)`` on the flattened map, not ParseNet's per-pixel ``L2Norm``), the maps
  are concatenated, multiplied by 1000 and fused by a 1x1 conv to 512 channels;
- each region has its own fc6 / fc7 (4096, VGG16's classifier cloned, ReLU and dropout 0.5 after each);
- the class heads read the concatenated fc7s of the four regions; box regression reads an extra 1.5x region
  tower that pools conv3, conv4 and conv5 (``model_het``);
- integral loss (sec. 3.3): six class heads, head u trained with positives at IoU >= u, u = 0.50, 0.55 ..
  0.75 (``data.lua``: threshold 0.5 + (i - 1) / 20); at test time the mean of their six softmaxes.

Pooling is RoIPool (``torchvision.ops.roi_pool``, the code's ``inn.ROIPooling``); regions are not clipped to
the image (the code's neither: bins outside the features pool zeros).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_pool

from seglab.backbones import build_backbone
from seglab.errors import ConfigError
from seglab.heads.roi_box import BOX_STD, CLS_STD, gaussian_init

FOVEAL_SCALES = (1.0, 1.5, 2.0, 4.0)  # sec. 3.1; Foveal.lua
# The levels each region pools (conv345Combine(norm, useConv3 = i == 1, useConv4 = i <= 3)), sec. 3.2
REGION_LEVELS = (("conv5", "conv4", "conv3"), ("conv5", "conv4"), ("conv5", "conv4"), ("conv5",))
BOX_REGION = (1.5, ("conv5", "conv4", "conv3"))  # the "het" tower for box regression (multipathnet.lua)
INTEGRAL_THRESHOLDS = (0.50, 0.55, 0.60, 0.65, 0.70, 0.75)  # sec. 3.3; nDonkeys = 6, 0.5 + (i - 1) / 20
NORM_SCALE = 1000.0  # conv345Combine: nn.MulConstant(1000) after the normalised maps are joined
POOL_SIZE = 7  # RoIPool 7 x 7, as VGG16's fc6 expects
SKIP_STRIDES = {"conv3": 4, "conv4": 8, "conv5": 16}  # conv3_3, conv4_3, conv5_3 of VGG16 (sec. 3.2)
RESNET_TAPS = {"conv3": "c2", "conv4": "c3", "conv5": "c4"}  # the ResNet stages at the same strides


class SkipTrunk(nn.Module):
    """A backbone read at conv3 (1/4), conv4 (1/8) and conv5 (1/16): VGG16 before pool3 / pool4 and
    without pool5 (multipathnet.lua's taps), or a ResNet's res2 / res3 / res4 (res5 cut).

    Forward: [N, 3, H, W] normalised -> {"conv3", "conv4", "conv5"}; ``channels`` and ``strides`` describe them.
    """

    def __init__(self, backbone: str, pretrained: str | Path | None = None) -> None:
        super().__init__()
        self.is_vgg = backbone.startswith("vgg")
        if not (self.is_vgg or backbone.startswith("resnet")):
            raise ConfigError(f"multipath: backbone {backbone!r}; expected vgg16 (the paper's) or a ResNet "
                              "(resnet18 for CPU)")
        self.body = build_backbone(backbone, output_stride=16, pretrained=pretrained)
        specs = self.body.feature_specs
        if self.is_vgg:  # the inputs of pool3 and pool4, and conv5_3 (pool5 is an identity at stride 16)
            self.pools = [i for i, layer in enumerate(self.body.features) if isinstance(layer, nn.MaxPool2d)][2:4]
            self.channels = {"conv3": specs["c3"].channels, "conv4": specs["c4"].channels,
                             "conv5": specs["c5"].channels}
        else:
            self.body.layer4 = nn.Identity()  # res5 is not read
            self.channels = {name: specs[level].channels for name, level in RESNET_TAPS.items()}
        self.strides = dict(SKIP_STRIDES)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        if not self.is_vgg:
            levels = self.body(images)
            return {name: levels[level] for name, level in RESNET_TAPS.items()}
        taps, x = [], images
        for index, layer in enumerate(self.body.features):
            if index in self.pools:
                taps.append(x)
            x = layer(x)
        return {"conv3": taps[0], "conv4": taps[1], "conv5": x}


def foveal_boxes(boxes: Tensor, scale: float) -> Tensor:
    """Boxes [R, 4] XYXY -> the same boxes grown ``scale`` times about their centre (Foveal.lua)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) * (scale / 2)
    return torch.cat([centre - half, centre + half], dim=1)


class SkipFusion(nn.Module):
    """Pooled maps of several levels -> each L2-normalised over 7 * 7 * C, concatenated, x1000, 1x1 conv.

    Args:
        in_channels: channels of each pooled level, in order; out_channels: of the 1x1 conv (512).

    Forward: list of [R, C_l, 7, 7] -> [R, out_channels, 7, 7].
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 512) -> None:
        super().__init__()
        self.mix = nn.Conv2d(sum(in_channels), out_channels, kernel_size=1)

    def forward(self, pooled: Sequence[Tensor]) -> Tensor:
        normalised = [F.normalize(p.flatten(1), dim=1).view_as(p) for p in pooled]
        return self.mix(torch.cat(normalised, dim=1) * NORM_SCALE)


class FovealRegion(nn.Module):
    """One region of every proposal: grow the box, RoIPool each level, fuse, then the region's fc6 / fc7.

    Args:
        scale: the region's size relative to the proposal (1, 1.5, 2, 4).
        levels: the trunk levels it pools; channels, strides: of every trunk level.
        fuse_channels: the 1x1 conv's width (512); hidden: fc6 / fc7 width (4096); dropout: after each (0.5).

    Forward: ({level: [N, C, H/s, W/s]}, rois [R, 5] (image index, XYXY in input pixels)) -> [R, hidden].
    """

    def __init__(self, scale: float, levels: Sequence[str], *, channels: Mapping[str, int],
                 strides: Mapping[str, int], fuse_channels: int = 512, hidden: int = 4096,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.scale, self.levels = float(scale), tuple(levels)
        self.strides = {level: int(strides[level]) for level in self.levels}
        self.in_channels = [int(channels[level]) for level in self.levels]
        self.fusion = SkipFusion(self.in_channels, fuse_channels)
        self.tower = nn.Sequential(
            nn.Linear(fuse_channels * POOL_SIZE * POOL_SIZE, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
        )

    def forward(self, features: Mapping[str, Tensor], rois: Tensor) -> Tensor:
        regions = torch.cat([rois[:, :1], foveal_boxes(rois[:, 1:], self.scale)], dim=1)
        pooled = [roi_pool(features[level], regions, POOL_SIZE, 1.0 / self.strides[level]) for level in self.levels]
        return self.towers(pooled)

    def towers(self, pooled: Sequence[Tensor]) -> Tensor:
        """Pooled maps of this region's levels -> its fc7 [R, hidden]."""
        return self.tower(self.fusion(pooled).flatten(1))


class MultiPathHead(nn.Module):
    """Four foveal regions -> six integral class heads on their fc7s; a 1.5x tower -> class-specific boxes.

    Args:
        channels, strides: of the trunk levels "conv3", "conv4", "conv5".
        num_classes: K + 1, background included.
        fuse_channels, hidden, dropout: of every region (512, 4096, 0.5).
        thresholds: the IoU of each integral head (0.50 .. 0.75).

    Forward: (features, rois [R, 5]) -> (class_logits [T, R, K + 1], one per head; deltas [R, 4 (K + 1)]).
    """

    def __init__(self, *, channels: Mapping[str, int], strides: Mapping[str, int], num_classes: int,
                 fuse_channels: int = 512, hidden: int = 4096, dropout: float = 0.5,
                 thresholds: Sequence[float] = INTEGRAL_THRESHOLDS) -> None:
        super().__init__()
        def region(scale: float, levels: Sequence[str]) -> FovealRegion:
            return FovealRegion(scale, levels, channels=channels, strides=strides, fuse_channels=fuse_channels,
                                hidden=hidden, dropout=dropout)

        self.thresholds = tuple(float(t) for t in thresholds)
        self.regions = nn.ModuleList(region(s, levels) for s, levels in zip(FOVEAL_SCALES, REGION_LEVELS))
        self.box_region = region(*BOX_REGION)
        self.cls_scores = nn.ModuleList(gaussian_init(nn.Linear(len(self.regions) * hidden, num_classes), CLS_STD)
                                        for _ in self.thresholds)
        self.bbox_pred = gaussian_init(nn.Linear(hidden, 4 * num_classes), BOX_STD)

    def forward(self, features: Mapping[str, Tensor], rois: Tensor) -> tuple[Tensor, Tensor]:
        fc7 = torch.cat([region(features, rois) for region in self.regions], dim=1)
        return self.predict(fc7, self.box_region(features, rois))

    def predict(self, fc7: Tensor, box_fc7: Tensor) -> tuple[Tensor, Tensor]:
        """Concatenated region fc7s [R, 4 hidden] and the box tower's [R, hidden] -> (class_logits, deltas)."""
        return torch.stack([head(fc7) for head in self.cls_scores]), self.bbox_pred(box_fc7)

    def cost(self, count: int, like: Tensor) -> None:
        """The layers of ``count`` RoIs on features like ``like`` (pooling not run), for counting FLOPs."""
        def fc7(region: FovealRegion) -> Tensor:
            return region.towers([like.new_empty(count, c, POOL_SIZE, POOL_SIZE) for c in region.in_channels])

        self.predict(torch.cat([fc7(region) for region in self.regions], dim=1), fc7(self.box_region))


def integral_labels(labels: Tensor, ious: Tensor, thresholds: Sequence[float]) -> Tensor:
    """Each head's label of each RoI: its class where its IoU with that ground truth is >= the head's u.

    Args:
        labels: [R] int64, the class of the matched ground truth (0 = background at the lowest threshold).
        ious: [R] float, the IoU of each RoI with its matched ground truth.
        thresholds: the T heads' IoU (0.50 .. 0.75).

    Returns:
        [T, R] int64: row t is ``labels`` where ``ious >= thresholds[t]``, else 0 (background).
    """
    u = torch.tensor(thresholds, dtype=ious.dtype, device=ious.device)[:, None]
    return torch.where((ious[None] >= u) & (labels[None] > 0), labels[None], torch.zeros_like(labels)[None])


def integral_scores(class_logits: Tensor) -> Tensor:
    """Test-time class probabilities: [T, R, K + 1] logits of the T heads -> [R, K + 1] mean of their softmaxes."""
    return class_logits.softmax(dim=-1).mean(dim=0)
