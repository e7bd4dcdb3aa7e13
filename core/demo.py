"""`python -m core.demo` (`make demo`): a full PBR set per shipped style and two contact sheets.

contact_sheet.png shows every albedo tiled 2×2, so a seam would show as a cross through each cell;
pbr_sheet.png shows each style's albedo, normal, height, roughness and AO side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def contact_sheet(images: dict[str, np.ndarray], cell: int = 384, columns: int = 5) -> np.ndarray:
    """Each image tiled 2×2, shrunk to `cell` px, labelled, in a grid → (H, W, 3) uint8."""
    from PIL import Image, ImageDraw, ImageFont

    names = list(images)
    rows = (len(names) + columns - 1) // columns
    label_h, pad = 22, 8
    sheet = Image.new("RGB", (columns * (cell + pad) + pad, rows * (cell + label_h + pad) + pad), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=15)
    for i, name in enumerate(names):
        r, c = divmod(i, columns)
        x, y = pad + c * (cell + pad), pad + r * (cell + label_h + pad)
        tiled = Image.fromarray(np.tile(images[name], (2, 2, 1))).resize((cell, cell), Image.Resampling.LANCZOS)
        sheet.paste(tiled, (x, y + label_h))
        draw.text((x + 2, y + 3), fit(draw, [f"{name}  (tiled 2x2)", name], font, cell - 4), fill=(230, 230, 230),
                  font=font)
    return np.asarray(sheet)


def fit(draw, labels: list[str], font, width: int) -> str:
    """The first of `labels` that fits in `width` px, else the last cut short with "…": a label never runs
    into the next cell."""
    for label in labels:
        if draw.textlength(label, font=font) <= width:
            return label
    label = labels[-1]
    while len(label) > 1 and draw.textlength(label + "…", font=font) > width:
        label = label[:-1]
    return label + "…"


def pbr_sheet(sets: dict[str, dict[str, np.ndarray]], cell: int = 192) -> np.ndarray:
    """One row per style: its maps side by side, labelled → (H, W, 3) uint8."""
    from PIL import Image, ImageDraw, ImageFont

    names = list(sets)
    maps = list(next(iter(sets.values())))
    label_w, pad = 90, 6
    sheet = Image.new("RGB", (label_w + len(maps) * (cell + pad) + pad, 24 + len(names) * (cell + pad) + pad),
                      (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=15)
    for j, m in enumerate(maps):
        draw.text((label_w + j * (cell + pad) + 4, 4), m, fill=(230, 230, 230), font=font)
    for i, name in enumerate(names):
        y = 24 + i * (cell + pad)
        draw.text((6, y + cell // 2 - 8), fit(draw, [name], font, label_w - 8), fill=(230, 230, 230), font=font)
        for j, m in enumerate(maps):
            img = sets[name][m]
            if img.dtype == np.uint16:
                img = (img >> 8).astype(np.uint8)
            tile = Image.fromarray(img).convert("RGB").resize((cell, cell), Image.Resampling.LANCZOS)
            sheet.paste(tile, (label_w + j * (cell + pad), y))
    return np.asarray(sheet)


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from .api import check_size, load_generator
    from .batch import file_name, write_maps
    from .imageio import write_png

    p = argparse.ArgumentParser(prog="python -m core.demo", description=__doc__)
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default=None, help="models folder (default: shipped weights)")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    try:
        check_size(args.size)
        gen = load_generator(device=args.device, models_dir=args.models)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    sets, times = {}, []
    for style in tqdm(gen.styles, desc="demo", unit="style"):
        t0 = time.perf_counter()
        sets[style] = gen.generate_maps(style, seed=args.seed, size=args.size)
        times.append(time.perf_counter() - t0)
        write_maps({m: out / file_name(style, args.seed, m) for m in sets[style]}, sets[style],
                   sweep=style == gen.styles[0])  # what killed runs left: swept once, with the first set
    sheet = write_png(out / "contact_sheet.png", contact_sheet({s: maps["albedo"] for s, maps in sets.items()}))
    maps_sheet = write_png(out / "pbr_sheet.png", pbr_sheet(sets))
    print(f"{len(sets)} PBR sets of {args.size}² on {gen.device}: median {np.median(times):.2f} s each "
          f"(albedo + 4 maps; the first includes warm-up)")
    print(f"contact sheets: {sheet}, {maps_sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
