"""SwapAlign2Nat against a loop over the 16 corners of the authors' CUDA kernel, gradcheck, lambda = 1 shift."""

from __future__ import annotations

import math

import pytest
import torch

from seglab.errors import InputError
from seglab.layers.swap_align2nat import SwapAlign2Nat, swap_align2nat


def naive_swap_align2nat(x: torch.Tensor, lam: int, pad_val: float = -6.0) -> torch.Tensor:
    """The kernel's formula, one output element at a time (floor / ceil corners, pad_val outside)."""
    n, channels, height, width = x.shape
    side = math.isqrt(channels)
    v_out = u_out = lam * side
    h_out, w_out = math.ceil(height / lam), math.ceil(width / lam)
    grid = x.reshape(n, side, side, height, width)

    def read(b: int, v: int, u: int, y: int, c: int) -> float:
        inside = 0 <= v < side and 0 <= u < side and 0 <= y < height and 0 <= c < width
        return float(grid[b, v, u, y, c]) if inside else pad_val

    def corners(coord: float) -> list[tuple[int, float]]:
        low, high = math.floor(coord), math.ceil(coord)
        return [(low, 1 - (coord - low)), (high, coord - low)]

    out = torch.empty(n, v_out, u_out, h_out, w_out, dtype=x.dtype)
    for b in range(n):
        for v in range(v_out):
            for u in range(u_out):
                for y in range(h_out):
                    for c in range(w_out):
                        oy = y * lam + v - v_out / 2 + 0.5
                        ox = c * lam + u - u_out / 2 + 0.5
                        ov, ou = (v + 0.5) / lam - 0.5, (u + 0.5) / lam - 0.5
                        out[b, v, u, y, c] = sum(
                            wy * wx * wv * wu * read(b, iv, iu, iy, ix)
                            for iy, wy in corners(oy) for ix, wx in corners(ox)
                            for iv, wv in corners(ov) for iu, wu in corners(ou)
                        )
    return out.reshape(n, v_out * u_out, h_out, w_out)


@pytest.mark.parametrize(("lam", "side", "height", "width"),
                         [(1, 3, 5, 7), (1, 2, 4, 3), (2, 3, 5, 7), (2, 2, 6, 5), (3, 1, 7, 4), (4, 3, 9, 5)])
def test_equals_the_kernel_formula(lam: int, side: int, height: int, width: int) -> None:
    x = torch.randn(2, side * side, height, width, dtype=torch.float64, generator=torch.Generator().manual_seed(lam))
    got = swap_align2nat(x, lam, pad_val=-6.0)
    assert got.shape == (2, (lam * side) ** 2, math.ceil(height / lam), math.ceil(width / lam))
    torch.testing.assert_close(got, naive_swap_align2nat(x, lam), rtol=0, atol=1e-12)


def test_pad_val_is_read_outside_the_tensor() -> None:
    x = torch.zeros(1, 4, 3, 3, dtype=torch.float64)
    assert torch.allclose(swap_align2nat(x, 2, pad_val=5.0), naive_swap_align2nat(x, 2, pad_val=5.0))
    assert swap_align2nat(x, 2, pad_val=5.0).max() > 0  # corners outside read 5, inside 0


@pytest.mark.parametrize("lam", [1, 2, 3])
def test_gradcheck_float64(lam: int) -> None:
    x = torch.randn(1, 4, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: swap_align2nat(t, lam), (x,))


def test_lambda_one_is_the_aligned_to_natural_shift() -> None:
    """lambda = 1, V = U = 3: natural cell (v, u) at (y, x) is the aligned plane (v, u) at (y + v - 1, x + u - 1)."""
    side, height, width, pad = 3, 6, 5, -6.0
    x = torch.randn(2, side * side, height, width)
    y = swap_align2nat(x, 1, pad).reshape(2, side, side, height, width)
    grid = x.reshape(2, side, side, height, width)
    for v in range(side):
        for u in range(side):
            dy, dx = v - side // 2, u - side // 2
            expected = torch.full((2, height, width), pad)
            ys, xs = slice(max(0, -dy), min(height, height - dy)), slice(max(0, -dx), min(width, width - dx))
            expected[:, ys, xs] = grid[:, v, u, ys.start + dy: ys.stop + dy, xs.start + dx: xs.stop + dx]
            assert torch.equal(y[:, v, u], expected), (v, u)


def test_output_size_and_module() -> None:
    layer = SwapAlign2Nat(4)
    assert "lambda_val=4" in repr(layer)
    assert layer(torch.randn(1, 121, 33, 32)).shape == (1, 44 * 44, 9, 8)  # TensorMask's 11x11 at level 2


def test_bad_input() -> None:
    with pytest.raises(InputError, match="square"):
        swap_align2nat(torch.randn(1, 5, 4, 4), 1)
    with pytest.raises(InputError, match="lambda_val"):
        swap_align2nat(torch.randn(1, 4, 4, 4), 0)
    with pytest.raises(InputError, match="lambda_val"):
        SwapAlign2Nat(1.5)
