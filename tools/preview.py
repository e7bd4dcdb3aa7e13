"""Render a preview in real Blender (Cycles, CPU): a sphere and a plane carrying generated PBR materials
(albedo, normal, height, roughness, AO; the subdivided sphere is truly displaced, the plane bump-mapped).

    python tools/preview.py --out docs/preview.png [--width 960 --height 540 --samples 64]

Builds the extension, installs it into a throwaway Blender user folder, presses Generate through the
add-on's own operators, and renders. `render(bpy, ...)` is also called by the tests at a tiny size.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDON = "bl_ext.user_default.tessera"


def install(bpy, zip_path: Path) -> None:  # noqa: ANN001
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    if ADDON not in bpy.context.preferences.addons:
        raise SystemExit(f"error: {zip_path} installed but the add-on did not enable")


def _generate(bpy, obj, style: str, seed: int, size: str, tiling: float) -> None:  # noqa: ANN001
    bpy.context.view_layer.objects.active = obj
    s = bpy.context.scene.tessera
    s.style, s.seed, s.size, s.tiling = style, seed, size, tiling
    s.maps = {"albedo", "normal", "height", "roughness", "ao"}
    s.displacement = 0.025
    bpy.ops.tessera.generate()


def render(bpy, out: Path, width: int = 960, height: int = 540, samples: int = 64,  # noqa: ANN001
           texture: str = "1024") -> Path:
    """Build the scene in the current file and render it to `out` (PNG)."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    bpy.ops.mesh.primitive_uv_sphere_add(segments=64, ring_count=32, radius=1.0, location=(0, 0, 1.0))
    sphere = bpy.context.active_object
    bpy.ops.object.shade_smooth()
    sub = sphere.modifiers.new("Subdivision", "SUBSURF")  # geometry for true displacement
    sub.levels, sub.render_levels = 1, 3
    bpy.ops.mesh.primitive_plane_add(size=8.0, location=(0, 0, 0))
    plane = bpy.context.active_object
    _generate(bpy, sphere, "rock", 7, texture, 2.0)
    _generate(bpy, plane, "grass", 3, texture, 4.0)

    scene = bpy.context.scene
    cam_data = bpy.data.cameras.new("Camera")
    cam = bpy.data.objects.new("Camera", cam_data)
    scene.collection.objects.link(cam)
    cam.location = (0.0, -5.2, 2.6)
    cam.rotation_euler = (math.radians(72), 0.0, 0.0)
    scene.camera = cam
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", type="SUN"))
    sun.data.energy = 3.5
    sun.rotation_euler = (math.radians(50), math.radians(10), math.radians(35))
    scene.collection.objects.link(sun)
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    use_nodes = world.bl_rna.properties.get("use_nodes")
    if use_nodes is not None and not getattr(use_nodes, "is_deprecated", False):  # Blender 5.0: always on, deprecated
        world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.45, 0.5, 0.6, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.6

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = samples >= 16
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")  # rename into place: never a half-written preview
    scene.render.filepath = str(tmp)
    bpy.ops.render.render(write_still=True)
    os.replace(tmp, out)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description="Render a Tessera preview in Blender (Cycles, CPU).")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "preview.png")
    p.add_argument("--width", type=int, default=960)
    p.add_argument("--height", type=int, default=540)
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--texture", default="1024", choices=["512", "1024", "2048", "4096"])
    args = p.parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else None)
    sys.path.insert(0, str(ROOT / "tools"))
    from extension import build_here

    with tempfile.TemporaryDirectory(prefix="tessera-preview-") as tmp:
        zip_path = build_here(Path(tmp) / "dist")
        os.environ["BLENDER_USER_RESOURCES"] = str(Path(tmp) / "user")  # before bpy loads: a throwaway profile
        import bpy

        install(bpy, zip_path)
        bpy.context.preferences.addons[ADDON].preferences.output_dir = str(Path(tmp) / "textures")
        out = render(bpy, args.out, args.width, args.height, args.samples, args.texture)
        bpy.ops.preferences.addon_disable(module=ADDON)  # stops the worker
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
