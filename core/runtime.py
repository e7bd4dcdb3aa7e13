"""Inference without PyTorch: the generator and the upscalers on ONNX Runtime.

    from core.runtime import load
    rt = load()                                    # shipped weights + the per-user models folder, on the CPU
    img = rt.generate("grass", seed=3, size=1024)  # (1024, 1024, 3) uint8: the texture core.api makes for this seed

Imports numpy, onnxruntime and safetensors, never torch. Weights are read from the same safetensors files
as the PyTorch path (core.weights.read(..., "np"), verified by their sha256); the graphs (core.export_onnx)
hold structure only, and each weight is handed to ONNX Runtime as an initializer when a session opens, so
nothing in a models folder is ever executed. Which graph runs a file is `weights.graph_name` of its kind
and config, looked up in the file's folder's graphs/ and then in the shipped graphs.
The noise comes from core.noise, as on the PyTorch path: one seed, one texture, on either path (equal up to
float rounding, within one level of 8 bits); so does a per-image generator's choice of member for a seed.
Arrays: images are (B, 3, H, W) float32 in [0, 1] inside, (H, W, 3) uint8 outside (core.imageio's layout).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import noise, photostyle, weights
from .catalog import (DETAIL, SHIPPED_DIR, chosen_models_dir, model_files, pick_upscaler, shipped_upscalers,
                      upscaler_slot)
from .config import GeneratorConfig, UpscalerConfig
from .photostyle import PhotoStyle
from .request import GAN_SCALE, check_seed, check_size, style_weights

GRAPHS = "graphs"  # as core.export_onnx writes them
SHIPPED_GRAPHS = SHIPPED_DIR / GRAPHS
TILE = 256  # low-res pixels per upscaling tile, as the PyTorch path on a CPU


# graphs and sessions

def find_graph(path: Path, meta: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The graph for weights file `path` with metadata `meta` → (NAME.onnx, its NAME.json), from
    `path`'s folder's graphs/ or the shipped ones. Raises ModelFileError naming the file when neither has it."""
    name = weights.graph_name(meta["kind"], meta["config"])
    for folder in (path.parent / GRAPHS, SHIPPED_GRAPHS):
        graph, info = folder / f"{name}.onnx", folder / f"{name}.json"
        if graph.is_file() and info.is_file():
            return graph, json.loads(info.read_text())
    raise weights.ModelFileError(path, f"no ONNX graph {name} for this architecture; make one with PyTorch: "
                                       f"python -m core.export_onnx --models {path.parent}")


def open_session(path: Path, meta: dict[str, Any], tensors: dict[str, np.ndarray],
                 providers: Sequence[str], threads: int = 0) -> tuple[Any, list[Any]]:
    """(onnxruntime.InferenceSession, the OrtValues it reads its weights from: keep them as long as it) for
    weights file `path` (already read: `meta`, `tensors`) and its graph. `threads` 0: ONNX Runtime's default
    (one per physical core). Raises ModelFileError naming the file when the graph or the tensors do not fit."""
    import onnxruntime as ort

    graph, info = find_graph(path, meta)
    missing = [n for n in info["weights"] if n not in tensors]
    if missing:
        raise weights.ModelFileError(path, f"lacks tensors {', '.join(missing[:3])} that graph {graph.name} needs")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: ONNX Runtime warns about unused initializers on stderr
    values = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(tensors[n], dtype=np.float32))
              for n in info["weights"]]
    options.add_external_initializers(info["weights"], values)
    try:
        session = ort.InferenceSession(graph.read_bytes(), options, providers=list(providers))
    except Exception as e:  # ONNX Runtime raises its own exception types (Fail, InvalidArgument, …)
        first = str(e).strip().splitlines()[0]
        raise weights.ModelFileError(path, f"does not run with graph {graph.name} ({first})") from None
    return session, values


# models

@dataclass
class _Gen:
    """A generator file: its session, metadata and the tensors the runtime uses outside the graph."""

    session: Any
    values: list[Any]  # the session's weights
    meta: dict[str, Any]
    path: Path
    cfg: GeneratorConfig
    table: dict[str, np.ndarray]  # style.weight, wave.*, fine_wave.*
    members: weights.Members | None = None  # a per-image generator's: a seed picks one per style


