"""`python -m training data`: curate real texture photographs into style folders.

Output layout under `--out` (default: the cache folder, outside git):

    gan/{train,val}/<style>/*.png     textures at the GAN's scale (longer side 256 px)
    hr/{train,val}/<style>/*.png      high-resolution targets for the upscaler (longer side ≤ 1024 px)
    detail/{train,val}/<style>/*.png  images first ≥ 1024 px on the longer side (≥ 2048 px for DXT-
                                      compressed ones), resized to 1024 px: the real side of the realism
                                      test at full resolution
    index.json                        one record per image: source package, licence, path, style, split,
                                      group; what was dropped and why

Curation: the images and their styles are those of `manifest.tsv` (see training.sources) for the styles in
STYLES. Tiny, flat and non-stationary images (a band, a beam or an object in one part: the statistics of
their quadrants or bands disagree) are dropped; near-duplicates — recolours, and the same image shipped by
two packages — are grouped (correlation of normalised luminance thumbnails, or a shared name stem) and each
group goes wholly to train or to validation, at least VAL_MIN images of each style to validation. DXT-
compressed 0ad textures are downscaled ≥ 2× before they serve as upscaler targets, and images that were
themselves upscaled (strong 4-pixel periodicity) never do. Rerunning reuses finished work.
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

from .sources import Entry, copyright_path, fetch, read_bytes, read_manifest

# The styles curated, from the manifest's labels.
STYLES = ("asphalt", "brick", "concrete", "dirt", "forest_floor", "grass", "gravel", "metal", "mud", "paving",
          "plaster", "rock", "roof", "rust", "sand", "snow", "stone_wall", "tiles", "wood")
# The manifest's other labels, left out: materials with too few distinct images here for a style with VAL_MIN
# held out (ice … end_grain), and what is not a material an artist tiles (grates and vents; panels: carved
# or inlaid stone, friezes and columns, sci-fi panels, windows, hazard stripes, doors; an object, band or
# frame per tile) or not what its style says (other: wood chips, flat stone without blocks, road markings,
# a texture atlas). A style whose images disagree teaches the generator their average, so "metal" is plain,
# worn and painted plate, rusted plate is "rust", and rubble walls are "stone_wall" rather than "brick".
UNCURATED = ("ice", "bark", "marble", "fabric", "tread_plate", "corrugated", "end_grain", "grate", "panel",
             "other")
GAN_SIDE = 256       # longer side of a texture at the GAN's scale
HR_MAX_SIDE = 1024   # cap for upscaler targets
DETAIL_SIDE = 1024   # the realism test's full resolution (METRICS.md)
MIN_SIDE = 256       # smaller images are dropped as tiny
DUP_CORRELATION = 0.9
VAL_FRACTION = 0.12
VAL_MIN = 12         # validation images per style at least (fewer make the realism test's floor noisy)
STATIONARITY_MEAN = 0.8   # a part's mean colour this many image standard deviations off the whole: not stationary
STATIONARITY_STD = 0.7    # |log| ratio of a part's contrast to the whole's above this: not stationary
DXT_PACKAGES = ("0ad-data",)  # DXT-compressed: 4×4 block artefacts at full resolution


@dataclass
class Record:
    id: str
    source: str    # Debian package
    licence: str
    origin: str    # path inside the package (archive!member for zip members)
    style: str
    width: int
    height: int
    upscaled: bool = False
    parts_mean: float = 0.0      # nonstationarity() of its GAN-scale version
    parts_contrast: float = 0.0
    group: str = ""
    split: str = ""

    @property
    def stationary(self) -> bool:
        return self.parts_mean <= STATIONARITY_MEAN and self.parts_contrast <= STATIONARITY_STD


def records(entries: list[Entry], styles: tuple[str, ...] = STYLES) -> list[Record]:
    out = []
    for e in entries:
        if e.style in styles:
            rid = f"{e.style}_{hashlib.sha1(f'{e.package}:{e.path}'.encode()).hexdigest()[:10]}"
            out.append(Record(rid, e.package, e.licence, e.path, e.style, 0, 0))
    return out


def looks_upscaled(grey: np.ndarray) -> bool:
    """Strong 4-pixel periodicity of neighbour differences: the image was once blown up 4×."""
    d = np.abs(np.diff(grey, axis=1)).mean(axis=0)
    phases = np.array([d[i::4].mean() for i in range(4)])
    # Nearest-neighbour blow-ups put all change in one phase (a peak), interpolating ones take it out of
    # one phase (a dip); either way the phases spread. Natural images stay below ~0.2 of the mean.
    return bool(phases.max() - phases.min() > 0.25 * phases.mean())


def nonstationarity(rgb: np.ndarray) -> tuple[float, float]:
    """How much the parts of an image disagree: (mean score, contrast score).

    rgb: (H, W, 3) float in [0, 1]. The parts are the 2×2 quadrants, four horizontal bands and four
    vertical bands. Mean score: the largest distance of a part's mean colour (any channel) from the whole
    image's, in units of the image's standard deviation. Contrast score: the largest |log| ratio of a part's
    luminance standard deviation to the whole's. A stationary texture scores low on both; a band along one
    side, a beam or an object filling most of a quadrant scores high. Smaller objects are not caught: the
    manifest leaves out those found by eye.
    """
    h, w = rgb.shape[:2]
    parts = [rgb[: h // 2, : w // 2], rgb[: h // 2, w // 2:], rgb[h // 2:, : w // 2], rgb[h // 2:, w // 2:]]
    parts += [rgb[i * h // 4:(i + 1) * h // 4] for i in range(4)]
    parts += [rgb[:, i * w // 4:(i + 1) * w // 4] for i in range(4)]
    sigma = rgb.reshape(-1, 3).std(axis=0).mean() + 0.02
    lum_std = rgb.mean(axis=2).std() + 1e-3
    mean = rgb.reshape(-1, 3).mean(axis=0)
    mean_score = max(float(np.abs(p.reshape(-1, 3).mean(axis=0) - mean).max() / sigma) for p in parts)
    std_score = max(abs(float(np.log((p.mean(axis=2).std() + 1e-3) / lum_std))) for p in parts)
    return mean_score, std_score


def _resize(im, side: int):
    from PIL import Image

    w, h = im.size
    if max(w, h) <= side:
        return im
    k = side / max(w, h)
    return im.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.LANCZOS)


def _decode(rec: Record, root: Path):
    """The image upright, as 8-bit sRGB (core.imageio's reading rules: 16-bit scaled, grey repeated)."""
    import io

    from PIL import Image

    from core import imageio

    name = f"{rec.source}:{rec.origin}"
    data = io.BytesIO(read_bytes(Entry(rec.source, rec.origin, rec.style, rec.licence), root))
    return Image.fromarray(imageio.to_rgb8(imageio.decode(imageio.open_image(data, name), name)))


def process(args: tuple[Record, str, str]) -> tuple[Record, np.ndarray] | tuple[None, str]:
    """Decode one image, check it, measure its stationarity, and write its GAN-scale, HR and detail versions.
    args: (record, output folder, the package's unpacked root). → (record, thumbnail) or (None, why)."""
    from PIL import Image

    rec, out, root = args
    name = f"{rec.source}:{rec.origin}"
    try:
        im = _decode(rec, Path(root))
    except Exception as e:  # noqa: BLE001 — one bad file must not stop the other thousand
        return None, f"{name}: unreadable ({getattr(e, 'reason', None) or e})"
    rec.width, rec.height = im.size
    if min(im.size) < MIN_SIDE:
        return None, f"{name}: tiny ({im.size[0]}×{im.size[1]})"
    small = _resize(im, GAN_SIDE)
    rgb = np.asarray(small, dtype=np.float32) / 255.0
    if rgb.mean(axis=2).std() < 0.02:
        return None, f"{name}: flat"
    rec.parts_mean, rec.parts_contrast = nonstationarity(rgb)
    grey = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    rec.upscaled = looks_upscaled(grey)
    dxt = rec.source in DXT_PACKAGES
    outs = {"gan": small}
    if not rec.upscaled:
        # DXT leaves 4×4 block artefacts: take those targets down ≥2× so they vanish.
        side = min(max(im.size) // 2 if dxt else max(im.size), HR_MAX_SIDE)
        if side >= MIN_SIDE:
            outs["hr"] = _resize(im, side)
        if max(im.size) >= (2 * DETAIL_SIDE if dxt else DETAIL_SIDE):  # DXT blocks vanish only when halved
            outs["detail"] = _resize(im, DETAIL_SIDE)
    for kind, img in outs.items():
        path = Path(out) / kind / "_all" / f"{rec.id}.png"
        if not path.exists():
            with atomic_path(path) as tmp:
                img.save(tmp, format="PNG")
    thumb = np.asarray(small.convert("L").resize((16, 16), Image.Resampling.BOX), dtype=np.float64)
    thumb = (thumb - thumb.mean()) / (thumb.std() + 1e-6)
    return rec, thumb.ravel() / np.sqrt(thumb.size)


def group_duplicates(recs: list[Record], thumbs: np.ndarray) -> None:
    """Union-find over pairs whose luminance thumbnails correlate above DUP_CORRELATION (across packages:
    some ship the same photographs), and over families named alike within a package and style."""
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
        base = Path(r.origin.split("!")[-1]).name.split(".")[0].lower()
        stem = re.sub(r"(_(blue|red|black|brown|gold|green|white|grey|gray|dark|light|wet|dry|[a-e]|\d+))+$", "", base)
        key = f"{r.source}:{r.style}:{stem}"
        if key in stems:
            parent[find(i)] = find(stems[key])
        stems.setdefault(key, i)
    for i, r in enumerate(recs):
        r.group = recs[find(i)].id


def split(recs: list[Record]) -> None:
    """Whole groups to validation, in a fixed pseudo-random order: about VAL_FRACTION of each style but at
    least VAL_MIN images, never more than half of the style; at least one group where a style has two.
    A group whose images carry two styles (the same photograph labelled twice) goes one way for both."""
    by_style: dict[str, dict[str, list[Record]]] = {}
    for r in recs:
        by_style.setdefault(r.style, {}).setdefault(r.group, []).append(r)
    decided: dict[str, str] = {}  # group → "val" / "train", once for every style it appears in
    for style in sorted(by_style):
        groups = by_style[style]
        order = sorted(groups, key=lambda g: hashlib.sha1(g.encode()).hexdigest())
        total = sum(len(v) for v in groups.values())
        want = min(max(VAL_FRACTION * total, VAL_MIN), total / 2)
        taken = sum(len(groups[g]) for g in order if decided.get(g) == "val")
        for g in order:
            if g not in decided and taken + len(groups[g]) <= total / 2 and taken < want:
                decided[g] = "val"
                taken += len(groups[g])
        if not taken and len(groups) > 1:
            free = [g for g in order if g not in decided] or order
            decided[min(free, key=lambda g: len(groups[g]))] = "val"
        for g in order:
            decided.setdefault(g, "train")
    for r in recs:
        r.split = decided[r.group]


def link_split(out: Path, recs: list[Record]) -> None:
    for kind in ("gan", "hr", "detail"):
        for r in recs:
            src = out / kind / "_all" / f"{r.id}.png"
            dst = out / kind / r.split / r.style / f"{r.id}.png"
            if src.exists() and not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.link(src, dst)


def curate(cache: Path, out: Path, workers: int = 2, manifest: Path | None = None) -> list[Record]:
    entries = read_manifest(manifest) if manifest else read_manifest()
    recs = records(entries)
    roots = fetch([e for e in entries if e.style in STYLES], cache)
    print(f"{len(recs)} images of {len(STYLES)} styles in the manifest", flush=True)
    from tqdm import tqdm

    kept, thumbs, dropped = [], [], []
    jobs = [(r, str(out), str(roots[r.source])) for r in recs]
    with Pool(workers) as pool:
        for rec, info in tqdm(pool.imap(process, jobs, chunksize=4), total=len(jobs), desc="curate", unit="img"):
            if rec is None:
                dropped.append(info)
            elif not rec.stationary:
                dropped.append(f"{rec.source}:{rec.origin}: not stationary (its parts differ: mean "
                               f"{rec.parts_mean:.2f} > {STATIONARITY_MEAN} or contrast {rec.parts_contrast:.2f}"
                               f" > {STATIONARITY_STD})")
            else:
                kept.append(rec)
                thumbs.append(info)
    group_duplicates(kept, np.stack(thumbs))
    split(kept)
    for kind in ("gan", "hr", "detail"):  # rebuilt from _all each time, so a changed split leaves no strays
        for sub in ("train", "val"):
            d = out / kind / sub
            if d.exists():
                for f in d.rglob("*.png"):
                    f.unlink()
    link_split(out, kept)
    licences: dict[str, set[str]] = {}
    for r in kept:
        licences.setdefault(r.source, set()).add(r.licence)
    index = {"records": [asdict(r) for r in kept], "dropped": dropped,
             "licences": {p: ", ".join(sorted(v)) for p, v in sorted(licences.items())},
             "copyright_files": {p: str(roots[p] / copyright_path(p)) for p in sorted(licences)}}
    write_text(out / "index.json", json.dumps(index, indent=1))
    summary: dict[str, list[int]] = {}
    for r in kept:
        summary.setdefault(r.style, [0, 0])[r.split == "val"] += 1
    groups = {r.style: set() for r in kept}
    for r in kept:
        groups[r.style].add(r.group)
    for style, (tr, va) in sorted(summary.items()):
        print(f"  {style:12s} train {tr:4d}  val {va:3d}  groups {len(groups[style]):3d}")
    reasons: dict[str, int] = {}
    for d in dropped:  # "package:path: why (details)"
        why = next(w for w in ("unreadable", "tiny", "flat", "not stationary") if f": {w}" in d)
        reasons[why] = reasons.get(why, 0) + 1
    print(f"kept {len(kept)}, dropped {len(dropped)} {reasons}, groups {len({r.group for r in kept})} → {out}")
    return kept
