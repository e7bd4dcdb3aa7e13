"""Tests for `python -m training gan|sr|export`: tiny runs on a generated image set, on one CPU thread.

Each run trains a 16→8→8 generator or an 8-channel, 1-block upscaler for a few steps, so the whole
file takes well under a minute. Subprocess tests cover what only a real process shows: SIGKILL during
training, `torchrun` with two processes, and the CLI's one-line errors.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training import checkpoint
from training.cli import main as cli_main
from training.gan import GanConfig
from training.gan import train as train_gan
from training.sr import SrConfig
from training.sr import train as train_sr
from training_helpers import (REPO, STYLES, cli_flags, free_port, gan_kwargs, make_dataset, prefixed,
                              read_checkpoint, run_training, same_tensors, sr_kwargs, subprocess_env, write_png)

# Every in-process run reads the dataset's bad.png; tests that check that warning use pytest.warns.
pytestmark = pytest.mark.filterwarnings(r"ignore:skipping .*bad\.png")


# fixtures

@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The generated image set (read-only: tests that need another one build their own)."""
    return make_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(autouse=True)
def one_thread():
    """Two long training jobs share this machine: keep in-process training on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gan(data: Path, out: Path, **over) -> Path:
    return train_gan(GanConfig(**gan_kwargs(data, out, **over)))


def sr(data: Path, out: Path, **over) -> Path:
    return train_sr(SrConfig(**sr_kwargs(data, out, **over)))


def log_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]


def rewrite_checkpoint(folder: Path, change=lambda k, v: v, meta=lambda m: m) -> None:
    """Apply change(name, tensor) → tensor to every tensor of folder/last.safetensors and meta(dict) → dict
    to its meta header; the rest of the header is kept."""
    from safetensors.torch import load_file, safe_open, save_file

    path = folder / checkpoint.LAST
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    header["meta"] = json.dumps(meta(json.loads(header["meta"])))
    save_file({k: change(k, v) for k, v in load_file(str(path)).items()}, str(path), metadata=header)


# GAN

def test_gan_smoke_writes_checkpoint_log_and_samples(data, tmp_path):
    out = tmp_path / "gan"
    with pytest.warns(UserWarning, match=r"skipping .*bad\.png: not a readable image") as record:
        path = gan(data, out)
    assert [str(w.message) for w in record if "notes.txt" in str(w.message)] == []  # not an image: no warning

    assert path == out / "last.safetensors" and path.is_file()
    meta, tensors = read_checkpoint(out)
    assert meta["kind"] == "gan" and meta["step"] == 3 and meta["styles"] == STYLES
    assert meta["wall_time_s"] > 0 and "1 process(es)" in meta["hardware"]
    assert {k.split(".")[0] for k in tensors} == {"G", "D", "G_ema", "opt_g", "opt_d", "extra"}
    assert all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())

    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 3
    assert all(np.isfinite(records[-1][k]) for k in ("loss_d", "loss_g", "r1", "img_per_s"))

    samples = sorted(p.name for p in (out / "samples").glob("*.png"))
    assert samples == ["step_0000002.png", "step_0000003.png"]  # sample_every=2, plus the last step
    with Image.open(out / "samples" / samples[-1]) as im:
        # 2 samples per style, each a whole 24-px generated image tiled 2×2, in one row with 2-px gaps
        assert im.size == (2 * len(STYLES) * (2 * 24 + 2), 2 * 24 + 2)


def test_gan_resume_continues_from_the_checkpoint(data, tmp_path):
    out = tmp_path / "gan"
    gan(data, out, steps=3)
    meta3, t3 = read_checkpoint(out)

    # Resuming to the step it is at trains nothing and writes back exactly what it loaded.
    gan(data, out, steps=3, resume=True)
    meta, t = read_checkpoint(out)
    assert meta["step"] == 3 and same_tensors(t, t3)

    # Shift G's weights in the file by 0.5: a resume that really loads them carries the shift on.
    rewrite_checkpoint(out, lambda k, v: v + 0.5 if k.startswith("G.") else v)
    gan(data, out, steps=5, resume=True)
    meta5, t5 = read_checkpoint(out)
    assert meta5["step"] == 5 and meta5["wall_time_s"] >= meta3["wall_time_s"]
    g3, g5 = prefixed(t3, "G."), prefixed(t5, "G.")
    for k in g3:
        delta = g5[k] - g3[k]
        assert torch.allclose(delta, torch.full_like(delta, 0.5), atol=0.01), k  # two small Adam steps
    assert not same_tensors(prefixed(t5, "D."), prefixed(t3, "D."))  # and D trained on
    assert int(t5["opt_g.state.0.step"]) == 5 and int(t5["opt_d.state.0.step"]) == 5  # optimizers resumed
    assert log_steps(out)[-1] == 5


def test_gan_refuses_to_overwrite_a_checkpoint(data, tmp_path):
    out = tmp_path / "gan"
    gan(data, out)
    _, before = read_checkpoint(out)
    with pytest.raises(ValueError, match="already holds a checkpoint.*--resume"):
        gan(data, out, steps=5)
    meta, after = read_checkpoint(out)
    assert meta["step"] == 3 and same_tensors(before, after)


def test_gan_resume_without_checkpoint_names_the_folder(data, tmp_path):
    out = tmp_path / "nothing-here"
    with pytest.raises(FileNotFoundError, match=re.escape(str(out)) + ".*train first, or drop --resume"):
        gan(data, out, resume=True)
    with pytest.raises(FileNotFoundError, match=re.escape(str(out)) + ".*--init takes") as e:
        gan(data, tmp_path / "new", init=out)
    assert "--resume" not in str(e.value)  # gan --init has nothing to drop


def test_gan_resume_with_other_styles_is_refused(data, tmp_path):
    out = tmp_path / "gan"
    gan(data, out)
    other = make_dataset(tmp_path / "other")
    write_png(other / "zebra" / "a.png", np.random.default_rng(0).random((48, 48, 3)))
    with pytest.raises(ValueError, match="--resume: checkpoint styles"):
        gan(other, out, steps=5, resume=True)


def test_gan_init_extends_a_run_with_fine_waves(data, tmp_path):
    """--init: a run without fine waves carries on in a new folder with them; everything it had is
    loaded as it was, the new layers start silent, and the step count continues."""
    a, b = tmp_path / "a", tmp_path / "b"
    gan(data, a, fine_waves=0)
    _, ta = read_checkpoint(a)
    gan(data, b, init=a, fine_waves=4)  # already at step 3: trains nothing, writes what it built
    meta, tb = read_checkpoint(b)
    assert meta["step"] == 3 and meta["generator"]["fine_periodic_dim"] == 4
    for prefix in ("G.", "G_ema.", "D."):
        old = prefixed(ta, prefix)
        assert same_tensors(old, {k: v for k, v in prefixed(tb, prefix).items() if k in old}), prefix
    assert {k for k in prefixed(tb, "G.") if k not in prefixed(ta, "G.")} == {
        "fine_wave.weight", "fine_wave.bias", "fine_amp.weight", "fine_amp.bias", "fine_proj.weight"}
    assert tb["G.fine_amp.weight"].abs().max() == 0 and tb["G.fine_amp.bias"].abs().max() == 0
    gan(data, b, steps=5, resume=True, fine_waves=4)
    assert read_checkpoint(b)[0]["step"] == 5
    with pytest.raises(ValueError, match="--resume: checkpoint generator .* --init"):
        gan(data, a, steps=5, resume=True, fine_waves=4)
    with pytest.raises(ValueError, match="does not fit"):
        gan(data, tmp_path / "c", init=a, widths=(16, 8, 4))
    with pytest.raises(ValueError, match="--init .* --resume"):
        GanConfig(**gan_kwargs(data, tmp_path / "d", init=a, resume=True))


def test_gan_init_adds_layouts_that_start_silent(data, tmp_path):
    """--layouts on --init from a run without them: the new amplitudes start at zero, the run trains on, its
    export says so in its config and draws; resuming without --layouts names the flag."""
    from core import weights
    from training.export import export

    a, b = tmp_path / "a", tmp_path / "b"
    gan(data, a)
    _, ta = read_checkpoint(a)
    gan(data, b, init=a, layouts=3)  # already at step 3: writes what it built
    meta, tb = read_checkpoint(b)
    assert meta["generator"]["layouts"] == 3
    assert {k for k in prefixed(tb, "G.") if k not in prefixed(ta, "G.")} == {
        "layout_amp.weight", "layout_amp.bias", "layout_proj.weight"}
    assert tb["G.layout_amp.weight"].abs().max() == 0 and tb["G.layout_amp.bias"].abs().max() == 0
    gan(data, b, steps=5, resume=True, layouts=3)
    model, fmeta = weights.build(export(b, tmp_path / "g.safetensors"))
    assert fmeta["config"]["layouts"] == 3 and model.cfg.layouts == 3
    with torch.no_grad():
        assert model(torch.eye(model.cfg.styles)[:1], (3, 3), [4]).shape == (1, 3, 12, 12)
    with pytest.raises(ValueError, match="--layouts"):
        gan(data, b, steps=7, resume=True)


def test_gan_layout_styles_are_kept_by_name_and_must_match_on_resume(data, tmp_path):
    """--layout-styles names the styles that see the layouts: the checkpoint and the export keep their
    indices; a resume without the flag, or an unknown style, is a one-line error naming it."""
    from core import weights
    from training.export import export

    a = tmp_path / "a"
    gan(data, a, layouts=2, layout_styles="stripes")
    assert read_checkpoint(a)[0]["generator"]["layout_styles"] == [1]
    gan(data, a, steps=5, resume=True, layouts=2, layout_styles="stripes")
    model, _ = weights.build(export(a, tmp_path / "g.safetensors"))
    assert model.cfg.layout_styles == (1,) and model.layout_gate(torch.eye(2)).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="--layout-styles"):
        gan(data, a, steps=7, resume=True, layouts=2)
    with pytest.raises(ValueError, match="--layout-styles: unknown style 'brick'; the styles are noise, stripes"):
        gan(data, tmp_path / "b", layouts=2, layout_styles="stripes,brick")


@pytest.mark.parametrize("over, flag", [
    (dict(steps=None, minutes=None), "--steps"),
    (dict(layouts=4), "--layouts"),
    (dict(layout_styles="stripes"), "--layout-styles"),  # without --layouts
    (dict(steps=0), "--steps"),
    (dict(minutes=0.0), "--minutes"),
    (dict(batch=0), "--batch"),
    (dict(g_size=18), "--g-size"),  # not a multiple of the generator's stride 4
    (dict(g_size=4), "--g-size"),   # less than two cells
    (dict(crop=28), "--crop"),      # larger than --g-size 24
    (dict(crop=16, d_levels=5), "--d-levels"),
    (dict(fine_waves=-1), "--fine-waves"),
    (dict(style_weights="stripes"), "--style-weights"),
    (dict(style_weights="stripes=-1"), "--style-weights"),
    (dict(style_weights="stripes=3,=1"), "--style-weights"),
    (dict(style_weights="stripes=inf"), "--style-weights"),
])
def test_gan_config_errors_name_the_flag(tmp_path, over, flag):
    with pytest.raises(ValueError, match=re.escape(flag)):
        GanConfig(**gan_kwargs(tmp_path, tmp_path / "out", **over))


def test_style_weights_set_how_often_each_style_is_drawn(data):
    from training.common import StyleImages
    from training.gan import style_weights

    images = StyleImages.from_folder(data)
    assert style_weights(None, images.styles) is None  # uniform
    w = style_weights("stripes=3", images.styles)
    assert w.tolist() == [1.0, 3.0]
    _, labels = images.sample(2000, 8, torch.Generator().manual_seed(0), weights=w)
    assert 0.72 < labels.float().mean().item() < 0.78  # stripes (label 1) drawn 3 times in 4
    _, labels = images.sample(200, 8, torch.Generator().manual_seed(0), weights=style_weights("noise=0", images.styles))
    assert labels.tolist() == [1] * 200
    with pytest.raises(ValueError, match="unknown style brick; the styles are noise, stripes"):
        style_weights("brick=2", images.styles)
    with pytest.raises(ValueError, match="at least one style"):
        style_weights("noise=0,stripes=0", images.styles)


def test_gan_with_style_weights_records_them(data, tmp_path):
    out = gan(data, tmp_path / "w", style_weights="stripes=2").parent
    assert read_checkpoint(out)[0]["train"]["style_weights"] == "stripes=2"
    with pytest.raises(ValueError, match="unknown style rock"):
        gan(data, tmp_path / "x", style_weights="rock=2")
    assert not (tmp_path / "x").exists()


def test_align_turns_vertical_stripes_horizontal_and_leaves_the_rest(tmp_path):
    from training.common import StyleImages, run_horizontally
    from training_helpers import smooth_noise, stripes, write_png

    horizontal = stripes(64, 48, 8)
    write_png(tmp_path / "data" / "wood" / "vertical.png", horizontal.transpose(1, 0, 2))
    write_png(tmp_path / "data" / "wood" / "horizontal.png", horizontal)
    write_png(tmp_path / "data" / "wood" / "noise.png", smooth_noise(1, 40, 56))
    write_png(tmp_path / "data" / "wood" / "diagonal.png", stripes(56, 56, 7, diagonal=True))
    kept = StyleImages.from_folder(tmp_path / "data").images[0]
    aligned_set = StyleImages.from_folder(tmp_path / "data", align=True)
    aligned = aligned_set.images[0]  # sorted: diagonal, horizontal, noise, vertical
    assert [tuple(i.shape) for i in kept] == [(3, 56, 56), (3, 64, 48), (3, 40, 56), (3, 48, 64)]
    for before, after in zip(kept[:3], aligned[:3]):
        assert torch.equal(before, after)
    assert torch.equal(aligned[3], kept[3].rot90(1, (1, 2)))  # now runs horizontally, as the horizontal one
    assert torch.equal(run_horizontally(aligned[3]), aligned[3])  # idempotent
    assert aligned_set.turned == 1
    out = gan(tmp_path / "data", tmp_path / "run", align=True).parent
    assert read_checkpoint(out)[0]["train"]["align"] is True


# kill safety

def test_sigkill_leaves_a_checkpoint_that_resumes(data, tmp_path):
    out = tmp_path / "gan"
    args = cli_flags(gan_kwargs(data, out, steps=100_000, ckpt_every=1, sample_every=100_000))
    with open(tmp_path / "stdout", "w") as so, open(tmp_path / "stderr", "w") as se:
        proc = subprocess.Popen([sys.executable, "-m", "training", "gan", *args], cwd=REPO,
                                env=subprocess_env(), stdout=so, stderr=se)
        try:
            deadline = time.time() + 90
            while time.time() < deadline and proc.poll() is None:
                # Atomic replace: whenever the file is there it is whole, even while it is being rewritten.
                if (out / checkpoint.LAST).exists() and read_checkpoint(out)[0]["step"] >= 3:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, f"training exited early: {(tmp_path / 'stderr').read_text()[-2000:]}"
            assert time.time() < deadline, "no checkpoint within 90 s"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    meta, _ = read_checkpoint(out)  # loads: never half-written
    killed_at = meta["step"]
    assert killed_at >= 3
    gan(data, out, steps=killed_at + 2, resume=True)
    assert read_checkpoint(out)[0]["step"] == killed_at + 2

    # A save cut short may leave temporary files (ours: .last.safetensors.*.tmp; safetensors' own:
    # .tmpXXXXXX), but hidden and under names nothing takes for a checkpoint or a weights file.
    names = {p.name for p in out.iterdir()}
    assert {n for n in names if n.endswith(".safetensors")} == {checkpoint.LAST}
    others = names - {checkpoint.LAST, "log.jsonl", "samples"}
    assert all(re.fullmatch(r"\.last\.safetensors\..+\.tmp|\.tmp\w+", n) for n in others), others


KILL_DURING_THIRD_SAVE = """
import os, runpy, signal, sys
import safetensors.torch as st

