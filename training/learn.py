"""`tessera learn PHOTO|FOLDER … --name NAME`: a new seamless style from a few photos.

Two methods. `--method quilt` (the default) writes a photo style in seconds: the photos themselves, which
`generate` quilts into new seamless textures on a torus (core.photostyle, core.quilt; no training, no torch).
`--method gan` adapts the generator, in minutes on a CPU, as follows.

Training a style from scratch needs hours; adapting the shipped generator needs minutes. `learn` starts a
GAN run (`training.gan`) from a generator file (the shipped one by default): the new style's embedding
starts at the shipped style nearest to the photos (`--like` picks one; the nearest is chosen by comparing
colour, contrast and spectrum of the photos with those of each style's real training images, stored in the
generator file, or of its samples where the file has none), every layer is fine-tuned on
crops of the photos (inside them: photos do not tile; flipped), and the discriminator starts afresh.
The generator stays a torus network, so whatever it learns is seamless.

    work folder  $TESSERA_CACHE/learn/<name>/   photos/<name>/*.png (as read, at most 512 px), run/ (a gan
                                                run: checkpoint every 25 steps, samples)
    result       <models>/<name>.safetensors    the user models folder unless --models; a generator file
                                                with this one style, written atomically at the end

A kill loses at most 25 steps: `--resume` continues the run, and `--minutes` counts across resumes. Once the
style is written the work folder is removed: a finished style is trained further by `learn` again with a
longer `--minutes` and `--replace`, or by `python -m training gan --init` from its file.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.catalog import SHIPPED_DIR, peek, user_models_dir
from core.files import cache_dir
from core.photostyle import NAME, SUFFIXES, check_name, photo_files, your_photos  # noqa: F401  (both methods)

MIN_SIDE = 128  # px, the shorter side of a photo as given: the GAN sees 64² crops of it at ≤ 256 px
MAX_ASPECT = 4  # longer / shorter side: a narrower strip holds too few crops at the training scale
TRAIN_SIDE = 256  # photos are seen at ≤ this many px on the longer side (as the curated textures)
KEEP_SIDE = 512  # the work folder keeps the photos at ≤ this (it is a cache, not an archive)
SHIPPED_GAN = SHIPPED_DIR / "tessera_gan.safetensors"
METHODS = ("quilt", "gan")


@dataclass
class LearnConfig:
    inputs: list[Path]
    """photos, or folders of photos (their images, not sub-folders)"""
    name: str
    """the new style's name: lower-case letters, digits, _ and -, at most 40"""
    method: str = "quilt"
    """quilt: a photo style, made in seconds, whose textures are quilted from the photos at their own scale
    (core.photostyle); gan: adapt the generator to the photos in --minutes of training"""
    minutes: float = 15.0
    """--method gan: CPU (or GPU) minutes of training, counted across --resume"""
    steps: int | None = None
    """stop after this many training steps instead (counted across --resume), if sooner"""
    like: str | None = None
    """the style of the start generator whose embedding the new style starts from (default: the nearest)"""
    resume: bool = False
    """continue an interrupted run of the same --name"""
    restart: bool = False
    """throw away an earlier, unfinished run of the same --name and start over"""
    replace: bool = False
    """replace a style of this name learned earlier (in the models folder as <name>.safetensors)"""
    models: Path | None = None
    """where the result goes (default: the user models folder)"""
    start: Path = SHIPPED_GAN
    """the generator file to adapt"""
    device: str = "auto"
    batch: int = 8
    crop: int = 64
    """side of what D sees"""
    g_size: int = 128
    """side of the generated training images"""
    seed: int = 0
    work: Path = field(default_factory=lambda: cache_dir() / "learn")
    """parent of the work folders"""

    def __post_init__(self) -> None:
        self.inputs = [Path(p) for p in self.inputs]
        self.models = Path(self.models) if self.models is not None else None
        self.start, self.work = Path(self.start), Path(self.work)
        if not NAME.fullmatch(self.name):
            raise ValueError(f"--name {self.name!r}: use lower-case letters, digits, _ and - (at most 40, "
                             "starting with a letter or digit), e.g. --name red_brick")
        if not 0 < self.minutes < float("inf"):
            raise ValueError(f"--minutes {self.minutes} must be a number > 0")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"--steps {self.steps} must be ≥ 1")
        if self.resume and self.restart:
            raise ValueError("--resume continues the earlier run, --restart throws it away: pick one")
        if self.method not in METHODS:
            raise ValueError(f"--method {self.method}: choose from {', '.join(METHODS)}")
        if self.method == "quilt" and (self.resume or self.restart):
            flag = "--resume" if self.resume else "--restart"
            raise ValueError(f"{flag} is for --method gan: a photo style (--method quilt) is made in seconds")


