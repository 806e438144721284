"""Fully connected CRF with Gaussian edge potentials, mean-field inference in pure PyTorch.

Paper: "Efficient Inference in Fully Connected CRFs with Gaussian Edge Potentials", Krähenbühl and
Koltun (NIPS 2011, arXiv 1210.5644), used as DeepLab's post-processing ("Semantic Image Segmentation
with Deep Convolutional Nets and Fully Connected CRFs", arXiv 1412.7062, sec. 3.2).

Energy: unaries are the network's logits; the pairwise term between pixels i and j is Potts
compatibility times
    w1 k1(i, j) = w1 exp(-|p_i - p_j|^2 / (2 theta_alpha^2) - |I_i - I_j|^2 / (2 theta_beta^2))  (appearance)
  + w2 k2(i, j) = w2 exp(-|p_i - p_j|^2 / (2 theta_gamma^2))                                     (smoothness)
with p = (x, y) in pixels and I in RGB 0..255. A mean-field step is Q = softmax(logits + sum_m w_m
K_m Q): the Potts penalty of the other labels equals, up to a per-pixel constant, a reward for the
same label. The conventions are those of densecrf 2.2 as pydensecrf(2) calls it by default
(``addPairwiseGaussian`` / ``addPairwiseBilateral`` with ``NORMALIZE_SYMMETRIC``, ``inference``),
the code DeepLab's CRF comes from: the sums include the pixel itself (j = i), and with
``normalize=True`` each kernel is normalised symmetrically, K -> D^-1/2 K D^-1/2 with
D = diag(K 1), so w1, w2 are on the scale of the logits.

Approximation: ``DenseCRF`` filters with the permutohedral lattice (Adams et al. 2010,
seglab.layers.permutohedral), on features (x, y) / theta_gamma and (x, y) / theta_alpha,
(r, g, b) / theta_beta in densecrf's order. The lattice is built as densecrf builds it, so for the
same image and logits DenseCRF reproduces pydensecrf2 up to float rounding; against the exact
Gaussian sums (``dense_crf_exact``, O(N^2), small images) the lattice is an approximation: after
the symmetric normalisation its error is small (bounds in tests/layers/test_crf.py), without it the
lattice's sum is only roughly proportional to the Gaussian sum (0.3 to 0.9 times it, depending on d
and how densely the features fill space), as in densecrf's NO_NORMALIZATION.

Measured with benchmarks/bench_crf.py (360x480, 21 classes, 10 iterations; the synthetic input and
5 CamVid val frames with corrupted ground-truth logits; AMD EPYC with AVX-512, 2 cores shared with
other jobs, torch 2.14.1, pydensecrf2 1.1; medians of 5 interleaved runs): with 2 threads DenseCRF
takes 0.40-0.43 s per image against pydensecrf2's 0.63-0.72 s (ratio 0.60-0.64 over two runs),
with 1 thread 0.60 s against 0.57 s; the argmax labels were identical on every pixel of all 6 inputs
(0 of 1,036,800 differ). The lattice is built per image (about 0.15 s of that with 2 threads).
With one of the two cores held by another busy process, 2-thread torch runs slowed to about 2x
pydensecrf2 (OpenMP threads spin waiting for each other); OMP_WAIT_POLICY=PASSIVE brought them back
to about 1.05x.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from seglab.errors import InputError
from seglab.layers.permutohedral import LatticeFilter, PermutohedralLattice

_EPS = 1e-20  # as densecrf: a kernel sum of 0 gives a zero message, not NaN


@dataclass(frozen=True)
class CRFParams:
    """Kernel weights and widths (pixels; RGB 0..255) and mean-field iterations.

    Defaults: DeepLab v1 sec. 4 fixes w2 = 3, theta_gamma = 3 and cross-validates w1, theta_alpha,
    theta_beta; w1 = 4, theta_alpha = 121, theta_beta = 5 and 10 iterations are the values shipped
    with DeepLab's public code for DeepLab-CRF-LargeFOV on VOC 2012 (bi_w, bi_xy_std, bi_rgb_std).
    ``normalize``: densecrf's NORMALIZE_SYMMETRIC (True, its default) or NO_NORMALIZATION.
    """

    iterations: int = 10
    w_appearance: float = 4.0
    theta_alpha: float = 121.0
    theta_beta: float = 5.0
    w_smoothness: float = 3.0
    theta_gamma: float = 3.0
    normalize: bool = True


def mean_field(logits: Tensor, messages: Callable[[Tensor], Tensor], iterations: int) -> Tensor:
    """Q = softmax(logits + messages(Q)) over dim 1, ``iterations`` times from softmax(logits); returns the energies."""
    energies = logits
    for _ in range(iterations):
        energies = logits + messages(energies.softmax(dim=1))
    return energies


class DenseCRF(nn.Module):
    """Fully connected CRF inference with permutohedral-lattice filtering (see the module docstring).

    Args:
        params: kernel weights, widths and iterations.

    Forward:
        logits: [N, C, H, W] unary scores (e.g. a network's logits at the image resolution).
        image: [N, 3, H, W] float RGB in 0..255.
        Returns [N, C, H, W] refined logits; their softmax is the mean-field marginal Q.
    """

    def __init__(self, params: CRFParams | None = None) -> None:
        super().__init__()
        self.params = params or CRFParams()

    @torch.no_grad()
    def forward(self, logits: Tensor, image: Tensor) -> Tensor:
        check_crf_inputs(logits, image)
        refined = [self._refine(one_logits, one_image) for one_logits, one_image in zip(logits.float(), image)]
        return torch.stack(refined).to(logits.dtype)

    def _refine(self, logits: Tensor, image: Tensor) -> Tensor:
        """[C, H, W] logits and [3, H, W] image -> [C, H, W] refined logits, pixels as rows [HW, C] inside."""
        c, h, w = logits.shape
        messages = lattice_messages(image, self.params)
        unary = logits.reshape(c, h * w).T.contiguous()
        refined = unary if messages is None else mean_field(unary, messages, self.params.iterations)
        return refined.T.reshape(c, h, w)


def kernel_features(image: Tensor, params: CRFParams) -> list[tuple[float, Tensor]]:
    """[(weight, features [HW, d])] of the kernels with a nonzero weight, densecrf's feature order.

    Smoothness: (x, y) / theta_gamma; appearance: (x / theta_alpha, y / theta_alpha, r / theta_beta,
    g / theta_beta, b / theta_beta), pixels in row-major order.
    """
    _, h, w = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=image.device),
        torch.arange(w, dtype=torch.float32, device=image.device),
        indexing="ij",
    )
    position = torch.stack([xs.flatten(), ys.flatten()], dim=1)  # [HW, 2], x first as densecrf
    colour = image.float().reshape(3, -1).T
    kernels = [
        (params.w_smoothness, position / params.theta_gamma),
        (params.w_appearance, torch.cat([position / params.theta_alpha, colour / params.theta_beta], dim=1)),
    ]
    return [(weight, features) for weight, features in kernels if weight != 0]


def lattice_messages(image: Tensor, params: CRFParams) -> LatticeFilter | None:
    """The message function q [HW, C] -> sum_m w_m K_m q for one image [3, H, W]; None if all w_m = 0.

    Both kernels' lattices are stacked into one ``LatticeFilter``; the symmetric normalisation
    D^-1/2 K D^-1/2 and the weights are folded into its splat and slice weights.
    """
    kernels = kernel_features(image, params)
    if not kernels:
        return None
    lattices = LatticeFilter([PermutohedralLattice(features) for _, features in kernels])
    weights = torch.tensor([weight for weight, _ in kernels], device=image.device)
    if not params.normalize:
        return lattices.scaled(post=weights.expand(lattices.num_points, -1))
    ones = torch.ones(lattices.num_points, 1, device=image.device)
    scale = 1 / torch.sqrt(lattices.each(ones)[..., 0] + _EPS)  # [HW, kernels], densecrf's norm_
    return lattices.scaled(pre=scale, post=scale * weights)


def dense_crf_exact(logits: Tensor, image: Tensor, params: CRFParams | None = None) -> Tensor:
    """Mean-field inference with the exact dense N x N kernel matrices; for small images only.

    Args and Returns as ``DenseCRF.forward``. Memory is O((H W)^2) per image, float64.
    """
    check_crf_inputs(logits, image)
    p = params or CRFParams()
    refined = []
    for one_logits, one_image in zip(logits.double(), image):
        pairwise = dense_pairwise(one_image, p)
        refined.append(mean_field(one_logits[None], partial(_dense_messages, pairwise), p.iterations))
    return torch.cat(refined).to(logits.dtype)


def dense_pairwise(image: Tensor, p: CRFParams) -> Tensor:
    """[HW, HW] float64 matrix sum_m w_m K_m, diagonal included, each K_m normalised if asked.

    Args: image [3, H, W] RGB 0..255.
    """
    pairwise = None
    for weight, features in kernel_features(image, p):
        features = features.double()
        kernel = torch.exp(-0.5 * torch.cdist(features, features) ** 2)
        if p.normalize:
            scale = 1 / torch.sqrt(kernel.sum(1) + _EPS)
            kernel = scale[:, None] * kernel * scale[None, :]
        pairwise = weight * kernel if pairwise is None else pairwise + weight * kernel
    n = image.shape[1] * image.shape[2]
    return pairwise if pairwise is not None else torch.zeros(n, n, dtype=torch.float64, device=image.device)


def _dense_messages(pairwise: Tensor, q: Tensor) -> Tensor:
    """Messages sum_j pairwise[i, j] q_j for q [1, C, H, W]."""
    return (pairwise @ q.flatten(2)[0].T).T.reshape(q.shape)


def check_crf_inputs(logits: Tensor, image: Tensor) -> None:
    """Raise InputError unless logits [N, C, H, W] and image [N, 3, H, W] agree and the image is finite."""
    ok = logits.dim() == 4 and image.dim() == 4 and image.shape[1] == 3 and logits.numel() > 0
    if not ok or logits.shape[0] != image.shape[0] or logits.shape[-2:] != image.shape[-2:]:
        raise InputError(
            f"DenseCRF: logits {list(logits.shape)} and image {list(image.shape)} must be [N, C, H, W] and "
            "[N, 3, H, W] of the same N, H, W, none of them 0 (image RGB in 0..255)"
        )
    if image.is_floating_point() and not torch.isfinite(image).all():
        raise InputError("DenseCRF: image has NaN or infinite values; expected RGB in 0..255")
