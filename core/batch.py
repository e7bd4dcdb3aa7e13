"""Batch baking: styles × seeds → PNG files plus `manifest.json`, resumable after any kill.

Shared by `tessera batch` and the Blender worker. Every image is renamed into place only when whole
and the manifest is rewritten (atomically) after each one, so a rerun skips what is finished.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from .files import write_text
from .imageio import write_png

Progress = Callable[[int, int, str], None]  # (done, total, file just written or ""); may raise to stop


def file_stem(style: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in style)


def file_name(style: str, seed: int, map_name: str = "albedo") -> str:
    return f"{file_stem(style)}_{seed}_{map_name}.png"


def prepare(out: Path) -> Path:
    """Check or create the output folder and sweep temporary files a killed run left behind."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, expected a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {out}: cannot create folder ({e.strerror})") from None
    for stale in out.glob(".*.tmp"):  # left by a run killed mid-write; never a finished image
        stale.unlink()
    return out


def read_manifest(out: Path) -> list[dict]:
    """The finished images a previous run recorded (only those whose file still exists)."""
    path = out / "manifest.json"
    if not path.is_file():
        return []
    try:
        images = json.loads(path.read_text())["images"]
        recorded = [(e["style"], e["seed"], e["size"], e["file"]) for e in images]  # all keys present
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # edited or foreign file: say which
        raise ValueError(f"{path}: not a Tessera batch manifest ({e.__class__.__name__}: {e}); "
                         f"move it away to start afresh") from None
    return [e for e, r in zip(images, recorded) if (out / r[3]).is_file()]


def bake(gen, styles: list[str], seeds: list[int], size: int, out: Path,
         progress: Progress | None = None) -> tuple[Path, int]:
    """Make every (style, seed) not already in `out`; → (manifest path, images skipped as done)."""
    for s in styles:
        gen.style_weights(s)  # validate every style before the first image
    out = prepare(out)
    images = read_manifest(out)
    done = {(e["style"], e["seed"], e["size"]) for e in images}
    jobs = [(s, seed) for s in styles for seed in seeds if (s, seed, size) not in done]
    skipped = len(styles) * len(seeds) - len(jobs)

    def write_manifest() -> Path:
        data = {"tool": "tessera", "size": size, "device": str(gen.device),
                "models": sorted({str(e.path) for e in gen.generators.values()}), "images": images}
        return write_text(out / "manifest.json", json.dumps(data, indent=1))

    if progress:
        progress(0, len(jobs), "")
    for i, (style, seed) in enumerate(jobs):
        t0 = time.perf_counter()
        name = file_name(style, seed)
        write_png(out / name, gen.generate(style, seed=seed, size=size))
        images = [e for e in images if e["file"] != name]
        images.append({"style": style, "seed": seed, "size": size, "file": name,
                       "seconds": round(time.perf_counter() - t0, 3)})
        write_manifest()
        if progress:
            progress(i + 1, len(jobs), name)
    return write_manifest(), skipped