# inputs

def read_photos(files: list[Path]) -> list[np.ndarray]:
    """Each file read upright as (H, W, 3) uint8 and shrunk to ≤ KEEP_SIDE px. Raises ValueError naming the
    first file that is not a readable image, is smaller than MIN_SIDE, or is narrower than 1 : MAX_ASPECT."""
    from PIL import Image

    from core.imageio import read_image

    from .data import _resize

    photos = []
    for f in files:
        img = read_image(f)  # ValueError naming the file when it is no image
        h, w = img.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise ValueError(f"{f}: {w}×{h} px is too small to learn from: photos need at least "
                             f"{MIN_SIDE}×{MIN_SIDE} px")
        if max(h, w) > MAX_ASPECT * min(h, w):
            raise ValueError(f"{f}: {w}×{h} px is a strip; crop it to at most {MAX_ASPECT}:1")
        photos.append(np.asarray(_resize(Image.fromarray(img), KEEP_SIDE)))
    return photos


# the start

REFERENCE_K = 7  # neighbours that vote in nearest_style when a generator file holds reference descriptors


def photo_descriptor(img: np.ndarray) -> np.ndarray:
    """core.descriptors of an (H, W, 3) uint8 image as the training scale shows it (≤ TRAIN_SIDE px)."""
    from PIL import Image

    from core.descriptors import describe

    from .data import _resize

    return describe(np.asarray(_resize(Image.fromarray(img), TRAIN_SIDE)) / 255.0)


def add_reference(path: Path, data: Path) -> int:
    """Store in generator file `path` the descriptors (`photo_descriptor`) of the real training images of its
    styles, DATA/<style>/*.png (e.g. the curated gan/train split), for `nearest_style`: its header gains
    "reference" = {"style": [style index per image], "descriptors": [[DIM floats] per image]}; the tensors
    are untouched. Written atomically. → the number of images. Raises ValueError for a file that is not a
    generator, or when no style of it has images in `data`."""
    from core import weights
    from core.imageio import read_image

    header = peek(path)
    if header.get("kind") != "generator":
        raise ValueError(f"{path}: reference descriptors go into a generator file (this one is an {header.get('kind')})")
    names = json.loads(header["styles"])
    style, rows = [], []
    for i, name in enumerate(names):
        for f in sorted((data / name).glob("*.png")):
            style.append(i)
            rows.append([round(float(v), 5) for v in photo_descriptor(read_image(f))])
    if not rows:
        raise ValueError(f"{data}: no <style>/*.png images for the styles of {path.name} ({', '.join(names)})")
    weights.update_meta(path, reference={"style": style, "descriptors": rows})
    return len(rows)


def style_descriptors(start: Path, device: str = "cpu") -> dict[str, np.ndarray]:
    """{style: (N, DIM) descriptors} for each style of generator file `start`: those of its real training
    images where the file holds them (`add_reference`), else one row, the mean descriptor of its samples at
    the training scale over two seeds. Descriptors: core.descriptors (per-channel mean and standard deviation,
    the share of luminance power in octave bands of period 2–64 px, anisotropy)."""
    from core.api import load_generator
    from core.descriptors import describe

    header = peek(start)  # the header alone: the tensors are not needed for the stored descriptors
    if "reference" in header:
        ref = json.loads(header["reference"])
        table, idx = np.asarray(ref["descriptors"], np.float32), np.asarray(ref["style"])
        return {name: table[idx == i] for i, name in enumerate(json.loads(header["styles"])) if (idx == i).any()}
    gen = load_generator(device, models_dir=start.parent)
    styles = [s for s, e in gen.generators.items() if e.path.resolve() == start.resolve()]
    return {style: np.mean([describe(gen.generate_gan(style, seed=s, size=TRAIN_SIDE)[0].permute(1, 2, 0).float()
                                     .cpu().numpy()) for s in (0, 1)], axis=0)[None] for style in styles}


