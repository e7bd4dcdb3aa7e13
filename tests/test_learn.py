"""`tessera learn`: a style from a user's photos, adapted from a generator file (tiny ones here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import text_png
from training import learn as learn_mod
from training.export import export
from training.gan import GanConfig
from training.gan import train as train_gan
from training.learn import LearnConfig, learn, nearest_style
from training_helpers import STYLES, gan_kwargs, make_dataset, smooth_noise, write_png


@pytest.fixture(scope="module")
def start(tmp_path_factory) -> Path:
    """A folder holding a tiny generator trained for a few steps by `training gan` (styles as
    training_helpers.STYLES), exported as a file to start from."""
    root = tmp_path_factory.mktemp("start")
    run = train_gan(GanConfig(**gan_kwargs(make_dataset(root / "data"), root / "run", steps=4))).parent
    return export(run, root / "models" / "gan-tiny.safetensors").parent


@pytest.fixture
def env(start, tmp_path, monkeypatch):
    """A fresh user models folder and cache; the folder of the tiny generator to start from."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TESSERA_MODELS", raising=False)
    return start


def photos(folder: Path, n: int = 2, size: tuple[int, int] = (160, 200)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = (smooth_noise(i, *size) * 255).round().astype(np.uint8)
        write_png(folder / f"wall{i}.png", img)
    return folder


def config(env: Path, inputs: list[Path], **over) -> LearnConfig:
    kw = dict(inputs=inputs, name="my_wall", method="gan", steps=2, start=env / "gan-tiny.safetensors",
              device="cpu", batch=2, crop=16, g_size=32)
    return LearnConfig(**{**kw, **over})


def test_learn_adds_a_style_that_generate_offers(env, tmp_path, run_cli):
    folder = photos(tmp_path / "photos")
    xdg = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "TESSERA_CACHE": str(tmp_path / "cache")}
    r = run_cli("learn", folder, "--name", "my_wall", "--method", "gan", "--steps", "2", "--start",
                env / "gan-tiny.safetensors", "--device", "cpu", env=xdg, timeout=300)
    assert r.returncode == 0, r.stderr
    bar = r.stderr.replace("\r", "\n").splitlines()
    assert any("learn my_wall" in line and "2/2" in line for line in bar), r.stderr  # this style's steps
    assert not any("loss_d" in line or line.startswith("gan:") and "%|" in line for line in bar), r.stderr
    out = tmp_path / "xdg" / "tessera" / "models" / "my_wall.safetensors"
    assert r.stdout.strip() == str(out) and out.is_file()
    start_steps = json.loads(learn_mod.peek(env / "gan-tiny.safetensors")["training"])["steps"]
    assert json.loads(learn_mod.peek(out)["training"])["steps"] == start_steps + 2  # it trained, 2 steps
    styles = run_cli("styles", env=xdg).stdout.split()
    assert "my_wall" in styles and "grass" in styles  # the shipped styles keep working beside it
    r = run_cli("generate", "--style", "my_wall", "--size", "256", "--out", tmp_path / "t.png", env=xdg)
    assert r.returncode == 0, r.stderr  # with the shipped upscaler: the learned file holds only a generator
    assert (tmp_path / "t.png").is_file()


def test_bad_input_is_one_line_and_trains_nothing(env, tmp_path, run_cli):
    folder = photos(tmp_path / "photos")
    small = photos(tmp_path / "small", n=1, size=(100, 300))
    cases = {
        (str(text_png(tmp_path)),): "x.png",
        (str(small),): "is too small to learn from: photos need at least 128×128 px",
        (str(tmp_path / "nothing"),): "no such file or folder",
    }
    for (args, message), method in zip(cases.items(), ("gan", "quilt", "gan")):  # both methods check alike
        steps = ["--steps", "1"] if method == "gan" else []
        r = run_cli("learn", *args, "--name", "w", "--method", method, *steps,
                    env={"TESSERA_CACHE": str(tmp_path / "c"), "XDG_DATA_HOME": str(tmp_path / "xdg")})
        assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "xdg" / "tessera" / "models").exists()  # nothing written
    with pytest.raises(ValueError, match="lower-case letters"):
        config(env, [folder], name="My Wall")
    with pytest.raises(ValueError, match="tessera_gan.safetensors already has a style of this name"):
        learn(config(env, [folder], name="grass", start=learn_mod.SHIPPED_GAN))  # a shipped style
    with pytest.raises(ValueError, match="--like dirt: not a style of gan-tiny.safetensors; choose one of "):
        learn(config(env, [folder], like="dirt"))
    assert not (tmp_path / "cache" / "learn" / "my_wall" / "run").exists()


