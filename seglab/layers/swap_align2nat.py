"""SwapAlign2Nat: TensorMask's aligned -> natural mask representation, with the unit lengths swapped.

Chen, Girshick, He, Dollar, "TensorMask: A Foundation for Dense Object Segmentation" (arXiv 1903.12174),
sec. 3 (natural and aligned representations). A 4D mask tensor (V, U, H, W) holds a V x U mask at
every sliding-window location (y, x). In the natural form, cell (v, u) at (y, x) is the mask of the
window centred at (y, x) at pixel (y + v - V/2, x + u - U/2); in the aligned form, it is the value at
pixel (y, x) itself of the window centred at (y - v + V/2, x - u + U/2). The bipyramid
predicts aligned masks at a fine (H, W) unit and coarse (V, U) unit; ``swap_align2nat`` turns them into
natural masks whose (H, W) unit is lambda times coarser and whose (V, U) unit is lambda times finer.

What it computes (the authors' CUDA kernel, detectron2 ``projects/TensorMask/tensormask/layers/csrc/
SwapAlign2Nat/SwapAlign2Nat_cuda.cu``): for X [N, Vin Uin, Hin, Win] with Vin = Uin and an integer
lambda >= 1, Y [N, Vout Uout, Hout, Wout] with Vout = lambda Vin, Hout = ceil(Hin / lambda) and

    Y[n, v Uout + u, y, x] = X(n, (v + 0.5) / lambda - 0.5, (u + 0.5) / lambda - 0.5,
                               y lambda + v - Vout / 2 + 0.5, x lambda + u - Uout / 2 + 0.5)

where X(., v', u', y', x') is the 4-linear interpolation of X at those (mask, mask, row, column)
coordinates and each of its 16 corners outside the tensor reads ``pad_val`` (-6: sigmoid(-6) ~ 0, no
mask outside). lambda = 1 with odd V is a pure shift of every (v, u) plane by (v - (V-1)/2, u - (U-1)/2).

Pure PyTorch, no compiled kernel: the (v, y) pair of axes and the (u, x) pair are interpolated one
pair at a time (4 corners, then 4 corners), which equals the 16-corner sum exactly because each
pair's corner weights add up to 1 (so a corner that is outside in one pair reads ``pad_val`` whatever
the other pair does). Corners outside the tensor get weight 0 and the missing weight is given to
``pad_val``, instead of padding a copy of X (which would need Vout / 2 cells of padding on each side).
Autograd gives the backward (the kernel's atomicAdd scatter).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seglab.errors import InputError

PAD_VAL = -6.0  # SwapAlign2Nat's default pad_val: sigmoid(-6) = 0.0025, "no mask" outside the tensor


def _linear_corners(coords: Tensor, size: int) -> list[tuple[Tensor, Tensor]]:
    """The two corners of a linear interpolation at ``coords`` on an axis of ``size``: (index, weight).

    Indices are clamped into the axis and the weight of a corner outside it is 0.
    """
    low = coords.floor()
    frac = coords - low
    corners = []
    for index, weight in ((low, 1 - frac), (low + 1, frac)):
        inside = (index >= 0) & (index < size)
        corners.append((index.clamp(0, size - 1).long(), weight * inside))
    return corners


def _plane_corners(side: int, size: int, lam: int) -> tuple[list[tuple[Tensor, Tensor, Tensor]], Tensor]:
    """The 4 corners of one (mask axis, spatial axis) pair, e.g. (v, y): [(mask_idx, space_idx, weight)].

    All tensors are [lam * side, ceil(size / lam)] (output mask index, output position), float64
    weights; also returned is the weight left to ``pad_val`` (1 - the weight of the corners inside).
    """
    out_side, out_size = lam * side, math.ceil(size / lam)
    mask_out = torch.arange(out_side, dtype=torch.float64)[:, None]
    space_out = torch.arange(out_size, dtype=torch.float64)[None, :]
    mask_in = (mask_out + 0.5) / lam - 0.5  # [Vout, 1]
    space_in = space_out * lam + mask_out - out_side / 2 + 0.5  # [Vout, Hout]
    corners, inside = [], torch.zeros(out_side, out_size, dtype=torch.float64)
    for mask_idx, mask_w in _linear_corners(mask_in, side):
        for space_idx, space_w in _linear_corners(space_in, size):
            weight = mask_w * space_w
            corners.append((mask_idx.expand_as(space_idx), space_idx, weight))
            inside = inside + weight
    return corners, 1 - inside


def swap_align2nat(x: Tensor, lambda_val: int, pad_val: float = PAD_VAL) -> Tensor:
    """Aligned masks at a fine spatial unit -> natural masks at a lambda-times coarser one.

    Args:
        x: [N, V * U, H, W] float, V = U (aligned mask logits on the fine grid).
        lambda_val: integer ratio >= 1 of the (V, U) unit to the (H, W) unit of ``x``.
        pad_val: value read outside the tensor (a logit; -6 ~ probability 0).

    Returns:
        [N, (lambda V) * (lambda U), ceil(H / lambda), ceil(W / lambda)], same dtype and device.
    """
    if x.dim() != 4:
        raise InputError(f"swap_align2nat: x has shape {list(x.shape)}; expected [N, V * U, H, W]")
    if not isinstance(lambda_val, int) or lambda_val < 1:
        raise InputError(f"swap_align2nat: lambda_val is {lambda_val!r}; expected an integer >= 1")
    n, channels, height, width = x.shape
    side = math.isqrt(channels)
    if side * side != channels:
        raise InputError(f"swap_align2nat: x has {channels} channels; expected a square V * U with V = U")
    grid = x.reshape(n, side, side, height, width)
    rows, rows_pad = _plane_corners(side, height, lambda_val)  # the (v, y) pair
    cols, cols_pad = _plane_corners(side, width, lambda_val)  # the (u, x) pair

    def cast(t: Tensor) -> Tensor:
        return t.to(device=x.device, dtype=x.dtype if t.is_floating_point() else torch.long)

    # (v, y): grid[:, v_in, :, y_in, :] gathers to [Vout, Hout, N, U, W]
    half = sum(cast(w)[..., None, None, None] * grid[:, cast(v), :, cast(y), :] for v, y, w in rows)
    half = half + pad_val * cast(rows_pad)[..., None, None, None]
    # (u, x): half[..., u_in, x_in] gathers to [Vout, Hout, N, Uout, Wout]
    out = sum(cast(w) * half[:, :, :, cast(u), cast(c)] for u, c, w in cols) + pad_val * cast(cols_pad)
    v_out, h_out, _, u_out, w_out = out.shape
    return out.permute(2, 0, 3, 1, 4).reshape(n, v_out * u_out, h_out, w_out)


class SwapAlign2Nat(nn.Module):
    """``swap_align2nat`` as a module (the bipyramid's level-l mask conversion uses lambda = 2^l).

    Args:
        lambda_val: integer >= 1.
        pad_val: value read outside the tensor (-6).
    """

    def __init__(self, lambda_val: int, pad_val: float = PAD_VAL) -> None:
        super().__init__()
        if not isinstance(lambda_val, int) or lambda_val < 1:
            raise InputError(f"SwapAlign2Nat: lambda_val is {lambda_val!r}; expected an integer >= 1")
        self.lambda_val, self.pad_val = lambda_val, pad_val

    def forward(self, x: Tensor) -> Tensor:
        return swap_align2nat(x, self.lambda_val, self.pad_val)

    def extra_repr(self) -> str:
        return f"lambda_val={self.lambda_val}, pad_val={self.pad_val}"
