"""What both trainers share: style-folder datasets, the distributed set-up, logging and the loop clock."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tga", ".tif", ".tiff", ".webp", ".dds")


# configuration

@dataclass
class RunConfig:
    """What every training command takes: where the images are, where the run goes, how long it runs."""

    data: Path
    """folder of training images, one subfolder per style (sr also takes a flat folder): the curated
    `gan/train` or `hr/train` set, or your own"""
    out: Path
    """checkpoint folder: last.safetensors, log.jsonl, samples/"""
    steps: int | None = None
    """stop at this total step count (counted across resumes)"""
    minutes: float | None = None
    """stop after this many minutes of this run"""
    resume: bool = False
    """continue from OUT/last.safetensors"""
    seed: int = 0
    """seed of the weight initialisation and of the random crops and noise"""
    device: str = "auto"
    """auto (cuda, else mps, else cpu), cpu, cuda, cuda:N or mps"""
    ckpt_every: int = 100
    """steps between checkpoints (a kill loses at most this many)"""
    sample_every: int = 500
    """steps between sample grids in OUT/samples/"""
    bf16: bool = False
    """on a CPU, run the forward passes in bfloat16 (torch.autocast; weights, optimizer and losses stay
    float32): about 1.35× the steps per hour on a CPU with AVX-512 BF16, measured on this project's GAN
    step; CUDA always runs in bfloat16"""

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        if self.steps is None and self.minutes is None:
            raise ValueError("give --steps N or --minutes M (or both) so training knows when to stop")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"--steps {self.steps} must be ≥ 1")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"--minutes {self.minutes} must be > 0")


# data

@dataclass
class StyleImages:
    """Every usable image under a folder, in memory as uint8 (3, H, W) tensors, grouped by style.

    `root/<style>/*.png` gives one style per subfolder; images directly in `root` form one style named
    after the folder. Unreadable files are skipped with a warning; no usable image is an error.
    """

    styles: list[str]
    images: list[list[torch.Tensor]]
    sources: dict = field(default_factory=dict)
    turned: int = 0
    """how many images `align` turned by 90°"""
    descriptors: np.ndarray | None = None
    """with `describe`: (len(self), core.descriptors.DIM) float32, each image's raw descriptors φ, in the
    order of `image_styles` (style by style, images in file-name order), as the images are held"""

    @classmethod
    def from_folder(cls, root: Path, max_side: int | None = None, align: bool = False,
                    hint: str | None = None, check_names: bool = False, describe: bool = False) -> "StyleImages":
        """With `align`, images whose stripes run vertically are turned by 90° (see `run_horizontally`).
        With `describe`, each image's descriptors are computed once, from the image as held (resized and
        turned): `descriptors`.
        `hint` ends the no-usable-image error (default: put images in `root` or in style subfolders).
        With `check_names`, folder names that could not be used as style names raise ValueError first.
        Images are read as `core.imageio.read_image` reads them (EXIF orientation applied, 16-bit and
        float scaled, grey repeated; alpha left out with a warning when it hides anything)."""
        from PIL import Image

        from core.files import check_name_length
        from core.imageio import UnreadableImage, read_image

        root = Path(root)
        check_name_length(root)  # before `exists`, which raises on a name too long
        if not root.exists():
            raise FileNotFoundError(f"data folder {root} does not exist")
        if not root.is_dir():
            raise ValueError(f"data {root} is a file, not a folder of images")
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
        groups = [(p.name, p) for p in folders] or [(root.name, root)]
        if check_names:
            check_style_names([name for name, _ in groups], root)
        styles, images, turned = [], [], 0
        for name, folder in groups:
            imgs = []
            for f in sorted(folder.iterdir()):
                if f.suffix.lower() not in IMAGE_EXTS:
                    continue
                try:  # upright, 16-bit and float scaled, grey repeated: never a white field
                    im = Image.fromarray(read_image(f))  # (warns when it leaves out a hiding alpha)
                except UnreadableImage as e:  # skip any file Pillow cannot decode or Tessera cannot read
                    warnings.warn(f"skipping {e}", stacklevel=2)
                    continue
                if max_side and max(im.size) > max_side:
                    k = max_side / max(im.size)
                    im = im.resize((max(1, round(im.size[0] * k)), max(1, round(im.size[1] * k))),
                                   Image.Resampling.LANCZOS)
                img = torch.from_numpy(np.array(im)).permute(2, 0, 1).contiguous()
                if align:
                    upright = run_horizontally(img)
                    turned += upright is not img
                    img = upright
                imgs.append(img)
            if imgs:
                styles.append(name)
                images.append(imgs)
        if not styles:
            raise ValueError(f"no usable image in {root}: "
                             + (hint or f"put images in {root} or in {root}/<style>/ subfolders"))
        sources = {}
        index = root.parent.parent / "index.json"  # the curated set records its sources
        if index.is_file():
            sources = json.loads(index.read_text()).get("licences", {})
        descriptors = None
        if describe:
            from core.descriptors import describe as phi

            descriptors = np.stack([phi(img.permute(1, 2, 0).numpy() / 255.0) for imgs in images for img in imgs])
        return cls(styles, images, sources or {"user folder": str(root)}, turned, descriptors)

    def __len__(self) -> int:
        return sum(len(v) for v in self.images)

    @property
    def image_styles(self) -> torch.Tensor:
        """(len(self),) int64: the style index of each image, style by style; an image's place in it is the
        image index `sample_indexed` reports."""
        return torch.tensor([s for s, imgs in enumerate(self.images) for _ in imgs], dtype=torch.int64)

    def sample(self, n: int, crop: int, g: torch.Generator, wrap: bool = True,
               weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n random crops (n, 3, crop, crop) in [0, 1] and their style labels (n,) int64: `sample_indexed`
        without the image indices (the same draws from `g`)."""
        crops, labels, _ = self.sample_indexed(n, crop, g, wrap, weights)
        return crops, labels

    def sample_indexed(self, n: int, crop: int, g: torch.Generator, wrap: bool = True,
                       weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n random crops (n, 3, crop, crop) in [0, 1], their style labels (n,) int64 and the index (n,) int64
        of the image each came from (its row of `image_styles` and `descriptors`). Styles are drawn
        uniformly (rare styles are not drowned out) or in proportion to `weights`, then an image,
        then a position. With `wrap`, crops wrap around the image's torus (the sources are tileable),
        which is also the roll augmentation; otherwise they stay inside images big enough to hold them."""
        if weights is None:
            labels = torch.randint(len(self.styles), (n,), generator=g)
        else:
            labels = torch.multinomial(weights, n, replacement=True, generator=g)
        first = np.cumsum([0] + [len(imgs) for imgs in self.images])  # each style's first image index
        index = torch.empty(n, dtype=torch.int64)
        out = torch.empty(n, 3, crop, crop)
        for i, s in enumerate(labels.tolist()):
            imgs = self.images[s]
            j = int(torch.randint(len(imgs), (1,), generator=g))
            index[i] = int(first[s]) + j
            img = imgs[j]
            _, h, w = img.shape
            inside = not wrap and h >= crop and w >= crop
            y0 = int(torch.randint(h - crop + 1 if inside else h, (1,), generator=g))
            x0 = int(torch.randint(w - crop + 1 if inside else w, (1,), generator=g))
            ys = torch.arange(y0, y0 + crop) % h
            xs = torch.arange(x0, x0 + crop) % w
            patch = img[:, ys][:, :, xs].float() / 255.0
            if torch.rand((), generator=g) < 0.5:
                patch = patch.flip(2)
            out[i] = patch
        return out, labels, index


STYLE_RESERVED = ":+,"  # the style-mix syntax ("grass:0.7+rock:0.3") and list separators (--styles a,b)


def check_style_names(names: list[str], root: Path) -> None:
    """Raise ValueError unless every folder name can be a style: usable in a mix (`--style a:0.5+b`) and
    a list (`--styles a,b`), not blank at either end, and saved under file names no other style shares
    (`core.batch.file_stem`, compared ignoring case, as on a case-insensitive disk)."""
    from core.batch import file_stem, same_file_names

    for name in names:
        bad = sorted(set(name) & set(STYLE_RESERVED))
        if bad or name != name.strip() or not name:
            why = (f"holds {' '.join(repr(c) for c in bad)}, which style mixes and lists use" if bad
                   else "begins or ends with a space")
            raise ValueError(f"style folder {root / name!r} {why}: rename it (letters, digits, '-', '_', '.', "
                             f"inner spaces)")
    clash = same_file_names(names)
    if clash is not None:
        other, name = clash
        raise ValueError(f"style folders {other!r} and {name!r} in {root} would be saved under the same file "
                         f"names ({file_stem(name)}_<seed>_<map>.png): rename one")


def run_horizontally(img: torch.Tensor, ratio: float = 1.5) -> torch.Tensor:
    """`img` (3, H, W) turned by 90° if its stripes run vertically, else as it is.

    Vertical planks, grain or bark change fastest along x: the mean squared difference between
    horizontal neighbours exceeds the vertical one. Past `ratio` the image counts as vertical; below
    it (isotropic noise, stones, horizontal courses) it is left alone. Wrap-around differences, so a
    tileable image's border counts like any other pair; turning it keeps it tileable."""
    grey = img.float().mean(0)
    across = (grey.roll(-1, 1) - grey).pow(2).mean()
    along = (grey.roll(-1, 0) - grey).pow(2).mean()
    return img.rot90(1, (1, 2)).contiguous() if across > ratio * along else img


# distributed

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> Dist:
    """Single process, or one rank of `torchrun` (gloo on CPU, nccl on CUDA)."""
    from core.api import resolve_device

    if "RANK" not in os.environ:
        return Dist(0, 1, resolve_device(device))
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, dev)


