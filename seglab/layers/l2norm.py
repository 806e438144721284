"""L2 normalisation across channels with a learnable per-channel scale (ParseNet).

Paper: "ParseNet: Looking Wider to See Better", Liu, Rabinovich, Berg (arXiv 1506.04579), sec. 3.3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class L2Norm(nn.Module):
    """y_i = gamma_i * x_i / ||x||_2, the norm taken over channels at each pixel (ParseNet eq. 2-3).

    Sec. 3.3: features of different layers differ in scale by orders of magnitude, so they are
    normalised before being combined; unit norm makes them too small to train, hence the scale
    gamma, one learnable value per channel.

    Args:
        channels: number of channels (length of gamma).
        scale: initial value of every gamma_i.
        eps: lower bound of the norm, so an all-zero pixel stays zero instead of NaN.
    Forward: [N, C, H, W] -> [N, C, H, W]; at initialisation every pixel's vector has norm ``scale``.
    """

    def __init__(self, channels: int, *, scale: float = 10.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, p=2.0, dim=1, eps=self.eps) * self.scale.view(1, -1, 1, 1)
