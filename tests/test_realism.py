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


def noise_images(seed: int, n: int) -> list[list[np.ndarray]]:
    """n groups of one noise image each."""
    return [[as_u8(smooth_noise(seed * 100 + i, 48, 48, cutoff=0.2))] for i in range(n)]


def stripe_images(n: int) -> list[list[np.ndarray]]:
    return [[as_u8(stripes(48, 48, period=6 + 2 * i))] for i in range(n)]


def test_catches_a_set_that_differs_and_not_one_that_does_not():
    real = {"a": noise_images(0, 6)}
    out = realism.two_sample(real, {"stripes": {"a": stripe_images(6)}, "same": {"a": noise_images(1, 6)}},
                             repeats=2, cfg=TINY)
    assert out["stripes"]["a"]["acc"] > 0.9
    assert abs(out["same"]["a"]["acc"] - 0.5) < 0.2
    assert len(out["same"]["a"]["runs"]) == 2 and out["same"]["mean"]["acc"] == pytest.approx(
        np.mean(out["same"]["a"]["runs"]))


def test_groups_are_never_split_and_the_real_role_is_shared_by_every_entry(monkeypatch):
    """Fit and held-out crops never come from one duplicate group; every entry sees the same real crops."""
    seen = []

    def capture(fit, held, cfg, seed=0):
        seen.append((fit, held))
        return {s: 0.5 for s in fit}

    monkeypatch.setattr(realism, "classifier_accuracy", capture)
    flat = [[np.full((40, 40, 3), 10 * g + k, np.uint8) for k in range(3)] for g in range(6)]  # 6 groups of 3
    value = lambda crops: {int(c[0, 0, 0]) // 10 for c in crops}  # noqa: E731 — the group of each crop
    realism.two_sample({"a": flat}, {"x": {"a": noise_images(0, 4)}, "y": {"a": noise_images(1, 4)}},
                       repeats=2, cfg=TINY)
    assert len(seen) == 4
    for fit, held in seen:
        assert not value(fit["a"][0]) & value(held["a"][0]) and len(value(fit["a"][0]) | value(held["a"][0])) == 6
    for (fx, hx), (fy, hy) in (seen[:2], seen[2:]):  # entries x and y of one repeat: the same real crops
        assert fx["a"][0] is fy["a"][0] and hx["a"][0] is hy["a"][0]


def test_styles_with_too_few_images_are_left_out():
    real = {"a": noise_images(0, 4), "b": noise_images(1, 1), "c": noise_images(2, 4)}  # b: one group
    out = realism.two_sample(real, {"x": {"a": noise_images(3, 4), "b": noise_images(4, 4)}}, repeats=1, cfg=TINY)
    assert set(out["x"]) == {"a", "mean"}  # b has one real image, c nothing generated


def test_an_entry_reads_the_same_beside_any_other_entries():
    real = {"a": noise_images(0, 4)}
    x = {"a": noise_images(7, 4)}  # as real as the real role: its accuracy is all chance, seeds decide it
    alone = realism.two_sample(real, {"x": x}, repeats=2, cfg=TINY)
    second = realism.two_sample(real, {"w": {"a": noise_images(5, 4)}, "x": x}, repeats=2, cfg=TINY)
    assert alone["x"] == second["x"]


def test_progress_counts_every_classifier_and_only_those():
    real = {"a": noise_images(0, 4)}
    told: list[tuple[int, int]] = []
    others = {"x": {"a": noise_images(3, 4)}, "none": {"b": noise_images(4, 4)}, "y": {"a": noise_images(5, 4)}}
    realism.two_sample(real, others, repeats=2, cfg=TINY, progress=lambda d, t: told.append((d, t)))
    assert told == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]  # x and y, twice; "none" shares no style with the real role


def test_halves_are_disjoint_and_cover_everything():
    items = list(range(7))
    a, b = realism.halves(items, np.random.default_rng(0))
    assert sorted(a + b) == items and len(a) == 4 and not set(a) & set(b)


def test_empty_role_is_refused():
    crops = realism.crops_of(noise_images(0, 2), 4, np.random.default_rng(0), size=32)
    with pytest.raises(ValueError, match="'a'.*need both roles"):
        realism.classifier_accuracy({"a": (crops, crops[:0])}, {"a": (crops, crops)}, TINY)


def test_crops_are_spread_over_images_and_stay_inside_them():
    imgs = [np.full((70, 70, 3), i, np.uint8) for i in range(3)]
    for img in imgs:
        img[:, 0] = 255  # the left edge: a crop across the wrap would show it inside
    crops = realism.crops_of([imgs[:1], imgs[1:]], 60, np.random.default_rng(0))
    assert crops.shape == (60, realism.CROP, realism.CROP, 3)
    assert sorted({int(c[5, 5, 0]) for c in crops}) == [0, 1, 2]
    assert all((c[:, 1:, 0] != 255).all() for c in crops)  # 255 only ever in a crop's first column
    with pytest.raises(ValueError, match="larger than"):
        realism.crops_of([[np.zeros((40, 40, 3), np.uint8)]], 2, np.random.default_rng(0))