def nearest_style(photos: list[np.ndarray], start: Path, device: str = "cpu",
                  styles: dict[str, np.ndarray] | None = None) -> str:
    """The style of generator file `start` that looks most like `photos` (uint8 images) at the training
    scale: the photos' mean descriptor against `style_descriptors` (or `styles` as it returned them, for many
    picks from one file) by a vote of its REFERENCE_K nearest rows (fewer when a style has fewer), ties to the
    nearest; with one row per style, simply the nearest."""
    styles = styles if styles is not None else style_descriptors(start, device)
    want = np.mean([photo_descriptor(p) for p in photos], axis=0)
    names = list(styles)
    label = np.concatenate([np.full(len(styles[n]), i) for i, n in enumerate(names)])
    dist = np.linalg.norm(np.concatenate([styles[n] for n in names]) - want, axis=1)
    k = min(REFERENCE_K, *(len(v) for v in styles.values()))
    near = np.argsort(dist, kind="stable")[:k]
    votes = np.bincount(label[near], minlength=len(names))
    best = [i for i in range(len(names)) if votes[i] == votes.max()]
    return names[min(best, key=lambda i: dist[label == i].min())]


# the run

class Stopped(Exception):
    """`learn`'s progress callback stopped the run: it is checkpointed, and `resume` continues it."""


