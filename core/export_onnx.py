"""Export the models' structure as ONNX graphs for the torch-free runtime (core.runtime).

    python -m core.export_onnx                  # the shipped weights' graphs → core/weights/graphs/
    python -m core.export_onnx --models DIR     # graphs for the weights files in DIR → DIR/graphs/

A graph holds structure only: every weight is an initializer whose data is left out (marked external),
named as in the weights file, and supplied from the safetensors file when the runtime opens a session. So
a graph is a few hundred KB, and one graph runs every weights file of its architecture (`weights.graph_name`):
a style trained later, or a generator with more styles, needs no new export. Beside each `NAME.onnx` a
`NAME.json` lists the weights it takes, its inputs and outputs, and what exported it.

Graphs (inputs → outputs, float32, H and W free):
  generator  noise (1, noise_dim, H, W), style (1, style_dim) → image (1, 3, H·stride, W·stride) in [-1, 1]:
             TextureGenerator.synthesize. The style embedding and the noise grid (with its waves) are made
             outside the graph, in numpy (core.noise), so one seed gives the same texture on both paths.
  upscaler   image (B, 3, H, W) in [0, 1] → upscaled (B, 3, H·scale, W·scale), not clamped: Upscaler.forward;
             one with noise inputs also takes noise (B, noise, H·s, W·s), s = scale / 2 (core.noise.upscaler_noise).
The wrap-around padding is written out as slices and concatenations (core.generator.wrap_pad), not as
a Pad "wrap" an execution provider may lack. Exporting needs torch; running the graphs does not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import photostyle, weights
from .catalog import SHIPPED_DIR
from .files import atomic_path

OPSET = 17        # ONNX Runtime 1.23 runs up to 23; 17 leaves room for older and narrower execution providers
GRAPHS = "graphs"  # the folder of graphs inside a models folder
SHIPPED_GRAPHS = SHIPPED_DIR / GRAPHS
EXTERNAL = "weights.safetensors"  # where a stripped initializer says its data is: the runtime supplies it


class _Synthesize(nn.Module):
    """The generator's synthesis as a module's forward, the part of TextureGenerator a graph holds."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, noise: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.model.synthesize(noise, style)


def _example(kind: str, model: nn.Module) -> tuple[nn.Module, tuple[torch.Tensor, ...], dict[str, Any]]:
    """(module to trace, example inputs, names and free axes) for a model of `kind`."""
    if kind == "generator":
        cfg = model.cfg
        args = (torch.zeros(1, cfg.noise_dim, 4, 4), torch.zeros(1, cfg.style_dim))
        io = {"input_names": ["noise", "style"], "output_names": ["image"],
              "dynamic_axes": {"noise": {2: "h", 3: "w"}, "image": {2: "H", 3: "W"}}}
        return _Synthesize(model), args, io
    io = {"input_names": ["image"], "output_names": ["upscaled"],
          "dynamic_axes": {"image": {0: "b", 2: "h", 3: "w"}, "upscaled": {0: "b", 2: "H", 3: "W"}}}
    if not model.cfg.noise:
        return model, (torch.zeros(1, 3, 8, 8),), io
    r = model.cfg.noise_scale  # noise inputs: a second input at the last stage's resolution
    io["input_names"].append("noise")
    io["dynamic_axes"]["noise"] = {0: "b", 2: "hn", 3: "wn"}
    return model, (torch.zeros(1, 3, 8, 8), torch.zeros(1, model.cfg.noise, 8 * r, 8 * r)), io


