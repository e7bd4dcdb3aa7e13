"""The generator's noise grid from a seed, with numpy only: one seed gives one texture on every path.

The PyTorch path (`TextureGenerator.make_noise` given seeds) and the torch-free runtime (core.runtime)
both take their random numbers from here, drawn by `numpy.random.default_rng(seed)` (PCG64) in a fixed
order, so a seed means the same texture whichever path or device draws it (up to float rounding).
Training keeps drawing with a torch.Generator; only textures asked for by seed come from here.

Layout: every array is float32, channels first, one seed (no batch axis); the grid a generator takes
is (1, noise_dim, H, W) for H × W cells (see core.generator for what each part means).

A generator with layouts (`GeneratorConfig.layouts`) also takes, per seed, a few masonry-like lattices on the
torus (`layout`): courses of units in running bond (brick), stack bond (tiles, slabs) and planks, each of a
size drawn per seed. They come from the seed's own child stream (spawn key LAYOUT_STREAM), so the rest of a
seed's noise is the same with layouts or without.

A per-image generator's file holds a table of members, one style embedding per training image; a seed picks
one member of each style (`member_embedding`) from the seed's own child stream, `SeedSequence(seed).spawn(1)[0]`,
which `draw` never touches: the noise of a seed is the same with members or without.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import LATTICE_KINDS, GeneratorConfig, UpscalerConfig


@dataclass(frozen=True)
class Draws:
    """One seed's random numbers for a grid of cells (H, W), float32."""

    local: np.ndarray       # (local_dim, H, W) standard normal
    glob: np.ndarray        # (global_dim, 1, 1) standard normal, the same for every cell
    phase: np.ndarray       # (periodic_dim, 1, 1) in [0, 2π)
    detail: np.ndarray      # (detail_dim, H, W) standard normal: each level's detail map, pixel-unshuffled
    fine_phase: np.ndarray  # (fine_periodic_dim, 1, 1) in [0, 2π); (0, 1, 1) without fine waves
    layout: np.ndarray      # (layout_dim, H·n, W·n) in [-1, 1], n = 2**fine_level; (0, H·n, W·n) without layouts


def draw(cfg: GeneratorConfig, cells: tuple[int, int], seed: int) -> Draws:
    """A seed's draws for `cells` = (H, W) ≥ (1, 1), in this order: local, global, phase, detail,
    fine phase; then the layout from the seed's own stream (`layout`). `seed` is a whole number from 0 to
    2**64 - 1 (the caller checks it: core.api.check_seed). The order and the calls are the format of a seed:
    changing either changes every texture."""
    h, w = cells
    assert h >= 1 and w >= 1, f"cells {cells} must be at least 1×1"
    rng = np.random.default_rng(seed)
    two_pi = np.float32(2 * math.pi)
    local = rng.standard_normal((cfg.local_dim, h, w), dtype=np.float32)
    glob = rng.standard_normal((cfg.global_dim, 1, 1), dtype=np.float32)
    phase = rng.random((cfg.periodic_dim, 1, 1), dtype=np.float32) * two_pi
    detail = rng.standard_normal((cfg.detail_dim, h, w), dtype=np.float32)
    fine_phase = rng.random((cfg.fine_periodic_dim, 1, 1), dtype=np.float32) * two_pi
    return Draws(local, glob, phase, detail, fine_phase, layout(cells, 2 ** cfg.fine_level, cfg.layouts, seed))


@dataclass(frozen=True)
class Lattice:
    """Rows ("courses") of units on the torus, as in masonry; sizes in cells of the noise grid (a cell is
    `GeneratorConfig.stride` output pixels), each drawn log-uniformly per seed from its range."""

    name: str
    course: tuple[float, float]  # row height, cells
    aspect: tuple[float, float]  # unit length over row height
    bond: str                    # "running": every other row shifted by half a unit; "stack": none; "random": per row


