"""Weights files: safetensors with everything needed to rebuild and trust the model in its header.

Loading never executes code: safetensors holds raw tensors plus a string→string header. We store
(as JSON strings) the kind of model, its config, style names, data sources and licences, training
facts (steps, wall time, hardware), metrics, a format version and a sha256 over the tensor data,
which the loader recomputes before it trusts the file.

Torch is imported only by what needs it (`save`, `build`, `read` with framework="pt"): `read(path,
framework="np")` and `graph_name` serve the torch-free runtime (core.runtime). Which exported graph
(core.export_onnx) runs a file's weights follows from its kind and config alone: `graph_name`.

A per-image generator (config `descriptor_dim` > 0) also holds its members, outside the model's state
(MEMBER_TENSORS, read and checked by `read_members`): "members.embedding" (N, style_dim) float32, every
training image's style embedding style[c] + image_code(φ_i); "members.style" (N,) int64, its style index;
"descriptors.mean" and "descriptors.std" (descriptor_dim,) float32, what standardised φ (core.descriptors).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .config import GeneratorConfig, UpscalerConfig
from .files import atomic_path

if TYPE_CHECKING:
    import torch

FORMAT = "tessera-weights"
FORMAT_VERSION = 1
KINDS = ("generator", "upscaler", "exemplar")  # exemplar: a photo style's photos (core.photostyle), no graph
GRAPH_VERSION = 1  # bump when an exported graph's inputs, outputs or ops change: every graph is re-exported
MEMBER_TENSORS = ("members.embedding", "members.style", "descriptors.mean", "descriptors.std")


class ModelFileError(ValueError):
    """A weights file that cannot be used; the message names the file and says why."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)


@dataclass(frozen=True)
class Members:
    """A per-image generator's members (see the module docstring), as numpy arrays."""

    embedding: np.ndarray  # (N, style_dim) float32
    style: np.ndarray      # (N,) int64, each from 0 to styles - 1; every style has one or more
    mean: np.ndarray       # (descriptor_dim,) float32
    std: np.ndarray        # (descriptor_dim,) float32, > 0


def read_members(path: Path | str, cfg: GeneratorConfig, tensors: dict[str, Any]) -> Members | None:
    """The members among a generator file's `tensors` (torch or numpy), None for a file without them. Raises
    ModelFileError naming the file for some of MEMBER_TENSORS without the others, or ones that do not fit
    `cfg` (shapes, a style index out of range, a style without a member, values that are not finite)."""
    have = [k for k in MEMBER_TENSORS if k in tensors]
    if not have:
        return None
    if len(have) < len(MEMBER_TENSORS):
        lacks = ", ".join(k for k in MEMBER_TENSORS if k not in tensors)
        raise ModelFileError(path, f"has {', '.join(have)} but not {lacks}")
    emb, style, mean, std = (np.asarray(tensors[k]) for k in MEMBER_TENSORS)
    n, k = emb.shape[0] if emb.ndim == 2 else 0, cfg.descriptor_dim
    if not cfg.descriptor_dim:
        raise ModelFileError(path, "has members but its config has no descriptor_dim")
    if emb.shape != (n, cfg.style_dim) or n < 1 or style.shape != (n,) or mean.shape != (k,) or std.shape != (k,):
        raise ModelFileError(path, f"members of shapes {emb.shape}, {style.shape}, {mean.shape}, {std.shape} do not "
                                   f"fit style_dim {cfg.style_dim} and descriptor_dim {k}")
    if not np.issubdtype(style.dtype, np.integer) or style.min() < 0 or style.max() >= cfg.styles:
        raise ModelFileError(path, f"members.style must hold style indices from 0 to {cfg.styles - 1}")
    empty = sorted(set(range(cfg.styles)) - set(style.tolist()))
    if empty:
        raise ModelFileError(path, f"style {empty[0]} has no member")
    if not all(np.isfinite(a).all() for a in (emb, mean, std)) or (std <= 0).any():
        raise ModelFileError(path, "members or descriptor statistics are not finite (or a std is not > 0)")
    return Members(emb.astype(np.float32), style.astype(np.int64), mean.astype(np.float32), std.astype(np.float32))


