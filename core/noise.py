"""The generator's noise grid from a seed, with numpy only: one seed gives one texture on every path.

The PyTorch path (`TextureGenerator.make_noise` given seeds) and the torch-free runtime (core.runtime)
both take their random numbers from here, drawn by `numpy.random.default_rng(seed)` (PCG64) in a fixed
order, so a seed means the same texture whichever path or device draws it (up to float rounding).
Training keeps drawing with a torch.Generator; only textures asked for by seed come from here.

Layout: every array is float32, channels first, one seed (no batch axis); the grid a generator takes
is (1, noise_dim, H, W) for H × W cells (see core.generator for what each part means).

A per-image generator's file holds a table of members, one style embedding per training image; a seed picks
one member of each style (`member_embedding`) from the seed's own child stream, `SeedSequence(seed).spawn(1)[0]`,
which `draw` never touches: the noise of a seed is the same with members or without.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import GeneratorConfig, UpscalerConfig


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


MEMBER_STREAM = 0  # the spawn key of a seed's member stream: SeedSequence(seed).spawn(1)[0]
UPSCALER_STREAM = 1  # that of the noise of an upscaler with noise inputs


def upscaler_noise(channels: int, shape: tuple[int, int], seed: int) -> np.ndarray:
    """The noise inputs of an upscaler (core.upscaler, UpscalerConfig.noise channels) for the texture of
    `seed`: (1, channels, H, W) float32 standard normal, (H, W) the last stage's resolution. From the seed's
    own child stream (spawn key UPSCALER_STREAM), so the GAN's noise and the member pick stay as they are."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(UPSCALER_STREAM,)))
    return rng.standard_normal((1, channels, *shape), dtype=np.float32)


def upscaler_inputs(cfg: UpscalerConfig, shape: tuple[int, ...], seeds: list[int]) -> np.ndarray | None:
    """The noise inputs `generate` gives an upscaler of config `cfg` for images of `shape` (B, 3, H, W), one
    seed per image (`upscaler_noise`): (B, cfg.noise, H·s, W·s) float32, s = cfg.noise_scale; None for an
    upscaler without noise inputs. Both the PyTorch path and the runtime take them from here."""
    if not cfg.noise:
        return None
    assert len(seeds) == shape[0], f"one seed per image: {len(seeds)} seeds for {shape[0]} images"
    s = cfg.noise_scale
    return np.concatenate([upscaler_noise(cfg.noise, (shape[2] * s, shape[3] * s), seed) for seed in seeds])


def pick_members(member_style: np.ndarray, styles: int, seed: int) -> np.ndarray:
    """The member each style draws for `seed` → (styles,) int64, indices into the member table. `member_style`
    (N,) int: each member's style index, every style from 0 to styles - 1 having at least one member
    (core.weights.read_members checks it). Style c takes its members in table order and picks the one at
    ⌊u_c · count⌋ for u = the first `styles` uniforms of the seed's member stream (not of `draw`'s stream), so a
    style picks the same member for a seed alone or in a mix."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(MEMBER_STREAM,)))
    u = rng.random(styles)
    picks = np.empty(styles, dtype=np.int64)
    for c in range(styles):
        own = np.flatnonzero(member_style == c)
        assert len(own), f"style {c} has no member"
        picks[c] = own[min(int(u[c] * len(own)), len(own) - 1)]
    return picks


def member_embedding(w: np.ndarray, table: np.ndarray, member_style: np.ndarray, seed: int) -> np.ndarray:
    """The style embedding (1, style_dim) float32 a per-image generator takes for mixing weights `w` (1, styles)
    and `seed`: Σ_c w_c · table[member of c] (`pick_members`), i.e. each style's chosen member, mixed. `table`
    (N, style_dim) float32: style[c] + image_code(φ_i) per member; `member_style` (N,) int. The PyTorch path
    (core.api) and the runtime (core.runtime) both call this, so a seed picks the same member on both."""
    assert w.ndim == 2 and w.shape[0] == 1, f"want (1, styles) weights, got {w.shape}"
    picks = pick_members(member_style, w.shape[1], seed)
    return (w.astype(np.float32) @ table[picks].astype(np.float32)).astype(np.float32)