def export(model: nn.Module, kind: str, config: dict[str, Any], out_dir: Path | str) -> Path:
    """Write the structure-only graph for `model` (a TextureGenerator or Upscaler of `kind` built from
    `config`, in eval mode) as `out_dir`/NAME.onnx with NAME.json beside it (NAME = weights.graph_name);
    both written atomically. Returns the .onnx path. Raises ValueError for an unknown kind."""
    import warnings

    import onnx

    name = weights.graph_name(kind, config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    module, args, io = _example(kind, model)
    prefix = "model." if module is not model else ""
    tmp_onnx = out_dir / f".{name}.export.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on asserts and the deprecation of this exporter
        # The TorchScript exporter keeps every parameter as an initializer under its state-dict name and
        # handles free H and W; torch.export's (dynamo) drowns in symbolic shapes on the generator's ×2 stages.
        torch.onnx.export(module.eval(), args, str(tmp_onnx), dynamo=False, opset_version=OPSET,
                          do_constant_folding=False, export_params=True, **io)
    try:
        graph = onnx.load(str(tmp_onnx))
    finally:
        tmp_onnx.unlink(missing_ok=True)
    onnx.checker.check_model(graph)  # with its data still in: the checker refuses data that is elsewhere
    # Every weight the nodes read becomes an initializer under its state-dict name with its data left out.
    # Built anew from the nodes: the exporter merges initializers of equal value (two zero biases), which
    # the weights of another file need not share.
    state = {prefix + k: (k, v) for k, v in model.state_dict().items()}
    taken: dict[str, torch.Tensor] = {}
    for node in graph.graph.node:
        for i, ref in enumerate(node.input):
            if ref in state:
                key, tensor = state[ref]
                node.input[i], taken[key] = key, tensor
    kept = [init for init in graph.graph.initializer if init.name not in state]  # the graph's own constants
    del graph.graph.initializer[:]
    graph.graph.initializer.extend(kept)
    for key in sorted(taken):
        assert taken[key].dtype == torch.float32, f"{key} is {taken[key].dtype}, the runtime feeds float32"
        init = onnx.TensorProto(name=key, data_type=onnx.TensorProto.FLOAT, dims=list(taken[key].shape),
                                data_location=onnx.TensorProto.EXTERNAL)
        entry = init.external_data.add()
        entry.key, entry.value = "location", EXTERNAL
        graph.graph.initializer.append(init)
    assert not any(n.op_type == "Pad" for n in graph.graph.node), "wrap-around must be slices, not Pad"
    graph.doc_string = f"Tessera {kind} graph {name}: structure only, weights from a Tessera weights file"
    info = {"name": name, "kind": kind, "graph_version": weights.GRAPH_VERSION, "opset": OPSET,
            "weights": sorted(taken), "inputs": io["input_names"], "outputs": io["output_names"],
            "exported_with": {"torch": torch.__version__, "onnx": onnx.__version__}}
    path = out_dir / f"{name}.onnx"
    with atomic_path(path) as tmp:
        tmp.write_bytes(graph.SerializeToString())
    with atomic_path(out_dir / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(info, indent=1) + "\n")
    return path


def export_folder(models: Path | str, out_dir: Path | str | None = None, force: bool = False) -> list[Path]:
    """Export a graph for every architecture among the weights files in `models` (once each; photo styles
    have none) into
    `out_dir` (default `models`/graphs), skipping graphs already there unless `force`. Returns the graphs
    written. Raises FileNotFoundError for a missing folder, ModelFileError for a bad weights file."""
    models = Path(models)
    if not models.is_dir():
        raise FileNotFoundError(f"models folder {models} does not exist")
    out = Path(out_dir) if out_dir is not None else models / GRAPHS
    written: list[Path] = []
    done: set[str] = set()
    for path in sorted(models.glob("*.safetensors")):
        if photostyle.is_photo_style(path):  # photos, drawn by numpy: no graph
            continue
        model, meta = weights.build(path)
        name = weights.graph_name(meta["kind"], meta["config"])
        if name in done or (not force and (out / f"{name}.onnx").is_file()):
            continue
        done.add(name)
        written.append(export(model, meta["kind"], meta["config"], out))
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.export_onnx", description=__doc__.split("\n")[0])
    p.add_argument("--models", type=Path, default=SHIPPED_DIR, help="folder of weights files (default: shipped)")
    p.add_argument("--out", type=Path, help="where the graphs go (default: MODELS/graphs)")
    p.add_argument("--force", action="store_true", help="export again graphs that are already there")
    args = p.parse_args(argv)
    try:
        for path in export_folder(args.models, args.out, force=args.force):
            print(f"{path} ({path.stat().st_size // 1024} KB)")
    except (FileNotFoundError, weights.ModelFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
