"""Tessera core: seamless texture generation and upscaling. Never imports bpy.

Importing this package is cheap; torch loads when a model does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["load_generator", "__version__"]

if TYPE_CHECKING:
    from .api import Tessera


def load_generator(device: str = "auto", models_dir: Any = None) -> "Tessera":
    """Load the generator(s) and upscaler(s); see `core.api.load_generator`."""
    from .api import load_generator as _load

    return _load(device=device, models_dir=models_dir)
