"""A tiny generated image set, tiny training configs and checkpoint readers for the training tests.

Two style folders of three small numpy-made PNGs each (48–64 px) plus one unreadable `bad.png`:
enough for a few GAN and upscaler steps on one CPU thread in about a second.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
STYLES = ["noise", "stripes"]  # the style folders, in the sorted order StyleImages reports them


# images

def smooth_noise(seed: int, h: int, w: int, cutoff: float = 0.1) -> np.ndarray:
    """Periodic low-pass noise (h, w, 3) in [0, 1], built in the Fourier domain."""
    rng = np.random.default_rng(seed)
    r2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2
    x = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((h, w, 3)), axes=(0, 1))
                             * np.exp(-r2 / (2 * cutoff**2))[:, :, None], axes=(0, 1)))
    return np.clip((x - x.mean()) / (6 * x.std()) + 0.5, 0, 1)


def stripes(h: int, w: int, period: int, diagonal: bool = False) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    t = 0.5 + 0.5 * np.sin(2 * np.pi * ((x + y) if diagonal else y) / period)
    return t[:, :, None] * np.array([0.9, 0.5, 0.2]) + 0.05


def checker(h: int, w: int, cell: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    t = ((x // cell + y // cell) % 2).astype(float)
    return t[:, :, None] * np.array([0.7, 0.7, 0.9]) + 0.1


def write_png(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8)).save(path)
    return path


def make_dataset(root: Path) -> Path:
    """root/stripes/*.png, root/noise/*.png (3 each), root/noise/bad.png (text), root/noise/notes.txt."""
    write_png(root / "stripes" / "horizontal.png", stripes(64, 64, 8))
    write_png(root / "stripes" / "diagonal.png", stripes(56, 56, 7, diagonal=True))
    write_png(root / "stripes" / "checker.png", checker(48, 64, 8))
    write_png(root / "noise" / "smooth_a.png", smooth_noise(1, 64, 64))
    write_png(root / "noise" / "smooth_b.png", smooth_noise(2, 48, 64, cutoff=0.2))
    write_png(root / "noise" / "smooth_c.png", smooth_noise(3, 64, 48, cutoff=0.05))
    (root / "noise" / "bad.png").write_text("this is not an image\n")
    (root / "noise" / "notes.txt").write_text("not an image extension: ignored without a warning\n")
    return root


# configs (keyword overrides win)

def gan_kwargs(data: Path, out: Path, **over) -> dict:
    kw = dict(data=data, out=out, steps=3, widths=(16, 8, 8), d_width=8, d_levels=3, crop=16, g_size=24,
              batch=2,
              image_size=64, ckpt_every=2, sample_every=2, device="cpu")
    return {**kw, **over}


def sr_kwargs(data: Path, out: Path, **over) -> dict:
    kw = dict(data=data, out=out, steps=3, channels=8, blocks=1, crop=32, batch=2, image_size=64,
              ckpt_every=2, sample_every=2, device="cpu")
    return {**kw, **over}


def cli_flags(kwargs: dict) -> list[str]:
    """Config keyword arguments → `--flag value` command-line arguments."""
    out: list[str] = []
    for k, v in kwargs.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            out.append(flag)
        elif isinstance(v, tuple):
            out += [flag, ",".join(map(str, v))]
        elif v is not False and v is not None:
            out += [flag, str(v)]
    return out


# checkpoints

def read_checkpoint(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """→ (meta, tensors) of folder/last.safetensors, read without the training code."""
    from safetensors.torch import load_file, safe_open

    path = folder / "last.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
    return meta, load_file(str(path))


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# subprocesses

def subprocess_env() -> dict[str, str]:
    """This environment with one CPU thread and no inherited torchrun variables."""
    drop = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TESSERA_MODELS"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "OMP_NUM_THREADS": "1"}


def run_training(*args: str | os.PathLike, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m training ARGS...` in a subprocess → CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "training", *map(str, args)], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
