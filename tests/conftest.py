"""Fixtures: a models folder of tiny random weights files, fresh tiny models, and a CLI runner.

The model builders themselves live in helpers.py, so test modules can import them directly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import helpers
from helpers import make_models_folder, tiny_generator, tiny_upscaler

# fixtures

@pytest.fixture
def gen_model():
    """A fresh tiny random generator (stride 4, styles brick and grass); tests may modify it."""
    return tiny_generator()


@pytest.fixture
def make_upscaler():
    """Factory: make_upscaler(scale) → a fresh tiny random upscaler with a non-zero tail."""
    return tiny_upscaler


@pytest.fixture
def tiny_models(tmp_path: Path) -> Path:
    """A models folder: generator (brick, grass) plus ×4 and ×2 upscalers, all tiny and random."""
    return make_models_folder(tmp_path / "models")


@pytest.fixture
def run_cli():
    """Run `python -m core ARGS...` in a subprocess (OMP_NUM_THREADS=1) → CompletedProcess (text)."""
    return helpers.run_cli
