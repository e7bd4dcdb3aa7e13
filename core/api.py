"""The Python API: find weights, pick a device, generate and upscale textures; photos to materials.

    from core import load_generator
    gen = load_generator()                       # shipped weights + the per-user models folder
    img = gen.generate("grass", seed=3, size=1024)   # (1024, 1024, 3) uint8, seamless
    big = gen.upscale(img, scale=4)               # (4096, 4096, 3) uint8, still seamless

    from core.api import make_tileable, maps_from_image   # no models needed
    tile = make_tileable(photo)                  # same shape and dtype, wraps around
    pbr = maps_from_image(tile)                  # {"albedo", "normal", "height", "roughness", "ao"}
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import imageio, noise, pbr, photostyle, request, weights
from .catalog import (SHIPPED_DIR, chosen_models_dir, model_files, search_path,  # noqa: F401  (public here too)
                      user_models_dir)
from .catalog import DETAIL, pick_upscaler, shipped_upscalers, upscaler_slot
from .files import check_name_length
from .generator import TextureGenerator
from .request import GAN_SCALE, MAX_SIZE, MIN_SIZE, SIZE_STEP  # noqa: F401  (public here too)
from .request import check_seed, check_size, parse_style  # noqa: F401  (public here too)
from .pbr import maps_from_image  # noqa: F401  (public here too)
from .photostyle import PhotoStyle
from .tile import make_tileable  # noqa: F401  (public here too)
from .upscaler import Upscaler, seed_noise, upscale_tiled

GPU_BATCH_PIXELS = 16 * 1024**2  # output pixels per batch on a GPU by default
DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str = "auto") -> torch.device:
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}: use one of {', '.join(DEVICES)} or cuda:N")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but this PyTorch build sees no CUDA GPU: use auto or cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but Metal is not available here: use auto or cpu")
    return torch.device(device)


@dataclass
class _GanEntry:
    model: TextureGenerator
    meta: dict[str, Any]
    path: Path
    members: weights.Members | None = None  # a per-image generator's: a seed picks one per style


@dataclass
class Tessera:
    """Loaded models on one device. Build it with `load_generator`."""

    device: torch.device
    generators: dict[str, _GanEntry]                 # style name → the generator that holds it
    upscalers: dict[int, tuple[Upscaler, dict, Path]]  # scale → faithful model (`upscale`)
    errors: list[str] = field(default_factory=list)   # files that could not be loaded, one line each
    detail: tuple[Upscaler, dict, Path] | None = None  # the ×4 detail upscaler `generate` uses, if loaded
    photos: dict[str, PhotoStyle] = field(default_factory=dict)  # photo styles (core.photostyle), by name

    @property
    def styles(self) -> list[str]:
        """The GAN's styles, then the photo styles."""
        return [*self.generators, *self.photos]

    def all_upscalers(self) -> list[tuple[Upscaler, dict, Path]]:
        """The faithful upscalers and the detail one, if loaded: (model, meta, path) each."""
        return [*self.upscalers.values(), *([self.detail] if self.detail else [])]

    # style names and mixes

    def style_weights(self, style: str | dict[str, float]) -> tuple[_GanEntry | PhotoStyle, torch.Tensor]:
        """'grass', 'grass+rock' (equal parts), 'grass:0.7+rock:0.3' or {'grass': 0.7, ...}. A string that
        is exactly a style's name means that style, even when the name holds ':' or '+'. → (the entry: a GAN
        file's, or a PhotoStyle, (1, styles) float32 weights summing to 1). Raises ValueError as
        core.request.style_weights (a photo style mixed with any other style too)."""
        entry, w = request.style_weights(style, {**self.generators, **self.photos})
        return entry, torch.from_numpy(w)

    def photo_style(self, style: str | dict[str, float]) -> PhotoStyle | None:
        """The photo style `style` names, None for a GAN style or mix. Raises ValueError as `style_weights`."""
        entry = self.style_weights(style)[0]
        return entry if isinstance(entry, PhotoStyle) else None

    def _gan_entry(self, style: str | dict[str, float]) -> tuple[_GanEntry, torch.Tensor]:
        entry, w = self.style_weights(style)
        if isinstance(entry, PhotoStyle):
            raise ValueError(f"{entry.name} is a photo style: it has no GAN output (generate draws it)")
        return entry, w

    def compile(self, mode: str = "default") -> None:
        """torch.compile every model in place (`mode` as torch.compile takes it; "reduce-overhead" adds
        CUDA graphs). Each new shape then compiles on its first call, which takes seconds to minutes.
        Off by default: `python -m core.bench --compile` measures whether it wins on a machine."""
        for entry in {id(e.model): e for e in self.generators.values()}.values():
            entry.model.synthesize = torch.compile(entry.model.synthesize, mode=mode,  # type: ignore[method-assign]
                                                   dynamic=False)
        for model, _, _ in self.all_upscalers():
            model.compile(mode=mode, dynamic=False)

    # generation

    def _autocast(self):
        if self.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return nullcontext()

    @torch.inference_mode()
    def generate_gan(self, style: str | dict[str, float], seed: int = 0, size: int = 256) -> torch.Tensor:
        """The GAN's own output: (1, 3, size, size) float in [0, 1], size a multiple of its stride."""
        return self._gan(style, [check_seed(seed)], size)

    def _gan(self, style: str | dict[str, float], seeds: Sequence[int], size: int) -> torch.Tensor:
        """(len(seeds), 3, size, size): each seed's noise drawn on its own with numpy (core.noise), so a seed
        gives the same texture whatever batch it is in, and on the torch-free runtime (up to float rounding)."""
        entry, w = self._gan_entry(style)
        model, stride = entry.model, entry.model.cfg.stride
        if size % stride:  # only reachable with a user's generator of a larger stride
            step = stride * GAN_SCALE
            raise ValueError(f"size {size * GAN_SCALE} does not fit {entry.path.name}: use a multiple of {step}")
        cells = (size // stride, size // stride)
        with self._autocast():
            if entry.members is None:
                s = model.embed(w.to(self.device))
                s = s.expand(len(seeds), -1)
            else:  # each seed's own member of each style, picked as the runtime picks it
                m = entry.members
                s = torch.from_numpy(np.concatenate([noise.member_embedding(w.numpy(), m.embedding, m.style, seed)
                                                     for seed in seeds])).to(self.device)
            gate = model.layout_gate(w.to(self.device).expand(len(seeds), -1))
            x = model.synthesize(model.make_noise(s, cells, seeds, gate), s)
        return (x.float() * 0.5 + 0.5).clamp(0, 1)

    @torch.inference_mode()
    def generate(self, style: str | dict[str, float], seed: int = 0, size: int = 1024,
                 progress: Callable[[int, int], None] | None = None, *, faithful: bool = False) -> np.ndarray:
        """A seamless texture: (size, size, 3) uint8, the same for a seed on a given device.

        The GAN draws at size/4; the ×4 detail upscaler (`.detail`, trained adversarially to add fine detail)
        brings it to size when one is loaded, else, or with `faithful`, the faithful ×4 (trained for PSNR).
        `progress(done, total)` is told after the GAN and after each upscaling tile; it may raise to stop.
        """
        size = check_size(size)
        photo = self.photo_style(style)
        if photo is not None:  # quilted from its photos: no GAN, no upscaler (core.photostyle)
            out = photo.generate(seed, size)
            if progress:
                progress(1, 1)
            return out
        x = self._gan(style, [check_seed(seed)], size // GAN_SCALE)
        if progress:
            progress(0, 1)
        return imageio.to_uint8(self._upscale(x, GAN_SCALE, tileable=True, progress=progress, detail=not faithful,
                                              seeds=[seed]))

    def generate_many(self, style: str | dict[str, float], seeds: Iterable[int], size: int = 1024,
                      batch: int | None = None, *, faithful: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        """(seed, texture) for each seed in order, `batch` seeds at a time through the models.

        Each texture is `generate(style, seed, size, faithful=faithful)` up to float rounding (at most one level of 8 bits
        where a batched kernel rounds differently). The default batch is 1 on a CPU, where bigger batches
        measured slower per texture (core.bench), and on a GPU, which needs them to be busy, as many as
        make 16 textures of 1024² (4 of 2048², 1 of 4096² and up), so memory stays bounded.
        """
        size, seeds = check_size(size), [check_seed(s) for s in seeds]
        if batch is None:
            batch = 1 if self.device.type == "cpu" else max(1, GPU_BATCH_PIXELS // size**2)
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch {batch!r} must be a whole number ≥ 1")
        photo = self.photo_style(style)  # a bad style fails before the first texture
        if photo is not None:
            for seed in seeds:
                yield seed, photo.generate(seed, size)
            return
        for i in range(0, len(seeds), batch):
            part = seeds[i:i + batch]
            with torch.inference_mode():
                x = self._upscale(self._gan(style, part, size // GAN_SCALE), GAN_SCALE, tileable=True,
                                  detail=not faithful, seeds=part)
            yield from zip(part, (imageio.to_uint8(img[None]) for img in x))

    def generate_maps(self, style: str | dict[str, float], seed: int = 0, size: int = 1024,
                      maps: tuple[str, ...] | list[str] = pbr.MAPS, *,
                      normal_strength: float = pbr.DEFAULT_NORMAL_STRENGTH,
                      progress: Callable[[int, int], None] | None = None,
                      faithful: bool = False) -> dict[str, np.ndarray]:
        """A seamless PBR set: {map: array} for albedo and normal (size, size, 3) uint8, height
        (size, size) uint16, roughness and ao (size, size) uint8, each exactly as tileable as the albedo.
        The albedo is `generate(style, seed, size, faithful=faithful)`."""
        maps = pbr.check_maps(maps)
        albedo = self.generate(style, seed=seed, size=size, progress=progress, faithful=faithful)
        return pbr.derive(albedo, maps, roughness=self.roughness(style), normal_strength=normal_strength)

    def roughness(self, style: str | dict[str, float]) -> float:
        """Base roughness of a style (or the weighted mean over a mix), from the weights' metadata; a photo
        style's is the default (core.pbr.DEFAULT_ROUGHNESS) unless its header says "pbr": {"roughness": …}."""
        entry, w = self.style_weights(style)
        table = entry.meta.get("pbr", {}).get("roughness", {})
        bases = [table.get(n, pbr.STYLE_ROUGHNESS.get(n, pbr.DEFAULT_ROUGHNESS)) for n in entry.meta["styles"]]
        return float(w[0] @ torch.tensor(bases, dtype=w.dtype))

    def _upscale(self, x: torch.Tensor, scale: int, tileable: bool,
                 progress: Callable[[int, int], None] | None = None, exact: bool = False,
                 detail: bool = False, seeds: list[int] | None = None) -> torch.Tensor:
        """`exact`: no reduced-precision autocast (bf16 keeps 8 bits: too few for 16-bit input); `detail`: the
        ×4 detail upscaler where one is loaded; `seeds`: one per image, the textures' seeds, which an upscaler
        with noise inputs draws its noise from (core.noise.upscaler_noise; without seeds it reads zeros)."""
        model = pick_upscaler(self.upscalers, self.detail, scale, detail)[0]
        cpu = self.device.type == "cpu"
        x = x.contiguous(memory_format=torch.contiguous_format if cpu else torch.channels_last)
        tile = 256 if cpu else 512
        grain = None if seeds is None else seed_noise(model.cfg, tuple(x.shape), seeds, self.device)
        with nullcontext() if exact else self._autocast():
            y = upscale_tiled(model, x, tile=tile, tileable=tileable, progress=progress, noise=grain)
        return y.float().clamp(0, 1)

    @torch.inference_mode()
    def upscale(self, img: np.ndarray, scale: int = 4, tileable: bool = True) -> np.ndarray:
        """Upscale an image ×`scale`; it wraps around the borders when `tileable`, else is mirrored there.

        `img`: (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or (H, W, 4) RGBA (straight alpha), any
        H, W ≥ 1, of dtype uint8 (0…255), uint16 (0…65535), bool, or float16/32/64 (values in 0…1).
        → the same layout at (H·scale, W·scale), in the same dtype (bool → uint8, floats → float32).
        Grey stays grey (it goes through the model as R = G = B and comes back as their mean); alpha is
        upscaled on its own, as a grey image, so what it hid stays hidden.
        Raises ValueError for another shape or dtype, floats outside 0…1, or a scale other than 2 or 4.
        """
        if scale not in (2, 4):
            raise ValueError(f"scale {scale!r} is not supported: use 2 or 4")
        unit = imageio.to_unit(img)  # checks shape, dtype and range
        grey = unit.ndim == 2 or unit.shape[2] <= 2
        planes = unit[..., None] if unit.ndim == 2 else unit
        colour = planes[..., :1] if grey else planes[..., :3]
        layers = [np.broadcast_to(colour, (*colour.shape[:2], 3))]
        alpha = planes.shape[2] in (2, 4)
        if alpha:
            layers.append(np.broadcast_to(planes[..., -1:], (*planes.shape[:2], 3)))
        x = torch.from_numpy(np.stack(layers)).permute(0, 3, 1, 2).contiguous().to(self.device)
        exact = img.dtype not in (np.uint8, np.bool_)
        y = self._upscale(x, scale, tileable, exact=exact).permute(0, 2, 3, 1).cpu().numpy()  # (layers, H', W', 3)
        out = y[0].mean(axis=2, keepdims=True) if grey else y[0]
        if alpha:
            out = np.concatenate([out, y[1].mean(axis=2, keepdims=True)], axis=2)
        if unit.ndim == 2:
            out = out[..., 0]
        return imageio.from_unit(out, img.dtype)


def _load_into(path: Path, dev: torch.device, gens: dict[str, _GanEntry],
               ups: dict[int | str, tuple[Upscaler, dict, Path]], errors: list[str],
               photos: dict[str, PhotoStyle]) -> None:
    """Build one weights file onto `dev` and file it under its styles, its upscaler slot (catalog.
    upscaler_slot) or, a photo style, under its name in `photos` (earlier files win)."""
    if photostyle.load_into(path, gens, photos, errors):
        return
    try:
        model, meta = weights.build(path)
        slot = upscaler_slot(meta, model.cfg.scale) if isinstance(model, Upscaler) else None
    except (weights.ModelFileError, FileNotFoundError) as e:
        errors.append(str(e))
        return
    except ValueError as e:
        errors.append(f"{path}: {e}")
        return
    model = model.to(dev)
    if isinstance(model, TextureGenerator) or dev.type != "cpu":  # measured: faster there (core.bench);
        model = model.to(memory_format=torch.channels_last)       # the CPU upscaler is faster in NCHW
    if isinstance(model, TextureGenerator):
        entry = _GanEntry(model, meta, path, meta.pop("members", None))
        for name in meta["styles"]:
            if name not in photos:
                gens.setdefault(name, entry)  # earlier folders on the path win
    else:
        ups.setdefault(slot, (model, meta, path))  # type: ignore[arg-type]


def load_generator(device: str = "auto", models_dir: str | Path | None = None) -> Tessera:
    """Load every weights file on the search path (generators, upscalers and photo styles, core.photostyle);
    an upscale factor none of them has comes from the shipped weights. Bad files are reported by name
    (warnings and `.errors`) while good ones still load; with no usable generator or photo style at all,
    raise FileNotFoundError."""
    folders = search_path(models_dir)
    chosen = chosen_models_dir(models_dir)
    if chosen is not None:
        check_name_length(chosen)  # before `is_dir`, which raises on a name too long
    if chosen is not None and not chosen.is_dir():
        what = f"models folder {models_dir}" if models_dir else f"$TESSERA_MODELS={os.environ['TESSERA_MODELS']}"
        reason = "is a file, expected a folder" if chosen.exists() else "does not exist"
        raise FileNotFoundError(f"{what} {reason}")
    dev = resolve_device(device)
    gens: dict[str, _GanEntry] = {}
    ups: dict[int | str, tuple[Upscaler, dict, Path]] = {}
    errors: list[str] = []
    photos: dict[str, PhotoStyle] = {}
    for path in model_files(models_dir):
        _load_into(path, dev, gens, ups, errors, photos)
    # The upscalers do not depend on the style: a folder holding only a generator (a style someone trained)
    # still gets the shipped ones.
    for path in shipped_upscalers(set(ups), SHIPPED_DIR):
        _load_into(path, dev, gens, ups, errors, photos)
    if not gens and not photos:
        where = ", ".join(str(f) for f in folders)
        detail = f" ({'; '.join(errors)})" if errors else ""
        raise FileNotFoundError(f"no usable generator weights in {where}{detail}")
    for e in errors:  # only now: when nothing loads, the error above already names every bad file
        warnings.warn(e, stacklevel=2)
    detail = ups.pop(DETAIL, None)
    return Tessera(dev, gens, ups, errors, detail, photos)  # type: ignore[arg-type]
