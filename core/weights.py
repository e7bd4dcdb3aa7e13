"""Weights files: safetensors with everything needed to rebuild and trust the model in its header.

Loading never executes code: safetensors holds raw tensors plus a string→string header. We store
(as JSON strings) the kind of model, its config, style names, data sources and licences, training
facts (steps, wall time, hardware), metrics, a format version and a sha256 over the tensor data,
which the loader recomputes before it trusts the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .files import atomic_path

FORMAT = "tessera-weights"
FORMAT_VERSION = 1
KINDS = ("generator", "upscaler")


class ModelFileError(ValueError):
    """A weights file that cannot be used; the message names the file and says why."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of all tensors, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
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


def save(path: Path | str, kind: str, config: dict, state: dict[str, torch.Tensor], **meta: Any) -> Path:
    """Write a weights file atomically (temp file + rename). Extra `meta` values are stored as JSON."""
    from safetensors.torch import save_file

    assert kind in KINDS, f"kind must be one of {KINDS}"
    path = Path(path)
    tensors = clean_state_dict(state)
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "kind": kind,
              "config": json.dumps(config), "tensor_sha256": tensor_digest(tensors)}
    header.update({k: json.dumps(v) for k, v in meta.items()})
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def read(path: Path | str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a weights file → (metadata with JSON values decoded, tensors).

    Raises FileNotFoundError or ModelFileError, each naming the file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
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


def build(path: Path | str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model a weights file describes and load its tensors → (model in eval mode, meta)."""
    from .generator import GeneratorConfig, TextureGenerator
    from .upscaler import Upscaler, UpscalerConfig

    meta, tensors = read(path)
    try:
        if meta["kind"] == "generator":
            config = {"upsample": "nearest", **meta["config"]}  # files that predate the field used nearest
            model: torch.nn.Module = TextureGenerator(GeneratorConfig(**config))
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
    return model.eval().requires_grad_(False), meta
