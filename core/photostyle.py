"""Photo styles: a style made of your own photos, drawn by image quilting on a torus (core.quilt).

`tessera learn PHOTO … --name NAME` writes one (the default method; `--method gan` adapts the generator
instead). Each texture of a photo style is quilted from one of its photos, chosen by the seed, at the
photo's own scale: a 1024² texture from a photo stored at 1024 px covers about as much as the photo does.
It is seamless by construction, holds only the photo's pixels (no blur, no invented detail) and needs
neither torch nor a graph, so every runtime draws it the same way (core.api and core.runtime).

File: a Tessera weights file (core.weights) of kind "exemplar", `<models>/<name>.safetensors`:

    tensors   "photo.0", "photo.1", …   (H, W, 3) uint8 sRGB, each side from MIN_SIDE to MAX_SIDE px
    header    styles [name]; config {"patch": side in px, or null for core.quilt.default_patch};
              "photos": the file names they came from

Loading checks all of it (sha256 included, as for every weights file) and never executes code.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import quilt, weights
from .catalog import model_files, peek, user_models_dir
from .files import check_name_length
from .request import check_seed, check_size

KIND = "exemplar"
MIN_SIDE = 128   # px: a shorter photo leaves too few patches to quilt from
MAX_SIDE = 1024  # px: photos are stored at most this large (the scale of a 1024² texture)
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")  # a learned style's name, both methods
SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".tga", ".exr"}


@dataclass(frozen=True)
class PhotoStyle:
    """A loaded photo style. `meta` is its header (JSON decoded); `photos` (H, W, 3) uint8 arrays."""

    meta: dict[str, Any]
    path: Path
    photos: tuple[np.ndarray, ...]

    @property
    def name(self) -> str:
        return self.meta["styles"][0]

    def generate(self, seed: int = 0, size: int = 1024) -> np.ndarray:
        """A seamless texture (size, size, 3) uint8: the seed picks a photo and the quilting's patches; the
        same seed gives the same texture on every machine. `size` as core.request.check_size (a multiple of 64
        from 256 to 8192). Raises ValueError for a bad seed or size. Time for 1024² on one core of this
        project's CPU: 1.1–2.3 s (11 validation photos, `tools/learn_eval.py seams`), 2.2 s from a 1024 px
        photo."""
        seed, size = check_seed(seed), check_size(size)
        photo = self.photos[int(np.random.default_rng([seed, 7]).integers(len(self.photos)))]
        return quilt.synthesize(photo, size, size, patch=self.meta["config"].get("patch"), seed=seed)

    def thumbnail(self, size: int) -> np.ndarray:
        """(size, size, 3) uint8: the middle square of the first photo, resized (Pillow, Lanczos)."""
        from PIL import Image

        img = self.photos[0]
        h, w = img.shape[:2]
        s = min(h, w)
        square = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        return np.asarray(Image.fromarray(square).resize((size, size), Image.LANCZOS))


def shrink(img: np.ndarray, side: int = MAX_SIDE) -> np.ndarray:
    """(H, W, 3) uint8 → the same, its longer side at most `side` px (Lanczos, Pillow)."""
    from PIL import Image

    h, w = img.shape[:2]
    if max(h, w) <= side:
        return img
    k = side / max(h, w)
    return np.asarray(Image.fromarray(img).resize((max(1, round(w * k)), max(1, round(h * k))), Image.LANCZOS))


def save(path: Path | str, name: str, photos: list[np.ndarray], sources: list[str], patch: int | None = None,
         **meta: Any) -> Path:
    """Write a photo style atomically: `photos` (H, W, 3) uint8, each shrunk to MAX_SIDE (`shrink`), from the
    files named in `sources`. Raises ValueError for a photo that is not (H, W, 3) uint8 or is smaller than
    MIN_SIDE on its shorter side once shrunk, or a patch that does not fit every photo (core.quilt)."""
    kept = []
    for i, img in enumerate(photos):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"photo {i}: want (H, W, 3) uint8, got {img.shape} {img.dtype}")
        img = shrink(img)
        if min(img.shape[:2]) < MIN_SIDE:
            raise ValueError(f"{sources[i]}: {img.shape[1]}×{img.shape[0]} px is too small for a photo style: "
                             f"it needs at least {MIN_SIDE}×{MIN_SIDE} px")
        if patch is not None:
            quilt.check_patch(patch, *img.shape[:2])
        kept.append(img)
    if not kept:
        raise ValueError("a photo style needs at least one photo")
    names = [Path(s).name for s in sources]
    return weights.save(path, KIND, {"patch": patch}, {f"photo.{i}": img for i, img in enumerate(kept)},
                        styles=[name], photos=names, data=your_photos(sources), **meta)


def your_photos(sources: list[str] | list[Path]) -> dict[str, str]:
    """The data record ({source: licence}) of a style made from a user's photos, by either method of `learn`:
    the photos' file names, and "your own" for their licence."""
    return {f"your photos: {', '.join(Path(s).name for s in sources)}": "your own"}


def is_photo_style(path: Path) -> bool:
    """Whether weights file `path` is a photo style, from its header alone (core.catalog.peek). A file whose
    header cannot be read is not one: the loader that builds it reports why."""
    try:
        return peek(path).get("kind") == KIND
    except ValueError:
        return False


