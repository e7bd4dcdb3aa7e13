"""The extension in real Blender (bpy 4.5 LTS as a Python module, headless).

The zip (this platform's, with its wheels) is built with Blender's own tool, installed into a throwaway user
folder with `bpy.ops.extensions.package_install_files`, enabled, and driven through its operators; the worker
is a real `python -m core worker` process. In background mode operators run to completion.
With Worker Python empty the worker runs on `sys.executable`: in real Blender its own Python, here (the bpy
module) the venv's, which has torch, so most tests run the PyTorch path; the bundled path is tested by making
torch unimportable for the worker (test_generate_on_the_bundled_runtime_without_torch).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import extension  # noqa: E402
import preview  # noqa: E402

ADDON = "bl_ext.user_default.tessera"


@pytest.fixture(scope="module")
def zip_path(tmp_path_factory) -> Path:
    """This machine's zip (Linux x64 here), with its bundled wheels."""
    return extension.build_here(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def bpy(zip_path, tmp_path_factory):
    os.environ["BLENDER_USER_RESOURCES"] = str(tmp_path_factory.mktemp("blender_user"))  # before bpy loads
    import bpy as blender

    preview.install(blender, zip_path)
    yield blender
    blender.ops.preferences.addon_disable(module=ADDON)  # stops the worker


@pytest.fixture
def addon(bpy):
    """The add-on's modules, with the models folder, output folder and settings reset for one test."""
    mods = {name: sys.modules[f"{ADDON}.blender_addon.{name}"] for name in ("jobs", "styles", "material", "assets")}
    yield mods
    p = bpy.context.preferences.addons[ADDON].preferences
    p.python = p.models_dir = p.output_dir = ""
    mods["jobs"].STATE.message = None


@pytest.fixture
def scene(bpy, addon, tiny_models, tmp_path):
    p = bpy.context.preferences.addons[ADDON].preferences
    p.models_dir, p.output_dir = str(tiny_models), str(tmp_path / "textures")
    bpy.ops.wm.read_homefile(use_empty=False)  # the default scene: Cube (with "Material"), Camera, Light
    bpy.context.view_layer.objects.active = bpy.data.objects["Cube"]
    s = bpy.context.scene.tessera
    s.style, s.seed, s.size, s.maps = "grass", 3, "512", {"albedo"}
    s.new_slot = s.pack = s.preview_tiling = s.batch_replace = s.mark_asset = False
    s.batch_assets = True
    return s


def tessera_images(bpy) -> list:
    return [im for im in bpy.data.images if im.get("tessera")]


def linked(node_tree, from_node: str, from_socket: str, to_node: str, to_socket: str) -> bool:
    return any(link.from_node.name == from_node and link.from_socket.name == from_socket
               and link.to_node.name == to_node and link.to_socket.name == to_socket for link in node_tree.links)


def test_zip_holds_addon_core_and_weights_only(zip_path):
    names = zipfile.ZipFile(zip_path).namelist()
    assert {"__init__.py", "blender_manifest.toml", "blender_addon/__init__.py", "core/worker.py"} <= set(names)
    assert any(n.startswith("core/weights/") and n.endswith(".safetensors") for n in names)
    wheels = sorted(n.split("/")[1].split("-")[0] for n in names if n.startswith("wheels/"))
    assert wheels == ["onnxruntime", "pillow", "safetensors"]  # this platform's only, one of each
    allowed = {"__init__.py", "blender_manifest.toml", "blender_addon", "core", "wheels"}
    assert all(n.split("/")[0] in allowed for n in names), names
    assert not any("__pycache__" in n or n.endswith((".pyc", ".pkl", ".pt", ".pth")) for n in names)


@functools.cache
def blender_ext():
    """Blender's own extension tool (bl_pkg's cli/blender_ext.py, from the bpy package), imported: its
    manifest validation and the checks its installer makes."""
    spec = importlib.util.spec_from_file_location("blender_ext", extension.blender_ext())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zip_is_for_this_python_and_the_blenders_that_run_it(zip_path):
    python = extension.this_python()
    with zipfile.ZipFile(zip_path) as z:
        manifest = blender_ext().pkg_manifest_from_zipfile_and_validate(z, "", strict=True)
        wheels = [n.split("/")[1] for n in z.namelist() if n.startswith("wheels/")]
    assert not isinstance(manifest, str), manifest
    assert sorted(Path(w).name for w in manifest.wheels) == sorted(wheels)
    assert all(python in extension.wheel_pythons(w) for w in wheels)
    blenders = extension.PYTHONS[python]
    assert (manifest.blender_version_min, manifest.blender_version_max) == (blenders.min, blenders.max)


# Blender → the Python it runs (on PyPI bpy is cp311 up to 5.0.1, cp313 from 5.1.0)
BLENDER_PYTHONS = {(4, 2, 0): "3.11", (4, 5, 0): "3.11", (5, 0, 1): "3.11",
                   (5, 1, 0): "3.13", (5, 2, 0): "3.13", (5, 3, 0): "3.13"}


@pytest.mark.parametrize("platform", list(extension.PIP_PLATFORMS))
def test_each_blender_takes_exactly_the_zip_for_its_python(platform):
    """The manifests `make extension` builds its zips from (no zip built: the same text, checked by Blender's
    validator): installing from disk checks the Blender version and platform; enabling, the Python of the
    wheels (bl_pkg's manifest_compatible_with_wheel_data_or_error)."""
    tool = blender_ext()
    manifests = {}
    for python in extension.PYTHONS:
        data = tomllib.loads(extension.staged_manifest(platform, python))
        assert not isinstance(error := tool.pkg_manifest_from_dict_and_validate(data, False, True), str), error
        names = [Path(w).name for w in data["wheels"]]
        assert sorted(n.split("-")[0].removesuffix("_directml") for n in names) == ["onnxruntime", "pillow",
                                                                                    "safetensors"]
        assert all(python in extension.wheel_pythons(n) and platform in extension.wheel_platforms(n)
                   for n in names)
        manifests[python] = data

    def takes(data, blender, python_version, at_enable):
        item = dict(data)
        if at_enable:
            item["python_versions"] = [".".join(map(str, v)) for v in tool.python_versions_from_wheels(data["wheels"])]
        return not tool.repository_filter_skip(item, filter_blender_version=blender, filter_platform=platform,
                                               filter_python_version=python_version, skip_message_fn=None,
                                               error_fn=pytest.fail)

    for blender, python in BLENDER_PYTHONS.items():
        python_version = (*extension._version(python), 0)
        for at_enable in (False, True):
            assert [p for p, data in manifests.items() if takes(data, blender, python_version, at_enable)] == [python]


def test_addon_registers_its_ui(bpy, addon):
    assert ADDON in bpy.context.preferences.addons
    for op in ("generate", "batch_bake", "cancel", "randomize_seed"):
        assert hasattr(bpy.ops.tessera, op)
    for space in ("view3d", "node", "image"):
        assert getattr(bpy.types, f"TESSERA_PT_main_{space}").bl_category == "Tessera"
    assert set(bpy.context.scene.tessera.bl_rna.properties["size"].enum_items.keys()) == {"512", "1024", "2048", "4096"}


def test_generate_makes_image_and_material_on_cube(bpy, addon, scene, tmp_path):
    assert bpy.ops.tessera.generate() == {"FINISHED"}
    path = tmp_path / "textures" / "grass_3_albedo.png"
    img = bpy.data.images["grass_3_albedo"]
    assert tuple(img.size) == (512, 512) and Path(img.filepath) == path
    assert img.colorspace_settings.name == "sRGB"
    # what Blender holds is what the worker wrote
    pixels = np.array(img.pixels[:]).reshape(512, 512, 4)[::-1, :, :3]  # Blender stores rows bottom-up
    np.testing.assert_allclose(pixels, np.asarray(Image.open(path).convert("RGB")) / 255.0, atol=1e-3)

    cube = bpy.data.objects["Cube"]
    mat = cube.active_material
    assert mat.name == "Tessera grass" and "Material" in bpy.data.materials  # replaced in the slot, not deleted
    tree = mat.node_tree
    assert tree.nodes["Tessera Albedo"].image == img and tree.nodes["Tessera Albedo"].extension == "REPEAT"
    assert linked(tree, "Texture Coordinate", "UV", "Mapping", "Vector")
    assert linked(tree, "Tessera Tiling", "Value", "Mapping", "Scale")
    assert linked(tree, "Mapping", "Vector", "Tessera Albedo", "Vector")
    assert linked(tree, "Tessera Albedo", "Color", "Principled BSDF", "Base Color")
    assert linked(tree, "Principled BSDF", "BSDF", "Material Output", "Surface")


def test_full_pbr_set_is_wired_with_the_right_colour_spaces(bpy, addon, scene, tmp_path):
    scene.maps = {"albedo", "normal", "height", "roughness", "ao"}
    scene.normal_strength, scene.displacement = 1.5, 0.1
    assert bpy.ops.tessera.generate() == {"FINISHED"}
    for m in ("albedo", "normal", "height", "roughness", "ao"):
        img = bpy.data.images[f"grass_3_{m}"]
        assert img.colorspace_settings.name == ("sRGB" if m == "albedo" else "Non-Color"), m
        assert tuple(img.size) == (512, 512) and (tmp_path / "textures" / f"grass_3_{m}.png").is_file()
    mat = bpy.data.objects["Cube"].active_material
    tree = mat.node_tree
    assert linked(tree, "Tessera Albedo", "Color", "Tessera AO Mix", "A")
    assert linked(tree, "Tessera AO", "Color", "Tessera AO Mix", "B")
    assert linked(tree, "Tessera AO Mix", "Result", "Principled BSDF", "Base Color")
    assert tree.nodes["Tessera AO Mix"].blend_type == "MULTIPLY"
    assert linked(tree, "Tessera Roughness", "Color", "Principled BSDF", "Roughness")
    assert linked(tree, "Tessera Normal", "Color", "Tessera Normal Map", "Color")
    assert linked(tree, "Tessera Normal Map", "Normal", "Principled BSDF", "Normal")
    assert tree.nodes["Tessera Normal Map"].inputs["Strength"].default_value == pytest.approx(1.5)
    assert linked(tree, "Tessera Height", "Color", "Tessera Displacement", "Height")
    assert linked(tree, "Tessera Displacement", "Displacement", "Material Output", "Displacement")
    assert tree.nodes["Tessera Displacement"].inputs["Scale"].default_value == pytest.approx(0.1)
    for m in ("albedo", "normal", "height", "roughness", "ao"):
        assert linked(tree, "Mapping", "Vector", f"Tessera {m.title() if m != 'ao' else 'AO'}", "Vector")
    assert mat.displacement_method == "BUMP"  # a cube has no geometry to displace
    bpy.data.objects["Cube"].modifiers.new("Subdivision", "SUBSURF")
    bpy.ops.tessera.generate()
    assert mat.displacement_method == "BOTH"
    # the 2×2 preview doubles the Tiling knob and gives it back
    tiling = tree.nodes["Tessera Tiling"].outputs[0]
    before = tiling.default_value
    scene.preview_tiling = True
    assert tiling.default_value == pytest.approx(2 * before)
    scene.preview_tiling = False
    assert tiling.default_value == pytest.approx(before)


def test_regenerate_replaces_in_place_and_new_slot_adds(bpy, addon, scene):
    bpy.ops.tessera.generate()
    bpy.ops.tessera.generate()  # same style and seed: the same datablock
    assert [im.name for im in tessera_images(bpy)] == ["grass_3_albedo"]
    scene.seed = 4  # a new seed: the material shows it and the unused old image goes
    bpy.ops.tessera.generate()
    assert [im.name for im in tessera_images(bpy)] == ["grass_4_albedo"]
    assert len([m for m in bpy.data.materials if m.get("tessera")]) == 1
    cube = bpy.data.objects["Cube"]
    slots = len(cube.material_slots)
    scene.style, scene.new_slot = "brick", True
    bpy.ops.tessera.generate()
    assert len(cube.material_slots) == slots + 1 and cube.active_material.name == "Tessera brick"


def test_a_new_seed_on_another_object_leaves_the_first_as_it_was(bpy, addon, scene):
    cube = bpy.data.objects["Cube"]
    bpy.ops.tessera.generate()
    bpy.ops.mesh.primitive_plane_add()
    plane = bpy.context.active_object
    scene.seed = 4
    bpy.ops.tessera.generate()
    assert cube.active_material.node_tree.nodes["Tessera Albedo"].image.name == "grass_3_albedo"
    assert plane.active_material.node_tree.nodes["Tessera Albedo"].image.name == "grass_4_albedo"
    assert plane.active_material.name == "Tessera grass.001"
    scene.seed = 5  # regenerating on the plane updates its own material in place
    bpy.ops.tessera.generate()
    assert plane.active_material.name == "Tessera grass.001"
    assert plane.active_material.node_tree.nodes["Tessera Albedo"].image.name == "grass_5_albedo"
    assert cube.active_material.node_tree.nodes["Tessera Albedo"].image.name == "grass_3_albedo"
    assert len([m for m in bpy.data.materials if m.get("tessera")]) == 2


def test_the_default_output_folder_is_visible_and_outside_the_extension(bpy, addon, monkeypatch, tmp_path):
    """Blender deletes an extension's own user folder when the extension is removed: textures must not
    live there."""
    prefs = sys.modules[f"{ADDON}.blender_addon.prefs"]
    monkeypatch.setenv("HOME", str(tmp_path))
    bpy.context.preferences.addons[ADDON].preferences.output_dir = ""
    assert prefs.output_dir() == tmp_path / "Tessera"
    (tmp_path / "Documents").mkdir()
    assert prefs.output_dir() == tmp_path / "Documents" / "Tessera"


@pytest.mark.parametrize("setting", ["output_dir", "models_dir"])
def test_a_folder_setting_that_names_a_file_says_so(bpy, addon, scene, tmp_path, setting):
    afile = tmp_path / "notes.txt"
    afile.write_text("")
    setattr(bpy.context.preferences.addons[ADDON].preferences, setting, str(afile))
    with pytest.raises(RuntimeError, match="notes.txt is a file, not a folder"):
        bpy.ops.tessera.generate()
    assert afile.read_text() == ""


def test_pack_keeps_pixels_in_the_blend(bpy, addon, scene, tmp_path):
    scene.pack = True
    bpy.ops.tessera.generate()
    img = bpy.data.images["grass_3_albedo"]
    assert img.packed_file is not None and tuple(img.size) == (512, 512)
    assert not (tmp_path / "textures" / "grass_3_albedo.png").exists()


def test_batch_bake_writes_files_and_resumes(bpy, addon, scene, tmp_path):
    scene.batch_styles, scene.batch_count = {"brick", "grass"}, 2
    assert bpy.ops.tessera.batch_bake() == {"FINISHED"}
    out = tmp_path / "textures" / "batch"
    files = sorted(p.name for p in out.glob("*.png"))
    assert files == ["brick_3_albedo.png", "brick_4_albedo.png", "grass_3_albedo.png", "grass_4_albedo.png"]
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*.png")}
    assert bpy.ops.tessera.batch_bake() == {"FINISHED"}  # nothing left to do
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.png")} == stamps
    assert "(4 already there)" in addon["jobs"].STATE.message[1]


def catalogs(path: Path) -> dict[str, str]:
    """{catalog path: UUID} from a blender_assets.cats.txt, read by its documented format."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "VERSION 1"
    rows = [ln.split(":") for ln in lines[1:]]
    assert all(len(r) == 3 for r in rows)
    return {r[1]: r[0] for r in rows}


def test_batch_bake_makes_an_asset_library(bpy, addon, scene, tmp_path):
    bpy.data.materials.new("Tessera brick 3")  # the user's own material of that name stays as it is
    before = ({m.name for m in bpy.data.materials}, {i.name for i in bpy.data.images})
    scene.batch_styles, scene.batch_count, scene.maps = {"brick", "grass"}, 2, {"albedo", "normal"}
    assert bpy.ops.tessera.batch_bake() == {"FINISHED"}
    out = tmp_path / "textures" / "batch"
    library = out / "tessera_library.blend"
    assert "4 material(s) in tessera_library.blend" in addon["jobs"].STATE.message[1] and library.is_file()
    assert ({m.name for m in bpy.data.materials}, {i.name for i in bpy.data.images}) == before  # left as it was
    assert not bpy.data.materials["Tessera brick 3"].get("tessera")
    cats = catalogs(out / "blender_assets.cats.txt")
    assert set(cats) == {"Tessera", "Tessera/brick", "Tessera/grass"}
    assert sorted(p.name for p in (out / ".previews").iterdir()) == ["brick_3.png", "brick_4.png", "grass_3.png",
                                                                     "grass_4.png"]  # made by the worker
    libs = [lib for lib in bpy.context.preferences.filepaths.asset_libraries if Path(lib.path) == out]
    assert len(libs) == 1 and libs[0].name.startswith("Tessera")  # "Tessera.001" if another folder has "Tessera"

    with bpy.data.libraries.load(str(library), link=True, assets_only=True) as (src, dst):
        assert sorted(src.materials) == ["Tessera brick 3", "Tessera brick 4", "Tessera grass 3", "Tessera grass 4"]
        dst.materials = src.materials
    for mat in dst.materials:
        style, seed = mat.name.split()[1:]
        data = mat.asset_data
        assert data.catalog_id == cats[f"Tessera/{style}"]
        assert {t.name for t in data.tags} == {style, f"seed {seed}", "512 px"}
        assert data.license.endswith("under these licences: random init (tests): CC0-1.0")
        assert data.author == "Tessera"
        assert tuple(mat.preview.image_size) == (128, 128)
        shown = np.array(mat.preview.image_pixels_float[:]).reshape(128, 128, 4)[..., :3]
        albedo = np.asarray(Image.open(out / f"{style}_{seed}_albedo.png").convert("RGB")) / 255.0
        assert abs(shown.mean() - albedo.mean()) < 0.02  # the preview is the albedo, scaled down
        tree = mat.node_tree
        assert linked(tree, "Tessera Normal Map", "Normal", "Principled BSDF", "Normal")
        for m in ("albedo", "normal"):
            img = tree.nodes[f"Tessera {m.title()}"].image
            assert img.filepath == f"//{style}_{seed}_{m}.png"  # beside the library, so it moves with it
            assert img.colorspace_settings.name == ("sRGB" if m == "albedo" else "Non-Color")
        bpy.data.materials.remove(mat)

    scene.batch_count = 3  # a rerun adds the new seeds; catalogs and the library entry are not repeated
    assert bpy.ops.tessera.batch_bake() == {"FINISHED"}
    with bpy.data.libraries.load(str(library), assets_only=True) as (src, _):
        assert len(src.materials) == 6
    assert catalogs(out / "blender_assets.cats.txt") == cats
    assert len([lib for lib in bpy.context.preferences.filepaths.asset_libraries if Path(lib.path) == out]) == 1


def test_batch_bake_without_assets_writes_no_library(bpy, addon, scene, tmp_path):
    scene.batch_assets = False
    assert bpy.ops.tessera.batch_bake() == {"FINISHED"}
    out = tmp_path / "textures" / "batch"
    assert (out / "grass_3_albedo.png").is_file()
    assert not (out / "tessera_library.blend").exists() and not (out / "blender_assets.cats.txt").exists()


def test_mark_as_asset_tags_the_material_and_saves_its_catalog_beside_the_blend(bpy, addon, scene, tmp_path):
    scene.mark_asset = True
    assert bpy.ops.tessera.generate() == {"FINISHED"}
    mat = bpy.data.materials["Tessera grass"]
    assert {t.name for t in mat.asset_data.tags} == {"grass", "seed 3", "512 px"}
    mat.asset_data.tags.new("mine")  # a tag of the user's survives regenerating
    scene.seed = 4
    assert bpy.ops.tessera.generate() == {"FINISHED"}
    assert {t.name for t in mat.asset_data.tags} == {"grass", "seed 4", "512 px", "mine"}
    assert tuple(mat.preview.image_size) == (128, 128) and "CC0-1.0" in mat.asset_data.license
    cats = tmp_path / "blender_assets.cats.txt"
    assert not cats.exists()  # an unsaved file has no place for catalogs yet …
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    assert catalogs(cats)["Tessera/grass"] == mat.asset_data.catalog_id  # … saving writes them beside it


def test_node_wrangler_reads_every_map_of_tessera_files(bpy):
    """Node Wrangler's Principled setup (Ctrl+Shift+T) sorts the chosen files into sockets by its name
    tags: it must put each of Tessera's maps in the right socket, for every shipped style and for photos."""
    import addon_utils

    addon_utils.enable("node_wrangler", default_set=True)
    from node_wrangler.utils.paths import match_files_to_socket_names

    tags = bpy.context.preferences.addons["node_wrangler"].preferences.principled_tags
    socket_of = {"albedo": "Base Color", "normal": "Normal", "height": "Displacement", "roughness": "Roughness",
                 "ao": "Ambient Occlusion"}
    from core.batch import file_name
    from core.weights import read

    shipped = read(ROOT / "core" / "weights" / "tessera_gan.safetensors", "np")[0]["styles"]
    stems = [file_name(style, 7, "{}")[:-4] for style in shipped] + ["IMG_2031_{}", "old wall 2k_{}"]
    for stem in stems:
        for maps in (list(socket_of), ["albedo", "normal"], ["normal", "roughness", "height"]):
            files = [type("File", (), {"name": f"{stem.format(m)}.png"})() for m in maps]
            sockets = [[name, getattr(tags, key).split(" "), None] for name, key in (
                ("Displacement", "displacement"), ("Base Color", "base_color"), ("Metallic", "metallic"),
                ("Specular IOR Level", "specular"), ("Roughness", "rough"), ("Normal", "normal"),
                ("Ambient Occlusion", "ambient_occlusion"))]
            match_files_to_socket_names(files, sockets)
            found = {name: file for name, _, file in sockets if file}
            assert found == {socket_of[m]: f"{stem.format(m)}.png" for m in maps}, stem


def test_cancel_leaves_no_file_and_no_image(bpy, addon, scene, tmp_path):
    """The UI path (timer-driven, not blocking) driven by hand: cancel after the first progress."""
    jobs = addon["jobs"]
    out = tmp_path / "textures"
    out.mkdir()
    applied = []
    job = jobs.submit(bpy.context, jobs.Job("generate", "cancel me", lambda r: applied.append(r) or ""),
                      wait=False, style="grass", seed=1, size=4096, out=str(out / "big.png"))
    while job.done == 0 and job.outcome is None:
        jobs.pump(block=True)
    jobs.cancel()
    while job.outcome is None:
        jobs.pump(block=True)
    assert job.outcome == ("INFO", "Cancelled") and not applied
    assert list(out.iterdir()) == [] and jobs.running() is None
    assert bpy.ops.tessera.generate() == {"FINISHED"}  # the worker is still warm and usable


@pytest.mark.parametrize("case", ["missing models folder", "unwritable output", "bad python", "worker crashes",
                                  "python without torch"])
def test_bad_settings_report_and_keep_blender_usable(bpy, addon, scene, tmp_path, case):
    p = bpy.context.preferences.addons[ADDON].preferences
    if case == "missing models folder":
        p.models_dir, expected = str(tmp_path / "nope"), "does not exist"
    elif case == "unwritable output":
        (tmp_path / "afile").write_text("x")
        p.output_dir, expected = str(tmp_path / "afile" / "out"), "cannot be created"
    elif case == "bad python":
        p.python, expected = str(tmp_path / "no-python"), "not an executable"
    elif case == "worker crashes":
        fake = tmp_path / "crash.sh"
        fake.write_text("#!/bin/sh\necho 'simulated crash' >&2\nexit 7\n")
        fake.chmod(0o755)
        p.python, expected = str(fake), "exit code 7"
    else:  # the same Python without its site-packages (-S): no torch, no numpy
        bare = tmp_path / "bare-python.sh"
        bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
        bare.chmod(0o755)
        p.python, expected = str(bare), "missing for"
    with pytest.raises(RuntimeError, match=expected) as info:
        bpy.ops.tessera.generate()
    assert "Traceback" not in str(info.value)
    assert not tessera_images(bpy)
    assert bpy.ops.tessera.randomize_seed() == {"FINISHED"}  # Blender and the add-on still answer


def test_a_size_the_machine_cannot_hold_is_refused_before_any_work(bpy, addon, scene, monkeypatch):
    ops = sys.modules[f"{ADDON}.blender_addon.ops"]
    monkeypatch.setattr(ops, "memory_available", lambda: 600 * 2**20)  # a machine with 600 MiB free
    scene.size = "4096"
    message = r"4096² texture needs about 1\.\d GiB of memory, 0\.6 GiB is free: choose a smaller size"
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.tessera.generate()
    assert not tessera_images(bpy)
    scene.size = "512"  # 0.4 GiB: fits
    assert bpy.ops.tessera.generate() == {"FINISHED"}


def test_corrupt_weights_file_is_named_and_good_ones_still_work(bpy, addon, scene, tiny_models):
    bad = tiny_models / "broken.safetensors"
    bad.write_bytes(b"\x00garbage")
    assert "grass" in addon["styles"].names()
    assert any("broken.safetensors" in e for e in addon["styles"].errors)
    assert bpy.ops.tessera.generate() == {"FINISHED"}
    for f in tiny_models.glob("*.safetensors"):
        if f != bad:
            f.unlink()
    assert addon["styles"].names() == []
    assert not bpy.ops.tessera.generate.poll()


def test_preview_render(bpy, addon, tmp_path):
    """`make preview` at a tiny size: Cycles on the CPU, shipped weights, a sphere and a plane."""
    bpy.context.preferences.addons[ADDON].preferences.output_dir = str(tmp_path / "textures")
    out = preview.render(bpy, tmp_path / "preview.png", width=64, height=36, samples=2, texture="512")
    img = np.asarray(Image.open(out).convert("RGB")).astype(float)
    assert img.shape == (36, 64, 3) and img.std() > 5  # a picture, not a flat frame
    assert {o.active_material.name for o in bpy.data.objects if o.type == "MESH"} == {"Tessera rock", "Tessera grass"}


def test_style_thumbnails_become_enum_icons(bpy, addon, scene, tmp_path):
    """The worker draws one small sample per style; they load into a previews collection for the dropdown."""
    jobs, styles = addon["jobs"], addon["styles"]
    job = jobs.submit(bpy.context,
                      jobs.Job("thumbnails", "thumbnails", lambda r: styles.load_thumbnails(r["files"]) or ""),
                      out=str(tmp_path / "thumbs"), size=64)
    assert job.outcome is not None and job.outcome[0] == "INFO", job.outcome
    assert styles.have_thumbnails()
    # headless Blender gives previews no icon ids (those need a UI), but they hold the loaded pixels
    assert {s: tuple(styles._previews[s].image_size) for s in styles.names()} == {"brick": (64, 64), "grass": (64, 64)}
    assert len(list((tmp_path / "thumbs").rglob("*.png"))) == 2


# issue 16: paths relative to a .blend never saved, meshes without UVs

def install_folder() -> Path:
    return Path(sys.modules[ADDON].__file__).parent


@pytest.mark.parametrize("operator", ["generate", "batch_bake"])
def test_a_relative_output_folder_in_an_unsaved_file_is_refused(bpy, addon, scene, operator):
    p = bpy.context.preferences.addons[ADDON].preferences
    p.output_dir = "//textures/"
    assert bpy.data.filepath == ""  # a new file, never saved
    with pytest.raises(RuntimeError, match=r"Output folder //textures/ is relative to the \.blend file, which has "
                                           r"not been saved: save the \.blend file first"):
        getattr(bpy.ops.tessera, operator)()
    assert not (install_folder() / "textures").exists()  # nothing went into the extension's install folder
    assert not list(install_folder().rglob("*.png")) and not tessera_images(bpy)


def test_a_relative_output_folder_beside_a_saved_file_works(bpy, addon, scene, tmp_path):
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    bpy.context.preferences.addons[ADDON].preferences.output_dir = "//textures/"
    assert bpy.ops.tessera.generate() == {"FINISHED"}
    assert (tmp_path / "textures" / "grass_3_albedo.png").is_file()
    assert Path(bpy.data.images["grass_3_albedo"].filepath) == tmp_path / "textures" / "grass_3_albedo.png"


@pytest.mark.parametrize("folder, text", [("//models/", "Models folder //models/ is relative to the .blend file"),
                                          ("textures", "Output folder textures is a relative path")])
def test_other_relative_folders_are_refused_with_what_to_do(bpy, addon, scene, tiny_models, folder, text):
    p = bpy.context.preferences.addons[ADDON].preferences
    if folder.startswith("//"):
        p.models_dir = folder
    else:
        p.output_dir = folder
    with pytest.raises(RuntimeError, match=re.escape(text)):
        bpy.ops.tessera.generate()
    assert not (install_folder() / folder.strip("/")).exists() and not tessera_images(bpy)


def test_a_mesh_without_uv_map_gets_box_projected_coordinates(bpy, addon, scene):
    cube = bpy.data.objects["Cube"]
    mesh = cube.data
    while mesh.uv_layers:
        mesh.uv_layers.remove(mesh.uv_layers[0])
    assert bpy.ops.tessera.generate() == {"FINISHED"}
    level, message = addon["jobs"].STATE.message
    assert level == "WARNING" and "Cube has no UV map" in message
    tree = cube.active_material.node_tree
    assert linked(tree, "Texture Coordinate", "Object", "Mapping", "Vector")
    assert not linked(tree, "Texture Coordinate", "UV", "Mapping", "Vector")
    assert tree.nodes["Tessera Albedo"].projection == "BOX"
    mesh.uv_layers.new(name="UVMap")  # with a UV map again, the material follows it
    assert bpy.ops.tessera.generate() == {"FINISHED"}
    assert linked(tree, "Texture Coordinate", "UV", "Mapping", "Vector")
    assert tree.nodes["Tessera Albedo"].projection == "FLAT" and addon["jobs"].STATE.message[0] == "INFO"


def test_batch_bake_at_another_size_needs_the_replace_option(bpy, addon, scene, tmp_path):
    scene.batch_styles, scene.batch_count = {"grass"}, 1
    assert bpy.ops.tessera.batch_bake() == {"FINISHED"}
    out = tmp_path / "textures" / "batch"
    scene.size = "1024"
    with pytest.raises(RuntimeError, match=r"replace them \(--replace for tessera batch, Replace in Blender's "
                                           r"Batch Bake\)"):
        bpy.ops.tessera.batch_bake()
    assert Image.open(out / "grass_3_albedo.png").size == (512, 512)
    scene.batch_replace = True
    assert bpy.ops.tessera.batch_bake() == {"FINISHED"}
    assert Image.open(out / "grass_3_albedo.png").size == (1024, 1024)


@pytest.mark.parametrize("maps", [{"albedo", "normal"}, {"albedo", "normal", "height"}])
def test_a_mesh_without_uv_map_gets_no_tangent_space_normal_map(bpy, addon, scene, maps):
    cube = bpy.data.objects["Cube"]
    mesh = cube.data
    while mesh.uv_layers:
        mesh.uv_layers.remove(mesh.uv_layers[0])
    scene.maps = maps
    assert bpy.ops.tessera.generate() == {"FINISHED"}
    level, message = addon["jobs"].STATE.message
    assert level == "WARNING" and "leaves the normal map out (it needs a UV map" in message
    assert ("the height map still gives bump" in message) == ("height" in maps)
    tree = cube.active_material.node_tree
    assert not tree.nodes["Principled BSDF"].inputs["Normal"].is_linked
    mesh.uv_layers.new(name="UVMap")  # with a UV map again, the normal map is wired again
    assert bpy.ops.tessera.generate() == {"FINISHED"}
    assert linked(tree, "Tessera Normal Map", "Normal", "Principled BSDF", "Normal")


# issue 19: Worker Python empty, no torch: the extension's own wheels

def test_generate_on_the_bundled_runtime_without_torch(bpy, addon, scene, tiny_models, tmp_path, monkeypatch):
    """The worker gets `sys.executable` (in the bpy module the venv's Python: Blender's own Python is not
    here) with the wheels Blender installed from the zip first on its path and a `torch` that fails to
    import, as in Blender's Python; it runs on the bundled ONNX Runtime, Generate makes the whole PBR
    material on the default cube and Batch Bake (assets marked) a material library."""
    from core.export_onnx import export_folder

    export_folder(tiny_models)  # the tiny models' graphs (the shipped weights have theirs)
    blocker = tmp_path / "no-torch" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is not installed here (test)')\n")
    monkeypatch.setenv("PYTHONPATH", str(blocker.parent))
    jobs = addon["jobs"]
    jobs.shutdown()  # a fresh worker, with this environment
    try:
        assert bpy.context.preferences.addons[ADDON].preferences.python == ""
        scene.maps = {"albedo", "normal", "height", "roughness", "ao"}
        assert bpy.ops.tessera.generate() == {"FINISHED"}
        ready = jobs.STATE.client.ready
        assert ready["runtime"] == "onnxruntime 1.23.2" and ready["device"] == "cpu" and "cpu" in ready["devices"]
        site = Path(os.environ["BLENDER_USER_RESOURCES"]) / "extensions" / ".local" / "lib"
        log = Path(jobs.STATE.client.log_path).read_text()
        assert f"onnxruntime from {site}/python3.11/site-packages/onnxruntime/" in log, log
        for m in ("albedo", "normal", "height", "roughness", "ao"):
            img = bpy.data.images[f"grass_3_{m}"]
            assert tuple(img.size) == (512, 512) and (tmp_path / "textures" / f"grass_3_{m}.png").is_file()
        tree = bpy.data.objects["Cube"].active_material.node_tree
        assert linked(tree, "Tessera AO Mix", "Result", "Principled BSDF", "Base Color")
        assert linked(tree, "Tessera Normal Map", "Normal", "Principled BSDF", "Normal")
        assert linked(tree, "Tessera Displacement", "Displacement", "Material Output", "Displacement")
        # the device list follows the running worker's runtime: ONNX Runtime here offers no Metal
        items = sys.modules[f"{ADDON}.blender_addon.prefs"].device_items(None, bpy.context)
        assert [i[0] for i in items] == ["auto", "cpu"]
        # then Batch Bake with assets marked: a material library with its catalogs and tags
        scene.batch_styles, scene.batch_count = {"brick", "grass"}, 2
        assert bpy.ops.tessera.batch_bake() == {"FINISHED"}
        out = tmp_path / "textures" / "batch"
        cats = catalogs(out / "blender_assets.cats.txt")
        with bpy.data.libraries.load(str(out / "tessera_library.blend"), link=True, assets_only=True) as (src, dst):
            dst.materials = src.materials
        assert sorted(m.name for m in dst.materials) == [f"Tessera {s} {n}" for s in ("brick", "grass") for n in (3, 4)]
        for mat in dst.materials:
            style, seed = mat.name.split()[1:]
            assert mat.asset_data.catalog_id == cats[f"Tessera/{style}"]
            assert {t.name for t in mat.asset_data.tags} == {style, f"seed {seed}", "512 px"}
            bpy.data.materials.remove(mat)
    finally:
        jobs.shutdown()  # the next tests get a PyTorch worker again


# issue 18: from a photo — Material from Image, New Style from Image…

def photo(path: Path, size: tuple[int, int] = (160, 200), seed: int = 1) -> Path:
    """A photo-like image that does not tile (smooth noise with a gradient across it)."""
    from training_helpers import smooth_noise

    h, w = size
    img = smooth_noise(seed, h, w) * 0.7 + np.linspace(0, 0.3, w)[None, :, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((img * 255).round().astype(np.uint8)).save(path)
    return path


def from_image_module():
    return sys.modules[f"{ADDON}.blender_addon.from_image"]


def test_material_from_image_puts_its_seamless_maps_on_the_cube(bpy, addon, scene, tmp_path):
    from core.metrics import seam_ratio

    scene.maps = {"albedo", "normal", "roughness"}
    wall = photo(tmp_path / "photos" / "wall.png", (80, 96))
    assert bpy.ops.tessera.material_from_image(filepath=str(wall)) == {"FINISHED"}
    mat = bpy.data.objects["Cube"].active_material
    assert mat.name == "Tessera wall"
    tree = mat.node_tree
    for m in ("albedo", "normal", "roughness"):
        path = tmp_path / "textures" / f"wall_{m}.png"
        assert bpy.data.images[f"wall_{m}"].filepath == str(path) and Image.open(path).size == (96, 80)
    assert linked(tree, "Tessera Albedo", "Color", "Principled BSDF", "Base Color")
    assert linked(tree, "Tessera Roughness", "Color", "Principled BSDF", "Roughness")
    assert linked(tree, "Tessera Normal Map", "Normal", "Principled BSDF", "Normal")
    albedo = np.asarray(Image.open(tmp_path / "textures" / "wall_albedo.png"))
    assert seam_ratio(albedo) < 1.2 < seam_ratio(np.asarray(Image.open(wall)))  # made seamless first
    # the Image Editor's image (here: one packed into the file, so not on disk as it is)
    img = bpy.data.images.load(str(photo(tmp_path / "other" / "bark.png", (64, 64), seed=2)))
    img.pack()
    assert bpy.ops.tessera.material_from_image(image=img.name) == {"FINISHED"}
    assert bpy.data.objects["Cube"].active_material.name == "Tessera bark"
    assert (tmp_path / "textures" / "bark_albedo.png").is_file()
    with pytest.raises(RuntimeError, match=r"too small to make tileable: it needs at least 32×32 px"):
        bpy.ops.tessera.material_from_image(filepath=str(photo(tmp_path / "tiny.png", (20, 40))))


@pytest.fixture(scope="module")
def learn_models(tmp_path_factory) -> Path:
    """A models folder: a tiny generator trained for 4 steps by `training gan` (styles noise and stripes),
    exported as a file to learn from, and the tiny upscalers."""
    import shutil

    from helpers import make_models_folder
    from training.export import export
    from training.gan import GanConfig
    from training.gan import train as train_gan
    from training_helpers import gan_kwargs, make_dataset

    root = tmp_path_factory.mktemp("learn_start")
    run = train_gan(GanConfig(**gan_kwargs(make_dataset(root / "data"), root / "run", steps=4))).parent
    folder = export(run, root / "models" / "start.safetensors").parent
    tiny = make_models_folder(root / "tiny")
    for f in tiny.glob("sr-*.safetensors"):
        shutil.copy(f, folder / f.name)
    return folder


@pytest.fixture
def learning(bpy, addon, scene, learn_models, tmp_path, monkeypatch):
    """The scene with the learn models folder and a fresh cache; a fresh worker (with that cache) after."""
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path / "cache"))
    addon["jobs"].shutdown()
    bpy.context.preferences.addons[ADDON].preferences.models_dir = str(learn_models)
    scene.style, scene.maps = "noise", {"albedo"}
    yield {"start": str(learn_models / "start.safetensors"), "photos": tmp_path / "photos"}
    addon["jobs"].shutdown()
    for f in learn_models.glob("my_*.safetensors"):
        f.unlink()


