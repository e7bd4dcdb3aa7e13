"""Quality metrics: tileability, multi-scale SWD, PSNR/SSIM on Y. Each function's docstring gives its definition
(those of the team's shared METRICS.md, which is not part of this repository).

Array convention, fixed here once: an image is an (H, W, C) numpy array, RGB (C = 3) where colour
matters, rows top to bottom, either uint8 in [0, 255] or float in [0, 1]. uint8 is divided by 255;
floats are used as given (not clipped). All arithmetic is float64. Pure numpy, so importing this
module is cheap and needs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "seam_ratio", "seam_percentile", "laplacian_pyramid", "collapse_pyramid", "swd",
    "random_crops", "rgb_to_y", "psnr_y", "ssim_y",
]

_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # 1-D factor of the 5x5 [1,4,6,4,1]^2/256 kernel
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])  # BT.601, RGB in [0, 1] -> Y in [16, 235]


# helpers

def _to_float(img: np.ndarray, *, rgb: bool = False, name: str = "img") -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 3 or (rgb and img.shape[2] != 3):
        want = "(H, W, 3) RGB" if rgb else "(H, W, C)"
        raise ValueError(f"{name}: expected an {want} array, got shape {img.shape}")
    if img.dtype == np.uint8:
        return img.astype(np.float64) / 255.0
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"{name}: expected uint8 or float in [0, 1], got dtype {img.dtype}")
    return img.astype(np.float64)


def _correlate1d(x: np.ndarray, taps: np.ndarray, axis: int, *, border: str) -> np.ndarray:
    """Correlate along one axis; border "reflect" (mirror) or "wrap" (around the torus) keeps the size,
    "valid" drops the pixels the taps do not cover."""
    x = np.moveaxis(x, axis, 0)
    r = len(taps) // 2
    if border != "valid":
        x = np.pad(x, [(r, r)] + [(0, 0)] * (x.ndim - 1), mode=border)
    n = x.shape[0] - len(taps) + 1
    out = taps[0] * x[:n]
    for k in range(1, len(taps)):
        out += taps[k] * x[k:k + n]
    return np.moveaxis(out, 0, axis)


def _blur(x: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """5x5 binomial blur over the (H, W) axes of (..., H, W, C), mirror border."""
    k = _BINOMIAL * np.sqrt(gain)
    return _correlate1d(_correlate1d(x, k, -3, border="reflect"), k, -2, border="reflect")


def _down(x: np.ndarray) -> np.ndarray:
    return _blur(x)[..., ::2, ::2, :]


def _up(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-insert into `shape` (the finer level's shape), then blur with 4x the kernel."""
    z = np.zeros(shape, dtype=np.float64)
    z[..., ::2, ::2, :] = x
    return _blur(z, gain=4.0)


