"""Weights files: round trips, and every way a file can be bad gives a one-line error naming it."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from core import api, weights
from core.generator import GeneratorConfig
from core.upscaler import UpscalerConfig
from helpers import STYLES, save_generator, save_upscaler, tiny_generator, tiny_upscaler

CORE = Path(__file__).resolve().parents[1] / "core"


# helpers

def sample(model, seed: int = 0) -> torch.Tensor:
    return model(torch.tensor([[0.3, 0.7]]), (4, 5), torch.Generator().manual_seed(seed))


def assert_one_line_naming(err: pytest.ExceptionInfo, path: Path) -> str:
    msg = str(err.value)
    assert path.name in msg, msg
    assert "\n" not in msg, msg
    return msg


# round trips

def test_generator_round_trip(tmp_path):
    model = tiny_generator()
    path = save_generator(tmp_path / "g.safetensors", model)
    loaded, meta = weights.build(path)
    assert not loaded.training
    assert torch.equal(sample(loaded), sample(model))
    assert GeneratorConfig(**meta["config"]) == model.cfg
    assert meta["kind"] == "generator"
    assert meta["styles"] == STYLES
    assert meta["format"] == weights.FORMAT
    assert meta["format_version"] == weights.FORMAT_VERSION
    assert re.fullmatch(r"[0-9a-f]{64}", meta["tensor_sha256"])
    assert meta["tensor_sha256"] == weights.tensor_digest(model.state_dict())
    assert meta["data"] == {"random init (tests)": "CC0-1.0"} and meta["training"]["steps"] == 0 and meta["metrics"] == {}
    # nothing left behind by the atomic write
    assert [p.name for p in tmp_path.iterdir()] == ["g.safetensors"]


@pytest.mark.parametrize("scale", [2, 4])
def test_upscaler_round_trip(tmp_path, scale):
    model = tiny_upscaler(scale)
    path = save_upscaler(tmp_path / "u.safetensors", model)
    loaded, meta = weights.build(path)
    x = torch.rand(1, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert UpscalerConfig(**meta["config"]) == model.cfg and meta["kind"] == "upscaler"


def test_compile_and_ddp_prefixes_are_stripped(tmp_path):
    model = tiny_generator()
    state = {f"_orig_mod.module.{k}": v for k, v in model.state_dict().items()}
    path = weights.save(tmp_path / "g.safetensors", "generator", model.cfg.to_dict(), state, styles=STYLES)
    loaded, _ = weights.build(path)
    assert torch.equal(sample(loaded), sample(model))


# bad files

def test_missing_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        weights.build(path)


def test_truncated_file(tmp_path):
    path = save_generator(tmp_path / "cut.safetensors", tiny_generator())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(weights.ModelFileError) as err:
        weights.build(path)
    assert_one_line_naming(err, path)
    assert err.value.path == path


def test_tampered_tensor_bytes(tmp_path):
    path = save_generator(tmp_path / "tampered.safetensors", tiny_generator())
    data = bytearray(path.read_bytes())
    for i in range(len(data) - 40, len(data) - 30):  # inside the last tensor's data
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(weights.ModelFileError, match="sha256") as err:
        weights.build(path)
    assert_one_line_naming(err, path)


def test_wrong_architecture(tmp_path):
    model = tiny_generator()
    cfg = model.cfg.to_dict() | {"widths": [16, 8, 4]}   # the tensors are for (16, 8, 8)
    path = weights.save(tmp_path / "arch.safetensors", "generator", cfg, model.state_dict(), styles=STYLES)
    with pytest.raises(weights.ModelFileError, match="architecture") as err:
        weights.build(path)
    assert_one_line_naming(err, path)


def test_unknown_config_key(tmp_path):
    model = tiny_upscaler(2)
    path = weights.save(tmp_path / "cfg.safetensors", "upscaler", model.cfg.to_dict() | {"heads": 3},
                        model.state_dict())
    with pytest.raises(weights.ModelFileError, match="architecture") as err:
        weights.build(path)
    assert_one_line_naming(err, path)


def test_style_names_must_match(tmp_path):
    path = save_generator(tmp_path / "styles.safetensors", tiny_generator(), styles=["brick", "grass", "rock"])
    with pytest.raises(weights.ModelFileError, match="style names") as err:
        weights.build(path)
    assert_one_line_naming(err, path)


def test_not_a_tessera_file(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(weights.ModelFileError, match="not a Tessera weights file") as err:
        weights.build(path)
    assert_one_line_naming(err, path)


def test_not_safetensors_at_all(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_text("definitely not tensors\n" * 20)
    with pytest.raises(weights.ModelFileError) as err:
        weights.build(path)
    assert_one_line_naming(err, path)


def test_newer_format_version(tmp_path):
    model = tiny_upscaler(2)
    path = save_upscaler(tmp_path / "future.safetensors", model)
    meta, tensors = weights.read(path)
    raw = {"format": weights.FORMAT, "format_version": str(weights.FORMAT_VERSION + 1), "kind": "upscaler",
           "config": json.dumps(meta["config"]), "tensor_sha256": meta["tensor_sha256"]}
    save_file(tensors, str(path), metadata=raw)
    with pytest.raises(weights.ModelFileError, match="newer") as err:
        weights.build(path)
    assert_one_line_naming(err, path)


# loading a folder through the API

def test_load_folder_with_one_bad_file(tiny_models):
    bad = tiny_models / "broken.safetensors"
    bad.write_bytes((tiny_models / "gan-tiny.safetensors").read_bytes()[:500])
    with pytest.warns(UserWarning, match="broken.safetensors"):
        gen = api.load_generator(device="cpu", models_dir=tiny_models)
    assert gen.styles == STYLES
    assert sorted(gen.upscalers) == [2, 4]
    assert len(gen.errors) == 1 and "broken.safetensors" in gen.errors[0]
    assert "\n" not in gen.errors[0]


def test_load_folder_with_only_bad_files(tmp_path):
    folder = tmp_path / "allbad"
    folder.mkdir()
    (folder / "a.safetensors").write_bytes(b"\x00" * 64)
    with warnings.catch_warnings(), pytest.raises(FileNotFoundError) as err:
        warnings.simplefilter("error")   # the error names the bad files; no warning repeats them
        api.load_generator(device="cpu", models_dir=folder)
    assert str(folder) in str(err.value)
    assert "a.safetensors" in str(err.value)


def test_load_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        api.load_generator(device="cpu", models_dir=tmp_path / "missing")


def test_upscalers_alone_are_not_enough(tmp_path):
    save_upscaler(tmp_path / "u.safetensors", tiny_upscaler(4))
    with pytest.raises(FileNotFoundError, match="no usable generator"):
        api.load_generator(device="cpu", models_dir=tmp_path)


def test_no_pickle_files_in_core():
    pickles = [p for ext in ("pt", "pth", "ckpt", "pkl", "pickle", "bin") for p in CORE.rglob(f"*.{ext}")]
    assert pickles == [], f"pickle-type files under core/: {pickles}"
