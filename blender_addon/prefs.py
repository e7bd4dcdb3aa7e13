"""Add-on preferences: device, the worker's Python, models and output folders."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import bpy

# The extension's package ("bl_ext.<repo>.tessera"): this module lives one level below it.
ADDON_ID = __package__.rpartition(".")[0]
ROOT = Path(__file__).resolve().parent.parent  # the extension's folder: holds core/ and its weights


def get(context: bpy.types.Context | None = None) -> TesseraPreferences:
    addons = getattr((context or bpy.context).preferences, "addons")
    return cast(TesseraPreferences, addons[ADDON_ID].preferences)


def user_dir(*parts: str) -> Path:
    """A folder for Tessera's user data (outputs, previews, logs), outside the extension's own folder."""
    path = Path(bpy.utils.extension_path_user(ADDON_ID, create=True)).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def absolute(chosen: str, what: str) -> Path:
    """A folder from the preferences as an absolute path: '//' is the saved .blend's folder, as Blender
    reads it. Raises ValueError, saying what to do, for '//' in a file never saved and for other relative
    paths: the worker runs in the extension's install folder, which an update deletes, and Blender's
    working folder is wherever it was started."""
    if chosen.startswith("//") and not bpy.data.filepath:
        raise ValueError(f"{what} {chosen} is relative to the .blend file, which has not been saved: save the "
                         f".blend file first, or choose an absolute folder in Preferences › Tessera")
    path = Path(bpy.path.abspath(chosen)).expanduser()
    if not path.is_absolute():
        raise ValueError(f"{what} {chosen} is a relative path: choose an absolute folder in Preferences › Tessera "
                         f"(or //folder for one beside the saved .blend file)")
    return path


def output_dir(context: bpy.types.Context | None = None) -> Path:
    """The output folder (default: the extension's user folder). Raises ValueError as `absolute`."""
    chosen = get(context).output_dir
    return absolute(chosen, "Output folder") if chosen else user_dir("textures")


def models_dir(context: bpy.types.Context | None = None) -> Path | None:
    """The models folder, or None for the default search path. Raises ValueError as `absolute`."""
    chosen = get(context).models_dir
    return absolute(chosen, "Models folder") if chosen else None


class TesseraPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    device: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Device",
        items=[("auto", "Auto", "CUDA when available, else Metal, else the CPU"),
               ("cpu", "CPU", "Always the CPU"),
               ("cuda", "CUDA", "An NVIDIA GPU (fails when PyTorch sees none)")],
        default="auto",
    )
    python: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Worker Python",
        description="Python interpreter with PyTorch for the worker. Empty: Blender's own Python when "
                    "it has torch, else the .venv of the Tessera checkout this extension runs from",
        subtype="FILE_PATH",
    )
    models_dir: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Models Folder",
        description="Folder of Tessera .safetensors weights. Empty: the shipped weights and your user models "
                    "folder. // is the saved .blend file's folder",
        subtype="DIR_PATH", options={"PATH_SUPPORTS_BLEND_RELATIVE"},
    )
    output_dir: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Output Folder",
        description="Where textures and batches are saved. Empty: the extension's user folder. // is the saved "
                    ".blend file's folder (save the file first)",
        subtype="DIR_PATH", options={"PATH_SUPPORTS_BLEND_RELATIVE"},
    )

    def draw(self, context: bpy.types.Context) -> None:
        from . import client

        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "device")
        layout.prop(self, "python")
        try:
            found = client.find_python(self.python)
            layout.label(text=f"Worker: {found}", icon="CHECKMARK")
        except client.WorkerError as e:
            layout.label(text=str(e), icon="ERROR")
        layout.prop(self, "models_dir")
        layout.prop(self, "output_dir")
        default = Path(bpy.utils.extension_path_user(ADDON_ID, create=False)) / "textures"
        layout.label(text=f"Default output: {default}", icon="FILE_FOLDER")
