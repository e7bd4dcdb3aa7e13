"""Issue 16: every image, path, name and run a user brings — on tiny random weights.

Image modes and numeric ranges, EXIF orientation, alpha, sizes from 1×1, long names, files left by a
kill, two runs on one folder, a rerun at another size, and style names with the mix syntax in them.
Images are made in each test; the CLI runs in-process through `core.cli.main`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core import api, batch, cli, imageio
from core.upscaler import Upscaler, UpscalerConfig, upscale_tiled
from helpers import REPO, cli_env, save_generator, save_upscaler, tiny_generator, tiny_upscaler


# helpers

@pytest.fixture
def gen(tiny_models):
    return api.load_generator(device="cpu", models_dir=tiny_models)


@pytest.fixture
def run(capsys, monkeypatch):
    """run(*argv) → (exit status, stdout, stderr) of `tessera ARGV` in this process."""
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it

    def go(*argv):
        capsys.readouterr()
        rc = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return rc, out, err
    return go


def ramp16(h: int = 8, w: int = 32) -> np.ndarray:
    return np.tile(np.linspace(0, 65535, w).round().astype(np.uint16), (h, 1))


def opened(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as im:
        im.load()
        return im.mode, np.asarray(im)


def one_line_error(rc: int, err: str, text: str) -> None:
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert text in err, err


# 1. modes: 16-bit, float, 32-bit integer, every mode Pillow opens

def test_16bit_grey_png_upscales_to_a_16bit_grey_png(tiny_models, tmp_path, run):
    src = tmp_path / "ramp.png"
    Image.fromarray(ramp16()).save(src)
    assert Image.open(src).mode == "I;16"
    rc, _, err = run("upscale", src, "--out", tmp_path / "big.png", "--models", tiny_models)
    assert rc == 0, err
    mode, big = opened(tmp_path / "big.png")
    assert mode == "I;16" and big.shape == (32, 128)
    assert abs(big.mean() / 65535 - 0.5) < 0.1 and (big > 65000).mean() < 0.2  # a ramp, not a white field


def test_own_height_map_upscaled_stays_a_16bit_height_map(tiny_models, tmp_path, run):
    rc, _, err = run("generate", "--style", "brick", "--seed", "1", "--size", "256", "--maps", "height",
                     "--out", f"{tmp_path / 'own'}/", "--models", tiny_models)
    assert rc == 0, err
    height = tmp_path / "own" / "brick_1_height.png"
    rc, _, err = run("upscale", height, "--out", tmp_path / "h.png", "--models", tiny_models)
    assert rc == 0, err
    mode, h = opened(tmp_path / "h.png")
    _, before = opened(height)
    assert mode == "I;16" and h.shape == (1024, 1024)
    assert (h >= 65535 * 0.99).mean() < 0.05
    assert abs(h.mean() - before.mean()) < 0.05 * 65535


def mode_image(mode: str) -> tuple[Image.Image, tuple[int, int, int]]:
    """A 4×6 image in `mode` showing one colour → (image, that colour as 8-bit sRGB)."""
    if mode == "1":
        return Image.new("1", (6, 4), 1), (255, 255, 255)
    if mode in ("I;16", "I;16B", "I;16L"):
        return Image.new(mode, (6, 4), 32896), (128, 128, 128)  # 32896 / 257 = 128
    if mode == "I":
        return Image.new("I", (6, 4), 32896), (128, 128, 128)
    if mode == "F":
        return Image.new("F", (6, 4), 128 / 255), (128, 128, 128)
    if mode in ("P", "PA"):
        im = Image.new("RGB", (6, 4), (200, 40, 10)).convert("P", palette=Image.Palette.ADAPTIVE)
        return (im if mode == "P" else im.convert("PA")), (200, 40, 10)
    rgb = Image.new("RGB", (6, 4), (200, 40, 10))
    if mode in ("L", "LA"):
        return Image.new(mode, (6, 4), 77 if mode == "L" else (77, 255)), (77, 77, 77)
    return rgb.convert(mode), (200, 40, 10)


MODES = ["1", "L", "LA", "P", "PA", "I", "I;16", "I;16B", "I;16L", "F", "RGB", "RGBA", "CMYK", "YCbCr", "LAB",
         "HSV"]


@pytest.mark.parametrize("mode", MODES)
def test_every_pillow_mode_keeps_its_range_and_meaning(mode, tmp_path):
    im, colour = mode_image(mode)
    fmt = {"I": "TIFF", "F": "TIFF", "CMYK": "TIFF", "YCbCr": "JPEG", "LAB": "TIFF", "I;16B": "TIFF"}.get(mode, "PNG")
    if mode in ("HSV", "PA", "I;16L"):  # no file format Pillow writes holds these: decode them directly
        rgb = imageio.to_rgb8(imageio.decode(im))
    else:
        path = tmp_path / f"img.{fmt.lower()}"
        im.save(path, format=fmt, **({"quality": 100} if fmt == "JPEG" else {}))
        rgb = imageio.read_image(path)
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8
    tol = 3 if mode in ("YCbCr", "LAB", "HSV", "CMYK") else 1
    assert np.abs(rgb.astype(int) - colour).max() <= tol, (mode, rgb[0, 0], colour)


@pytest.mark.parametrize("mode, layout", [("1", ((4, 6), np.uint8)), ("L", ((4, 6), np.uint8)),
                                          ("LA", ((4, 6, 2), np.uint8)), ("I;16", ((4, 6), np.uint16)),
                                          ("I", ((4, 6), np.uint16)), ("F", ((4, 6), np.float32)),
                                          ("RGB", ((4, 6, 3), np.uint8)), ("RGBA", ((4, 6, 4), np.uint8)),
                                          ("CMYK", ((4, 6, 3), np.uint8)), ("PA", ((4, 6, 4), np.uint8))])
def test_decode_keeps_grey_grey_and_16_bits_16(mode, layout):
    im, _ = mode_image(mode)
    arr = imageio.decode(im)
    assert (arr.shape, arr.dtype) == layout


def test_palette_images_grey_or_transparent():
    grey = Image.new("L", (4, 4), 90).convert("P")
    assert imageio.decode(grey).shape == (4, 4)
    trns = Image.new("RGB", (4, 4), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    trns.info["transparency"] = trns.getpixel((0, 0))
    arr = imageio.decode(trns)
    assert arr.shape == (4, 4, 4) and arr[..., 3].max() == 0


@pytest.mark.parametrize("mode, value, text", [("I", 70000, "32-bit integer image with values from 70000 to 70000"),
                                               ("I", -5, "values from -5"),
                                               ("F", 255.0, "float image with values from 255 to 255"),
                                               ("F", float("nan"), "float image")])
def test_values_outside_a_known_range_are_refused_in_one_line(mode, value, text, tiny_models, tmp_path, run):
    src = tmp_path / "odd.tif"
    Image.new(mode, (5, 5), value).save(src)
    rc, _, err = run("upscale", src, "--out", tmp_path / "big.png", "--models", tiny_models)
    one_line_error(rc, err, text)
    assert not (tmp_path / "big.png").exists()


def test_16bit_training_image_is_not_a_white_field(tmp_path):
    from training.common import StyleImages

    (tmp_path / "rock").mkdir()
    Image.fromarray(ramp16(16, 16)).save(tmp_path / "rock" / "ramp.png")
    data = StyleImages.from_folder(tmp_path)
    img = data.images[0][0]
    assert img.shape == (3, 16, 16)
    assert abs(img.float().mean().item() / 255 - 0.5) < 0.05 and img[0, 0, 0] == 0


# 2. the API: dtypes and ranges

def test_api_upscale_uint16_keeps_its_range(gen):
    x = np.repeat(ramp16()[..., None], 3, axis=2)
    y = gen.upscale(x)
    assert y.dtype == np.uint16 and y.shape == (32, 128, 3)
    assert abs(y.mean() / 65535 - 0.5) < 0.1 and (y > 65000).mean() < 0.2


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.int8, np.int16, np.complex64])
def test_api_upscale_refuses_other_dtypes_naming_the_accepted_ones(gen, dtype):
    with pytest.raises(ValueError, match=r"dtype .*use one of bool, uint8, uint16, float16, float32, float64"):
        gen.upscale(np.zeros((8, 8, 3), dtype))


@pytest.mark.parametrize("value, text", [(255.0, "floats from 0 to 255"), (-1.0, "floats from -1"),
                                         (np.nan, "NaN")])
def test_api_upscale_refuses_floats_outside_0_1(gen, value, text):
    x = np.zeros((8, 8, 3), np.float32)
    x[0, 0] = value
    with pytest.raises(ValueError, match=text):
        gen.upscale(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.uint8, np.bool_])
def test_api_upscale_dtypes_agree(gen, dtype):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, (8, 12, 3)).astype(np.uint8) * 255  # exact in every dtype
    x = base.astype(bool) if dtype == np.bool_ else base.astype(dtype) / (255 if dtype != np.uint8 else 1)
    y = gen.upscale(x.astype(dtype))
    ref = gen.upscale(base).astype(np.float64) / 255
    got = y.astype(np.float64) / (255 if y.dtype == np.uint8 else 1)
    assert y.dtype == (np.float32 if np.dtype(dtype).kind == "f" else np.uint8)
    assert np.abs(got - ref).max() <= 1 / 255 + 1e-3


# 3. EXIF orientation

def sideways_jpeg(path: Path, orientation: int = 6) -> Path:
    """Stored 8 high × 16 wide, left half red, right half blue; Orientation 6: turn 90° clockwise to view."""
    arr = np.zeros((8, 16, 3), np.uint8)
    arr[:, :8] = (230, 20, 20)
    arr[:, 8:] = (20, 20, 230)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    return path


def test_jpeg_with_exif_orientation_6_is_upscaled_upright(tiny_models, tmp_path, run):
    src = sideways_jpeg(tmp_path / "phone.jpg")
    rc, _, err = run("upscale", src, "--out", tmp_path / "big.png", "--models", tiny_models)
    assert rc == 0, err
    _, big = opened(tmp_path / "big.png")
    assert big.shape == (64, 32, 3)  # 16 high × 8 wide, ×4
    top, bottom = big[:24].astype(int), big[40:].astype(int)  # viewed upright, the left (red) half is on top
    assert (top[..., 0] - top[..., 2]).mean() > 100 and (bottom[..., 2] - bottom[..., 0]).mean() > 100


def test_training_reads_photos_upright(tmp_path):
    from training.common import StyleImages

    (tmp_path / "rock").mkdir()
    sideways_jpeg(tmp_path / "rock" / "phone.jpg")
    img = StyleImages.from_folder(tmp_path).images[0][0]
    assert img.shape == (3, 16, 8)
    assert img[0, 0, 0] > 150 and img[2, -1, 0] > 150  # red on top, blue below


def test_read_image_applies_every_orientation(tmp_path):
    expect = {1: (8, 16), 3: (8, 16), 5: (16, 8), 6: (16, 8), 8: (16, 8)}
    for orientation, shape in expect.items():
        assert imageio.read_image(sideways_jpeg(tmp_path / f"o{orientation}.jpg", orientation)).shape[:2] == shape


# 4. alpha

def cutout() -> np.ndarray:
    """16×16 RGBA: left half opaque green; right half fully transparent, hiding magenta."""
    arr = np.zeros((16, 16, 4), np.uint8)
    arr[:, :8] = (30, 200, 40, 255)
    arr[:, 8:] = (255, 0, 255, 0)
    return arr


def test_rgba_png_keeps_its_transparency(tiny_models, tmp_path, run):
    src = tmp_path / "leaf.png"
    Image.fromarray(cutout(), "RGBA").save(src)
    rc, _, err = run("upscale", src, "--out", tmp_path / "big.png", "--models", tiny_models, "--no-tileable")
    assert rc == 0, err
    mode, big = opened(tmp_path / "big.png")
    assert mode == "RGBA" and big.shape == (64, 64, 4)
    assert big[:, 40:, 3].mean() < 25 and big[:, :24, 3].mean() > 200  # transparent stays transparent
    assert big[:, :24, 1].mean() > 150 and big[:, :24, 0].mean() < 80  # the opaque part is still green


def test_grey_alpha_and_palette_transparency_are_kept(gen, tmp_path, run, tiny_models):
    la = np.stack([np.full((8, 8), 120, np.uint8), np.tile(np.array([0, 255] * 4, np.uint8), (8, 1))], axis=2)
    out = gen.upscale(la)
    assert out.shape == (32, 32, 2) and out.dtype == np.uint8
    pal = Image.fromarray(cutout()[..., :3]).convert("P")
    pal.info["transparency"] = pal.getpixel((12, 0))
    pal.save(tmp_path / "pal.png", transparency=pal.getpixel((12, 0)))
    rc, _, err = run("upscale", tmp_path / "pal.png", "--out", tmp_path / "big.png", "--models", tiny_models)
    assert rc == 0, err
    assert opened(tmp_path / "big.png")[0] == "RGBA"


def test_training_says_when_it_drops_transparency(tmp_path):
    from training.common import StyleImages

    (tmp_path / "leaf").mkdir()
    Image.fromarray(cutout(), "RGBA").save(tmp_path / "leaf" / "a.png")
    Image.fromarray(np.full((8, 8, 4), 255, np.uint8), "RGBA").save(tmp_path / "leaf" / "opaque.png")
    with pytest.warns(UserWarning, match=r"a\.png: transparency ignored") as record:
        StyleImages.from_folder(tmp_path)
    assert not any("opaque.png" in str(w.message) for w in record)


# 5. grey stays grey

def test_1bit_image_upscales_to_grey(tiny_models, tmp_path, run):
    checker = (np.indices((16, 16)).sum(axis=0) // 4) % 2 == 1
    Image.fromarray(checker).save(tmp_path / "bw.png")
    assert Image.open(tmp_path / "bw.png").mode == "1"
    rc, _, err = run("upscale", tmp_path / "bw.png", "--out", tmp_path / "big.png", "--models", tiny_models)
    assert rc == 0, err
    mode, big = opened(tmp_path / "big.png")
    assert mode == "L" and big.shape == (64, 64)
    assert abs(big.astype(float).mean() - 127.5) < 30


def test_grey_array_upscales_to_a_grey_array(gen):
    x = (np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8)
    y = gen.upscale(x)
    assert y.shape == (32, 32) and y.dtype == np.uint8
    rgb = gen.upscale(np.repeat(x[..., None], 3, axis=2)).astype(float)
    assert np.abs(y - rgb.mean(axis=2)).max() <= 1  # what the RGB model makes of it, without the fringes


# 6. sizes

@pytest.mark.parametrize("h, w", [(1, 1), (1, 9), (2, 2), (4, 4), (3, 17), (16, 16)])
@pytest.mark.parametrize("tileable", [True, False])
def test_every_size_from_1x1_upscales(gen, h, w, tileable):
    x = np.random.default_rng(h * 100 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    y = gen.upscale(x, scale=4, tileable=tileable)
    assert y.shape == (4 * h, 4 * w, 3)
    # a flat colour, wrapped or mirrored, is flat all round: the same 4×4 cell of the ×4 everywhere
    flat = gen.upscale(np.full((h, w, 3), (200, 100, 50), np.uint8), scale=4, tileable=tileable).astype(int)
    assert np.abs(flat - np.tile(flat[:4, :4], (h, w, 1))).max() <= 1
    if tileable:  # wrapped around: the image tiled 2×2 upscales to its upscale tiled 2×2
        twice = gen.upscale(np.tile(x, (2, 2, 1)), scale=4, tileable=True).astype(int)
        assert np.abs(twice - np.tile(y, (2, 2, 1))).max() <= 1


def test_a_one_pixel_tileable_image_is_a_flat_field(gen):
    """On the torus a 1×1 image is a flat colour of any size: its upscale is one period of that one's."""
    colour = np.array([200, 100, 50], np.uint8)
    y = gen.upscale(np.broadcast_to(colour, (1, 1, 3)).copy(), tileable=True)
    field = gen.upscale(np.broadcast_to(colour, (8, 8, 3)).copy(), tileable=True)
    assert np.abs(y.astype(int) - field[:4, :4]).max() <= 1


