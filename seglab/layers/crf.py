"""Fully connected CRF with Gaussian edge potentials, mean-field inference in pure PyTorch.

Paper: "Efficient Inference in Fully Connected CRFs with Gaussian Edge Potentials", Krähenbühl and
Koltun (NIPS 2011, arXiv 1210.5644), used as DeepLab's post-processing ("Semantic Image Segmentation
with Deep Convolutional Nets and Fully Connected CRFs", arXiv 1412.7062, sec. 3.2).

Energy: unaries are the network's logits; the pairwise term between every two pixels i != j is
Potts compatibility times
    w1 exp(-|p_i - p_j|^2 / (2 theta_alpha^2) - |I_i - I_j|^2 / (2 theta_beta^2))   (appearance)
  + w2 exp(-|p_i - p_j|^2 / (2 theta_gamma^2))                                        (smoothness)
with p in pixels and I in RGB 0..255. A mean-field step is Q = softmax(logits + sum_m w_m k_m * Q),
the Potts penalty of the other labels being equivalent, up to a per-pixel constant, to a reward for
the same label. Like the authors' released code (densecrf 2.2, used by DeepLab), each kernel is
normalised per pixel by its total weight sum_j k(i, j) (``normalize=True``), so w1, w2 are on the
scale of the logits; unlike it, the pixel itself is left out (j != i) as in the paper's equations.

Approximation (the authors filter on a permutohedral lattice; pure PyTorch on a CPU needs another
shortcut), in ``DenseCRF``:
  * smoothness kernel: exact, a separable Gaussian convolution truncated at ``truncate`` * theta_gamma
    (zero padding, so border pixels have fewer neighbours, as in the dense sum);
  * appearance kernel: a two-resolution sum. Sources are grouped into ``grid`` x ``grid`` cells
    (summed Q, mean colour, mean position, pixel count); every pixel, at full resolution with its
    own colour and position, sums the kernel over the ``window`` x ``window`` cells around its cell.
    The sum is thus truncated to about +-(window // 2 + 1/2) * grid pixels (+-60 px by default, the
    kernel is 0.88 of its peak there for theta_alpha = 121) and pixels of one cell share its mean
    colour. Pixels in the own cell other than i are approximated by the cell mean. With grid=1 and a
    window covering the kernel support it equals the exact dense sum (tests/layers/test_crf.py).
A 360x480 image with 21 classes and the defaults takes about 4 s on 2 CPU threads
(benchmarks/bench_crf.py); the kernel weights take grid^2 * window^2 floats per cell (150 MB there).
``dense_crf_exact`` computes the same inference with the O(N^2) dense kernel matrices (small images).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seglab.errors import ConfigError, InputError

_EPS = 1e-20  # as densecrf: a pixel with no similar neighbour gets a zero message, not NaN


@dataclass(frozen=True)
class CRFParams:
    """Kernel weights and widths (pixels; RGB 0..255) and mean-field iterations.

    Defaults: DeepLab v1 sec. 4 fixes w2 = 3, theta_gamma = 3 and cross-validates w1, theta_alpha,
    theta_beta; w1 = 4, theta_alpha = 121, theta_beta = 5 and 10 iterations are the values shipped
    with DeepLab's public code for DeepLab-CRF-LargeFOV on VOC 2012 (bi_w, bi_xy_std, bi_rgb_std).
    """

    iterations: int = 10
    w_appearance: float = 4.0
    theta_alpha: float = 121.0
    theta_beta: float = 5.0
    w_smoothness: float = 3.0
    theta_gamma: float = 3.0
    normalize: bool = True


def mean_field(logits: Tensor, messages: Callable[[Tensor], Tensor], iterations: int) -> Tensor:
    """Q = softmax(logits + messages(Q)), ``iterations`` times from Q = softmax(logits); returns the energies."""
    energies = logits
    for _ in range(iterations):
        energies = logits + messages(energies.softmax(dim=1))
    return energies


class DenseCRF(nn.Module):
    """Approximate fully connected CRF inference (see the module docstring for the approximation).

    Args:
        params: kernel weights, widths and iterations.
        grid: cell size (pixels) of the appearance kernel's sources; 1 = every pixel.
        window: cells (odd) per side summed around each pixel's cell.
        truncate: smoothness kernel radius in units of theta_gamma.

    Forward:
        logits: [N, C, H, W] unary scores (e.g. a network's logits at the image resolution).
        image: [N, 3, H, W] float RGB in 0..255.
        Returns [N, C, H, W] refined logits; their softmax is the mean-field marginal Q.
    """

    def __init__(
        self, params: CRFParams | None = None, *, grid: int = 8, window: int = 15, truncate: float = 4.0
    ) -> None:
        super().__init__()
        if grid < 1 or window < 1 or window % 2 == 0:
            raise ConfigError(f"DenseCRF: grid must be >= 1 and window odd, got grid={grid}, window={window}")
        self.params = params or CRFParams()
        self.grid, self.window, self.truncate = grid, window, truncate

    @torch.no_grad()
    def forward(self, logits: Tensor, image: Tensor) -> Tensor:
        check_crf_inputs(logits, image)
        p = self.params
        appearance = GridBilateral(
            image, p.theta_alpha, p.theta_beta, grid=self.grid, window=self.window, normalize=p.normalize
        )
        smoothness = SeparableGaussian(
            image.shape[-2:], p.theta_gamma, truncate=self.truncate, normalize=p.normalize, device=logits.device
        )

        def messages(q: Tensor) -> Tensor:
            return p.w_appearance * appearance(q) + p.w_smoothness * smoothness(q)

        return mean_field(logits.float(), messages, p.iterations).to(logits.dtype)


class SeparableGaussian:
    """Sum_{j != i} exp(-|p_i - p_j|^2 / (2 theta^2)) q_j by a separable convolution (optionally normalised)."""

    def __init__(
        self, size: torch.Size, theta: float, *, truncate: float, normalize: bool, device: torch.device | None = None
    ) -> None:
        radius = max(1, math.ceil(truncate * theta))
        taps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
        self.kernel = torch.exp(-(taps**2) / (2 * theta**2))
        self.radius = radius
        norm = self._filter(torch.ones(1, 1, *size, device=device)) - 1  # minus the pixel itself (weight 1)
        self.scale = 1 / (norm + _EPS) if normalize else None

    def _filter(self, x: Tensor) -> Tensor:
        c = x.shape[1]  # depthwise (groups=C): several times faster on a CPU than folding C into N
        x = F.conv2d(x, self.kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, self.radius), groups=c)
        return F.conv2d(x, self.kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(self.radius, 0), groups=c)

    def __call__(self, q: Tensor) -> Tensor:
        summed = self._filter(q) - q
        return summed if self.scale is None else summed * self.scale


class GridBilateral:
    """Appearance-kernel messages: full-resolution targets, ``grid``-cell sources over a ``window``.

    Built once per image (the kernel weights, [N, cells, grid^2, window^2], are kept for all
    iterations); calling it with Q [N, C, H, W] returns the message [N, C, H, W].
    """

    def __init__(
        self, image: Tensor, theta_alpha: float, theta_beta: float, *, grid: int, window: int, normalize: bool
    ) -> None:
        n, _, h, w = image.shape
        self.size, self.grid, self.window = (h, w), grid, window
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=torch.float32, device=image.device),
            torch.arange(w, dtype=torch.float32, device=image.device),
            indexing="ij",
        )
        position = torch.stack([ys, xs]).expand(n, 2, h, w) / theta_alpha
        features = torch.cat([position, image.float() / theta_beta], dim=1)  # [N, 5, H, W]
        count = self._cell_sum(torch.ones(n, 1, h, w, device=image.device))  # pixels per cell
        self.inv_count = 1 / count.clamp_min(1)
        cell_features = self._cell_mean(features)
        targets = self._by_cell(self._pad(features))  # [N, cells, grid^2, 5]
        sources = self._windows(cell_features)  # [N, cells, window^2, 5]
        source_count = self._windows(count)[..., 0]  # [N, cells, window^2], 0 outside the image
        dist2 = squared_distances(targets, sources)  # [N, cells, grid^2, window^2]
        # The pixel's own cell counts the others in it only (j != i): exact when grid = 1.
        source_count[..., window * window // 2] -= 1
        # Distances past 150 (a weight below 3e-33) are clamped: subnormal floats make exp several
        # times slower on a CPU, and the weights there are negligible anyway.
        self.weights = dist2.clamp_(max=150).mul_(-0.5).exp_().mul_(source_count[:, :, None, :])
        norm = self._from_cells(self.weights.sum(-1, keepdim=True))  # [N, 1, H, W]
        self.scale = 1 / (norm + _EPS) if normalize else None

    def __call__(self, q: Tensor) -> Tensor:
        n, c = q.shape[:2]
        sources = self._windows(self._cell_mean(q))  # [N, cells, K, C]; the pixel counts are in the weights
        cells, k = sources.shape[1:3]
        summed = torch.bmm(self.weights.view(n * cells, -1, k), sources.reshape(n * cells, k, c))
        summed = self._from_cells(summed.view(n, cells, -1, c))
        return summed if self.scale is None else summed * self.scale

    def _cell_sum(self, x: Tensor) -> Tensor:
        """[N, D, H, W] -> [N, D, Hc, Wc] sums over each cell (zero padding adds nothing)."""
        return F.avg_pool2d(self._pad(x), self.grid, divisor_override=1)

    def _cell_mean(self, x: Tensor) -> Tensor:
        return self._cell_sum(x) * self.inv_count

    def _pad(self, x: Tensor) -> Tensor:
        h, w = self.size
        return F.pad(x, (0, -w % self.grid, 0, -h % self.grid))

    def _by_cell(self, x: Tensor) -> Tensor:
        """[N, D, Hp, Wp] -> [N, cells, grid^2, D] (row-major cells, row-major pixels in a cell)."""
        n, d, hp, wp = x.shape
        g = self.grid
        x = x.view(n, d, hp // g, g, wp // g, g).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(n, (hp // g) * (wp // g), g * g, d)

    def _from_cells(self, x: Tensor) -> Tensor:
        """[N, cells, grid^2, D] -> [N, D, H, W] (inverse of ``_by_cell``, padding cropped)."""
        n, _, _, d = x.shape
        g, (h, w) = self.grid, self.size
        hc, wc = -(-h // g), -(-w // g)
        x = x.view(n, hc, wc, g, g, d).permute(0, 5, 1, 3, 2, 4).reshape(n, d, hc * g, wc * g)
        return x[..., :h, :w]

    def _windows(self, cells: Tensor) -> Tensor:
        """[N, D, Hc, Wc] -> [N, cells, window^2, D]: each cell's window of cells, zeros outside."""
        n, d, hc, wc = cells.shape
        r = self.window // 2
        # Channels last first, so the gather below copies runs of D contiguous values (F.unfold's
        # [N, D * K, cells] layout would need a transposing copy several times slower).
        padded = F.pad(cells, (r, r, r, r)).permute(0, 2, 3, 1).contiguous()
        windows = padded.unfold(1, self.window, 1).unfold(2, self.window, 1)  # [N, Hc, Wc, D, kh, kw]
        return windows.permute(0, 1, 2, 4, 5, 3).reshape(n, hc * wc, self.window**2, d)


def squared_distances(targets: Tensor, sources: Tensor) -> Tensor:
    """|t - s|^2 for targets [N, M, T, D] and sources [N, M, S, D] -> [N, M, T, S], by a batched matmul.

    Both are first centred on the middle source (the target's own cell), so |t|^2 + |s|^2 - 2 t.s
    loses little precision where the kernel is not negligible; it is exact for a one-pixel cell.
    """
    n, m, t, d = targets.shape
    centre = sources[:, :, sources.shape[2] // 2, None, :]
    targets, sources = (targets - centre).view(n * m, t, d), (sources - centre).view(n * m, -1, d)
    dist2 = torch.baddbmm(
        targets.square().sum(-1, keepdim=True) + sources.square().sum(-1)[:, None, :],
        targets,
        sources.transpose(1, 2),
        alpha=-2,
    )
    return dist2.clamp_min_(0).view(n, m, t, -1)


def dense_crf_exact(logits: Tensor, image: Tensor, params: CRFParams | None = None) -> Tensor:
    """Exact mean-field inference with the dense N x N kernel matrices; for small images only.

    Args and Returns as ``DenseCRF.forward``. Memory is O((H W)^2) per image.
    """
    check_crf_inputs(logits, image)
    p = params or CRFParams()
    h, w = logits.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    position = torch.stack([ys, xs], dim=-1).view(-1, 2).to(logits.device, torch.float64)
    refined = []
    for one_logits, one_image in zip(logits.double(), image.double()):
        pairwise = dense_pairwise(position, one_image.reshape(3, -1).T, p)
        refined.append(mean_field(one_logits[None], partial(_dense_messages, pairwise), p.iterations))
    return torch.cat(refined).to(logits.dtype)


def dense_pairwise(position: Tensor, colour: Tensor, p: CRFParams) -> Tensor:
    """[HW, HW] matrix w1 k_appearance + w2 k_smoothness, zero diagonal (j != i), rows normalised if asked.

    Args: position [HW, 2] pixels, colour [HW, 3] RGB 0..255.
    """
    spatial2, colour2 = torch.cdist(position, position) ** 2, torch.cdist(colour, colour) ** 2
    kernels = [
        (p.w_appearance, torch.exp(-spatial2 / (2 * p.theta_alpha**2) - colour2 / (2 * p.theta_beta**2))),
        (p.w_smoothness, torch.exp(-spatial2 / (2 * p.theta_gamma**2))),
    ]
    pairwise = torch.zeros_like(spatial2)
    for weight, kernel in kernels:
        kernel.fill_diagonal_(0)
        if p.normalize:
            kernel = kernel / (kernel.sum(1, keepdim=True) + _EPS)
        pairwise += weight * kernel
    return pairwise


def _dense_messages(pairwise: Tensor, q: Tensor) -> Tensor:
    """Messages sum_j pairwise[i, j] q_j for q [1, C, H, W]."""
    return (pairwise @ q.flatten(2)[0].T).T.reshape(q.shape)


def check_crf_inputs(logits: Tensor, image: Tensor) -> None:
    """Raise InputError unless logits [N, C, H, W] and image [N, 3, H, W] agree."""
    ok = logits.dim() == 4 and image.dim() == 4 and image.shape[1] == 3
    if not ok or logits.shape[0] != image.shape[0] or logits.shape[-2:] != image.shape[-2:]:
        raise InputError(
            f"DenseCRF: logits {list(logits.shape)} and image {list(image.shape)} must be [N, C, H, W] and "
            "[N, 3, H, W] of the same N, H, W (image RGB in 0..255)"
        )
