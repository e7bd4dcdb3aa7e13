"""Requests in flight: send them to the worker, follow their progress, apply their results.

In the UI a timer drains the worker's replies every 0.1 s on Blender's main thread, so Blender stays
responsive and results (images, materials) are applied where bpy may be used. In background mode
(`blender -b`, the bpy module) `submit` waits for the reply instead, so scripts run to completion.
"""

from __future__ import annotations

import queue
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bpy

from . import client as worker
from . import prefs

POLL_S = 0.1
START_TIMEOUT_S = 120.0  # loading torch and the models; a worker silent for this long is stuck


@dataclass
class Job:
    cmd: str
    label: str                                   # shown while it runs: "grass 42"
    on_result: Callable[[dict[str, Any]], str | tuple[str, str]]  # applies a result (main thread) → message
    #                                                 for the user, or (level, message) to warn
    visible: bool = True                         # False: background chores such as thumbnails
    rid: int = 0
    done: int = 0
    total: int = 0
    outcome: tuple[str, str] | None = None       # ("INFO" | "WARNING" | "ERROR", message) once finished
    seconds_left: float | None = None            # learn: the training's estimate
    kept: str = ""                               # said after "Cancelled" when the worker kept the work (learn)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def status(self) -> str:
        """How far it is: "40%", or for learn "step 12 of 80, 3 min left"."""
        if self.seconds_left is None:
            return f"{self.fraction:.0%}"
        left = self.seconds_left
        eta = f"{left / 60:.0f} min" if left >= 90 else f"{left:.0f} s"
        return f"step {self.done} of {self.total}, {eta} left"


@dataclass
class State:
    client: worker.WorkerClient | None = None
    jobs: dict[int, Job] = field(default_factory=dict)
    started: float = 0.0
    message: tuple[str, str] | None = None  # the last outcome, shown in the panel


STATE = State()


def running() -> Job | None:
    return next((j for j in STATE.jobs.values() if j.visible), None)


def offered_devices() -> tuple[str, ...] | None:
    """The devices the running worker's runtime offers (its ready event), or None before one has reported."""
    c = STATE.client
    return tuple(c.ready.get("devices", ())) if c is not None and c.ready is not None else None


def get_client(context: bpy.types.Context | None = None) -> worker.WorkerClient:
    """The warm worker; (re)started when it died or its settings changed."""
    p = prefs.get(context)
    try:
        models = prefs.models_dir(context)
    except ValueError as e:  # a relative models folder: the operators report it before getting here
        raise worker.WorkerError(str(e)) from None
    settings = (worker.find_python(p.python), p.device, str(models or ""))
    c = STATE.client
    if c is not None and c.alive() and c.settings == settings:
        return c
    if c is not None:  # settings changed (or it died) while idle: only background chores can be lost
        c.stop()
        STATE.jobs = {rid: j for rid, j in STATE.jobs.items() if j.visible}
    paths = [] if p.python else prefs.wheel_paths()  # Blender's Python: the extension's wheels
    STATE.client = worker.WorkerClient(*settings[:2], models, prefs.user_dir() / "worker.log", paths)
    STATE.started = time.monotonic()
    return STATE.client


def submit(context: bpy.types.Context, job: Job, wait: bool | None = None, **fields: Any) -> Job:
    """Send a request. With `wait` (default: in background mode) return when it has finished (see
    `job.outcome`); else a timer follows it."""
    c = get_client(context)
    job.rid = c.send(job.cmd, **fields)
    STATE.jobs[job.rid] = job
    if bpy.app.background if wait is None else wait:
        while job.outcome is None:
            if not pump(block=True):
                break
    elif not bpy.app.background and not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=POLL_S)
    _show_progress()
    return job


def cancel() -> None:
    job, c = running(), STATE.client
    if job is None or c is None:
        return
    if c.ready is None:  # still loading: nothing to interrupt but the process itself
        c.stop()
        STATE.client = None
        _finish_all(("INFO", "Cancelled"))
    else:
        c.cancel(job.rid)