def load_into(path: Path, taken: Mapping[str, Any], photos: dict[str, PhotoStyle], errors: list[str]) -> bool:
    """For both runtimes' loaders: whether weights file `path` is a photo style; if so it is read and filed under
    its name in `photos` unless `taken` (the generators' styles) or `photos` has that name already (earlier
    files on the search path win), or, when it cannot be used, reported in `errors` (one line naming it)."""
    if not is_photo_style(path):
        return False
    try:
        ps = read(path)
    except (weights.ModelFileError, FileNotFoundError) as e:
        errors.append(str(e))
        return True
    if ps.name not in taken:
        photos.setdefault(ps.name, ps)
    return True


def read(path: Path | str) -> PhotoStyle:
    """Load and check a photo style file. Raises FileNotFoundError or core.weights.ModelFileError naming
    the file (not a photo style, no photos, a photo of another shape or dtype, a bad patch)."""
    meta, tensors = weights.read(path, "np")
    if meta["kind"] != KIND:
        raise weights.ModelFileError(path, f"not a photo style (it holds a {meta['kind']})")
    styles, config = meta.get("styles"), meta.get("config")
    if not (isinstance(styles, list) and len(styles) == 1 and isinstance(styles[0], str)):
        raise weights.ModelFileError(path, f"a photo style has one style name, not {styles!r}")
    n = len(tensors)
    if not n or set(tensors) != {f"photo.{i}" for i in range(n)}:
        raise weights.ModelFileError(path, f"want tensors photo.0 … photo.N, got {', '.join(sorted(tensors))}")
    photos = tuple(tensors[f"photo.{i}"] for i in range(n))
    for img in photos:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < MIN_SIDE \
                or max(img.shape[:2]) > MAX_SIDE:
            raise weights.ModelFileError(path, f"a photo of {img.shape} {img.dtype}: want (H, W, 3) uint8 with "
                                               f"sides from {MIN_SIDE} to {MAX_SIDE} px")
    if not isinstance(config, dict):
        raise weights.ModelFileError(path, f"config {config!r} is not a JSON object")
    try:
        if config.get("patch") is not None:
            for img in photos:
                quilt.check_patch(config["patch"], *img.shape[:2])
    except ValueError as e:
        raise weights.ModelFileError(path, str(e)) from None
    return PhotoStyle(meta, Path(path), photos)


# `tessera learn` (both methods): the photos and the name

MAP_SUFFIXES = tuple(f"_{m}" for m in ("normal", "height", "roughness", "ao"))  # what `maps` and `generate` write


def photo_files(inputs: list[Path]) -> list[Path]:
    """The image files named by `inputs` (files as given; a folder's images by suffix, sorted, leaving out the
    normal, height, roughness and AO maps Tessera writes beside an albedo, with a warning). Raises
    FileNotFoundError for a path that is not there, ValueError when no image is named at all."""
    files: list[Path] = []
    for p in inputs:
        check_name_length(p)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
            maps = [f for f in found if f.stem.lower().endswith(MAP_SUFFIXES)]
            if maps and len(maps) < len(found):  # a folder of maps alone is taken as the user's photos
                warnings.warn(f"{p}: left out {len(maps)} map(s) that are not photos ({maps[0].name}, …); "
                              "name them as files to learn from them")
                found = [f for f in found if f not in maps]
            if not found:
                raise ValueError(f"{p}: no images in this folder (looked for {', '.join(sorted(SUFFIXES))})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    if not files:
        raise ValueError("no photos given: name one or more images or folders of images")
    return files



def check_name(name: str, models: Path | None, replace: bool) -> None:
    """ValueError when `name` is already a style on the search path of `models` (None: the user models
    folder, then the shipped weights): of a file learned earlier, <models>/<name>.safetensors (unless
    `replace`), or of any other weights file (those are not ours to replace)."""
    mine = (models or user_models_dir()) / f"{name}.safetensors"
    for path in model_files(models):
        try:
            styles = json.loads(peek(path).get("styles", "[]"))
        except ValueError:
            continue  # a broken file is reported by whatever loads it
        if name not in styles:
            continue
        if path == mine and replace:
            continue
        if path == mine:
            raise ValueError(f"--name {name}: you learned a style of this name before ({path}); pass --replace "
                             "to replace it, or choose another name")
        raise ValueError(f"--name {name}: {path.name} already has a style of this name; choose another name")
    if mine.exists() and not replace:
        raise ValueError(f"--name {name}: {mine} exists; pass --replace to replace it, or choose another name")




def learn(inputs: list[Path], name: str, models: Path | str | None = None, replace: bool = False,
          patch: int | None = None) -> Path:
    """`tessera learn --method quilt`: a photo style from photos or folders of photos, written atomically
    to <models>/<name>.safetensors (`models` None: the user models folder) → that path. Seconds, numpy and
    Pillow only. Raises ValueError / FileNotFoundError with one line for a bad name (NAME), a name taken
    (`check_name`), no image, a file that is not a readable image, or a photo smaller than MIN_SIDE."""
    from .imageio import read_image

    models = None if models is None else Path(models)
    if not NAME.fullmatch(name):
        raise ValueError(f"--name {name!r}: use lower-case letters, digits, _ and - (at most 40, starting with "
                         "a letter or digit), e.g. --name red_brick")
    files = photo_files(inputs)
    photos = []
    for f in files:
        img = read_image(f)  # (H, W, 3) uint8; ValueError naming the file when it is no image
        if min(img.shape[:2]) < MIN_SIDE:
            raise ValueError(f"{f}: {img.shape[1]}×{img.shape[0]} px is too small to learn from: photos need at "
                             f"least {MIN_SIDE}×{MIN_SIDE} px")
        photos.append(img)
    check_name(name, models, replace)
    folder = models or user_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return save(folder / f"{name}.safetensors", name, photos, [str(f) for f in files], patch)