def teardown(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.barrier()  # rank 0 may still be saving; leaving early has aborted a gloo peer here
        dist.destroy_process_group()


def hardware(d: Dist) -> str:
    if d.device.type == "cuda":
        return f"{d.world}× {torch.cuda.get_device_name(d.device)}"
    return f"{d.world} process(es) on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, CPU"


def autocast(d: Dist, cpu_bf16: bool = False):
    """bfloat16 autocast on CUDA, and on the CPU when `cpu_bf16` (RunConfig.bf16); otherwise a no-op."""
    if d.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16 and d.device.type == "cpu")


# logging and the clock

class Clock:
    """Stops after `steps` total steps or `minutes` of this run, whichever comes first."""

    def __init__(self, start_step: int, steps: int | None, minutes: float | None, wall_before: float):
        self.step, self.steps, self.minutes, self.start_step = start_step, steps, minutes, start_step
        self.t0, self.wall_before = time.time(), wall_before
        self._rate_from = (self.t0, start_step)

    def rate(self, images_per_step: int) -> float:
        """Images per second since the previous call (or the start of this run)."""
        now, (t, s) = time.time(), self._rate_from
        self._rate_from = (now, self.step)
        return (self.step - s) * images_per_step / max(now - t, 1e-9)

    def expected_end(self) -> tuple[float, float]:
        """(the step this run is expected to stop at, seconds left), from this run's step rate: the sooner of
        --steps and the end of the --minutes budget (infinite when neither is set). Seconds left go below 0
        once the budget is spent."""
        elapsed, ran = time.time() - self.t0, self.step - self.start_step
        left = self.minutes * 60 - elapsed if self.minutes is not None else float("inf")
        if self.steps is not None:
            left = min(left, (self.steps - self.step) * elapsed / max(ran, 1))
        return self.step + left * ran / max(elapsed, 1e-9), left

    @property
    def wall(self) -> float:
        return self.wall_before + time.time() - self.t0

    def running(self) -> bool:
        if self.steps is not None and self.step >= self.steps:
            return False
        if self.minutes is None:
            return True
        over = time.time() - self.t0 >= self.minutes * 60
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # Each rank reads its own clock: without agreeing, one stops while the others wait
            # forever in the next step's all-reduce. One tiny all-reduce per step settles it.
            dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
            flag = torch.tensor([float(over)], device=dev)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            over = bool(flag.item())
        return not over