@pytest.mark.parametrize("tileable", [True, False])
def test_the_shipped_depth_upscales_16x16(tileable):
    model = Upscaler(UpscalerConfig(scale=4, channels=8, blocks=8)).eval()  # context 22 > 16
    assert model.cfg.context > 16
    y = upscale_tiled(model, torch.rand(1, 3, 16, 16), tile=256, tileable=tileable)
    assert y.shape == (1, 3, 64, 64) and torch.isfinite(y).all()


@pytest.mark.parametrize("tileable", [True, False])
def test_small_image_context_is_the_wrapped_or_mirrored_image(tileable):
    from core.upscaler import pad_context

    x = torch.rand(1, 3, 5, 7)
    # numpy pads by any amount: wrapping around, or mirrored without repeating the edge
    ref = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (12, 12), (12, 12)),
                                  mode="wrap" if tileable else "reflect"))
    assert torch.equal(pad_context(x, 12, tileable), ref)
    mode = "circular" if tileable else "reflect"
    assert torch.equal(pad_context(x, 3, tileable), F.pad(x, (3, 3, 3, 3), mode=mode))


@pytest.mark.parametrize("size, extra", [((1, 1), []), ((4, 4), ["--no-tileable"]), ((16, 16), ["--no-tileable"])])
def test_cli_upscales_tiny_images(size, extra, tiny_models, tmp_path, run):
    Image.fromarray(np.full((*size, 3), (90, 120, 60), np.uint8)).save(tmp_path / "tiny.png")  # colour: RGB out
    rc, _, err = run("upscale", tmp_path / "tiny.png", "--out", tmp_path / "big.png", "--models", tiny_models, *extra)
    assert rc == 0, err
    assert opened(tmp_path / "big.png")[1].shape == (4 * size[0], 4 * size[1], 3)


