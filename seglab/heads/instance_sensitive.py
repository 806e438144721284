"""InstanceFCN's two fully convolutional branches and its instance assembling module.

Dai, He, Li, Ren, Sun, "Instance-sensitive Fully Convolutional Networks" (arXiv 1603.08678), sec. 3.3
(network architecture) and fig. 2, on top of conv5_3 (stride 8):

- instance branch: a 1x1 512-d conv + ReLU, then a 3x3 conv to k^2 instance-sensitive score maps,
  map i k + j scoring "this pixel is in cell (i, j) of a k x k grid on an instance" (sec. 3.1, k = 5);
- objectness branch: a 3x3 512-d conv + ReLU, then a 1x1 conv: one score per sliding window centred
  at each pixel (sec. 3.3; here ``num_outputs`` scores, see the model);
- assembling (sec. 3.1): an m x m window (m = 21 on the stride-8 map) is split into k x k cells; each
  m/k x m/k cell copies the values of the same sub-window of its own score map. Pixel (u, v) of the
  window reads map ``(u k // m) k + (v k // m)``: a constant [m, m] index table, applied by one gather
  on the score maps padded by the window's half-size. Nothing is learned and nothing is resampled,
  so the assembled logits are exactly the maps' values (``ps_roi_align`` cannot do this: its output
  size must equal k).

The paper does not give an initialisation for the new layers; they start from N(0, 0.01) with zero
bias, Fast R-CNN's choice for added layers (sec. 2.3 of arXiv 1504.08083).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# Logit of the window pixels that fall outside the score maps: sigmoid(-1e4) = 0, "no instance there"
# (finite, so the per-pixel logistic loss of such a pixel with target 0 is exactly 0, without NaNs).
OUTSIDE_LOGIT = -1.0e4


def assembling_table(k: int, m: int) -> Tensor:
    """The score map each pixel of an m x m window copies: [m, m] int64, entry (u, v) = (u k // m) k + (v k // m)."""
    cell = torch.arange(m) * k // m
    return cell[:, None] * k + cell[None, :]


def _init_normal(*convs: nn.Conv2d) -> None:
    for conv in convs:
        nn.init.normal_(conv.weight, std=0.01)
        nn.init.zeros_(conv.bias)


class InstanceSensitiveBranch(nn.Module):
    """1x1 conv (``channels``) + ReLU -> 3x3 conv -> k^2 instance-sensitive score maps (sec. 3.3).

    Args:
        in_channels: trunk channels (512 for conv5_3).
        k: cells per side of the relative-position grid (5, sec. 4.1).
        channels: the 1x1 conv's width (512 in the paper).
    Forward: features [N, C, H, W] -> score logits [N, k^2, H, W].
    """

    def __init__(self, in_channels: int, *, k: int = 5, channels: int = 512) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, channels, 1)
        self.scores = nn.Conv2d(channels, k * k, 3, padding=1)
        _init_normal(self.reduce, self.scores)

    def forward(self, features: Tensor) -> Tensor:
        return self.scores(torch.relu(self.reduce(features)))


class ObjectnessBranch(nn.Module):
    """3x3 conv (``channels``) + ReLU -> 1x1 conv -> ``num_outputs`` scores per window position (sec. 3.3).

    Args:
        in_channels: trunk channels.
        num_outputs: scores per position (1 in the paper: a logistic objectness).
        channels: the 3x3 conv's width (512 in the paper).
    Forward: features [N, C, H, W] -> logits [N, num_outputs, H, W]; position (r, c) scores the window
    centred there.
    """

    def __init__(self, in_channels: int, *, num_outputs: int, channels: int = 512) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.scores = nn.Conv2d(channels, num_outputs, 1)
        _init_normal(self.conv, self.scores)

    def forward(self, features: Tensor) -> Tensor:
        return self.scores(torch.relu(self.conv(features)))


class InstanceAssembler(nn.Module):
    """Assemble m x m instance logits of chosen windows from k^2 score maps (sec. 3.1, fig. 2).

    The window of position (r, c) covers the map cells r - m // 2 .. r - m // 2 + m - 1 (and the same
    for columns), so for odd m it is centred on (r, c). Window pixels outside the maps read
    ``OUTSIDE_LOGIT``.

    Args:
        k: grid cells per side (k^2 maps).
        m: window side in map cells (21 in the paper).
    Forward:
        score_maps: [N, k^2, H, W] logits.
        images, rows, cols: [R] int64 image index and window position of each window.
        Returns [R, m, m] logits; pixel (u, v) of window (n, r, c) is
        ``score_maps[n, table[u, v], r - m // 2 + u, c - m // 2 + v]``.
    """

    def __init__(self, *, k: int, m: int) -> None:
        super().__init__()
        self.k, self.m = k, m
        self.register_buffer("table", assembling_table(k, m), persistent=False)

    def forward(self, score_maps: Tensor, images: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        m, before = self.m, self.m // 2
        padded = nn.functional.pad(score_maps, (before, m - 1 - before, before, m - 1 - before), value=OUTSIDE_LOGIT)
        offsets = torch.arange(m, device=score_maps.device)
        y = rows[:, None, None] + offsets[None, :, None]  # padded coordinates: r - m // 2 + u + m // 2
        x = cols[:, None, None] + offsets[None, None, :]
        return padded[images[:, None, None], self.table[None], y, x]

    def extra_repr(self) -> str:
        return f"k={self.k}, m={self.m}"