def progress(clock: Clock, desc: str, enabled: bool):
    from tqdm import tqdm

    total = clock.steps if clock.steps is not None else None
    return tqdm(total=total, initial=clock.step, desc=desc, unit="step", disable=not enabled,
                dynamic_ncols=True, file=sys.stderr)


def end_step(cfg: RunConfig, d: Dist, clock: Clock, bar, images: int, losses: dict[str, torch.Tensor],
             save: Callable[[], None], sample: Callable[[int], None]) -> None:
    """After each optimiser step: count it; every 10th and the last, log the losses (read only then, as
    `.item()` waits for the GPU) and the `images`-per-step rate; checkpoint and sample on their intervals."""
    clock.step += 1
    if clock.minutes is not None and clock.steps is None:  # a time budget: the bar's end is where it runs out
        bar.total = clock.step + int(clock.expected_end()[0] - clock.step)
    bar.update(1)
    if d.main and (clock.step % 10 == 0 or clock.step == cfg.steps):
        scores = {k: float(f"{v.item():.4g}") for k, v in losses.items()}
        log_jsonl(cfg.out / "log.jsonl", {"step": clock.step, "wall_s": round(clock.wall, 1), **scores,
                                          "img_per_s": round(clock.rate(images), 2)})
        bar.set_postfix(scores)
    if clock.step % cfg.ckpt_every == 0:
        save()
    if clock.step % cfg.sample_every == 0:
        sample(clock.step)


def config_record(cfg: object) -> dict:
    """A config dataclass as JSON-ready values (paths as strings), for checkpoint headers."""
    from dataclasses import asdict

    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """Exponential moving average of the weights, with a warm-up so early averages are not just the
    random initialisation (decay grows as (1 + step) / (10 + step) up to `decay`)."""
    d = min(decay, (1 + step) / (10 + step))
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p.detach(), 1 - d)


def log_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def grid(images: torch.Tensor, nrow: int) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] → one (rows·H, nrow·W, 3) uint8 picture with 2-px gaps."""
    n, _, h, w = images.shape
    rows = (n + nrow - 1) // nrow
    canvas = torch.ones(3, rows * (h + 2), nrow * (w + 2))
    for i in range(n):
        r, c = divmod(i, nrow)
        canvas[:, r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = images[i]
    return (canvas.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
