"""Photo styles: image quilting on a torus (core.quilt) and the style files `tessera learn` writes by default
(core.photostyle), drawn by both runtimes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from core import metrics, photostyle, quilt, runtime, weights
from core.api import load_generator
from training_helpers import smooth_noise, write_png


def noise_photo(seed: int, h: int = 160, w: int = 200) -> np.ndarray:
    """(h, w, 3) uint8 that does not tile: a window of a larger periodic noise."""
    return (smooth_noise(seed, 2 * h, 2 * w, cutoff=0.05)[:h, :w] * 255).round().astype(np.uint8)


def position_photo(h: int = 96, w: int = 120) -> np.ndarray:
    """(h, w, 3) uint8 whose every pixel is unique: R = x, G = y, B = noise (a texture to match on)."""
    y, x = np.mgrid[0:h, 0:w]
    b = (smooth_noise(1, h, w)[..., 0] * 255).round()
    return np.stack([x, y, b], axis=-1).astype(np.uint8)


def test_a_quilted_texture_tiles_and_is_made_of_the_photos_patches():
    ex = position_photo()
    out = quilt.synthesize(ex, 128, 160, patch=24, seed=3)
    assert out.shape == (128, 160, 3) and out.dtype == np.uint8
    x, y = out[..., 0].astype(int), out[..., 1].astype(int)
    assert np.array_equal(out[..., 2], ex[y, x, 2])  # every pixel is a pixel of the photo, copied
    # in patches: most neighbours in the output were neighbours in the photo
    assert ((x[:, 1:] == x[:, :-1] + 1) & (y[:, 1:] == y[:, :-1])).mean() > 0.8
    assert ((y[1:] == y[:-1] + 1) & (x[1:] == x[:-1])).mean() > 0.8

    photo = noise_photo(0)
    assert metrics.seam_ratio(photo) > 2  # the photo does not tile: its wrap is a visible step
    ratios = [metrics.seam_ratio(quilt.synthesize(photo, 256, 256, seed=seed)) for seed in range(8)]
    # as a step between two columns inside it: one image's ratio moves by ±0.15 wherever the edge is put
    assert 0.9 < np.mean(ratios) < 1.1 and max(ratios) < 1.3


def test_the_seed_decides_the_texture():
    photo = noise_photo(1)
    a, b = (quilt.synthesize(photo, 192, 192, seed=s) for s in (5, 6))
    assert np.array_equal(a, quilt.synthesize(photo, 192, 192, seed=5)) and not np.array_equal(a, b)


@pytest.mark.parametrize("call, message", [
    (lambda: quilt.synthesize(np.zeros((20, 80, 3), np.uint8), 256, 256), "exemplar of 80×20 px is too small"),
    (lambda: quilt.synthesize(noise_photo(0), 256, 256, patch=81), "patch 81 does not fit a 200×160 exemplar: "
                                                                  "use a whole number from 8 to 80"),
    (lambda: quilt.synthesize(noise_photo(0), 256, 100, patch=64), "output of 100×256 px is too small for "
                                                                  "patches of 64 px: it needs at least 128×128"),
    (lambda: quilt.synthesize(noise_photo(0), 256, 256, seed=-1), "seed -1 must be a whole number ≥ 0"),
    (lambda: quilt.synthesize(np.zeros((64, 64, 5), np.uint8), 256, 256), "exemplar"),
])
def test_bad_input_says_what_would_fit(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.fixture
def mine(tiny_models: Path, tmp_path: Path) -> Path:
    """The tiny models folder plus a photo style `my_wall` learned from two photos of different sizes."""
    photos = [write_png(tmp_path / "photos" / f"wall{i}.png", noise_photo(i, 160 + 40 * i, 200) / 255)
              for i in range(2)]
    out = photostyle.learn(photos, "my_wall", tiny_models)
    assert out == tiny_models / "my_wall.safetensors"
    return tiny_models


def test_a_photo_style_is_drawn_alike_by_both_runtimes(mine: Path):
    from core.export_onnx import export_folder

    gen = load_generator("cpu", models_dir=mine)
    assert gen.styles == ["brick", "grass", "my_wall"] and gen.photo_style("my_wall") is not None
    a = gen.generate("my_wall", seed=4, size=256)
    assert a.shape == (256, 256, 3) and a.dtype == np.uint8 and metrics.seam_ratio(a) < 1.3
    assert np.array_equal(a, gen.generate("my_wall", seed=4, size=256))
    assert not np.array_equal(a, gen.generate("my_wall", seed=5, size=256))
    assert [s for s, _ in gen.generate_many("my_wall", [4, 5], size=256)] == [4, 5]
    maps = gen.generate_maps("my_wall", seed=4, size=256, maps=("albedo", "normal", "roughness"))
    assert np.array_equal(maps["albedo"], a) and maps["normal"].shape == (256, 256, 3)
    for mix in ("my_wall+brick", "brick:0.3+my_wall:0.7", {"my_wall": 1.0, "grass": 1.0}):
        with pytest.raises(ValueError, match="my_wall is a photo style: it cannot be mixed with other styles"):
            gen.generate(mix, size=256)
    assert np.array_equal(gen.generate({"my_wall": 1.0}, seed=4, size=256), a)
    with pytest.raises(ValueError, match="my_wall is a photo style: it has no GAN output"):
        gen.generate_gan("my_wall")
    assert gen.generate("brick", seed=1, size=256).shape == (256, 256, 3)  # the GAN's styles as before

    export_folder(mine)
    rt = runtime.load(models_dir=mine)
    assert rt.styles == gen.styles and np.array_equal(rt.generate("my_wall", seed=4, size=256), a)
    with pytest.raises(ValueError, match="my_wall is a photo style"):
        rt.generate_gan("my_wall")
    with pytest.raises(ValueError, match="my_wall is a photo style: it cannot be mixed"):
        rt.generate("grass+my_wall", size=256)


def test_a_style_file_holds_the_photos_and_a_tampered_one_is_refused(mine: Path):
    path = mine / "my_wall.safetensors"
    style = photostyle.read(path)
    assert [p.shape for p in style.photos] == [(160, 200, 3), (200, 200, 3)]
    assert style.meta["photos"] == ["wall0.png", "wall1.png"] and style.meta["kind"] == "exemplar"
    with pytest.raises(weights.ModelFileError, match="a photo style holds photos, not a model"):
        weights.build(path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(weights.ModelFileError, match="does not match its sha256"):
        photostyle.read(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gen = load_generator("cpu", models_dir=mine)
    assert "my_wall" not in gen.styles and any("sha256" in str(w.message) for w in caught)


def test_learn_refuses_a_taken_name_and_replaces_on_request(mine: Path, tmp_path: Path):
    photo = write_png(tmp_path / "other.png", noise_photo(7) / 255)
    with pytest.raises(ValueError, match="you learned a style of this name before .*pass --replace"):
        photostyle.learn([photo], "my_wall", mine)
    with pytest.raises(ValueError, match="gan-tiny.safetensors already has a style of this name"):
        photostyle.learn([photo], "brick", mine)
    with pytest.raises(ValueError, match="--name 'My Wall': use lower-case letters"):
        photostyle.learn([photo], "My Wall", mine)
    photostyle.learn([photo], "my_wall", mine, replace=True)
    assert photostyle.read(mine / "my_wall.safetensors").meta["photos"] == ["other.png"]


def test_large_photos_are_kept_at_the_scale_of_a_1024_texture(tmp_path: Path):
    big = np.zeros((1500, 3000, 3), np.uint8)
    big[::7] = 200
    out = photostyle.save(tmp_path / "big.safetensors", "big", [big], ["big.png"])
    assert photostyle.read(out).photos[0].shape == (512, 1024, 3)


def test_cli_learn_then_generate(tmp_path: Path, run_cli):
    photo = write_png(tmp_path / "wall.png", noise_photo(2) / 255)
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "TESSERA_CACHE": str(tmp_path / "cache")}
    r = run_cli("learn", photo, "--name", "my_wall", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "xdg" / "tessera" / "models" / "my_wall.safetensors")
    assert "my_wall" in run_cli("styles", env=env).stdout.split()
    r = run_cli("generate", "--style", "my_wall", "--size", "256", "--out", tmp_path / "t.png", env=env)
    assert r.returncode == 0 and (tmp_path / "t.png").is_file(), r.stderr
    r = run_cli("learn", photo, "--name", "my_wall", "--resume", env=env)
    assert r.returncode == 2 and r.stderr.strip() == ("error: --resume is for --method gan: a photo style "
                                                      "(--method quilt) is made in seconds")
    r = run_cli("learn", photo, "--name", "other", "--minutes", "5", env=env)  # not silently ignored
    assert r.returncode == 2 and r.stderr.strip() == ("error: --minutes is for --method gan (training); the "
                                                      "default method makes a photo style in seconds: add "
                                                      "--method gan to train")
    assert not (tmp_path / "xdg" / "tessera" / "models" / "other.safetensors").exists()


def test_batch_bakes_a_photo_style_and_names_its_photos(mine: Path, tmp_path: Path):
    import json

    from PIL import Image

    from core.batch import bake

    gen = load_generator("cpu", models_dir=mine)
    manifest, skipped = bake(gen, ["my_wall", "grass"], [0, 1], 256, tmp_path / "out", maps=("albedo", "normal"))
    m = json.loads(manifest.read_text())
    assert skipped == 0 and len(m["images"]) == 4 and str(mine / "my_wall.safetensors") in m["models"]
    assert m["training_data"]["your photos: wall0.png, wall1.png"] == "your own"
    first = next(e for e in m["images"] if e["style"] == "my_wall" and e["seed"] == 1)
    albedo = np.asarray(Image.open(tmp_path / "out" / first["files"]["albedo"]))
    assert np.array_equal(albedo, gen.generate("my_wall", seed=1, size=256))


def test_a_folder_of_maps_gives_its_albedos_and_photos_not_its_maps(tmp_path):
    """`tessera maps` and `generate --maps` write <name>_normal/_height/_roughness/_ao beside the albedo: learn
    leaves those out of a folder, with a warning; a file named on its own is taken as given."""
    img = (smooth_noise(0, 128, 128) * 255).astype(np.uint8)
    for name in ("bark_albedo", "bark_normal", "bark_height", "bark_roughness", "bark_ao", "photo"):
        write_png(tmp_path / f"{name}.png", img)
    with pytest.warns(UserWarning, match="left out 4 map"):
        files = photostyle.photo_files([tmp_path])
    assert [f.name for f in files] == ["bark_albedo.png", "photo.png"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert photostyle.photo_files([tmp_path / "bark_normal.png"]) == [tmp_path / "bark_normal.png"]
