"""DeepMask's branches: the low-rank mask embedding, the mask predictor and the objectness MLP.

Pinheiro, Collobert, Dollar, "Learning to Segment Object Candidates", NIPS 2015 (arXiv 1506.06204),
sec. 3.1 and fig. 1, on the trunk's C x f x f features of one patch (512 x 14 x 14 for 224 px):

- mask branch: a 1x1 conv (512) + ReLU, then a fully connected layer to 512 with no non-linearity
  between it and the next ("low-rank": it factorises the 512 * 14 * 14 -> 56 * 56 map), then a
  fully connected layer to the 56 x 56 mask (``LowRankEmbedding`` then ``MaskPredictor``);
- score branch: 2x2 max-pooling, fully connected 512 + ReLU, 1024 + ReLU, 1 (``ScoreBranch``).

The authors' later code (facebookresearch/deepmask ``DeepMask.lua``) shares the embedding: the same
1x1 conv (1024 -> 128) + ReLU + linear 128 * 10 * 10 -> 512 feeds the mask predictor and a score MLP
(dropout .5, 1024 + ReLU, dropout .5, 1), which ``ScoreBranch(pool=False)`` builds on [N, 512, 1, 1].

Every fully connected layer also runs densely (``dense``): at full-image inference the network
slides over the trunk's map with a stride of one cell (16 px, sec. 3.3), so the first layer becomes
a conv whose kernel is its weight reshaped to [out, C, f, f] (the 2x2 max-pool then has stride 1
and the kernel is dilated by 2, which gives each window exactly its patch-mode value).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _linear_as_conv(x: Tensor, linear: nn.Linear, *, kernel: int, dilation: int = 1) -> Tensor:
    """Apply ``linear`` (over a flattened [C, kernel, kernel] input) at every position of ``x`` [N, C, H, W]."""
    weight = linear.weight.view(linear.out_features, -1, kernel, kernel)
    return F.conv2d(x, weight, linear.bias, dilation=dilation)


class LowRankEmbedding(nn.Module):
    """1x1 conv + ReLU, then a linear layer without non-linearity: C x f x f -> ``dim`` (sec. 3.1).

    Args:
        in_channels: trunk channels (512 for VGG-A).
        fsize: f, the trunk's map side for one patch (14 for 224 px at stride 16).
        channels: the 1x1 conv's width (512 in the paper, 128 in the authors' ResNet-50 code).
        dim: the low-rank width (512).
    Forward: features [N, C, f, f] -> [N, dim]; ``dense``: [N, C, H, W] -> [N, dim, H - f + 1, W - f + 1].
    """

    def __init__(self, in_channels: int, *, fsize: int, channels: int = 512, dim: int = 512) -> None:
        super().__init__()
        self.fsize = fsize
        self.reduce = nn.Conv2d(in_channels, channels, 1)
        self.linear = nn.Linear(channels * fsize * fsize, dim)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(torch.relu(self.reduce(features)).flatten(1))

    def dense(self, features: Tensor) -> Tensor:
        return _linear_as_conv(torch.relu(self.reduce(features)), self.linear, kernel=self.fsize)


class MaskPredictor(nn.Module):
    """Linear ``dim`` -> o x o mask logits (o = 56, sec. 3.1). Forward: [N, dim] -> [N, o, o]."""

    def __init__(self, dim: int = 512, *, out_size: int = 56) -> None:
        super().__init__()
        self.out_size = out_size
        self.linear = nn.Linear(dim, out_size * out_size)

    def forward(self, embedding: Tensor) -> Tensor:
        return self.linear(embedding).view(-1, self.out_size, self.out_size)


class ScoreBranch(nn.Module):
    """Objectness logit of a patch: [2x2 max-pool], fully connected layers with ReLU, then 1 (sec. 3.1).

    Args:
        in_channels: channels of the input map (512 trunk channels; the embedding's dim when shared).
        fsize: side of the input map for one patch (14; 1 for the shared embedding as [N, dim, 1, 1]).
        pool: the paper's 2x2 max-pool first (fsize must then be even).
        hidden: widths of the hidden layers ((512, 1024) in the paper, (1024,) in the authors' code).
        dropout: before every linear layer (0: the paper states none; 0.5 in the authors' code).
    Forward: [N, C, f, f] -> [N] logits; ``dense``: [N, C, H, W] -> [N, H - f + 1, W - f + 1].
    """

    def __init__(self, in_channels: int, *, fsize: int, pool: bool = True, hidden: tuple[int, ...] = (512, 1024),
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.fsize, self.pool = fsize, pool
        side = fsize // 2 if pool else fsize
        widths = (in_channels * side * side, *hidden, 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: Tensor) -> Tensor:
        x = (F.max_pool2d(features, 2) if self.pool else features).flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(self.dropout(x))
            x = torch.relu(x) if i < len(self.layers) - 1 else x
        return x[:, 0]

    def dense(self, features: Tensor) -> Tensor:
        if self.pool:  # 2x2 pooling of every window = stride-1 pooling read at every other cell
            x = _linear_as_conv(F.max_pool2d(features, 2, stride=1), self.layers[0], kernel=self.fsize // 2,
                                dilation=2)
        else:
            x = _linear_as_conv(features, self.layers[0], kernel=self.fsize)
        for layer in self.layers[1:]:
            x = F.linear(torch.relu(x).movedim(1, -1), layer.weight, layer.bias).movedim(-1, 1)
        return x[:, 0]
