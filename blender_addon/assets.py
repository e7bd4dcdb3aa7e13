"""Tessera materials in Blender's Asset Browser: marked assets with a catalog per style, tags, the licence of
the weights' training data and a preview; and a baked batch as an asset library of its own.

Blender keeps an asset library's catalogs in the text file `blender_assets.cats.txt` at the library's root
(for a .blend outside every library: beside the .blend). After comment lines and `VERSION 1`, each line is
`UUID:catalog/path:simple name`; an asset names its catalog by the UUID (`AssetMetaData.catalog_id`).
Source: Blender manual, "Asset Catalogs" (files section), and `blender_assets.cats.txt` as Blender writes it.
Tessera's catalog IDs are UUID-5 of the catalog path, so a style's catalog has the same ID in every file,
every library and every run, and adding it twice is a no-op.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import bpy
import numpy as np

from . import material

CATALOG_FILE = "blender_assets.cats.txt"
LIBRARY_FILE = "tessera_library.blend"  # what Batch Bake writes beside its PNGs when asked for assets
LIBRARY_NAME = "Tessera"                 # the asset library Preferences get for a batch folder
ROOT = "Tessera"                         # the catalog every Tessera asset lives under
PREVIEW_SIDE = 128                       # pixels: the size of Blender's own large previews
_NAMESPACE = uuid.UUID("5d0b6c56-0f3e-4a55-9a0e-7e55e2a7c0de")  # Tessera's, for uuid5 catalog IDs
CATALOG = "tessera_catalog"  # custom property: the catalog path of a Tessera asset (for `save_catalogs`)
_TAGS = "tessera_tags"  # custom property: the tags Tessera added, replaced when the material is remade

_HEADER = ("# This is an Asset Catalog Definition file for Blender.\n"
           "#\n"
           "# Empty lines and lines starting with `#` will be ignored.\n"
           "# The first non-ignored line should be the version indicator.\n"
           '# Other lines are of the format "UUID:catalog/path/for/assets:simple catalog name"\n'
           "\n"
           "VERSION 1\n"
           "\n")


def catalog_path(style: str) -> str:
    """"Tessera/<style>", with the characters the catalog file and its paths reserve (: / \\) as '-'."""
    name = "".join("-" if c in ':/\\' else c for c in style).strip()
    return f"{ROOT}/{name or '-'}"


def catalog_id(path: str) -> str:
    """The UUID (text) of the catalog at `path`: the same in every file and run."""
    return str(uuid.uuid5(_NAMESPACE, path))


def _libraries() -> bpy.types.AssetLibraryCollection:
    """Preferences › File Paths › Asset Libraries."""
    return getattr(bpy.context.preferences, "filepaths").asset_libraries


def catalog_folder() -> Path | None:
    """Where the current .blend's catalogs live: the root of the asset library holding the file, else the
    file's folder; None for an unsaved file (Blender has nowhere to read them from yet)."""
    if not bpy.data.filepath:
        return None
    blend = Path(bpy.data.filepath).resolve()
    for lib in _libraries():
        root = Path(bpy.path.abspath(lib.path)).resolve()
        if root in blend.parents:
            return root
    return blend.parent


def write_catalogs(folder: Path, paths: Iterable[str]) -> Path:
    """Add the "Tessera" catalog and those at `paths` (`catalog_path`) to `folder`'s catalog file, creating
    it if needed. Lines
    already there (other catalogs, user edits) are kept as they are; the file is replaced atomically.
    → its path. Raises OSError when it cannot be written."""
    path = folder / CATALOG_FILE
    text = path.read_text(encoding="utf-8") if path.is_file() else _HEADER
    known = {line.split(":", 1)[0].strip() for line in text.splitlines() if ":" in line and not line.startswith("#")}
    new = [f"{catalog_id(p)}:{p}:{p.replace('/', '-')}\n"
           for p in dict.fromkeys([ROOT, *paths]) if catalog_id(p) not in known]
    if new:
        tmp = path.with_name(f".{CATALOG_FILE}.{os.getpid()}.tmp")
        tmp.write_text(text + ("" if text.endswith("\n") else "\n") + "".join(new), encoding="utf-8")
        os.replace(tmp, path)
    return path


def licence_text(training_data: dict[str, str]) -> str:
    """The asset's licence field: the licences of the images Tessera's weights learned from, per source."""
    if not training_data:
        return "Made by Tessera; the weights name no training data"
    return "Made by Tessera from weights trained on: " + "; ".join(f"{k} ({v})" for k, v in training_data.items())


def set_preview(datablock: bpy.types.ID, image: bpy.types.Image) -> None:
    """Give `datablock` a PREVIEW_SIDE² preview: `image` scaled down (a copy; `image` is left as it is)."""
    thumb = image.copy()
    try:
        if tuple(thumb.size) != (PREVIEW_SIDE, PREVIEW_SIDE):
            thumb.scale(PREVIEW_SIDE, PREVIEW_SIDE)
        pixels = np.empty(PREVIEW_SIDE * PREVIEW_SIDE * 4, np.float32)
        thumb.pixels.foreach_get(pixels)  # type: ignore[attr-defined]
    finally:
        bpy.data.images.remove(thumb)
    datablock.preview_ensure()
    preview = datablock.preview
    assert preview is not None  # preview_ensure made it
    preview.image_size = (PREVIEW_SIDE, PREVIEW_SIDE)
    preview.image_pixels_float.foreach_set(pixels)  # type: ignore[attr-defined]