# Ranges from the curated training images at the GAN's scale (16 px a cell): brick courses of 10–40 px,
# tiles and slabs of 16–80 px, boards 12–64 px wide.
LATTICES = (Lattice("running bond", (0.6, 2.5), (2.0, 3.5), "running"),
            Lattice("stack bond", (1.0, 5.0), (1.0, 2.0), "stack"),
            Lattice("planks", (0.8, 4.0), (4.0, 12.0), "random"))
assert len(LATTICES) == LATTICE_KINDS
LAYOUT_STREAM = 2  # the spawn key of a seed's layout stream


def lattice(lat: Lattice, cells: tuple[int, int], n: int, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One lattice drawn from `rng` on H·n × W·n samples of a grid of `cells` = (H, W): the row coordinate
    v (H·n,), the unit coordinate u (H·n, W·n) (joints where either is a whole number) and a uniform value
    in [-1, 1) per unit (H·n, W·n), all float64. A whole number of rows (an even one in running bond) and of
    units per row fit the tile, so the lattice closes on the torus; its size follows the grid (a wider grid
    holds more rows, not wider ones)."""
    h, w = cells
    course, aspect = (math.exp(rng.uniform(math.log(lo), math.log(hi))) for lo, hi in (lat.course, lat.aspect))
    phase_v, phase_u = rng.random(2)
    pair = 2 if lat.bond == "running" else 1
    rows = pair * max(1, round(h / course / pair))
    units = max(1, round(w / (course * aspect)))
    v = np.arange(h * n) / (h * n) * rows + phase_v
    row = np.floor(v).astype(np.int64) % rows
    if lat.bond == "random":
        shift = rng.random(rows)
    else:
        shift = (np.arange(rows) % 2) * 0.5 if lat.bond == "running" else np.zeros(rows)
    u = np.arange(w * n)[None, :] / (w * n) * units + phase_u + shift[row][:, None]
    unit = np.floor(u).astype(np.int64) % units
    return v, u, rng.uniform(-1, 1, (rows, units))[row[:, None], unit]


def layout(cells: tuple[int, int], n: int, count: int, seed: int) -> np.ndarray:
    """The first `count` lattices of LATTICES for `seed` on H·n × W·n samples of a grid of `cells` = (H, W):
    (3·count, H·n, W·n) float32 in [-1, 1]. Per lattice: cos 2πv (1 on the joints between rows), cos 2πu
    (1 on the joints between units, shifted per row by the bond) and a uniform value per unit (its own
    colour, wear, height), for v and u the row and unit coordinates (`lattice`). From the seed's layout
    stream, in a fixed order."""
    if not count:  # a generator without layouts: no stream to open (every seed's draw passes here)
        return np.zeros((0, cells[0] * n, cells[1] * n), np.float32)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(LAYOUT_STREAM,)))
    out = []
    for lat in LATTICES[:count]:
        v, u, value = lattice(lat, cells, n, rng)
        out += [np.broadcast_to(np.cos(2 * math.pi * v)[:, None], u.shape), np.cos(2 * math.pi * u), value]
    return np.stack(out).astype(np.float32)


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


def grid(cfg: GeneratorConfig, d: Draws, freq: np.ndarray, fine_freq: np.ndarray | None = None,
         layout_gate: float = 1.0) -> np.ndarray:
    """The noise grid (1, noise_dim, H, W) float32 from a seed's draws and the style's wave frequencies:
    `freq` (periodic_dim, 2) and, with fine waves, `fine_freq` (fine_periodic_dim, 2), in cycles per cell
    (the generator's `wave` and `fine_wave` layers applied to the style embedding); the layout channels
    scaled by `layout_gate`, the style mix's `cfg.layout_gate(weights)`."""
    h, w = d.local.shape[1:]
    n = 2 ** cfg.fine_level
    parts = [d.local, np.broadcast_to(d.glob, (cfg.global_dim, h, w)), waves(freq, (h, w), 1, d.phase), d.detail]
    if cfg.fine_periodic_dim:
        assert fine_freq is not None, "this generator has fine waves: pass their frequencies"
        parts.append(pixel_unshuffle(waves(fine_freq, (h, w), n, d.fine_phase), n))
    if cfg.layouts:
        parts.append(pixel_unshuffle(d.layout * np.float32(layout_gate), n))
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
