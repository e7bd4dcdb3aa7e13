"""Batch baking: styles × seeds → PNG files (one per map) plus `manifest.json`, resumable after any kill.

Shared by `tessera batch`, `tessera generate` and the Blender worker. Every image is renamed into place
only when whole and the manifest is rewritten (atomically) after each texture set, so a rerun skips
what is finished.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from .files import check_can_write, write_text
from .imageio import have_exr, write_exr, write_png
from .pbr import check_maps, derive

Progress = Callable[[int, int, str], None]  # (done, total, file just written or ""); may raise to stop


def file_stem(style: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in style)


def file_name(style: str, seed: int, map_name: str = "albedo") -> str:
    return f"{file_stem(style)}_{seed}_{map_name}.png"


def map_paths(out: str | Path, style: str, seed: int, maps: tuple[str, ...]) -> dict[str, Path]:
    """Where `generate` writes each map: `out` is a folder (existing, or ending in a slash) that gets
    `<style>_<seed>_<map>.png`, or the albedo's .png, with the other maps named so beside it.
    Raises ValueError before any work when a file could not be written."""
    from .imageio import check_writable

    folder_given = str(out).endswith(("/", os.sep)) or Path(out).is_dir()
    folder = Path(out) if folder_given else Path(out).parent
    paths = {m: folder / file_name(style, seed, m) for m in maps}
    if not folder_given:
        paths["albedo"] = Path(out)
    for path in paths.values():
        check_writable(path)
    return {m: paths[m] for m in maps}


def write_maps(paths: dict[str, Path], maps: dict) -> dict[str, Path]:
    """Write each map to its path (the height also as `.exr` when OpenEXR is installed)."""
    for name, img in maps.items():
        write_png(paths[name], img)
        if name == "height" and have_exr():
            write_exr(paths[name].with_suffix(".exr"), img.astype("float32") / 65535)
    return {name: paths[name] for name in maps}


def check_folder(out: str | Path) -> Path:
    """An output folder to be: fine if missing (it will be made), refused if something else is there."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, expected a folder")
    check_can_write(out, out)
    return out


def prepare(out: Path) -> Path:
    """Check or create the output folder and sweep temporary files a killed run left behind."""
    out = check_folder(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {out}: cannot create folder ({e.strerror})") from None
    for stale in out.glob(".*.tmp"):  # left by a run killed mid-write; never a finished image
        stale.unlink()
    return out


def read_manifest(out: Path) -> list[dict]:
    """The finished texture sets a previous run recorded (only those whose files all still exist)."""
    path = out / "manifest.json"
    if not path.is_file():
        return []
    try:
        images = json.loads(path.read_text())["images"]
        recorded = [(e["style"], e["seed"], e["size"], dict(e["files"])) for e in images]  # all keys present
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # edited or foreign file: say which
        raise ValueError(f"{path}: not a Tessera batch manifest ({e.__class__.__name__}: {e}); "
                         f"move it away to start afresh") from None
    return [e for e, r in zip(images, recorded) if all((out / f).is_file() for f in r[3].values())]


def bake(gen, styles: list[str], seeds: list[int], size: int, out: Path,
         progress: Progress | None = None, maps: tuple[str, ...] = ("albedo",)) -> tuple[Path, int]:
    """Make every (style, seed) not already in `out`; → (manifest path, texture sets skipped as done)."""
    maps = check_maps(maps)
    for s in styles:
        gen.style_weights(s)  # validate every style before the first image
    out = prepare(out)
    images = read_manifest(out)
    done = {(e["style"], e["seed"], e["size"]) for e in images if set(maps) <= set(e["files"])}
    jobs = [(s, seed) for s in styles for seed in seeds if (s, seed, size) not in done]
    skipped = len(styles) * len(seeds) - len(jobs)

    def write_manifest() -> Path:
        data = {"tool": "tessera", "size": size, "device": str(gen.device),
                "models": sorted({str(e.path) for e in gen.generators.values()}), "images": images}
        return write_text(out / "manifest.json", json.dumps(data, indent=1))

    if progress:
        progress(0, len(jobs), "")
    done_count, t0 = 0, time.perf_counter()
    for style in styles:  # each style's seeds go through the models together (batched on a GPU)
        pending = [seed for s, seed in jobs if s == style]
        roughness = gen.roughness(style)
        for seed, albedo in gen.generate_many(style, pending, size):
            targets = {m: out / file_name(style, seed, m) for m in maps}
            paths = write_maps(targets, derive(albedo, maps, roughness=roughness))
            images = [e for e in images if (e["style"], e["seed"]) != (style, seed)]
            images.append({"style": style, "seed": seed, "size": size,
                           "files": {name: p.name for name, p in paths.items()},
                           "seconds": round(time.perf_counter() - t0, 3)})
            write_manifest()
            done_count, t0 = done_count + 1, time.perf_counter()
            if progress:
                progress(done_count, len(jobs), paths[maps[0]].name)
    return write_manifest(), skipped
