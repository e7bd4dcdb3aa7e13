"""Training checkpoints as safetensors: model and optimizer tensors plus a JSON header. No pickle.

An optimizer's state dict is flattened into tensors named `<opt>.state.<param index>.<key>` and its
param groups go to the header. Files are written to a temporary name and renamed, so a kill during a
save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from core.files import atomic_path
from core.weights import clean_state_dict

LAST = "last.safetensors"
_EXPECTED = "expected a checkpoint from `python -m training gan` or `sr`"


def save(folder: Path, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
         meta: dict[str, Any], extra: dict[str, torch.Tensor] | None = None) -> Path:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    header: dict[str, str] = {"meta": json.dumps(meta)}
    for name, module in modules.items():
        for k, v in clean_state_dict(module.state_dict()).items():
            tensors[f"{name}.{k}"] = v
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        header[f"{name}.param_groups"] = json.dumps(sd["param_groups"])
        for idx, state in sd["state"].items():
            for k, v in state.items():
                t = v if torch.is_tensor(v) else torch.tensor(v)
                tensors[f"{name}.state.{idx}.{k}"] = t.detach().cpu().contiguous()
    for k, v in (extra or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous()
    with atomic_path(folder / LAST) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return folder / LAST


def read_meta(folder: Path, hint: str = "train first, or drop --resume") -> tuple[dict[str, Any], dict[str, str]]:
    """FOLDER/last.safetensors's header alone → (meta, raw header), without reading its tensors. No checkpoint
    is a FileNotFoundError naming it, followed by `hint` (what the command needs instead; the default fits
    --resume); a file that is not a checkpoint is a ValueError naming it."""
    from safetensors import SafetensorError, safe_open

    path = folder / LAST
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint {path}: {hint}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except SafetensorError as e:
        raise _unreadable(path, e) from None
    try:
        meta = json.loads(header["meta"])
    except (KeyError, json.JSONDecodeError):
        raise ValueError(f"{path}: not a training checkpoint (its header has no readable meta); {_EXPECTED}") from None
    return meta, header


def load(folder: Path, hint: str = "train first, or drop --resume"
         ) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, str]]:
    """→ (meta, tensors, raw header); raises as read_meta."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta, header = read_meta(folder, hint)
    try:
        tensors = load_file(str(folder / LAST))
    except SafetensorError as e:
        raise _unreadable(folder / LAST, e) from None
    return meta, tensors, header


def _unreadable(path: Path, e: Exception) -> ValueError:
    return ValueError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]}); {_EXPECTED}")


def restore_module(module: torch.nn.Module, name: str, tensors: dict[str, torch.Tensor],
                   strict: bool = True) -> set[str]:
    """Load `name.*` tensors into `module`. With strict=False, the module may have parameters the
    checkpoint lacks (they keep their initial values) → the names of those; every tensor the
    checkpoint has must still fit."""
    prefix = f"{name}."
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        missing, unexpected = module.load_state_dict(state, strict=strict)
    except RuntimeError as e:  # a shape that differs: name the first one
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise ValueError(f"checkpoint {name} does not fit this model: {lines[min(1, len(lines) - 1)]}") from None
    if unexpected:
        raise ValueError(f"checkpoint {name} has tensors this model lacks: {', '.join(unexpected[:4])}")
    return {k.split(".")[0] for k in missing}


def restore_optimizer(opt: torch.optim.Optimizer, name: str, tensors: dict[str, torch.Tensor],
                      header: dict[str, str], lr: float | list[float] | None = None) -> None:
    """Load an optimizer's state; `lr` (the run's --lr, or one per parameter group) replaces the saved
    one, so it can change on resume."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    prefix = f"{name}.state."
    for k, v in tensors.items():
        if k.startswith(prefix):
            idx, key = k[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": json.loads(header[f"{name}.param_groups"])})
    if lr is not None:
        lrs = lr if isinstance(lr, list) else [lr] * len(opt.param_groups)
        for group, value in zip(opt.param_groups, lrs, strict=True):
            group["lr"] = value


def extra(tensors: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return tensors[f"extra.{name}"]
