"""PBR maps derived from an albedo: height, normal, roughness and ambient occlusion, all on the torus.

Every filter here is periodic — Gaussian blurs are products in the Fourier domain of the whole image,
derivatives are circular central differences — so each map is exactly as tileable as the albedo:
maps(roll(albedo)) == roll(maps(albedo)). Scales are fractions of the image side, so a 2048² texture gets
the same maps as its 1024² version, only sharper. Deterministic: no randomness, float32 on the CPU.

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
import torch

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
    unknown = [m for m in maps if m not in MAPS]
    if unknown or not maps:
        what = f"unknown map {unknown[0]!r}" if unknown else "no maps chosen"
        raise ValueError(f"{what}: choose from {', '.join(MAPS)}")
    return tuple(dict.fromkeys(maps))  # unique, in the order given


def luminance(albedo: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 sRGB → (H, W) float32 linear luminance (Rec. 709)."""
    c = torch.from_numpy(albedo).float() / 255.0
    lin = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin @ torch.tensor([0.2126, 0.7152, 0.0722])


def _gaussian_lowpass(x: torch.Tensor, sigmas_px: list[float], weights: list[float] | None = None,
                      ) -> list[torch.Tensor]:
    """Periodic Gaussian blurs of a (H, W) image, one per sigma (in pixels), via one forward FFT.
    With `weights`, their weighted sum instead (one filter, one inverse FFT)."""
    h, w = x.shape
    spec = torch.fft.rfft2(x)
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    f2 = fy**2 + fx**2
    gains = [torch.exp(-2 * math.pi**2 * s**2 * f2) for s in sigmas_px]
    if weights is not None:
        gains = [sum(wt * g for wt, g in zip(weights, gains))]
    return [torch.fft.irfft2(spec * g, s=(h, w)) for g in gains]


def _normalise(x: torch.Tensor, bins: int = 4096) -> torch.Tensor:
    """Robust min–max to [0, 1] (0.5th and 99.5th percentiles), so a few outliers do not flatten it.

    Percentiles come from a histogram: linear time, and independent of pixel order, so a rolled image
    gets exactly the same mapping (a sort-free, sample-free way to keep maps tileable)."""
    x_min, x_max = x.min(), x.max()
    width = (x_max - x_min).clamp_min(1e-12) / bins
    cdf = torch.cumsum(torch.histc(x, bins=bins, min=float(x_min), max=float(x_max)), 0) / x.numel()
    lo = x_min + width * torch.searchsorted(cdf, torch.tensor(0.005)).float()
    hi = x_min + width * (torch.searchsorted(cdf, torch.tensor(0.995)).float() + 1)
    return ((x - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)


def height_map(y: torch.Tensor) -> torch.Tensor:
    """Linear luminance (H, W) → height (H, W) float32 in [0, 1]."""
    side = max(y.shape)
    (mix,) = _gaussian_lowpass(y, [s * side for s in _HEIGHT_SCALES], list(_HEIGHT_WEIGHTS))
    return _normalise(mix)


def normals_from_height(height: torch.Tensor, strength: float = DEFAULT_NORMAL_STRENGTH) -> torch.Tensor:
    """(H, W) height in [0, 1] → (H, W, 3) unit normals, OpenGL convention (x right, y up, z out).

    Slopes are measured per 1/1024 of the side, so the look does not depend on the resolution."""
    scale = strength * _NORMAL_GAIN * max(height.shape) / 1024
    dx = (torch.roll(height, -1, 1) - torch.roll(height, 1, 1)) * 0.5 * scale   # ∂h/∂x, x to the right
    dr = (torch.roll(height, -1, 0) - torch.roll(height, 1, 0)) * 0.5 * scale   # ∂h/∂row, rows go down
    n = torch.stack([-dx, dr, torch.ones_like(height)], dim=-1)  # y up = −row: ∂h/∂y = −∂h/∂row
    return n / n.norm(dim=-1, keepdim=True)


def roughness_map(y: torch.Tensor, base: float = DEFAULT_ROUGHNESS) -> torch.Tensor:
    """Linear luminance (H, W) → roughness (H, W) in [0.02, 1] around `base`."""
    side = max(y.shape)
    (mean,) = _gaussian_lowpass(y, [side / 256])
    (var,) = _gaussian_lowpass((y - mean) ** 2, [side / 256])
    detail = _normalise(var.clamp_min(0).sqrt())      # local contrast: 0 smooth … 1 busy
    bright = _normalise(mean)
    return (base + 0.25 * (detail - 0.5) - 0.1 * (bright - 0.5)).clamp(0.02, 1.0)


def ao_map(height: torch.Tensor) -> torch.Tensor:
    side = max(height.shape)
    blurs = _gaussian_lowpass(height, [s * side for s in _AO_SCALES])
    cavity = sum((b - height).clamp_min(0) for b in blurs) / len(blurs)
    return (1 - 2.5 * cavity).clamp(0, 1)


def _u8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def encode_normals(n: torch.Tensor) -> np.ndarray:
    return _u8(n * 0.5 + 0.5)


def decode_normals(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / 255.0 * 2 - 1


def derive(albedo: np.ndarray, maps: tuple[str, ...] = MAPS, *, roughness: float = DEFAULT_ROUGHNESS,
           normal_strength: float = DEFAULT_NORMAL_STRENGTH) -> dict[str, np.ndarray]:
    """albedo (H, W, 3) uint8 → {name: array}: albedo and normal (H, W, 3) uint8, height (H, W) uint16,
    roughness and ao (H, W) uint8."""
    maps = check_maps(maps)
    if not math.isfinite(normal_strength) or normal_strength < 0:
        raise ValueError(f"normal strength {normal_strength} must be a finite number ≥ 0")
    out: dict[str, np.ndarray] = {}
    y = luminance(albedo)
    height16 = height = None
    if {"height", "normal", "ao"} & set(maps):  # the others derive from the 16-bit height as saved,
        height16 = (height_map(y) * 65535).round().to(torch.int32).numpy().astype(np.uint16)
        height = torch.from_numpy(height16.astype(np.float32) / 65535)  # so the files agree exactly
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
