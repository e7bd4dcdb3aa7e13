"""Tests for core.metrics: each one checks a number the definitions in METRICS.md pin down."""

from __future__ import annotations

import numpy as np
import pytest

from core import metrics as M

Y_GAIN = 65.481 + 128.553 + 24.966  # = 219: Y change when R = G = B all change by 1


# helpers

def periodic_texture(seed: int, h: int = 128, w: int = 128, cutoff: float = 0.08) -> np.ndarray:
    """Low-pass filtered noise built in the Fourier domain, so it is exactly periodic; float in [0, 1]."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((h, w, 3))
    r2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2
    lowpass = np.exp(-r2 / (2 * cutoff**2))[:, :, None]
    x = np.real(np.fft.ifft2(np.fft.fft2(noise, axes=(0, 1)) * lowpass, axes=(0, 1)))
    return np.clip((x - x.mean()) / (6 * x.std()) + 0.5, 0, 1)


def with_seam(tex: np.ndarray) -> np.ndarray:
    """The texture dimmed and put on a diagonal ramp: wrapping jumps by half the range on both axes."""
    h, w = tex.shape[:2]
    ramp = (np.arange(h)[:, None] / (h - 1) + np.arange(w)[None, :] / (w - 1)) / 2
    return 0.5 * tex + 0.5 * ramp[:, :, None]


# tileability

def test_seam_metrics_by_hand() -> None:
    x = np.tile(np.array([0.0, 0.1, 0.2, 0.3])[None, :, None], (4, 1, 3))  # columns step by 0.1
    # columns: wrap |0 - 0.3| / interior 0.1 = 3; rows are constant, so 0/0 counts as 1.0
    assert M.seam_ratio(x) == pytest.approx(2.0)
    # columns: the wrap beats every interior difference (1.0); rows: all tie (0.5)
    assert M.seam_percentile(x) == pytest.approx(0.75)
    assert M.seam_ratio((x * 255).round().astype(np.uint8)) == pytest.approx(2.0, rel=0.02)


def test_seam_metrics_periodic_texture_is_seamless() -> None:
    texs = [periodic_texture(seed) for seed in range(8)]
    assert 0.9 < np.mean([M.seam_ratio(t) for t in texs]) < 1.1
    assert 0.2 < np.mean([M.seam_percentile(t) for t in texs]) < 0.8


def test_seam_metrics_detect_a_seam() -> None:
    for seed in range(3):
        x = with_seam(periodic_texture(seed))
        assert M.seam_ratio(x) > 1.5
        assert M.seam_percentile(x) > 0.9
    # a seamless texture rolled by half keeps its value: there is no seam to move into view
    t = periodic_texture(0)
    assert M.seam_ratio(np.roll(t, (64, 64), axis=(0, 1))) == pytest.approx(M.seam_ratio(t), rel=0.3)


def test_seam_ratio_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        M.seam_ratio(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="dtype"):
        M.seam_ratio(np.zeros((8, 8, 3), dtype=np.int32))


# laplacian pyramid and SWD

def test_laplacian_pyramid_levels_and_reconstruction() -> None:
    img = periodic_texture(0, cutoff=0.3)
    levels = M.laplacian_pyramid(img)
    assert [lv.shape for lv in levels] == [(s, s, 3) for s in (128, 64, 32, 16)]
    assert np.abs(M.collapse_pyramid(levels) - img).max() < 1e-6
    # odd sizes round up and still reconstruct exactly
    odd = np.random.default_rng(0).random((75, 50, 3))
    levels = M.laplacian_pyramid(odd)
    assert [lv.shape[:2] for lv in levels] == [(75, 50), (38, 25)]
    assert np.abs(M.collapse_pyramid(levels) - odd).max() < 1e-6


def test_laplacian_pyramid_of_constant_has_no_detail() -> None:
    levels = M.laplacian_pyramid(np.full((64, 64, 3), 0.3))
    assert all(np.abs(lv).max() < 1e-12 for lv in levels[:-1])
    assert np.allclose(levels[-1], 0.3)


def test_pyramid_kernel_and_mirror_border() -> None:
    # a unit impulse in the corner: the 1-D taps are [1, 4, 6, 4, 1] / 16 and the mirror border does
    # not repeat the edge pixel (7/16 would mean it did) nor wrap round to the far side
    img = np.zeros((32, 32, 3))
    img[0, 0] = 1.0
    coarse = M.laplacian_pyramid(img)[-1]
    assert coarse.shape == (16, 16, 3)
    assert coarse[0, 0, 0] == pytest.approx((6 / 16) ** 2)
    assert coarse[1, 0, 0] == pytest.approx((1 / 16) * (6 / 16))
    assert coarse[15, 0, 0] == 0.0 and coarse[0, 15, 0] == 0.0


def test_swd_self_is_zero_and_affine_colour_invariant() -> None:
    crops = M.random_crops(periodic_texture(0), 8, 32, rng=np.random.default_rng(0))
    assert M.swd(crops, crops) == 0.0
    # descriptors are normalised per colour channel, so a per-channel gain and offset do not count
    gain, offset = np.array([0.5, 0.8, 0.3]), np.array([0.2, 0.1, 0.4])
    assert M.swd(crops, [c * gain + offset for c in crops]) < 1e-6


def test_swd_separates_textures() -> None:
    rng = np.random.default_rng(0)
    tex = periodic_texture(0, h=512, w=256)
    top = M.random_crops(tex[:256], 16, 64, rng=rng, wrap=False)
    bottom = M.random_crops(tex[256:], 16, 64, rng=rng, wrap=False)  # disjoint from `top`
    cols = np.arange(256)
    stripes = np.broadcast_to((0.5 + 0.4 * np.sin(2 * np.pi * cols / 9))[None, :, None], (256, 256, 3))
    other = M.random_crops(stripes, 16, 64, rng=rng)
    floor = M.swd(top, bottom)
    assert 0 < floor
    assert M.swd(top, other) > 3 * floor
    assert M.swd(top, bottom, seed=0) == floor  # deterministic
    # sets of different sizes are compared through resampled quantiles
    assert M.swd(top, bottom[:10]) < 2 * floor


def test_swd_rejects_mismatched_crops() -> None:
    a = [np.zeros((32, 32, 3))]
    with pytest.raises(ValueError, match="size"):
        M.swd(a, [np.zeros((16, 16, 3))])
    with pytest.raises(ValueError, match="non-empty"):
        M.swd(a, [])


def test_random_crops_wrap_reads_mod_indices() -> None:
    h, w = 12, 20
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    img = np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.uint8)  # pixel (i, j) holds (i, j, 0)
    crops = M.random_crops(img, 50, 16, rng=np.random.default_rng(0))
    wrapped = 0
    for c in crops:
        assert c.shape == (16, 16, 3) and c.dtype == np.uint8
        y, x = int(c[0, 0, 0]), int(c[0, 0, 1])
        assert np.array_equal(c[:, :, 0], np.broadcast_to((y + np.arange(16)[:, None]) % h, (16, 16)))
        assert np.array_equal(c[:, :, 1], np.broadcast_to((x + np.arange(16)[None, :]) % w, (16, 16)))
        wrapped += y + 16 > h or x + 16 > w
    assert wrapped > 0


def test_random_crops_without_wrap_stay_inside() -> None:
    img = np.random.default_rng(0).random((40, 30, 3))
    for c in M.random_crops(img, 20, 25, rng=np.random.default_rng(1), wrap=False):
        hits = [(y, x) for y in range(16) for x in range(6) if np.array_equal(img[y:y + 25, x:x + 25], c)]
        assert len(hits) == 1
    with pytest.raises(ValueError, match="larger than the 40x30 image"):
        M.random_crops(img, 1, 32, rng=np.random.default_rng(0), wrap=False)


# upscaler

def test_rgb_to_y_range() -> None:
    assert M.rgb_to_y(np.zeros((2, 2, 3))) == pytest.approx(np.full((2, 2), 16.0))
    assert M.rgb_to_y(np.full((2, 2, 3), 255, np.uint8)) == pytest.approx(np.full((2, 2), 235.0))
    assert M.rgb_to_y(np.array([[[1.0, 0.0, 0.0]]]))[0, 0] == pytest.approx(16 + 65.481)


def test_psnr_y_known_mse_and_shave() -> None:
    hr = np.random.default_rng(0).uniform(0.2, 0.7, (32, 32, 3))
    assert M.psnr_y(hr, hr, shave=4) == float("inf")
    d = 0.05
    expected = 10 * np.log10(255.0**2 / (d * Y_GAIN) ** 2)
    assert M.psnr_y(hr + d, hr, shave=0) == pytest.approx(expected, abs=1e-6)
    border = hr.copy()
    border[:4] += 0.2
    border[:, -4:] -= 0.2
    assert M.psnr_y(border, hr, shave=4) == float("inf")
    assert M.psnr_y(border, hr, shave=3) < 30
    with pytest.raises(ValueError, match="shave"):
        M.psnr_y(hr, hr, shave=16)


def test_ssim_y_matches_one_window_by_hand() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random((15, 15, 3)), rng.random((15, 15, 3))
    ya, yb = M.rgb_to_y(a)[2:-2, 2:-2], M.rgb_to_y(b)[2:-2, 2:-2]  # 11x11: 'valid' leaves one window
    t = np.arange(11) - 5.0
    g = np.exp(-(t**2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    mu_a, mu_b = (win * ya).sum(), (win * yb).sum()
    var_a, var_b = (win * (ya - mu_a) ** 2).sum(), (win * (yb - mu_b) ** 2).sum()
    cov = (win * (ya - mu_a) * (yb - mu_b)).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    want = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    assert M.ssim_y(a, b, shave=2) == pytest.approx(want, rel=1e-9)


def test_ssim_y() -> None:
    rng = np.random.default_rng(0)
    hr = periodic_texture(1, h=48, w=48)
    assert M.ssim_y(hr, hr, shave=2) == pytest.approx(1.0, abs=1e-12)
    mild = np.clip(hr + rng.normal(0, 0.02, hr.shape), 0, 1)
    strong = np.clip(hr + rng.normal(0, 0.2, hr.shape), 0, 1)
    s_mild, s_strong = M.ssim_y(mild, hr, shave=2), M.ssim_y(strong, hr, shave=2)
    assert s_strong < s_mild < 1.0
    # a constant brightness offset keeps the structure term and only lowers luminance a little
    assert 0.9 < M.ssim_y(np.clip(hr + 0.05, 0, 1), hr, shave=2) < 1.0
    with pytest.raises(ValueError, match="11x11"):
        M.ssim_y(hr[:12, :12], hr[:12, :12], shave=2)
    with pytest.raises(ValueError, match="same shape"):
        M.ssim_y(hr, hr[:40], shave=0)


def test_grid_pattern_sees_a_mesh_on_the_grid_and_not_noise():
    rng = np.random.default_rng(0)
    noise = rng.random((256, 256, 3))
    yy, xx = np.indices((256, 256))
    mesh = np.clip(0.4 + 0.2 * noise + 0.2 * ((yy + xx) % 2)[..., None], 0, 1)  # a checker of period 2 on the grid
    shifted_period = np.clip(0.4 + 0.2 * noise + 0.2 * ((xx % 5) == 0)[..., None], 0, 1)  # period 5: off the grid
    assert M.grid_pattern(noise) < 0.05 < 0.5 < M.grid_pattern(mesh)
    assert M.grid_pattern(shifted_period) < 0.1
    with pytest.raises(ValueError, match="smaller than two 4-pixel blocks"):
        M.grid_pattern(noise[:6, :6])
