"""What a texture request holds, checked without torch: seed, size and style (or a mix of styles).

Shared by the PyTorch API (core.api) and the torch-free runtime (core.runtime), so both accept and refuse
the same requests with the same one-line messages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

MIN_SIZE, MAX_SIZE, SIZE_STEP = 256, 8192, 64
GAN_SCALE = 4  # the GAN draws at size/4, the upscaler brings it to size

E = TypeVar("E")


class UnknownStyle(ValueError):
    """A style name no loaded weights file holds (the message says which names there are)."""


def check_seed(seed: Any) -> int:
    """`seed` as an int; raises ValueError unless it is a whole number from 0 to 2**64 - 1."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ValueError(f"seed {seed!r} must be a whole number from 0 to 2**64 - 1")
    return int(seed)


def check_size(size: Any) -> int:
    """`size` as an int; raises ValueError unless it is a multiple of 64 from 256 to 8192."""
    valid = f"a multiple of {SIZE_STEP} from {MIN_SIZE} to {MAX_SIZE}"
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"size {size!r} is not a whole number: use {valid}")
    if not (MIN_SIZE <= size <= MAX_SIZE and size % SIZE_STEP == 0):
        raise ValueError(f"size {size} is not supported: use {valid}")
    return int(size)


def parse_style(spec: str) -> dict[str, float]:
    """'grass', 'grass+rock' (equal parts) or 'grass:0.7+rock:0.3' → {name: amount}; raises ValueError for
    an empty name or an amount that is not a finite number ≥ 0."""
    mix: dict[str, float] = {}
    for part in spec.split("+"):
        name, _, amount = part.strip().partition(":")
        name = name.strip()
        if not name:
            raise ValueError(f"style {spec!r} has an empty name: write e.g. 'grass' or 'grass:0.7+rock:0.3'")
        try:
            value = float(amount) if amount else 1.0
        except ValueError:
            raise ValueError(f"style weight {amount!r} in {spec!r} is not a number") from None
        if not math.isfinite(value) or value < 0:  # nan or inf would silently give a black image
            raise ValueError(f"style weight {value} in {spec!r} must be a finite number ≥ 0")
        mix[name] = mix.get(name, 0.0) + value
    return mix


def style_weights(style: str | dict[str, float], generators: Mapping[str, E]) -> tuple[E, np.ndarray]:
    """(the entry of `generators` that holds the style, its mixing weights (1, styles) float32 summing to 1,
    in the order of the entry's meta["styles"]). `style`: 'grass', 'grass+rock' (equal parts),
    'grass:0.7+rock:0.3' or {'grass': 0.7, ...}; a string that is exactly a style's name means that style,
    even when the name holds ':' or '+'. `generators` maps style names to entries with a `meta` dict; one
    entry object per weights file. Raises ValueError naming an unknown style, a bad weight, or styles of
    different files (a photo style, core.photostyle, by name: it mixes with nothing)."""
    if isinstance(style, str):
        mix = {style: 1.0} if style in generators else parse_style(style)
    else:
        mix = dict(style)
    if not mix:
        raise ValueError(f"empty style: choose from {', '.join(generators)}")
    for name, amount in mix.items():
        if not math.isfinite(amount) or amount < 0:
            raise ValueError(f"style weight {amount} for {name!r} must be a finite number ≥ 0")
        if name not in generators:
            raise UnknownStyle(f"unknown style {name!r}: choose from {', '.join(generators)}")
    entries = {id(generators[n]): generators[n] for n in mix}
    if len(entries) > 1:
        from .photostyle import KIND  # here: core.photostyle imports this module

        photo = next((n for n in mix if generators[n].meta.get("kind") == KIND), None)  # type: ignore[attr-defined]
        if photo is not None:  # drawn from its photos: there is nothing to blend it with
            raise ValueError(f"{photo} is a photo style: it cannot be mixed with other styles; use it alone")
        raise ValueError(f"styles {', '.join(mix)} come from different weights files and cannot be mixed")
    entry = next(iter(entries.values()))
    names = entry.meta["styles"]  # type: ignore[attr-defined]
    w = np.zeros((1, len(names)), dtype=np.float32)
    for name, amount in mix.items():
        w[0, names.index(name)] += np.float32(amount)
    total = w.sum()
    if total <= 0:
        raise ValueError(f"style weights in {style!r} must add up to more than 0")
    return entry, w / total