@dataclass
class _Up:
    session: Any
    values: list[Any]
    meta: dict[str, Any]
    path: Path
    cfg: UpscalerConfig


def _load_into(path: Path, providers: Sequence[str], threads: int, gens: dict[str, _Gen],
               ups: dict[int | str, _Up], errors: list[str], photos: dict[str, PhotoStyle]) -> None:
    """Open one weights file and file it under its styles, its upscaler slot (catalog.upscaler_slot) or, a
    photo style, under its name in `photos` (earlier files win)."""
    if photostyle.load_into(path, gens, photos, errors):
        return
    try:
        meta, tensors = weights.read(path, "np")
        session, values = open_session(path, meta, tensors, providers, threads)
        if meta["kind"] == "generator":
            cfg = GeneratorConfig.from_meta(meta["config"])
            styles = meta.get("styles")
            if not isinstance(styles, list) or len(styles) != cfg.styles:
                raise weights.ModelFileError(path, f"style names {styles!r} do not match {cfg.styles} styles")
            table = {k: v for k, v in tensors.items() if k.split(".")[0] in ("style", "wave", "fine_wave")}
            entry = _Gen(session, values, meta, path, cfg, table, weights.read_members(path, cfg, tensors))
            for name in styles:
                if name not in photos:
                    gens.setdefault(name, entry)
        else:
            up = _Up(session, values, meta, path, UpscalerConfig(**meta["config"]))
            ups.setdefault(upscaler_slot(meta, up.cfg.scale), up)
    except (weights.ModelFileError, FileNotFoundError) as e:
        errors.append(str(e))
    except (TypeError, ValueError) as e:  # a config that does not fit its kind
        errors.append(f"{path}: {e}")


def context_index(n: int, m: int, tileable: bool) -> np.ndarray:
    """Indices of `n` pixels with `m` more on each side: wrapped (tileable) or mirrored without repeating
    the edge pixel (as core.upscaler.pad_context), any `m` ≥ 0, also more than `n`. → (n + 2m,) int64."""
    i = np.arange(-m, n + m)
    if tileable or n == 1:
        return i % n
    period = 2 * n - 2
    i = i % period
    return np.where(i >= n, period - i, i)


