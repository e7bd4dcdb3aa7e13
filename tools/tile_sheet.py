"""docs/tile_sheet.png and the measurements behind `tessera tile` (core/tile.py).

    python tools/tile_sheet.py --out docs/tile_sheet.png [--photos DIR] [--measure]

The sheet: for each of a few validation photos that do not tile, the photo tiled 2×2 as it is (the seam
shows as a cross) beside the result of `make_tileable` tiled 2×2. `--measure` also compares variants on 64
random crops (112–240 px, so none of them tiles) of the photos, averaged over the crops:

  seam       seam ratio (core.metrics; 1 = the wrap-around edge is like any neighbour pair)
  detail     gradient energy within patch/2 of the borders against the centre, divided by the same ratio
             for the crop (1 = as detailed as the photo there; a cross-fade's ghosting and blur lower it)
  cuts       mean difference across the border of the re-synthesised region against all neighbour pairs
             (1 = the cuts do not stand out)

Photos: the curated validation split (default ~/.cache/tessera/curated_old/gan/val, one folder per
style), never seen in training.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.demo import contact_sheet  # noqa: E402
from core.files import cache_dir  # noqa: E402
from core.imageio import read_image, write_png  # noqa: E402
from core.metrics import seam_percentile, seam_ratio  # noqa: E402
from core.tile import _quilt, default_patch, make_tileable  # noqa: E402

# (file, crop box (y, x, height, width) or None): a crop of a photo that tiles, and two that do not
SHEET_PHOTOS = (("dirt/dirt_33b8714951.png", (16, 16, 200, 232)), ("wood/wood_3a8442feb3.png", None),
                ("roof/roof_992ae2a5ea.png", None))


def crossfade(img: np.ndarray, band: int) -> np.ndarray:
    """The usual quick fix, for comparison: blend the image into its copy rolled by half across, with weights
    ramping from 0 at the borders to 1 at `band` px in, then the same down the result."""
    x = img.astype(np.float64)
    for axis in (1, 0):
        n = x.shape[axis]
        ramp = np.clip(np.minimum(np.arange(n), n - 1 - np.arange(n)) / band, 0, 1)
        wgt = ramp[None, :, None] if axis == 1 else ramp[:, None, None]
        x = wgt * x + (1 - wgt) * np.roll(x, n // 2, axis=axis)
    return np.round(x).astype(np.uint8)


def _gradient(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64) / 255
    g = np.zeros(x.shape[:2])
    g[:, :-1] += np.abs(np.diff(x, axis=1)).mean(axis=2)
    g[:-1] += np.abs(np.diff(x, axis=0)).mean(axis=2)
    return g


def detail_ratio(photo: np.ndarray, out: np.ndarray, band: int) -> float:
    h, w = photo.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    near = np.minimum(np.minimum(yy, h - 1 - yy), np.minimum(xx, w - 1 - xx)) < band
    before, after = _gradient(photo), _gradient(out)
    return float((after[near].mean() / after[~near].mean()) / (before[near].mean() / before[~near].mean()))


def cut_ratio(out: np.ndarray, changed: np.ndarray) -> float:
    x = out.astype(np.float64) / 255
    across = np.abs(np.diff(x, axis=1)).mean(axis=2), np.abs(np.diff(x, axis=0)).mean(axis=2)
    edges = changed[:, 1:] != changed[:, :-1], changed[1:] != changed[:-1]
    on_cut = np.concatenate([across[0][edges[0]], across[1][edges[1]]])
    return float(on_cut.mean() / np.concatenate([a.ravel() for a in across]).mean())


def crops(photos: Path, n: int = 64, seed: int = 1) -> list[np.ndarray]:
    files = sorted(photos.glob("*/*.png"))
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.choice(len(files), size=min(n, len(files)), replace=False):
        img = read_image(files[i])
        hh, ww = img.shape[:2]
        h = int(rng.integers(min(160, hh - 16), min(240, hh) + 1))
        w = int(rng.integers(min(160, ww - 16), min(240, ww) + 1))
        y, x = int(rng.integers(0, hh - h + 1)), int(rng.integers(0, ww - w + 1))
        out.append(img[y:y + h, x:x + w])
    return out


def measure(photos: Path) -> None:
    """Print the table of variants (see the module docstring) on 64 crops of the photos."""
    def straight(cost: np.ndarray) -> np.ndarray:
        return np.full(cost.shape[0], cost.shape[1] // 2)

    Variant = Callable[[np.ndarray, int], tuple[np.ndarray, "np.ndarray | None"]]
    variants: dict[str, Variant] = {
        "cross-fade, band patch/2": lambda c, p: (crossfade(c, p // 2), None),
        "quilting, minimum-error cuts (kept)": lambda c, p: _quilt(c, patch=None, seed=0),
        "quilting, straight cuts": lambda c, p: _quilt(c, patch=None, seed=0, cut=straight),
        "quilting, SSD only (no detail term)": lambda c, p: _quilt(c, patch=None, seed=0, detail=0.0),
        "quilting, overlap patch/3": lambda c, p: _quilt(c, patch=None, seed=0, overlap=p // 3),
    }
    samples = crops(photos)
    print(f"{len(samples)} crops: seam ratio {np.mean([seam_ratio(c) for c in samples]):.2f}, "
          f"seam percentile {np.mean([seam_percentile(c) for c in samples]):.2f}")
    for name, variant in variants.items():
        seams, pct, details, cuts = [], [], [], []
        for c in samples:
            p = default_patch(*c.shape[:2])
            out, changed = variant(c, p)
            seams.append(seam_ratio(out))
            pct.append(seam_percentile(out))
            details.append(detail_ratio(c, out, p // 2))
            if changed is not None:
                cuts.append(cut_ratio(out, changed))
        cut = f"{np.mean(cuts):.3f}" if cuts else "  -  "
        print(f"{name:38s} seam {np.mean(seams):.3f} ± {np.std(seams) / np.sqrt(len(seams)):.3f}  "
              f"percentile {np.mean(pct):.2f}  detail {np.mean(details):.3f}  cuts {cut}", flush=True)


def sheet(photos: Path, names: tuple[tuple[str, tuple[int, int, int, int] | None], ...] = SHEET_PHOTOS,
          cell: int = 384) -> np.ndarray:
    """Each photo tiled 2×2 beside its `make_tileable` result tiled 2×2 → (H, W, 3) uint8."""
    images = {}
    for name, box in names:
        img = read_image(photos / name)
        if box is not None:
            y, x, h, w = box
            img = img[y:y + h, x:x + w]
        style = Path(name).parent.name
        what = f"{img.shape[1]}x{img.shape[0]} crop" if box else "photo"
        images[f"{style}: {what}, seam ratio {seam_ratio(img):.2f}"] = img
        out = make_tileable(img)
        images[f"{style}: tessera tile, {seam_ratio(out):.2f}"] = out
    return contact_sheet(images, cell=cell, columns=2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/tile_sheet.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "tile_sheet.png")
    p.add_argument("--photos", type=Path, default=cache_dir() / "curated_old" / "gan" / "val",
                   help="validation photos, one folder per style")
    p.add_argument("--measure", action="store_true", help="also compare the variants on 64 crops")
    args = p.parse_args(argv)
    if not args.photos.is_dir():
        print(f"error: {args.photos}: no such folder (the curated validation photos)", file=sys.stderr)
        return 2
    if args.measure:
        measure(args.photos)
    print(write_png(args.out, sheet(args.photos)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
