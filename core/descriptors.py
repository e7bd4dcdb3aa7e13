"""Image descriptors φ: a small fixed vector per image, with numpy only, that places an image within its style.

A per-image generator (core.generator, `GeneratorConfig.descriptor_dim` > 0) embeds training image i of
style c as style[c] + image_code(φ̂_i), where φ̂ is φ standardised with the training set's mean and standard
deviation (`fit`, `standardise`; both are stored with the weights, so any later image, a user's photo too, maps
the same way). The 13 dimensions (DIM), in this order:
  0–2    mean of R, G, B;
  3–5    standard deviation of R, G, B;
  6–10   fraction of the luminance spectral power (DC removed) at periods of 2–4, 4–8, 8–16, 16–32 and
         32–64 px (BANDS; the rest, diagonals under 2 px and periods over 64 px, is in no band);
  11–12  anisotropy: the power-weighted mean of cos 2θ and sin 2θ over every frequency, θ the angle of the
         frequency vector (fx along columns, fy down rows): about -1, 0 for stripes along x (varying down the
         rows), +1, 0 for stripes along y, 0, ±1 for the diagonals, 0, 0 for isotropic texture.
Luminance is Rec. 709's weighting of the values as they are (sRGB, not linearised). The image is taken as
periodic (the training images tile); a photo that does not tile adds power along the axes from its seam.
"""

from __future__ import annotations

import numpy as np

BANDS = ((2, 4), (4, 8), (8, 16), (16, 32), (32, 64))  # periods in pixels, [short, long)
DIM = 6 + len(BANDS) + 2
LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709


def describe(img: np.ndarray) -> np.ndarray:
    """φ of one image: (H, W, 3) float in [0, 1], any H, W ≥ 1 → (DIM,) float32, as the module docstring lists.
    A flat image has no spectral power: its band fractions and anisotropy are 0. Raises ValueError for
    another shape."""
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or min(img.shape) < 1:
        raise ValueError(f"image of shape {getattr(img, 'shape', None)} is not (H, W, 3) with H, W ≥ 1")
    x = img.astype(np.float64)
    colour = np.concatenate([x.mean(axis=(0, 1)), x.std(axis=(0, 1))])
    luma = x @ LUMA
    power = np.abs(np.fft.fft2(luma - luma.mean())) ** 2  # (H, W); the DC term is now 0
    h, w = luma.shape
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]  # cycles per pixel
    r2 = fx**2 + fy**2
    total = power.sum()
    if total <= 1e-12 * h * w:  # flat: nothing to measure
        return np.concatenate([colour, np.zeros(len(BANDS) + 2)]).astype(np.float32)
    r = np.sqrt(r2)
    bands = [power[(r > 1 / long) & (r <= 1 / short)].sum() / total for short, long in BANDS]
    r2[0, 0] = 1.0  # the DC term has no angle (and no power)
    cos2, sin2 = (fx**2 - fy**2) / r2, 2 * fx * fy / r2
    aniso = [(power * cos2).sum() / total, (power * sin2).sum() / total]
    return np.concatenate([colour, bands, aniso]).astype(np.float32)


def fit(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std), each (DIM,) float32, of the descriptors `raw` (N, DIM) of a training set, N ≥ 1. A
    dimension that does not vary (std under 1e-6, e.g. one image) gets std 1, so it standardises to 0."""
    assert raw.ndim == 2 and raw.shape[0] >= 1, f"want (N, {DIM}) descriptors, got {raw.shape}"
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    return mean.astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)


def standardise(raw: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(raw - mean) / std: descriptors (…, DIM) → float32 of the same shape, in the training set's units."""
    return ((raw - mean) / std).astype(np.float32)