@dataclass
class Runtime:
    """Loaded sessions, on ONNX Runtime's `providers`. Build it with `load`."""

    providers: list[str]
    generators: dict[str, _Gen]       # style name → the generator that holds it
    upscalers: dict[int, _Up]         # scale → faithful upscaler
    errors: list[str] = field(default_factory=list)  # files that could not be loaded, one line each
    detail: _Up | None = None         # the ×4 detail upscaler `generate` uses, if loaded
    photos: dict[str, PhotoStyle] = field(default_factory=dict)  # photo styles (core.photostyle), by name

    @property
    def styles(self) -> list[str]:
        """The GAN's styles, then the photo styles."""
        return [*self.generators, *self.photos]

    def style_weights(self, style: str | dict[str, float]) -> tuple[_Gen | PhotoStyle, np.ndarray]:
        """As core.api.Tessera.style_weights: (the entry, a GAN file's or a PhotoStyle, its (1, styles)
        weights). Raises ValueError as core.request.style_weights."""
        return style_weights(style, {**self.generators, **self.photos})

    def photo_style(self, style: str | dict[str, float]) -> PhotoStyle | None:
        """The photo style `style` names, None for a GAN style or mix. Raises ValueError as `style_weights`."""
        entry = self.style_weights(style)[0]
        return entry if isinstance(entry, PhotoStyle) else None

    def generate_gan(self, style: str | dict[str, float], seed: int = 0, size: int = 256) -> np.ndarray:
        """The GAN's own output: (1, 3, size, size) float32 in [0, 1], size a multiple of its stride (16
        for the shipped generator) of at least two cells. As core.api.Tessera.generate_gan. Raises ValueError
        for a bad style or seed, or a size that does not fit."""
        entry, w = self.style_weights(style)
        if isinstance(entry, PhotoStyle):
            raise ValueError(f"{entry.name} is a photo style: it has no GAN output (generate draws it)")
        seed, cfg = check_seed(seed), entry.cfg
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2 * cfg.stride \
                or size % cfg.stride:
            raise ValueError(f"size {size!r} does not fit {entry.path.name}: use a multiple of {cfg.stride} "
                             f"from {2 * cfg.stride}")
        t = entry.table
        if entry.members is None:
            s = (w @ t["style.weight"]).astype(np.float32)              # (1, style_dim)
        else:
            s = noise.member_embedding(w, entry.members.embedding, entry.members.style, seed)
        freq = (s @ t["wave.weight"].T + t["wave.bias"]).reshape(cfg.periodic_dim, 2)
        fine = None
        if cfg.fine_periodic_dim:
            fine = (s @ t["fine_wave.weight"].T + t["fine_wave.bias"]).reshape(cfg.fine_periodic_dim, 2)
        cells = (size // cfg.stride, size // cfg.stride)
        z = noise.grid(cfg, noise.draw(cfg, cells, seed), freq, fine, cfg.layout_gate(w[0]))
        (x,) = entry.session.run(None, {"noise": z, "style": s})
        return np.clip(x * np.float32(0.5) + np.float32(0.5), 0, 1)

    def generate(self, style: str | dict[str, float], seed: int = 0, size: int = 1024,
                 progress: Callable[[int, int], None] | None = None, *, faithful: bool = False) -> np.ndarray:
        """A seamless texture: (size, size, 3) uint8, size a multiple of 64 from 256 to 8192; the GAN draws
        at size/4 and the ×4 detail upscaler (else, or with `faithful`, the faithful ×4) brings it to size.
        The same texture core.api.Tessera.generate makes
        for this style and seed (within one level of 8 bits). `progress(done, total)` is told after the GAN and
        after each upscaling tile, as there; it may raise to stop. Raises ValueError for a bad style, seed or
        size."""
        size = check_size(size)
        photo = self.photo_style(style)
        if photo is not None:  # quilted from its photos, as core.api draws it
            out = photo.generate(seed, size)
            if progress:
                progress(1, 1)
            return out
        x = self.generate_gan(style, seed, size // GAN_SCALE)
        if progress:
            progress(0, 1)
        return to_uint8(self.upscale_unit(x, GAN_SCALE, tileable=True, progress=progress, detail=not faithful,
                                          seeds=[seed]))

    def upscale_unit(self, x: np.ndarray, scale: int, tileable: bool = True,
                     progress: Callable[[int, int], None] | None = None, detail: bool = False,
                     seeds: list[int] | None = None) -> np.ndarray:
        """(B, 3, H, W) float32 in [0, 1], any H, W ≥ 1 → (B, 3, H·scale, W·scale) float32 in [0, 1], in tiles
        of 256 pixels with wrap-around (tileable) or mirrored context, each equal to a full pass (as
        core.upscaler.upscale_tiled). `progress(done, total)` is told after each tile (one for a single pass);
        it may raise to stop. `detail`: the ×4 detail upscaler where one is loaded. `seeds`: one per image, the
        textures' seeds, from which an upscaler with noise inputs draws them (core.noise.upscaler_noise, as
        the PyTorch path); without, it reads zeros. Raises ValueError for a scale no loaded upscaler has or
        another shape."""
        up = pick_upscaler(self.upscalers, self.detail, scale, detail)
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != 3 or min(x.shape) < 1:
            raise ValueError(f"image of shape {getattr(x, 'shape', None)} is not (B, 3, H, W) with B, H, W ≥ 1")
        s, m, r = scale, up.cfg.context, up.cfg.noise_scale
        b, _, h, w = x.shape
        grain = None if seeds is None else noise.upscaler_inputs(up.cfg, x.shape, seeds)
        if grain is None and up.cfg.noise:  # the graph takes noise: zeros read as the PyTorch path's none
            grain = np.zeros((b, up.cfg.noise, h * r, w * r), np.float32)

        def run(a: np.ndarray, n: np.ndarray | None) -> np.ndarray:
            feed = {"image": np.ascontiguousarray(a, dtype=np.float32)}
            if n is not None:
                feed["noise"] = np.ascontiguousarray(n, dtype=np.float32)
            return up.session.run(None, feed)[0]

        if tileable and h <= TILE and w <= TILE and min(h, w) >= 2:
            out = np.clip(run(x, grain), 0, 1)  # the graph lives on the torus itself
            if progress:
                progress(1, 1)
            return out
        src = x[:, :, context_index(h, m, tileable)[:, None], context_index(w, m, tileable)[None, :]]
        nsrc = None if grain is None else grain[:, :, context_index(h * r, m * r, tileable)[:, None],
                                                context_index(w * r, m * r, tileable)[None, :]]
        out = np.empty((b, 3, h * s, w * s), dtype=np.float32)
        corners = [(y0, x0) for y0 in range(0, h, TILE) for x0 in range(0, w, TILE)]
        for i, (y0, x0) in enumerate(corners):
            y1, x1 = min(y0 + TILE, h), min(x0 + TILE, w)
            part = None if nsrc is None else nsrc[:, :, y0 * r:(y1 + 2 * m) * r, x0 * r:(x1 + 2 * m) * r]
            res = run(src[:, :, y0:y1 + 2 * m, x0:x1 + 2 * m], part)
            out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = res[:, :, m * s:(m + y1 - y0) * s, m * s:(m + x1 - x0) * s]
            if progress:
                progress(i + 1, len(corners))
        return np.clip(out, 0, 1)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] → (H, W, 3) uint8, rounded half to even (as core.imageio.to_uint8)."""
    assert x.ndim == 4 and x.shape[:2] == (1, 3), f"want (1, 3, H, W), got {x.shape}"
    return np.ascontiguousarray((np.clip(x[0], 0, 1) * np.float32(255)).round().astype(np.uint8).transpose(1, 2, 0))


def load(models_dir: str | Path | None = None, providers: Sequence[str] = ("CPUExecutionProvider",),
         threads: int = 0) -> Runtime:
    """Open every weights file on the search path (as core.api.load_generator: `models_dir`, else
    $TESSERA_MODELS, else the user folder and the shipped weights; an upscale factor none has comes from the
    shipped weights) on ONNX Runtime's `providers`, in order of preference (onnxruntime.get_available_providers()
    lists this install's; one name alone is taken as a list of one). Bad files are reported by name (warnings
    and `.errors`) while good ones still load. Raises ImportError (with what to install) without onnxruntime,
    ValueError for a provider this install lacks, FileNotFoundError for a models folder ($TESSERA_MODELS
    included) that is not there or when no generator loads."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ImportError(f"core.runtime needs ONNX Runtime ({e}): pip install onnxruntime==1.23.2") from None

    if isinstance(providers, str):
        providers = [providers]
    chosen = chosen_models_dir(models_dir)
    if chosen is not None and not chosen.is_dir():
        what = f"models folder {models_dir}" if models_dir else f"$TESSERA_MODELS={os.environ['TESSERA_MODELS']}"
        raise FileNotFoundError(f"{what} {'is a file, expected a folder' if chosen.exists() else 'does not exist'}")
    available = ort.get_available_providers()
    for p in providers:
        if p not in available:
            raise ValueError(f"execution provider {p!r} is not in this ONNX Runtime: use one of {', '.join(available)}")
    gens: dict[str, _Gen] = {}
    ups: dict[int | str, _Up] = {}
    errors: list[str] = []
    photos: dict[str, PhotoStyle] = {}
    files = model_files(models_dir)
    for path in files:
        _load_into(path, providers, threads, gens, ups, errors, photos)
    for path in shipped_upscalers(set(ups), SHIPPED_DIR):
        _load_into(path, providers, threads, gens, ups, errors, photos)
    if not gens and not photos:
        detail = f" ({'; '.join(errors)})" if errors else ""
        raise FileNotFoundError(f"no usable generator weights among {len(files)} file(s){detail}")
    for e in errors:
        warnings.warn(e, stacklevel=2)
    detail = ups.pop(DETAIL, None)
    return Runtime(list(providers), gens, ups, errors, detail, photos)  # type: ignore[arg-type]
