"""From a photo: "Material from Image" (seamless, PBR maps, material) and "New Style from Image…" (`tessera
learn`), both run by the worker. The image comes from a file browser or from an Image Editor."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import bpy

from ..core.files import cache_dir
from . import client, jobs, prefs
from .ops import _Submit, check_common, check_folder, chosen_maps, material_applier
from .props import settings

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

IMAGE_GLOB = "*.png;*.jpg;*.jpeg;*.tif;*.tiff;*.webp;*.bmp;*.tga"
DEFAULT_MINUTES = 15.0


def image_file(img: bpy.types.Image) -> Path:
    """A file holding what `img` shows: its own when it is an unchanged file on disk, else a copy saved
    into the extension's user folder (packed, generated, painted or rendered images)."""
    path = Path(bpy.path.abspath(img.filepath, library=img.library)) if img.filepath else None
    if img.source == "FILE" and img.packed_file is None and not img.is_dirty and path and path.is_file():
        return path
    out = prefs.user_dir("from_image") / f"{style_name(img.name) or 'image'}.png"
    try:
        save_copy(img, out)
    except RuntimeError as e:
        raise ValueError(f"image {img.name} cannot be saved for Tessera ({e})") from None
    return out


def save_copy(img: bpy.types.Image, out: Path) -> None:
    """Save what `img` shows to `out` (PNG), leaving `img` as it was (its file, packing, unsaved paint).
    Blender 4.2's Image.save has no save_copy (and would mark painted pixels saved): there the pixels go
    through a throwaway image."""
    if "save_copy" in cast(Any, bpy.types.Image.bl_rna).functions["save"].parameters:
        img.save(filepath=str(out), save_copy=True)
        return
    import numpy as np

    w, h = img.size
    tmp = bpy.data.images.new(".tessera-save", w, h, alpha=True, float_buffer=img.is_float)
    try:
        if tmp.colorspace_settings is not None and img.colorspace_settings is not None:
            tmp.colorspace_settings.name = img.colorspace_settings.name
        pixels = np.empty(w * h * img.channels, np.float32)
        cast(Any, img.pixels).foreach_get(pixels)
        if img.channels != 4:  # grey or RGB: into RGBA
            pixels = pixels.reshape(-1, img.channels)[:, [0, 0, 0] if img.channels == 1 else [0, 1, 2]]
            pixels = np.concatenate([pixels, np.ones((w * h, 1), np.float32)], axis=1).ravel()
        cast(Any, tmp.pixels).foreach_set(pixels)
        tmp.filepath_raw, tmp.file_format = str(out), "PNG"
        tmp.save()
    finally:
        bpy.data.images.remove(tmp)


def style_name(text: str) -> str:
    """A name `tessera learn` accepts (lower-case letters, digits, _ and -, at most 40), made from `text`."""
    return re.sub(r"[^a-z0-9_-]+", "_", Path(text).stem.lower()).strip("_-")[:40]


def unfinished_run(name: str) -> bool:
    """Whether an earlier, cancelled or killed learn of `name` left its checkpoint to continue (where
    training/learn.py keeps it: <cache>/learn/<name>/run/last.safetensors)."""
    return bool(name) and (cache_dir() / "learn" / name / "run" / "last.safetensors").is_file()


def browse(op: bpy.types.Operator, context: bpy.types.Context) -> set[OperatorReturnItems]:
    """Open the file browser for `op` (its filepath, files and directory are filled in)."""
    assert context.window_manager is not None
    context.window_manager.fileselect_add(op)
    return {"RUNNING_MODAL"}


class TESSERA_OT_material_from_image(_Submit):
    """Make an image seamless, derive its PBR maps (albedo, normal, height, roughness, AO, as ticked in the
    panel) and put them on the active object as a material, as Generate does"""

    bl_idname = "tessera.material_from_image"
    bl_label = "Material from Image"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    filter_glob: bpy.props.StringProperty(default=IMAGE_GLOB, options={"HIDDEN"})  # type: ignore[valid-type]
    image: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Image", description="An image of this .blend file instead of a file (the Image Editor's)",
        options={"HIDDEN", "SKIP_SAVE"})
    tile: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Make Seamless", description="Re-synthesise the image's borders so that it tiles (leave it off "
        "for an image that already tiles)", default=True)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        if self.image:
            return self.execute(context)
        return browse(self, context)

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        s = settings(context)
        try:
            if self.image:
                img = bpy.data.images.get(self.image)
                if img is None:
                    raise ValueError(f"no image {self.image!r} in this file")
                source = image_file(img)
            elif self.filepath:
                source = Path(bpy.path.abspath(self.filepath))
            else:
                raise ValueError("no image given: choose an image file")
            check_common(context, None)
            folder = check_folder(prefs.user_dir("packed") if s.pack else prefs.output_dir(context), "Output folder")
        except (ValueError, client.WorkerError) as e:
            return self.fail(e)
        stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in source.stem)  # as core.batch.file_stem
        apply = material_applier(context, stem, stem, "from image")
        try:
            job = jobs.submit(context, jobs.Job("maps", stem, apply), input=str(source), out=str(folder),
                              maps=chosen_maps(s.maps), tile=self.tile, normal_strength=s.normal_strength)
        except client.WorkerError as e:
            return self.fail(e)
        return self.finish(job)


