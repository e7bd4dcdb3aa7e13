"""Style names (read from the weights' headers, no torch) and their thumbnail previews."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
import bpy.utils.previews

from ..core import catalog
from . import prefs

_previews: Any = None                       # bpy.utils.previews collection
_items: list[tuple[str, str, str, int, int]] = []  # kept alive: Blender reads enum items from Python memory
_cache_key: tuple | None = None
errors: list[str] = []                      # weights files that could not be read, one line each


def register() -> None:
    global _previews
    _previews = bpy.utils.previews.new()


def unregister() -> None:
    global _previews, _cache_key
    if _previews is not None:
        bpy.utils.previews.remove(_previews)
    _previews, _cache_key = None, None
    _items.clear()


def names(context: bpy.types.Context | None = None) -> list[str]:
    return [item[0] for item in items(context)]


def items(context: bpy.types.Context | None = None) -> list[tuple[str, str, str, int, int]]:
    """Enum items for the style dropdown, with thumbnails once the worker has drawn them."""
    global _cache_key
    try:
        models = prefs.models_dir(context)
    except ValueError as e:  # a relative folder: say why there are no styles
        errors[:] = [str(e)]
        _items.clear()
        return _items
    if models is not None and not models.is_dir():
        errors[:] = [f"models folder {models} {prefs.not_a_folder(models)}"]
        _items.clear()
        return _items
    files = catalog.model_files(models)
    key = (str(models), tuple((str(f), f.stat().st_mtime) for f in files), len(_previews or ()))
    if key != _cache_key:
        found, errors[:] = catalog.list_styles(models)
        _items[:] = [(s, s.replace("_", " ").title(), f"Seamless {s} texture", icon(s), i)
                     for i, s in enumerate(found)]
        _cache_key = key
    return _items


def icon(style: str) -> int:
    if _previews is not None and style in _previews:
        return _previews[style].icon_id
    return 0


def have_thumbnails() -> bool:
    return bool(_previews) and all(s in _previews for s in names())


def load_thumbnails(files: dict[str, str]) -> None:
    for style, path in files.items():
        if _previews is not None and style not in _previews and Path(path).is_file():
            _previews.load(style, path, "IMAGE")


def enum_items(_self: Any, context: bpy.types.Context) -> list[tuple[str, str, str, int, int]]:
    return items(context)
