"""Images and materials from generated files. Regenerating updates datablocks in place."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import bpy

TAG = "tessera"  # custom property marking datablocks Tessera made (and may replace)
ALBEDO_NODE = "Tessera Albedo"
TILING_NODE = "Tessera Tiling"


def load_image(name: str, path: Path, pack: bool, colorspace: str = "sRGB") -> bpy.types.Image:
    """Load `path` into the image datablock `name`, reusing it if it exists (no .001 pile-up)."""
    img = bpy.data.images.get(name)
    if img is None:
        img = bpy.data.images.load(str(path), check_existing=False)
        img.name = name
    else:
        if img.packed_file is not None:
            img.unpack(method="REMOVE")
        img.source = "FILE"
        img.filepath = str(path)
        img.reload()
    if img.colorspace_settings is not None:  # the stubs know only 'NONE' of the colour spaces
        img.colorspace_settings.name = colorspace  # type: ignore[assignment]
    img[TAG] = True
    if pack:
        img.pack()
    if tuple(img.size) == (0, 0):
        raise RuntimeError(f"Blender could not read {path}")
    return img


def _node(nodes: bpy.types.Nodes, kind: str, name: str, location: tuple[float, float]) -> Any:
    """A new node, named and labelled (typed Any: its sockets depend on `kind`)."""
    node = nodes.new(kind)
    node.name = node.label = name
    node.location = location
    return node


def build_material(name: str, tiling: float) -> bpy.types.Material:
    """Principled BSDF ← Image Texture ← Mapping (scale = one Tiling value) ← Texture Coordinate (UV)."""
    mat = bpy.data.materials.new(name)
    mat[TAG] = True
    mat.use_nodes = True
    tree = mat.node_tree
    assert tree is not None  # use_nodes made it
    nodes, links = tree.nodes, tree.links
    nodes.clear()
    out = _node(nodes, "ShaderNodeOutputMaterial", "Material Output", (600, 0))
    bsdf = _node(nodes, "ShaderNodeBsdfPrincipled", "Principled BSDF", (300, 0))
    tex = _node(nodes, "ShaderNodeTexImage", ALBEDO_NODE, (0, 0))
    tex.extension = "REPEAT"
    mapping = _node(nodes, "ShaderNodeMapping", "Mapping", (-250, 0))
    coords = _node(nodes, "ShaderNodeTexCoord", "Texture Coordinate", (-500, 0))
    knob = _node(nodes, "ShaderNodeValue", TILING_NODE, (-500, -250))
    knob.outputs[0].default_value = tiling
    links.new(coords.outputs["UV"], mapping.inputs["Vector"])
    links.new(knob.outputs[0], mapping.inputs["Scale"])
    links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    return mat


def material_for(style: str, images: dict[str, bpy.types.Image], tiling: float) -> bpy.types.Material:
    """The material "Tessera <style>", made once and then updated: its image nodes get the new images."""
    name = f"Tessera {style}"
    mat = bpy.data.materials.get(name)
    if mat is None or not mat.get(TAG) or not mat.node_tree or ALBEDO_NODE not in mat.node_tree.nodes:
        mat = build_material(name, tiling)
    assert mat.node_tree is not None
    node = cast(bpy.types.ShaderNodeTexImage, mat.node_tree.nodes[ALBEDO_NODE])
    old, node.image = node.image, images["albedo"]
    if old is not None and old != node.image and old.get(TAG) and old.users == 0:
        bpy.data.images.remove(old)  # a previous seed's image nobody else uses: do not pile them up
    return mat


def assign(obj: bpy.types.Object | None, mat: bpy.types.Material, new_slot: bool) -> str:
    """Put `mat` on `obj`: the first slot when it has none, a new slot on request, else the active slot.
    → what happened, for the report."""
    materials = getattr(obj.data, "materials", None) if obj is not None else None
    if obj is None or materials is None:
        return f"material '{mat.name}' created (no active object to assign it to)"
    if obj.active_material == mat:
        return f"'{mat.name}' updated on {obj.name}"
    if not obj.material_slots or new_slot:
        materials.append(mat)
        obj.active_material_index = len(obj.material_slots) - 1
        return f"'{mat.name}' added to {obj.name}"
    replaced = obj.active_material
    obj.active_material = mat
    kept = f" ('{replaced.name}' is still in the file)" if replaced is not None else ""
    return f"'{mat.name}' assigned to {obj.name}{kept}"
