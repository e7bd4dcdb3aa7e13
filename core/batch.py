"""Batch baking: styles × seeds → PNG files (one per map) plus `manifest.json`, resumable after any kill.

Shared by `tessera batch`, `tessera generate` and the Blender worker. Every image is renamed into place
only when whole and the manifest is rewritten (atomically) after each texture set, so a rerun skips
what is finished. One run at a time per folder: a second is refused, naming the first. A run never
replaces a finished image of another size unless asked to.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import files
from .files import check_can_write, check_name_length, sweep_stale, try_lock, write_text
from .imageio import have_exr, write_exr, write_png
from .pbr import MAPS, check_maps, derive

PREVIEWS = ".previews"  # the folder of a batch's asset previews (`bake`'s `previews`)
Progress = Callable[[int, int, str], None]  # (done, total, file just written or ""); may raise to stop


def file_stem(style: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in style)


def file_name(style: str, seed: int, map_name: str = "albedo") -> str:
    return f"{file_stem(style)}_{seed}_{map_name}.png"


def same_file_names(styles: list[str]) -> tuple[str, str] | None:
    """The first two styles whose files would share a name (`file_stem`, compared ignoring case, as on a
    case-insensitive disk), or None."""
    stems: dict[str, str] = {}
    for style in styles:
        other = stems.setdefault(file_stem(style).lower(), style)
        if other != style:
            return other, style
    return None


def map_paths(out: str | Path, style: str, seed: int, maps: tuple[str, ...]) -> dict[str, Path]:
    """Where `generate` writes each map: `out` is a folder (existing, or ending in a slash) that gets
    `<style>_<seed>_<map>.png`, or the albedo's .png, with the other maps named so beside it.
    Raises ValueError before any work when a file could not be written."""
    from .imageio import check_writable

    folder_given = str(out).endswith(("/", os.sep)) or os.path.isdir(out)  # (False for a name too long)
    folder = Path(out) if folder_given else Path(out).parent
    paths = {m: folder / file_name(style, seed, m) for m in maps}
    if not folder_given:
        paths["albedo"] = Path(out)
    for path in paths.values():
        check_writable(path)
    return {m: paths[m] for m in maps}


def write_maps(paths: dict[str, Path], maps: dict, sweep: bool = True) -> dict[str, Path]:
    """Write each map to its path (the height also as `.exr` when OpenEXR is installed: `with_exr` names
    every file) → {map: path} of the maps written. With `sweep`, first delete the temporary files killed runs
    left in those folders (once per command: a batch sweeps its folder when it starts and passes False)."""
    if sweep:
        for folder in {paths[name].parent for name in maps}:
            if folder.is_dir():
                sweep_stale(folder)
    for name, img in maps.items():
        write_png(paths[name], img, sweep=False)
        if name == "height" and have_exr():
            write_exr(paths[name].with_suffix(".exr"), img.astype("float32") / 65535, sweep=False)
    return {name: paths[name] for name in maps}


def with_exr(paths: dict[str, Path]) -> dict[str, Path]:
    """`paths` ({map: path}, as write_maps returns) plus "height_exr": the float height that write_maps wrote
    beside the height's .png, when it did: every file, for what a command reports."""
    exr = paths["height"].with_suffix(".exr") if "height" in paths and have_exr() else None
    return {**paths, "height_exr": exr} if exr is not None and exr.is_file() else dict(paths)


def check_folder(out: str | Path) -> Path:
    """An output folder to be: fine if missing (it will be made), refused (ValueError) if something else
    is there or a name in it is too long for the file system."""
    out = Path(out)
    check_name_length(out)  # before `exists`, which raises on a name too long
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, expected a folder")
    check_can_write(out, out)
    return out