def test_a_name_learned_before_needs_replace(env, tmp_path):
    """A finished run leaves no work folder behind (it held 55 MB of checkpoint), so learning the name again
    needs --replace alone, not --restart of a run that had finished."""
    folder = photos(tmp_path / "photos")
    out = learn(config(env, [folder]))
    assert not (tmp_path / "cache" / "learn" / "my_wall").exists()
    assert json.loads(learn_mod.peek(out)["data"]) == {"your photos: wall0.png, wall1.png": "your own"}  # not the
    # work folder it trained from, which is gone
    with pytest.raises(ValueError, match="you learned a style of this name before .*pass --replace"):
        learn(config(env, [folder]))
    assert learn(config(env, [folder], replace=True)) == out


def test_an_interrupted_run_resumes(env, tmp_path, monkeypatch):
    folder = photos(tmp_path / "photos")
    from training import export

    def killed(*args, **kw):
        raise KeyboardInterrupt

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(export, "export", killed)
        learn(config(env, [folder], steps=2))
    with pytest.raises(ValueError, match="holds an unfinished run of my_wall: pass --resume"):
        learn(config(env, [folder], steps=4))
    out = learn(config(env, [folder], steps=4, resume=True))
    start_steps = json.loads(learn_mod.peek(env / "gan-tiny.safetensors")["training"])["steps"]
    assert json.loads(learn_mod.peek(out)["training"])["steps"] == start_steps + 4  # 2 kept, 2 more
    assert json.loads(learn_mod.peek(out)["styles"]) == ["my_wall"]


def test_the_start_is_the_style_that_looks_most_like_the_photos(env):
    from core.api import load_generator

    gen = load_generator("cpu", models_dir=env)
    for style in STYLES:
        sample = gen.generate_gan(style, seed=5, size=256)[0].permute(1, 2, 0).numpy()
        photo = (sample * 255).round().astype(np.uint8)
        assert nearest_style([photo], env / "gan-tiny.safetensors") == style


def test_stored_reference_descriptors_of_real_images_decide_the_start(env, tmp_path, capsys):
    import shutil

    from core import weights
    from training import cli as training_cli
    from training_helpers import stripes

    folder = tmp_path / "models"
    folder.mkdir()
    gan_file = Path(shutil.copy(env / "gan-tiny.safetensors", folder))
    before = weights.read(gan_file)[1]
    data = tmp_path / "train"
    for i in range(3):  # the other way round from the styles' names, so that the stored images decide, not samples
        write_png(data / "stripes" / f"n{i}.png", smooth_noise(60 + i, 96, 96, cutoff=0.02))
        write_png(data / "noise" / f"s{i}.png", stripes(96, 96, 3 + i))
    assert training_cli.main(["reference", str(gan_file), "--data", str(data)]) == 0
    assert "descriptors of 6 training images stored" in capsys.readouterr().out
    meta, after = weights.read(gan_file)  # still verifies; tensors untouched
    assert all(np.array_equal(before[k], after[k]) for k in before) and meta["reference"]["style"] == [0] * 3 + [1] * 3
    table = learn_mod.style_descriptors(gan_file)
    assert {k: v.shape for k, v in table.items()} == {"noise": (3, 13), "stripes": (3, 13)}
    as_photo = lambda img: (img * 255).round().astype(np.uint8)  # noqa: E731
    assert nearest_style([as_photo(smooth_noise(70, 128, 128, cutoff=0.02))], gan_file) == "stripes"
    assert nearest_style([as_photo(stripes(128, 128, 4))], gan_file) == "noise"

    for bad, why in ((tmp_path / "nothing", "no <style>/*.png images"),):
        assert training_cli.main(["reference", str(gan_file), "--data", str(bad)]) == 2
        assert why in capsys.readouterr().err


def test_a_learned_style_sees_the_layouts_when_the_style_it_starts_from_does():
    """From a start whose layouts only brick sees, a style learned like brick sees them and one learned
    like grass does not ('' : no style); a start without layout_styles leaves the default (every style)."""
    from training.learn import learned_layout_styles

    start = {"layouts": 3, "layout_styles": [0]}
    assert learned_layout_styles("mine", "brick", ["brick", "grass"], start) == "mine"
    assert learned_layout_styles("mine", "grass", ["brick", "grass"], start) == ""
    assert learned_layout_styles("mine", "grass", ["brick", "grass"], {"layouts": 3}) is None
    assert learned_layout_styles("mine", "grass", ["brick", "grass"], {}) is None
