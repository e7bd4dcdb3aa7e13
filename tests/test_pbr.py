"""PBR maps: unit normals, normals reproducible from the saved height, exact tileability, file formats,
and the whole chain (maps, PNG files) without torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core import pbr
from core.api import load_generator
from core.imageio import have_exr

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def albedo() -> np.ndarray:
    """A textured, non-periodic-looking test albedo (random smooth noise), 128×96 to catch H/W mix-ups."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 24, 32, generator=g)
    x = torch.nn.functional.interpolate(x, size=(96, 128), mode="bicubic", align_corners=False)
    x = x + 0.15 * torch.rand(1, 3, 96, 128, generator=g)
    return (x[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def test_shapes_dtypes_and_determinism(albedo):
    maps = pbr.derive(albedo)
    assert list(maps) == list(pbr.MAPS)
    assert maps["albedo"] is albedo
    assert maps["normal"].shape == (96, 128, 3) and maps["normal"].dtype == np.uint8
    assert maps["height"].shape == (96, 128) and maps["height"].dtype == np.uint16
    for name in ("roughness", "ao"):
        assert maps[name].shape == (96, 128) and maps[name].dtype == np.uint8
    again = pbr.derive(albedo)
    for name in pbr.MAPS:
        np.testing.assert_array_equal(maps[name], again[name])
    assert maps["height"].min() == 0 and maps["height"].max() == 65535  # uses the 16-bit range


def test_normals_are_unit_length_and_point_out(albedo):
    n = pbr.decode_normals(pbr.derive(albedo, ("normal",))["normal"])
    length = np.linalg.norm(n, axis=-1)
    assert abs(length.mean() - 1) < 0.02
    assert (n[..., 2] > 0).all()


def test_normals_follow_opengl_convention():
    """Height rising to the right tilts normals to −x; height rising upwards (towards row 0) tilts them
    to −y, because OpenGL normal maps (Blender's) have green pointing up the image."""
    ys, xs = np.mgrid[0:64, 0:64]
    height = (0.5 + 0.2 * np.sin(2 * np.pi * xs / 64) - 0.2 * np.sin(2 * np.pi * ys / 64)).astype(np.float32)
    n = pbr.normals_from_height(height, strength=10)
    assert n[32, 0, 0] < -0.05   # column 0: ∂h/∂x > 0
    assert n[0, 32, 1] < -0.05   # row 0: h grows towards the top
    assert abs(n[32, 16, 0]) < 1e-3 and abs(n[16, 32, 1]) < 1e-3  # on the crests it is flat


def test_normal_map_is_reproduced_from_saved_height(albedo, tmp_path):
    maps = pbr.derive(albedo, ("height", "normal"), normal_strength=1.7)
    Image.fromarray(maps["height"]).save(tmp_path / "h.png")
    height = np.asarray(Image.open(tmp_path / "h.png")).astype(np.float32) / 65535
    again = pbr.encode_normals(pbr.normals_from_height(height, 1.7))
    np.testing.assert_array_equal(again, maps["normal"])


def test_every_map_is_as_tileable_as_the_albedo(albedo):
    """Maps of a rolled albedo are the rolled maps (exactly, up to one 8/16-bit rounding step)."""
    shift = (17, 41)
    maps = pbr.derive(albedo)
    rolled = pbr.derive(np.roll(albedo, shift, axis=(0, 1)))
    for name in pbr.MAPS:
        a = np.roll(maps[name], shift, axis=(0, 1)).astype(np.int64)
        b = rolled[name].astype(np.int64)
        step = 1 if name != "height" else 2  # rounding of float sums in another order
        assert np.abs(a - b).max() <= step, name


def test_bad_maps_and_strength_are_refused(albedo):
    with pytest.raises(ValueError, match="unknown map 'gloss': choose from albedo, normal, height, roughness, ao"):
        pbr.derive(albedo, ("albedo", "gloss"))
    with pytest.raises(ValueError, match="no maps chosen"):
        pbr.check_maps(())
    with pytest.raises(ValueError, match="normal strength"):
        pbr.derive(albedo, ("normal",), normal_strength=float("nan"))


def test_roughness_base_follows_the_style(albedo):
    y = pbr.luminance(albedo)
    smooth, rough = pbr.roughness_map(y, 0.3).mean(), pbr.roughness_map(y, 0.9).mean()
    assert smooth < 0.45 and rough > 0.75


def test_generate_maps_through_api_and_cli_files(tiny_models, run_cli, tmp_path):
    gen = load_generator(device="cpu", models_dir=tiny_models)
    maps = gen.generate_maps("grass", seed=1, size=256)
    np.testing.assert_array_equal(maps["albedo"], gen.generate("grass", seed=1, size=256))
    res = run_cli("generate", "--style", "grass", "--seed", "1", "--size", "256", "--maps",
                  "albedo,normal,height,roughness,ao", "--out", f"{tmp_path}/", "--models", tiny_models, "--json")
    assert res.returncode == 0, res.stderr
    files = json.loads(res.stdout)["files"]
    assert files.pop("height_exr", None) == (str(tmp_path / "grass_1_height.exr") if have_exr() else None)
    modes = {name: Image.open(path).mode for name, path in files.items()}
    assert modes == {"albedo": "RGB", "normal": "RGB", "height": "I;16", "roughness": "L", "ao": "L"}
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(f"grass_1_{m}.png" for m in pbr.MAPS)
    np.testing.assert_array_equal(np.asarray(Image.open(files["height"])), maps["height"])
    if have_exr():
        import OpenEXR

        with OpenEXR.File(str(tmp_path / "grass_1_height.exr")) as f:
            pixels = f.channels()["Y"].pixels
        np.testing.assert_allclose(pixels, maps["height"] / 65535, atol=1e-6)


def test_an_exr_is_named_only_when_this_run_could_write_it(tmp_path, monkeypatch):
    """with_exr names the height's .exr beside its .png only where OpenEXR is there to write it: one left by an
    earlier run is not reported as written."""
    from core import batch

    paths = {"albedo": tmp_path / "a_albedo.png", "height": tmp_path / "a_height.png"}
    (tmp_path / "a_height.exr").write_bytes(b"left by an earlier run")
    monkeypatch.setattr(batch, "have_exr", lambda: False)
    assert batch.with_exr(paths) == paths
    monkeypatch.setattr(batch, "have_exr", lambda: True)
    assert batch.with_exr(paths) == {**paths, "height_exr": tmp_path / "a_height.exr"}
    assert batch.with_exr({"albedo": paths["albedo"]}) == {"albedo": paths["albedo"]}


def test_batch_maps_and_resume_asks_for_missing_maps(tiny_models, run_cli, tmp_path):
    args = ["batch", "--styles", "grass", "--seeds", "0-1", "--size", "256", "--out", tmp_path, "--models", tiny_models]
    assert run_cli(*args).returncode == 0
    res = run_cli(*args, "--maps", "albedo,normal")  # normals were not made: redo those sets
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [sorted(e["files"]) for e in manifest["images"]] == [["albedo", "normal"]] * 2
    assert (tmp_path / "grass_1_normal.png").is_file()
    res = run_cli(*args, "--maps", "albedo,height")  # the manifest names the height's .exr too
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    exr = ["height_exr"] if have_exr() else []
    assert [sorted(e["files"]) for e in manifest["images"]] == [sorted(["albedo", "height", "normal", *exr])] * 2


TORCH_FREE = """
import sys
sys.modules["torch"] = None  # import torch now raises ImportError, as in Blender's own Python
import numpy as np
from pathlib import Path
from core import batch, pbr

albedo = np.load(sys.argv[1])
maps = pbr.derive(albedo, roughness=0.6, normal_strength=1.3)
paths = batch.write_maps({m: Path(sys.argv[2]) / f"x_{m}.png" for m in pbr.MAPS}, maps)
np.savez(sys.argv[3], **maps)
assert "torch" not in {name.split(".")[0] for name, mod in sys.modules.items() if mod is not None}
"""


def test_maps_and_files_without_torch_match_the_torch_environment(albedo, tmp_path):
    """core.pbr, core.imageio and core.batch import and work with torch unimportable (the worker on Blender's
    Python); the maps are those this process derives, the PNGs decode to them."""
    np.save(tmp_path / "albedo.npy", albedo)
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(TORCH_FREE), str(tmp_path / "albedo.npy"),
                          str(tmp_path), str(tmp_path / "maps.npz")], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr
    there = np.load(tmp_path / "maps.npz")
    here = pbr.derive(albedo, roughness=0.6, normal_strength=1.3)
    for m in pbr.MAPS:
        np.testing.assert_array_equal(there[m], here[m])
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / f"x_{m}.png")), here[m])


def test_style_roughness_mixes_the_bases():
    meta = {"styles": ["grass", "metal", "lava"], "pbr": {"roughness": {"lava": 0.3}}}
    assert pbr.style_roughness(meta, np.array([1, 0, 0])) == pytest.approx(0.8)
    assert pbr.style_roughness(meta, np.array([0.5, 0.25, 0.25])) == pytest.approx(0.4 + 0.1125 + 0.075)
