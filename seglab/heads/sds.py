"""The boxes of SDS's figure 1 after the proposals: two AlexNet pathways, the region classifier, and the
figure-ground refinement (Hariharan et al., arXiv 1407.1808, sec. 3.2 - 4).

- ``AlexNetPathway``: conv1 .. pool5, fc6, fc7 of AlexNet on a warped 227 x 227 crop (sec. 3.2); the
  paper's networks are R-CNN's CaffeNet, here torchvision's AlexNet (or a narrow copy of its layers);
- ``TwoPathwayNet``: the box pathway on the box crop and the region pathway on the same crop with the
  background (outside the region) at the mean, fc7 of both concatenated (sec. 3.2, network C);
- ``FigureGround``: the 10 x 10 grid of per-category figure-ground classifiers on the box pathway's
  pool5 features and the region's own 10 x 10 mask, then a per-category logistic combination of that
  coarse mask with the region (sec. 4; the authors' ``refinement/train_refiner.m``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import alexnet

from seglab.backbones.weights import load_pretrained
from seglab.errors import ConfigError

ALEXNET_WIDTHS = (64, 192, 384, 256, 256)  # torchvision's AlexNet conv1..conv5 (CaffeNet: 96, 256, 384, 384, 256)
FC_CHANNELS = 4096  # fc6, fc7 (sec. 3.2)
POOL5_SIZE = 6  # pool5 is 6 x 6 for a 227-px crop; the adaptive pool keeps it 6 x 6 for CPU crops


def expand_boxes(boxes: Tensor, context: float) -> Tensor:
    """Boxes [P, 4] grown by ``context`` times their width (height) on each side."""
    wh = (boxes[:, 2:] - boxes[:, :2]) * context
    return torch.cat([boxes[:, :2] - wh, boxes[:, 2:] + wh], dim=1)


def narrow_alexnet_features(widths: Sequence[int]) -> nn.Sequential:
    """torchvision's ``AlexNet.features`` layer for layer, with other conv widths (CPU variants)."""
    w1, w2, w3, w4, w5 = widths
    return nn.Sequential(
        nn.Conv2d(3, w1, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(w1, w2, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(w2, w3, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(w3, w4, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(w4, w5, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
    )


class AlexNetPathway(nn.Module):
    """AlexNet up to fc7: crops [R, 3, S, S] (normalised) -> (pool5 [R, C5, 6, 6], fc7 [R, fc_channels]).

    Args:
        widths: conv1..conv5 channels; torchvision's (64, 192, 384, 256, 256) use ``torchvision.models.alexnet``.
        fc_channels: fc6 and fc7 width (4096).
        dropout: before fc6 and fc7 (AlexNet's 0.5).
        pretrained: a local torchvision AlexNet state dict (ImageNet), only for torchvision's widths.
    """

    def __init__(self, *, widths: Sequence[int] = ALEXNET_WIDTHS, fc_channels: int = FC_CHANNELS,
                 dropout: float = 0.5, pretrained: str | Path | None = None) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if widths == ALEXNET_WIDTHS and fc_channels == FC_CHANNELS:
            net = alexnet(weights=None, dropout=dropout)
            if pretrained is not None:
                load_pretrained(net, pretrained)
            self.features, self.fc = net.features, net.classifier[:6]  # fc8 (1000 ImageNet classes) dropped
        else:
            if pretrained is not None:
                raise ConfigError(f"sds: pretrained_backbone needs torchvision's AlexNet widths {ALEXNET_WIDTHS} "
                                  f"and fc_channels {FC_CHANNELS}, got {widths} and {fc_channels}")
            self.features = narrow_alexnet_features(widths)
            self.fc = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(widths[-1] * POOL5_SIZE**2, fc_channels), nn.ReLU(inplace=True),
                nn.Dropout(dropout), nn.Linear(fc_channels, fc_channels), nn.ReLU(inplace=True),
            )
        self.pool = nn.AdaptiveAvgPool2d(POOL5_SIZE)
        self.pool5_channels, self.fc_channels = widths[-1], fc_channels

    def forward(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        pool5 = self.pool(self.features(crops))
        return pool5, self.fc(pool5.flatten(1))


class TwoPathwayNet(nn.Module):
    """Network C of sec. 3.2: box pathway on the box crop, region pathway on the masked crop, fc7s concatenated.

    ``forward(box_crops, region_crops)``: both [R, 3, S, S] normalised -> (box pool5 [R, C5, 6, 6],
    features [R, 2 * fc_channels]).
    """

    def __init__(self, *, box: AlexNetPathway, region: AlexNetPathway) -> None:
        super().__init__()
        self.box, self.region = box, region
        self.out_channels = box.fc_channels + region.fc_channels

    def forward(self, box_crops: Tensor, region_crops: Tensor) -> tuple[Tensor, Tensor]:
        pool5, box_fc7 = self.box(box_crops)
        _, region_fc7 = self.region(region_crops)
        return pool5, torch.cat([box_fc7, region_fc7], dim=1)


def masked_crops(box_crops: Tensor, region_crops: Tensor) -> Tensor:
    """The region pathway's input: the box crop where the region is (>= 0.5), the mean (0 after
    normalisation) elsewhere (sec. 3.2: the region's background is set to the mean).

    box_crops: [R, 3, S, S] normalised; region_crops: [R, S, S] the region's mask warped like the crop.
    """
    return box_crops * (region_crops >= 0.5)[:, None].to(box_crops.dtype)


class FigureGround(nn.Module):
    """Sec. 4: per category, a grid x grid logistic figure-ground classifier on the box pool5 features and the
    region's grid x grid mask, then a logistic combination (per category) of that coarse mask with the region.

    Args:
        in_channels: C5 * 6 * 6 of the box pathway's pool5; num_categories: C (background excluded).
        grid: the grid side (10, sec. 4).
    """

    def __init__(self, *, in_channels: int, num_categories: int, grid: int = 10) -> None:
        super().__init__()
        self.grid, self.num_categories = grid, num_categories
        self.cells = nn.Linear(in_channels + grid * grid, num_categories * grid * grid)
        # second stage, per category: [weight of the coarse mask, weight of the region, bias]
        # (train_refiner.m's ``spmodel``); starts as "the region, trimmed where the coarse mask is low"
        self.combine = nn.Parameter(torch.tensor([[4.0, 4.0, -4.0]]).repeat(num_categories, 1))

    def coarse_logits(self, pool5: Tensor, region_grid: Tensor, labels: Tensor) -> Tensor:
        """Coarse mask logits [R, grid, grid] for category ``labels`` [R] (1..C) of each region.

        pool5: [R, C5, 6, 6]; region_grid: [R, grid, grid] the region's mask in its (expanded) box.
        """
        features = torch.cat([pool5.flatten(1), region_grid.flatten(1)], dim=1)
        logits = self.cells(features).view(-1, self.num_categories, self.grid, self.grid)
        return logits[torch.arange(len(labels), device=labels.device), labels - 1]

    def combined_logits(self, coarse_probs: Tensor, regions: Tensor, labels: Tensor) -> Tensor:
        """Final mask logits [R, H, W]: coarse probabilities and region masks [R, H, W] at the same pixels."""
        w = self.combine[labels - 1][:, :, None, None]
        return w[:, 0] * coarse_probs + w[:, 1] * regions + w[:, 2]

    def losses(self, pool5: Tensor, region_grid: Tensor, labels: Tensor, region_pixels: Tensor, grid_target: Tensor,
               pixel_target: Tensor) -> Tensor:
        """Summed per-region BCE of both stages: the coarse logits against ``grid_target`` [R, g, g], and the
        combination of the coarse mask (detached: the stages train one after the other in the code), upsampled
        to m x m, with ``region_pixels`` [R, m, m] against ``pixel_target`` [R, m, m]."""
        coarse = self.coarse_logits(pool5, region_grid, labels)
        m = pixel_target.shape[-1]
        coarse_m = F.interpolate(coarse.detach().sigmoid()[:, None], size=(m, m), mode="bilinear",
                                 align_corners=False)[:, 0]
        combined = self.combined_logits(coarse_m, region_pixels, labels)
        return (F.binary_cross_entropy_with_logits(coarse, grid_target, reduction="none").mean((1, 2)).sum()
                + F.binary_cross_entropy_with_logits(combined, pixel_target, reduction="none").mean((1, 2)).sum())
