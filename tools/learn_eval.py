"""How close `tessera learn` comes to a user's photo, against training from scratch for the same time.

    python tools/learn_eval.py train PHOTO --arm learn|scratch --out DIR [--minutes 5,15,30]
    python tools/learn_eval.py measure DIR|PHOTO [… ] --sheet docs/learn_sheet.png [--json FILE]
    python tools/learn_eval.py pick VAL_DIR [--per-style N] [--start FILE]
    python tools/learn_eval.py seams PHOTO [PHOTO …] [--size 1024] [--seeds 4]

`train` runs one arm on one photo and exports a generator after each budget in --minutes (CPU minutes of
training, counted across the stages): `learn` adapts the shipped generator (training.learn, as the CLI
does); `scratch` trains the same GAN from random weights on the same crops (`training gan --photos`).
Run the two arms side by side, one core each (`OMP_NUM_THREADS=1 taskset -c N`), so their minutes match.
DIR/<arm>/<minutes>min.safetensors are the results.

`measure` scores every result in each DIR with the classifier two-sample test of core.realism at the GAN's
scale: 64² crops of the photo (at the training scale, ≤ 256 px) against crops of 8 seeds drawn at 256²;
the photo is cut into 8 tiles, the four of one half (left, or top for a tall photo) for the real role and
the four of the other for the floor (the photo against itself), so the held-out crops always come from
other tiles. 3 repeats. It also scores `quilt`, the photo style `learn` makes by default (core.photostyle):
8 seeds quilted (core.quilt) from the floor's half only, so no crop of the real role is copied into it,
with the patch side a photo style uses for the whole photo (a quarter of its shorter side) where the half
allows it. A PHOTO instead of a DIR is scored for `quilt` alone. The sheet: per photo, the photo, three seeds of its photo style (quilted from
the whole photo), and the photo after `tessera tile`, each tiled 2×2.

`seams` makes each photo a photo style (core.photostyle, as `learn` does) and draws --seeds textures of
--size² from it, as `generate` does: their seam ratio (core.metrics; 1.0 = the wrap is like any step
inside), against the photo's own, and the seconds per texture.

`pick` measures the start `learn` chooses without --like (training.learn.nearest_style, as it runs): over
labelled photos VAL_DIR/<style>/*.png of the shipped styles (e.g. the curated validation split), how often
it names the photo's own style, overall and per style (chance: one in the number of styles).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.imageio import read_image, write_png  # noqa: E402

GAN_SIDE = 256  # the learned generator draws at this side for the test; photos are seen at ≤ this
SEEDS = 8


def train(photo: Path, arm: str, out: Path, budgets: list[float]) -> None:
    from training import checkpoint, export
    from training.gan import GanConfig
    from training.gan import train as train_gan
    from training.learn import LearnConfig, learn

    folder = out / arm
    folder.mkdir(parents=True, exist_ok=True)
    name = "photo"
    for k, minutes in enumerate(budgets):
        if arm == "learn":
            cfg = LearnConfig(inputs=[photo], name=name, method="gan", minutes=minutes, resume=k > 0,
                              restart=k == 0, replace=True, models=folder / "models", work=folder / "work")
            result = learn(cfg)
        else:
            data = folder / "photos" / name
            if k == 0:
                shutil.rmtree(folder / "run", ignore_errors=True)
                data.mkdir(parents=True, exist_ok=True)
                shutil.copy(photo, data / photo.name)
            spent = checkpoint.load(folder / "run")[0]["wall_time_s"] / 60 if k else 0.0
            train_gan(GanConfig(data=data.parent, out=folder / "run", minutes=minutes - spent, resume=k > 0,
                                photos=True, crop=64, g_size=128, image_size=GAN_SIDE, ckpt_every=25,
                                sample_every=100))
            result = export.export(folder / "run", folder / "models" / f"{name}.safetensors")
        shutil.copy(result, folder / f"{minutes:g}min.safetensors")
        print(f"{arm}: {minutes:g} min → {folder / f'{minutes:g}min.safetensors'}", flush=True)


def tiles(img: np.ndarray, n: int = 8) -> list[np.ndarray]:
    """The image cut into n tiles (2 rows × n/2 columns, or the transpose for a tall image)."""
    h, w = img.shape[:2]
    rows, cols = (2, n // 2) if w >= h else (n // 2, 2)
    return [img[r * h // rows:(r + 1) * h // rows, c * w // cols:(c + 1) * w // cols]
            for r in range(rows) for c in range(cols)]


def at_gan_scale(img: np.ndarray) -> np.ndarray:
    from PIL import Image

    from training.data import _resize

    return np.asarray(_resize(Image.fromarray(img), GAN_SIDE))


def samples(path: Path, seeds: range) -> list[np.ndarray]:
    from core.api import load_generator

    models = path.parent / ".one" / path.stem
    models.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, models / "gan.safetensors")
    gen = load_generator("cpu", models_dir=models)
    return [(gen.generate_gan(gen.styles[0], seed=s, size=GAN_SIDE)[0].permute(1, 2, 0).numpy() * 255)
            .round().astype(np.uint8) for s in seeds]


def halves(img: np.ndarray) -> tuple[list[int], list[int], np.ndarray]:
    """The indices into `tiles(img)` of the real role's half and of the floor's (left and right, or top and
    bottom for a tall image), and the floor's half itself."""
    h, w = img.shape[:2]
    if w >= h:  # 2 rows × 4 columns
        return [0, 1, 4, 5], [2, 3, 6, 7], img[:, w // 2:]
    return [0, 1, 2, 3], [4, 5, 6, 7], img[h // 2:]  # 4 rows × 2 columns


def quilted(exemplar: np.ndarray, seeds: range, patch: int) -> list[np.ndarray]:
    """GAN_SIDE² textures quilted from `exemplar` with patches of `patch` px (at most half its shorter side)."""
    from core import quilt

    patch = max(quilt.MIN_PATCH, min(patch, min(exemplar.shape[:2]) // 2))
    return [quilt.synthesize(exemplar, GAN_SIDE, GAN_SIDE, patch=patch, seed=s) for s in seeds]


def measure(dirs: list[Path], sheet: Path | None, out_json: Path | None) -> dict:
    from core import quilt
    from core.demo import contact_sheet
    from core.realism import C2stConfig, two_sample
    from core.tile import make_tileable

    results, rows = {}, []
    for d in dirs:
        photo = read_image(d if d.is_file() else next(p for p in (d / "photo").iterdir()))
        name = d.stem if d.is_file() else d.name
        small = at_gan_scale(photo)
        parts = tiles(small)
        mine, theirs, exemplar = halves(small)
        patch = quilt.default_patch(*small.shape[:2])  # what a photo style of the whole photo uses
        real = {"photo": [[parts[i]] for i in mine]}
        others = {"floor": {"photo": [[parts[i]] for i in theirs]},
                  "quilt": {"photo": [[x] for x in quilted(exemplar, range(SEEDS), patch)]}}
        for arm in ("learn", "scratch") if d.is_dir() else ():
            for f in sorted((d / arm).glob("*min.safetensors"), key=lambda p: float(p.name[:-len("min.safetensors")])):
                others[f"{arm} {f.name[:-len('.safetensors')]}"] = {"photo": [[s] for s in samples(f, range(SEEDS))]}
        crops = min(96, 4 * min(min(t.shape[:2]) for t in parts))
        r = two_sample(real, others, repeats=3, cfg=C2stConfig(crops=crops))
        results[name] = {k: {"acc": round(v["mean"]["acc"], 3), "std": round(v["mean"]["std"], 3)}
                         for k, v in r.items() if "mean" in v}
        print(name, json.dumps(results[name]), flush=True)
        seeds = quilted(small, range(3), patch)
        tiled = make_tileable(small)
        rows.append({f"{name}: photo": small, **{f"{name}: photo style, seed {i}": x for i, x in enumerate(seeds)},
                     f"{name}: photo after tile": tiled})
    if out_json:
        out_json.write_text(json.dumps(results, indent=1))
    if sheet:  # each cell tiled 2×2: the photo's seams show, the learned style's and tile's do not
        write_png(sheet, contact_sheet({k: v for r in rows for k, v in r.items()}, cell=256, columns=5))
    return results


def pick(val: Path, per_style: int, start: Path = ROOT / "core" / "weights" / "tessera_gan.safetensors") -> dict:
    from training.learn import nearest_style, read_photos, style_descriptors

    described = style_descriptors(start)  # once: the same for every photo
    styles = list(described)
    hits: dict[str, list[bool]] = {}
    for style in styles:
        for f in sorted((val / style).glob("*.png"))[:per_style]:
            got = nearest_style(read_photos([f]), start, styles=described)
            hits.setdefault(style, []).append(got == style)
            print(f"{style:>12} {f.name}: {got}", file=sys.stderr)
    total = [h for v in hits.values() for h in v]
    result = {"photos": len(total), "styles": len(styles), "right": float(np.mean(total)),
              "per_style": {s: float(np.mean(v)) for s, v in hits.items()}}
    print(json.dumps(result, indent=1))
    return result


def seams(photos: list[Path], size: int, seeds: int) -> dict:
    import tempfile
    import time

    from core import metrics, photostyle

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for f in photos:
            style = photostyle.read(photostyle.save(Path(tmp) / "s.safetensors", "s", [read_image(f)], [str(f)]))
            ratios, times = [], []
            for seed in range(seeds):
                t0 = time.perf_counter()
                img = style.generate(seed, size)
                times.append(time.perf_counter() - t0)
                ratios.append(metrics.seam_ratio(img))
            rows[f.stem] = {"photo": round(metrics.seam_ratio(style.photos[0]), 3),
                            "ratio": round(float(np.mean(ratios)), 3), "s": round(float(np.median(times)), 2)}
            print(f.stem, rows[f.stem], flush=True)
    all_ratios = [r["ratio"] for r in rows.values()]
    summary = {"photos": len(rows), "seeds": seeds, "size": size, "ratio": round(float(np.mean(all_ratios)), 3),
               "ratio_sd": round(float(np.std(all_ratios)), 3),
               "photo_ratio": round(float(np.mean([r["photo"] for r in rows.values()])), 3),
               "median_s": round(float(np.median([r["s"] for r in rows.values()])), 2)}
    print(json.dumps(summary))
    return {"per_photo": rows, **summary}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("photo", type=Path)
    t.add_argument("--arm", choices=("learn", "scratch"), required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--minutes", default="5,15,30")
    m = sub.add_parser("measure")
    m.add_argument("dirs", type=Path, nargs="+", help="folders `train` wrote, or photos (scored for quilt only)")
    m.add_argument("--sheet", type=Path)
    m.add_argument("--json", type=Path)
    k = sub.add_parser("pick")
    k.add_argument("val", type=Path)
    k.add_argument("--per-style", type=int, default=1000)
    k.add_argument("--start", type=Path, default=ROOT / "core" / "weights" / "tessera_gan.safetensors",
                   help="the generator file learn starts from (default: the shipped one)")
    e = sub.add_parser("seams")
    e.add_argument("photos", type=Path, nargs="+")
    e.add_argument("--size", type=int, default=1024)
    e.add_argument("--seeds", type=int, default=4)
    a = p.parse_args()
    if a.cmd == "train":
        (a.out / "photo").mkdir(parents=True, exist_ok=True)
        shutil.copy(a.photo, a.out / "photo" / a.photo.name)
        train(a.photo, a.arm, a.out, [float(v) for v in a.minutes.split(",")])
    elif a.cmd == "pick":
        pick(a.val, a.per_style, a.start)
    elif a.cmd == "seams":
        seams(a.photos, a.size, a.seeds)
    else:
        measure(a.dirs, a.sheet, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