real, calls = st.save_file, []

def save_file(tensors, filename, metadata=None):
    calls.append(filename)
    if len(calls) < 3:
        return real(tensors, filename, metadata=metadata)
    with open(filename, "wb") as f:  # half a file, then die as if the machine had pulled the plug
        f.write(b"partial")
        f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

st.save_file = save_file
sys.argv = ["training", *sys.argv[1:]]
runpy.run_module("training", run_name="__main__")
"""


def test_sigkill_during_a_save_keeps_the_previous_checkpoint(data, tmp_path):
    out = tmp_path / "gan"
    args = cli_flags(gan_kwargs(data, out, steps=10, ckpt_every=1, sample_every=100))
    res = subprocess.run([sys.executable, "-c", KILL_DURING_THIRD_SAVE, "gan", *args], cwd=REPO,
                         env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    assert read_checkpoint(out)[0]["step"] == 2  # the third save (step 3) never replaced it
    assert {p.name for p in out.glob("*.safetensors")} == {checkpoint.LAST}  # the torn file is no checkpoint
    gan(data, out, steps=4, resume=True)
    assert read_checkpoint(out)[0]["step"] == 4


def test_failed_save_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch):
    out = tmp_path / "gan"
    gan(data, out)
    _, before = read_checkpoint(out)

    import safetensors.torch

    def broken_save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken_save_file)
    with pytest.raises(OSError, match="disk full"):  # a failed save is an error, not a log line
        gan(data, out, steps=5, resume=True)
    monkeypatch.undo()
    meta, after = read_checkpoint(out)
    assert meta["step"] == 3 and same_tensors(before, after)
    assert sorted(p.name for p in out.iterdir()) == ["last.safetensors", "log.jsonl", "samples"]


# upscaler

def test_adversarial_sr_starts_from_an_exported_upscaler_and_resumes_with_its_discriminator(data, tmp_path):
    from training.export import export

    base = tmp_path / "psnr"
    sr(data, base, steps=2)
    shipped = export(base, tmp_path / "psnr.safetensors")
    adv = tmp_path / "adv"
    # the architecture comes from the start
    sr(data, adv, init=shipped, adversarial=0.01, lowpass=1.0, fourier=1.0, channels=16, steps=4)
    meta, tensors = read_checkpoint(adv)
    assert "spectrum" in json.loads((adv / "log.jsonl").read_text().splitlines()[-1])
    assert meta["upscaler"] == read_checkpoint(base)[0]["upscaler"] and meta["step"] == 4
    assert any(k.startswith("D.") for k in tensors) and any(k.startswith("opt_d.") for k in tensors)
    assert {"loss_d", "r1"} <= set(json.loads((adv / "log.jsonl").read_text().splitlines()[-1]))
    sr(data, adv, adversarial=0.01, steps=5, resume=True)
    assert read_checkpoint(adv)[0]["step"] == 5
    # exported, it is generate's ×4 detail upscaler (core.catalog.upscaler_slot); the PSNR one stays faithful
    from core import weights
    assert weights.read(export(adv, tmp_path / "adv.safetensors"))[0]["role"] == "detail"
    # --no-average: the weights as trained, not their moving average (which blurs an adversarial model's detail)
    meta, last = weights.read(export(adv, tmp_path / "last.safetensors", average=False))
    ckpt = read_checkpoint(adv)[1]
    assert meta["training"]["weights"] == "last" and all(torch.equal(v, ckpt[f"model.{k}"]) for k, v in last.items())
    assert not all(torch.equal(v, ckpt[f"ema.{k}"]) for k, v in last.items())
    with pytest.raises(ValueError, match="--no-average is for sr runs"):
        export(gan(data, tmp_path / "g2").parent, tmp_path / "g2.safetensors", average=False)
    assert "role" not in weights.read(shipped)[0]
    # --noise: noise inputs grown onto the start, silent at first; exported, core builds and runs them
    noisy = tmp_path / "noisy"
    sr(data, noisy, init=shipped, adversarial=0.01, noise=2, steps=3)
    meta, tensors = read_checkpoint(noisy)
    assert meta["upscaler"]["noise"] == 2 and tensors["model.noise_in.weight"].abs().sum() > 0  # it learns
    sr(data, noisy, adversarial=0.01, noise=2, steps=4, resume=True)
    model, _ = weights.build(export(noisy, tmp_path / "noisy.safetensors", average=False))
    assert model.cfg.noise == 2
    # a start with noise inputs keeps them as they are: one line naming the flags it was trained with
    with pytest.raises(ValueError, match="was trained with --noise 2: pass --noise 2 to start from it"):
        sr(data, tmp_path / "denoise", init=noisy, steps=1)
    with pytest.raises(ValueError, match="was trained with --noise 2: pass --noise 2 to start from it"):
        sr(data, tmp_path / "renoise", init=noisy, noise=3, steps=1)
    # --grain: the noise as grain on the output, its gain grown onto the start from zero and taught by --energy
    grainy = tmp_path / "grainy"
    sr(data, grainy, init=shipped, grain=True, energy=1.0, lowpass=1.0, steps=3)
    meta, tensors = read_checkpoint(grainy)
    assert meta["upscaler"]["grain"] is True and meta["upscaler"]["noise"] == 4
    assert tensors["model.grain.weight"].abs().sum() > 0
    # resumed as another architecture: the flags named are ones sr takes (--grain, not "--noise 4 --grain True")
    with pytest.raises(ValueError, match="pass --scale 4 --channels 8 --blocks 1 --grain, or start"):
        sr(data, grainy, grain=False, steps=4, resume=True)
    model, meta = weights.build(export(grainy, tmp_path / "grainy.safetensors", average=False))
    assert model.cfg.grain and meta["role"] == "detail"  # a grain model is generate's detail upscaler too
    for over in ({}, {"noise": 4}):
        with pytest.raises(ValueError, match="was trained with --grain: pass --grain to start from it"):
            sr(data, tmp_path / "degrain", init=grainy, steps=1, **over)
    with pytest.raises(ValueError, match="--grain trains generate's ×4 detail upscaler: --scale 2 must be 4"):
        sr(data, tmp_path / "g2", scale=2, grain=True, energy=1.0, steps=1)
    with pytest.raises(ValueError, match="--scale 2 must be 4"):
        sr(data, tmp_path / "x2", scale=2, adversarial=0.01, steps=1)
    with pytest.raises(ValueError, match="trained without --adversarial"):
        sr(data, base, adversarial=0.01, steps=3, resume=True)
    with pytest.raises(ValueError, match="an exported upscaler or an sr run folder"):
        gan_file = export(gan(data, tmp_path / "g").parent, tmp_path / "g.safetensors")
        sr(data, tmp_path / "x", init=gan_file)


def test_the_detail_discriminator_sees_detail_not_brightness():
    from training.sr import DetailDiscriminator, high_pass

    flat = torch.full((2, 3, 32, 32), 0.7)
    assert torch.allclose(high_pass(flat), torch.zeros_like(flat), atol=1e-6)
    lr_up = torch.rand(2, 3, 32, 32)
    D = DetailDiscriminator(8)
    assert D(flat, lr_up).shape == (2, 1, 8, 8)
    assert torch.allclose(D(flat, lr_up), D(flat * 0.2, lr_up), atol=1e-6)  # only the condition carries colour


@pytest.mark.parametrize("scale", [4, 2])
def test_sr_smoke_and_resume_is_exact(data, tmp_path, scale):
    out = tmp_path / f"sr{scale}"
    assert sr(data, out, scale=scale, steps=3) == out / "last.safetensors"
    meta, t3 = read_checkpoint(out)
    assert meta["kind"] == "sr" and meta["step"] == 3
    assert meta["upscaler"] == {"scale": scale, "channels": 8, "blocks": 1}
    assert log_steps(out) == [3]
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["step_0000002.png", "step_0000003.png"]
    with Image.open(out / "samples" / "step_0000003.png") as im:
        assert im.size == (4 * (32 + 2), 3 * (32 + 2))  # bicubic / model / truth rows of 4 crops

    sr(data, out, scale=scale, steps=5, resume=True)
    meta5, t5 = read_checkpoint(out)
    assert meta5["step"] == 5 and not same_tensors(prefixed(t5, "model."), prefixed(t3, "model."))

    # Weights, optimizer and data stream all resume: 3 + 2 steps equal 5 steps in one go.
    straight = tmp_path / f"straight{scale}"
    sr(data, straight, scale=scale, steps=5)
    _, t_straight = read_checkpoint(straight)
    assert same_tensors(t5, t_straight)


def test_sr_resume_with_another_architecture_is_refused(data, tmp_path):
    out = tmp_path / "sr"
    sr(data, out)
    with pytest.raises(ValueError, match="--resume: checkpoint upscaler.*: pass --scale 4 --channels 8 --blocks 1,"):
        sr(data, out, steps=5, resume=True, channels=16)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        sr(data, out, steps=5)


def test_detail_spectrum_loss_ignores_phase_and_sees_blur_and_mesh():
    from training.sr import detail_spectrum_loss

    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 64, 64, generator=g)
    spectrum = torch.fft.rfft2(hr)  # the same amplitudes, other phases: another texture of the same spectrum
    phase = torch.rand(spectrum.shape, generator=g) * 2 * torch.pi
    shuffled = torch.fft.irfft2(spectrum.abs() * torch.exp(1j * phase), s=hr.shape[-2:])
    shifted = torch.roll(hr, (5, 9), (2, 3))  # a shift changes only the phases, on a torus
    assert detail_spectrum_loss(shifted, hr) < 1e-5
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(hr, (1, 1, 1, 1), mode="circular"), 3, stride=1)
    mesh = hr.mean() + 0.3 * (torch.arange(64) % 2).float().expand(2, 3, 64, 64)  # energy at one frequency
    assert detail_spectrum_loss(blurred, hr) > 0.05 and detail_spectrum_loss(mesh, hr) > 0.05
    # the high-pass is a circular filter, so only the bins irfft2 makes real-valued again (its DC and Nyquist
    # lines) differ for a random-phase copy
    assert detail_spectrum_loss(shuffled, hr) < 0.02


def test_detail_energy_loss_asks_for_the_amount_of_detail_not_its_phase():
    from training.sr import detail_energy_loss

    g = torch.Generator().manual_seed(0)
    hr = 0.5 + 0.1 * torch.randn(2, 3, 64, 64, generator=g)
    other = 0.5 + 0.1 * torch.randn(2, 3, 64, 64, generator=g)  # other grain of the same strength
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(hr, (1, 1, 1, 1), mode="circular"), 3, stride=1)
    assert detail_energy_loss(hr, hr) == 0
    assert detail_energy_loss(other, hr) < 0.35 < 0.9 < detail_energy_loss(blurred, hr)
    l1 = torch.nn.functional.l1_loss
    assert l1(other, hr) > l1(blurred, hr)  # the pixel loss: the reverse
    grey = 0.5 + 0.1 * torch.randn(2, 1, 64, 64, generator=g).expand(2, 3, 64, 64)  # detail in all colours at once
    chroma = grey * torch.tensor([1.0, -1.0, 1.0])[:, None, None] + torch.tensor([0.0, 1.0, 0.0])[:, None, None]
    assert detail_energy_loss(chroma, grey) > 2 * detail_energy_loss(grey + 0.0, grey) + 0.2  # same energy per channel


def test_sub_pixel_mesh_sees_a_mesh_on_the_grid_but_not_texture_or_its_amount():
    from training.sr import sub_pixel_mesh

    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 64, 64, generator=g)
    assert sub_pixel_mesh(hr, hr, 4) < 0.01  # texture detail has every phase: its block mean averages out
    assert sub_pixel_mesh(torch.roll(hr, (1, 3), (2, 3)), hr, 4) < 0.01
    phase = torch.arange(64) % 4
    mesh = 0.2 * ((phase[:, None] < 2) ^ (phase[None, :] < 2)).float()  # a 4-px checker locked to the grid
    assert sub_pixel_mesh(hr + mesh, hr, 4) > 10 * sub_pixel_mesh(hr, hr, 4)
    # the target's detail is the yardstick
    assert sub_pixel_mesh(hr + mesh, 2 * hr, 4) < sub_pixel_mesh(hr + mesh, hr, 4)
    x = (hr + mesh).requires_grad_()
    sub_pixel_mesh(x, hr, 4).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("over, flag", [
    (dict(steps=None), "--steps"),
    (dict(steps=0), "--steps"),
    (dict(steps=None, minutes=-1), "--minutes"),
    (dict(scale=3), "--scale"),
    (dict(crop=30), "--crop"),      # not a multiple of the scale
    (dict(crop=16), "--crop"),      # under 8 low-res pixels
    (dict(channels=0), "--channels"),
    (dict(fourier=-1.0), "--fourier"),
    (dict(fourier=float("nan")), "--fourier"),
    (dict(mesh=-1.0), "--mesh"),
    (dict(energy=-1.0), "--energy"),
    (dict(grain=True, noise=2), "--grain"),
    (dict(lowpass=float("inf")), "--lowpass"),
])
def test_sr_config_errors_name_the_flag(tmp_path, over, flag):
    with pytest.raises(ValueError, match=re.escape(flag)):
        SrConfig(**sr_kwargs(tmp_path, tmp_path / "out", **over))


# export → core

def test_export_then_core_loads_and_generates(data, tmp_path):
    from core import weights
    from core.api import load_generator

    gan(data, tmp_path / "gan")
    sr(data, tmp_path / "sr4", scale=4)
    models = tmp_path / "models"
    assert cli_main(["export", str(tmp_path / "gan"), "--out", str(models / "gen.safetensors")]) == 0
    from training.export import export
    export(tmp_path / "sr4", models / "up4.safetensors")

    # The shipped tensors are the EMA weights.
    _, ckpt = read_checkpoint(tmp_path / "gan")
    meta, tensors = weights.read(models / "gen.safetensors")
    assert same_tensors(tensors, prefixed(ckpt, "G_ema."))
    _, ckpt = read_checkpoint(tmp_path / "sr4")
    up_meta, up_tensors = weights.read(models / "up4.safetensors")
    assert same_tensors(up_tensors, prefixed(ckpt, "ema."))

    for m, kind, steps in ((meta, "generator", 3), (up_meta, "upscaler", 3)):
        assert m["kind"] == kind and m["format_version"] == weights.FORMAT_VERSION
        assert re.fullmatch(r"[0-9a-f]{64}", m["tensor_sha256"])
        assert m["training"]["steps"] == steps and m["training"]["wall_time_s"] >= 0
        assert "process(es)" in m["training"]["hardware"]
        assert m["data"] == {"user folder": str(data)}
    assert meta["styles"] == STYLES

    tess = load_generator(device="cpu", models_dir=models)
    assert tess.styles == STYLES and tess.errors == []
    assert tess.upscalers[4][2] == models / "up4.safetensors"  # its own ×4; the ×2 is the shipped one
    assert tess.upscalers[2][2].parent.name == "weights"
    img = tess.generate("stripes", seed=0, size=256)
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    assert np.array_equal(img, tess.generate("stripes", seed=0, size=256))
    assert not np.array_equal(img, tess.generate("noise", seed=0, size=256))


def test_export_errors(data, tmp_path):
    from training.export import export

    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "none")) + ".*export takes") as e:
        export(tmp_path / "none", tmp_path / "w.safetensors")
    assert "--resume" not in str(e.value)  # export has no --resume
    gan(data, tmp_path / "gan")
    with pytest.raises(ValueError, match=r"\.safetensors"):
        export(tmp_path / "gan", tmp_path / "w.pt")
    assert not (tmp_path / "w.pt").exists()


def test_export_that_would_not_load_leaves_no_file(data, tmp_path):
    """The export is checked by loading it before it is renamed to --out: a file the loader would
    reject never lands there, and a file already there stays as it was."""
    from core.weights import ModelFileError
    from training.export import export

    gan(data, tmp_path / "gan")
    rewrite_checkpoint(tmp_path / "gan", meta=lambda m: {**m, "styles": [*STYLES, "zebra"]})  # 3 names, 2 styles
    out = tmp_path / "models" / "gen.safetensors"
    with pytest.raises(ModelFileError, match=re.escape(str(out)) + ": style names"):
        export(tmp_path / "gan", out)
    assert list(out.parent.iterdir()) == []
    out.write_bytes(b"an earlier export")
    with pytest.raises(ModelFileError):
        export(tmp_path / "gan", out)
    assert [p.name for p in out.parent.iterdir()] == [out.name] and out.read_bytes() == b"an earlier export"


# distributed

def torchrun(command: str, kwargs: dict, timeout: float = 150) -> subprocess.CompletedProcess:
    """Two CPU processes under torchrun; on a timeout (a hung rank) the whole process group is killed."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(free_port()),
           "-m", "training", command, *cli_flags(kwargs)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"torchrun {command} hung for {timeout} s:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


