"""Where weights files live and what they hold, without importing torch.

The Blender add-on lists styles from here at draw time; the API loads the same files with torch.
A safetensors file starts with an 8-byte little-endian header length and a JSON header, whose
`__metadata__` holds Tessera's string → string metadata (see `core.weights`).
"""

from __future__ import annotations

import json
import os
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SHIPPED_DIR = Path(__file__).parent / "weights"
MAX_HEADER = 100 * 2**20  # safetensors' own limit on the header size
# The upscaler slots: ×4 and ×2 faithful upscalers (`upscale`, and `generate` when no detail one is loaded)
# and the ×4 detail upscaler `generate` uses (an upscaler file whose metadata says "role": "detail"), each with
# the shipped file that fills it when no file on the search path does.
DETAIL = "detail"
SHIPPED_UPSCALERS = {4: "tessera_sr_x4.safetensors", 2: "tessera_sr_x2.safetensors",
                     DETAIL: "tessera_sr_x4_detail.safetensors"}


def shipped_upscalers(have: set, folder: Path = SHIPPED_DIR) -> list[Path]:
    """The shipped upscaler files (in `folder`) that fill the slots missing from `have` (the slots the search
    path's files filled): the upscalers do not depend on the style, so a folder holding only a generator gets
    the shipped ones. The shipped detail one only where ×4 is missing too: a folder's own ×4 is not replaced."""
    return [folder / name for slot, name in SHIPPED_UPSCALERS.items()
            if slot not in have and not (slot == DETAIL and 4 in have) and (folder / name).is_file()]


def pick_upscaler(upscalers: Mapping[int, T], detail: T | None, scale: int, want_detail: bool) -> T:
    """The upscaler to run for `scale` from the loaded ones (either runtime's): the ×4 `detail` one where
    wanted and loaded, else the faithful one of that scale. Raises ValueError naming the scales loaded."""
    if want_detail and scale == 4 and detail is not None:
        return detail
    if scale not in upscalers:
        have = ", ".join(f"×{s}" for s in sorted(upscalers)) or "none"
        raise ValueError(f"no ×{scale} upscaler loaded (have: {have})")
    return upscalers[scale]


def upscaler_slot(meta: dict, scale: int) -> int | str:
    """The slot an upscaler file fills: DETAIL for a ×4 file whose metadata role is "detail", else its scale.
    Raises ValueError for a detail file of another scale."""
    if meta.get("role") != DETAIL:
        return scale
    if scale != 4:
        raise ValueError(f"a detail upscaler must be ×4, this one is ×{scale}")
    return DETAIL


def user_models_dir() -> Path:
    """The per-user models folder (XDG data dir on Linux, the platform's equivalent elsewhere)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "tessera" / "models"


def chosen_models_dir(models_dir: str | Path | None = None) -> Path | None:
    """The one folder that replaces the default search path: `models_dir`, else $TESSERA_MODELS; None if neither."""
    chosen = models_dir or os.environ.get("TESSERA_MODELS")
    return Path(chosen).expanduser() if chosen else None


def search_path(models_dir: str | Path | None = None) -> list[Path]:
    """`models_dir` or $TESSERA_MODELS replaces the default: the user folder, then shipped weights."""
    chosen = chosen_models_dir(models_dir)
    return [chosen] if chosen is not None else [user_models_dir(), SHIPPED_DIR]


def model_files(models_dir: str | Path | None = None) -> list[Path]:
    files: list[Path] = []
    for folder in search_path(models_dir):
        if folder.is_dir():
            files += sorted(folder.glob("*.safetensors"))
    return files


def peek(path: Path) -> dict[str, str]:
    """The metadata of a weights file, read from its header alone. Raises ValueError naming the file."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > MAX_HEADER:
                raise ValueError("header too large")
            header = json.loads(f.read(n))
        meta = header.get("__metadata__") or {}
        if meta.get("format") != "tessera-weights":
            raise ValueError("not a Tessera weights file")
        return meta
    except OSError as e:
        why = e.strerror or str(e)
    except struct.error:
        why = "too short to hold a safetensors header"
    except (json.JSONDecodeError, UnicodeDecodeError):
        why = "its header is not JSON"
    except AttributeError:
        why = "its header is not a JSON object"
    except ValueError as e:  # raised above, in words
        why = str(e)
    raise ValueError(f"{path}: unusable weights file ({why})")


def list_styles(models_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """→ (style names over every generator file on the search path, one error line per bad file).

    Cheap (headers only); `core.api.load_generator` still verifies every file before use."""
    styles: list[str] = []
    errors: list[str] = []
    for path in model_files(models_dir):
        try:
            meta = peek(path)
            if meta.get("kind") in ("generator", "exemplar"):  # a GAN's styles, or a photo style (core.photostyle)
                styles += [s for s in json.loads(meta["styles"]) if s not in styles]
        except (ValueError, KeyError) as e:
            errors.append(str(e) if isinstance(e, ValueError) else f"{path}: no style names")
    return styles, errors
