"""Operators: generate, batch bake, cancel, randomise seed. Checks happen here, before any work."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import bpy

from . import assets, client, jobs, material, prefs, styles
from .props import settings

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems, WmReportItems

# Peak memory of a worker making one texture, measured by `python -m core.bench` (fresh process: 1024²
# 0.4 GiB, 4096² 1.2 GiB), with room to spare: grows with the pixels.
GIB = 2**30


def memory_needed(size: int) -> int:
    return int(0.35 * GIB + 1.2 * GIB * (size / 4096) ** 2)


def memory_available() -> int | None:
    """Bytes the system could give now (Linux); None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_folder(path: Path, what: str) -> Path:
    """Create `path` if needed and make sure it can be written; ValueError says what to do."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} {prefs.not_a_folder(path)}: choose another in Preferences › Tessera")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{what} {path} cannot be created ({e.strerror}): choose another in Preferences › Tessera")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path} is not writable: choose another in Preferences › Tessera")
    return path


def check_common(context: bpy.types.Context, size: int | None) -> None:
    """The models folder, its weights, memory for a `size`² texture (None: no check), the worker's Python.
    Raises ValueError or WorkerError saying what to do."""
    models = prefs.models_dir(context)
    if models is not None and not models.is_dir():
        raise ValueError(f"Models folder {models} {prefs.not_a_folder(models)}: fix it in Preferences › Tessera, "
                         f"or clear it to use the shipped weights")
    if not styles.names(context):
        detail = f" ({'; '.join(styles.errors)})" if styles.errors else ""
        raise ValueError(f"No usable Tessera weights{detail}: set a models folder in Preferences › Tessera")
    free, need = memory_available(), memory_needed(size or 0)
    if size is not None and free is not None and need > free:
        raise ValueError(f"A {size}² texture needs about {need / GIB:.1f} GiB of memory, {free / GIB:.1f} GiB "
                         f"is free: choose a smaller size")
    client.find_python(prefs.get(context).python)  # WorkerError with what to do


def chosen_maps(maps: set[str]) -> list[str]:
    """The maps the panel asks for, in a fixed order (albedo alone when none is ticked)."""
    return [m for m in material.NODES if m in maps] or ["albedo"]


def material_applier(context: bpy.types.Context, stem: str, title: str, what: str,
                     seed: int | None = None) -> Callable[[dict], tuple[str, str]]:
    """→ what applies a worker's {"files": {map: path}} (main thread, later): images `<stem>_<map>`, the
    material "Tessera <title>" on the object active now, with the panel's settings as they are now (Mark as
    Asset: an asset in catalog Tessera › <title>; `seed` None: made from a photo); the report names `what`
    (e.g. the size)."""
    s = settings(context)
    target = context.active_object.name if context.active_object else None
    tiling, preview, new_slot, pack = s.tiling, s.preview_tiling, s.new_slot, s.pack
    strength, displacement, mark_asset = s.normal_strength, s.displacement, s.mark_asset

    def apply(result: dict) -> tuple[str, str]:
        images = {}
        for name, path in result["files"].items():
            images[name] = material.load_image(f"{stem}_{name}", Path(path), pack, material.colorspace(name))
            if pack:
                Path(path).unlink(missing_ok=True)  # its pixels now live in the .blend
        obj = bpy.data.objects.get(target) if target else None
        mat = material.material_for(title, images, tiling, strength, displacement, preview, obj)
        material.set_displacement_method(mat, obj)
        done = material.assign(obj, mat, new_slot)
        note = material.fit_coordinates(mat, obj)
        if mark_asset:
            shown = images.get("albedo") or next(iter(images.values()))
            assets.mark(mat, title, seed, result.get("training_data") if seed is not None else None,
                        int(shown.size[0]), shown)
            try:
                assets.save_catalogs()
            except (OSError, ValueError) as e:
                note += f"; the asset catalog could not be written: {e}"
        return ("WARNING" if note else "INFO", f"{stem} ({what}, {', '.join(images)}; "
                                                f"{result['seconds']:.1f} s): {done}{note}")

    return apply


class _Submit(bpy.types.Operator):
    """Shared by the operators that start work: polls, error reporting, background completion."""

    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if jobs.running() is not None:
            cls.poll_message_set("Tessera is busy: wait for it or press Cancel")
            return False
        if not styles.names(context):
            why = "; ".join(styles.errors) or "no weights files found"
            cls.poll_message_set(f"No Tessera styles ({why}): check the models folder in Preferences › Tessera")
            return False
        return True

    def finish(self, job: jobs.Job | None) -> set[OperatorReturnItems]:
        if job is not None and job.outcome is not None:  # background mode: it already ran
            level, text = job.outcome
            self.report({cast("WmReportItems", level)}, text)
            return {"CANCELLED"} if level == "ERROR" else {"FINISHED"}
        return {"FINISHED"}

    def fail(self, e: Exception) -> set[OperatorReturnItems]:
        self.report({"ERROR"}, str(e))
        return {"CANCELLED"}


class TESSERA_OT_generate(_Submit):
    """Generate a seamless texture and put it on the active object as a material"""

    bl_idname = "tessera.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        s = settings(context)
        style, seed, size = s.style, s.seed, int(s.size)
        maps = chosen_maps(s.maps)
        try:
            check_common(context, size)
            folder = check_folder(prefs.user_dir("packed") if s.pack else prefs.output_dir(context), "Output folder")
        except (ValueError, client.WorkerError) as e:
            return self.fail(e)
        stem = f"{style}_{seed}"
        apply = material_applier(context, stem, style, f"{size}²", seed)
        try:
            job = jobs.submit(context, jobs.Job("generate", f"{style} {seed}", apply), style=style, seed=seed,
                              size=size, maps=maps, out=str(folder / f"{stem}_albedo.png"))
        except client.WorkerError as e:
            return self.fail(e)
        _request_thumbnails(context)
        return self.finish(job)


class TESSERA_OT_batch_bake(_Submit):
    """Bake seeds × styles to PNG files with a manifest.json; a rerun skips what is done"""

    bl_idname = "tessera.batch_bake"
    bl_label = "Batch Bake"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        s = settings(context)
        chosen = sorted(s.batch_styles) or [s.style]
        maps = chosen_maps(s.maps)
        seeds = list(range(s.seed, s.seed + s.batch_count))
        size = int(s.size)
        try:
            check_common(context, size)
            folder = check_folder(prefs.output_dir(context) / "batch", "Output folder")
        except (ValueError, client.WorkerError) as e:
            return self.fail(e)

        as_assets, strength, displacement = s.batch_assets, s.normal_strength, s.displacement

        def done(result: dict) -> tuple[str, str]:
            made = len(chosen) * len(seeds) - result["skipped"]
            text = f"Baked {made} texture set(s) ({result['skipped']} already there) into {folder}"
            if not as_assets:
                return "INFO", text
            try:
                manifest = json.loads(Path(result["manifest"]).read_text())
                library, count = assets.write_library(folder, manifest["images"], manifest.get("training_data", {}),
                                                      strength, displacement)
            except (OSError, ValueError, KeyError, RuntimeError) as e:
                return "WARNING", f"{text}; the asset library could not be written: {e}"
            name = assets.register_library(folder)
            return "INFO", f"{text}; asset library '{name}': {count} material(s) in {library.name}"

        try:
            job = jobs.submit(context, jobs.Job("batch", f"batch of {len(chosen) * len(seeds)}", done),
                              styles=chosen, seeds=seeds, size=size, out=str(folder), maps=maps,
                              replace=s.batch_replace, previews=assets.PREVIEW_SIDE if s.batch_assets else 0)
        except client.WorkerError as e:
            return self.fail(e)
        return self.finish(job)


class TESSERA_OT_cancel(bpy.types.Operator):
    """Stop the running generation; nothing half-made is kept"""

    bl_idname = "tessera.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if jobs.running() is None:
            cls.poll_message_set("Nothing is running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        jobs.cancel()
        return {"FINISHED"}


class TESSERA_OT_randomize_seed(bpy.types.Operator):
    """Pick a random seed"""

    bl_idname = "tessera.randomize_seed"
    bl_label = "Random Seed"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        settings(context).seed = random.randrange(0, 2**31 - 1)
        return {"FINISHED"}


class TESSERA_OT_report(bpy.types.Operator):
    """Show a message from a finished job in the status bar and the Info log"""

    bl_idname = "tessera.report"
    bl_label = "Tessera Report"
    bl_options = {"INTERNAL"}

    level: bpy.props.StringProperty(default="INFO")  # type: ignore[valid-type]
    message: bpy.props.StringProperty()  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        self.report({cast("WmReportItems", self.level)}, self.message)
        return {"FINISHED"}


def _request_thumbnails(context: bpy.types.Context) -> None:
    """Once per session, after a generate: ask the worker for the style thumbnails (UI only)."""
    if bpy.app.background or styles.have_thumbnails() or any(j.cmd == "thumbnails" for j in jobs.STATE.jobs.values()):
        return

    def load(result: dict) -> str:
        styles.load_thumbnails(result["files"])
        return "thumbnails ready"

    try:
        jobs.submit(context, jobs.Job("thumbnails", "thumbnails", load, visible=False),
                    out=str(prefs.user_dir("thumbnails")), size=128)
    except client.WorkerError:
        pass  # the generate that just started reports worker trouble