@pytest.mark.parametrize("command", ["gan", "sr"])
def test_ddp_two_processes(data, tmp_path, command):
    out = tmp_path / command
    kwargs = (gan_kwargs if command == "gan" else sr_kwargs)(data, out, steps=2)
    res = torchrun(command, kwargs)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 process(es)" in res.stdout
    meta, _ = read_checkpoint(out)
    assert meta["step"] == 2 and meta["hardware"].startswith("2 process(es)")


def test_ddp_minutes_stop_together(data, tmp_path):
    """With --minutes each rank reads its own clock; rank 0 is slow at every step here (it saves and
    samples), so without an agreed stop one rank waits in an all-reduce for a peer that has left
    (or crashes when it does leave). Timing-dependent: without the fix this fails about every other run."""
    out = tmp_path / "gan"
    kwargs = gan_kwargs(data, out, steps=None, minutes=0.03, ckpt_every=1, sample_every=1)
    res = torchrun("gan", kwargs, timeout=60)
    assert res.returncode == 0, res.stderr[-3000:]
    assert read_checkpoint(out)[0]["step"] > 0


# CLI errors

def test_cli_no_usable_image_is_one_error_line(tmp_path):
    empty = tmp_path / "empty"
    (empty / "rock").mkdir(parents=True)
    (empty / "rock" / "bad.png").write_text("not a png")
    (empty / "readme.txt").write_text("no images here")
    res = run_training("gan", *cli_flags(gan_kwargs(empty, tmp_path / "out")))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [  # the warning too is one line, without file:line and source
        f"warning: skipping {empty / 'rock' / 'bad.png'}: not a readable image (not a format Pillow knows)",
        f"error: no usable image in {empty}: put images in {empty}/<style>/ subfolders"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["gan", "sr"])
