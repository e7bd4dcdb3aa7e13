"""The one place where images cross between files, numpy and torch.

Conventions, fixed here once:
  numpy  (H, W, 3) uint8 RGB, rows top to bottom, sRGB-encoded values;
  torch  (1, 3, H, W) float32 in [0, 1], same values (the models work on sRGB values directly).
Writes go to a temporary file in the target folder and are renamed into place, so a crash or a
kill never leaves a truncated image behind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .files import atomic_path, check_can_write


def to_tensor(img: np.ndarray) -> torch.Tensor:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        shape = getattr(img, "shape", None)
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {shape}")
    if img.dtype == np.uint8:
        x = torch.from_numpy(np.array(img, copy=True)).float() / 255.0
    else:
        x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).clamp(0, 1)
    return x.permute(2, 0, 1)[None].contiguous()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    assert x.dim() == 4 and x.shape[:2] == (1, 3), f"want (1, 3, H, W), got {tuple(x.shape)}"
    return (x[0].float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def read_image(path: str | Path) -> np.ndarray:
    """Any image Pillow can read → (H, W, 3) uint8. Raises ValueError naming the file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected an image file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path}: too large to read ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: not a readable image ({e.__class__.__name__})") from None


def check_writable(path: str | Path) -> Path:
    """Fail early, before any work, when `path` cannot be written."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.exists() and path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a file name")
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: output must be a .png file")
    check_can_write(folder, path)
    return path


def write_png(path: str | Path, img: np.ndarray) -> Path:
    """Write an (H, W, C) uint8 array (or (H, W) uint8/uint16) as PNG, atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")
    return Path(path)


def write_exr(path: str | Path, img: np.ndarray) -> Path:
    """Write an (H, W) float array as a one-channel float32 OpenEXR file, atomically (needs OpenEXR)."""
    import OpenEXR

    with atomic_path(path) as tmp:
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        with OpenEXR.File(header, {"Y": np.ascontiguousarray(img, dtype=np.float32)}) as f:
            f.write(str(tmp))
    return Path(path)


def have_exr() -> bool:
    import importlib.util

    return importlib.util.find_spec("OpenEXR") is not None
