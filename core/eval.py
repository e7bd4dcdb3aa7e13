"""`python -m core.eval` (`make eval`): measure the shipped weights and write the model card.

Definitions are those of the team's shared METRICS.md, implemented and stated in core.metrics:
  realism      the headline: per style, a classifier two-sample test (core.realism) between held-out real
               textures and final outputs, at the GAN's scale (structure) and at full resolution (detail),
               with its real-vs-real floor measured in the same run and the spread over repeats;
  tileability  seam ratio and seam percentile of final outputs, over ≥32 samples;
  swd          diagnostic, per style: SWD(generated, validation crops) / SWD(validation, other validation
               crops), and diversity: mean SWD between two seeds' crops / between two real images' crops;
  upscaler     PSNR-Y / SSIM-Y gain over bicubic on validation textures (LR by antialiased bicubic);
  pbr          per map seam ratio, mean normal length, time to derive the maps;
  speed        median warm time of one 1024² texture on this machine.
Validation data is the held-out split of `python -m training data` (never seen in training).
Results go to a JSON file, into the weights files' metadata, and between markers in MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import metrics, pbr, realism, weights
from .api import GAN_SCALE, SHIPPED_DIR, Tessera, load_generator
from .files import cache_dir, write_text
from .imageio import read_image, to_tensor, to_uint8
from .upscaler import Upscaler, downscale, seed_noise, wrap_upsample

CROP = 128
SEAM_TARGET = (0.95, 1.05)  # seam ratio of outputs, final or upscaled (METRICS.md: 1.0 = like any interior pair)
CARD_START, CARD_END = "<!-- metrics:start -->", "<!-- metrics:end -->"


def default_data() -> Path:
    return cache_dir() / "curated"


def style_images(folder: Path) -> list[np.ndarray]:
    return [read_image(p) for p in sorted(folder.glob("*.png"))]


def crops(images: list[np.ndarray], n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """n wrap-around crops spread evenly over the images (all sources are tileable)."""
    per = [n // len(images) + (i < n % len(images)) for i in range(len(images))]
    out: list[np.ndarray] = []
    for img, k in zip(images, per):
        if k:
            out += metrics.random_crops(img, k, CROP, rng=rng, wrap=True)
    return out


# the measurements

def tileability(gen: Tessera, samples: int, size: int) -> dict:
    """Seam measures at the wrap-around edge, and two diagnostics: the same images rolled by 7 px (on
    an exact torus the edge is like any other column, so a difference between the two says the edge
    sits on a periodic grid in the image, not on a seam), and the GAN's own output before upscaling."""
    ratios, pcts, off_ratios, off_pcts, gan_ratios = [], [], [], [], []
    for i in range(samples):
        style, seed = list(gen.generators)[i % len(gen.generators)], 1000 + i
        gan_ratios.append(metrics.seam_ratio(to_uint8(gen.generate_gan(style, seed=seed, size=size // GAN_SCALE))))
        img = gen.generate(style, seed=seed, size=size)
        ratios.append(metrics.seam_ratio(img))
        pcts.append(metrics.seam_percentile(img))
        off = np.roll(img, (7, 7), axis=(0, 1))
        off_ratios.append(metrics.seam_ratio(off))
        off_pcts.append(metrics.seam_percentile(off))
    return {"samples": samples, "size": size, "seam_ratio": float(np.mean(ratios)),
            "seam_ratio_std": float(np.std(ratios)), "seam_percentile": float(np.mean(pcts)),
            "seam_ratio_rolled7": float(np.mean(off_ratios)), "seam_percentile_rolled7": float(np.mean(off_pcts)),
            "gan_seam_ratio": float(np.mean(gan_ratios))}


def swd(gen: Tessera, data: Path, seeds: int, n_crops: int) -> dict:
    """Diagnostic: SWD of the GAN's output against validation crops over the real-vs-real floor, and
    diversity (SWD between two seeds over SWD between two real textures), per style."""
    out = {}
    for style in gen.generators:
        val_dir, train_dir = data / "gan" / "val" / style, data / "gan" / "train" / style
        if not val_dir.is_dir():
            out[style] = {"skipped": f"no validation folder {val_dir}"}
            continue
        rng = np.random.default_rng(0)
        val = style_images(val_dir)
        fakes = [to_uint8(gen.generate_gan(style, seed=s, size=256)) for s in range(seeds)]
        real_a, real_b = crops(val, n_crops, rng), crops(val, n_crops, rng)
        gen_c = crops(fakes, n_crops, rng)
        floor = metrics.swd(real_a, real_b)
        swd_gen = metrics.swd(gen_c, real_a)
        rec = {"swd": swd_gen, "floor": floor, "ratio": swd_gen / floor}
        if train_dir.is_dir():  # what a generator that copied the training set would score
            rec["train_ratio"] = metrics.swd(crops(style_images(train_dir), n_crops, rng), real_a) / floor
        # Diversity: two seeds apart vs two real textures apart (crop sets of each single image).
        per = max(8, n_crops // 4)
        pairs = [(i, i + 1) for i in range(0, min(seeds, 8) - 1, 2)]
        d_gen = np.mean([metrics.swd(crops([fakes[i]], per, rng), crops([fakes[j]], per, rng)) for i, j in pairs])
        rpairs = [(i, i + 1) for i in range(0, min(len(val), 8) - 1, 2)]
        if rpairs:
            d_real = np.mean([metrics.swd(crops([val[i]], per, rng), crops([val[j]], per, rng)) for i, j in rpairs])
            rec["diversity"] = float(d_gen / d_real)
        rec["diversity_swd"] = float(d_gen)
        out[style] = rec
    return out


def style_folders(folder: Path, groups: dict[str, str] | None = None) -> dict[str, list[list[np.ndarray]]]:
    """{style: its images as duplicate groups} of a curated split folder such as gan/val: (H, W, 3) uint8
    images, grouped by `groups` ({file stem: group}, from the curated index; an image it does not name is a
    group of its own); {} when there is no folder."""
    if not folder.is_dir():
        return {}
    out = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        by_group: dict[str, list[np.ndarray]] = {}
        for f in sorted(d.glob("*.png")):
            by_group.setdefault((groups or {}).get(f.stem, f.stem), []).append(read_image(f))
        out[d.name] = list(by_group.values())
    return out


def duplicate_groups(data: Path) -> dict[str, str]:
    """{image id: its duplicate group} from the curated set's index.json ({} without one)."""
    index = data / "index.json"
    if not index.is_file():
        return {}
    return {r["id"]: r["group"] for r in json.loads(index.read_text()).get("records", [])}


def final_outputs(gen: Tessera, styles: list[str], seeds: int, size: int,
                  desc: str = "outputs") -> dict[str, list[np.ndarray]]:
    """`seeds` final size² textures per style (seeds 10 000…, apart from every other measurement), with a
    progress bar over the styles."""
    from tqdm import tqdm

    return {s: [gen.generate(s, seed=10_000 + k, size=size) for k in range(seeds)]
            for s in tqdm([s for s in styles if s in gen.generators], desc=desc, unit="style", leave=False,
                          file=sys.stderr, dynamic_ncols=True)}


def classifier_tests(real: dict, others: dict, repeats: int, cfg: realism.C2stConfig, desc: str) -> dict:
    """realism.two_sample with a progress bar over its classifiers (entries × repeats)."""
    from tqdm import tqdm

    with tqdm(desc=desc, unit="classifier", leave=False, file=sys.stderr, dynamic_ncols=True) as bar:
        def tick(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        return realism.two_sample(real, others, repeats=repeats, cfg=cfg, progress=tick)


def to_gan_scale(images: list[np.ndarray]) -> list[np.ndarray]:
    """Final outputs brought down to the GAN's scale as the curated textures were (Lanczos)."""
    from PIL import Image

    out = []
    for img in images:
        side = img.shape[0] // GAN_SCALE
        out.append(np.asarray(Image.fromarray(img).resize((side, side), Image.Resampling.LANCZOS)))
    return out


def two_sample_test(gens: dict[str, Tessera], data: Path, seeds: int, size: int, repeats: int,
                    cfg: realism.C2stConfig = realism.C2stConfig()) -> dict:
    """The realism headline for each named release in `gens`, measured in one run with one floor.

    structure: final size² outputs downscaled ×GAN_SCALE vs gan/val textures; floor: `seeds` duplicate
               groups of gan/train textures in the generated role.
    detail:    final outputs at full resolution vs detail/val textures (≥ 1024 px, resized to 1024);
               floor: detail/train textures.
    Returns {"structure": {name: {style: {acc, std, runs}, "mean": …}}, "detail": …, plus the settings}.
    """
    styles = sorted(d.name for d in (data / "gan" / "val").iterdir() if d.is_dir())
    finals = {name: final_outputs(g, styles, seeds, size, desc=f"outputs of {name}") for name, g in gens.items()}
    groups = duplicate_groups(data)
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"seeds": seeds, "size": size, "repeats": repeats, "config": dataclasses.asdict(cfg)}
    for scale, folder, shrink in (("structure", "gan", True), ("detail", "detail", False)):
        real = style_folders(data / folder / "val", groups)
        # the floor's other role: as many groups as a release has seeds, so both figures rest on as many samples
        floor = {s: [g[i] for i in sorted(rng.permutation(len(g))[:seeds])]
                 for s, g in style_folders(data / folder / "train", groups).items()}
        others: dict[str, dict] = {"floor": floor}
        for name, sets in finals.items():
            others[name] = {s: [[img] for img in (to_gan_scale(v) if shrink else v)] for s, v in sets.items()}
        out[scale] = classifier_tests(real, others, repeats, cfg, desc=f"realism, {scale}")
    return out


def run_seeded(model: Upscaler, x: torch.Tensor, seed: int) -> torch.Tensor:
    """model(x) with the noise inputs `generate` would draw for `seed` (if the model has any), unclamped."""
    return model(x, seed_noise(model.cfg, tuple(x.shape), [seed]))


def upscaler(gen: Tessera, data: Path, scale: int, detail: bool = False) -> dict:
    """PSNR-Y / SSIM-Y of the faithful ×`scale` model (`detail`: the ×4 detail one) and of bicubic on every
    validation texture (top-left ≤512² crop), LR consistency on a GAN output, seam ratio of upscaled GAN outputs."""
    files = sorted((data / "hr" / "val").rglob("*.png"))
    loaded = gen.detail if detail else gen.upscalers.get(scale)
    if loaded is None or not files:
        return {"skipped": "no upscaler or no validation images"}
    model = loaded[0]
    p_sr, p_bi, s_sr, s_bi = [], [], [], []
    gain_by_style: dict[str, list[float]] = {}
    ssim_by_style: dict[str, list[float]] = {}
    for i, f in enumerate(files):
        hr = read_image(f)
        side = min(hr.shape[0], hr.shape[1], 512) // scale * scale
        hr = hr[:side, :side]
        x = to_tensor(hr)
        lr = downscale(x, scale).clamp(0, 1)
        with torch.inference_mode():
            sr = to_uint8(run_seeded(model, lr, i).clamp(0, 1))
        bi = to_uint8(wrap_upsample(lr, scale).clamp(0, 1))
        p_sr.append(metrics.psnr_y(sr, hr, shave=scale))
        p_bi.append(metrics.psnr_y(bi, hr, shave=scale))
        s_sr.append(metrics.ssim_y(sr, hr, shave=scale))
        s_bi.append(metrics.ssim_y(bi, hr, shave=scale))
        gain_by_style.setdefault(f.parent.name, []).append(p_sr[-1] - p_bi[-1])
        ssim_by_style.setdefault(f.parent.name, []).append(s_sr[-1] - s_bi[-1])
    # LR consistency on GAN outputs (no ground truth there).
    x = gen.generate_gan(list(gen.generators)[0], seed=0, size=256)
    with torch.inference_mode():
        back = to_uint8(downscale(run_seeded(model, x, 0).clamp(0, 1), scale).clamp(0, 1))
    return {"images": len(files), "psnr_y": float(np.mean(p_sr)), "psnr_y_bicubic": float(np.mean(p_bi)),
            "psnr_gain_db": float(np.mean(p_sr) - np.mean(p_bi)), "ssim_y": float(np.mean(s_sr)),
            "ssim_y_bicubic": float(np.mean(s_bi)), "lr_consistency_psnr": metrics.psnr_y(back, to_uint8(x), shave=0),
            "gain_db_by_style": {k: float(np.mean(v)) for k, v in sorted(gain_by_style.items())},
            "ssim_gain_by_style": {k: float(np.mean(v)) for k, v in sorted(ssim_by_style.items())},
            **upscaled_seams(gen, scale, model=model)}


def detail_upscalers(gen: Tessera, candidates: dict[str, Upscaler | None], data: Path, seeds: int, size: int,
                     repeats: int, cfg: realism.C2stConfig = realism.C2stConfig()) -> dict:
    """The upscalers compared on the same GAN outputs: each style's `seeds` GAN textures of (size/4)²
    (seeds 10 000…, as the realism headline) brought to size² by every candidate ×4 model (None: bicubic
    on the torus), then the realism test at the detail scale (core.realism, against detail/val textures,
    floor detail/train, as `two_sample_test`), the LR consistency PSNR-Y(downscale(SR(x)), x) in dB
    (mean over the outputs; how little the upscaler changes what the GAN drew) and the seam ratio of the
    outputs, and how much of their detail is locked to the ×4 grid (metrics.grid_pattern; for "floor", the
    floor's real textures). → {"realism": {name: {style: {acc, std, runs}, "mean": …}, "floor": …},
    "lr_consistency_db": {name: dB}, "seam_ratio": {name: ratio}, "grid_pattern": {name: ratio}, "seeds",
    "size", "repeats", "styles": those measured (≥ 2 duplicate groups of real textures in both roles)}."""
    from tqdm import tqdm

    groups = duplicate_groups(data)
    real = style_folders(data / "detail" / "val", groups)
    styles = [s for s in sorted(real) if s in gen.generators]
    lows = {s: [gen.generate_gan(s, seed=10_000 + k, size=size // GAN_SCALE) for k in range(seeds)] for s in styles}
    others: dict[str, dict] = {}
    rng = np.random.default_rng(0)
    others["floor"] = {s: [g[i] for i in sorted(rng.permutation(len(g))[:seeds])]
                       for s, g in style_folders(data / "detail" / "train", groups).items() if s in styles}
    consistency, seams = {}, {}
    grid = {"floor": float(np.mean([metrics.grid_pattern(g[0]) for gs in others["floor"].values() for g in gs]))}
    for name, model in tqdm(candidates.items(), desc="upscalers", unit="upscaler", leave=False):
        outs: dict[str, list[list[np.ndarray]]] = {}
        back_db, ratios, grids = [], [], []
        for s, xs in lows.items():
            outs[s] = []
            for k, x in enumerate(xs):
                with torch.inference_mode():
                    y = (wrap_upsample(x, GAN_SCALE) if model is None else run_seeded(model, x, 10_000 + k)).clamp(0, 1)
                img = to_uint8(y)
                outs[s].append([img])
                back_db.append(metrics.psnr_y(to_uint8(downscale(y, GAN_SCALE).clamp(0, 1)), to_uint8(x), shave=0))
                ratios.append(metrics.seam_ratio(img))
                grids.append(metrics.grid_pattern(img, GAN_SCALE))
        others[name] = outs
        consistency[name], seams[name] = float(np.mean(back_db)), float(np.mean(ratios))
        grid[name] = float(np.mean(grids))
    result = classifier_tests(real, others, repeats, cfg, desc="realism, detail")
    measured = [s for s in styles if s in result["floor"]]  # ≥ 2 duplicate groups of real textures in both roles
    return {"seeds": seeds, "size": size, "repeats": repeats, "styles": measured, "realism": result,
            "lr_consistency_db": consistency, "seam_ratio": seams, "grid_pattern": grid}


def upscaler_candidates(gen: Tessera, files: list[Path]) -> dict[str, Upscaler | None]:
    """{"bicubic": None, the loaded faithful and detail ×4 by their file names, each of `files` (×4 upscaler
    weights) by its name}.
    Raises weights.ModelFileError for a file that is not a ×4 upscaler."""
    out: dict[str, Upscaler | None] = {"bicubic": None}
    for loaded in (gen.upscalers.get(4), gen.detail):
        if loaded is not None:
            out[loaded[2].stem] = loaded[0]
    for f in files:
        model, meta = weights.build(f)
        if meta["kind"] != "upscaler" or model.cfg.scale != 4:
            raise weights.ModelFileError(f, "a ×4 upscaler is needed here")
        out[f.stem if f.stem not in out else str(f)] = model.eval()
    return out


def upscalers_table(r: dict) -> list[str]:
    """The upscalers on the same GAN outputs: detail-scale realism per style, above the floor, LR consistency,
    seam ratio and grid pattern (for the floor row, of its real textures); one row per upscaler."""
    names = [n for n in r["realism"] if n != "floor"]
    styles = r["styles"]
    grid = r.get("grid_pattern", {})  # results from before the column have none
    lines = [f"| upscaler | " + " | ".join(styles) + " | mean | above the floor | LR consistency | seam ratio | "
             "grid pattern |", "|---|" + "---|" * (len(styles) + 5)]
    for n in names + ["floor"]:
        rec = r["realism"][n]
        cells = [f"{rec[s]['acc']:.2f} ± {rec[s]['std']:.2f}" if s in rec else "—" for s in styles]
        extra = ["—", "—", "—"] if n == "floor" else [
            above_floor(r["realism"], n, set(styles)), f"{r['lr_consistency_db'][n]:.1f} dB", f"{r['seam_ratio'][n]:.3f}"]
        extra.append(f"{grid[n]:.3f}" if n in grid else "—")
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {rec['mean']['acc']:.2f} | " + " | ".join(extra) + " |")
    return lines


def upscaled_seams(gen: Tessera, scale: int, samples: int = 20, size: int = 256, model: Upscaler | None = None) -> dict:
    """Seam ratio of GAN outputs upscaled on the torus, and of bicubic on the same inputs.

    The wrap edge always falls between two blocks of `scale` pixels that come from different low-res
    pixels, so an upscaler that sharpens those transitions more than the ones inside a block shows it
    here as a ratio above 1 even though the output is exactly periodic.
    """
    model = gen.upscalers[scale][0] if model is None else model
    sr, bi = [], []
    for i in range(samples):
        x = gen.generate_gan(list(gen.generators)[i % len(gen.generators)], seed=2000 + i, size=size)
        with torch.inference_mode():
            sr.append(metrics.seam_ratio(to_uint8(run_seeded(model, x, 2000 + i).clamp(0, 1))))
        bi.append(metrics.seam_ratio(to_uint8(wrap_upsample(x, scale).clamp(0, 1))))
    return {"seam_samples": samples, "seam_ratio": float(np.mean(sr)), "seam_ratio_std": float(np.std(sr)),
            "seam_ratio_bicubic": float(np.mean(bi))}


def pbr_maps(gen: Tessera, size: int) -> dict:
    """One PBR set per style: each map's seam ratio (the maps must tile as well as the albedo), the
    decoded normals' mean length, and the time to derive the four maps from an albedo."""
    seams: dict[str, list[float]] = {m: [] for m in pbr.MAPS}
    lengths, times = [], []
    for i, style in enumerate(gen.generators):
        albedo = gen.generate(style, seed=2000 + i, size=size)
        t0 = time.perf_counter()
        maps = pbr.derive(albedo, roughness=gen.roughness(style))
        times.append(time.perf_counter() - t0)
        for name, img in maps.items():
            x = img.astype(np.float32) / np.iinfo(img.dtype).max
            seams[name].append(metrics.seam_ratio(x if x.ndim == 3 else x[..., None]))
        lengths.append(float(np.linalg.norm(pbr.decode_normals(maps["normal"]), axis=-1).mean()))
    return {"size": size, "sets": len(times), "seam_ratio": {m: float(np.mean(v)) for m, v in seams.items()},
            "normal_length": float(np.mean(lengths)), "derive_s": float(np.median(times))}


def speed(gen: Tessera, size: int, runs: int) -> dict:
    """Warm median of a whole texture, measured as `python -m core.bench` does (with the GAN's and the
    upscaler's shares)."""
    from .bench import pipeline

    p = pipeline(gen, size, runs)
    return {"size": size, "runs": runs, "median_s": p["total_s"], "gan_s": p["gan_s"], "upscale_s": p["upscale_s"],
            "threads": torch.get_num_threads(), "device": str(gen.device), "machine": machine()}


def peak_memory(size: int, models: str | None) -> dict:
    """Peak resident memory of a fresh process generating one SIZE² texture (see core.bench)."""
    from .bench import memory

    m = memory(size, models, "cpu")
    return {"size": size, "peak_rss_mib": round(m["peak_rss_mib"], 1), "generate_s": round(m["generate_s"], 2),
            "process_s": round(m["process_s"], 2)}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


# reporting

def realism_table(r: dict) -> list[str]:
    """The headline: one row per style, a column per release and scale, the floor beside each scale."""
    names = [n for n in r["structure"] if n != "floor"] + ["floor"]
    scales = [sc for sc in ("structure", "detail") if r.get(sc)]
    styles = sorted({s for sc in scales for n in names for s in r[sc].get(n, {}) if s != "mean"})
    cfg = r["config"]
    lines = [f"Realism, the headline: a classifier two-sample test (core.realism; Lopez-Paz & Oquab 2017). A small "
             f"CNN trained from scratch tells real from generated {cfg['crop']}² crops; the figure is its accuracy "
             f"on images and seeds it never trained on (split by duplicate group), mean ± sd over {r['repeats']} "
             f"repeats (new splits, crops and classifier each time): 0.5 = indistinguishable, 1.0 = always "
             f"caught. *floor*: the same test with as many duplicate groups of other real textures (the training "
             f"split) as a release has seeds, in the generated role. *structure*: {r['size']}² "
             f"outputs ({r['seeds']} seeds per style) brought down to the GAN's scale against held-out textures "
             "at that scale; *detail*: the outputs at full resolution against held-out textures that were "
             "≥ 1024 px, resized to 1024. Releases are chosen by this test and by looking at the contact sheet.",
             "", "| style | " + " | ".join(f"{sc}: {n}" for sc in scales for n in names) + " |",
             "|---|" + "---|" * (len(scales) * len(names))]

    def cell(rec: dict | None) -> str:
        return "—" if rec is None else f"{rec['acc']:.2f} ± {rec['std']:.2f}"

    for style in styles + ["mean"]:
        cells = [cell(r[sc].get(n, {}).get(style)) for sc in scales for n in names]
        label = "**mean over styles**" if style == "mean" else style
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    shared = set.intersection(*(set(r[scales[0]].get(n, {})) for n in names)) - {"mean"}
    lines.append(f"| **above the floor, on the {len(shared)} styles every column has** | " + " | ".join(
        above_floor(r[sc], n, shared) for sc in scales for n in names) + " |")
    return lines


def above_floor(scale: dict, name: str, styles: set[str]) -> str:
    """Mean accuracy of release `name` minus the floor's over `styles` (those measured for it are used)."""
    common = [s for s in sorted(styles) if s in scale.get(name, {}) and s in scale.get("floor", {})]
    if name == "floor" or not common:
        return "—"
    gap = np.mean([scale[name][s]["acc"] - scale["floor"][s]["acc"] for s in common])
    return f"{gap:+.2f}" + (f" ({len(common)} styles)" if len(common) != len(styles) else "")


def card_table(m: dict) -> str:
    t, sp = m["tileability"], m["speed"]
    since = "; ".join(f"{name} {date}" for name, date in m.get("remeasured", {}).items())
    lines = [f"Measured {m['date']} by `python -m core.eval` on {sp['machine']}"
             f"{f'; sections measured again since with `--only … --update`: {since}' if since else ''}.", ""]
    if "realism" in m:
        lines += realism_table(m["realism"]) + [""]
    if "upscalers" in m:
        u = m["upscalers"]
        lines += [f"The ×4 upscalers on the same GAN outputs ({u['seeds']} seeds per style, {u['size']}²): the realism "
                  f"test at the detail scale as above, LR consistency PSNR-Y(downscale(SR(x)), x) and seam ratio:", ""]
        lines += upscalers_table(u) + [""]
    lines += ["| metric | measured | target | met |", "|---|---|---|---|"]

    def row(name: str, value: str, target: str, ok: bool | None) -> None:
        lines.append(f"| {name} | {value} | {target} | {'—' if ok is None else ('yes' if ok else 'no')} |")

    def seam_row(name: str, value: str, ratio: float) -> None:
        lo, hi = SEAM_TARGET
        row(name, value, f"{lo}–{hi}", lo <= ratio <= hi)

    seam_row(f"seam ratio, {t['samples']} outputs at {t['size']}²",
             f"{t['seam_ratio']:.3f} ± {t['seam_ratio_std']:.3f}", t["seam_ratio"])
    row("seam percentile", f"{t['seam_percentile']:.3f}", "≈ 0.5 (1.0 = seam)", None)
    row("the same, image rolled by 7 px (edge off any 2/4/8/16-px grid)",
        f"ratio {t['seam_ratio_rolled7']:.3f}, percentile {t['seam_percentile_rolled7']:.3f}", "diagnostic", None)
    if "gan_seam_ratio" in t:
        row(f"seam ratio of the GAN's own output ({t['size'] // GAN_SCALE}², before upscaling)",
            f"{t['gan_seam_ratio']:.3f}", "diagnostic", None)
    for key, name, target in (("upscaler_x4", "upscaler ×4", True), ("upscaler_x2", "upscaler ×2", False),
                              ("upscaler_detail", "detail upscaler ×4", False)):
        u = m.get(key, {})
        if "psnr_gain_db" in u:
            row(f"{name} PSNR-Y gain over bicubic ({u['images']} val images)",
                f"{u['psnr_gain_db']:+.2f} dB ({u['psnr_y']:.2f} vs {u['psnr_y_bicubic']:.2f})",
                "≥ +1.0 dB" if target else "—", u["psnr_gain_db"] >= 1.0 if target else None)
            row(f"{name} SSIM-Y", f"{u['ssim_y']:.4f} (bicubic {u['ssim_y_bicubic']:.4f})", "—", None)
            by_style = ", ".join(f"{k} {v:+.2f}" for k, v in u["gain_db_by_style"].items())
            row(f"{name} gain per style (dB)", by_style, "—", None)
            if "ssim_gain_by_style" in u:  # measured since 2026-12-01
                by_style = ", ".join(f"{k} {v:+.3f}" for k, v in u["ssim_gain_by_style"].items())
                row(f"{name} SSIM-Y gain per style", by_style, "—", None)
            if "seam_ratio" in u:
                seam_row(f"{name} seam ratio, {u['seam_samples']} GAN outputs upscaled",
                         f"{u['seam_ratio']:.3f} ± {u['seam_ratio_std']:.3f} (bicubic {u['seam_ratio_bicubic']:.3f})",
                         u["seam_ratio"])
    pm = m.get("pbr")
    if pm:
        row(f"PBR maps, seam ratio per map ({pm['sets']} sets at {pm['size']}²)",
            ", ".join(f"{k} {v:.3f}" for k, v in pm["seam_ratio"].items()), "as the albedo", None)
        row("PBR normals, mean decoded length", f"{pm['normal_length']:.4f}", "within 2% of 1",
            abs(pm["normal_length"] - 1) <= 0.02)
        row(f"PBR maps derived from a {pm['size']}² albedo", f"{pm['derive_s']:.2f} s (median)", "—", None)
    mem = m.get("memory_4096")
    if mem:
        row("4096² texture, fresh process", f"peak RSS {mem['peak_rss_mib']:.0f} MiB, "
            f"{mem['generate_s']:.1f} s generating, {mem['process_s']:.1f} s in all", "works on 24 GB", True)
    row(f"{sp['size']}² generation, warm median of {sp['runs']}", f"{sp['median_s']:.2f} s ({sp['device']}, "
        f"{sp['threads']} threads)", "≤ 1.5 s", sp["median_s"] <= 1.5)
    lines += ["", "Diagnostics, never a reason to ship on their own: SWD and diversity per style "
              "(SWD ×1000 on 128² crops, GAN output vs held-out validation "
              "textures; ratio = SWD / real-vs-real floor; train ratio = the same for the training images, i.e. "
              "what copying the training set would score; diversity = SWD between two seeds / between two real "
              "textures, ~1 is as varied as the data, ≪1 is mode collapse):", "",
              "| style | SWD | floor | ratio (target ≤ 1.5) | met | train ratio | diversity |",
              "|---|---|---|---|---|---|---|"]
    for style, r in m.get("swd", {}).items():
        if "ratio" not in r:
            lines.append(f"| {style} | {r.get('skipped', '')} | | | | | |")
            continue
        lines.append(f"| {style} | {r['swd']:.1f} | {r['floor']:.1f} | {r['ratio']:.2f} | "
                     f"{'yes' if r['ratio'] <= 1.5 else 'no'} | {r.get('train_ratio', float('nan')):.2f} | "
                     f"{r.get('diversity', float('nan')):.2f} |")
    return "\n".join(lines)


def training_table(gen: Tessera) -> str:
    """What each loaded weights file says about its own training (from its header)."""
    lines = ["| file | kind | config | steps | wall time | hardware |", "|---|---|---|---|---|---|"]
    entries = {e.path: ("generator", e.model.cfg.to_dict(), e.meta) for e in gen.generators.values()}
    entries |= {p: ("upscaler", mdl.cfg.to_dict(), meta) for mdl, meta, p in gen.all_upscalers()}
    for path, (kind, cfg, meta) in sorted(entries.items()):
        tr = meta.get("training", {})
        cfg_s = ", ".join(f"{k}={v}" for k, v in cfg.items() if k != "styles")
        lines.append(f"| `{path.name}` | {kind} | {cfg_s} | {tr.get('steps', '?')} | "
                     f"{tr.get('wall_time_s', 0) / 3600:.2f} h | {tr.get('hardware', '?')} |")
    return "\n".join(lines)


def card_text(m: dict, gen: Tessera) -> str:
    """What goes between the card's markers: the measurements, then each weights file's own training record."""
    return card_table(m) + "\n\nTraining, as recorded in each file's header:\n\n" + training_table(gen)


def update_card(card: Path, table: str) -> None:
    text = card.read_text() if card.is_file() else f"# Model card\n\n## Metrics\n\n{CARD_START}\n{CARD_END}\n"
    if CARD_START not in text:
        text += f"\n## Metrics\n\n{CARD_START}\n{CARD_END}\n"
    head, rest = text.split(CARD_START, 1)
    tail = rest.split(CARD_END, 1)[1]
    write_text(card, f"{head}{CARD_START}\n{table}\n{CARD_END}{tail}")


def store_in_weights(gen: Tessera, m: dict) -> None:
    """Put the numbers into each shipped file's header (tensors untouched, re-verified on load)."""
    generator_paths = {e.path for e in gen.generators.values()}
    paths = generator_paths | {p for _, _, p in gen.all_upscalers()}
    for path in sorted(paths):
        part = {k: v for k, v in m.items() if k in ("date", "speed", "tileability")}
        if path in generator_paths:
            part |= {k: v for k, v in m.items() if k in ("realism", "swd")}
        else:
            part |= {k: v for k, v in m.items() if k.startswith("upscaler")}
        weights.update_meta(path, metrics=part)


def release_name(models: str | None, taken: dict | None = None) -> str:
    """How a release is named in the realism table: 'shipped' or its models folder's name."""
    name = "shipped" if models in (None, "shipped") else Path(str(models)).resolve().name
    while taken and name in taken:
        name += "'"
    return name


def run_sections(sections: list[tuple[str, Callable[[], Any]]], desc: str) -> dict[str, Any]:
    """Run each (name, fn) → {name: result}, behind a progress bar that names the one running and
    logs how long each took (eval and bench are minutes of work)."""
    from tqdm import tqdm

    results = {}
    with tqdm(sections, desc=desc, unit="section", file=sys.stderr, dynamic_ncols=True) as bar:
        for name, fn in bar:
            bar.set_postfix_str(name)
            t0 = time.perf_counter()
            results[name] = fn()
            bar.write(f"{desc} {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=default_data(), help="curated data (python -m training data)")
    p.add_argument("--models", default=None, help="models folder (default: shipped weights)")
    p.add_argument("--samples", type=int, default=40, help="outputs for the seam measures (≥32)")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--seeds", type=int, default=8, help="generated textures per style for SWD")
    p.add_argument("--crops", type=int, default=64, help="crops per set for SWD")
    p.add_argument("--test-seeds", type=int, default=16, help="final outputs per style for the realism test")
    p.add_argument("--repeats", type=int, default=3, help="repeats of the realism test (≥ 3 for its spread)")
    p.add_argument("--against", action="append", default=[], metavar="DIR",
                   help="another models folder ('shipped' for the shipped weights) measured by the same realism "
                        "test in the same run, reported beside; repeatable")
    p.add_argument("--only", default=None, metavar="SECTIONS",
                   help="comma-separated sections to run (speed, tileability, pbr, memory_4096, upscaler_x4, "
                        "upscaler_x2, upscaler_detail, upscalers, realism, swd): print their results and write nothing")
    p.add_argument("--sr", action="append", default=[], type=Path, metavar="FILE",
                   help="another ×4 upscaler file, compared with bicubic and the loaded one on the same GAN outputs "
                        "by the upscalers section (named by its file name); repeatable")
    p.add_argument("--runs", type=int, default=5, help="timed runs for speed")
    p.add_argument("--json", type=Path, default=SHIPPED_DIR / "metrics.json")
    p.add_argument("--card", type=Path, default=SHIPPED_DIR / "MODEL_CARD.md")
    p.add_argument("--no-write", action="store_true", help="print only; touch no card and no weights")
    p.add_argument("--update", action="store_true",
                   help="with --only: put the sections measured into --json in place of theirs (the rest stays as "
                        "measured, the card's header says which were measured again and when) and rewrite the card")
    p.add_argument("--card-only", action="store_true",
                   help="measure nothing: rewrite the card's tables from --json (after a change to how they read)")
    args = p.parse_args(argv)
    if args.update and not args.only:
        print("error: --update replaces the sections of --only in --json: give --only too", file=sys.stderr)
        return 2
    if args.update and not args.json.is_file():
        print(f"error: --update: no measurements in {args.json} to update: run `python -m core.eval` in full first",
              file=sys.stderr)
        return 2
    if args.card_only:
        gen = load_generator(device="cpu", models_dir=args.models)
        m = json.loads(args.json.read_text())
        update_card(args.card, card_text(m, gen))
        return 0
    if not (args.data / "gan" / "val").is_dir():
        print(f"error: no validation data in {args.data}: run `python -m training data` first", file=sys.stderr)
        return 2
    gen = load_generator(device="cpu", models_dir=args.models)
    releases = {release_name(args.models): gen}
    for other in args.against:
        releases[release_name(other, taken=releases)] = load_generator(
            device="cpu", models_dir=None if other == "shipped" else other)
    m: dict = {"date": time.strftime("%Y-%m-%d")}
    # speed first, while nothing else of this run is warm in memory; realism, the longest, next
    steps = [("speed", lambda: speed(gen, args.size, args.runs)),
             ("realism", lambda: two_sample_test(releases, args.data, args.test_seeds, args.size, args.repeats)),
             ("tileability", lambda: tileability(gen, args.samples, args.size)),
             ("pbr", lambda: pbr_maps(gen, args.size)),
             ("memory_4096", lambda: peak_memory(4096, args.models)),
             ("upscaler_x4", lambda: upscaler(gen, args.data, 4)),
             ("upscaler_x2", lambda: upscaler(gen, args.data, 2)),
             ("upscaler_detail", lambda: upscaler(gen, args.data, 4, detail=True)),
             ("upscalers", lambda: detail_upscalers(gen, upscaler_candidates(gen, args.sr), args.data,
                                                    args.test_seeds, args.size, args.repeats)),
             ("swd", lambda: swd(gen, args.data, args.seeds, args.crops))]
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        unknown = sorted(set(wanted) - {name for name, _ in steps})
        if unknown:
            print(f"error: --only {','.join(unknown)}: sections are {', '.join(n for n, _ in steps)}", file=sys.stderr)
            return 2
        m.update(run_sections([st for st in steps if st[0] in wanted], "eval"))
        if args.update and not args.no_write:
            saved = json.loads(args.json.read_text())
            remeasured = saved.get("remeasured", {}) | {k: m["date"] for k in wanted}
            m = saved | {k: m[k] for k in wanted} | {"remeasured": remeasured}
            write_text(args.json, json.dumps(m, indent=1))
            update_card(args.card, card_text(m, gen))
            store_in_weights(gen, m)
            print(f"updated {args.json} and {args.card}: {', '.join(wanted)}")
            return 0
        print(json.dumps(m, indent=1))
        if "realism" in m:
            print("\n".join(realism_table(m["realism"])))
        if "upscalers" in m:
            print("\n".join(upscalers_table(m["upscalers"])))
        return 0
    m.update(run_sections(steps, "eval"))
    table = card_text(m, gen)
    print(table)
    if not args.no_write:
        write_text(args.json, json.dumps(m, indent=1))
        update_card(args.card, table)
        store_in_weights(gen, m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
