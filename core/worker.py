"""`python -m core worker`: a warm generator behind JSON lines, for the Blender add-on (or any host).

The models load once; requests then run one at a time while a reader thread keeps listening, so a
cancel arrives mid-request. Every line on stdout is one JSON object; everything else goes to stderr.

Requests (stdin):
  {"id": 1, "cmd": "generate", "style": "grass", "seed": 0, "size": 1024, "out": "/dir/grass_0_albedo.png",
   "maps": ["albedo", "normal"], "normal_strength": 1.0}   (maps, strength optional; out: albedo or folder)
  {"id": 2, "cmd": "batch", "styles": ["grass"], "seeds": [0, 1], "size": 1024, "out": "/dir", "replace": false}
  {"id": 3, "cmd": "thumbnails", "out": "/dir", "size": 128}
  {"cmd": "cancel", "id": 2}          stop request 2 at its next tile or image
  {"cmd": "quit"}                     (or end of input)
Replies (stdout), each naming its request's id:
  {"event": "ready", "styles": [...], "device": "cpu", "errors": [...]}     once, when loaded
  {"event": "fatal", "message": "..."}                                       instead of ready; exit 3
  {"id": 1, "event": "progress", "done": 3, "total": 16}
  {"id": 1, "event": "result", "files": {"albedo": "/dir/grass_0_albedo.png", ...}, "seconds": 0.3}
  {"id": 1, "event": "error", "message": "one line"}
  {"id": 1, "event": "cancelled"}
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
from pathlib import Path
from typing import Any, TextIO


class Cancelled(Exception):
    pass


def out_path(req: dict) -> str:
    """The request's "out", refused unless absolute (kept as given: a trailing slash marks a folder)."""
    out = os.path.expanduser(str(req["out"]))
    if not os.path.isabs(out):
        raise ValueError(f"out {out!r} is a relative path, which would land in the worker's folder "
                         f"{Path.cwd()}: give an absolute path")
    return out


class Worker:
    def __init__(self, gen: Any, out: TextIO):
        self.gen, self.out = gen, out
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
        from .api import check_size
        from .batch import map_paths, write_maps
        from .pbr import DEFAULT_NORMAL_STRENGTH, check_maps

        maps = check_maps(req.get("maps", ["albedo"]))
        size = check_size(req.get("size", 1024))
        paths = map_paths(out_path(req), req["style"], req.get("seed", 0), maps)
        images = self.gen.generate_maps(req["style"], seed=req.get("seed", 0), size=size, maps=maps,
                                        normal_strength=req.get("normal_strength", DEFAULT_NORMAL_STRENGTH),
                                        progress=lambda d, t: self.progress(rid, d, t))
        if self.cancel.is_set():
            raise Cancelled
        return {"files": {m: str(p) for m, p in write_maps(paths, images).items()}}

    def batch(self, rid: Any, req: dict) -> dict:
        from .api import check_size
        from .batch import bake

        size = check_size(req.get("size", 1024))
        seeds = [int(s) for s in req["seeds"]]
        if not seeds or min(seeds) < 0:
            raise ValueError(f"seeds {req['seeds']!r} must be whole numbers ≥ 0")
        manifest, skipped = bake(self.gen, list(req["styles"]), seeds, size, Path(out_path(req)),
                                 lambda d, t, _name: self.progress(rid, d, t), tuple(req.get("maps", ["albedo"])),
                                 replace=bool(req.get("replace", False)))
        return {"manifest": str(manifest), "skipped": skipped}

    def thumbnails(self, rid: Any, req: dict) -> dict:
        """One small GAN sample per style, cached per weights file (by its tensor digest)."""
        from .imageio import to_uint8, write_png

        size = int(req.get("size", 128))
        files = {}
        for i, style in enumerate(self.gen.styles):
            entry = self.gen.generators[style]
            key = str(entry.meta.get("tensor_sha256", entry.path.stem))[:12]
            path = Path(out_path(req)) / key / f"{style}.png"
            if not path.is_file():
                write_png(path, to_uint8(self.gen.generate_gan(style, seed=0, size=size)))
            files[style] = str(path)
            self.progress(rid, i + 1, len(self.gen.styles))
        return {"files": files}

    def handle(self, req: dict) -> None:
        rid, cmd = req.get("id"), req.get("cmd")
        handlers = {"generate": self.generate, "batch": self.batch, "thumbnails": self.thumbnails}
        if cmd not in handlers:
            self.send(id=rid, event="error", message=f"unknown command {cmd!r}: use {', '.join(handlers)}")
            return
        t0 = time.perf_counter()
        try:
            result = handlers[cmd](rid, req)
        except Cancelled:
            self.send(id=rid, event="cancelled")
        except KeyError as e:
            self.send(id=rid, event="error", message=f"{cmd} request lacks {e}")
        except PermissionError as e:
            self.send(id=rid, event="error", message=f"{e.filename}: permission denied")
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


def main(models: str | None = None, device: str = "auto") -> int:
    import warnings

    from .api import load_generator

    out, sys.stdout = sys.stdout, sys.stderr  # only protocol lines on the real stdout
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gen = load_generator(device=device, models_dir=models)
    except Exception as e:  # no models, bad folder, bad device: the host shows this line
        return fatal(str(e), out)
    worker = Worker(gen, out)
    worker.send(event="ready", styles=gen.styles, device=str(gen.device), errors=gen.errors,
                upscalers=sorted(gen.upscalers))
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
