"""The Mask R-CNN mask head: a small FCN on 14x14 RoIAlign features predicting a 28x28 mask per class.

He, Gkioxari, Dollar, Girshick, "Mask R-CNN" (arXiv 1703.06870), sec. 3 and fig. 4 (right, FPN):
four 3x3 convs of 256 channels with ReLU, a 2x2 stride-2 deconvolution to 28x28 with ReLU, and a
1x1 conv to K masks; the loss is the per-pixel sigmoid binary cross-entropy of the ground-truth
class's mask only (no competition among classes), on positive RoIs. At test time the mask of the
predicted class is taken, its sigmoid resized to the box and thresholded at 0.5.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RoIMaskHead(nn.Module):
    """4 x (conv3x3 + ReLU) -> deconv 2x2 s2 + ReLU -> 1x1 conv to K + 1 mask logits (slot 0 unused).

    Args:
        in_channels: channels of the pooled features (256).
        num_classes: K + 1, background included.
        channels: width of the convs and the deconvolution (256).
        num_convs: 4 in the paper's FPN head.

    Forward: [R, C, 14, 14] -> mask logits [R, K + 1, 28, 28].
    """

    def __init__(self, in_channels: int, *, num_classes: int, channels: int = 256, num_convs: int = 4) -> None:
        super().__init__()
        convs: list[nn.Module] = []
        for i in range(num_convs):
            convs += [nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*convs)
        self.deconv = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.relu = nn.ReLU(inplace=True)
        self.logits = nn.Conv2d(channels, num_classes, 1)
        for layer in (*self.convs, self.deconv):  # MSRA init (Detectron: MSRAFill)
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(layer.bias)
        nn.init.normal_(self.logits.weight, std=0.001)  # Detectron's mask predictor: GaussianFill 0.001
        nn.init.zeros_(self.logits.bias)

    def forward(self, pooled: Tensor) -> Tensor:
        # Channels-last: oneDNN runs these small-map convs ~1.5x faster on CPU (measured on
        # [100, 256, 14, 14]; benchmarks/bench_mask_rcnn.py); results equal NCHW's to float rounding.
        pooled = pooled.contiguous(memory_format=torch.channels_last)
        return self.logits(self.relu(self.deconv(self.convs(pooled))))


def mask_probabilities(mask_logits: Tensor, labels: Tensor) -> Tensor:
    """Sigmoid of each RoI's mask for its label: [R, K + 1, M, M], [R] -> [R, M, M]."""
    return mask_logits[torch.arange(labels.shape[0], device=labels.device), labels].sigmoid()