def learn_steps(path: Path) -> int:
    import json

    from core.catalog import peek

    return json.loads(peek(path)["training"])["steps"]


def test_new_style_from_image_is_offered_at_once(bpy, addon, scene, learning, learn_models):
    for i in range(2):
        photo(learning["photos"] / f"wall{i}.png", seed=i)
    assert bpy.ops.tessera.style_from_image(directory=str(learning["photos"]), style="my_wall", method="GAN",
                                           steps=2, start=learning["start"]) == {"FINISHED"}
    out = learn_models / "my_wall.safetensors"
    assert learn_steps(out) == learn_steps(learn_models / "start.safetensors") + 2
    assert "my_wall" in addon["styles"].names() and scene.style == "my_wall"  # in the list, and chosen
    assert "New style my_wall learned" in addon["jobs"].STATE.message[1]
    assert bpy.ops.tessera.generate() == {"FINISHED"}  # the warm worker offers it too
    assert bpy.data.objects["Cube"].active_material.name == "Tessera my_wall"


def test_cancelled_learn_keeps_its_run_and_the_same_name_continues_it(bpy, addon, scene, learning, learn_models,
                                                                      monkeypatch):
    jobs = addon["jobs"]
    wall = photo(learning["photos"] / "wall.png")
    with monkeypatch.context() as m:  # as in the UI: the operator returns at once, a timer would follow
        m.setattr(jobs, "submit", functools.partial(jobs.submit, wait=False))
        assert bpy.ops.tessera.style_from_image(filepath=str(wall), style="my_bark", method="GAN", steps=10_000,
                                               start=learning["start"]) == {"FINISHED"}
        job = jobs.running()
        assert job is not None and job.cmd == "learn"
        while job.done < 2 and job.outcome is None:
            jobs.pump(block=True)
        assert re.fullmatch(r"step \d+ of \d+, \d+ (s|min) left", job.status), job.status  # the 15 minutes decide
        jobs.cancel()
        while job.outcome is None:
            jobs.pump(block=True)
    assert job.outcome == ("INFO", "Cancelled: the run of my_bark is kept; New Style from Image with the name "
                                   "my_bark continues it")
    assert from_image_module().unfinished_run("my_bark") and not (learn_models / "my_bark.safetensors").exists()
    kept = job.done
    assert bpy.ops.tessera.style_from_image(filepath=str(wall), style="my_bark", method="GAN", steps=kept + 1,
                                           start=learning["start"]) == {"FINISHED"}
    out = learn_models / "my_bark.safetensors"
    assert learn_steps(out) == learn_steps(learn_models / "start.safetensors") + kept + 1  # continued, not anew
    assert "my_bark" in addon["styles"].names()


