"""`tessera` / `python -m core`: styles, generate, upscale, batch, maps, tile, learn.

Thin: parse arguments, call the API, print. A user's mistake becomes one line on stderr and exit
status 2; nothing is written unless the whole image is ready (files are renamed into place).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import NoReturn

EXIT_USAGE = 2
MAX_SEEDS = 100_000  # one batch command; at ~1 s per 1024² texture on a CPU that is a day
# `maps` warns that an image does not tile above both (64 % of crops of the validation photos, 14 % of
# the photos themselves, none of their `tile` results)
TILE_HINT_RATIO, TILE_HINT_PERCENTILE = 1.3, 0.95
# `maps --out wall.png` is a mistake for a folder (it would make a folder named wall.png), unless one is there
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".webp", ".bmp", ".tga"}


# helpers

def _load(args: argparse.Namespace):
    from .api import load_generator

    return load_generator(device=args.device, models_dir=args.models)


def parse_seeds(spec: str) -> list[int]:
    """'0-63', '1,5,9' or '0-3,10' → sorted unique seeds (at most MAX_SEEDS)."""
    ranges: list[range] = []
    for part in spec.split(","):
        part = part.strip()
        if part.startswith("-"):
            raise ValueError(f"seeds {spec!r}: {part} is negative; seeds are whole numbers ≥ 0")
        try:
            lo, hi = (int(v) for v in part.split("-", 1)) if "-" in part else (int(part), int(part))
        except ValueError:
            raise ValueError(f"seeds {spec!r} not understood: write e.g. 0-63 or 1,5,9") from None
        if hi < lo:
            raise ValueError(f"seeds {spec!r}: the range {part} ends before it starts; write e.g. {hi}-{lo}")
        ranges.append(range(lo, hi + 1))
    if sum(len(r) for r in ranges) > MAX_SEEDS:  # counted before expanding: 0-999999999 is a typo, not a plan
        raise ValueError(f"seeds {spec!r} asks for more than {MAX_SEEDS} seeds; split the batch")
    return sorted(set().union(*ranges))


# commands

def cmd_styles(args: argparse.Namespace) -> int:
    gen = _load(args)
    if args.json:
        print(json.dumps([{"name": s, "weights": str(gen.style_weights(s)[0].path)} for s in gen.styles]))
    else:
        print("\n".join(gen.styles))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .api import check_size
    from .batch import map_paths, with_exr, write_maps
    from .pbr import check_maps

    check_size(args.size)
    maps = check_maps(parse_list(args.maps))
    paths = map_paths(args.out, args.style, args.seed, maps)
    gen = _load(args)
    t0 = time.perf_counter()
    images = gen.generate_maps(args.style, seed=args.seed, size=args.size, maps=maps,
                               normal_strength=args.normal_strength, faithful=args.faithful)
    seconds = time.perf_counter() - t0
    files = with_exr(write_maps(paths, images))
    if args.json:
        print(json.dumps({"path": str(paths[maps[0]]), "files": {m: str(p) for m, p in files.items()},
                          "style": args.style, "seed": args.seed, "size": args.size,
                          "seconds": round(seconds, 3), "device": str(gen.device)}))
    else:
        print("\n".join(str(p) for p in files.values()))
    return 0


def parse_list(spec: str) -> list[str]:
    return [part.strip() for part in spec.split(",") if part.strip()]


def cmd_upscale(args: argparse.Namespace) -> int:
    from .api import MAX_SIZE
    from .imageio import check_writable, read_pixels, write_png

    if args.scale not in (2, 4):
        raise ValueError(f"--scale {args.scale} is not supported: use 2 or 4")
    out = check_writable(args.out)
    img = read_pixels(args.input)  # grey, 16-bit and alpha kept as they are, turned upright
    h, w = img.shape[:2]
    if max(h, w) * args.scale > 2 * MAX_SIZE:
        raise ValueError(f"{args.input}: {w}×{h} ×{args.scale} would exceed {2 * MAX_SIZE} px; "
                         f"use a smaller image or --scale 2")
    gen = _load(args)
    write_png(out, gen.upscale(img, scale=args.scale, tileable=not args.no_tileable))
    print(out)
    return 0


def cmd_maps(args: argparse.Namespace) -> int:
    from .api import maps_from_image, make_tileable
    from .tile import check_tile_size
    from .batch import check_folder, file_stem, with_exr, write_maps
    from .imageio import check_writable, read_image
    from .metrics import seam_percentile, seam_ratio
    from .pbr import check_maps

    maps = check_maps(parse_list(args.maps))
    if not 0 <= args.roughness <= 1:
        raise ValueError(f"--roughness {args.roughness} is out of range: use a number from 0 to 1")
    if not 0 <= args.normal_strength < float("inf"):
        raise ValueError(f"--normal-strength {args.normal_strength} must be a finite number ≥ 0")
    if Path(args.out).suffix.lower() in IMAGE_SUFFIXES and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is the folder the maps go into (<name>_<map>.png each), not an "
                         f"image file: e.g. --out {Path(args.out).with_suffix('')}")
    out = check_folder(args.out)
    stem = file_stem(Path(args.input).stem)
    paths = {m: check_writable(out / f"{stem}_{m}.png") for m in maps}
    img = read_image(args.input)  # grey repeated, alpha left out (with a warning when it hides something)
    if args.tile:
        img = make_tileable(check_tile_size(args.input, img))
    elif min(img.shape[:2]) >= 2:
        ratio = seam_ratio(img)
        if ratio > TILE_HINT_RATIO and seam_percentile(img) > TILE_HINT_PERCENTILE:
            warnings.warn(f"{args.input} does not tile (seam ratio {ratio:.1f}; 1 is seamless), so neither do "
                          f"its maps: add --tile to make it seamless first")
    files = write_maps(paths, maps_from_image(img, maps, roughness=args.roughness, normal_strength=args.normal_strength))
    print("\n".join(str(p) for p in with_exr(files).values()))
    return 0


def cmd_tile(args: argparse.Namespace) -> int:
    from .imageio import check_writable, read_pixels, write_png
    from .tile import check_tile_size, make_tileable

    out = check_writable(args.out)
    img = check_tile_size(args.input, read_pixels(args.input))  # grey, 16-bit and alpha kept, upright
    write_png(out, make_tileable(img, patch=args.patch, seed=args.seed))
    print(out)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .api import check_size
    from .batch import bake, check_folder
    from .pbr import check_maps

    check_size(args.size)
    seeds = parse_seeds(args.seeds)
    maps = check_maps(parse_list(args.maps))
    check_folder(args.out)  # before loading models
    gen = _load(args)
    styles = gen.styles if args.styles is None else parse_list(args.styles)
    if not styles:
        raise ValueError(f"--styles {args.styles!r} names no style: give e.g. grass,rock, or leave it out for all")
    planned, bars = len(styles) * len(seeds), []

    def progress(done: int, total: int, _name: str) -> None:
        if not bars:  # the first call, once every style is valid and the folder is ready
            if total < planned:
                print(f"resuming: {planned - total} image(s) already in {args.out}", file=sys.stderr)
            bars.append(tqdm(total=total, desc="batch", unit="img", disable=args.quiet))
        bars[0].update(done - bars[0].n)

    manifest, _ = bake(gen, styles, seeds, args.size, Path(args.out), progress, maps, replace=args.replace)
    for bar in bars:
        bar.close()
    print(manifest)
    return 0


def cmd_learn(args: argparse.Namespace) -> int:
    from contextlib import redirect_stdout

    from training.learn import LearnConfig, learn

    if args.method == "quilt":  # flags of the other method would be silently ignored
        given = [flag for flag, value in (("--minutes", args.minutes), ("--steps", args.steps),
                                          ("--like", args.like), ("--start", args.start)) if value is not None]
        if given:
            raise ValueError(f"{given[0]} is for --method gan (training); the default method makes a photo style "
                             "in seconds: add --method gan to train")
    cfg = LearnConfig(inputs=[Path(p) for p in args.inputs], name=args.name, method=args.method,
                      minutes=15.0 if args.minutes is None else args.minutes,
                      steps=args.steps, like=args.like, resume=args.resume, restart=args.restart,
                      replace=args.replace, models=args.models, device=args.device,
                      **({"start": Path(args.start)} if args.start else {}))
    from tqdm import tqdm

    bars: list[tqdm] = []  # made at the first step, so a refused input prints its one line alone

    def progress(done: int, total: int, seconds_left: float) -> bool:  # this style's steps, not the start's
        if not bars:
            bars.append(tqdm(desc=f"learn {args.name}", unit="step", initial=done, dynamic_ncols=True,
                             file=sys.stderr))  # from where a resumed run stands
        bars[0].total = total
        bars[0].update(done - bars[0].n)
        bars[0].set_postfix_str(f"{seconds_left / 60:.1f} min left", refresh=False)
        return True

    try:
        try:
            with redirect_stdout(sys.stderr):  # training's messages are progress; stdout is the result's path
                out = learn(cfg, progress=progress)
        finally:  # before any message below
            for bar in bars:
                bar.close()
    except KeyboardInterrupt:
        print(f"interrupted: the run is kept (checkpoints every 25 steps); continue it with the same command "
              f"and --resume", file=sys.stderr)
        return 130
    print(out)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from .worker import main

    return main(models=args.models, device=args.device, runtime=args.runtime)


# the table

COMMANDS = {
    "styles": (cmd_styles, "list the styles the loaded weights can make"),
    "generate": (cmd_generate, "make one seamless texture"),
    "upscale": (cmd_upscale, "upscale an image ×2 or ×4, keeping it tileable"),
    "batch": (cmd_batch, "make many textures (styles × seeds) with a manifest; reruns resume"),
    "maps": (cmd_maps, "PBR maps (albedo, normal, height, roughness, AO) from any image"),
    "tile": (cmd_tile, "make a photo seamless (tileable), keeping its look"),
    "learn": (cmd_learn, "a new seamless style from your photos: quilted from them (seconds) or a GAN adapted "
                         "to them (minutes)"),
    "worker": (cmd_worker, "serve requests as JSON lines on stdin/stdout (used by the Blender add-on)"),
}


NO_MODELS = {"maps", "tile"}  # commands that load no weights take no --models or --device


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (which flag, what is wrong, where the help is), not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = OneLineParser(prog="tessera", description="Seamless material textures in under a second.")
    p.add_argument("--version", action="version", version=f"tessera {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = OneLineParser(add_help=False)
    common.add_argument("--models", metavar="DIR", help="models folder (default: $TESSERA_MODELS, "
                                                          "else the user folder and the shipped weights)")
    common.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    parsers = {name: sub.add_parser(name, help=text, parents=[] if name in NO_MODELS else [common])
               for name, (_, text) in COMMANDS.items()}

    parsers["styles"].add_argument("--json", action="store_true", help="machine-readable output")
    parsers["worker"].add_argument("--runtime", choices=("auto", "torch", "onnx"), default="auto",
                                   help="torch, onnx (ONNX Runtime, core.runtime), or auto: torch when it "
                                        "imports, else onnx (default)")

    g = parsers["generate"]
    g.add_argument("--style", required=True, help="a style name, or a mix such as grass:0.7+rock:0.3")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--size", type=int, default=1024, help="side in pixels: a multiple of 64 from 256 to 8192")
    g.add_argument("--out", required=True, help="the albedo's .png (other maps go beside it), or a folder")
    g.add_argument("--json", action="store_true", help="print a JSON record instead of the path")
    for q in (g, parsers["batch"]):
        q.add_argument("--maps", default="albedo", help="comma-separated: albedo,normal,height,roughness,ao "
                                                        "(default albedo)")
    g.add_argument("--normal-strength", type=float, default=1.0, help="bumpiness of the normal map (default 1)")
    g.add_argument("--faithful", action="store_true",
                   help="upscale with the faithful ×4 (trained for PSNR: softer) instead of the detail one")

    u = parsers["upscale"]
    u.add_argument("input", help="image to upscale")
    u.add_argument("--scale", type=int, default=4, help="2 or 4 (default 4)")
    u.add_argument("--out", required=True, help="output .png")
    u.add_argument("--no-tileable", action="store_true", help="treat borders as edges, not wrap-around")

    m = parsers["maps"]
    m.add_argument("input", help="an albedo image (any format Pillow reads)")
    m.add_argument("--out", required=True, help="output folder: gets <name>_<map>.png for each map")
    m.add_argument("--maps", default="albedo,normal,height,roughness,ao",
                   help="comma-separated: albedo,normal,height,roughness,ao (default all)")
    m.add_argument("--roughness", type=float, default=0.75, help="base roughness, 0 to 1 (default 0.75)")
    m.add_argument("--normal-strength", type=float, default=1.0, help="bumpiness of the normal map (default 1)")
    m.add_argument("--tile", action="store_true", help="make the image seamless first (as tessera tile)")

    t = parsers["tile"]
    t.add_argument("input", help="image to make seamless")
    t.add_argument("--out", required=True, help="output .png (same size, grey, 16-bit and alpha kept)")
    t.add_argument("--patch", type=int, default=None,
                   help="side of the patches in px, 8 to half the shorter side (default a quarter of it)")
    t.add_argument("--seed", type=int, default=0, help="which of the near-best patches are picked (default 0)")

    le = parsers["learn"]
    le.add_argument("inputs", nargs="+", metavar="PHOTO", help="photos, or folders of photos, of one material")
    le.add_argument("--name", required=True, help="the new style's name (lower-case letters, digits, _ and -)")
    le.add_argument("--method", choices=("quilt", "gan"), default="quilt",
                    help="quilt: a photo style, made in seconds, whose textures are quilted from the photos at "
                         "their own scale; gan: adapt the shipped generator in --minutes of training (default quilt)")
    le.add_argument("--minutes", type=float, default=None, help="--method gan: training time, counted across "
                                                                 "--resume (default 15)")
    le.add_argument("--steps", type=int, default=None, help="--method gan: stop after this many steps instead, "
                                                            "if sooner")
    le.add_argument("--like", metavar="STYLE", help="--method gan: start from this shipped style (default: the "
                                                    "nearest)")
    le.add_argument("--resume", action="store_true", help="--method gan: continue an interrupted run of this --name")
    le.add_argument("--restart", action="store_true", help="--method gan: throw away an unfinished run of this --name")
    le.add_argument("--replace", action="store_true", help="replace a style of this name you learned before")
    le.add_argument("--start", metavar="FILE", help="--method gan: the generator file to adapt (default: the "
                                                    "shipped one)")

    b = parsers["batch"]
    b.add_argument("--styles", help="comma-separated styles (default: all)")
    b.add_argument("--seeds", default="0-7", help="e.g. 0-63 or 1,5,9 (default 0-7)")
    b.add_argument("--size", type=int, default=1024, help="side in pixels: a multiple of 64 from 256 to 8192")
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--replace", action="store_true",
                   help="replace images of these styles and seeds that --out holds at another size")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command != "worker":  # the worker runs on ONNX Runtime where torch is missing (core.worker)
            import torch  # noqa: F401  (the other commands run the PyTorch path)

        from .weights import ModelFileError
    except ImportError as e:  # torch or numpy missing in this interpreter
        message = f"PyTorch (or another dependency) is missing for {sys.executable}: {e}"
        if args.command == "worker":
            from .worker import fatal

            return fatal(message)
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE

    def one_line_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
        print(f"warning: {message}", file=sys.stderr)

    warnings.showwarning = one_line_warning
    try:
        return COMMANDS[args.command][0](args)
    except (ValueError, FileNotFoundError, ModelFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except PermissionError as e:
        print(f"error: {e.filename}: permission denied", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # a full disk, a read-only file system, …: the file and the reason, no traceback
        print(f"error: {e.filename}: {e.strerror}" if e.filename and e.strerror else f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