def _gaussian_taps(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def _axis_seam(x: np.ndarray, axis: int) -> tuple[float, np.ndarray]:
    """(wrap-around difference, interior differences) along `axis`, each a mean of |.| over the line."""
    first, last = np.take(x, 0, axis=axis), np.take(x, -1, axis=axis)
    wrap = float(np.mean(np.abs(first - last)))
    other = tuple(a for a in range(x.ndim) if a != axis)
    interior = np.mean(np.abs(np.diff(x, axis=axis)), axis=other)
    return wrap, interior


def _check_seam_input(img: np.ndarray) -> np.ndarray:
    x = _to_float(img)
    if min(x.shape[:2]) < 2:
        raise ValueError(f"seam metrics need an image of at least 2x2 pixels, got shape {x.shape}")
    return x


def _shaved_y(sr: np.ndarray, hr: np.ndarray, shave: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = _to_float(sr, rgb=True, name="sr"), _to_float(hr, rgb=True, name="hr")
    if a.shape != b.shape:
        raise ValueError(f"sr and hr must have the same shape, got {a.shape} and {b.shape}")
    if shave < 0 or 2 * shave >= min(a.shape[:2]):
        raise ValueError(f"shave={shave} must be >= 0 and leave pixels of a {a.shape[:2]} image")
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    if shave:
        ya, yb = ya[shave:-shave, shave:-shave], yb[shave:-shave, shave:-shave]
    return ya, yb


# tileability

def seam_ratio(img: np.ndarray) -> float:
    """0.5 * (wrap column diff / interior column diff + same for rows); ~1.0 when seamless.

    Means of |difference| over all pixels and channels of the image in [0, 1]. An axis whose interior
    differences are all zero counts as 1.0 if its wrap difference is zero too, else inf.
    """
    x = _check_seam_input(img)
    ratios = []
    for axis in (1, 0):
        wrap, interior = _axis_seam(x, axis)
        inner = float(interior.mean())
        ratios.append(wrap / inner if inner > 0 else (1.0 if wrap == 0 else float("inf")))
    return 0.5 * (ratios[0] + ratios[1])


def seam_percentile(img: np.ndarray) -> float:
    """Rank in [0, 1] of the wrap-around column (row) difference among the interior ones; axes averaged.

    Rank = fraction of interior differences strictly below the wrap one, ties counting half;
    ~0.5 when seamless, ~1.0 with a seam.
    """
    x = _check_seam_input(img)
    ranks = []
    for axis in (1, 0):
        wrap, interior = _axis_seam(x, axis)
        ranks.append((np.sum(interior < wrap) + 0.5 * np.sum(interior == wrap)) / interior.size)
    return float(0.5 * (ranks[0] + ranks[1]))


# realism: multi-scale sliced Wasserstein distance

def laplacian_pyramid(img_float: np.ndarray, min_size: int = 16) -> list[np.ndarray]:
    """Laplacian pyramid, finest first: level i = G_i - up(G_{i+1}); the last is the Gaussian residual.

    Halves (rounding up) while the smaller side stays >= `min_size`: 128x128 gives levels of 128, 64, 32
    and 16 px. Also accepts a batch (N, H, W, C); uint8 is scaled to [0, 1].
    """
    if min_size < 3:
        raise ValueError(f"min_size must be >= 3 (the 5x5 kernel needs it), got {min_size}")
    x = np.asarray(img_float)
    g = _to_float(x) if x.ndim == 3 else np.stack([_to_float(im) for im in x])
    levels = []
    while (min(g.shape[-3:-1]) + 1) // 2 >= min_size:
        coarse = _down(g)
        levels.append(g - _up(coarse, g.shape))
        g = coarse
    levels.append(g)
    return levels


def collapse_pyramid(levels: Sequence[np.ndarray]) -> np.ndarray:
    """Inverse of `laplacian_pyramid`: G_i = L_i + up(G_{i+1}), from the residual up."""
    g = levels[-1]
    for lap in reversed(levels[:-1]):
        g = lap + _up(g, lap.shape)
    return g


def _descriptors(level: np.ndarray, ys: np.ndarray, xs: np.ndarray, k: int = 7) -> np.ndarray:
    """(N, h, w, 3) level, (N, n) top-left corners -> normalised (N*n, k*k*3) descriptors."""
    n_img = np.arange(level.shape[0])[:, None, None, None]
    off = np.arange(k)
    rows = ys[:, :, None, None] + off[None, None, :, None]
    cols = xs[:, :, None, None] + off[None, None, None, :]
    d = level[n_img, rows, cols].reshape(-1, k * k, level.shape[-1])  # (M, 49, 3)
    std = d.std(axis=(0, 1))
    d = (d - d.mean(axis=(0, 1))) / np.where(std > 0, std, 1.0)
    return d.reshape(d.shape[0], -1)


def _quantiles(s: np.ndarray, m: int) -> np.ndarray:
    """Resample the sorted columns of `s` (M, D) at m evenly spaced quantiles (identity when m == M)."""
    pos = np.clip((np.arange(m) + 0.5) * s.shape[0] / m - 0.5, 0, s.shape[0] - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, s.shape[0] - 1)
    frac = (pos - lo)[:, None]
    return s[lo] * (1 - frac) + s[hi] * frac


def swd(crops_a: Sequence[np.ndarray], crops_b: Sequence[np.ndarray], *, n_desc: int = 128,
        n_dirs: int = 128, n_repeats: int = 4, seed: int = 0) -> float:
    """Multi-scale sliced Wasserstein distance (x1000, mean over pyramid levels) between two crop sets.

    Crops are (H, W, 3) arrays, all of one size (>= 7 px). Patch positions at each level come from one
    seeded generator and are shared by crop i of both sets, so swd(a, a) == 0 exactly.
    """
    if not len(crops_a) or not len(crops_b):
        raise ValueError(f"need non-empty crop sets, got {len(crops_a)} and {len(crops_b)} crops")
    a = np.stack([_to_float(c, rgb=True, name="crops_a") for c in crops_a])
    b = np.stack([_to_float(c, rgb=True, name="crops_b") for c in crops_b])
    if a.shape[1:] != b.shape[1:] or min(a.shape[1:3]) < 7:
        raise ValueError(f"all crops must share one size >= 7x7, got {a.shape[1:]} and {b.shape[1:]}")
    rng = np.random.default_rng(seed)
    dists = []
    for la, lb in zip(laplacian_pyramid(a), laplacian_pyramid(b)):
        h, w = la.shape[1:3]
        ys = rng.integers(0, h - 6, size=(max(len(a), len(b)), n_desc))
        xs = rng.integers(0, w - 6, size=ys.shape)
        da = _descriptors(la, ys[:len(a)], xs[:len(a)])
        db = _descriptors(lb, ys[:len(b)], xs[:len(b)])
        per_repeat = []
        for _ in range(n_repeats):
            dirs = rng.standard_normal((da.shape[1], n_dirs))
            dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
            pa, pb = np.sort(da @ dirs, axis=0), np.sort(db @ dirs, axis=0)
            m = min(len(pa), len(pb))
            per_repeat.append(np.mean(np.abs(_quantiles(pa, m) - _quantiles(pb, m))))
        dists.append(np.mean(per_repeat) * 1e3)
    return float(np.mean(dists))


def random_crops(img: np.ndarray, n: int, size: int, *, rng: np.random.Generator,
                 wrap: bool = True) -> list[np.ndarray]:
    """`n` random size x size crops (copies, dtype kept). wrap=True treats the image as a torus."""
    img = np.asarray(img)
    h, w = img.shape[:2]
    if size < 1 or n < 0:
        raise ValueError(f"need size >= 1 and n >= 0, got size={size}, n={n}")
    if wrap:
        ys, xs = rng.integers(0, h, size=n), rng.integers(0, w, size=n)
    else:
        if size > h or size > w:
            raise ValueError(f"crop size {size} is larger than the {h}x{w} image; use wrap=True")
        ys, xs = rng.integers(0, h - size + 1, size=n), rng.integers(0, w - size + 1, size=n)
    off = np.arange(size)
    return [img[((y + off) % h)[:, None], ((x + off) % w)[None, :]] for y, x in zip(ys, xs)]


# upscaler

def rgb_to_y(img01: np.ndarray) -> np.ndarray:
    """BT.601 luma, (H, W) float64 in [16, 235]: Y = 16 + 65.481 R + 128.553 G + 24.966 B."""
    return 16.0 + _to_float(img01, rgb=True) @ _Y_WEIGHTS


def grid_pattern(img: np.ndarray, period: int = 4) -> float:
    """How much of an image's detail is locked to a grid of `period` pixels (the sub-pixel grid of a ×period
    upscaler): the RMS of the mean period×period block of the detail over the detail's standard deviation,
    the detail being BT.601 luma minus its wrap-around Gaussian blur (σ = 1 px). `img` (H, W, 3) uint8 or
    float in [0, 1], H and W ≥ 2·period (cropped to multiples of it). Measured 2026-12-01: 0.012 on average
    over the 31 held-out real textures of ≥ 1024 px; on 128² crops of them 0.03 for the real crops and
    0.26–0.38 upscaled ×4 by the adversarial models that draw a mesh (model card). Smaller images average
    fewer blocks, so compare figures at one size.
    Raises ValueError for another shape."""
    y = rgb_to_y(img)
    h, w = (y.shape[0] // period) * period, (y.shape[1] // period) * period
    if min(h, w) < 2 * period:
        raise ValueError(f"image of shape {img.shape} is smaller than two {period}-pixel blocks")
    y = y[:h, :w]
    taps = _gaussian_taps(7, 1.0)
    detail = y - _correlate1d(_correlate1d(y, taps, 0, border="wrap"), taps, 1, border="wrap")
    block = detail.reshape(h // period, period, w // period, period).mean(axis=(0, 2))
    return float(np.sqrt(np.mean(block**2)) / max(float(detail.std()), 1e-12))


def psnr_y(sr: np.ndarray, hr: np.ndarray, *, shave: int) -> float:
    """PSNR in dB on Y with `shave` pixels cut from each border: 10*log10(255^2 / MSE); inf if equal."""
    ya, yb = _shaved_y(sr, hr, shave)
    mse = float(np.mean((ya - yb) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def ssim_y(sr: np.ndarray, hr: np.ndarray, *, shave: int) -> float:
    """Mean SSIM on Y: 11x11 Gaussian window (sigma 1.5), 'valid' filtering, no padding.

    Constants C1 = (0.01*255)^2, C2 = (0.03*255)^2; Y is in [16, 235], so the data range is 255.
    """
    ya, yb = _shaved_y(sr, hr, shave)
    if min(ya.shape) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after shaving, got {ya.shape}")
    g = _gaussian_taps()

    def filt(z: np.ndarray) -> np.ndarray:
        return _correlate1d(_correlate1d(z, g, 0, border="valid"), g, 1, border="valid")

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = filt(ya), filt(yb)
    var_a, var_b = filt(ya * ya) - mu_a**2, filt(yb * yb) - mu_b**2
    cov = filt(ya * yb) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    ssim_map = num / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())