@pytest.mark.parametrize("case", ["not an image", "too small", "name taken"])
def test_new_style_from_bad_input_is_learns_one_line(bpy, addon, scene, learning, tmp_path, case):
    from helpers import text_png

    name = "my_wall"
    if case == "not an image":
        path, expected = text_png(tmp_path), r"x\.png"
    elif case == "too small":
        path, expected = photo(tmp_path / "small.png", (100, 300)), "too small to learn from: photos need at least 128×128 px"
    else:
        path, name, expected = photo(tmp_path / "wall.png"), "noise", "start.safetensors already has a style of this name"
    with pytest.raises(RuntimeError, match=expected) as info:
        bpy.ops.tessera.style_from_image(filepath=str(path), style=name, method="GAN", steps=1,
                                         start=learning["start"])
    assert len(str(info.value).strip().splitlines()) == 1 and "Traceback" not in str(info.value)
    assert not (tmp_path / "cache" / "learn" / name / "run").exists()


def test_from_image_on_the_bundled_runtime_without_torch(bpy, addon, scene, learning, tiny_models, tmp_path,
                                                         monkeypatch):
    """Worker Python empty and no torch: Material from Image works, and so does New Style from Image from the
    photos (a photo style, drawn by Generate); to train, it says in one line that it needs a Worker Python
    with PyTorch."""
    from core.export_onnx import export_folder

    bpy.context.preferences.addons[ADDON].preferences.models_dir = str(tiny_models)
    export_folder(tiny_models)
    blocker = tmp_path / "no-torch" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is not installed here (test)')\n")
    monkeypatch.setenv("PYTHONPATH", str(blocker.parent))
    wall = photo(tmp_path / "wall.png")
    assert bpy.ops.tessera.material_from_image(filepath=str(wall)) == {"FINISHED"}
    assert addon["jobs"].STATE.client.ready["runtime"].startswith("onnxruntime")
    assert bpy.data.objects["Cube"].active_material.name == "Tessera wall"
    with pytest.raises(RuntimeError, match=r"Tessera: New Style from Image needs a Worker Python with PyTorch "
                                           r"\(set one in Preferences › Tessera") as info:
        bpy.ops.tessera.style_from_image(filepath=str(wall), style="my_wall", method="GAN", steps=1)
    assert len(str(info.value).strip().splitlines()) == 1
    assert bpy.ops.tessera.style_from_image(filepath=str(wall), style="my_wall") == {"FINISHED"}
    assert (tiny_models / "my_wall.safetensors").is_file() and scene.style == "my_wall"
    assert "New style my_wall made from the photos" in addon["jobs"].STATE.message[1]
    assert bpy.ops.tessera.generate() == {"FINISHED"}
    assert bpy.data.objects["Cube"].active_material.name == "Tessera my_wall"


def test_the_image_editor_menu_offers_both(bpy, addon):
    names = [f.__name__ for f in bpy.types.IMAGE_MT_image._dyn_ui_initialize()]
    assert "draw_image_menu" in names
    for op in ("material_from_image", "style_from_image"):
        assert getattr(bpy.ops.tessera, op).get_rna_type().description
