"""`python -m core worker`: a warm generator behind JSON lines, for the Blender add-on (or any host).

The models load once; requests then run one at a time while a reader thread keeps listening, so a
cancel arrives mid-request. Every line on stdout is one JSON object; everything else goes to stderr.

Requests (stdin):
  {"id": 1, "cmd": "generate", "style": "grass", "seed": 0, "size": 1024, "out": "/dir/grass_0_albedo.png",
   "maps": ["albedo", "normal"], "normal_strength": 1.0}   (maps, strength optional; out: albedo or folder)
  {"id": 2, "cmd": "batch", "styles": ["grass"], "seeds": [0, 1], "size": 1024, "out": "/dir", "replace": false,
   "previews": 128}   (previews: a picture of each new set's albedo, that many pixels square; 0 or absent: none)
  {"id": 3, "cmd": "thumbnails", "out": "/dir", "size": 128}
  {"id": 4, "cmd": "maps", "input": "/photos/wall.jpg", "out": "/dir", "maps": ["albedo", "normal"], "tile": true,
   "normal_strength": 1.0, "roughness": 0.75}   a photo's PBR set as `tessera tile` + `tessera maps --tile`
                                               write it: /dir/wall_<map>.png (all but input and out optional)
  {"id": 5, "cmd": "learn", "inputs": ["/photos/wall.jpg"], "name": "my_wall"}   `tessera learn` (a photo style;
                                                                    "method": "gan", "minutes": 15 trains one)
   (also steps, like, resume, restart, replace, start: as its LearnConfig, and "resume": "auto" to continue
   an unfinished run of the name if there is one; needs PyTorch and training/); the
   result goes into the worker's --models folder, else the user models folder, and the models reload
  {"cmd": "cancel", "id": 2}          stop request 2 at its next tile or image
  {"cmd": "quit"}                     (or end of input)
Replies (stdout), each naming its request's id:
  {"event": "ready", "styles": [...], "device": "cpu", "devices": ["cpu", ...], "runtime": "torch 2.13.0",
   "errors": [...], "upscalers": [2, 4]}                                    once, when loaded
  {"event": "fatal", "message": "..."}                                       instead of ready; exit 3
  {"id": 1, "event": "progress", "done": 3, "total": 16}              (learn: steps, and "seconds_left")
  {"id": 1, "event": "result", "files": {"albedo": "/dir/grass_0_albedo.png", ...}, "seconds": 0.3}
   (generate: also "training_data", {source: licence} of the images its weights learned from)
  {"id": 1, "event": "error", "message": "one line"}
  {"id": 1, "event": "cancelled"}                 (learn: with "message", how the kept run continues)
The models run on PyTorch when it imports, else on ONNX Runtime (core.runtime: numpy, onnxruntime,
safetensors and Pillow only, as bundled with the Blender extension); `--runtime` chooses. "devices" lists
what that runtime offers here, for `--device`: PyTorch cpu, cuda, mps; ONNX Runtime cpu, cuda, directml,
coreml (auto: cuda, else directml, else the CPU; CoreML only when asked for).
Every "out" is an absolute path: the worker's own folder means nothing to its host (the add-on starts it
in the extension's install folder), so a relative one is refused.
Files are renamed into place only when whole, so a cancel or a kill never leaves half an image.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # numpy is imported where used: `fatal` must work in an interpreter without it
    import numpy as np

RUNTIMES = ("auto", "torch", "onnx")
# --device on ONNX Runtime → its execution provider; auto takes the first GPU one this install has
ONNX_DEVICES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                "directml": "DmlExecutionProvider", "coreml": "CoreMLExecutionProvider"}
ONNX_AUTO = ("cuda", "directml")  # CoreML runs only parts of the graphs: asked for, never chosen


# what `learn` takes from a request, beyond inputs and name (LearnConfig's fields)
LEARN_FIELDS = ("minutes", "steps", "like", "resume", "restart", "replace", "start")
NEEDS_TORCH = ("New Style from Image needs a Worker Python with PyTorch (set one in Preferences › Tessera, e.g. "
               "a checkout's .venv/bin/python after make demo); the bundled ONNX Runtime only runs the models")


class Cancelled(Exception):
    def __init__(self, message: str = ""):
        super().__init__(message)
        self.message = message


# the ONNX Runtime path, with the interface of core.api.Tessera that the requests use

class OnnxModels:
    """core.runtime.Runtime behind the methods of core.api.Tessera that this worker and core.batch call
    (generate, generate_maps, generate_many, generate_gan, roughness, style_weights, styles, generators,
    photos, upscalers, errors, device). Progress is told after the GAN and after each upscaling tile, so a cancel
    acts at the next tile, as on PyTorch."""

    def __init__(self, rt: Any, device: str):
        self.rt, self.device = rt, device
        self.styles, self.generators, self.upscalers, self.errors = rt.styles, rt.generators, rt.upscalers, rt.errors
        self.photos = rt.photos

    def style_weights(self, style: str | dict[str, float]) -> tuple[Any, np.ndarray]:
        """→ (the entry: a generator's or a photo style, (1, styles) float32 weights). Raises ValueError for a
        bad style or mix."""
        return self.rt.style_weights(style)

    def roughness(self, style: str | dict[str, float]) -> float:
        from .pbr import style_roughness

        entry, w = self.style_weights(style)
        return style_roughness(entry.meta, w[0])

    def generate_gan(self, style: str | dict[str, float], seed: int = 0, size: int = 256) -> np.ndarray:
        """(1, 3, size, size) float32 in [0, 1], as core.runtime.Runtime.generate_gan."""
        return self.rt.generate_gan(style, seed, size)

    def generate(self, style: str | dict[str, float], seed: int = 0, size: int = 1024,
                 progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """(size, size, 3) uint8, as core.runtime.Runtime.generate (with its `progress`)."""
        return self.rt.generate(style, seed, size, progress)

    def generate_many(self, style: str | dict[str, float], seeds: Iterable[int],
                      size: int = 1024) -> Iterator[tuple[int, np.ndarray]]:
        self.style_weights(style)  # a bad style fails before the first texture
        for seed in seeds:
            yield seed, self.generate(style, seed, size)

    def generate_maps(self, style: str | dict[str, float], seed: int = 0, size: int = 1024,
                      maps: tuple[str, ...] | list[str] = ("albedo",), *, normal_strength: float = 1.0,
                      progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
        """{map: array} as core.api.Tessera.generate_maps."""
        from . import pbr

        maps = pbr.check_maps(maps)
        albedo = self.generate(style, seed, size, progress)
        return pbr.derive(albedo, maps, roughness=self.roughness(style), normal_strength=normal_strength)


def torch_importable() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def load_models(models: str | None, device: str, runtime: str = "auto") -> tuple[Any, dict[str, Any]]:
    """The models on `runtime` ("auto": torch when it imports, else onnx) → (models, the ready event's
    fields about them: styles, device, devices, runtime, errors, upscalers). Raises ValueError for an unknown
    runtime or device, ImportError naming what to install, FileNotFoundError when no generator loads."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    if runtime == "torch" or (runtime == "auto" and torch_importable()):
        import torch

        from .api import load_generator

        gen: Any = load_generator(device=device, models_dir=models)
        devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else []),
                   *(["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else [])]
        name = f"torch {torch.__version__}"
    else:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError(f"neither PyTorch nor ONNX Runtime imports in {sys.executable} ({e}): install the "
                              f"Tessera extension with its bundled wheels, or pip install onnxruntime==1.23.2") from None
        from .runtime import load

        available = ort.get_available_providers()
        devices = [d for d, p in ONNX_DEVICES.items() if p in available]
        if device == "auto":
            chosen = next((d for d in ONNX_AUTO if d in devices), "cpu")
        elif device in ONNX_DEVICES and device in devices:
            chosen = device
        else:
            raise ValueError(f"device {device!r} is not offered by ONNX Runtime {ort.__version__} here: use auto or "
                             f"one of {', '.join(devices)}")
        providers = list(dict.fromkeys([ONNX_DEVICES[chosen], ONNX_DEVICES["cpu"]]))  # the CPU runs what it cannot
        gen = OnnxModels(load(models, providers=providers), chosen)
        name = f"onnxruntime {ort.__version__}"
        print(f"onnxruntime from {ort.__file__}, providers {providers}", file=sys.stderr)
    return gen, {"styles": gen.styles, "device": str(gen.device), "devices": devices, "runtime": name,
                 "errors": gen.errors, "upscalers": sorted(gen.upscalers)}


def to_rgb8(x: Any) -> np.ndarray:
    """A (1, 3, H, W) image in [0, 1], torch tensor or numpy array → (H, W, 3) uint8."""
    import numpy as np

    from .runtime import to_uint8

    if not isinstance(x, np.ndarray):  # a torch tensor
        x = x.float().cpu().numpy()
    return to_uint8(x)


def out_path(req: dict) -> str:
    """The request's "out", refused unless absolute (kept as given: a trailing slash marks a folder)."""
    out = os.path.expanduser(str(req["out"]))
    if not os.path.isabs(out):
        raise ValueError(f"out {out!r} is a relative path, which would land in the worker's folder "
                         f"{Path.cwd()}: give an absolute path")
    return out


class Worker:
    def __init__(self, gen: Any, out: TextIO, models: str | None = None,
                 reload: Callable[[], Any] | None = None):
        """`models`: the --models folder (where learn writes); `reload()` → the models loaded afresh."""
        self.gen, self.out, self.models, self.reload = gen, out, models, reload
        self.lock = threading.Lock()
        self.current: Any = None  # id of the running request
        self.cancel = threading.Event()  # set: stop the running request
        self.cancelled: set = set()  # ids cancelled before they started

    def send(self, **msg: Any) -> None:
        with self.lock:
            self.out.write(json.dumps(msg) + "\n")
            self.out.flush()

    def progress(self, rid: Any, done: int, total: int) -> None:
        if self.cancel.is_set():
            raise Cancelled
        self.send(id=rid, event="progress", done=done, total=total)

    # requests

    def generate(self, rid: Any, req: dict) -> dict:
        from .request import check_size
        from .batch import map_paths, training_data, write_maps
        from .pbr import DEFAULT_NORMAL_STRENGTH, check_maps

        maps = check_maps(req.get("maps", ["albedo"]))
        size = check_size(req.get("size", 1024))
        paths = map_paths(out_path(req), req["style"], req.get("seed", 0), maps)
        images = self.gen.generate_maps(req["style"], seed=req.get("seed", 0), size=size, maps=maps,
                                        normal_strength=req.get("normal_strength", DEFAULT_NORMAL_STRENGTH),
                                        progress=lambda d, t: self.progress(rid, d, t))
        if self.cancel.is_set():
            raise Cancelled
        return {"files": {m: str(p) for m, p in write_maps(paths, images).items()},
                "training_data": training_data(self.gen, [req["style"]])}

    def batch(self, rid: Any, req: dict) -> dict:
        from .request import check_size
        from .batch import bake

        size = check_size(req.get("size", 1024))
        seeds = [int(s) for s in req["seeds"]]
        if not seeds or min(seeds) < 0:
            raise ValueError(f"seeds {req['seeds']!r} must be whole numbers ≥ 0")
        manifest, skipped = bake(self.gen, list(req["styles"]), seeds, size, Path(out_path(req)),
                                 lambda d, t, _name: self.progress(rid, d, t), tuple(req.get("maps", ["albedo"])),
                                 replace=bool(req.get("replace", False)), previews=int(req.get("previews", 0)))
        return {"manifest": str(manifest), "skipped": skipped}

    def thumbnails(self, rid: Any, req: dict) -> dict:
        """One small GAN sample per style (a photo style: its first photo), cached per weights file (by its
        tensor digest)."""
        from .imageio import write_png
        from .photostyle import PhotoStyle

        size = int(req.get("size", 128))
        files = {}
        for i, style in enumerate(self.gen.styles):
            entry = self.gen.style_weights(style)[0]
            key = str(entry.meta.get("tensor_sha256", entry.path.stem))[:12]
            path = Path(out_path(req)) / key / f"{style}.png"
            if not path.is_file():
                photo = entry if isinstance(entry, PhotoStyle) else None
                write_png(path, photo.thumbnail(size) if photo else
                          to_rgb8(self.gen.generate_gan(style, seed=0, size=size)))
            files[style] = str(path)
            self.progress(rid, i + 1, len(self.gen.styles))
        return {"files": files}

    def maps(self, rid: Any, req: dict) -> dict:
        """A photo → seamless (core.tile) → its PBR maps (core.pbr), as `tessera maps --tile` writes them.
        numpy and Pillow only: the same on both runtimes."""
        from .batch import file_stem, write_maps
        from .imageio import check_writable, read_image
        from .pbr import DEFAULT_NORMAL_STRENGTH, DEFAULT_ROUGHNESS, check_maps, check_roughness, maps_from_image
        from .tile import check_tile_size, make_tileable

        maps = check_maps(req.get("maps", ["albedo"]))
        roughness = check_roughness(float(req.get("roughness", DEFAULT_ROUGHNESS)))
        source = Path(os.path.expanduser(str(req["input"])))
        folder = Path(out_path(req))
        paths = {m: check_writable(folder / f"{file_stem(source.stem)}_{m}.png") for m in maps}
        img = read_image(source, alpha="ignore")
        h, w = img.shape[:2]
        self.progress(rid, 0, 2)
        if req.get("tile", True):
            img = make_tileable(check_tile_size(str(source), img))
        self.progress(rid, 1, 2)
        images = maps_from_image(img, maps, roughness=roughness,
                                 normal_strength=float(req.get("normal_strength", DEFAULT_NORMAL_STRENGTH)))
        self.progress(rid, 2, 2)
        folder.mkdir(parents=True, exist_ok=True)
        return {"files": {m: str(p) for m, p in write_maps(paths, images).items()}, "size": [w, h]}

    def learn(self, rid: Any, req: dict) -> dict:
        """`tessera learn` with progress (steps, time left) and cancel (the run is kept: resume continues).
        "method": "quilt" (the default) writes a photo style in seconds, on either runtime (core.photostyle);
        "gan" trains, which needs PyTorch and the training package."""
        method = req.get("method", "quilt")
        if method not in ("quilt", "gan"):
            raise ValueError(f"method {method!r}: use 'quilt' or 'gan'")
        if method == "gan":
            if not torch_importable():
                raise ValueError(NEEDS_TORCH)
            try:
                from training.learn import LearnConfig, Stopped, learn
            except ImportError as e:
                raise ValueError(f"New Style from Image needs Tessera's training package in the Worker Python "
                                 f"({e}): use a checkout's .venv/bin/python (Preferences › Tessera)") from None

        inputs = [os.path.expanduser(str(p)) for p in req["inputs"]]
        if not all(os.path.isabs(p) for p in inputs):
            raise ValueError(f"inputs {inputs} must be absolute paths")
        if method == "quilt":
            from .photostyle import learn as learn_photos

            self.progress(rid, 0, 1)
            out = learn_photos([Path(p) for p in inputs], str(req["name"]), self.models,
                               bool(req.get("replace", False)))
            self.progress(rid, 1, 1)
        else:
            fields = {k: req[k] for k in LEARN_FIELDS if req.get(k) is not None and k != "resume"}
            cfg = LearnConfig(inputs=[Path(p) for p in inputs], name=str(req["name"]), method="gan",
                              models=self.models, device=str(self.gen.device), resume=req.get("resume") is True,
                              **fields)
            if req.get("resume") == "auto" and not cfg.restart:  # an unfinished run of this name continues
                from training.checkpoint import LAST

                cfg.resume = (cfg.work / cfg.name / "run" / LAST).is_file()

            def progress(done: int, total: int, seconds_left: float) -> bool:
                if self.cancel.is_set():
                    return False
                self.send(id=rid, event="progress", done=done, total=total, seconds_left=round(seconds_left, 1))
                return True

            try:
                out = learn(cfg, log=lambda *a: print(*a, file=sys.stderr), progress=progress)
            except Stopped as e:
                raise Cancelled(str(e)) from None
        if self.reload is not None:  # the new style, offered by this warm worker at once
            self.gen = self.reload()
        return {"file": str(out), "style": str(req["name"]), "styles": list(self.gen.styles)}

    def handle(self, req: dict) -> None:
        from .request import UnknownStyle  # here: importing core.request imports numpy (see `fatal`)

        rid, cmd = req.get("id"), req.get("cmd")
        handlers = {"generate": self.generate, "batch": self.batch, "thumbnails": self.thumbnails,
                    "maps": self.maps, "learn": self.learn}
        if cmd not in handlers:
            self.send(id=rid, event="error", message=f"unknown command {cmd!r}: use {', '.join(handlers)}")
            return
        t0 = time.perf_counter()
        try:
            result = handlers[cmd](rid, req)
        except Cancelled as e:
            self.send(id=rid, event="cancelled", **({"message": e.message} if e.message else {}))
        except KeyError as e:
            self.send(id=rid, event="error", message=f"{cmd} request lacks {e}")
        except PermissionError as e:
            self.send(id=rid, event="error", message=f"{e.filename}: permission denied")
        except UnknownStyle as e:  # perhaps a style of one of the files that did not load: name them
            errors = f" (not loaded: {'; '.join(self.gen.errors)})" if self.gen.errors else ""
            self.send(id=rid, event="error", message=f"{e}{errors}")
        except (ValueError, OSError) as e:
            self.send(id=rid, event="error", message=str(e))
        except Exception as e:  # a bug, not the user's doing: say so, keep serving
            traceback.print_exc(file=sys.stderr)
            self.send(id=rid, event="error", message=f"internal error: {e.__class__.__name__}: {e}")
        else:
            self.send(id=rid, event="result", seconds=round(time.perf_counter() - t0, 3), **result)


def read_requests(stream: TextIO, worker: Worker, jobs: queue.Queue) -> None:
    """Reader thread: cancels act at once, everything else waits its turn."""
    for line in stream:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError as e:
            worker.send(event="error", message=f"bad request line ({e}): {line[:80]}")
            continue
        if req.get("cmd") == "cancel":
            worker.cancelled.add(req.get("id"))
            if req.get("id") == worker.current:
                worker.cancel.set()
            continue
        if req.get("cmd") == "quit":
            break
        jobs.put(req)
    jobs.put(None)


def fatal(message: str, out: TextIO | None = None) -> int:
    """Tell the host why the worker cannot serve (instead of `ready`) → the exit status."""
    Worker(None, out or sys.stdout).send(event="fatal", message=message)
    return 3


def main(models: str | None = None, device: str = "auto", runtime: str = "auto") -> int:
    import warnings

    out, sys.stdout = sys.stdout, sys.stderr  # only protocol lines on the real stdout
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gen, ready = load_models(models, device, runtime)
    except Exception as e:  # no models, bad folder, bad device, no runtime: the host shows this line
        return fatal(str(e), out)
    worker = Worker(gen, out, models, lambda: load_models(models, device, runtime)[0])
    worker.send(event="ready", **ready)
    jobs: queue.Queue = queue.Queue()
    threading.Thread(target=read_requests, args=(sys.stdin, worker, jobs), daemon=True).start()
    while (req := jobs.get()) is not None:
        worker.cancel.clear()
        worker.current = req.get("id")
        if worker.current in worker.cancelled:
            worker.send(id=worker.current, event="cancelled")
        else:
            worker.handle(req)
        worker.current = None
    return 0