def test_cli_data_that_is_a_file_or_has_no_image(tmp_path, capsys, command):
    kwargs = gan_kwargs if command == "gan" else sr_kwargs
    file = tmp_path / "photo.png"
    file.write_bytes(b"")
    assert cli_main([command, *cli_flags(kwargs(file, tmp_path / "out"))]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: data {file} is a file, not a folder of images"]
    empty = tmp_path / "empty"
    (empty / "rock").mkdir(parents=True)
    assert cli_main([command, *cli_flags(kwargs(empty, tmp_path / "out"))]) == 2
    where = f"{empty}/<style>/ subfolders" if command == "gan" else f"{empty} or in {empty}/<style>/ subfolders"
    assert capsys.readouterr().err.strip().splitlines() == [f"error: no usable image in {empty}: put images in {where}"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("broken", ["torn", "no meta"])
def test_cli_export_of_a_broken_checkpoint_is_one_error_line(tmp_path, capsys, broken):
    """A torn file, or a safetensors file that is not a training checkpoint (no meta in its header)."""
    import safetensors.numpy

    folder = tmp_path / "run"
    folder.mkdir()
    if broken == "torn":
        (folder / checkpoint.LAST).write_bytes(b"abc")
    else:
        safetensors.numpy.save_file({"x": np.zeros(2, np.float32)}, str(folder / checkpoint.LAST))
    out = tmp_path / "w.safetensors"
    assert cli_main(["export", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {folder / checkpoint.LAST}: not a ")
    assert err[0].endswith("expected a checkpoint from `python -m training gan` or `sr`")
    assert not out.exists()
    with pytest.raises(ValueError, match=re.escape(str(folder / checkpoint.LAST))):
        checkpoint.load(folder, "train first, or drop --resume")


def test_cli_out_that_cannot_be_written_is_one_error_line(data, tmp_path, capsys, monkeypatch):
    """--out under a file, or on a read-only file system: one line naming the path, before any training."""
    import errno

    from core.files import TMP_MARK

    (tmp_path / "f").write_text("a file, not a folder")
    assert cli_main(["gan", *cli_flags(gan_kwargs(data, tmp_path / "f" / "x"))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'f' / 'x'}: cannot write there ({tmp_path / 'f'} is a file, not a folder)"]

    gan(data, tmp_path / "gan")
    capsys.readouterr()  # its progress bar
    assert cli_main(["export", str(tmp_path / "gan"), "--out", str(tmp_path / "f" / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'f'}"), err

    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # creating Tessera's probe or temporary files fails
        if flags & os.O_CREAT and TMP_MARK in os.fspath(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    for argv in (["sr", *cli_flags(sr_kwargs(data, tmp_path / "ro"))],
                 ["export", str(tmp_path / "gan"), "--out", str(tmp_path / "ro" / "w.safetensors")]):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'ro'}") and os.strerror(errno.EROFS) in err[0]
    assert not any((tmp_path / "ro").rglob("*")) and (tmp_path / "f").read_text() == "a file, not a folder"


def test_cli_os_error_mid_run_is_one_line(capsys, monkeypatch):
    """A disk that fills up during a run: the file and the reason, exit 1 (2 is for command-line mistakes)."""
    import errno

    import training.cli

    def full_disk(_args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/runs/gan/last.safetensors")

    monkeypatch.setattr(training.cli, "cmd_export", full_disk)
    assert cli_main(["export", "/runs/gan", "--out", "x.safetensors"]) == 1
    assert capsys.readouterr().err == f"error: /runs/gan/last.safetensors: {os.strerror(errno.ENOSPC)}\n"


@pytest.mark.parametrize("command", ["gan", "sr"])
def test_cli_missing_data_folder(tmp_path, capsys, command):
    missing = tmp_path / "missing"
    flags = cli_flags((gan_kwargs if command == "gan" else sr_kwargs)(missing, tmp_path / "out"))
    assert cli_main([command, *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: data folder {missing} does not exist"]
    assert not (tmp_path / "out").exists()


def test_cli_only_unreadable_images(tmp_path, capsys):
    folder = tmp_path / "broken"
    (folder / "grass").mkdir(parents=True)
    (folder / "grass" / "bad.png").write_text("not a png")
    with pytest.warns(UserWarning, match="bad.png"):
        code = cli_main(["sr", *cli_flags(sr_kwargs(folder, tmp_path / "out"))])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: no usable image in ")


def test_gan_init_matches_styles_by_name_from_a_run_or_an_exported_generator(data, tmp_path):
    """A run over other styles starts from one over STYLES: shared styles keep their embedding rows (and
    D its projection rows), a new style starts at the mean; an exported file seeds G and G_ema only."""
    from core import weights
    from training.export import export

    a = tmp_path / "a"
    gan(data, a)
    _, ta = read_checkpoint(a)
    other = tmp_path / "other"
    for name in ("stripes", "moss"):  # "stripes" is shared, "moss" is new; "noise" is left out
        for i in range(2):
            write_png(other / name / f"{i}.png", np.random.default_rng(i).random((48, 48, 3)))
    for start in (a, export(a, tmp_path / "g.safetensors")):
        out = tmp_path / f"from_{Path(start).name}"
        gan(other, out, init=start)
        meta, tb = read_checkpoint(out)
        assert meta["styles"] == ["moss", "stripes"] and meta["step"] == 3
        rows = tb["G_ema.style.weight"]
        source = weights.read(start)[1]["style.weight"] if Path(start).is_file() else ta["G_ema.style.weight"]
        assert torch.equal(rows[1], source[STYLES.index("stripes")])
        assert torch.allclose(rows[0], source.mean(0))
        if not Path(start).is_file():
            assert torch.equal(tb["D.embed.weight_orig"][1], ta["D.embed.weight_orig"][STYLES.index("stripes")])
    plain = tmp_path / "plain"  # D without spectral norm: its projection rows are matched by name as well
    gan(data, plain, d_norm="none")
    # a folder of images alone is one style named after it: stripes, in another row than in the start
    gan(other / "stripes", tmp_path / "from_plain", init=plain, d_norm="none")
    tp = read_checkpoint(plain)[1]
    assert torch.equal(read_checkpoint(tmp_path / "from_plain")[1]["D.embed.weight"][0],
                       tp["D.embed.weight"][STYLES.index("stripes")])
    seeded = tmp_path / "seeded"
    gan(other, seeded, init=a, style_init="moss=noise")  # moss starts as noise did, not at the mean
    assert torch.equal(read_checkpoint(seeded)[1]["G_ema.style.weight"][0], ta["G_ema.style.weight"][0])
    # what only starts a run is not carried into a resume of it: `--out DIR --resume` alone continues it
    assert cli_main(["gan", "--out", str(seeded), "--resume", "--steps", "4"]) == 0
    assert read_checkpoint(seeded)[0]["step"] == 4
    with pytest.raises(ValueError, match="--style-init stripes=noise: name a new style \\(moss\\)"):
        gan(other, tmp_path / "y", init=a, style_init="stripes=noise")
    with pytest.raises(ValueError, match="--style-init names styles of the --init start: give --init too"):
        GanConfig(**gan_kwargs(other, tmp_path / "z", style_init="moss=noise"))
    with pytest.raises(ValueError, match="is not NEW=STYLE"):
        GanConfig(**gan_kwargs(other, tmp_path / "z", init=a, style_init="moss"))
    with pytest.raises(ValueError, match="an exported generator or a gan run folder"):
        up = tmp_path / "up"
        sr(data, up)
        gan(other, tmp_path / "x", init=export(up, tmp_path / "up.safetensors"))


def test_restyle_touches_only_the_per_style_tables():
    from training.gan import _restyle

    old = torch.arange(6.0).reshape(2, 3)  # as many rows as styles, by chance
    assert _restyle("convs.0.weight", old, True, ["a", "b"], ["b", "c"]) is old
    assert torch.equal(_restyle("style.weight", old, True, ["a", "b"], ["b", "c"]), torch.tensor(
        [[3.0, 4.0, 5.0], [1.5, 2.5, 3.5]]))  # b's row, then the mean for the new c
    assert _restyle("embed.weight_u", old[0], True, ["a", "b"], ["b", "c"]) is None


def test_a_spectral_d_becomes_the_same_function_without_spectral_norm():
    from training.gan import Discriminator, unspectral

    torch.manual_seed(0)
    spectral = Discriminator(3, width=8, levels=2)
    x, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 1])
    for _ in range(3):  # power iterations move u and v; what counts is the σ of the last pass
        spectral(x, labels)
    spectral.eval()
    plain = Discriminator(3, width=8, levels=2, spectral=False)
    plain.load_state_dict(unspectral(spectral.state_dict()))
    assert torch.allclose(plain(x, labels), spectral(x, labels), atol=1e-5)
    assert not torch.allclose(Discriminator(3, 8, 2, spectral=False)(x, labels), spectral(x, labels), atol=1e-3)
    # without the vectors (a rearranged style table drops them) the exact σ is used
    state = {k: v for k, v in spectral.state_dict().items() if not k.startswith("embed.weight_")
             or k.endswith("orig")}
    exact = torch.linalg.matrix_norm(state["embed.weight_orig"], ord=2)
    assert torch.allclose(unspectral(state)["embed.weight"], state["embed.weight_orig"] / exact)


def test_a_run_with_a_plain_d_starts_from_a_spectral_run_and_resumes(data, tmp_path):
    spectral = gan(data, tmp_path / "spectral").parent
    plain = tmp_path / "plain"
    gan(data, plain, init=spectral, d_norm="none", steps=5)
    meta, tensors = read_checkpoint(plain)
    assert meta["train"]["d_norm"] == "none" and not any(k.endswith(("_orig", "_u", "_v")) for k in tensors)
    gan(data, plain, d_norm="none", steps=6, resume=True)
    assert read_checkpoint(plain)[0]["step"] == 6
    with pytest.raises(ValueError, match="--d-norm batch: choose from spectral, none"):
        gan(data, tmp_path / "x", d_norm="batch")


@pytest.mark.parametrize("spectral", [True, False])
def test_a_meanstd_d_starts_from_a_mean_pooled_run_as_the_same_function(data, tmp_path, spectral):
    import copy

    from core.generator import GeneratorConfig, TextureGenerator
    from training.gan import Discriminator, init_from

    run = gan(data, tmp_path / "mean", steps=4).parent
    meta, _ = read_checkpoint(run)
    G = TextureGenerator(GeneratorConfig(**meta["generator"]))
    heads = {}
    for pool in ("mean", "meanstd"):
        D = Discriminator(len(meta["styles"]), 8, 3, spectral, pool)
        init_from(run, meta["styles"], {"G": G, "D": D, "G_ema": copy.deepcopy(G)})
        heads[pool] = D.eval()
    x, labels = torch.randn(3, 3, 16, 16), torch.tensor([0, 1, 0])
    assert torch.allclose(heads["mean"](x, labels), heads["meanstd"](x, labels), atol=1e-5)
    assert heads["meanstd"].linear(torch.ones(1, heads["meanstd"].linear.in_features)).grad_fn is not None
    out = tmp_path / "ms"
    gan(data, out, init=run, d_pool="meanstd", d_norm="spectral" if spectral else "none", steps=6)
    assert read_checkpoint(out)[0]["step"] == 6
    with pytest.raises(ValueError, match="does not fit this model"):
        gan(data, out, d_pool="mean", d_norm="spectral" if spectral else "none", steps=7, resume=True)


def test_bf16_on_the_cpu_trains_and_keeps_float32_weights(data, tmp_path):
    meta, tensors = read_checkpoint(gan(data, tmp_path / "bf16", bf16=True).parent)
    assert meta["train"]["bf16"] is True
    assert all(v.dtype == torch.float32 for k, v in tensors.items() if k.startswith("G."))
    assert all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())


def test_diff_augment_is_differentiable_and_each_op_does_what_it_says():
    from training.gan import diff_augment

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(4, 3, 32, 32) * 2 - 1).requires_grad_(True)
    y = diff_augment(x, "color,translation,cutout", g)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0

    rolled = diff_augment(x.detach(), "translation", g)  # a roll on the torus: the same pixels, moved
    assert all(torch.equal(a.flatten().sort().values, b.flatten().sort().values) for a, b in zip(rolled, x))
    cut = diff_augment(torch.ones(4, 3, 32, 32), "cutout", g)
    assert all(int((c[0] == 0).sum()) == 16 * 16 for c in cut)  # a half-side square, wrapping around
    flat = diff_augment(torch.full((4, 3, 8, 8), 0.2), "color", g)
    assert all(float(f.std()) < 1e-5 for f in flat)  # colour changes are the same over the whole image
    assert not torch.allclose(flat[0], flat[1])


def test_gan_trains_with_augmentation_and_refuses_an_unknown_one(data, tmp_path):
    gan(data, tmp_path / "aug", augment="color,translation,cutout")
    assert read_checkpoint(tmp_path / "aug")[0]["train"]["augment"] == "color,translation,cutout"
    with pytest.raises(ValueError, match="--augment zoom: choose from color,translation,cutout"):
        GanConfig(**gan_kwargs(data, tmp_path / "x", augment="color,zoom"))


def test_cli_flags_reach_the_config(data, tmp_path, capsys):
    out = tmp_path / "gan"
    assert cli_main(["gan", *cli_flags(gan_kwargs(data, out, steps=2, widths=(8, 8, 8)))]) == 0
    assert capsys.readouterr().out.strip().endswith(f"checkpoint: {out / 'last.safetensors'}")
    meta, _ = read_checkpoint(out)
    assert meta["generator"]["widths"] == [8, 8, 8] and meta["train"]["crop"] == 16 and meta["step"] == 2


@pytest.mark.parametrize("command, entry", [
    ("gan", "core/weights/tessera_gan.safetensors; D then starts afresh): styles are matched by name, a style "
            "the start lacks begins at the mean of its style embeddings; layers this generator adds (e.g. "
            "--fine-waves on a run that had none) start at their initial values, optimizers afresh; the step "
            "count and wall time carry on --batch"),  # a docstring over several source lines
    ("sr", "on it); 0 = off (default 1.0) --blur-prob"),
    ("sr", "--lr LR (default 0.0002) --loss"),           # no docstring
    ("sr", "--resume continue from OUT/last.safetensors --seed"),  # a field of the shared base class
])
def test_cli_help_gives_each_flag_its_whole_docstring(capsys, command, entry):
    with pytest.raises(SystemExit):
        cli_main([command, "--help"])
    assert entry in " ".join(capsys.readouterr().out.split())


def test_block_grid_penalty_sees_a_grid_at_the_scale():
    """The upscaler's `--grid` penalty: ~0 on grid-free images, clearly up with a 4-px grid, and only
    for that period (a grid at the scale, not any texture)."""
    from training.sr import block_grid

    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 64, 64, generator=g)
    gridded = y.clone()
    gridded[..., 3::4] = (gridded[..., 3::4] + 0.4).clamp(0, 1)
    assert block_grid(y, 4) < 0.002
    assert block_grid(gridded, 4) > 10 * block_grid(y, 4)
    assert block_grid(gridded, 4).requires_grad is False and block_grid(y.requires_grad_(), 4).requires_grad


def test_d_has_its_own_learning_rate_kept_across_resume(data, tmp_path):
    def lrs(name: str) -> list[float]:
        return [g["lr"] for g in json.loads(checkpoint.load(out)[2][f"{name}.param_groups"])]

    out = tmp_path / "ttur"
    gan(data, out, d_lr=8e-4, steps=2)
    assert lrs("opt_d") == [8e-4] and lrs("opt_g") == [2e-4]
    gan(data, out, d_lr=4e-4, steps=3, resume=True)  # a new --d-lr on resume replaces the saved one
    assert lrs("opt_d") == [4e-4] and lrs("opt_g") == [2e-4]
    with pytest.raises(ValueError, match="--d-lr 2.0 must be between 0 and 1"):
        gan(data, tmp_path / "x", d_lr=2.0)


def test_style_embeddings_have_their_own_learning_rate_kept_across_resume(data, tmp_path):
    """--style-lr: the style table moves at its own rate (Adam's first step moves an entry by about its
    learning rate), the rest of G exactly as without it; a resume keeps the grouping or says so in one line."""
    def lrs(folder: Path) -> list[float]:
        return [g["lr"] for g in json.loads(checkpoint.load(folder)[2]["opt_g.param_groups"])]

    plain, fast = tmp_path / "plain", tmp_path / "fast"
    gan(data, plain, steps=1)
    gan(data, fast, steps=1, style_lr=2e-2)
    a, b = checkpoint.load(plain)[1], checkpoint.load(fast)[1]
    moved = (b["G.style.weight"] - a["G.style.weight"]).abs().max()
    assert 1e-2 < moved < 4e-2  # plain moved its rows by ~2e-4, fast by ~2e-2
    torch.testing.assert_close(b["G.head.weight"], a["G.head.weight"])
    assert lrs(plain) == [2e-4] and lrs(fast) == [2e-4, 2e-2]
    gan(data, fast, steps=2, resume=True, style_lr=1e-2)  # a new rate on resume replaces the saved one
    assert lrs(fast) == [2e-4, 1e-2]
    with pytest.raises(ValueError, match="trained without --style-lr: pass it the same way"):
        gan(data, plain, steps=2, resume=True, style_lr=1e-2)
    with pytest.raises(ValueError, match="trained with --style-lr: pass it the same way"):
        gan(data, fast, steps=3, resume=True)
    with pytest.raises(ValueError, match="--style-lr 5.0 must be between 0 and 1"):
        gan(data, tmp_path / "x", style_lr=5.0)


def test_photos_are_cropped_inside_their_borders(data, tmp_path, monkeypatch):
    from training.common import StyleImages

    seen = []
    sample = StyleImages.sample_indexed

    def spy(self, *args, **kw):
        seen.append(kw.get("wrap", True))
        return sample(self, *args, **kw)

    monkeypatch.setattr(StyleImages, "sample_indexed", spy)
    gan(data, tmp_path / "tiles", steps=1)
    gan(data, tmp_path / "photos", steps=1, photos=True)
    assert seen == [True, False]  # tileable textures wrap around; photos do not


# per-image conditioning (--per-image)

def test_sample_indexed_reports_the_image_of_each_crop(tmp_path):
    """Each crop's image index points at the image it came from (flat colours tell them apart); `sample`
    makes the same draws and crops without the indices."""
    from training.common import StyleImages

    colours = {"a": [0.1, 0.3], "b": [0.5, 0.7, 0.9]}
    for style, values in colours.items():
        for i, v in enumerate(values):
            write_png(tmp_path / style / f"{i}.png", np.full((8 + 4 * i, 12, 3), v))
    images = StyleImages.from_folder(tmp_path, describe=True)
    assert images.image_styles.tolist() == [0, 0, 1, 1, 1] and images.descriptors.shape == (5, 13)
    assert np.allclose(images.descriptors[:, 0], [0.1, 0.3, 0.5, 0.7, 0.9], atol=3e-3)  # mean red, in order
    crops, labels, index = images.sample_indexed(40, 4, torch.Generator().manual_seed(0))
    assert torch.equal(images.image_styles[index], labels)
    assert np.allclose(crops.mean(dim=(1, 2, 3)).numpy(), images.descriptors[index.numpy(), 0], atol=3e-3)
    again, labels2 = images.sample(40, 4, torch.Generator().manual_seed(0))
    assert torch.equal(again, crops) and torch.equal(labels2, labels)
    assert StyleImages.from_folder(tmp_path).descriptors is None  # only when asked for


def test_gan_per_image_trains_resumes_exports_and_generates_alike_on_both_paths(data, tmp_path):
    from core import api, noise, runtime, weights
    from core.descriptors import standardise
    from core.export_onnx import export_folder
    from training.export import export

    run = tmp_path / "run"
    gan(data, run, per_image=True)
    meta, tensors = read_checkpoint(run)
    assert meta["generator"]["descriptor_dim"] == 13 and meta["train"]["per_image"] is True
    assert len(meta["descriptors"]["mean"]) == len(meta["descriptors"]["std"]) == 13
    assert tensors["extra.descriptors"].shape == (6, 13) and tensors["extra.image_styles"].tolist() == [0] * 3 + [1] * 3
    assert tensors["D.image_embed.weight"].shape[1] == 13
    gan(data, run, per_image=True, steps=4, resume=True)
    meta2, tensors = read_checkpoint(run)
    assert meta2["step"] == 4 and meta2["descriptors"] == meta["descriptors"]
    with pytest.raises(ValueError, match="--per-image"):
        gan(data, run, steps=5, resume=True)

    models = tmp_path / "models"
    path = export(run, models / "g.safetensors")
    fmeta, ft = weights.read(path)
    assert fmeta["config"]["descriptor_dim"] == 13
    g = prefixed(tensors, "G_ema.")
    mean, std = (np.array(meta["descriptors"][k], np.float32) for k in ("mean", "std"))
    phi = torch.from_numpy(standardise(tensors["extra.descriptors"].numpy(), mean, std))
    want = g["style.weight"][tensors["extra.image_styles"]] + phi @ g["image_code.weight"].T
    assert torch.allclose(ft["members.embedding"], want, atol=1e-6)
    assert ft["members.style"].tolist() == [0] * 3 + [1] * 3 and torch.equal(ft["descriptors.mean"], torch.tensor(mean))

    export_folder(models)
    gen, rt = api.load_generator(device="cpu", models_dir=models), runtime.load(models_dir=models)
    assert gen.styles == rt.styles == STYLES and gen.errors == rt.errors == []
    member_style = ft["members.style"].numpy()
    other = next(s for s in range(1, 50) if noise.pick_members(member_style, 2, s)[1] != noise.pick_members(
        member_style, 2, 0)[1])  # a seed that picks another member of stripes than seed 0
    for style, seed in (("stripes", 0), ("stripes", other), ("noise:0.5+stripes:0.5", 1)):
        a, b = gen.generate_gan(style, seed=seed, size=32).numpy(), rt.generate_gan(style, seed=seed, size=32)
        assert np.abs(a - b).max() <= 1 / 255 + 1e-6, (style, seed)


def test_gan_per_image_init_from_a_run_without_it_starts_as_the_same_g_and_d(data, tmp_path, capsys):
    from core.generator import GeneratorConfig, TextureGenerator
    from training.gan import Discriminator

    a = gan(data, tmp_path / "a").parent
    b = tmp_path / "b"
    gan(data, b, init=a, per_image=True, steps=3)  # the start is at step 3: no step is taken, b is saved as it starts
    assert "new layers: image_code, image_embed" in capsys.readouterr().out
    (ma, ta), (mb, tb) = read_checkpoint(a), read_checkpoint(b)
    assert mb["step"] == 3 and not tb["G_ema.image_code.weight"].any() and not tb["D.image_embed.weight"].any()
    phi = torch.randn(2, 13, generator=torch.Generator().manual_seed(0))
    w, x, labels = torch.eye(2), torch.randn(2, 3, 16, 16), torch.tensor([0, 1])
    outs = []
    for meta, t, descriptors in ((ma, ta, None), (mb, tb, phi)):
        G = TextureGenerator(GeneratorConfig(**meta["generator"])).eval()
        checkpoint.restore_module(G, "G_ema", t)
        D = Discriminator(2, 8, 3, descriptor_dim=meta["generator"].get("descriptor_dim", 0)).eval()
        checkpoint.restore_module(D, "D", t)
        with torch.no_grad():
            outs.append((G(w, (6, 6), torch.Generator().manual_seed(1), descriptors), D(x, labels, descriptors)))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.allclose(outs[0][1], outs[1][1], atol=1e-6)


def test_a_time_budget_gives_the_progress_bar_an_end_and_an_eta(data, tmp_path, capsys):
    gan(data, tmp_path / "timed", steps=None, minutes=0.05)
    bars = capsys.readouterr().err
    # without a total the bar only counts ("7step [00:03, ...]"); with one it shows "7/9 [00:03<00:01, ...]"
    assert re.search(r"\d+/\d+ \[\d\d:\d\d<\d\d:\d\d", bars), bars[-300:]


def test_a_wider_d_grows_from_a_narrower_one_as_the_same_function(data, tmp_path):
    from training.gan import Discriminator, _grow, _widen

    torch.manual_seed(0)
    narrow, wide = Discriminator(3, 8, 2, spectral=False), Discriminator(3, 16, 2, spectral=False)
    own = wide.state_dict()  # as init_from does: the head reads the new pooled features with zeros, then grow
    wide.load_state_dict({k: _grow(k, _widen(k, v, own[k]), own[k]) for k, v in narrow.state_dict().items()})
    x, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    assert torch.allclose(wide(x, labels), narrow(x, labels), atol=1e-5)
    new_rows = wide.features[0].weight[8:]
    assert new_rows.abs().sum() > 0  # the new channels are live, so they learn
    with pytest.raises(ValueError, match="can grow, not shrink"):
        _grow("features.0.weight", wide.features[0].weight, narrow.features[0].weight)
    run = gan(data, tmp_path / "narrow", d_width=8, d_norm="none").parent
    gan(data, tmp_path / "wide", init=run, d_width=16, d_norm="none", steps=5)
    assert read_checkpoint(tmp_path / "wide")[1]["D.features.0.weight"].shape[0] == 16


@pytest.mark.parametrize("command, kwargs, arch", [("gan", gan_kwargs, dict(widths=(16, 8, 8), d_width=8, crop=16)),
                                                   ("sr", sr_kwargs, dict(channels=8, blocks=1, noise=2))])
def test_resume_alone_continues_a_run_with_its_recorded_flags(data, tmp_path, command, kwargs, arch, capsys):
    out = tmp_path / "run"
    assert cli_main([command, *cli_flags(kwargs(data, out, **arch))]) == 0
    # Only where the run is and a longer budget: the architecture, data and crop come from the checkpoint.
    assert cli_main([command, "--out", str(out), "--resume", "--steps", "5"]) == 0, capsys.readouterr().err
    meta = read_checkpoint(out)[0]
    assert meta["step"] == 5
    assert {k: meta["train"][k] for k in arch} == {k: list(v) if isinstance(v, tuple) else v for k, v in arch.items()}
    assert meta["train"]["data"] == str(data)
    # A flag given still wins over the record.
    assert cli_main([command, "--out", str(out), "--resume", "--steps", "6", "--ckpt-every", "1"]) == 0
    assert read_checkpoint(out)[0]["train"]["ckpt_every"] == 1


def test_a_missing_data_flag_is_one_line_naming_it(tmp_path, capsys):
    assert cli_main(["gan", "--out", str(tmp_path / "run"), "--steps", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --data is required") and err.count("\n") == 1, err