def learn(cfg: LearnConfig, log=print, progress: Callable[[int, int, float], bool] | None = None) -> Path:
    """Run `tessera learn`: check everything, train (resumably) and write <models>/<name>.safetensors.
    → that path. Raises ValueError / FileNotFoundError with one line for a user's mistake, before any
    training. `progress(done, total, seconds_left)` after each step (steps of this style, counted across
    resumes; the total follows the step rate under a time budget): returning False stops the run,
    checkpointed, and raises Stopped."""
    if cfg.method == "quilt":
        from core import photostyle

        files = photo_files(cfg.inputs)  # listed once: photostyle.learn takes the files as given
        out = photostyle.learn(files, cfg.name, cfg.models, cfg.replace)
        log(f"learn: photo style {cfg.name!r} from {len(files)} photo(s) → {out}")
        return out
    from . import checkpoint, export
    from .common import Clock
    from .gan import GanConfig, train

    models = cfg.models or user_models_dir()
    files = photo_files(cfg.inputs)
    photos = read_photos(files)
    check_name(cfg.name, cfg.models, cfg.replace)
    if not cfg.start.is_file():
        raise FileNotFoundError(f"--start {cfg.start}: no such generator file")
    start_meta = peek(cfg.start)
    if start_meta.get("kind") != "generator":
        raise ValueError(f"--start {cfg.start}: a generator file is needed (it holds {start_meta.get('kind')!r})")
    start_styles = json.loads(start_meta["styles"])
    start_cfg = json.loads(start_meta["config"])
    from core.generator import GeneratorConfig

    standard = GeneratorConfig(styles=1)  # what `training gan` builds besides --widths and --fine-waves
    if any(start_cfg.get(k) != getattr(standard, k) for k in ("style_dim", "local_dim", "global_dim",
                                                             "periodic_dim", "upsample")):
        raise ValueError(f"--start {cfg.start}: a generator trained by `python -m training gan` is needed (its "
                         "noise and embedding sizes differ)")
    if cfg.like is not None and cfg.like not in start_styles:
        raise ValueError(f"--like {cfg.like}: not a style of {cfg.start.name}; choose one of "
                         f"{', '.join(start_styles)}")

    work = cfg.work / cfg.name
    run, data = work / "run", work / "photos" / cfg.name
    begun = (run / checkpoint.LAST).is_file()
    if cfg.resume and not begun:
        raise ValueError(f"--resume: there is no earlier run of {cfg.name} in {work} to continue")
    if begun and not (cfg.resume or cfg.restart):
        raise ValueError(f"{work} holds an unfinished run of {cfg.name}: pass --resume to continue it, or "
                         "--restart to start over")
    if cfg.restart:
        shutil.rmtree(work, ignore_errors=True)

    state_file = work / "learn.json"
    if cfg.resume:
        state = json.loads(state_file.read_text())
    else:
        like = cfg.like or nearest_style(photos, cfg.start, cfg.device)
        shutil.rmtree(data.parent, ignore_errors=True)
        data.mkdir(parents=True)
        from core.imageio import write_png

        for i, img in enumerate(photos):
            write_png(data / f"{i:03d}.png", img)
        state = {"like": like, "start": str(cfg.start), "photos": [str(f) for f in files]}
        state_file.write_text(json.dumps(state, indent=1))
    log(f"learn: {len(photos)} photo(s) → style {cfg.name!r}, starting from {state['like']!r} of "
        f"{Path(state['start']).name}; work folder {work}")

    _start_clock(state, state_file)
    steps = None if cfg.steps is None else state["start_step"] + cfg.steps  # the start's count carries on
    gan = GanConfig(data=data.parent, out=run, minutes=cfg.minutes, steps=steps, resume=cfg.resume,
                    init=None if cfg.resume else Path(state["start"]),
                    style_init=None if cfg.resume else f"{cfg.name}={state['like']}",
                    widths=tuple(start_cfg["widths"]), fine_waves=start_cfg["fine_periodic_dim"],
                    layouts=start_cfg.get("layouts", 0),
                    layout_styles=learned_layout_styles(cfg.name, state["like"], start_styles, start_cfg),
                    batch=cfg.batch, crop=cfg.crop, g_size=cfg.g_size, image_size=TRAIN_SIDE, photos=True,
                    seed=cfg.seed, device=cfg.device, ckpt_every=25, sample_every=100)
    if cfg.resume:  # --minutes counts across resumes: take off what the earlier runs spent
        meta = checkpoint.load(run)[0]
        spent = (meta["wall_time_s"] - state["start_wall_s"]) / 60
        gan.minutes = max(cfg.minutes - spent, 0.01)
    stopped_at = None

    def on_step(clock: Clock) -> bool:  # this run's step rate gives the time left under --steps
        nonlocal stopped_at
        assert progress is not None
        end, left = clock.expected_end()
        done = clock.step - state["start_step"]
        if progress(done, done + round(end - clock.step), max(left, 0.0)):
            return True
        stopped_at = done
        return False

    last = train(gan, None if progress is None else on_step)
    if stopped_at is not None:
        raise Stopped(f"the run of {cfg.name} stopped at step {stopped_at} and is kept in {work}: resume "
                      "continues it")
    models.mkdir(parents=True, exist_ok=True)
    out = export.export(last.parent, models / f"{cfg.name}.safetensors",  # written atomically, checked
                        sources=your_photos(state["photos"]))
    shutil.rmtree(work, ignore_errors=True)  # the style is written: the run (55 MB) has nothing left to resume
    return out


def learned_layout_styles(name: str, like: str, start_styles: list[str], start_cfg: dict) -> str | None:
    """--layout-styles for a style learned from `like` of a start generator (its styles, its config): the
    new style sees the layouts when `like` does (None: the start has no layout_styles, every style sees
    them), else none ('')."""
    seen = start_cfg.get("layout_styles")  # only ever set with layouts (GeneratorConfig checks)
    if seen is None:
        return None
    return name if start_styles.index(like) in seen else ""


def _start_clock(state: dict, state_file: Path) -> None:
    """Remember the start generator's step count and wall time, which --init carries on, so --steps and
    --minutes count only this run's."""
    if "start_step" in state:
        return
    training = json.loads(peek(Path(state["start"])).get("training", "{}"))
    state["start_step"] = int(training.get("steps", 0))
    state["start_wall_s"] = float(training.get("wall_time_s", 0.0))
    state_file.write_text(json.dumps(state, indent=1))
