"""Images and materials from generated files. Regenerating updates datablocks in place."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import bpy

TAG = "tessera"  # custom property marking datablocks Tessera made (and may replace)
NODES = {m: f"Tessera {m.title() if m != 'ao' else 'AO'}" for m in ("albedo", "normal", "height", "roughness", "ao")}
TILING_NODE = "Tessera Tiling"
AO_MIX_NODE = "Tessera AO Mix"  # its Factor is how much AO darkens the base colour
NORMAL_MAP_NODE = "Tessera Normal Map"  # tangent space: wired into the BSDF only on a mesh with a UV map
PREVIEW = "tessera_preview"  # custom property: the Tiling value is doubled for the 2×2 preview


def colorspace(map_name: str) -> str:
    return "sRGB" if map_name == "albedo" else "Non-Color"


def load_image(name: str, path: Path, pack: bool, space: str = "sRGB") -> bpy.types.Image:
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
        img.colorspace_settings.name = space  # type: ignore[assignment]
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


def _socket(sockets: Any, identifier: str) -> Any:
    """A socket by identifier: the Mix node has several sockets of each name, one per data type."""
    return next(s for s in sockets if s.identifier == identifier)


def _nodes_always_on(mat: bpy.types.Material) -> bool:
    """Whether materials always have their node tree: Blender 5.0 makes one with each material and deprecates
    use_nodes (to be removed in 6.0); before that a new material has none until use_nodes is set."""
    prop = mat.bl_rna.properties.get("use_nodes")
    return prop is None or bool(getattr(prop, "is_deprecated", False))


def build_material(mat: bpy.types.Material, maps: list[str], tiling: float, normal_strength: float,
                   displacement: float) -> None:
    """(Re)build the node tree: Texture Coordinate (UV, or Object: `fit_coordinates`) → Mapping (scale = one
    Tiling value) → an Image Texture per map → Principled BSDF: albedo (× AO through a Multiply mix) into Base
    Color, roughness into Roughness, normal through a Normal Map node, height through a Displacement node."""
    mat[TAG] = True
    if not _nodes_always_on(mat):
        mat.use_nodes = True
    tree = mat.node_tree
    assert tree is not None  # use_nodes made it
    nodes, links = tree.nodes, tree.links
    nodes.clear()
    out = _node(nodes, "ShaderNodeOutputMaterial", "Material Output", (700, 0))
    bsdf = _node(nodes, "ShaderNodeBsdfPrincipled", "Principled BSDF", (400, 0))
    mapping = _node(nodes, "ShaderNodeMapping", "Mapping", (-450, 0))
    coords = _node(nodes, "ShaderNodeTexCoord", "Texture Coordinate", (-700, 0))
    knob = _node(nodes, "ShaderNodeValue", TILING_NODE, (-700, -250))
    knob.outputs[0].default_value = tiling
    links.new(coords.outputs["UV"], mapping.inputs["Vector"])
    links.new(knob.outputs[0], mapping.inputs["Scale"])
    links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    tex = {}
    for i, m in enumerate(maps):
        tex[m] = _node(nodes, "ShaderNodeTexImage", NODES[m], (-150, 300 - 280 * i))
        tex[m].extension = "REPEAT"
        links.new(mapping.outputs["Vector"], tex[m].inputs["Vector"])
    if "albedo" in tex and "ao" in tex:
        mix = _node(nodes, "ShaderNodeMix", AO_MIX_NODE, (150, 250))
        mix.data_type, mix.blend_type = "RGBA", "MULTIPLY"
        mix.inputs["Factor"].default_value = 0.8
        links.new(tex["albedo"].outputs["Color"], _socket(mix.inputs, "A_Color"))
        links.new(tex["ao"].outputs["Color"], _socket(mix.inputs, "B_Color"))
        links.new(_socket(mix.outputs, "Result_Color"), bsdf.inputs["Base Color"])
    elif "albedo" in tex:
        links.new(tex["albedo"].outputs["Color"], bsdf.inputs["Base Color"])
    if "roughness" in tex:
        links.new(tex["roughness"].outputs["Color"], bsdf.inputs["Roughness"])
    if "normal" in tex:
        nmap = _node(nodes, "ShaderNodeNormalMap", NORMAL_MAP_NODE, (150, -250))
        nmap.inputs["Strength"].default_value = normal_strength
        links.new(tex["normal"].outputs["Color"], nmap.inputs["Color"])
        links.new(nmap.outputs["Normal"], bsdf.inputs["Normal"])
    if "height" in tex:
        disp = _node(nodes, "ShaderNodeDisplacement", "Tessera Displacement", (400, -450))
        disp.inputs["Midlevel"].default_value = 0.5
        disp.inputs["Scale"].default_value = displacement
        links.new(tex["height"].outputs["Color"], disp.inputs["Height"])
        links.new(disp.outputs["Displacement"], out.inputs["Displacement"])


def users_of(mat: bpy.types.Material) -> set[str]:
    """The names of the objects that show `mat` in one of their slots."""
    return {o.name for o in bpy.data.objects if any(slot.material == mat for slot in o.material_slots)}


def material_for(style: str, images: dict[str, bpy.types.Image], tiling: float, normal_strength: float = 1.0,
                 displacement: float = 0.05, preview: bool = False,
                 target: bpy.types.Object | None = None) -> bpy.types.Material:
    """The material "Tessera <style>" for `target`, made once and then updated in place: its image nodes get
    the new images (the node tree is rebuilt only when the set of maps changes, keeping the Tiling value).
    A Tessera material that objects other than `target` show is left to them: `target` then gets a new one
    ("Tessera <style>.001", …), so a new seed on one object never changes another. A new material starts
    with the 2×2 preview on when `preview` is (its Tiling value doubled)."""
    name = f"Tessera {style}"
    mine = target.active_material if target is not None else None
    ours = mine is not None and mine.get(TAG) and re.fullmatch(re.escape(name) + r"(\.\d+)?", mine.name)
    mat = mine if ours else bpy.data.materials.get(name)
    if mat is not None and users_of(mat) - ({target.name} if target is not None else set()):
        mat = None  # another object shows it
    if mat is None or not mat.get(TAG):
        mat = bpy.data.materials.new(name)
        mat[PREVIEW] = preview
        tiling *= 2 if preview else 1
    tree = mat.node_tree
    have = [m for m in NODES if tree is not None and NODES[m] in tree.nodes]
    if have != [m for m in NODES if m in images]:
        if tree is not None and TILING_NODE in tree.nodes:
            tiling = tree.nodes[TILING_NODE].outputs[0].default_value  # type: ignore[attr-defined]
        build_material(mat, [m for m in NODES if m in images], tiling, normal_strength, displacement)
    assert mat.node_tree is not None
    for m, img in images.items():
        node = cast(bpy.types.ShaderNodeTexImage, mat.node_tree.nodes[NODES[m]])
        old, node.image = node.image, img
        if old is not None and old != img and old.get(TAG) and old.users == 0:
            bpy.data.images.remove(old)  # a previous seed's image nobody else uses: do not pile them up
    return mat


def preview_tiling(mat: bpy.types.Material, on: bool) -> None:
    """Double the Tiling value (2×2 repeats) while on; undo it when off. Only Tessera materials."""
    tree = mat.node_tree
    if not mat.get(TAG) or tree is None or TILING_NODE not in tree.nodes:
        return
    if bool(mat.get(PREVIEW, False)) != on:
        value = tree.nodes[TILING_NODE].outputs[0]
        value.default_value *= 2.0 if on else 0.5  # type: ignore[attr-defined]
        mat[PREVIEW] = on


def fit_coordinates(mat: bpy.types.Material, obj: bpy.types.Object | None) -> str:
    """Texture coordinates that work on `obj`: its UV map, or, for a mesh without one (where UV is (0, 0)
    everywhere and the texture shows as one flat colour), object coordinates box-projected onto the
    image nodes. Without UVs the normal map is left out too: the Normal Map node's tangent space needs
    a UV map, and without one it tilts the normals wrongly (the height map, if any, still gives bump
    through the Displacement node). → a note for the report ("" when UVs are used)."""
    tree = mat.node_tree
    if not mat.get(TAG) or tree is None or "Texture Coordinate" not in tree.nodes or "Mapping" not in tree.nodes:
        return ""
    mesh = obj.data if obj is not None and obj.type == "MESH" else None
    box = isinstance(mesh, bpy.types.Mesh) and len(mesh.uv_layers) == 0
    coords, mapping = tree.nodes["Texture Coordinate"], tree.nodes["Mapping"]
    tree.links.new(coords.outputs["Object" if box else "UV"], mapping.inputs["Vector"])
    for name in NODES.values():
        node = tree.nodes.get(name)
        if isinstance(node, bpy.types.ShaderNodeTexImage):
            node.projection = "BOX" if box else "FLAT"
            node.projection_blend = 0.2
    nmap, bsdf = tree.nodes.get(NORMAL_MAP_NODE), tree.nodes.get("Principled BSDF")
    if nmap is not None and bsdf is not None:
        for link in list(nmap.outputs["Normal"].links):
            tree.links.remove(link)
        if not box:
            tree.links.new(nmap.outputs["Normal"], bsdf.inputs["Normal"])
    if not (box and obj):
        return ""
    note = f"; {obj.name} has no UV map, so the material projects the maps onto its sides"
    if nmap is not None:
        note += (" and leaves the normal map out (it needs a UV map; the height map still gives bump)"
                 if NODES["height"] in tree.nodes else " and leaves the normal map out (it needs a UV map)")
    return note


def set_displacement_method(mat: bpy.types.Material, obj: bpy.types.Object | None) -> None:
    """True displacement only where there is geometry to move (a Subdivision modifier); bump elsewhere."""
    dense = obj is not None and any(mod.type == "SUBSURF" for mod in obj.modifiers)
    mat.displacement_method = "BOTH" if dense else "BUMP"


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
