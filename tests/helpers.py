"""Tiny random models saved as real weights files, shared by the tests (fixtures live in conftest.py).

The models are small enough that every test runs on a laptop CPU in well under a second:
a generator with stride 4 (16 → 8 → 8 channels) and ×2 / ×4 upscalers with 8 channels and 1 block.
Layers that the architectures zero-initialise (FiLM, the upscaler tail) get random weights,
so style and the learned residual really change the output and the tests can fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from core import weights
from core.generator import GeneratorConfig, TextureGenerator
from core.upscaler import Upscaler, UpscalerConfig

REPO = Path(__file__).resolve().parents[1]
STYLES = ["brick", "grass"]


def tiny_generator_config() -> GeneratorConfig:
    return GeneratorConfig(styles=len(STYLES), style_dim=8, local_dim=4, global_dim=4, periodic_dim=4,
                           widths=(16, 8, 8), fine_periodic_dim=2, layouts=2)


def tiny_generator(seed: int = 0) -> TextureGenerator:
    """Random-init generator whose FiLM layers and detail-noise strengths are non-zero (both start
    at zero in training), so the identities below exercise every path of the noise."""
    torch.manual_seed(seed)
    model = TextureGenerator(tiny_generator_config())
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and m is not model.wave:
                m.weight.normal_(0, 0.3)
                m.bias.normal_(0, 0.1)
            if getattr(m, "noise_strength", None) is not None:
                m.noise_strength.normal_(0, 0.5)
    return model.eval().requires_grad_(False)


def tiny_upscaler(scale: int, seed: int = 0, noise: int = 0, grain: bool = False) -> Upscaler:
    """Random-init upscaler with a non-zero tail (zero at init), so its output is more than bicubic; with
    `noise` channels of noise inputs (as grain with `grain`), also non-zero."""
    torch.manual_seed(seed)
    model = Upscaler(UpscalerConfig(scale=scale, channels=8, blocks=1, noise=noise, grain=grain))
    with torch.no_grad():
        for m in model.modules():  # unit gain per layer, so every pixel of context visibly matters
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, a=0.2)
                if m.bias is not None:
                    m.bias.normal_(0, 0.01)
        model.tail.weight.mul_(0.2)
    return model.eval().requires_grad_(False)


def save_generator(path: Path, model: TextureGenerator, styles: list[str] | None = None) -> Path:
    return weights.save(path, "generator", model.cfg.to_dict(), model.state_dict(),
                        styles=list(styles or STYLES),
                        data={"random init (tests)": "CC0-1.0"},
                        training={"steps": 0, "seconds": 0, "hardware": "none"}, metrics={})


def save_upscaler(path: Path, model: Upscaler, **meta) -> Path:
    return weights.save(path, "upscaler", model.cfg.to_dict(), model.state_dict(),
                        data={"random init (tests)": "CC0-1.0"},
                        training={"steps": 0, "seconds": 0, "hardware": "none"}, metrics={}, **meta)


def make_models_folder(folder: Path) -> Path:
    """Generator (brick, grass) plus ×4 and ×2 upscalers, all tiny and random, in `folder`."""
    save_generator(folder / "gan-tiny.safetensors", tiny_generator())
    save_upscaler(folder / "sr-x4-tiny.safetensors", tiny_upscaler(4, seed=1))
    save_upscaler(folder / "sr-x2-tiny.safetensors", tiny_upscaler(2, seed=2))
    return folder


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a CLI subprocess: one CPU thread, and no $TESSERA_MODELS leaking in."""
    env = {k: v for k, v in os.environ.items() if k != "TESSERA_MODELS"}
    return {**env, "OMP_NUM_THREADS": "1", **(extra or {})}


def run_cli(*args: str | os.PathLike, timeout: float = 120, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess:
    """Run `python -m core ARGS...` from the repository root → CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=REPO, env=cli_env(env),
                          capture_output=True, text=True, timeout=timeout)


def run_cli_parallel(*argvs: list, max_workers: int = 8) -> list[subprocess.CompletedProcess]:
    """Several independent CLI runs at once (each spends most of its time importing torch)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(pool.map(lambda argv: run_cli(*argv), argvs))


def text_png(d: Path) -> Path:
    """A file named like a PNG that holds text: for 'not a readable image' errors."""
    (d / "x.png").write_text("this is not an image\n")
    return d / "x.png"


def regular_file(d: Path) -> Path:
    """A regular file where a folder is expected."""
    (d / "afile").write_text("a regular file, not a folder\n")
    return d / "afile"
