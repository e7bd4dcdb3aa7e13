"""PBR maps derived from an albedo: height, normal, roughness and ambient occlusion, all on the torus.

Every filter here is periodic — Gaussian blurs are products in the Fourier domain of the whole image,
derivatives are circular central differences — so each map is exactly as tileable as the albedo:
maps(roll(albedo)) == roll(maps(albedo)). Scales are fractions of the image side, so a 2048² texture gets
the same maps as its 1024² version, only sharper. Deterministic: no randomness, numpy only (no torch:
the same code serves the PyTorch path and the torch-free one, core.runtime), float32 maps from float64 FFTs.

  height     multi-scale luminance: a sum of Gaussian low-passes of linear luminance (large shapes
             weigh most), robustly normalised to [0, 1]. Dark crevices sit low, bright tops high.
  normal     OpenGL convention (green = +Y up, as Blender expects) from the height's circular gradient.
  roughness  per-style base value, raised by local detail (rough where the albedo is busy) and lowered
             slightly on bright, smooth areas.
  ao         cavities: how far a point lies below its blurred neighbourhood at several scales.
"""

from __future__ import annotations

import math

import numpy as np

MAPS = ("albedo", "normal", "height", "roughness", "ao")
DEFAULT_NORMAL_STRENGTH = 1.0  # like Blender's Normal Map node: 1 is the intended look
_NORMAL_GAIN = 12.0             # slope per unit strength: a mean tilt of about 10–20° on the shipped styles
DEFAULT_ROUGHNESS = 0.75
# Base roughness per shipped style name (stored in the generator's metadata at export; others use
# DEFAULT_ROUGHNESS). Rough ground and masonry, smoother snow crust, worn metal the smoothest.
STYLE_ROUGHNESS = {"brick": 0.85, "concrete": 0.8, "dirt": 0.9, "grass": 0.8, "metal": 0.45, "paving": 0.75,
                   "rock": 0.8, "sand": 0.9, "snow": 0.6, "wood": 0.65}

_HEIGHT_SCALES = (1 / 512, 1 / 128, 1 / 32, 1 / 8)   # Gaussian sigmas as fractions of the side
_HEIGHT_WEIGHTS = (0.15, 0.35, 0.35, 0.15)
_AO_SCALES = (1 / 256, 1 / 64, 1 / 16)


def check_maps(maps: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Map names → the same, unique, in the order given. Raises ValueError naming an unknown one (and the
    known ones), or when none is given."""
    unknown = [m for m in maps if m not in MAPS]
    if unknown or not maps:
        what = f"unknown map {unknown[0]!r}" if unknown else "no maps chosen"
        raise ValueError(f"{what}: choose from {', '.join(MAPS)}")
    return tuple(dict.fromkeys(maps))  # unique, in the order given


def luminance(albedo: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB → (H, W) float32 linear luminance (Rec. 709)."""
    c = albedo.astype(np.float32) / np.float32(255)
    lin = np.where(c <= 0.04045, c / np.float32(12.92), ((c + np.float32(0.055)) / np.float32(1.055)) ** 2.4)
    return (lin @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)).astype(np.float32)


def _gaussian_lowpass(x: np.ndarray, sigmas_px: list[float], weights: list[float] | None = None,
                      ) -> list[np.ndarray]:
    """Periodic Gaussian blurs of a (H, W) image, one per sigma (in pixels), via one forward FFT, each
    (H, W) float32. With `weights`, their weighted sum instead (one filter, one inverse FFT). The FFTs run
    in float64 whatever numpy's version (numpy 1.x has no float32 FFT), so results do not depend on it."""
    h, w = x.shape
    spec = np.fft.rfft2(x.astype(np.float64))
    f2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2
    gains = [np.exp(-2 * math.pi**2 * s**2 * f2) for s in sigmas_px]
    if weights is not None:
        gains = [sum(wt * g for wt, g in zip(weights, gains))]
    return [np.fft.irfft2(spec * g, s=(h, w)).astype(np.float32) for g in gains]


