"""The generator's noise grid from a seed, with numpy only: one seed gives one texture on every path.

The PyTorch path (`TextureGenerator.make_noise` given seeds) and the torch-free runtime (core.runtime)
both take their random numbers from here, drawn by `numpy.random.default_rng(seed)` (PCG64) in a fixed
order, so a seed means the same texture whichever path or device draws it (up to float rounding).
Training keeps drawing with a torch.Generator; only textures asked for by seed come from here.

Layout: every array is float32, channels first, one seed (no batch axis); the grid a generator takes
is (1, noise_dim, H, W) for H × W cells (see core.generator for what each part means).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import GeneratorConfig


@dataclass(frozen=True)
class Draws:
    """One seed's random numbers for a grid of cells (H, W), float32."""

    local: np.ndarray       # (local_dim, H, W) standard normal
    glob: np.ndarray        # (global_dim, 1, 1) standard normal, the same for every cell
    phase: np.ndarray       # (periodic_dim, 1, 1) in [0, 2π)
    detail: np.ndarray      # (detail_dim, H, W) standard normal: each level's detail map, pixel-unshuffled
    fine_phase: np.ndarray  # (fine_periodic_dim, 1, 1) in [0, 2π); (0, 1, 1) without fine waves


def draw(cfg: GeneratorConfig, cells: tuple[int, int], seed: int) -> Draws:
    """A seed's draws for `cells` = (H, W) ≥ (1, 1), in this order: local, global, phase, detail,
    fine phase. `seed` is a whole number from 0 to 2**64 - 1 (the caller checks it: core.api.check_seed).
    The order and the calls are the format of a seed: changing either changes every texture."""
    h, w = cells
    assert h >= 1 and w >= 1, f"cells {cells} must be at least 1×1"
    rng = np.random.default_rng(seed)
    two_pi = np.float32(2 * math.pi)
    local = rng.standard_normal((cfg.local_dim, h, w), dtype=np.float32)
    glob = rng.standard_normal((cfg.global_dim, 1, 1), dtype=np.float32)
    phase = rng.random((cfg.periodic_dim, 1, 1), dtype=np.float32) * two_pi
    detail = rng.standard_normal((cfg.detail_dim, h, w), dtype=np.float32)
    fine_phase = rng.random((cfg.fine_periodic_dim, 1, 1), dtype=np.float32) * two_pi
    return Draws(local, glob, phase, detail, fine_phase)


def waves(freq: np.ndarray, cells: tuple[int, int], n: int, phase: np.ndarray) -> np.ndarray:
    """sin(2π(kx·x/W + ky·y/H) + φ) on H·n × W·n samples: (C, H·n, W·n) float32, the numpy twin of
    core.generator.waves for one seed. `freq` (C, 2) in cycles per cell, rounded to whole wave numbers
    per tile (so every wave closes on the torus); `phase` (C, 1, 1)."""
    h, w = cells
    k = np.round(freq.astype(np.float32) * np.array([w, h], dtype=np.float32))  # cycles per tile
    xs = np.arange(w * n, dtype=np.float32) / np.float32(w * n)
    ys = np.arange(h * n, dtype=np.float32) / np.float32(h * n)
    arg = k[:, 0, None, None] * xs[None, None, :] + k[:, 1, None, None] * ys[None, :, None]
    return np.sin(np.float32(2 * math.pi) * arg + phase).astype(np.float32)


def pixel_unshuffle(x: np.ndarray, n: int) -> np.ndarray:
    """(C, H·n, W·n) → (C·n², H, W), channel c·n² + i·n + j holding pixel (i, j) of each n × n block
    (torch.nn.functional.pixel_unshuffle's order)."""
    c, hn, wn = x.shape
    return x.reshape(c, hn // n, n, wn // n, n).transpose(0, 2, 4, 1, 3).reshape(c * n * n, hn // n, wn // n)


def grid(cfg: GeneratorConfig, d: Draws, freq: np.ndarray, fine_freq: np.ndarray | None = None) -> np.ndarray:
    """The noise grid (1, noise_dim, H, W) float32 from a seed's draws and the style's wave frequencies:
    `freq` (periodic_dim, 2) and, with fine waves, `fine_freq` (fine_periodic_dim, 2), in cycles per cell
    (the generator's `wave` and `fine_wave` layers applied to the style embedding)."""
    h, w = d.local.shape[1:]
    parts = [d.local, np.broadcast_to(d.glob, (cfg.global_dim, h, w)), waves(freq, (h, w), 1, d.phase), d.detail]
    if cfg.fine_periodic_dim:
        assert fine_freq is not None, "this generator has fine waves: pass their frequencies"
        n = 2 ** cfg.fine_level
        parts.append(pixel_unshuffle(waves(fine_freq, (h, w), n, d.fine_phase), n))
    z = np.concatenate(parts, axis=0)[None]
    assert z.shape[1] == cfg.noise_dim, f"noise has {z.shape[1]} channels, want {cfg.noise_dim}"
    return np.ascontiguousarray(z, dtype=np.float32)