def test_an_empty_array_is_refused(gen):
    with pytest.raises(ValueError, match="holds no pixels"):
        gen.upscale(np.zeros((0, 4, 3), np.uint8))


# 7. long names

def test_out_with_a_250_character_name_is_written(tiny_models, tmp_path, run):
    Image.fromarray(np.full((4, 4, 3), 90, np.uint8)).save(tmp_path / "in.png")
    out = tmp_path / "out" / ("x" * 246 + ".png")
    rc, _, err = run("upscale", tmp_path / "in.png", "--out", out, "--models", tiny_models)
    assert rc == 0, err
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # and no temporary file beside it


@pytest.mark.parametrize("command", ["upscale", "generate"])
def test_a_name_too_long_is_refused_before_any_work(command, tiny_models, tmp_path, run, monkeypatch):
    Image.fromarray(np.full((4, 4, 3), 90, np.uint8)).save(tmp_path / "in.png")
    monkeypatch.setattr(cli, "_load", lambda args: pytest.fail("models loaded before the name was checked"))
    long = "y" * 252 + ".png"
    for out in (tmp_path / long, tmp_path / ("d" * 256) / "out.png"):  # a file name, a folder still to be made
        argv = (["upscale", tmp_path / "in.png"] if command == "upscale"
                else ["generate", "--style", "brick", "--size", "256"])
        rc, _, err = run(*argv, "--out", out, "--models", tiny_models)
        one_line_error(rc, err, "bytes long; this file system allows 255")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "models"]


