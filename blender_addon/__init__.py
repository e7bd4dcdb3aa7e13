"""Tessera's Blender UI: a sidebar tab, operators and preferences. Torch never loads in Blender;
textures are made by `python -m core worker` in a separate process (see client.py)."""

from __future__ import annotations

import bpy

from . import assets, from_image, jobs, ops, prefs, props, styles, ui

CLASSES = (
    prefs.TesseraPreferences,
    props.TesseraSettings,
    ops.TESSERA_OT_generate,
    ops.TESSERA_OT_batch_bake,
    ops.TESSERA_OT_cancel,
    ops.TESSERA_OT_randomize_seed,
    ops.TESSERA_OT_report,
    *from_image.CLASSES,
    *ui.PANELS,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    settings = bpy.props.PointerProperty(type=props.TesseraSettings)  # type: ignore[func-returns-value]
    bpy.types.Scene.tessera = settings  # type: ignore[attr-defined]
    styles.register()
    from_image.register()
    assets.register()


def unregister() -> None:
    jobs.shutdown()
    assets.unregister()
    from_image.unregister()
    styles.unregister()
    del bpy.types.Scene.tessera  # type: ignore[attr-defined]
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
