"""The "Tessera" sidebar tab in the 3D View, the Shader Editor and the Image Editor. Draw only."""

from __future__ import annotations

import bpy

from . import jobs, styles
from .props import settings


def draw_main(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    s = settings(context)
    if styles.have_thumbnails():
        layout.template_icon_view(s, "style", show_labels=True, scale=5.0, scale_popup=4.0)
    layout.prop(s, "style")
    row = layout.row(align=True)
    row.prop(s, "seed")
    row.operator("tessera.randomize_seed", text="", icon="FILE_REFRESH")
    layout.prop(s, "size", expand=True)
    layout.prop(s, "maps")
    col = layout.column(heading="Material")
    col.prop(s, "normal_strength")
    col.prop(s, "displacement")
    col.prop(s, "tiling")
    col.prop(s, "preview_tiling")
    col.prop(s, "new_slot")
    col.prop(s, "pack")
    col.prop(s, "mark_asset")

    job = jobs.running()
    if job is not None:
        c = jobs.STATE.client
        starting = c is not None and c.ready is None
        layout.progress(factor=job.fraction, type="BAR",
                        text=f"{job.label}: starting worker…" if starting else f"{job.label}: {job.status}")
        layout.operator("tessera.cancel", icon="CANCEL")
    else:
        layout.operator("tessera.generate", icon="TEXTURE")
        row = layout.row(align=True)
        row.operator("tessera.material_from_image", text="Material from Image…", icon="IMAGE_DATA")
        row.operator("tessera.style_from_image", text="New Style…", icon="BRUSH_DATA")
    if styles.errors:
        for line in styles.errors:
            layout.label(text=line, icon="ERROR")
    if jobs.STATE.message is not None:
        level, text = jobs.STATE.message
        layout.label(text=text, icon="INFO" if level == "INFO" else "ERROR")


def draw_batch(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    s = settings(context)
    layout.label(text="Styles (none: the current one)")
    layout.prop(s, "batch_styles")
    layout.prop(s, "batch_count")
    layout.prop(s, "batch_replace")
    layout.prop(s, "batch_assets")
    layout.operator("tessera.batch_bake", icon="RENDER_STILL")


def _panels(space: str, suffix: str, poll=None) -> list[type]:  # noqa: ANN001
    main = type(f"TESSERA_PT_main_{suffix}", (bpy.types.Panel,), {
        "bl_label": "Tessera", "bl_space_type": space, "bl_region_type": "UI", "bl_category": "Tessera",
        "draw": lambda self, context: draw_main(self.layout, context),
    })
    batch = type(f"TESSERA_PT_batch_{suffix}", (bpy.types.Panel,), {
        "bl_label": "Batch Bake", "bl_space_type": space, "bl_region_type": "UI", "bl_category": "Tessera",
        "bl_parent_id": main.__name__, "bl_options": {"DEFAULT_CLOSED"},
        "draw": lambda self, context: draw_batch(self.layout, context),
    })
    if poll is not None:
        main.poll = batch.poll = classmethod(poll)  # type: ignore[attr-defined]
    return [main, batch]


def _shader_editor(cls: type, context: bpy.types.Context) -> bool:
    return getattr(context.space_data, "tree_type", "") == "ShaderNodeTree"


PANELS = (*_panels("VIEW_3D", "view3d"), *_panels("NODE_EDITOR", "node", _shader_editor),
          *_panels("IMAGE_EDITOR", "image"))
