"""GCN module and Boundary Refinement (Peng et al., arXiv 1703.02719, fig. 2(B), 2(C))."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seglab.layers.gcn import BoundaryRefinement, GlobalConvolution


def test_kernels_are_separable_k_by_1_and_1_by_k() -> None:
    gcn = GlobalConvolution(8, 3, kernel_size=15)
    assert gcn.left[0].weight.shape == (3, 8, 15, 1) and gcn.left[1].weight.shape == (3, 3, 1, 15)
    assert gcn.right[0].weight.shape == (3, 8, 1, 15) and gcn.right[1].weight.shape == (3, 3, 15, 1)
    assert not any(isinstance(m, torch.nn.ReLU) for m in gcn.modules())  # no nonlinearity (sec. 3.2)


def test_gcn_is_the_sum_of_its_two_branches() -> None:
    torch.manual_seed(0)
    gcn = GlobalConvolution(4, 3, kernel_size=5)
    x = torch.rand(2, 4, 9, 11)
    left = F.conv2d(F.conv2d(x, gcn.left[0].weight, gcn.left[0].bias, padding=(2, 0)),
                    gcn.left[1].weight, gcn.left[1].bias, padding=(0, 2))
    right = F.conv2d(F.conv2d(x, gcn.right[0].weight, gcn.right[0].bias, padding=(0, 2)),
                     gcn.right[1].weight, gcn.right[1].bias, padding=(2, 0))
    torch.testing.assert_close(gcn(x), left + right)


def test_gcn_without_biases_is_one_dense_k_by_k_convolution() -> None:
    torch.manual_seed(0)
    gcn = GlobalConvolution(4, 3, kernel_size=5)
    for conv in gcn.modules():
        if isinstance(conv, torch.nn.Conv2d):
            torch.nn.init.zeros_(conv.bias)
    # Outer products of the column and row kernels: a 5x5 kernel from 2 x 5 weights per pair.
    kernel = torch.einsum("cmx,miy->ciyx", gcn.left[1].weight[:, :, 0], gcn.left[0].weight[..., 0])
    kernel += torch.einsum("cmy,mix->ciyx", gcn.right[1].weight[..., 0], gcn.right[0].weight[:, :, 0])
    x = torch.rand(1, 4, 9, 11)
    torch.testing.assert_close(gcn(x), F.conv2d(x, kernel, padding=2), rtol=1e-5, atol=1e-5)


def test_boundary_refinement_is_residual() -> None:
    torch.manual_seed(0)
    br = BoundaryRefinement(3)
    x = torch.randn(2, 3, 7, 6)
    torch.testing.assert_close(br(x), x + br.conv2(torch.relu(br.conv1(x))))
    torch.nn.init.zeros_(br.conv2.weight)
    torch.nn.init.zeros_(br.conv2.bias)
    torch.testing.assert_close(br(x), x, rtol=0, atol=0)  # zero residual branch: identity