def mark(mat: bpy.types.Material, style: str, seed: int | None, training_data: dict[str, str] | None,
         side: int, shown: bpy.types.Image | None) -> None:
    """Mark `mat` as an asset: catalog "Tessera/<style>", tags (style, "seed N", "`side` px"), author, a
    description, the licence of the weights' training data and a preview from `shown` (its albedo, or a
    picture of it). `seed` and `training_data` None: a material made from the user's photo (the licence
    is left to them). Marking again (a regenerated material) replaces what Tessera set and keeps what the
    user added."""
    if mat.asset_data is None:
        mat.asset_mark()
    data = mat.asset_data
    assert data is not None  # asset_mark made it
    mat[CATALOG] = catalog_path(style)
    data.catalog_id = catalog_id(mat[CATALOG])
    data.author = "Tessera"
    what = f"seed {seed}, " if seed is not None else ""
    data.description = f"Seamless {style} material ({what}{side}×{side} px), made by Tessera"
    if training_data is not None:
        data.license = licence_text(training_data)
    old = set(str(mat.get(_TAGS, "")).split("\n"))
    for old_tag in [t for t in data.tags if t.name in old]:
        data.tags.remove(old_tag)
    tags = [style, *([f"seed {seed}"] if seed is not None else []), f"{side} px"]
    have = {t.name for t in data.tags}
    for name in tags:
        if name not in have:
            data.tags.new(name)
    mat[_TAGS] = "\n".join(tags)
    if shown is not None:
        set_preview(mat, shown)


def save_catalogs() -> Path | None:
    """Write the catalogs of the open file's Tessera assets where Blender reads them (`catalog_folder`).
    → the catalog file, or None for an unsaved file or one without Tessera assets. Raises OSError."""
    folder = catalog_folder()
    paths = sorted({str(m[CATALOG]) for m in bpy.data.materials if m.asset_data is not None and m.get(CATALOG)})
    return write_catalogs(folder, paths) if folder is not None and paths else None


@bpy.app.handlers.persistent
def _after_save(_filepath: str, *_args: object) -> None:
    try:
        save_catalogs()
    except OSError as e:  # the .blend was saved; only the catalog file failed
        print(f"Tessera: could not write the asset catalogs ({e})")


def register() -> None:
    bpy.app.handlers.save_post.append(_after_save)


def unregister() -> None:
    if _after_save in bpy.app.handlers.save_post:
        bpy.app.handlers.save_post.remove(_after_save)


def register_library(folder: Path) -> str:
    """The asset library in Preferences for `folder`: an existing one that points there, else a new one named
    "Tessera" (Blender makes the name unique). → its name."""
    libraries = _libraries()
    folder = folder.resolve()
    for lib in libraries:
        if Path(bpy.path.abspath(lib.path)).resolve() == folder:
            return lib.name
    return libraries.new(name=LIBRARY_NAME, directory=str(folder)).name


def write_library(folder: Path, images: list[dict], training_data: dict[str, str],
                  normal_strength: float, displacement: float) -> tuple[Path, int]:
    """`folder`/tessera_library.blend: a material asset "Tessera <style> <seed>" per texture set of a batch
    manifest's `images` ({"style", "seed", "size", "files": {map: file name in folder}, optional "preview":
    a small picture of the albedo, else the albedo is read}), built as Generate builds them, with its images linked by relative paths; plus the catalogs beside it. The open file is
    left as it was: the materials and images are made, written and removed again (a material of the same
    name in the open file is moved aside meanwhile). The library is written whole and then renamed into
    place. → (its path, materials). Raises OSError when it cannot be written."""
    made_materials: list[bpy.types.Material] = []
    made_images: list[bpy.types.Image] = []
    aside: list[tuple[bpy.types.Material, str]] = []
    tmp = folder / f".{LIBRARY_FILE}.{os.getpid()}.tmp"
    try:
        for entry in images:
            name = f"Tessera {entry['style']} {entry['seed']}"
            other = bpy.data.materials.get(name)
            if other is not None:
                aside.append((other, name))
                other.name = f"{name} (kept aside)"
            found = {m: folder / f for m, f in entry["files"].items() if m in material.NODES}
            maps = {}
            for m, path in found.items():
                img = bpy.data.images.load(str(path), check_existing=False)
                made_images.append(img)
                if img.colorspace_settings is not None:
                    img.colorspace_settings.name = material.colorspace(m)  # type: ignore[assignment]
                maps[m] = img
            mat = bpy.data.materials.new(name)
            made_materials.append(mat)
            mat.name = name  # the name is free now (the open file's was moved aside)
            material.build_material(mat, [m for m in material.NODES if m in maps], 1.0, normal_strength,
                                    displacement)
            assert mat.node_tree is not None
            for m, img in maps.items():
                mat.node_tree.nodes[material.NODES[m]].image = img  # type: ignore[attr-defined]
            material.set_displacement_method(mat, None)
            shown = maps.get("albedo")
            if entry.get("preview") and (folder / entry["preview"]).is_file():  # the worker's small picture
                shown = bpy.data.images.load(str(folder / entry["preview"]), check_existing=False)
                made_images.append(shown)
            mark(mat, entry["style"], entry["seed"], training_data, int(entry["size"]), shown)
            if shown is not None and shown not in maps.values():
                bpy.data.images.remove(shown)  # a preview image is not part of the material
                made_images.remove(shown)
        bpy.data.libraries.write(str(tmp), set(made_materials), path_remap="RELATIVE_ALL", fake_user=True)
        os.replace(tmp, folder / LIBRARY_FILE)
    finally:
        tmp.unlink(missing_ok=True)
        for mat in made_materials:
            bpy.data.materials.remove(mat)
        for img in made_images:
            bpy.data.images.remove(img)
        for other, name in aside:
            other.name = name
    write_catalogs(folder, sorted({catalog_path(e["style"]) for e in images}))
    return folder / LIBRARY_FILE, len(made_materials)
