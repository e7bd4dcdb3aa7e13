"""docs/detail_sheet.png: what the ×4 upscalers make of the same GAN output, at 100 % zoom.

    python tools/detail_sheet.py --out docs/detail_sheet.png [--detail FILE] [--data DIR] [--styles a,b]

One row per style: a crop of one 1024² texture (the same GAN output, seed 10 000 as the realism test's first)
upscaled ×4 by bicubic on the torus, by the faithful upscaler (trained for PSNR) and by the detail upscaler
(trained adversarially or with grain), each pixel shown as one pixel; beside them a crop of a held-out real
texture of the style at the same scale (≥ 1024 px resized to 1024: the realism test's detail/val set, else
detail/train) for reference.
`--detail` takes an upscaler file to show instead of the loaded detail one (to look before shipping it; its
column then says "not shipped").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import weights  # noqa: E402
from core.api import GAN_SCALE, load_generator  # noqa: E402
from core.files import cache_dir  # noqa: E402
from core.imageio import read_image, to_uint8, write_png  # noqa: E402
from core.upscaler import seed_noise, wrap_upsample  # noqa: E402

CROP = 192
COLUMNS = ("bicubic", "faithful (PSNR)", "detail", "real, same scale")
EXPERIMENT = "detail, not shipped"  # the third column's label for a --detail file


def label_row(texts: tuple[str, ...], width: int, gap: int) -> np.ndarray:
    """A white strip with each text over its column, in Pillow's default font."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (len(texts) * (width + gap) - gap, 18), "white")
    draw = ImageDraw.Draw(strip)
    for i, t in enumerate(texts):
        draw.text((i * (width + gap) + 4, 3), t, fill="black")
    return np.asarray(strip)


def sheet(rows: list[list[np.ndarray]], columns: tuple[str, ...] = COLUMNS, gap: int = 4) -> np.ndarray:
    """Rows of equal (CROP, CROP, 3) uint8 crops → one picture with white gaps and the column labels on top."""
    lines = [label_row(columns[:len(rows[0])], CROP, gap)]
    for row in rows:
        white = np.full((CROP, gap, 3), 255, np.uint8)
        lines += [np.full((gap, lines[0].shape[1], 3), 255, np.uint8),
                  np.concatenate([c for img in row for c in (img, white)][:-1], axis=1)]
    return np.concatenate(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "detail_sheet.png")
    p.add_argument("--detail", type=Path, default=None, help="a ×4 upscaler file to show as the detail one")
    p.add_argument("--models", default=None, help="models folder (default: the shipped weights)")
    p.add_argument("--data", type=Path, default=cache_dir() / "curated", help="curated data (python -m training data)")
    p.add_argument("--styles", default="grass,rock,sand,dirt,paving",
                   help="comma-separated (default: the shipped styles with held-out textures ≥ 1024 px)")
    args = p.parse_args(argv)
    gen = load_generator(device="cpu", models_dir=args.models)
    detail = weights.build(args.detail)[0].eval() if args.detail else (gen.detail[0] if gen.detail else None)
    if detail is None:
        print("error: no detail upscaler loaded: pass --detail FILE", file=sys.stderr)
        return 2
    seed = 10_000  # as the realism test's first; an upscaler with noise inputs draws them from it, as generate does
    upscalers = (lambda x: wrap_upsample(x, GAN_SCALE), gen.upscalers[GAN_SCALE][0],
                 lambda x: detail(x, seed_noise(detail.cfg, tuple(x.shape), [seed])))
    rows = []
    for style in [s.strip() for s in args.styles.split(",") if s.strip()]:
        x = gen.generate_gan(style, seed=seed, size=1024 // GAN_SCALE)
        y0 = x0 = 1024 // 3
        row = []
        for up in upscalers:
            with torch.inference_mode():
                row.append(to_uint8(up(x).clamp(0, 1))[y0:y0 + CROP, x0:x0 + CROP])
        real = sorted((args.data / "detail" / "val" / style).glob("*.png")) or sorted(
            (args.data / "detail" / "train" / style).glob("*.png"))
        if real:
            img = read_image(real[0])
            cy, cx = (img.shape[0] - CROP) // 2, (img.shape[1] - CROP) // 2
            row.append(img[cy:cy + CROP, cx:cx + CROP])
        else:
            row.append(np.full((CROP, CROP, 3), 255, np.uint8))
        rows.append(row)
    columns = (*COLUMNS[:2], EXPERIMENT, *COLUMNS[3:]) if args.detail else COLUMNS
    write_png(args.out, sheet(rows, columns))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
