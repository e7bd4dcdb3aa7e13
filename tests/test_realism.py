"""The classifier two-sample test in core.realism: it catches sets that differ, reads near 0.5 for sets
that do not, keeps fit and held-out images apart, and refuses a style with an empty role."""

from __future__ import annotations

import numpy as np
import pytest

from core import realism
from core.realism import C2stConfig

from training_helpers import smooth_noise, stripes

TINY = C2stConfig(crop=32, crops=32, steps=80, batch=32, width=8, lr=3e-3)


def as_u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def noise_images(seed: int, n: int) -> list[np.ndarray]:
    return [as_u8(smooth_noise(seed * 100 + i, 48, 48, cutoff=0.2)) for i in range(n)]


def stripe_images(n: int) -> list[np.ndarray]:
    return [as_u8(stripes(48, 48, period=6 + 2 * i)) for i in range(n)]


def test_catches_a_set_that_differs_and_not_one_that_does_not():
    real = {"a": noise_images(0, 6)}
    out = realism.two_sample(real, {"stripes": {"a": stripe_images(6)}, "same": {"a": noise_images(1, 6)}},
                             repeats=2, cfg=TINY)
    assert out["stripes"]["a"]["acc"] > 0.9
    assert abs(out["same"]["a"]["acc"] - 0.5) < 0.2
    assert len(out["same"]["a"]["runs"]) == 2 and out["same"]["mean"]["acc"] == pytest.approx(
        np.mean(out["same"]["a"]["runs"]))


def test_styles_with_too_few_images_are_left_out():
    real = {"a": noise_images(0, 4), "b": noise_images(1, 1), "c": noise_images(2, 4)}
    out = realism.two_sample(real, {"x": {"a": noise_images(3, 4), "b": noise_images(4, 4)}}, repeats=1, cfg=TINY)
    assert set(out["x"]) == {"a", "mean"}  # b has one real image, c nothing generated


def test_halves_are_disjoint_and_cover_everything():
    items = list(range(7))
    a, b = realism.halves(items, np.random.default_rng(0))
    assert sorted(a + b) == items and len(a) == 4 and not set(a) & set(b)


def test_empty_role_is_refused():
    crops = realism.crops_of(noise_images(0, 2), 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="'a'.*need both roles"):
        realism.classifier_accuracy({"a": (crops, crops[:0])}, {"a": (crops, crops)}, TINY)


def test_crops_are_spread_over_images_and_wrap():
    imgs = [np.full((40, 40, 3), i, np.uint8) for i in range(3)]
    crops = realism.crops_of(imgs, 7, np.random.default_rng(0))
    assert crops.shape == (7, realism.CROP, realism.CROP, 3)  # 64² crops from 40² images: they wrap
    assert sorted(int(c[0, 0, 0]) for c in crops) == [0, 0, 0, 1, 1, 2, 2]
