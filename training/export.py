"""`python -m training export CKPT_DIR --out FILE.safetensors`: checkpoint → shippable weights.

Keeps only the EMA weights (an sr run's last weights with --no-average), rebuilds the model from them to
prove they load, and writes the header metadata the loader and the model card use. A --per-image run's file also holds its members (core.weights):
every training image's embedding under the EMA weights, its style, and the descriptor statistics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core import weights
from core.catalog import upscaler_slot
from core.descriptors import standardise
from core.files import atomic_path
from core.generator import GeneratorConfig, TextureGenerator
from core.pbr import DEFAULT_ROUGHNESS, STYLE_ROUGHNESS
from core.upscaler import Upscaler, UpscalerConfig

from . import checkpoint


def export(ckpt_dir: Path, out: Path, metrics: dict | None = None, average: bool = True,
           sources: dict[str, str] | None = None) -> Path:
    """Write `out` from the checkpoint in `ckpt_dir`: the moving average of the weights (EMA), or with
    `average=False` an sr run's weights as they are (an adversarial upscaler's fine detail changes from step
    to step, and averaging the weights averages it away). `sources` ({source: licence}) replaces the data the
    run recorded (`learn`: the user's photos, not its work folder). Raises ValueError for a checkpoint it
    cannot use."""
    meta, tensors, _ = checkpoint.load(Path(ckpt_dir), "export takes the --out folder of a gan or sr run")
    state: dict[str, torch.Tensor] = {}
    if not average and meta["kind"] != "sr":
        raise ValueError(f"{ckpt_dir}: --no-average is for sr runs; a generator is exported as its moving average")
    if meta["kind"] == "gan":
        model = TextureGenerator(GeneratorConfig(**meta["generator"]))
        checkpoint.restore_module(model, "G_ema", tensors)
        pbr = {"roughness": {s: STYLE_ROUGHNESS.get(s, DEFAULT_ROUGHNESS) for s in meta["styles"]}}
        kind, config, extra = "generator", model.cfg.to_dict(), {"styles": meta["styles"], "pbr": pbr}
        if model.cfg.descriptor_dim:
            state = members(model, meta, tensors)
    elif meta["kind"] == "sr":
        model = Upscaler(UpscalerConfig(**meta["upscaler"]))
        checkpoint.restore_module(model, "ema" if average else "model", tensors)
        kind, config, extra = "upscaler", model.cfg.to_dict(), {}
        if meta["train"].get("adversarial") or model.cfg.grain:  # trained to add detail: generate's ×4 detail slot
            extra = {"role": "detail"}
            try:
                upscaler_slot(extra, model.cfg.scale)
            except ValueError as e:
                raise ValueError(f"{ckpt_dir}: trained for detail (--adversarial or --grain): {e}") from None
    else:
        raise ValueError(f"{ckpt_dir}: unknown checkpoint kind {meta['kind']!r}")
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out} must end in .safetensors")
    training = {"steps": meta["step"], "wall_time_s": round(meta["wall_time_s"], 1),
                "hardware": meta["hardware"], "config": meta["train"], "weights": "ema" if average else "last"}
    with atomic_path(out) as tmp:  # checked before it is renamed to --out: a file the loader rejects never lands there
        weights.save(tmp, kind, config, model.state_dict() | state, data=sources or meta["sources"], training=training,
                     metrics=metrics or {}, **extra)
        try:
            weights.build(tmp)
        except weights.ModelFileError as e:
            raise weights.ModelFileError(out, str(e).removeprefix(f"{tmp}: ")) from None
    return out


def members(model: TextureGenerator, meta: dict, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The member tensors (core.weights.MEMBER_TENSORS) of a per-image run's checkpoint (`meta`, `tensors`)
    with its EMA generator `model`: style[c] + image_code(φ̂_i) for every training image i of style c."""
    stats = meta["descriptors"]
    mean, std = (np.asarray(stats[k], dtype=np.float32) for k in ("mean", "std"))
    raw, style = checkpoint.extra(tensors, "descriptors"), checkpoint.extra(tensors, "image_styles")
    phi = torch.from_numpy(standardise(raw.numpy(), mean, std))
    with torch.no_grad():
        table = model.style.weight[style] + model.image_code(phi)
    return {"members.embedding": table, "members.style": style.to(torch.int64),
            "descriptors.mean": torch.from_numpy(mean), "descriptors.std": torch.from_numpy(std)}
