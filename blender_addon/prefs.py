"""Add-on preferences: device, the worker's Python, models and output folders."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import bpy

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import PropertyFlagItems

# The extension's package ("bl_ext.<repo>.tessera"): this module lives one level below it.
ADDON_ID = __package__.rpartition(".")[0]
ROOT = Path(__file__).resolve().parent.parent  # the extension's folder: holds core/ and its weights
# the folder settings take '//' (beside the saved .blend; `absolute` resolves it): Blender 4.5 and later have an
# option saying so, 4.2 has not (and refuses it)
BLEND_RELATIVE: set[PropertyFlagItems] = (
    {"PATH_SUPPORTS_BLEND_RELATIVE"} if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties
    else set())


def get(context: bpy.types.Context | None = None) -> TesseraPreferences:
    addons = getattr((context or bpy.context).preferences, "addons")
    return cast(TesseraPreferences, addons[ADDON_ID].preferences)


def user_dir(*parts: str) -> Path:
    """A folder for Tessera's user data (outputs, previews, logs), outside the extension's own folder."""
    path = Path(bpy.utils.extension_path_user(ADDON_ID, create=True)).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def wheel_paths() -> list[str]:
    """The folder Blender installs extensions' wheels into (`extensions/.local/lib/python3.x/site-packages`,
    on Blender's `sys.path` only), for the worker's PYTHONPATH when it runs on Blender's own Python; none
    when it is not there (an extension run from a folder, without wheels: the worker then says what is missing)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    folder = Path(bpy.utils.user_resource("EXTENSIONS")) / ".local" / "lib" / version / "site-packages"
    return [str(folder)] if folder.is_dir() else []


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


def default_output_dir() -> Path:
    """Where textures go when no output folder is chosen: Tessera in the user's Documents folder (their home
    folder when there is none), visible and kept when the extension is removed (Blender deletes the
    extension's own user folder with it)."""
    documents = Path.home() / "Documents"
    return (documents if documents.is_dir() else Path.home()) / "Tessera"


def not_a_folder(path: Path) -> str:
    """Why `path`, which is not a folder, cannot be used as one: "is a file, not a folder" or "does not exist"."""
    return "is a file, not a folder" if path.exists() else "does not exist"


def output_dir(context: bpy.types.Context | None = None) -> Path:
    """The output folder (default: `default_output_dir`). Raises ValueError as `absolute`."""
    chosen = get(context).output_dir
    return absolute(chosen, "Output folder") if chosen else default_output_dir()


def models_dir(context: bpy.types.Context | None = None) -> Path | None:
    """The models folder, or None for the default search path. Raises ValueError as `absolute`."""
    chosen = get(context).models_dir
    return absolute(chosen, "Models folder") if chosen else None


# every device a worker may offer: identifier → (name, description, stored number); the number keeps a choice
# when the list changes. PyTorch offers cpu, cuda, mps; ONNX Runtime (Blender's own Python) cpu, cuda,
# directml, coreml, as its install has them.
DEVICES = {
    "auto": ("Auto", "The best the worker has: CUDA, else DirectML or Metal (PyTorch), else the CPU", 0),
    "cpu": ("CPU", "Always the CPU", 1),
    "cuda": ("CUDA", "An NVIDIA GPU", 2),
    "mps": ("Metal", "An Apple GPU (a Worker Python with PyTorch)", 3),
    "directml": ("DirectML", "Any DirectX 12 GPU on Windows: AMD, Intel, NVIDIA (ONNX Runtime)", 4),
    "coreml": ("CoreML", "Apple's Neural Engine and GPU (ONNX Runtime; the CPU runs what CoreML cannot)", 5),
}


@functools.lru_cache(maxsize=16)  # also keeps the strings alive, as Blender needs for dynamic enum items
def _device_items(offered: tuple[str, ...] | None) -> list[tuple[str, str, str, int]]:
    ids = DEVICES if offered is None else ["auto", "cpu", *(d for d in offered if d in DEVICES)]
    return [(d, DEVICES[d][0], DEVICES[d][1], DEVICES[d][2]) for d in dict.fromkeys(ids)]


def stored_value(owner: Any, name: str) -> Any:
    """The raw stored value of a bpy.props property of `owner` (an enum's number), None when never set.
    Blender 5.0 keeps these apart from custom properties (`bl_system_properties_get`) and add-on preferences
    no longer take `owner.get(name)`; before 5.0 that is the way."""
    system = getattr(owner, "bl_system_properties_get", None)
    store = system() if system is not None else owner
    return store.get(name) if store is not None else None


def device_items(self: Any, context: bpy.types.Context | None) -> list[tuple[str, str, str, int]]:
    """What the running worker's runtime offers (all devices before a worker has started), and the choice
    stored now, so it never shows blank."""
    from . import jobs

    offered = jobs.offered_devices()
    stored = stored_value(self, "device") if self is not None else None
    if offered is not None and stored is not None:
        name = next((d for d, v in DEVICES.items() if v[2] == stored), None)
        if name is not None and name not in offered:
            offered = (*offered, name)
    return _device_items(offered)


class TesseraPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    device: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Device",
        description="Where the models run: what the worker's runtime offers on this computer (all choices "
                    "until a worker has started)",
        items=device_items,
        default=0,
    )
    python: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Worker Python",
        description="Empty: Blender's own Python, with the ONNX Runtime bundled in this extension. Or a Python "
                    "interpreter with PyTorch (CUDA, Metal, training)",
        subtype="FILE_PATH",
    )
    models_dir: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Models Folder",
        description="Folder of Tessera .safetensors weights. Empty: the shipped weights and your user models "
                    "folder. // is the saved .blend file's folder",
        subtype="DIR_PATH", options=BLEND_RELATIVE,
    )
    output_dir: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Output Folder",
        description="Where textures and batches are saved. Empty: Documents/Tessera in your home folder. // is "
                    "the saved .blend file's folder (save the file first)",
        subtype="DIR_PATH", options=BLEND_RELATIVE,
    )

    def draw(self, context: bpy.types.Context) -> None:
        from . import client, jobs

        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "device")
        layout.prop(self, "python")
        try:
            found = client.find_python(self.python)
            layout.label(text=f"Worker: {found}" + ("" if self.python else " (Blender's, bundled ONNX Runtime)"),
                         icon="CHECKMARK")
        except client.WorkerError as e:
            layout.label(text=str(e), icon="ERROR")
        c = jobs.STATE.client
        if c is not None and c.ready is not None:
            offered = ", ".join(DEVICES[d][0] for d in c.ready.get("devices", ()) if d in DEVICES)
            layout.label(text=f"Running: {c.ready.get('runtime', '?')} on {c.ready.get('device')}; offers {offered}",
                         icon="INFO")
        layout.prop(self, "models_dir")
        layout.prop(self, "output_dir")
        layout.label(text=f"Default output: {default_output_dir()}", icon="FILE_FOLDER")
