"""A sheet of the structured styles from several generators, to judge by eye whether they read as their names.

    python tools/structure_sheet.py OUT.png LABEL=MODELS [LABEL=MODELS …] [--crop 128]

Rows are the structured styles (brick, stone_wall, tiles, paving, roof, wood, metal); for each generator
(MODELS: a models folder holding a generator file, or `shipped`) three seeds (10 000–10 002) of the GAN's own
256² output, shown as a --crop² window at 1:1 around the texture's wrap (its corner), so a seam would show
as a cross; a style a generator lacks is left black. The last column is the first curated validation
texture of each style at the GAN's scale (≤ 256 px), for comparison.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.api import load_generator  # noqa: E402
from core.eval import default_data  # noqa: E402
from core.imageio import read_image, to_uint8, write_png  # noqa: E402

STYLES = ["brick", "stone_wall", "tiles", "paving", "roof", "wood", "metal"]
SEEDS = [10_000, 10_001, 10_002]


def generated(models: str, crop: int) -> np.ndarray:
    """One column block: rows of STYLES, SEEDS side by side, each a crop² window across the wrap."""
    gen = load_generator("cpu", None if models == "shipped" else models)
    rows = []
    for s in STYLES:
        row = []
        for k in SEEDS:
            if s not in gen.styles:
                row.append(np.zeros((crop, crop, 3), np.uint8))
                continue
            with torch.inference_mode():
                img = to_uint8(gen.generate_gan(s, seed=k, size=256).clamp(0, 1))
            start = 256 - crop // 2
            row.append(np.tile(img, (2, 2, 1))[start:start + crop, start:start + crop])
        rows.append(np.concatenate(row, 1))
    return np.concatenate(rows, 0)


def real(crop: int) -> np.ndarray:
    data = default_data()
    cells = []
    for s in STYLES:
        img = read_image(sorted((data / "gan" / "val" / s).glob("*.png"))[0])
        h, w = img.shape[:2]
        scale = 256 / max(h, w)
        img = np.asarray(Image.fromarray(img).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                     Image.Resampling.LANCZOS))
        cell = np.zeros((crop, crop, 3), np.uint8)
        cell[:min(crop, img.shape[0]), :min(crop, img.shape[1])] = img[:crop, :crop]
        cells.append(cell)
    return np.concatenate(cells, 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("columns", nargs="+", help="LABEL=MODELS (a models folder, or shipped)")
    p.add_argument("--crop", type=int, default=128, help="side of each window, px (default 128)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    blocks = [(label, generated(models, args.crop)) for label, models in (c.split("=", 1) for c in args.columns)]
    blocks.append(("real (validation)", real(args.crop)))
    gap, top, left = 8, 22, 84
    sheet = Image.new("RGB", (left + sum(b.shape[1] + gap for _, b in blocks), top + len(STYLES) * args.crop),
                      (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    x = left
    for label, block in blocks:
        sheet.paste(Image.fromarray(block), (x, top))
        draw.text((x + 2, 5), label, fill=(230, 230, 230))
        x += block.shape[1] + gap
    for i, s in enumerate(STYLES):
        draw.text((6, top + i * args.crop + args.crop // 2 - 6), s, fill=(230, 230, 230))
    print(write_png(args.out, np.asarray(sheet)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