def shutdown() -> None:
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
    if STATE.client is not None:
        STATE.client.stop()
    STATE.client, STATE.jobs = None, {}


# the pump

def pump(block: bool = False) -> bool:
    """Handle every reply that has arrived (with `block`, wait for at least one); → jobs remain."""
    c = STATE.client
    if c is None:
        return False
    while True:
        try:
            ev = c.events.get(timeout=POLL_S) if block else c.events.get_nowait()
        except queue.Empty:
            if c.ready is None and time.monotonic() - STATE.started > START_TIMEOUT_S:
                c.stop()
                STATE.client = None
                _finish_all(("ERROR", f"Tessera worker did not start within {START_TIMEOUT_S:.0f} s; "
                                      f"see {c.log_path}"))
                return False
            if block and c.alive():
                continue
            if not c.alive() and c.events.empty() and STATE.jobs:
                STATE.client = None
                _finish_all(("ERROR", c.death_message()))
            break
        block = False
        _handle(c, ev)
    _show_progress()
    return bool(STATE.jobs)


def _handle(c: worker.WorkerClient, ev: dict[str, Any]) -> None:
    kind = ev.get("event")
    if kind == "ready":
        c.ready = ev
        if ev.get("errors"):
            _announce(("WARNING", "Some weights files were skipped: " + "; ".join(ev["errors"])))
        return
    if kind == "fatal":
        c.stop()
        STATE.client = None
        _finish_all(("ERROR", f"Tessera worker: {ev.get('message')}"))
        return
    if kind == "exit":
        if STATE.jobs:
            STATE.client = None
            _finish_all(("ERROR", c.death_message()))
        return
    job = STATE.jobs.get(ev.get("id"))  # type: ignore[arg-type]
    if job is None:
        return
    if kind == "progress":
        job.done, job.total, job.seconds_left = ev["done"], ev["total"], ev.get("seconds_left")
        return
    del STATE.jobs[job.rid]
    if kind == "result":
        try:
            told = job.on_result(ev)
            job.outcome = told if isinstance(told, tuple) else ("INFO", told)
        except (OSError, RuntimeError, ValueError) as e:  # e.g. Blender could not read the file
            job.outcome = ("ERROR", f"Tessera: {e}")
        except Exception as e:  # a bug: keep the pump alive, say so in one line, details in the console
            traceback.print_exc()
            job.outcome = ("ERROR", f"Tessera internal error ({e.__class__.__name__}: {e}); see the system console")
    elif kind == "cancelled":
        job.outcome = ("INFO", f"Cancelled: {job.kept}" if ev.get("message") and job.kept else "Cancelled")
    else:
        job.outcome = ("ERROR", f"Tessera: {ev.get('message')}")
    if job.visible:
        _announce(job.outcome)


def _finish_all(outcome: tuple[str, str]) -> None:
    jobs, STATE.jobs = list(STATE.jobs.values()), {}
    for job in jobs:
        job.outcome = outcome
    if any(j.visible for j in jobs) or outcome[0] == "ERROR":
        _announce(outcome)


def _tick() -> float | None:
    return POLL_S if pump() else None


# telling the user

def _announce(outcome: tuple[str, str]) -> None:
    STATE.message = outcome
    if not bpy.app.background:  # in background the operator reports the job's outcome itself
        try:
            getattr(bpy.ops, "tessera").report(level=outcome[0], message=outcome[1])
        except RuntimeError:  # ERROR reports raise when called from Python; the report is shown anyway
            pass


def _show_progress() -> None:
    wm = bpy.context.window_manager
    if wm is None:
        return
    job = running()
    text = None
    if job is not None:
        c = STATE.client
        stage = "starting worker" if c is not None and c.ready is None else job.status
        text = f"Tessera: {job.label} — {stage}  (Cancel in the sidebar)"
    for window in wm.windows:
        window.workspace.status_text_set(text)
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "NODE_EDITOR", "IMAGE_EDITOR"}:
                area.tag_redraw()
