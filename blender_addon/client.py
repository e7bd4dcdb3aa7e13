"""The worker process: which Python runs it, starting it, talking to it. No bpy here.

`python -m core worker` loads the models once and answers JSON lines (see core/worker.py). A reader
thread moves its replies into a queue; Blender's main thread drains the queue (jobs.py), so nothing
here ever blocks the UI.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # holds core/


class WorkerError(Exception):
    """The worker cannot run or stopped; the message says what to do."""


def find_python(chosen: str = "") -> str:
    """The interpreter for the worker: the preference (an environment with PyTorch, for CUDA, Metal or
    training), else Blender's own Python (`sys.executable`), which runs the models on the bundled ONNX
    Runtime. Raises WorkerError when the preference is not an executable file."""
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise WorkerError(f"Worker Python {chosen} is not an executable file: fix it in Preferences › Tessera")
        return str(path)
    return sys.executable


class WorkerClient:
    """One warm worker process, started once and reused while its settings stay the same."""

    def __init__(self, python: str, device: str, models: Path | None, log: Path, paths: list[str] | None = None):
        """Start `python -m core worker` with core's folder and then `paths` (e.g. the folder of the extension's
        wheels) first on its PYTHONPATH. Raises WorkerError when the interpreter cannot be started."""
        self.settings = (python, device, str(models) if models else "")
        self.log_path = log
        cmd = [python, "-m", "core", "worker", "--device", device]
        if models:
            cmd += ["--models", str(models)]
        path = [str(ROOT), *(paths or []), os.environ.get("PYTHONPATH")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)), PYTHONUNBUFFERED="1")
        self.log = open(log, "w")  # noqa: SIM115  (closed in stop)
        try:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self.log, text=True, bufsize=1)
        except OSError as e:
            self.log.close()
            raise WorkerError(f"cannot start the worker with {python}: {e.strerror}") from None
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.ready: dict[str, Any] | None = None
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                continue  # not a protocol line
        self.events.put({"event": "exit"})

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, cmd: str, **fields: Any) -> int:
        """Queue a request; → its id. The worker reads it once it has loaded."""
        self.next_id += 1
        self._write({"id": self.next_id, "cmd": cmd, **fields})
        return self.next_id

    def cancel(self, rid: int) -> None:
        self._write({"cmd": "cancel", "id": rid})

    def _write(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerError(self.death_message()) from None

    def death_message(self) -> str:
        try:
            code = self.proc.wait(timeout=2)  # its output ended: it is exiting
        except subprocess.TimeoutExpired:
            code = None
        tail = self.last_log_line()
        why = f" ({tail})" if tail else ""
        return f"Tessera worker stopped (exit code {code}){why}; see {self.log_path}"

    def last_log_line(self) -> str:
        try:
            self.log.flush()
            lines = deque(Path(self.log_path).read_text(errors="replace").splitlines(), maxlen=20)
        except OSError:
            return ""
        return next((ln.strip() for ln in reversed(lines) if ln.strip()), "")

    def stop(self) -> None:
        if self.alive():
            try:
                self._write({"cmd": "quit"})
                self.proc.wait(timeout=2)
            except (WorkerError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.close()