def test_temporary_names_stay_within_the_limit(tmp_path):
    from core.files import atomic_path

    target = tmp_path / ("é" * 125 + ".png")  # 254 bytes in UTF-8
    with atomic_path(target) as tmp:
        assert len(os.fsencode(tmp.name)) <= 255
        tmp.write_bytes(b"x")
    assert target.read_bytes() == b"x"


# 8. what a kill leaves, and what another run is writing

HOLD = """
import sys, time
from core.files import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half an image")
    print("writing", flush=True)
    sys.stdin.readline()
    tmp.write_bytes(b"a whole image")
"""


def writer(target: Path) -> subprocess.Popen:
    """A process in the middle of writing `target` (it finishes when told on stdin)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], cwd=REPO, env=cli_env(), text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    return proc


def test_generate_cleans_up_what_a_killed_run_left(tiny_models, tmp_path, run):
    out = tmp_path / "own"
    out.mkdir()
    proc = writer(out / "rock_9_albedo.png")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert list(out.glob(".*.tmp")), "the kill left a temporary file"
    rc, _, err = run("generate", "--style", "brick", "--seed", "1", "--size", "256", "--maps", "albedo,height",
                     "--out", f"{out}/", "--models", tiny_models)
    assert rc == 0, err
    assert not list(out.glob(".*.tmp"))
    assert sorted(p.name for p in out.glob("*.png")) == ["brick_1_albedo.png", "brick_1_height.png"]


@pytest.mark.parametrize("command", ["batch", "generate"])
def test_a_run_never_deletes_another_runs_file_in_flight(command, tiny_models, tmp_path, run):
    out = tmp_path / "b"
    out.mkdir()
    (out / ".notes.tmp").write_text("the user's own file")
    proc = writer(out / "other_0_albedo.png")
    try:
        argv = (["batch", "--styles", "brick", "--seeds", "0", "--size", "256", "--quiet"] if command == "batch"
                else ["generate", "--style", "brick", "--size", "256"])
        rc, _, err = run(*argv, "--out", f"{out}/", "--models", tiny_models)
        assert rc == 0, err
    finally:
        proc.communicate("go\n", timeout=30)
    assert proc.returncode == 0, "the other run's temporary file was deleted under it"
    assert (out / "other_0_albedo.png").read_bytes() == b"a whole image"
    assert (out / ".notes.tmp").is_file()


# 9. two runs on one folder

def test_a_second_batch_on_the_same_folder_is_refused_naming_the_first(tiny_models, tmp_path, run, monkeypatch):
    out = tmp_path / "b"
    common = ["--size", "256", "--out", out, "--models", tiny_models, "--quiet"]
    second: dict = {}
    real = batch.write_maps

    def start_another_run_first(paths, maps, **kwargs):  # the second run starts while the first one bakes
        if not second:
            second["started"] = True
            second["result"] = run("batch", "--styles", "grass", "--seeds", "5-6", *common)
        return real(paths, maps, **kwargs)

    monkeypatch.setattr(batch, "write_maps", start_another_run_first)
    rc, _, err = run("batch", "--styles", "brick", "--seeds", "0-1", *common)
    assert rc == 0, err
    rc2, _, err2 = second["result"]
    one_line_error(rc2, err2, f"is in use by another Tessera batch run (process {os.getpid()} on")
    manifest = json.loads((out / "manifest.json").read_text())
    assert {(e["style"], e["seed"]) for e in manifest["images"]} == {("brick", 0), ("brick", 1)}
    assert sorted(p.name for p in out.glob("*.png")) == ["brick_0_albedo.png", "brick_1_albedo.png"]
    assert not (out / batch.LOCK).exists()  # a finished run leaves no lock behind
    rc, _, err = run("batch", "--styles", "grass", "--seeds", "5-6", *common)
    assert rc == 0, err


# 10. a rerun at another size

def test_batch_at_another_size_does_not_replace_finished_images(tiny_models, tmp_path, run):
    out = tmp_path / "b"
    args = ["batch", "--styles", "brick", "--seeds", "0-1", "--out", out, "--models", tiny_models, "--quiet"]
    assert run(*args, "--size", "256")[0] == 0
    before = (out / "brick_0_albedo.png").read_bytes()
    rc, _, err = run(*args, "--size", "320")
    one_line_error(rc, err, "already holds 2 image(s) of these styles and seeds at another size "
                            "(e.g. brick_0_albedo.png, 256×256)")
    assert (out / "brick_0_albedo.png").read_bytes() == before
    rc, _, err = run(*args, "--size", "320", "--replace")
    assert rc == 0, err
    assert Image.open(out / "brick_0_albedo.png").size == (320, 320)
    assert {e["size"] for e in json.loads((out / "manifest.json").read_text())["images"]} == {320}


def test_a_generated_image_in_the_batch_folder_is_not_replaced_either(tiny_models, tmp_path, run):
    out = tmp_path / "b"
    assert run("generate", "--style", "brick", "--seed", "3", "--size", "320", "--out", f"{out}/",
               "--models", tiny_models)[0] == 0
    rc, _, err = run("batch", "--styles", "brick", "--seeds", "3", "--size", "256", "--out", out,
                     "--models", tiny_models, "--quiet")
    one_line_error(rc, err, "brick_3_albedo.png, 320×320")


def test_a_rerun_with_other_maps_keeps_the_first_maps_in_the_manifest(tiny_models, tmp_path, run):
    out = tmp_path / "b"
    args = ["batch", "--styles", "brick", "--seeds", "0", "--size", "256", "--out", out, "--models", tiny_models,
            "--quiet"]
    assert run(*args, "--maps", "albedo,normal")[0] == 0
    assert run(*args, "--maps", "albedo,height")[0] == 0
    (entry,) = json.loads((out / "manifest.json").read_text())["images"]
    assert sorted(entry["files"]) == ["albedo", "height", *(["height_exr"] if imageio.have_exr() else []), "normal"]


# 11. style names

def models_with_styles(folder: Path, styles: list[str]) -> Path:
    save_generator(folder / "gan.safetensors", tiny_generator(), styles=styles)
    save_upscaler(folder / "sr-x4.safetensors", tiny_upscaler(4))
    return folder


def test_a_style_named_with_mix_characters_is_generatable(tmp_path, run):
    models = models_with_styles(tmp_path / "models", ["rock:wet", "a+b"])
    rc, out, err = run("styles", "--models", models)
    assert out.split() == ["rock:wet", "a+b"]
    for style, stem in (("rock:wet", "rock-wet"), ("a+b", "a-b")):
        rc, out, err = run("generate", "--style", style, "--seed", "1", "--size", "256", "--out", f"{tmp_path}/",
                           "--models", models)
        assert rc == 0, err
        assert (tmp_path / f"{stem}_1_albedo.png").is_file()
    rc, _, err = run("batch", "--styles", "rock:wet", "--seeds", "0", "--size", "256", "--out", tmp_path / "b",
                     "--models", models, "--quiet")
    assert rc == 0, err


@pytest.mark.parametrize("names, text", [(["rock:wet", "sand"], "holds ':', which style mixes and lists use"),
                                         (["a+b"], "holds '+'"), (["a,b"], "holds ','"),
                                         ([" rock"], "begins or ends with a space"),
                                         (["rock wet", "rock-wet"], "would be saved under the same file names"),
                                         (["Rock", "rock"], "would be saved under the same file names")])
def test_training_refuses_style_folders_that_could_not_be_generated(names, text, tmp_path, capsys):
    from training.cli import main as training_main
    from training_helpers import cli_flags, gan_kwargs, smooth_noise, write_png

    data = tmp_path / "data"
    for i, name in enumerate(names):
        write_png(data / name / "a.png", smooth_noise(i, 32, 32))
    if len({n.lower() for n in names}) < len(names) and not (data / names[1]).is_dir():
        pytest.skip("this file system ignores case")
    rc = training_main(["gan", *cli_flags(gan_kwargs(data, tmp_path / "run"))])
    err = capsys.readouterr().err
    assert rc == 2 and text in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_batch_refuses_styles_that_share_file_names(tmp_path, run):
    models = models_with_styles(tmp_path / "models", ["rock wet", "rock-wet"])
    rc, _, err = run("batch", "--seeds", "0", "--size", "256", "--out", tmp_path / "b", "--models", models, "--quiet")
    one_line_error(rc, err, "styles 'rock wet' and 'rock-wet' would be saved under the same file names")
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").iterdir())


def test_training_out_with_a_name_too_long_is_refused_before_training(tmp_path, capsys):
    from training.cli import main as training_main
    from training_helpers import cli_flags, gan_kwargs, make_dataset

    data = make_dataset(tmp_path / "data")
    rc = training_main(["gan", *cli_flags(gan_kwargs(data, tmp_path / ("r" * 256)))])
    err = capsys.readouterr().err
    assert rc == 2 and "bytes long; this file system allows 255" in err and err.count("\n") == 1, err


# review of issue 16: grey stored as colour, 16-bit colour PNGs

def png16(arr: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG that Pillow cannot write: grey + alpha (colour type 4), RGB (2) or RGBA (6)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = arr.shape[:2]
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in arr)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16bit_grey_alpha_png_upscales_to_grey_alpha(tiny_models, tmp_path, run):
    ramp = np.tile(np.linspace(0, 65535, 16), (16, 1)).round()
    alpha = np.where(np.arange(16) < 8, 65535, 0)[None, :].repeat(16, axis=0)
    (tmp_path / "la16.png").write_bytes(png16(np.stack([ramp, alpha], axis=2), 4))
    rc, _, err = run("upscale", tmp_path / "la16.png", "--out", tmp_path / "o.png", "--models", tiny_models)
    assert rc == 0, err
    (line,) = [line for line in err.splitlines() if "16-bit" in line]  # one line, no source shown
    assert line.startswith("warning: ") and "la16.png: a 16-bit grey + alpha PNG, read at 8 bits per channel" in line
    mode, big = opened(tmp_path / "o.png")
    assert mode == "LA" and big.shape == (64, 64, 2)  # grey in, grey out: no channels apart
    assert big[:, :24, 1].mean() > 200 and big[:, 40:, 1].mean() < 25


def test_colour_with_equal_channels_is_read_as_grey(tmp_path):
    grey = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (4, 1))
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 200)])
    Image.fromarray(rgba[..., :3]).save(tmp_path / "g.png")
    Image.fromarray(rgba).save(tmp_path / "ga.png")
    assert np.array_equal(imageio.read_pixels(tmp_path / "g.png"), grey)
    assert np.array_equal(imageio.read_pixels(tmp_path / "ga.png"), rgba[..., [0, 3]])
    rgba[0, 0, 2] += 1  # one pixel with colour: colour
    Image.fromarray(rgba).save(tmp_path / "c.png")
    assert imageio.read_pixels(tmp_path / "c.png").shape == (4, 16, 4)


def test_16bit_colour_png_warns_that_it_is_read_at_8_bits(tmp_path):
    red = np.zeros((4, 4, 3))
    red[..., 0] = 65535
    (tmp_path / "rgb16.png").write_bytes(png16(red, 2))
    with pytest.warns(UserWarning, match=r"rgb16\.png: a 16-bit colour PNG, read at 8 bits"):
        img = imageio.read_pixels(tmp_path / "rgb16.png")
    assert img.shape == (4, 4, 3) and img[0, 0].tolist() == [255, 0, 0]
    Image.fromarray(ramp16()).save(tmp_path / "grey16.png")  # 16-bit grey: read at 16 bits, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert imageio.read_pixels(tmp_path / "grey16.png").dtype == np.uint16


def test_batch_at_another_size_with_other_maps_is_refused_too(tiny_models, tmp_path, run):
    out = tmp_path / "d"
    args = ["batch", "--styles", "brick", "--seeds", "0", "--out", out, "--models", tiny_models, "--quiet"]
    assert run(*args, "--size", "256")[0] == 0
    rc, _, err = run(*args, "--size", "320", "--maps", "normal")
    one_line_error(rc, err, "already holds 1 image(s) of these styles and seeds at another size "
                            "(e.g. brick_0_albedo.png, 256×256)")
    (entry,) = json.loads((out / "manifest.json").read_text())["images"]
    assert (entry["size"], entry["files"]) == (256, {"albedo": "brick_0_albedo.png"})
    rc, _, err = run(*args, "--size", "320", "--maps", "normal", "--replace")
    assert rc == 0, err
    (entry,) = json.loads((out / "manifest.json").read_text())["images"]  # disk and manifest agree
    assert (entry["size"], entry["files"]) == (320, {"normal": "brick_0_normal.png"})
    assert sorted(p.name for p in out.glob("*.png")) == ["brick_0_normal.png"]


# review of issue 16: temporary files

def test_the_sweep_takes_only_names_tessera_makes(tmp_path):
    from core.files import sweep_stale

    own = [".notes.tessera-user.tmp", ".a.png.tessera-0123abcd9.tmp", ".a.png.tessera-0123ABCD.tmp"]
    for name in own:
        (tmp_path / name).write_text("the user's")
    (tmp_path / ".a.png.tessera-0123abcd.tmp").write_bytes(b"left by a kill")
    assert sweep_stale(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(own)


def test_a_temporary_file_whose_lock_a_sweep_took_is_not_used(tmp_path, monkeypatch):
    from core import files

    taken: list[str] = []
    real = files.try_lock

    def sweep_first(fd: int) -> bool:  # a sweep locks the first file (to delete it) before the writer can
        if not taken:
            taken.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
            return False
        return real(fd)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc")
    monkeypatch.setattr(files, "try_lock", sweep_first)
    with files.atomic_path(tmp_path / "a.png") as tmp:
        assert taken and tmp.name != taken[0]  # not the file the sweep is about to delete
        tmp.write_bytes(b"whole")
    (tmp_path / taken[0]).unlink()  # what the sweep then does
    assert (tmp_path / "a.png").read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_without_fcntl_files_are_closed_before_they_are_renamed_or_deleted(tmp_path, monkeypatch):
    """Windows has no fcntl, and renaming or deleting a file that is open fails there: simulated here."""
    from core import files

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc")

    def still_open(path) -> bool:
        targets = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                targets.add(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:  # the listing's own descriptor, closed by now
                pass
        return os.path.abspath(path) in targets

    def like_windows(real):
        def call(src, *rest, **kw):
            if still_open(src):
                raise PermissionError(32, "The process cannot access the file because it is being used", str(src))
            return real(src, *rest, **kw)
        return call

    monkeypatch.setattr(files, "fcntl", None)
    monkeypatch.setattr(os, "replace", like_windows(os.replace))
    monkeypatch.setattr(os, "unlink", like_windows(os.unlink))
    files.write_text(tmp_path / "a.txt", "one")
    files.write_text(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two"
    old = tmp_path / ".b.png.tessera-0123abcd.tmp"  # left by a kill two days ago
    old.write_text("x")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    assert files.sweep_stale(tmp_path) == 1
    with batch.folder_lock(tmp_path):
        assert (tmp_path / batch.LOCK).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


# review of issue 16: names too long on the input side

def test_an_input_or_batch_folder_name_too_long_is_one_line(tiny_models, tmp_path, run):
    (tmp_path / "ln").mkdir()
    rc, _, err = run("batch", "--styles", "brick", "--seeds", "0", "--size", "256", "--out",
                     tmp_path / "ln" / ("d" * 256), "--models", tiny_models)
    one_line_error(rc, err, "name is 256 bytes long; this file system allows 255")
    rc, _, err = run("upscale", tmp_path / ("p" * 300 + ".png"), "--out", tmp_path / "o.png", "--models", tiny_models)
    one_line_error(rc, err, "name is 304 bytes long; this file system allows 255")
    rc, _, err = run("styles", "--models", tmp_path / ("m" * 256))
    one_line_error(rc, err, "name is 256 bytes long; this file system allows 255")


# review of issue 16: messages in words, not Python class names

@pytest.mark.skipif(not imageio.have_exr(), reason="needs OpenEXR")
def test_upscaling_tessera_s_own_exr_says_to_use_the_png(tiny_models, tmp_path, run):
    rc, _, err = run("generate", "--style", "brick", "--seed", "1", "--size", "256", "--maps", "height",
                     "--out", f"{tmp_path / 'own'}/", "--models", tiny_models)
    assert rc == 0, err
    rc, _, err = run("upscale", tmp_path / "own" / "brick_1_height.exr", "--out", tmp_path / "o.png",
                     "--models", tiny_models)
    one_line_error(rc, err, "an OpenEXR image; Tessera does not read EXR: use the 16-bit PNG it writes beside it "
                            "(brick_1_height.png)")


@pytest.mark.parametrize("content, text", [(b"not an image", "not a readable image (not a format Pillow knows)"),
                                           (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "not a readable image")])
def test_unreadable_images_are_said_in_words(content, text, tmp_path):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(text)) as info:
        imageio.read_pixels(tmp_path / "bad.png")
    assert "Error" not in str(info.value)


@pytest.mark.parametrize("content, text", [("not json", "not valid JSON"), ('{"images": [{"file": "x.png"}]}',
                                                                           "the key 'style' is missing"),
                                           ('{"images": 3}', "does not hold the image records")])
def test_a_foreign_manifest_is_said_in_words(content, text, tmp_path):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ValueError, match=re.escape(text)) as info:
        batch.read_manifest(tmp_path)
    assert "Error" not in str(info.value)


@pytest.mark.parametrize("content, text", [(b"\x01", "too short"), (b"\x04\0\0\0\0\0\0\0nope", "header is not JSON"),
                                           (b"\x02\0\0\0\0\0\0\0[]", "header is not a JSON object")])
def test_a_broken_weights_header_is_said_in_words(content, text, tmp_path):
    from core.catalog import peek

    (tmp_path / "w.safetensors").write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(text)) as info:
        peek(tmp_path / "w.safetensors")
    assert "Error" not in str(info.value)


# review of issue 16: one reader

def test_open_image_reads_a_file_object_upright_naming_it(tmp_path):
    import io

    data = io.BytesIO(sideways_jpeg(tmp_path / "o.jpg").read_bytes())
    assert imageio.open_image(data, "pkg:o.jpg").size == (8, 16)  # turned upright, as from a path
    with pytest.raises(imageio.UnreadableImage, match=r"^pkg:bad\.png: not a readable image"):
        imageio.open_image(io.BytesIO(b"junk"), "pkg:bad.png")
    named = io.BytesIO(b"junk")
    named.name = "inside.zip!bad.png"
    with pytest.raises(imageio.UnreadableImage, match=r"^inside\.zip!bad\.png: "):
        imageio.open_image(named)


def test_training_and_batch_share_one_file_name_check():
    assert batch.same_file_names(["rock wet", "sand", "Rock-Wet"]) == ("rock wet", "Rock-Wet")
    assert batch.same_file_names(["rock", "sand"]) is None


# review of issue 16: what public functions say

def test_read_image_refuses_an_unknown_alpha_choice(tmp_path):
    Image.fromarray(cutout()).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="alpha='drop': use 'warn' or 'ignore'"):
        imageio.read_image(tmp_path / "a.png", alpha="drop")  # type: ignore[arg-type]


def test_docstrings_say_what_is_raised_and_the_shapes():
    from core.upscaler import pad_context

    assert "ValueError" in (batch.plan.__doc__ or "") and "ValueError" in (imageio.write_png.__doc__ or "")
    assert "(B, C, H + 2m, W + 2m)" in (pad_context.__doc__ or "")


def test_a_batch_sweeps_its_folder_once_not_per_file(tiny_models, tmp_path, run, monkeypatch):
    from core import files

    calls: list[str] = []
    real = files.sweep_stale

    def counted(folder, name=None):
        calls.append(f"{folder}:{name}")
        return real(folder, name)

    monkeypatch.setattr(files, "sweep_stale", counted)
    monkeypatch.setattr(batch, "sweep_stale", counted)
    rc, _, err = run("batch", "--styles", "brick,grass", "--seeds", "0-1", "--size", "256", "--maps", "albedo,ao",
                     "--out", tmp_path / "b", "--models", tiny_models, "--quiet")
    assert rc == 0, err
    assert calls == [f"{tmp_path / 'b'}:None"]
    calls.clear()
    rc, _, err = run("generate", "--style", "brick", "--size", "256", "--maps", "albedo,normal,ao",
                     "--out", f"{tmp_path / 'g'}/", "--models", tiny_models)
    assert rc == 0, err
    assert len(calls) <= 1