def tensor_digest(tensors: dict[str, torch.Tensor] | dict[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and bytes of all tensors (torch or numpy), in name order; a
    numpy array hashes as the torch tensor it loads as (its dtype written as torch's, e.g. torch.float32)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        if isinstance(t, np.ndarray):
            data, dtype = np.ascontiguousarray(t).tobytes(), f"torch.{t.dtype.name}"
        else:
            import torch

            data, dtype = t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes(), str(t.dtype)
        h.update(f"{name}|{dtype}|{tuple(t.shape)}\n".encode())
        h.update(data)
    return h.hexdigest()


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the prefixes torch.compile (`_orig_mod.`) and DDP (`module.`) add; the one place we do."""
    out = {}
    for k, v in state.items():
        for prefix in ("_orig_mod.", "module."):
            while k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v.detach().cpu().contiguous()
    return out


def save(path: Path | str, kind: str, config: dict, state: dict[str, torch.Tensor] | dict[str, np.ndarray],
         **meta: Any) -> Path:
    """Write a weights file atomically (temp file + rename): torch tensors, or numpy arrays (written without
    importing torch). Extra `meta` values are stored as JSON."""
    assert kind in KINDS, f"kind must be one of {KINDS}"
    path = Path(path)
    tensors: dict[str, Any]
    if state and all(isinstance(v, np.ndarray) for v in state.values()):
        from safetensors.numpy import save_file

        tensors = {k: np.ascontiguousarray(v) for k, v in state.items()}
    else:
        from safetensors.torch import save_file  # type: ignore[assignment]

        tensors = clean_state_dict(state)  # type: ignore[arg-type]
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "kind": kind,
              "config": json.dumps(config), "tensor_sha256": tensor_digest(tensors)}
    header.update({k: json.dumps(v) for k, v in meta.items()})
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def update_meta(path: Path | str, **changes: Any) -> Path:
    """Rewrite a weights file's header with `changes` (metadata keys → JSON values, added or replaced);
    its tensors are untouched and re-verified on the next read. Atomic, as `save`. Raises as `read`."""
    meta, tensors = read(path)
    kind, config = meta.pop("kind"), meta.pop("config")
    for key in ("format", "format_version", "tensor_sha256"):
        meta.pop(key, None)
    return save(path, kind, config, tensors, **(meta | changes))


def read(path: Path | str, framework: Literal["pt", "np"] = "pt") -> tuple[dict[str, Any], dict[str, Any]]:
    """Read and verify a weights file → (metadata with JSON values decoded, {name: tensor}): torch tensors
    with framework="pt", numpy arrays with "np" (no torch imported; a bfloat16 file is then refused).

    Raises FileNotFoundError or ModelFileError, each naming the file.
    """
    from safetensors import SafetensorError, safe_open

    if framework == "pt":
        from safetensors.torch import load_file
    elif framework == "np":
        from safetensors.numpy import load_file
    else:
        raise ValueError(f"framework {framework!r} is not supported: use 'pt' or 'np'")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="np") as f:
            raw = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(path, f"not a readable safetensors file ({str(e).splitlines()[0]})") from None
    if raw.get("format") != FORMAT:
        raise ModelFileError(path, f"not a Tessera weights file (format={raw.get('format')!r})")
    if int(raw.get("format_version", "0")) > FORMAT_VERSION:
        raise ModelFileError(path, f"format version {raw['format_version']} is newer than this Tessera "
                                   f"understands ({FORMAT_VERSION}); update Tessera")
    if raw.get("kind") not in KINDS:
        raise ModelFileError(path, f"unknown model kind {raw.get('kind')!r}, expected one of {KINDS}")
    if tensor_digest(tensors) != raw.get("tensor_sha256"):
        raise ModelFileError(path, "tensor data does not match its sha256 (file modified or corrupt)")
    meta: dict[str, Any] = {}
    for k, v in raw.items():
        try:
            meta[k] = json.loads(v)
        except json.JSONDecodeError:
            meta[k] = v
    meta["kind"], meta["tensor_sha256"] = raw["kind"], raw["tensor_sha256"]
    return meta, tensors


def graph_name(kind: str, config: dict[str, Any]) -> str:
    """The file stem of the exported graph (core.export_onnx) that runs weights of this kind and config,
    e.g. "generator-3f2a…": a hash of the architecture, so files that differ only in their tensors (a
    style someone trained from the shipped generator, with any number of styles) share one graph.
    Raises ValueError for an unknown kind or a config that does not fit it."""
    try:
        if kind == "generator":
            arch = GeneratorConfig.from_meta(config).to_dict()
            arch.pop("styles")  # the style table stays outside the graph: the runtime embeds the style
            arch.pop("descriptor_dim", None)  # so does image_code: a per-image generator runs the same graph
            arch.pop("layout_styles", None)  # and the layout gate, applied to the noise before the graph
        elif kind == "upscaler":
            arch = UpscalerConfig(**config).to_dict()
        elif kind == "exemplar":
            raise ValueError("a photo style runs no graph: core.photostyle draws it")
        else:
            raise ValueError(f"unknown model kind {kind!r}, expected one of {KINDS}")
    except (TypeError, AssertionError) as e:
        raise ValueError(f"config {config!r} does not fit a {kind} ({e})") from None
    key = json.dumps({"kind": kind, "graph_version": GRAPH_VERSION, **arch}, sort_keys=True)
    return f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def build(path: Path | str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model a weights file describes and load its tensors → (model in eval mode, meta). A
    per-image generator's members (`read_members`) are meta["members"], a Members; other files have no such key.
    Raises FileNotFoundError or ModelFileError naming the file."""
    import torch

    from .generator import TextureGenerator
    from .upscaler import Upscaler

    meta, tensors = read(path)
    if meta["kind"] == "exemplar":
        raise ModelFileError(path, "a photo style holds photos, not a model: core.photostyle.read loads it")
    members = None
    try:
        if meta["kind"] == "generator":
            cfg = GeneratorConfig.from_meta(meta["config"])
            model: torch.nn.Module = TextureGenerator(cfg)
            members = read_members(path, cfg, tensors)
            tensors = {k: v for k, v in tensors.items() if k not in MEMBER_TENSORS}
        else:
            model = Upscaler(UpscalerConfig(**meta["config"]))
        model.load_state_dict(tensors, strict=True)
    except (TypeError, RuntimeError, AssertionError) as e:
        first = str(e).strip().splitlines()[0]
        raise ModelFileError(path, f"weights do not match the {meta['kind']} architecture ({first})") from None
    if meta["kind"] == "generator":
        styles = meta.get("styles")
        if not isinstance(styles, list) or len(styles) != model.cfg.styles:
            raise ModelFileError(path, f"style names {styles!r} do not match {model.cfg.styles} styles")
        if members is not None:
            meta["members"] = members
    return model.eval().requires_grad_(False), meta