def prepare(out: Path) -> Path:
    """Check or create the output folder and sweep temporary files killed runs left behind (not those
    another run is writing)."""
    out = check_folder(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {out}: cannot create folder ({e.strerror})") from None
    sweep_stale(out)
    return out


LOCK = ".tessera-batch.lock"  # exists while a run bakes into the folder (a killed run's is taken over)


@contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold `out` for this run (an advisory lock on `out/LOCK`, which says who holds it; a kill releases
    the lock). While another run holds it, raise ValueError naming that run."""
    path = out / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not try_lock(fd):
            os.close(fd)
            other = path.read_text(errors="replace").strip() or "just starting"
            raise ValueError(f"{out} is in use by another Tessera batch run ({other}): wait for it to finish, "
                             f"or bake into another folder")
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break  # not a file the previous holder removed while we opened it
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}, "
                     f"started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        yield
    finally:
        if files.fcntl is None:  # Windows: no lock to hold, and an open file cannot be deleted
            os.close(fd)
            fd = -1
        path.unlink(missing_ok=True)  # while still locked: a run waiting on this file then starts afresh
        if fd >= 0:
            os.close(fd)


def image_side(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image file from its header, or None when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError, SyntaxError):
        return None


def check_names(styles: list[str], seeds: list[int], maps: tuple[str, ...], out: Path) -> None:
    """Refuse (ValueError), before any work, styles whose files would share a name (also on a
    case-insensitive disk) or have a name too long for the file system."""
    clash = same_file_names(styles)
    if clash is not None:
        other, style = clash
        raise ValueError(f"styles {other!r} and {style!r} would be saved under the same file names "
                         f"({file_name(other, seeds[0])}): bake them into separate folders")
    for style in styles:
        for m in maps:
            check_name_length(out / file_name(style, max(seeds), m))


def read_manifest(out: Path) -> list[dict]:
    """The finished texture sets a previous run recorded (only those whose files all still exist)."""
    path = out / "manifest.json"
    if not path.is_file():
        return []
    try:
        images = json.loads(path.read_text())["images"]
        recorded = [(e["style"], e["seed"], e["size"], dict(e["files"])) for e in images]  # all keys present
    except json.JSONDecodeError as e:  # edited or foreign file: say what is wrong with it
        why = f"not valid JSON ({e.msg}, line {e.lineno})"
    except KeyError as e:
        why = f"the key {e} is missing"
    except (ValueError, TypeError, AttributeError):  # not text, or not the lists and records Tessera writes
        why = "it does not hold the image records Tessera writes"
    else:
        return [e for e, r in zip(images, recorded) if all((out / f).is_file() for f in r[3].values())]
    raise ValueError(f"{path}: not a Tessera batch manifest ({why}); move it away to start afresh")


def training_data(gen, styles: list[str]) -> dict[str, str]:
    """{source: licence} of the images the generators of `styles` (names or mixes) were trained on, from their weights'
    `data` metadata (the Debian package of each image and its licence; a learned style names its folder, a
    photo style its photos)."""
    found: dict[str, str] = {}
    for style in styles:
        try:
            entry, _ = gen.style_weights(style)
        except ValueError:  # a style of an earlier run that these models lack
            continue
        data = entry.meta.get("data")
        if isinstance(data, dict):
            found.update({str(k): str(v) for k, v in data.items()})
    return dict(sorted(found.items()))


def bake(gen, styles: list[str], seeds: list[int], size: int, out: Path,
         progress: Progress | None = None, maps: tuple[str, ...] = ("albedo",),
         replace: bool = False, previews: int = 0) -> tuple[Path, int]:
    """Make every (style, seed) not already in `out`; → (manifest path, texture sets skipped as done).
    `previews` > 0: each new set also gets a `previews`² picture of its albedo (`preview`) in
    `out`/.previews/, named in its manifest entry as "preview" (Blender's asset previews read it).

    Raises ValueError before any work when another run is baking into `out`, or when `out` holds images
    of these styles and seeds at another size (unless `replace`)."""
    maps = check_maps(maps)
    if isinstance(previews, bool) or not isinstance(previews, int) or not 0 <= previews <= 1024:
        raise ValueError(f"previews {previews!r}: a side from 1 to 1024 pixels, or 0 for none")
    for s in styles:
        gen.style_weights(s)  # validate every style before the first image
    check_names(styles, seeds, maps, Path(out))
    out = prepare(out)
    plan(styles, seeds, size, out, maps, replace)  # mistakes are told before the lock file is written
    with folder_lock(out):
        return _bake(gen, styles, seeds, size, out, progress, maps, replace, previews)


def other_sizes(out: Path, jobs: list[tuple[str, int]], size: int) -> dict[str, tuple[int, int]]:
    """The images of any map (not only those asked for now) that `out` holds for these (style, seed)
    pairs at a side other than `size`: file name → (width, height)."""
    found = {}
    for s, seed in jobs:
        for m in MAPS:
            side = image_side(out / file_name(s, seed, m))
            if side is not None and side != (size, size):
                found[file_name(s, seed, m)] = side
    return found


def plan(styles: list[str], seeds: list[int], size: int, out: Path, maps: tuple[str, ...],
         replace: bool) -> tuple[list[dict], list[tuple[str, int]]]:
    """→ (the manifest's finished sets, the (style, seed) pairs still to make). Reads only.

    Raises ValueError (from `read_manifest`) for a manifest Tessera did not write, and, unless `replace`,
    when `out` holds an image of any map of these styles and seeds at another size: a finished result,
    which the new set would replace or leave out of the manifest."""
    images = read_manifest(out)
    done = {(e["style"], e["seed"], e["size"]) for e in images if set(maps) <= set(e["files"])}
    jobs = [(s, seed) for s in styles for seed in seeds if (s, seed, size) not in done]
    others = {} if replace else other_sizes(out, jobs, size)
    if others:
        first, (w, h) = next(iter(others.items()))
        raise ValueError(f"{out} already holds {len(others)} image(s) of these styles and seeds at another "
                         f"size (e.g. {first}, {w}×{h}); a {size}² bake would replace them: bake at that size "
                         f"to resume, into another folder, or replace them (--replace for tessera batch, "
                         f"Replace in Blender's Batch Bake)")
    return images, jobs


def remove_other_size(out: Path, style: str, seed: int, size: int) -> None:
    """Delete (style, seed)'s images of any map at a side other than `size` (with the height's .exr): what
    is left of a set that `--replace` replaces and the new set does not remake, recorded nowhere."""
    for m in MAPS:
        png = out / file_name(style, seed, m)
        side = image_side(png)
        if side is not None and side != (size, size):
            png.unlink(missing_ok=True)
            if m == "height":
                png.with_suffix(".exr").unlink(missing_ok=True)


def preview(albedo: np.ndarray, side: int) -> np.ndarray:
    """A small picture of a texture set (Blender's asset preview): `albedo` (H, W, 3) uint8 → (side, side, 3)
    uint8, scaled down with a box filter (each pixel the mean of the pixels it covers)."""
    from PIL import Image

    return np.asarray(Image.fromarray(albedo).resize((side, side), Image.Resampling.BOX))


def _bake(gen, styles: list[str], seeds: list[int], size: int, out: Path, progress: Progress | None,
          maps: tuple[str, ...], replace: bool, previews: int) -> tuple[Path, int]:
    images, jobs = plan(styles, seeds, size, out, maps, replace)  # again, now that no other run can write
    skipped = len(styles) * len(seeds) - len(jobs)

    def write_manifest() -> Path:
        data = {"tool": "tessera", "size": size, "device": str(gen.device),
                "models": sorted({str(e.path) for e in gen.generators.values()}
                                 | {str(p.path) for p in gen.photos.values()}),
                "training_data": training_data(gen, sorted({e["style"] for e in images})), "images": images}
        return write_text(out / "manifest.json", json.dumps(data, indent=1), sweep=False)

    if progress:
        progress(0, len(jobs), "")
    done_count, t0 = 0, time.perf_counter()
    for style in styles:  # each style's seeds go through the models together (batched on a GPU)
        pending = [seed for s, seed in jobs if s == style]
        roughness = gen.roughness(style)
        for seed, albedo in gen.generate_many(style, pending, size):
            targets = {m: out / file_name(style, seed, m) for m in maps}
            paths = write_maps(targets, derive(albedo, maps, roughness=roughness), sweep=False)  # swept once
            before = [e for e in images if (e["style"], e["seed"]) == (style, seed) and e["size"] == size]
            if replace:  # the set of another size goes as a whole, not only the maps remade
                remove_other_size(out, style, seed, size)
            files = {**(before[0]["files"] if before else {}),
                     **{name: p.name for name, p in with_exr(paths).items()}}
            entry = {"style": style, "seed": seed, "size": size, "files": files,
                     "seconds": round(time.perf_counter() - t0, 3)}
            shown = out / PREVIEWS / f"{file_stem(style)}_{seed}.png"
            if previews:
                shown.parent.mkdir(exist_ok=True)
                entry["preview"] = write_png(shown, preview(albedo, previews), sweep=False).relative_to(out).as_posix()
            else:  # one kept from an earlier run would show the old texture
                shown.unlink(missing_ok=True)
            images = [e for e in images if (e["style"], e["seed"]) != (style, seed)]
            images.append(entry)
            write_manifest()
            done_count, t0 = done_count + 1, time.perf_counter()
            if progress:
                progress(done_count, len(jobs), paths[maps[0]].name)
    return write_manifest(), skipped
