"""Fully connected CRF: the windowed approximation against exact dense inference, and its effects."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seglab.errors import ConfigError, InputError
from seglab.layers.crf import CRFParams, DenseCRF, dense_crf_exact, squared_distances


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


def test_two_pixels_by_hand() -> None:
    # Each pixel's only neighbour is the other one, so both normalised kernels pass exactly its Q:
    # one step gives energies = logits + (w1 + w2) * Q_other.
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # [1, 2, 1, 2]
    image = torch.tensor([[[[10.0, 12.0]], [[0.0, 0.0]], [[0.0, 0.0]]]])  # colours close enough not to underflow
    params = CRFParams(iterations=1, w_appearance=4.0, w_smoothness=3.0)
    q = logits.softmax(1)
    expected = logits + 7.0 * q.flip(-1)
    torch.testing.assert_close(dense_crf_exact(logits, image, params), expected)
    torch.testing.assert_close(DenseCRF(params, grid=1, window=3)(logits, image), expected)


def test_approximation_is_exact_when_the_window_covers_the_image() -> None:
    image = two_region_image()
    logits = torch.randn(1, 4, 24, 24, generator=torch.Generator().manual_seed(2))
    for params in (CRFParams(), CRFParams(theta_alpha=5.0, theta_beta=20.0, normalize=False, w_appearance=0.3)):
        exact = dense_crf_exact(logits, image, params)
        approx = DenseCRF(params, grid=1, window=47, truncate=8.0)(logits, image)  # radius 23: every pixel
        torch.testing.assert_close(approx.softmax(1), exact.softmax(1), atol=1e-4, rtol=0)


def test_approximation_agrees_when_the_window_covers_the_kernel_support() -> None:
    image = two_region_image()
    logits, _ = noisy_logits(flips=6)
    params = CRFParams(theta_alpha=2.0)  # window radius 8 = 4 theta_alpha, smoothness radius 4 theta_gamma
    exact = dense_crf_exact(logits, image, params)
    approx = DenseCRF(params, grid=1, window=17)(logits, image)
    torch.testing.assert_close(approx.softmax(1), exact.softmax(1), atol=3e-3, rtol=0)


def test_coarse_source_grid_stays_close_to_exact_inference() -> None:
    image = two_region_image()
    logits, _ = noisy_logits(flips=6)
    exact = dense_crf_exact(logits, image)
    approx = DenseCRF(grid=2, window=23)(logits, image)  # 2x2 cells with their mean colour
    assert (approx.argmax(1) == exact.argmax(1)).float().mean() == 1.0
    assert (approx.softmax(1) - exact.softmax(1)).abs().mean() < 0.02


def test_zero_kernel_weights_return_the_unaries() -> None:
    image = two_region_image()
    logits = torch.randn(2, 3, 24, 24)
    off = CRFParams(w_appearance=0.0, w_smoothness=0.0)
    torch.testing.assert_close(DenseCRF(off)(logits, image.expand(2, -1, -1, -1)).softmax(1), logits.softmax(1))
    torch.testing.assert_close(dense_crf_exact(logits[:1], image, off).softmax(1), logits[:1].softmax(1))


def test_isolated_noisy_pixels_are_removed() -> None:
    image = two_region_image(48, 48)
    logits, labels = noisy_logits(48, 48, flips=20)
    wrong_before = (logits.argmax(1)[0] != labels).sum()
    wrong_after = (DenseCRF()(logits, image).argmax(1)[0] != labels).sum()
    assert wrong_before >= 15 and wrong_after <= 1


def test_squared_distances_match_the_direct_formula() -> None:
    gen = torch.Generator().manual_seed(3)
    targets, sources = 40 * torch.rand(2, 3, 4, 5, generator=gen), 40 * torch.rand(2, 3, 9, 5, generator=gen)
    direct = ((targets[..., :, None, :] - sources[..., None, :, :]) ** 2).sum(-1)
    torch.testing.assert_close(squared_distances(targets, sources), direct, rtol=1e-4, atol=1e-3)


def test_bad_inputs_and_settings_raise() -> None:
    with pytest.raises(InputError, match="DenseCRF"):
        DenseCRF()(torch.rand(1, 2, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(InputError, match="DenseCRF"):
        dense_crf_exact(torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ConfigError, match="window"):
        DenseCRF(window=4)


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
    assert wrong_before >= 20 and wrong_after == 0