class TESSERA_OT_style_from_image(_Submit):
    """Make a new seamless style from one or more photos (or a folder of them) of one material, in the
    background: from the photos themselves (quilted, in seconds, on any Worker), or by training (minutes;
    progress in the panel, Cancel keeps the run and the same name again continues it; needs a Worker Python
    with PyTorch, Preferences)"""

    bl_idname = "tessera.style_from_image"
    bl_label = "New Style from Image…"
    bl_options = {"REGISTER"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    filter_glob: bpy.props.StringProperty(default=IMAGE_GLOB, options={"HIDDEN"})  # type: ignore[valid-type]
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN"})  # type: ignore[valid-type]
    files: bpy.props.CollectionProperty(  # type: ignore[valid-type]
        type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    directory: bpy.props.StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]
    image: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Image", description="An image of this .blend file instead of files (the Image Editor's)",
        options={"HIDDEN", "SKIP_SAVE"})
    style: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Name", description="The new style's name: lower-case letters, digits, _ and - (empty: from the "
        "first image's name). An unfinished run of this name continues", options={"SKIP_SAVE"})
    method: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Method", default="QUILT", items=[
            ("QUILT", "From the Photos", "New textures quilted from the photos themselves, at their scale: "
             "seconds, on any Worker"),
            ("GAN", "Train", "Adapt Tessera's generator to the photos: minutes, needs a Worker Python with "
             "PyTorch")])
    minutes: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Minutes", description="Training time, counted across a cancel and continue (more: closer to the "
        "photos)", default=DEFAULT_MINUTES, min=0.1, soft_max=60.0)
    restart: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Start Over", description="Throw away an unfinished run of this name instead of continuing it",
        default=False, options={"SKIP_SAVE"})
    replace: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Replace", description="Replace a style of this name that you learned before", default=False,
        options={"SKIP_SAVE"})
    steps: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Steps", description="Stop after this many training steps if sooner (0: the minutes decide)",
        default=0, min=0, options={"HIDDEN", "SKIP_SAVE"})
    start: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Start Generator", description="The generator file to adapt (empty: the shipped one)",
        subtype="FILE_PATH", options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        if self.image:
            self.style = self.style or style_name(self.image)
            assert context.window_manager is not None
            return context.window_manager.invoke_props_dialog(self)
        return browse(self, context)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        assert layout is not None
        layout.prop(self, "style")
        layout.prop(self, "method")
        if self.method == "GAN":
            layout.prop(self, "minutes")
        if self.method == "GAN" and unfinished_run(self.style):
            layout.label(text=f"An unfinished run of {self.style} continues", icon="INFO")
            layout.prop(self, "restart")
        layout.prop(self, "replace")

    def inputs(self) -> list[Path]:
        """The images chosen: the Image Editor's, the selected files, or else the folder."""
        if self.image:
            img = bpy.data.images.get(self.image)
            if img is None:
                raise ValueError(f"no image {self.image!r} in this file")
            return [image_file(img)]
        folder = Path(bpy.path.abspath(self.directory)) if self.directory else None
        chosen = [folder / f.name for f in self.files if f.name] if folder else []
        if not chosen and self.filepath:
            chosen = [Path(bpy.path.abspath(self.filepath))]
        if not chosen and folder is not None:
            chosen = [folder]
        if not chosen:
            raise ValueError("no images given: choose image files or a folder of them")
        return chosen

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        try:
            inputs = self.inputs()
            check_common(context, None)
        except (ValueError, client.WorkerError) as e:
            return self.fail(e)
        name = self.style or style_name(inputs[0].name)
        scene = context.scene.name if context.scene is not None else ""
        quilted = self.method == "QUILT"  # the operator may be gone when the job ends

        def done(result: dict) -> str:
            s = getattr(bpy.data.scenes[scene], "tessera")
            try:
                s.style = result["style"]  # offered at once: the list reads the models folder again
            except TypeError:  # a models folder the panel does not search
                return f"New style {result['style']} written to {result['file']}"
            if quilted:
                return f"New style {result['style']} made from the photos: it is the panel's style now"
            return f"New style {result['style']} learned ({result['seconds'] / 60:.1f} min): it is the panel's style now"

        job = jobs.Job("learn", f"learning {name}", done)
        job.kept = f"the run of {name} is kept; New Style from Image with the name {name} continues it"
        try:
            job = jobs.submit(context, job, inputs=[str(p) for p in inputs], name=name, method=self.method.lower(),
                              minutes=self.minutes,
                              steps=self.steps or None, restart=self.restart, replace=self.replace,
                              resume=False if self.restart else "auto", start=self.start or None)
        except client.WorkerError as e:
            return self.fail(e)
        return self.finish(job)


def draw_image_menu(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    """Image Editor › Image: both operators on the image shown."""
    img = getattr(context.space_data, "image", None)
    layout = self.layout
    assert layout is not None
    layout.separator()
    if img is None:
        layout.operator(TESSERA_OT_material_from_image.bl_idname, text="Tessera: Material from Image…")
        layout.operator(TESSERA_OT_style_from_image.bl_idname, text="Tessera: New Style from Image…")
        return
    op = layout.operator(TESSERA_OT_material_from_image.bl_idname, text="Tessera: Material from Image")
    op.image = img.name  # type: ignore[attr-defined]
    op = layout.operator(TESSERA_OT_style_from_image.bl_idname, text="Tessera: New Style from Image…")
    op.image = img.name  # type: ignore[attr-defined]


CLASSES = (TESSERA_OT_material_from_image, TESSERA_OT_style_from_image)


def register() -> None:
    bpy.types.IMAGE_MT_image.append(draw_image_menu)


def unregister() -> None:
    bpy.types.IMAGE_MT_image.remove(draw_image_menu)
