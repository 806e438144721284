"""Anchors: boxes of a few sizes and aspect ratios centred on every feature-map cell.

Faster R-CNN sec. 3.1.1; with FPN (Lin et al., arXiv 1612.03144, sec. 4.1) each level P2..P6 gets
one size (32, 64, 128, 256, 512 pixels) and three aspect ratios (1:2, 1:1, 2:1). An anchor of size
s and ratio r = h / w has w = s / sqrt(r), h = s sqrt(r); corners are rounded to whole pixels and
the anchor of cell (i, j) is centred on (j * stride, i * stride), as in torchvision and Detectron.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def cell_anchors(sizes: Sequence[float], ratios: Sequence[float]) -> Tensor:
    """Zero-centred anchors of one level: [len(ratios) * len(sizes), 4] XYXY, ratio-major.

    Args:
        sizes: anchor sides in pixels (sqrt of the area).
        ratios: aspect ratios h / w.
    """
    scales = torch.as_tensor(sizes, dtype=torch.float32)
    h_ratios = torch.as_tensor(ratios, dtype=torch.float32).sqrt()
    widths = (scales[None, :] / h_ratios[:, None]).reshape(-1)
    heights = (scales[None, :] * h_ratios[:, None]).reshape(-1)
    return (torch.stack([-widths, -heights, widths, heights], dim=1) / 2).round()


class AnchorGenerator(nn.Module):
    """Anchors of every level for a padded batch, cached per (grid, stride, device, dtype).

    Args:
        sizes: per level, the anchor sizes (FPN: ((32,), (64,), (128,), (256,), (512,))).
        ratios: per level, the aspect ratios h / w ((0.5, 1.0, 2.0) on every level).

    Forward: ``(grid_sizes, image_size)`` with grid_sizes the (h, w) of each level's feature map
    and image_size the padded batch (H, W) -> [sum_l h_l w_l A_l, 4] anchors, ordered level by
    level, then row, column and anchor (the order of the heads' flattened outputs).
    """

    def __init__(self, *, sizes: Sequence[Sequence[float]], ratios: Sequence[Sequence[float]]) -> None:
        super().__init__()
        if len(sizes) != len(ratios):
            raise ValueError(f"AnchorGenerator: {len(sizes)} levels of sizes but {len(ratios)} of ratios")
        self.sizes = tuple(tuple(s) for s in sizes)
        self.ratios = tuple(tuple(r) for r in ratios)
        self._cells = [cell_anchors(s, r) for s, r in zip(self.sizes, self.ratios)]
        self._cache: dict[tuple, Tensor] = {}

    @property
    def num_anchors(self) -> list[int]:
        """Anchors per location, per level."""
        return [len(s) * len(r) for s, r in zip(self.sizes, self.ratios)]

    def forward(self, grid_sizes: Sequence[tuple[int, int]], image_size: tuple[int, int], *,
                device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        if len(grid_sizes) != len(self._cells):
            raise ValueError(f"AnchorGenerator has {len(self._cells)} levels but got {len(grid_sizes)} feature maps")
        key = (tuple(map(tuple, grid_sizes)), tuple(image_size), device, dtype)
        if key not in self._cache:
            if len(self._cache) > 32:  # many image sizes (multi-scale training): keep memory bounded
                self._cache.clear()
            levels = [self._level(cells, size, image_size, device, dtype) for cells, size in zip(self._cells, grid_sizes)]
            self._cache[key] = torch.cat(levels)
        return self._cache[key]

    @staticmethod
    def _level(cells: Tensor, grid: tuple[int, int], image_size: tuple[int, int], device: torch.device | None,
               dtype: torch.dtype) -> Tensor:
        height, width = int(grid[0]), int(grid[1])
        stride_y, stride_x = int(image_size[0]) // height, int(image_size[1]) // width
        ys = torch.arange(height, device=device, dtype=torch.int32) * stride_y
        xs = torch.arange(width, device=device, dtype=torch.int32) * stride_x
        shift_y, shift_x = torch.meshgrid(ys, xs, indexing="ij")
        shifts = torch.stack([shift_x, shift_y, shift_x, shift_y], dim=-1).reshape(-1, 1, 4)
        return (shifts + cells.to(device=device, dtype=dtype)[None]).reshape(-1, 4).to(dtype)
