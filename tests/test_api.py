"""The Python API on tiny random weights: validation, determinism, exact seamlessness, devices, paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import helpers
from core import api
from helpers import STYLES

VALID = "multiple of 64 from 256 to 8192"


@pytest.fixture
def gen(tiny_models):
    return api.load_generator(device="cpu", models_dir=tiny_models)


# sizes and styles

@pytest.mark.parametrize("size", [256, 320, 1024, 8192, np.int64(512)])
def test_check_size_accepts(size):
    assert api.check_size(size) == int(size)
    assert type(api.check_size(size)) is int


@pytest.mark.parametrize("size", [0, -64, 100, 8256, 192, 1024.5, 1024.0, True, "1024", None])
def test_check_size_rejects(size):
    with pytest.raises(ValueError, match=VALID):
        api.check_size(size)


def test_unknown_style_lists_valid_ones(gen):
    with pytest.raises(ValueError, match="unknown style 'lava'.*brick, grass"):
        gen.generate("lava", seed=0, size=256)
    with pytest.raises(ValueError, match="brick, grass"):
        gen.generate("brick+lava", seed=0, size=256)


@pytest.mark.parametrize("spec, expect", [
    ("grass", {"grass": 1.0}),
    ("grass+rock", {"grass": 1.0, "rock": 1.0}),
    ("grass:0.7+rock:0.3", {"grass": 0.7, "rock": 0.3}),
    (" grass : 2 + rock ", {"grass": 2.0, "rock": 1.0}),
    ("grass+grass:0.5", {"grass": 1.5}),
])
def test_parse_style(spec, expect):
    assert api.parse_style(spec) == pytest.approx(expect)


@pytest.mark.parametrize("spec, message", [
    ("grass:abc", "not a number"),
    ("grass:-1", "≥ 0"),
    ("grass:nan", "finite"),
    ("grass:inf+rock", "finite"),
    ("grass+", "empty name"),
    (":0.5", "empty name"),
])
def test_parse_style_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        api.parse_style(spec)


def test_style_weights_normalised(gen):
    _, w = gen.style_weights("grass:3+brick:1")
    assert torch.allclose(w, torch.tensor([[0.25, 0.75]]))   # file order: brick, grass
    _, w = gen.style_weights({"brick": 2.0})
    assert torch.allclose(w, torch.tensor([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="more than 0"):
        gen.style_weights("brick:0+grass:0")
    for bad in ({"brick": float("nan")}, {"brick": float("inf"), "grass": 1.0}, {"brick": 2.0, "grass": -1.0}):
        with pytest.raises(ValueError, match="finite number ≥ 0"):
            gen.style_weights(bad)


# generation

def test_generate_shape_dtype_determinism(gen):
    a = gen.generate("brick", seed=1, size=256)
    assert a.shape == (256, 256, 3) and a.dtype == np.uint8
    assert np.array_equal(a, gen.generate("brick", seed=1, size=256))
    assert not np.array_equal(a, gen.generate("brick", seed=2, size=256))
    assert not np.array_equal(a, gen.generate("grass", seed=1, size=256))
    assert a.std() > 1.0  # not a flat image


def test_generate_non_square_multiple_sizes(gen):
    assert gen.generate("grass+brick", seed=0, size=320).shape == (320, 320, 3)


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True, "3"])
def test_generate_bad_seed(gen, seed):
    with pytest.raises(ValueError, match="seed"):
        gen.generate("brick", seed=seed, size=256)


def test_generate_bad_size(gen):
    with pytest.raises(ValueError, match=VALID):
        gen.generate("brick", seed=0, size=100)


def test_final_texture_is_exactly_seamless(gen):
    """The upscaled GAN output commutes with rolls: upscale(roll(x, k)) == roll(upscale(x), 4k)."""
    x = gen.generate_gan("grass", seed=4, size=64)
    assert x.shape == (1, 3, 64, 64) and 0 <= x.min() and x.max() <= 1
    y = gen._upscale(x, 4, tileable=True)
    for k in [(0, 1), (7, 0), (13, 29)]:
        rolled = gen._upscale(torch.roll(x, shifts=k, dims=(2, 3)), 4, tileable=True)
        assert (rolled - torch.roll(y, shifts=(4 * k[0], 4 * k[1]), dims=(2, 3))).abs().max() < 1e-5
    # the same at the uint8 level: float rounding may flip a value by one step, nothing more
    img = np.ascontiguousarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    big = gen.upscale(img, scale=4)
    rolled = gen.upscale(np.roll(img, (5, 11), axis=(0, 1)), scale=4)
    diff = np.abs(rolled.astype(int) - np.roll(big, (20, 44), axis=(0, 1)).astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_generate_is_tiled_gan_through_upscaler(gen):
    """generate() is exactly the GAN's image through the ×4 upscaler (so it inherits seamlessness)."""
    x = gen.generate_gan("brick", seed=9, size=64)
    expect = (gen._upscale(x, 4, tileable=True)[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(gen.generate("brick", seed=9, size=256), expect)


@pytest.mark.parametrize("size", [256, 1088])  # 1088: the GAN image is wider than a tile, so tiled
def test_generate_many_equals_generate_per_seed(gen, size):
    seeds = [3, 0, 7, 1, 5]
    got = list(gen.generate_many("grass+brick", seeds, size=size, batch=2))  # the last batch is partial
    assert [s for s, _ in got] == seeds
    for seed, img in got:
        diff = np.abs(img.astype(int) - gen.generate("grass+brick", seed=seed, size=size).astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.999


@pytest.mark.parametrize("batch", [0, -2, 1.5, True])
def test_generate_many_bad_batch(gen, batch):
    with pytest.raises(ValueError, match="batch"):
        list(gen.generate_many("brick", [0], size=256, batch=batch))


def test_generate_many_checks_every_seed_before_work(gen):
    with pytest.raises(ValueError, match="seed -1"):
        next(gen.generate_many("brick", [0, 1, -1], size=256))


# upscaling

@pytest.mark.parametrize("scale", [2, 4])
def test_upscale_shapes(gen, scale):
    img = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    out = gen.upscale(img, scale=scale)
    assert out.shape == (24 * scale, 40 * scale, 3) and out.dtype == np.uint8
    flat = gen.upscale(img, scale=scale, tileable=False)
    assert flat.shape == out.shape and not np.array_equal(flat, out)


@pytest.mark.parametrize("scale", [3, 8, 1, 0])
def test_upscale_bad_scale(gen, scale):
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="use 2 or 4"):
        gen.upscale(img, scale=scale)


@pytest.mark.parametrize("img", [np.zeros((16, 16, 5), np.uint8), np.zeros(16, np.uint8), np.zeros((16, 16, 3, 1))])
def test_upscale_bad_array(gen, img):
    layouts = r"\(H, W\) grey, \(H, W, 2\) grey \+ alpha, \(H, W, 3\) RGB or \(H, W, 4\) RGBA"
    with pytest.raises(ValueError, match=layouts):
        gen.upscale(img)


def test_a_folder_with_only_a_generator_gets_the_shipped_upscalers(tiny_models):
    """The upscalers do not depend on the style (issue 18: a trained style alone in --models failed)."""
    for f in tiny_models.glob("sr-*.safetensors"):
        f.unlink()
    gen = api.load_generator(device="cpu", models_dir=tiny_models)
    assert {s: p.parent for s, (_, _, p) in gen.upscalers.items()} == {4: api.SHIPPED_DIR, 2: api.SHIPPED_DIR}
    assert gen.generate("brick", seed=0, size=256).shape == (256, 256, 3)
    full = api.load_generator(device="cpu", models_dir=helpers.make_models_folder(tiny_models.parent / "full"))
    assert all(p.parent != api.SHIPPED_DIR for _, _, p in full.upscalers.values())  # a folder's own win


def test_upscale_missing_scale_names_loaded_ones(tiny_models, tmp_path, monkeypatch):
    (tiny_models / "sr-x2-tiny.safetensors").unlink()
    monkeypatch.setattr(api, "SHIPPED_DIR", tmp_path / "no-shipped-weights")
    gen = api.load_generator(device="cpu", models_dir=tiny_models)
    with pytest.raises(ValueError, match=r"no ×2 upscaler loaded \(have: ×4\)"):
        gen.upscale(np.zeros((16, 16, 3), np.uint8), scale=2)


# devices and paths

def test_resolve_device_auto_is_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert api.resolve_device("auto") == torch.device("cpu")
    assert api.resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_resolve_device_auto_here_and_no_cuda():
    assert api.resolve_device("auto").type in ("cpu", "mps")
    with pytest.raises(ValueError, match="no CUDA"):
        api.resolve_device("cuda")


@pytest.mark.parametrize("device", ["gpu", "tpu", "CPU", ""])
def test_resolve_device_unknown(device):
    with pytest.raises(ValueError, match="auto, cpu, cuda, mps"):
        api.resolve_device(device)


def test_tessera_models_env_replaces_search_path(monkeypatch, tiny_models, tmp_path):
    monkeypatch.setenv("TESSERA_MODELS", str(tiny_models))
    assert api.search_path() == [tiny_models]
    assert api.model_files() == sorted(tiny_models.glob("*.safetensors"))
    gen = api.load_generator(device="cpu")
    assert gen.styles == STYLES
    assert all(e.path.parent == tiny_models for e in gen.generators.values())
    # an explicit folder still wins over the variable
    other = tmp_path / "other"
    other.mkdir()
    assert api.search_path(other) == [other]
    # without the variable: the per-user folder, then the shipped weights
    monkeypatch.delenv("TESSERA_MODELS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    path = api.search_path()
    assert path[-1] == api.SHIPPED_DIR and tiny_models not in path


def test_package_import_is_cheap():
    """`import core` does not import torch (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = "import sys, core; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
