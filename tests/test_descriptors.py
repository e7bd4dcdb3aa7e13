"""Image descriptors (core.descriptors): the 13 numbers per image that place it within its style."""

from __future__ import annotations

import numpy as np
import pytest

from core.descriptors import BANDS, DIM, describe, fit, standardise


def stripes(h: int, w: int, period: float, diagonal: bool = False) -> np.ndarray:
    """Grey sine stripes (h, w, 3) in [0, 1], varying down the rows (or along x + y)."""
    y, x = np.mgrid[0:h, 0:w]
    t = 0.5 + 0.5 * np.sin(2 * np.pi * ((x + y) if diagonal else y) / period)
    return np.repeat(t[:, :, None], 3, axis=2)


def test_descriptors_are_13_float32_numbers_per_image():
    rng = np.random.default_rng(0)
    for shape in ((64, 64, 3), (37, 90, 3), (1, 1, 3)):
        phi = describe(rng.random(shape))
        assert phi.shape == (DIM,) == (13,) and phi.dtype == np.float32 and np.isfinite(phi).all()
    flat = describe(np.full((8, 8, 3), 0.25))
    np.testing.assert_allclose(flat, [0.25] * 3 + [0.0] * 10, atol=1e-6)  # no spectrum to measure
    with pytest.raises(ValueError, match=r"shape \(8, 8\) is not \(H, W, 3\)"):
        describe(np.zeros((8, 8)))


def test_colour_statistics_follow_the_image():
    img = np.random.default_rng(1).random((32, 48, 3)) * 0.5
    dark, bright = describe(img), describe(img + 0.4)
    assert (bright[:3] > dark[:3] + 0.39).all()       # brighter: larger means
    np.testing.assert_allclose(bright[3:], dark[3:], atol=1e-5)  # the same spread and spectrum
    red = describe(img * np.array([1.0, 0.2, 0.2]))
    assert red[0] > red[1] and red[3] > red[4]


def test_stripes_land_in_their_band_and_a_quarter_turn_flips_the_anisotropy():
    horizontal = describe(stripes(64, 64, 8))          # varying down the rows: all power at fx = 0
    vertical = describe(np.rot90(stripes(64, 64, 8)).copy())
    for phi in (horizontal, vertical):
        np.testing.assert_allclose(phi[6:11], [0, 0, 1, 0, 0], atol=1e-6)  # period 8: the 8–16 px band
    assert horizontal[11] == pytest.approx(-1, abs=1e-6) and vertical[11] == pytest.approx(1, abs=1e-6)
    diagonal = describe(stripes(64, 64, 8, diagonal=True))  # period 8/√2 ≈ 5.7 px, at 45°
    turned = describe(np.rot90(stripes(64, 64, 8, diagonal=True)).copy())
    assert diagonal[7] == pytest.approx(1, abs=1e-6)     # the 4–8 px band
    assert np.sign(diagonal[12]) == -np.sign(turned[12]) and abs(diagonal[12]) == pytest.approx(1, abs=1e-6)
    noise = describe(np.random.default_rng(2).random((128, 128, 3)))
    assert abs(noise[11]) < 0.05 and abs(noise[12]) < 0.05  # white noise: no direction
    coarse = describe(stripes(128, 128, 128 / 3))  # three whole periods of 42.7 px
    assert coarse[10] == pytest.approx(1, abs=1e-6) and len(BANDS) == 5  # 32–64 px


def test_standardising_uses_the_training_sets_statistics():
    raw = np.stack([describe(stripes(32, 32, p)) for p in (4, 8, 16, 32)])  # whole periods: mean 0.5 each
    mean, std = fit(raw)
    assert mean.shape == std.shape == (DIM,) and (std > 0).all()
    z = standardise(raw, mean, std)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    assert std[0] == 1.0 and (z[:, 0] == 0).all()  # a dimension that does not vary: std 1, standardised to 0
    one = standardise(describe(stripes(32, 32, 5)), mean, std)  # any later image, in the same units
    assert one.shape == (DIM,)
