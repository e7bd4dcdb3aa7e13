"""New seamless textures from one photo: image quilting on a torus.

Image quilting (Efros & Freeman, "Image Quilting for Texture Synthesis and Transfer", SIGGRAPH 2001)
grows a texture from square patches of an exemplar: each new patch is the window of the exemplar whose
overlap with what is already there matches best (a random pick among those within 10 % of the best), and
it is pasted along the minimum-error boundary through each overlap. Here the canvas is a torus: the patches
of the last column overlap the first column and those of the last row the first row, so their cuts close
the texture on itself and it tiles by construction. The search and the cuts are core.tile's (FFT errors
with a detail term, dynamic-programming cuts).

Pixels are copied, never blended: the result holds only the exemplar's pixels, at the exemplar's scale
(no blur band, no ghosting), in its dtype and layout. Different seeds pick different patches.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .imageio import check_array, to_unit
from .tile import DETAIL_WEIGHT, MIN_PATCH, TOLERANCE, _Search, min_cut

MIN_EXEMPLAR = 32
SEARCH_SIDE = 384  # exemplars larger than this are searched at a reduced scale, then refined at full size:
                   # a 1024² texture from a 512² photo 2.6–2.8× faster than searched at full size, alike to the eye


def default_patch(height: int, width: int) -> int:
    """The patch side for an exemplar of that size: a quarter of its shorter side, from MIN_PATCH to 128 px
    (large enough for a few bricks or boards, small enough to leave many windows to choose from)."""
    return int(min(128, max(MIN_PATCH, min(height, width) // 4)))


def check_patch(patch: Any, height: int, width: int) -> int:
    """`patch` as an int when it fits an exemplar of height × width px: a whole number from MIN_PATCH (8) to
    half the shorter side. Raises ValueError saying what would fit."""
    if isinstance(patch, bool) or not isinstance(patch, (int, np.integer)) \
            or not MIN_PATCH <= patch <= min(height, width) // 2:
        raise ValueError(f"patch {patch!r} does not fit a {width}×{height} exemplar: use a whole number from "
                         f"{MIN_PATCH} to {min(height, width) // 2} (half its shorter side)")
    return int(patch)


def synthesize(exemplar: np.ndarray, height: int, width: int, *, patch: int | None = None,
               seed: int = 0) -> np.ndarray:
    """A new texture of height × width px, seamless on the torus, quilted from `exemplar`.

    `exemplar`: (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or (H, W, 4) RGBA in a core.imageio
    dtype, H and W ≥ MIN_EXEMPLAR (32); it need not tile. `height`, `width`: the output size in px, each at
    least 2 patches. `patch`: the side of the quilting patches in px, from MIN_PATCH (8) to half the
    exemplar's shorter side; default `default_patch`. `seed` ≥ 0: which near-best patches are picked.
    Returns an array of the exemplar's dtype and layout. Raises ValueError for another layout or dtype, an
    exemplar too small, a patch out of range, an output smaller than two patches or a negative seed.
    Method: Efros & Freeman 2001 on a torus (module docstring)."""
    exemplar = check_array(exemplar, "exemplar")
    h, w = exemplar.shape[:2]
    if min(h, w) < MIN_EXEMPLAR:
        raise ValueError(f"exemplar of {w}×{h} px is too small to quilt from: it needs at least "
                         f"{MIN_EXEMPLAR}×{MIN_EXEMPLAR} px")
    p = default_patch(h, w) if patch is None else check_patch(patch, h, w)
    if height < 2 * p or width < 2 * p:
        raise ValueError(f"output of {width}×{height} px is too small for patches of {p} px: it needs at least "
                         f"{2 * p}×{2 * p}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed {seed!r} must be a whole number ≥ 0")
    ov = max(2, p // 4)
    unit = to_unit(exemplar)
    feats = unit[..., None] if unit.ndim == 2 else unit
    rng = np.random.default_rng(int(seed))
    search = _Search(feats, DETAIL_WEIGHT, SEARCH_SIDE)

    # canvas[y, x] = exemplar[rows[y, x], cols[y, x]]; a grid of patches whose starts split each side evenly
    rows = np.zeros((height, width), np.int64)
    cols = np.zeros((height, width), np.int64)
    filled = np.zeros((height, width), bool)
    ny, nx = math.ceil(height / (p - ov)), math.ceil(width / (p - ov))
    ys = [round(k * height / ny) for k in range(ny + 1)]
    xs = [round(k * width / nx) for k in range(nx + 1)]
    j = np.arange(ov)
    for a in range(ny):
        for b in range(nx):
            ph, pw = ys[a + 1] - ys[a] + ov, xs[b + 1] - xs[b] + ov
            rr, cc = (ys[a] + np.arange(ph)) % height, (xs[b] + np.arange(pw)) % width
            done = filled[np.ix_(rr, cc)]
            if not done.any():  # the first patch: anywhere, all of it new
                sy, sx = int(rng.integers(h - ph + 1)), int(rng.integers(w - pw + 1))
                new = ~done
            else:
                old = feats[rows[np.ix_(rr, cc)], cols[np.ix_(rr, cc)]]
                weight = done.astype(np.float32)
                e = search.errors(old, weight)
                best = e.min()
                cy, cx = np.nonzero(e <= best * (1 + TOLERANCE) + 1e-9 * (1 + best))
                pick = int(rng.integers(len(cy)))
                sy, sx = search.refine(int(cy[pick]), int(cx[pick]), old, weight)
                err = ((feats[sy:sy + ph, sx:sx + pw] - old) ** 2).sum(axis=2) * done
                keep = np.zeros((ph, pw), bool)  # old pixels that stay: on their side of some band's cut
                if done[:, :ov].all():
                    keep[:, :ov] |= j[None, :] < min_cut(err[:, :ov])[:, None]
                if done[:, pw - ov:].all():
                    keep[:, pw - ov:] |= j[None, :] > min_cut(err[:, pw - ov:])[:, None]
                if done[:ov].all():
                    keep[:ov] |= j[:, None] < min_cut(err[:ov].T)[None, :]
                if done[ph - ov:].all():
                    keep[ph - ov:] |= j[:, None] > min_cut(err[ph - ov:].T)[None, :]
                new = ~(keep & done)
            ii, jj = np.nonzero(new)
            rows[rr[ii], cc[jj]] = sy + ii
            cols[rr[ii], cc[jj]] = sx + jj
            filled[rr[ii], cc[jj]] = True
    return exemplar[rows, cols]
