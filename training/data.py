"""`python -m training data`: curate real texture photographs into style folders.

Output layout under `--out` (default: the cache folder, outside git):

    gan/train/<style>/*.png   textures at the GAN's scale (longer side 256 px)
    gan/val/<style>/*.png
    hr/train/<style>/*.png    high-resolution targets for the upscaler
    hr/val/<style>/*.png
    index.json                one record per image: source package, licence, origin, style, split, group

Curation: normal/specular/glow maps, tiny, flat, unlabelled and near-duplicate-of-itself images are
dropped; images are labelled with a style from their file names; recoloured copies are grouped
(correlation of normalised luminance thumbnails) and each group goes wholly to train or to validation.
DXT-compressed 0ad textures are downscaled ≥2× before they serve as upscaler targets, and ufoai images
that were themselves upscaled (strong 4-pixel periodicity) never do. Rerunning reuses finished work.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from core.files import atomic_path, write_text

from .sources import UFOAI, UFOAI_GOOD_FOLDERS, ZERO_AD, fetch_all, ufoai_licences

GAN_SIDE = 256      # longer side of a texture at the GAN's scale
HR_MAX_SIDE = 1024  # cap for upscaler targets
MIN_SIDE = 256      # smaller images are dropped as tiny
DUP_CORRELATION = 0.9
VAL_FRACTION = 0.12

# First matching rule wins; the order settles names with two materials ("rocks_grass" → rock).
STYLE_RULES: tuple[tuple[str, str], ...] = (
    ("snow", r"snow|polar_ice|glacier|(^|_)ice(_|$)"),
    ("brick", r"brick"),
    ("wood", r"wood|plank|bark|timber|log_"),
    ("metal", r"metal|mtl|steel|rust|(^|_)iron|(^|_)alu"),
    ("concrete", r"concrete|cement"),
    ("paving", r"paving|pavement|cobble|road|street|flagstone|city_tile|medit_city|floor_stone"),
    ("rock", r"cliff|rock|stone|boulder|gravel"),
    ("sand", r"sand|dune|beach"),
    ("grass", r"grass|meadow|forestfloor|shrub|flora|plants|steppe_grass|tropic_grass"),
    ("dirt", r"dirt|mud|soil|clay|farmland|furrow|steppe|peat"),
)
EXCLUDE = re.compile(r"_norm|_spec|_nm\b|_sm\b|_gm\b|_glow|lava|ocean|water|coral|shore|test|"
                     r"sign|screen|vent|wires|fence|grid|alpha|decal|trim|whiteness|foam")


@dataclass
class Record:
    id: str
    source: str
    licence: str
    origin: str
    style: str
    width: int
    height: int
    upscaled: bool = False
    group: str = ""
    split: str = ""


def label(name: str) -> str | None:
    name = name.lower().replace(" ", "_").replace("-", "_")
    if EXCLUDE.search(name):
        return None
    for style, pattern in STYLE_RULES:
        if re.search(pattern, name):
            return style
    return None


def candidates(folders: dict[str, Path]) -> list[Record]:
    out = []
    for p in sorted(folders[ZERO_AD.package].rglob("*.dds")):
        style = label(p.name.split(".")[0])
        if style:
            out.append(Record("", ZERO_AD.package, ZERO_AD.licence, str(p), style, 0, 0))
    root = folders[UFOAI.package]
    per_file, default = ufoai_licences(root / "copyright")
    for sub in UFOAI_GOOD_FOLDERS:
        for p in sorted((root / "textures" / sub).glob("*")):
            if p.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tga"):
                continue
            style = label(f"{sub}/{p.stem}".split("/", 1)[1])
            if style:
                rel = str(p.relative_to(root))
                out.append(Record("", UFOAI.package, per_file.get(rel, default), str(p), style, 0, 0))
    for r in out:
        r.id = f"{r.style}_{hashlib.sha1(r.origin.encode()).hexdigest()[:10]}"
    return out


def looks_upscaled(grey: np.ndarray) -> bool:
    """Strong 4-pixel periodicity of neighbour differences: the image was once blown up 4×."""
    d = np.abs(np.diff(grey, axis=1)).mean(axis=0)
    phases = np.array([d[i::4].mean() for i in range(4)])
    # Nearest-neighbour blow-ups put all change in one phase (a peak), interpolating ones take it out of
    # one phase (a dip); either way the phases spread. Natural images stay below ~0.2 of the mean.
    return bool(phases.max() - phases.min() > 0.25 * phases.mean())


def _resize(im, side: int):
    from PIL import Image

    w, h = im.size
    if max(w, h) <= side:
        return im
    k = side / max(w, h)
    return im.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.LANCZOS)


def process(args: tuple[Record, str]) -> tuple[Record, np.ndarray] | tuple[None, str]:
    """Decode one image and write its GAN-scale and HR versions; return (record, thumbnail)."""
    from PIL import Image

    rec, out = args
    gan_path = Path(out) / "gan" / "_all" / f"{rec.id}.png"
    hr_path = Path(out) / "hr" / "_all" / f"{rec.id}.png"
    try:
        with Image.open(rec.origin) as im:
            im = im.convert("RGB")
    except Exception as e:  # noqa: BLE001 — one bad file must not stop the other thousand
        return None, f"{rec.origin}: unreadable ({e.__class__.__name__})"
    rec.width, rec.height = im.size
    if min(im.size) < MIN_SIDE:
        return None, f"{rec.origin}: tiny ({im.size[0]}×{im.size[1]})"
    grey = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    if grey.std() < 0.02:
        return None, f"{rec.origin}: flat"
    rec.upscaled = rec.source == UFOAI.package and looks_upscaled(grey)
    small = _resize(im, GAN_SIDE)
    for path, img in ((gan_path, small), (hr_path, None)):
        if path.exists():
            continue
        if img is None:
            if rec.upscaled:
                continue
            # DXT leaves 4×4 block artefacts: take 0ad targets down ≥2× so they vanish.
            side = max(im.size) // 2 if rec.source == ZERO_AD.package else max(im.size)
            side = min(side, HR_MAX_SIDE)
            if side < MIN_SIDE:
                continue
            img = _resize(im, side)
        with atomic_path(path) as tmp:
            img.save(tmp, format="PNG")
    thumb = np.asarray(small.convert("L").resize((16, 16), Image.Resampling.BOX), dtype=np.float64)
    thumb = (thumb - thumb.mean()) / (thumb.std() + 1e-6)
    return rec, thumb.ravel() / np.sqrt(thumb.size)


def group_duplicates(recs: list[Record], thumbs: np.ndarray) -> None:
    """Union-find over pairs whose luminance thumbnails correlate above DUP_CORRELATION."""
    parent = list(range(len(recs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    corr = thumbs @ thumbs.T
    for i, j in zip(*np.nonzero(np.triu(corr, 1) > DUP_CORRELATION)):
        parent[find(i)] = find(j)
    # Families named alike (wall004_blue, wall004_red) are recolours too.
    stems: dict[str, int] = {}
    for i, r in enumerate(recs):
        stem = re.sub(r"(_(blue|red|black|brown|gold|green|white|grey|gray|dark|light|wet|dry|[a-e]|\d+))+$",
                      "", Path(r.origin).name.split(".")[0].lower())
        key = f"{r.source}:{r.style}:{stem}"
        if key in stems:
            parent[find(i)] = find(stems[key])
        stems.setdefault(key, i)
    for i, r in enumerate(recs):
        r.group = recs[find(i)].id


def split(recs: list[Record]) -> None:
    """Whole groups to validation, about VAL_FRACTION of each style, at least one group per style."""
    by_style: dict[str, dict[str, list[Record]]] = {}
    for r in recs:
        by_style.setdefault(r.style, {}).setdefault(r.group, []).append(r)
    for groups in by_style.values():
        order = sorted(groups, key=lambda g: hashlib.sha1(g.encode()).hexdigest())
        total, val = sum(len(v) for v in groups.values()), []
        for g in order:
            if sum(len(groups[v]) for v in val) + len(groups[g]) <= VAL_FRACTION * total:
                val.append(g)
        if not val and len(groups) > 1:
            val = [min(order, key=lambda g: len(groups[g]))]
        for g, members in groups.items():
            for r in members:
                r.split = "val" if g in val else "train"


def link_split(out: Path, recs: list[Record]) -> None:
    for kind in ("gan", "hr"):
        for r in recs:
            src = out / kind / "_all" / f"{r.id}.png"
            dst = out / kind / r.split / r.style / f"{r.id}.png"
            if src.exists() and not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.link(src, dst)


def curate(cache: Path, out: Path, workers: int = 2) -> list[Record]:
    folders = fetch_all(cache)
    recs = candidates(folders)
    print(f"{len(recs)} labelled candidates", flush=True)
    from tqdm import tqdm

    kept, thumbs, dropped = [], [], []
    with Pool(workers) as pool:
        for rec, info in tqdm(pool.imap(process, [(r, str(out)) for r in recs], chunksize=4),
                              total=len(recs), desc="curate", unit="img"):
            if rec is None:
                dropped.append(info)
            else:
                kept.append(rec)
                thumbs.append(info)
    group_duplicates(kept, np.stack(thumbs))
    split(kept)
    for kind in ("gan", "hr"):  # rebuilt from _all each time, so a changed split never leaves strays
        for sub in ("train", "val"):
            d = out / kind / sub
            if d.exists():
                for f in d.rglob("*.png"):
                    f.unlink()
    link_split(out, kept)
    index = {"records": [asdict(r) for r in kept], "dropped": dropped,
             "licences": {ZERO_AD.package: ZERO_AD.licence, UFOAI.package: UFOAI.licence}}
    write_text(out / "index.json", json.dumps(index, indent=1))
    summary: dict[str, list[int]] = {}
    for r in kept:
        summary.setdefault(r.style, [0, 0])[r.split == "val"] += 1
    for style, (tr, va) in sorted(summary.items()):
        print(f"  {style:10s} train {tr:4d}  val {va:3d}")
    print(f"kept {len(kept)}, dropped {len(dropped)}, groups {len({r.group for r in kept})} → {out}")
    return kept
