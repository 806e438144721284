"""Gaussian filtering on the permutohedral lattice, in pure PyTorch with precomputed sparse matrices.

Paper: "Fast High-Dimensional Filtering Using the Permutohedral Lattice", Adams, Baek and Davis
(Eurographics 2010). Each point's feature vector f (e.g. x, y, r, g, b divided by the kernel widths)
is lifted onto the plane sum(y) = 0 of R^{d+1} (the elevation E, sec. 3.1) and lies in one simplex
of the lattice A*_d. Its value is splatted onto the d + 1 vertices of that simplex with barycentric
weights, the lattice values are blurred with [1/2, 1, 1/2] along each of the d + 1 lattice
directions in turn, and the result is sliced back with the same weights (sec. 3.2-3.4). This
approximates sum_j exp(-|f_i - f_j|^2 / 2) v_j, the point itself included (accuracy: the tests in
tests/layers/test_crf.py compare it with the exact sum).

The construction follows densecrf 2.2 (Krähenbühl, ``src/permutohedral.cpp``, the filter behind
pydensecrf and DeepLab's CRF) float32 step by step: the elevation scale sqrt(2/3) (d + 1) /
sqrt((i + 1) (i + 2)), rounding half to even, the tie-breaking of the remainders' ranks, the
neighbour keys, the unnormalised blur from direction 0 to d and the slice factor
alpha = 1 / (1 + 2^-d). For the same float32 features the simplices and weights are densecrf's;
filtered values differ only by the order of float additions (about 1e-7 relative).

Instead of densecrf's hash table, vertex keys are encoded as int64 codes, sorted once, and the
neighbours are found with ``torch.searchsorted``. Splat, each blur step and slice are sparse
matrices stored by rows (``SparseRows``), so one filter call is d + 3 sparse-dense products over all
value channels together.
``LatticeFilter`` stacks several lattices on the same points (e.g. a CRF's two kernels) into one
such chain, with per-point scales folded into the splat and slice weights.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from seglab.errors import InputError


class PermutohedralLattice:
    """The lattice of N feature vectors: each point's d + 1 vertices and weights, each vertex's neighbours.

    Args:
        features: [N, d] float, each point's features already divided by the kernel widths (the
            kernel is exp(-|f_i - f_j|^2 / 2)), N, d >= 1.

    Attributes:
        vertex_ids: [N, d + 1] int64 in 0..M-1, the vertices of each point's simplex.
        weights: [N, d + 1] float32 barycentric weights (they sum to 1 per point).
        neighbours: [d + 1, 2, M] int64, per blur direction each vertex's two neighbours, -1 if absent.
        codes: [M] int64, the vertices' keys encoded by ``vertex_codes``, sorted (vertex v has codes[v]).
        splat_order: [N (d + 1)] int64, the flattened ``vertex_ids`` entries ordered by vertex id.
        alpha: densecrf's slice factor 1 / (1 + 2^-d).

    Calling the lattice filters values [N, C] -> [N, C] (``LatticeFilter`` does several at once).
    """

    def __init__(self, features: Tensor) -> None:
        if features.dim() != 2 or 0 in features.shape or not features.is_floating_point():
            raise InputError(
                f"PermutohedralLattice: features has shape {list(features.shape)} and dtype {features.dtype}; "
                "expected a float [N, d] tensor with N, d >= 1 (one row of scaled features per point)"
            )
        self.num_points, self.dim = features.shape
        rem0, rank, weights = simplex_vertices(features.float().T.contiguous())  # coordinate-major [d + 1, N]
        codes, strides = vertex_codes(rem0, rank)
        sorted_codes, self.splat_order = codes.T.flatten().sort()
        first = torch.ones_like(sorted_codes, dtype=torch.bool)
        first[1:] = sorted_codes[1:] != sorted_codes[:-1]
        self.codes = sorted_codes[first]
        self.num_vertices = self.codes.numel()
        ids_in_order = first.cumsum(0) - 1
        self.vertex_ids = torch.empty_like(ids_in_order).scatter_(0, self.splat_order, ids_in_order)
        self.vertex_ids = self.vertex_ids.view(self.num_points, self.dim + 1)
        self.weights = weights.T.contiguous()
        self.neighbours = blur_neighbours(self.codes, strides)
        self.alpha = 1.0 / (1.0 + 2.0 ** (-self.dim))

    def __call__(self, values: Tensor) -> Tensor:
        return LatticeFilter([self])(values)


class SparseRows:
    """A sparse matrix by rows: (A @ values)[r] = sum_k weights[k] values[indices[k]], offsets[r] <= k < offsets[r + 1].

    The product runs as ``F.embedding_bag`` (sum mode with per-sample weights), which PyTorch's CPU
    build vectorises (FBGEMM), about twice as fast here as a sparse CSR matmul.
    """

    def __init__(self, offsets: Tensor, indices: Tensor, weights: Tensor) -> None:
        self.offsets, self.indices, self.weights = offsets, indices, weights.float().contiguous()

    def __matmul__(self, values: Tensor) -> Tensor:
        return F.embedding_bag(
            self.indices, values, self.offsets, mode="sum", per_sample_weights=self.weights, include_last_offset=True
        )

    def rescaled(self, factors: Tensor) -> SparseRows:
        """The same pattern with every stored weight multiplied by ``factors`` [nnz]."""
        return SparseRows(self.offsets, self.indices, self.weights * factors)


class LatticeFilter:
    """sum_m post_m * K_m(pre_m * values) over lattices K_m on the same N points, as one splat-blur-slice chain.

    Args:
        lattices: L lattices of the same N points (their dimensions may differ; a lattice with fewer
            blur directions than the largest has no neighbours in the extra steps, the identity).

    Call: values [N, C] -> [N, C] float32, with the scales set by ``scaled`` (ones at first).
    """

    def __init__(self, lattices: Sequence[PermutohedralLattice]) -> None:
        if not lattices or any(lattice.num_points != lattices[0].num_points for lattice in lattices):
            raise InputError(
                f"LatticeFilter: got lattices on {[la.num_points for la in lattices]} points; expected one or "
                "more lattices of the same N points"
            )
        n = lattices[0].num_points
        offsets = [0]
        for lattice in lattices:
            offsets.append(offsets[-1] + lattice.num_vertices)
        self.num_points, self.num_lattices = n, len(lattices)
        self.splat, self._splat_scale_index = _stacked_splat(lattices)
        self.slice, self._slice_scale_index, each_offsets = _stacked_slice(lattices, offsets)
        self._each_slice = SparseRows(each_offsets, self.slice.indices, self.slice.weights)
        steps = max(lattice.dim for lattice in lattices) + 1
        self.blur = [_blur_step(lattices, offsets, step) for step in range(steps)]

    def __call__(self, values: Tensor) -> Tensor:
        return self.slice @ self._blurred_splat(values)

    def each(self, values: Tensor) -> Tensor:
        """[N, C] -> [N, L, C]: each lattice's filtered values apart (pre scales applied, post not)."""
        return (self._each_slice @ self._blurred_splat(values)).view(self.num_points, self.num_lattices, -1)

    def scaled(self, *, pre: Tensor | None = None, post: Tensor | None = None) -> LatticeFilter:
        """A copy whose lattice m splats pre[:, m] * values and slices post[:, m] times its result.

        Args: pre, post: [N, L] per-point, per-lattice scales, or None (ones). Scales compose.
        """
        out = copy.copy(self)
        if pre is not None:
            out.splat = self.splat.rescaled(self._lattice_major(pre)[self._splat_scale_index])
        if post is not None:
            out.slice = self.slice.rescaled(self._lattice_major(post)[self._slice_scale_index])
        return out

    def _blurred_splat(self, values: Tensor) -> Tensor:
        if values.dim() != 2 or values.shape[0] != self.num_points:
            raise InputError(
                f"LatticeFilter: values has shape {list(values.shape)}; expected [{self.num_points}, C], one row "
                "per point the lattices were built from"
            )
        lattice_values = self.splat @ values.float().contiguous()  # [M, C]
        for step in self.blur:  # v <- v + (v[n1] + v[n2]) / 2, one direction after the other (sec. 3.3)
            lattice_values = step @ lattice_values
        return lattice_values

    def _lattice_major(self, scale: Tensor) -> Tensor:
        """[N, L] -> [L N], checked."""
        if scale.shape != (self.num_points, self.num_lattices):
            raise InputError(
                f"LatticeFilter.scaled: a scale has shape {list(scale.shape)}; expected "
                f"[{self.num_points}, {self.num_lattices}] (points, lattices)"
            )
        return scale.float().T.reshape(-1)


