"""Fully connected CRF: the permutohedral lattice against exact Gaussian sums, DenseCRF against exact inference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seglab.errors import InputError
from seglab.layers.crf import CRFParams, DenseCRF, dense_crf_exact, kernel_features
from seglab.layers.permutohedral import LatticeFilter, PermutohedralLattice, elevate, simplex_vertices


def two_region_image(h: int = 24, w: int = 24) -> torch.Tensor:
    """[1, 3, h, w] RGB 0..255: a dark left half, a bright right half and a green square."""
    gen = torch.Generator().manual_seed(0)
    image = torch.full((1, 3, h, w), 30.0)
    image[..., w // 2 :] = 200.0
    image[:, 1, h // 4 : h // 2, 2:8] = 140.0
    return image + 4 * torch.rand(image.shape, generator=gen)  # a little sensor noise


def noisy_logits(h: int = 24, w: int = 24, flips: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits favouring label 0 left, 1 right, with ``flips`` isolated pixels voting the other way."""
    gen = torch.Generator().manual_seed(1)
    labels = torch.zeros(h, w, dtype=torch.long)
    labels[:, w // 2 :] = 1
    noisy = labels.clone()
    for y, x in zip(torch.randint(2, h - 2, (flips,), generator=gen), torch.randint(2, w - 2, (flips,), generator=gen)):
        noisy[y, x] = 1 - labels[y, x]
    logits = F.one_hot(noisy, 2).permute(2, 0, 1)[None].float() * 1.5
    return logits + 0.3 * torch.randn(logits.shape, generator=gen), labels


def exact_gaussian(features: torch.Tensor) -> torch.Tensor:
    """[N, N] float64 exp(-|f_i - f_j|^2 / 2), diagonal included."""
    features = features.double()
    return torch.exp(-0.5 * torch.cdist(features, features) ** 2)


# --- the lattice ------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 5])
def test_barycentric_weights_rebuild_the_elevated_point(d: int) -> None:
    # Adams et al. sec. 3.1: the d + 1 vertices enclose the lifted point, weights >= 0 summing to 1.
    features = 6 * torch.rand(d, 500, generator=torch.Generator().manual_seed(d))
    rem0, rank, weights = simplex_vertices(features)
    r = torch.arange(d + 1)[:, None, None]  # vertex r = rem0 + (r, ..., r) - (d + 1) where rank > d - r
    vertices = rem0[None] + r - (d + 1) * (rank[None] > d - r)  # [d + 1 vertices, d + 1 coords, N]
    assert (weights > -1e-6).all()
    torch.testing.assert_close(weights.sum(0), torch.ones(500), atol=1e-5, rtol=0)
    torch.testing.assert_close((weights[:, None] * vertices).sum(0), elevate(features), atol=2e-4, rtol=0)
    assert (vertices.sum(1) == 0).all()  # every vertex lies on the plane sum = 0 ...
    assert (vertices.remainder(d + 1) == vertices[:, :1].remainder(d + 1)).all()  # ... and on the lattice A*_d


def test_blur_neighbours_point_back_and_differ_by_one_lattice_step() -> None:
    # Direction j: n1 = key - 1 + (d + 1) e_j, n2 = key + 1 - (d + 1) e_j, so n2(n1(v)) = v.
    features = 3 * torch.rand(400, 5, generator=torch.Generator().manual_seed(0))
    lattice = PermutohedralLattice(features)
    vertices = torch.arange(lattice.num_vertices)
    found = 0
    for n1, n2 in lattice.neighbours:
        has = n1 >= 0
        assert (n2[n1[has]] == vertices[has]).all() and (n1[n2[n2 >= 0]] == vertices[n2 >= 0]).all()
        found += int(has.sum())
    assert found > lattice.num_vertices  # the points are dense enough for most vertices to have neighbours


def test_normalised_lattice_filter_is_close_to_the_exact_gaussian_sum() -> None:
    # The CRF's features of a 24x32 image; the symmetric normalisation D^-1/2 K D^-1/2 of the CRF.
    image = two_region_image(24, 32)[0]
    q = torch.rand(24 * 32, 4, generator=torch.Generator().manual_seed(0))
    for params in (CRFParams(), CRFParams(theta_alpha=5.0, theta_beta=20.0)):
        for _, features in kernel_features(image, params):
            kernel = exact_gaussian(features)
            norm = 1 / kernel.sum(1).sqrt()
            exact = (norm[:, None] * kernel * norm) @ q.double()
            lattice = PermutohedralLattice(features)
            lattice_norm = 1 / lattice(torch.ones(24 * 32, 1)).sqrt()
            approx = lattice_norm * lattice(lattice_norm * q)
            error = (approx - exact).abs()  # measured: max 0.025 (d = 2), 0.059 (d = 5); mean 0.004, 0.011
            assert error.max() < 0.08 and error.mean() < 0.015


def test_stacked_filter_equals_the_sum_of_the_scaled_single_filters() -> None:
    gen = torch.Generator().manual_seed(0)
    small = PermutohedralLattice(4 * torch.rand(300, 2, generator=gen))
    large = PermutohedralLattice(torch.rand(300, 5, generator=gen))
    pre, post, v = (torch.rand(300, c, generator=gen) for c in (2, 2, 3))
    stacked = LatticeFilter([small, large])
    expected = post[:, :1] * small(pre[:, :1] * v) + post[:, 1:] * large(pre[:, 1:] * v)
    torch.testing.assert_close(stacked.scaled(pre=pre, post=post)(v), expected)
    torch.testing.assert_close(stacked.each(v), torch.stack([small(v), large(v)], dim=1))


def test_lattice_matches_pydensecrf2_when_installed() -> None:
    dcrf = pytest.importorskip("pydensecrf.densecrf", reason="pydensecrf2 is benchmark-only: pip install pydensecrf2")
    np = pytest.importorskip("numpy")
    image = two_region_image(24, 32).round().clamp(0, 255)
    logits, _ = noisy_logits(24, 32, flips=10)
    params = CRFParams()
    crf = dcrf.DenseCRF2D(32, 24, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(-logits[0].reshape(2, -1).numpy()))
    crf.addPairwiseGaussian(sxy=params.theta_gamma, compat=params.w_smoothness)
    rgb = np.ascontiguousarray(image[0].permute(1, 2, 0).numpy().astype(np.uint8))
    crf.addPairwiseBilateral(sxy=params.theta_alpha, srgb=params.theta_beta, rgbim=rgb, compat=params.w_appearance)
    reference = torch.from_numpy(np.array(crf.inference(params.iterations))).view(1, 2, 24, 32)
    torch.testing.assert_close(DenseCRF(params)(logits, image).softmax(1), reference, atol=1e-5, rtol=0)


# --- the CRF ----------------------------------------------------------------------------------


def test_two_pixels_by_hand() -> None:
    # Exact inference only (two points are too few for the lattice to approximate the Gaussian well).
    # Each normalised kernel is [[1, k], [k, 1]] / (1 + k): one step gives
    # energies = logits + sum_m w_m (Q_self + k_m Q_other) / (1 + k_m).
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # [1, 2, 1, 2]
    image = torch.tensor([[[[10.0, 12.0]], [[0.0, 0.0]], [[0.0, 0.0]]]])
    params = CRFParams(iterations=1, w_appearance=4.0, w_smoothness=3.0)
    k_smooth = math.exp(-1 / (2 * 3.0**2))
    k_appear = math.exp(-1 / (2 * 121.0**2) - 2.0**2 / (2 * 5.0**2))
    q = logits.softmax(1)
    expected = logits + sum(w * (q + k * q.flip(-1)) / (1 + k) for w, k in ((3.0, k_smooth), (4.0, k_appear)))
    torch.testing.assert_close(dense_crf_exact(logits, image, params), expected)


def test_lattice_inference_agrees_with_exact_inference() -> None:
    image = two_region_image(24, 32)
    logits, _ = noisy_logits(24, 32, flips=20)
    for params in (CRFParams(), CRFParams(theta_alpha=5.0, theta_beta=20.0, w_appearance=6.0)):
        exact, approx = dense_crf_exact(logits, image, params), DenseCRF(params)(logits, image)
        assert (approx.argmax(1) == exact.argmax(1)).float().mean() >= 0.99
        assert (approx.softmax(1) - exact.softmax(1)).abs().max() < 0.05  # measured 0.004 with the defaults


def test_output_shapes_dtypes_and_batch_independence() -> None:
    image = torch.cat([two_region_image(20, 28), two_region_image(20, 28).flip(-1)])
    logits = torch.randn(2, 5, 20, 28, generator=torch.Generator().manual_seed(0)).double()
    refined = DenseCRF()(logits, image)
    assert refined.shape == logits.shape and refined.dtype == torch.float64
    torch.testing.assert_close(refined[1:], DenseCRF()(logits[1:], image[1:]))


def test_zero_kernel_weights_return_the_unaries() -> None:
    image = two_region_image()
    logits = torch.randn(2, 3, 24, 24)
    off = CRFParams(w_appearance=0.0, w_smoothness=0.0)
    torch.testing.assert_close(DenseCRF(off)(logits, image.expand(2, -1, -1, -1)), logits)
    torch.testing.assert_close(dense_crf_exact(logits[:1], image, off), logits[:1])


def test_one_kernel_and_no_normalisation_run() -> None:
    image = two_region_image()
    logits, _ = noisy_logits(flips=6)
    for params in (CRFParams(w_smoothness=0.0), CRFParams(w_appearance=0.0), CRFParams(normalize=False)):
        refined = DenseCRF(params)(logits, image)
        assert refined.shape == logits.shape and torch.isfinite(refined).all()


def test_isolated_noisy_pixels_are_removed() -> None:
    image = two_region_image(48, 48)
    logits, labels = noisy_logits(48, 48, flips=20)
    wrong_before = (logits.argmax(1)[0] != labels).sum()
    wrong_after = (DenseCRF()(logits, image).argmax(1)[0] != labels).sum()
    assert wrong_before >= 15 and wrong_after <= 1


def test_object_boundaries_are_recovered_from_stride_8_scores() -> None:
    # DeepLab's use (sec. 3.2): blurry upsampled scores snap to the colour edges of the image.
    h, w = 48, 64
    gen = torch.Generator().manual_seed(0)
    labels = torch.zeros(h, w, dtype=torch.long)
    labels[13:37, 19:47] = 1
    colours = torch.tensor([[40.0, 120.0, 40.0], [200.0, 60.0, 50.0]])
    image = colours[labels].permute(2, 0, 1)[None] + 10 * torch.randn(1, 3, h, w, generator=gen)
    scores = F.avg_pool2d(F.one_hot(labels, 2).permute(2, 0, 1)[None].float(), 8)
    logits = 4 * F.interpolate(scores, size=(h, w), mode="bilinear", align_corners=False)
    wrong_before = (logits.argmax(1)[0] != labels).sum()
    wrong_after = (DenseCRF()(logits, image).argmax(1)[0] != labels).sum()
    # Of 91 wrong pixels, exact inference leaves 2 at the square's corners, the lattice 4.
    assert wrong_before >= 20 and wrong_after <= 4


def test_bad_inputs_raise() -> None:
    with pytest.raises(InputError, match="DenseCRF"):
        DenseCRF()(torch.rand(1, 2, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(InputError, match="DenseCRF"):
        dense_crf_exact(torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(InputError, match="DenseCRF"):
        DenseCRF()(torch.rand(2, 8, 8), torch.rand(3, 8, 8))
    with pytest.raises(InputError, match="NaN"):
        DenseCRF()(torch.rand(1, 2, 4, 4), torch.full((1, 3, 4, 4), float("nan")))
    with pytest.raises(InputError, match="features"):
        PermutohedralLattice(torch.rand(10))
    with pytest.raises(InputError, match="int64"):
        PermutohedralLattice(torch.tensor([[0.0] * 5, [1e6] * 5]))  # a span of 10^6 lattice steps per dimension
    with pytest.raises(InputError, match="values"):
        PermutohedralLattice(torch.rand(10, 2))(torch.rand(9, 3))
