"""`scene.tessera`: every setting of the panel, saved with the .blend file."""

from __future__ import annotations

from typing import cast

import bpy

from . import styles

SIZES = ("512", "1024", "2048", "4096")


def settings(context: bpy.types.Context) -> TesseraSettings:
    """The scene's settings (`scene.tessera`, registered at run time, hence unknown to type checkers)."""
    return cast(TesseraSettings, getattr(context.scene, "tessera"))


def _batch_items(self: bpy.types.PropertyGroup, context: bpy.types.Context) -> list[tuple[str, str, str, int]]:
    # ENUM_FLAG values are bit flags; Blender reads the items from Python memory, so _BATCH keeps them alive
    _BATCH[:] = [(s, s.title(), f"Bake {s}", 1 << i) for i, s in enumerate(styles.names(context)[:32])]
    return _BATCH


_BATCH: list[tuple[str, str, str, int]] = []


def _preview_tiling(self: TesseraSettings, context: bpy.types.Context) -> None:
    from .material import preview_tiling

    obj = context.active_object
    if obj is not None and obj.active_material is not None:
        preview_tiling(obj.active_material, self.preview_tiling)


class TesseraSettings(bpy.types.PropertyGroup):
    style: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Style", description="What the texture shows", items=styles.enum_items)
    seed: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Seed", description="Each seed gives a different texture of the style", default=0, min=0)
    size: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Size", description="Side of the texture in pixels",
        items=[(s, s, f"{s} × {s} pixels") for s in SIZES], default="1024")
    maps: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Maps", description="Which maps to make and wire into the material",
        items=[("albedo", "Albedo", "Base colour (sRGB)"),
               ("normal", "Normal", "Normal map (OpenGL), through a Normal Map node"),
               ("height", "Height", "Height (16-bit), through a Displacement node"),
               ("roughness", "Roughness", "Roughness, into the BSDF's Roughness"),
               ("ao", "AO", "Ambient occlusion, multiplied into the base colour")],
        options={"ENUM_FLAG"}, default={"albedo", "normal", "height", "roughness", "ao"})
    normal_strength: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Normal Strength", description="Strength of the Normal Map node of a new material",
        default=1.0, min=0.0, soft_max=4.0)
    displacement: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Displacement", description="Scale of the Displacement node of a new material (scene units)",
        default=0.05, min=0.0, soft_max=1.0, subtype="DISTANCE")
    preview_tiling: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Preview 2×2 Tiling", description="Show the active Tessera material repeated twice as often, "
        "to check that it tiles", default=False, update=_preview_tiling)
    tiling: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Tiling", description="Repeats per UV unit for a new material (then the Tiling node in it)",
        default=1.0, min=0.01, soft_max=16.0)
    new_slot: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Add as New Slot", description="Add the material in a new slot instead of the active one",
        default=False)
    pack: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Pack into .blend", description="Pack images into the .blend file instead of linking the saved PNG",
        default=False)
    mark_asset: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Mark as Asset", description="Mark the material as an asset for the Asset Browser: catalog "
        "Tessera › style, tags for style, seed and size, the training data's licence and a preview (the "
        "catalog is written beside the .blend once it is saved)", default=False)
    batch_styles: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Styles", description="Styles to bake (none selected: the current style)",
        items=_batch_items, options={"ENUM_FLAG"})
    batch_count: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Seeds", description="How many seeds per style, counting up from Seed", default=8, min=1, max=10000)
    batch_replace: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Replace", description="Replace the textures of these styles and seeds that the batch folder "
        "holds at another size (otherwise such a bake is refused)", default=False)
    batch_assets: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Asset Library", description="Also write the batch folder as an asset library: "
        "tessera_library.blend with a material asset per texture set (catalog Tessera › style, tags, "
        "licence, preview), added to Preferences › File Paths › Asset Libraries", default=True)