def _normalise(x: np.ndarray, bins: int = 4096) -> np.ndarray:
    """Robust min–max of an array to [0, 1] float32 (0.5th and 99.5th percentiles), so a few outliers do
    not flatten it.

    Percentiles come from a histogram: linear time, and independent of pixel order, so a rolled image
    gets exactly the same mapping (a sort-free, sample-free way to keep maps tileable)."""
    x_min, x_max = float(x.min()), float(x.max())
    width = max(x_max - x_min, 1e-12) / bins
    index = np.clip(((x - x_min) / width).astype(np.int64), 0, bins - 1)  # the last bin holds the maximum
    cdf = np.cumsum(np.bincount(index.ravel(), minlength=bins)) / x.size
    lo = x_min + width * float(np.searchsorted(cdf, 0.005))
    hi = x_min + width * (float(np.searchsorted(cdf, 0.995)) + 1)
    return np.clip((x - np.float32(lo)) / np.float32(max(hi - lo, 1e-6)), 0, 1).astype(np.float32)


def height_map(y: np.ndarray) -> np.ndarray:
    """Linear luminance (H, W) → height (H, W) float32 in [0, 1]."""
    side = max(y.shape)
    (mix,) = _gaussian_lowpass(y, [s * side for s in _HEIGHT_SCALES], list(_HEIGHT_WEIGHTS))
    return _normalise(mix)


def normals_from_height(height: np.ndarray, strength: float = DEFAULT_NORMAL_STRENGTH) -> np.ndarray:
    """(H, W) height in [0, 1] → (H, W, 3) float32 unit normals, OpenGL convention (x right, y up, z out).

    Slopes are measured per 1/1024 of the side, so the look does not depend on the resolution."""
    height = np.asarray(height, dtype=np.float32)
    scale = np.float32(strength * _NORMAL_GAIN * max(height.shape) / 1024)
    dx = (np.roll(height, -1, 1) - np.roll(height, 1, 1)) * np.float32(0.5) * scale   # ∂h/∂x, x to the right
    dr = (np.roll(height, -1, 0) - np.roll(height, 1, 0)) * np.float32(0.5) * scale   # ∂h/∂row, rows go down
    n = np.stack([-dx, dr, np.ones_like(height)], axis=-1)  # y up = −row: ∂h/∂y = −∂h/∂row
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def roughness_map(y: np.ndarray, base: float = DEFAULT_ROUGHNESS) -> np.ndarray:
    """Linear luminance (H, W) → roughness (H, W) float32 in [0.02, 1] around `base`."""
    side = max(y.shape)
    (mean,) = _gaussian_lowpass(y, [side / 256])
    (var,) = _gaussian_lowpass((y - mean) ** 2, [side / 256])
    detail = _normalise(np.sqrt(np.maximum(var, 0)))      # local contrast: 0 smooth … 1 busy
    bright = _normalise(mean)
    return np.clip(base + 0.25 * (detail - 0.5) - 0.1 * (bright - 0.5), 0.02, 1.0).astype(np.float32)


def ao_map(height: np.ndarray) -> np.ndarray:
    """Height (H, W) in [0, 1] → ambient occlusion (H, W) float32 in [0, 1] (1: open, 0: deep cavity)."""
    side = max(height.shape)
    blurs = _gaussian_lowpass(height, [s * side for s in _AO_SCALES])
    cavity = sum(np.maximum(b - height, 0) for b in blurs) / len(blurs)
    return np.clip(1 - 2.5 * cavity, 0, 1).astype(np.float32)


def _u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * np.float32(255)).round().astype(np.uint8)


def encode_normals(n: np.ndarray) -> np.ndarray:
    """(H, W, 3) unit normals → (H, W, 3) uint8 RGB as a normal map stores them (−1…1 → 0…255)."""
    return _u8(n * np.float32(0.5) + np.float32(0.5))