def simplex_vertices(features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Each point's enclosing simplex and barycentric weights (Adams et al. sec. 3.1, densecrf's order).

    Args:
        features: [d, N] float32 scaled features, coordinate-major (each row one feature).

    Returns:
        rem0: [d + 1, N] float32, the simplex's remainder-0 vertex (coordinates multiples of d + 1);
        rank: [d + 1, N] int64, each coordinate's rank (a permutation of 0..d per point);
        weights: [d + 1, N] float32, the weight of vertex r = rem0 + canonical vertex r (see
        ``vertex_codes``).
    """
    d = features.shape[0]
    elevated = elevate(features)  # [d + 1, N]
    down = torch.tensor(1.0 / (d + 1), dtype=torch.float32, device=features.device)
    rounded = torch.round(elevated * down)  # the nearest remainder-0 point, half to even as SSE does
    rem0 = rounded * (d + 1)
    rank = remainder_rank(elevated - rem0) + rounded.sum(0).long()
    # Bring the point back onto the plane sum = 0: out-of-range ranks wrap round (densecrf).
    wrap = (d + 1) * ((rank < 0).long() - (rank > d).long())
    rank, rem0 = rank + wrap, rem0 + wrap
    # Barycentric weights (p. 10): u[k] is the scaled remainder of the coordinate of rank d - k.
    u = torch.zeros_like(elevated).scatter_(0, d - rank, (elevated - rem0) * down)
    weights = torch.empty_like(u)
    weights[1:] = u[1:] - u[:-1]
    weights[0] = u[0] + (1 - u[d])  # densecrf's wrap-around, in its order of operations
    return rem0, rank, weights


def elevate(features: Tensor) -> Tensor:
    """[d, N] -> [d + 1, N]: the lift E f onto the plane sum = 0, scaled as densecrf (its float32 steps)."""
    d = features.shape[0]
    # Expected standard deviation of the filter (Adams et al. p. 6) and the diagonal part of E (p. 5).
    inv_std_dev = float(torch.tensor(math.sqrt(2.0 / 3.0) * (d + 1), dtype=torch.float32))
    scale = torch.tensor([inv_std_dev / math.sqrt((i + 2) * (i + 1)) for i in range(d)], dtype=torch.float32)
    scaled = features * scale.to(features.device)[:, None]
    elevated = torch.empty(d + 1, features.shape[1], dtype=torch.float32, device=features.device)
    running = torch.zeros_like(scaled[0])
    for j in range(d, 0, -1):
        torch.sub(running, j * scaled[j - 1], out=elevated[j])
        running = running + scaled[j - 1]
    elevated[0] = running
    return elevated


def remainder_rank(remainder: Tensor) -> Tensor:
    """[k, N] -> [k, N] int64 ranks: for each pair i < j, rank[i] += 1 if rem_i < rem_j, else rank[j] += 1.

    That is densecrf's rule (a tie ranks the later coordinate higher).
    """
    k = remainder.shape[0]
    rank = torch.zeros(remainder.shape, dtype=torch.long, device=remainder.device)
    for i in range(k):
        for j in range(i + 1, k):
            less = remainder[i] < remainder[j]
            rank[i] += less
            rank[j] += ~less
    return rank


def vertex_codes(rem0: Tensor, rank: Tensor) -> tuple[Tensor, Tensor]:
    """int64 codes [d + 1, N] of each point's simplex vertices, and the strides [d] of the code.

    Vertex r has key_i = rem0_i + r - (d + 1) [rank_i > d - r] for the first d coordinates
    (densecrf's canonical simplex; the last coordinate is minus their sum). The code
    sum_i (key_i - low_i) stride_i is injective on a box that also holds every neighbour
    (each coordinate -+ 1 or +- d), and linear: a neighbour's code is the code plus a constant.
    """
    k, n = rank.shape
    d = k - 1
    stored = rem0[:d].long()
    low = stored.amin(1) - 2 * d  # keys lie within +-d of rem0, their neighbours within another d
    extent = stored.amax(1) + 2 * d - low + 1
    if math.prod(int(e) for e in extent) >= 2**62:
        raise InputError(
            f"PermutohedralLattice: the features span {extent.tolist()} lattice steps per dimension, too many "
            "to number in int64; use wider kernels (larger thetas) or fewer feature dimensions"
        )
    strides = torch.cumprod(torch.cat([extent.new_ones(1), extent[:-1]]), 0)
    base = ((stored - low[:, None]) * strides[:, None]).sum(0)
    # above[r] = sum of the strides of the coordinates ranked above d - r (the last coordinate has none).
    all_strides = torch.cat([strides, strides.new_zeros(1)])[:, None].expand(k, n)
    stride_of_rank = torch.zeros_like(rank).scatter_(0, rank, all_strides)
    above = torch.zeros_like(rank)
    above[1:] = stride_of_rank.flip(0).cumsum(0)[:d]
    r = torch.arange(k, device=rank.device)[:, None]
    return base + r * strides.sum() - (d + 1) * above, strides


def blur_neighbours(codes: Tensor, strides: Tensor) -> Tensor:
    """[d + 1, 2, M] ids of n1 = key - 1 + (d + 1) e_j and n2 = key + 1 - (d + 1) e_j, -1 if absent.

    Direction j moves every coordinate by -1 (n1) except coordinate j, which moves by +d; for j = d
    that is the implicit last coordinate. ``codes``: [M] sorted vertex codes.
    """
    all_ones = strides.sum()
    own = torch.cat([strides * (strides.numel() + 1), strides.new_zeros(1)])
    shifts = torch.stack([own - all_ones, all_ones - own], dim=1)  # [d + 1, 2]
    targets = codes + shifts[:, :, None]
    found = torch.searchsorted(codes, targets).clamp_(max=codes.numel() - 1)
    return torch.where(codes[found] == targets, found, -1)


def _stacked_splat(lattices: Sequence[PermutohedralLattice]) -> tuple[SparseRows, Tensor]:
    """Rows [M_total, N]: row v holds the weights of the points splatting onto vertex v.

    Also returns, per stored entry, m N + point (its lattice m), to fold per-point scales in.
    """
    n = lattices[0].num_points
    counts, points, weights, scale_index = [], [], [], []
    for m, lattice in enumerate(lattices):
        point = lattice.splat_order // (lattice.dim + 1)
        counts.append(torch.bincount(lattice.vertex_ids.flatten(), minlength=lattice.num_vertices))
        points.append(point)
        weights.append(lattice.weights.flatten()[lattice.splat_order])
        scale_index.append(point + m * n)
    rows = SparseRows(_offsets(torch.cat(counts)), torch.cat(points), torch.cat(weights))
    return rows, torch.cat(scale_index)


def _stacked_slice(
    lattices: Sequence[PermutohedralLattice], offsets: list[int]
) -> tuple[SparseRows, Tensor, Tensor]:
    """Rows [N, M_total]: row i holds alpha times the weights of point i's vertices, lattice by lattice.

    Also returns, per stored entry, m N + i (to fold scales in), and the offsets that split each row
    by lattice (rows [N L, M_total] with the same entries, for ``LatticeFilter.each``).
    """
    n, device = lattices[0].num_points, lattices[0].codes.device
    vertices = torch.cat([lattice.vertex_ids + offset for lattice, offset in zip(lattices, offsets)], dim=1)
    weights = torch.cat([lattice.weights * lattice.alpha for lattice in lattices], dim=1)
    sizes = torch.tensor([lattice.dim + 1 for lattice in lattices], device=device)
    lattice_of_column = torch.arange(len(lattices), device=device).repeat_interleave(sizes)
    scale_index = lattice_of_column[None, :] * n + torch.arange(n, device=device)[:, None]  # [N, K]
    rows = SparseRows(_offsets(sizes.sum().expand(n)), vertices.flatten(), weights.flatten())
    return rows, scale_index.flatten(), _offsets(sizes.repeat(n))


def _blur_step(lattices: Sequence[PermutohedralLattice], offsets: list[int], step: int) -> SparseRows:
    """Rows [M_total, M_total] of I + (N1 + N2) / 2 for blur direction ``step`` of every lattice.

    Every row stores three entries (the vertex, n1, n2); an absent neighbour is stored as the vertex
    itself with weight 0, which keeps the rows uniform and costs one multiply-add.
    """
    columns, weights = [], []
    for lattice, offset in zip(lattices, offsets):
        own = torch.arange(lattice.num_vertices, device=lattice.codes.device)
        if step <= lattice.dim:
            sides = lattice.neighbours[step]  # [2, M]
        else:  # a lower-dimensional lattice has no direction ``step``: the identity
            sides = torch.full((2, lattice.num_vertices), -1, device=own.device)
        present = sides >= 0
        columns.append(torch.cat([own[None], torch.where(present, sides, own)]).T + offset)
        weights.append(torch.cat([torch.ones_like(own[None], dtype=torch.float32), 0.5 * present]).T)
    columns, weights = torch.cat(columns), torch.cat(weights)  # [M_total, 3]
    offsets = torch.arange(0, columns.numel() + 1, 3, device=columns.device)
    return SparseRows(offsets, columns.flatten(), weights.flatten())


def _offsets(counts: Tensor) -> Tensor:
    """Row offsets [R + 1] (0, then the running sum) from the entries per row [R]."""
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])
