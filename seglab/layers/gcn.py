"""Global Convolutional Network (GCN) module and Boundary Refinement (BR) block.

Paper: "Large Kernel Matters -- Improve Semantic Segmentation by Global Convolutional Network",
Peng, Zhang, Yu, Luo, Sun (arXiv 1703.02719), sec. 3.2 and fig. 2(B), 2(C).
"""

from __future__ import annotations

from torch import Tensor, nn


class GlobalConvolution(nn.Module):
    """A k x k receptive field from two separable branches, (k x 1 then 1 x k) + (1 x k then k x 1).

    Sec. 3.2: a large kernel keeps classification dense and global; the symmetric separable form
    costs O(2k) instead of O(k^2) weights, and there is no nonlinearity after the convolutions.

    Args:
        in_channels: channels of the backbone level.
        out_channels: C, the class score channels (21 for PASCAL VOC).
        kernel_size: k (15 in the paper's final model, Table 1).
    Forward: [N, in_channels, h, w] -> [N, out_channels, h, w].
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int = 15) -> None:
        super().__init__()
        k, pad = kernel_size, kernel_size // 2
        self.left = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, (k, 1), padding=(pad, 0)),
            nn.Conv2d(out_channels, out_channels, (1, k), padding=(0, pad)),
        )
        self.right = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, (1, k), padding=(0, pad)),
            nn.Conv2d(out_channels, out_channels, (k, 1), padding=(pad, 0)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.left(x) + self.right(x)


class BoundaryRefinement(nn.Module):
    """Residual refinement of a score map: x + conv3x3(relu(conv3x3(x))) (fig. 2(C)).

    Sec. 3.2: the residual branch models the boundary alignment, the identity carries the coarse
    score map.

    Args:
        channels: C (score map channels).
    Forward: [N, C, h, w] -> [N, C, h, w].
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))
