"""Shared fixtures: tiny random models saved as real weights files, and a CLI runner.

The models are small enough that every test runs on a laptop CPU in well under a second:
a generator with stride 4 (16 → 8 → 8 channels) and ×2 / ×4 upscalers with 8 channels and 1 block.
Layers that the architectures zero-initialise (FiLM, the upscaler tail) get small random weights,
so style and the learned residual really change the output and the tests can fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core import weights
from core.generator import GeneratorConfig, TextureGenerator
from core.upscaler import Upscaler, UpscalerConfig

REPO = Path(__file__).resolve().parents[1]
STYLES = ["brick", "grass"]


# helpers

def tiny_generator_config() -> GeneratorConfig:
    return GeneratorConfig(styles=len(STYLES), style_dim=8, local_dim=4, global_dim=4, periodic_dim=4,
                           widths=(16, 8, 8))


def tiny_generator(seed: int = 0) -> TextureGenerator:
    """Random-init generator whose FiLM layers are non-zero (they start at zero in training)."""
    torch.manual_seed(seed)
    model = TextureGenerator(tiny_generator_config())
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and m is not model.wave:
                m.weight.normal_(0, 0.3)
                m.bias.normal_(0, 0.1)
    return model.eval().requires_grad_(False)


def tiny_upscaler(scale: int, seed: int = 0) -> Upscaler:
    """Random-init upscaler with a non-zero tail, so its output is more than wrap-around bilinear."""
    torch.manual_seed(seed)
    model = Upscaler(UpscalerConfig(scale=scale, channels=8, blocks=1))
    with torch.no_grad():
        model.tail.weight.normal_(0, 0.05)
        model.tail.bias.normal_(0, 0.01)
    return model.eval().requires_grad_(False)


def save_generator(path: Path, model: TextureGenerator, styles: list[str] | None = None) -> Path:
    return weights.save(path, "generator", model.cfg.to_dict(), model.state_dict(),
                        styles=list(styles or STYLES),
                        data={"source": "random init (tests)", "licence": "CC0-1.0"},
                        training={"steps": 0, "seconds": 0, "hardware": "none"}, metrics={})


def save_upscaler(path: Path, model: Upscaler) -> Path:
    return weights.save(path, "upscaler", model.cfg.to_dict(), model.state_dict(),
                        data={"source": "random init (tests)", "licence": "CC0-1.0"},
                        training={"steps": 0, "seconds": 0, "hardware": "none"}, metrics={})


# fixtures

@pytest.fixture
def gen_model() -> TextureGenerator:
    """A fresh tiny random generator (stride 4, styles brick and grass); tests may modify it."""
    return tiny_generator()


@pytest.fixture
def make_upscaler():
    """Factory: make_upscaler(scale) → a fresh tiny random upscaler with a non-zero tail."""
    return tiny_upscaler


@pytest.fixture
def tiny_models(tmp_path: Path) -> Path:
    """A models folder: generator (brick, grass) plus ×4 and ×2 upscalers, all tiny and random."""
    folder = tmp_path / "models"
    save_generator(folder / "gan-tiny.safetensors", tiny_generator())
    save_upscaler(folder / "sr-x4-tiny.safetensors", tiny_upscaler(4, seed=1))
    save_upscaler(folder / "sr-x2-tiny.safetensors", tiny_upscaler(2, seed=2))
    return folder


@pytest.fixture
def run_cli():
    """Run `python -m core ARGS...` in a subprocess (one CPU thread) → CompletedProcess with text."""

    def run(*args: str | os.PathLike, timeout: float = 120, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess:
        base = {k: v for k, v in os.environ.items() if k != "TESSERA_MODELS"}  # the user's choice must not leak in
        full_env = {**base, "OMP_NUM_THREADS": "1", **(env or {})}
        return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=REPO, env=full_env,
                              capture_output=True, text=True, timeout=timeout)

    return run
