"""End to end on the shipped weights (core/weights/*.safetensors), exactly as a user runs it: no --models."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from PIL import Image

from helpers import run_cli

SHIPPED = Path(__file__).resolve().parents[1] / "core" / "weights"



@pytest.fixture
def user_env(tmp_path) -> dict[str, str]:
    """An empty per-user models folder, so only the shipped weights are on the search path."""
    return {"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}


def test_shipped_files_all_load():
    from core import api

    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a bad shipped file would warn
        gen = api.load_generator(device="cpu", models_dir=SHIPPED)
    assert gen.errors == []
    assert len(gen.styles) >= 8
    assert sorted(gen.upscalers) == [2, 4]
    for entry in gen.generators.values():
        assert {"data", "training"} <= set(entry.meta), f"{entry.path.name}: provenance missing from header"


def test_styles_and_generate_with_shipped_weights(tmp_path, user_env):
    res = run_cli("styles", env=user_env)
    assert res.returncode == 0, res.stderr
    styles = res.stdout.split()
    assert len(styles) >= 8, styles
    out = tmp_path / "first.png"
    res = run_cli("generate", "--style", styles[0], "--size", "256", "--out", out, env=user_env)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "warning" not in res.stderr
    with Image.open(out) as im:
        im.load()
        assert im.size == (256, 256) and im.mode == "RGB"