def decode_normals(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 normal map → (H, W, 3) float32 in [−1, 1] (not renormalised)."""
    return img.astype(np.float32) / 255.0 * 2 - 1


def style_roughness(meta: dict, weights: np.ndarray) -> float:
    """Base roughness of a style mix: `weights` (styles,) over the styles of a generator whose metadata is
    `meta`; each style's value from meta["pbr"]["roughness"], else STYLE_ROUGHNESS, else DEFAULT_ROUGHNESS."""
    table = meta.get("pbr", {}).get("roughness", {})
    bases = [table.get(n, STYLE_ROUGHNESS.get(n, DEFAULT_ROUGHNESS)) for n in meta["styles"]]
    return float(np.asarray(weights, dtype=np.float32) @ np.asarray(bases, dtype=np.float32))


def derive(albedo: np.ndarray, maps: tuple[str, ...] = MAPS, *, roughness: float = DEFAULT_ROUGHNESS,
           normal_strength: float = DEFAULT_NORMAL_STRENGTH) -> dict[str, np.ndarray]:
    """albedo (H, W, 3) uint8 → {name: array} for each of `maps`, in their order: albedo (the same array)
    and normal (H, W, 3) uint8, height (H, W) uint16, roughness and ao (H, W) uint8. `roughness` is the base
    value (0…1), `normal_strength` the bumpiness (≥ 0). Raises ValueError for an unknown map or a strength
    that is not a finite number ≥ 0."""
    maps = check_maps(maps)
    if not math.isfinite(normal_strength) or normal_strength < 0:
        raise ValueError(f"normal strength {normal_strength} must be a finite number ≥ 0")
    out: dict[str, np.ndarray] = {}
    y = luminance(albedo)
    height16 = height = None
    if {"height", "normal", "ao"} & set(maps):  # the others derive from the 16-bit height as saved,
        height16 = (height_map(y) * np.float32(65535)).round().astype(np.uint16)
        height = height16.astype(np.float32) / np.float32(65535)  # so the files agree exactly
    for name in maps:
        if name == "albedo":
            out[name] = albedo
        elif name == "height":
            out[name] = height16
        elif name == "normal":
            out[name] = encode_normals(normals_from_height(height, normal_strength))
        elif name == "roughness":
            out[name] = _u8(roughness_map(y, roughness))
        elif name == "ao":
            out[name] = _u8(ao_map(height))
    return out


def check_roughness(roughness: object) -> float:
    """A base roughness → float in 0…1, else ValueError naming the value."""
    if isinstance(roughness, bool) or not isinstance(roughness, (int, float, np.integer, np.floating)) \
            or not 0 <= roughness <= 1:
        raise ValueError(f"roughness {roughness!r} must be a number from 0 to 1")
    return float(roughness)


def maps_from_image(img: np.ndarray, maps: tuple[str, ...] | list[str] = MAPS, *,
                    roughness: float = DEFAULT_ROUGHNESS,
                    normal_strength: float = DEFAULT_NORMAL_STRENGTH) -> dict[str, np.ndarray]:
    """The PBR set of any albedo image, as `Tessera.generate_maps` derives it from a generated one (`derive`):
    {map: array} for albedo and normal (H, W, 3) uint8, height (H, W) uint16, roughness and ao (H, W) uint8.

    `img`: any layout and dtype of core.imageio ((H, W) grey, (H, W, 2), (H, W, 3) or (H, W, 4); uint8,
    uint16, bool or float in 0…1), any H, W ≥ 1; the albedo is its colour as (H, W, 3) uint8 (grey repeated,
    alpha left out). `roughness`: the base value, 0…1, raised by local detail and lowered on bright smooth
    areas (the shipped styles use 0.45–0.9). `normal_strength`: bumpiness, ≥ 0 (1 as in Blender).
    Every filter wraps around, so each map is exactly as tileable as the image: the maps of a seamless image
    are seamless; those of a photo that is not show its seam too (`make_tileable` it first).
    Raises ValueError for an unknown map, another array, or a roughness or strength out of range."""
    roughness = check_roughness(roughness)
    from .imageio import to_rgb8

    maps = check_maps(maps)
    albedo = np.array(to_rgb8(img))  # a copy of its own (to_rgb8 may return a read-only view)
    return derive(albedo, maps, roughness=roughness, normal_strength=normal_strength)
