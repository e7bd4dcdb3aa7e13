"""The one place where images cross between files, numpy and torch.

Conventions, fixed here once:
  numpy  rows top to bottom, sRGB-encoded values as stored, in one of these layouts:
           (H, W)        grey              (H, W, 2)  grey + alpha
           (H, W, 3)     RGB               (H, W, 4)  RGB + alpha (straight, not premultiplied)
         with dtype uint8 (0…255), uint16 (0…65535), bool (0 or 1) or float16/32/64 (0…1); each dtype's
         range maps to [0, 1] (DTYPES). The generators make (H, W, 3) uint8.
  torch  (B, 3, H, W) float32 in [0, 1], same values (the models work on sRGB values directly).
Files: `read_pixels` decodes every mode Pillow opens into those layouts without losing range or meaning
(16-bit grey stays 16-bit; 1-bit, palette-grey and colour with R = G = B everywhere become grey; alpha is
kept; EXIF orientation applied), or refuses it with one line; `read_image` gives the same picture as
(H, W, 3) uint8 for code that only takes RGB. Writes go to a temporary file in the target folder and are
renamed into place, so a crash or a kill never leaves a truncated image behind.
Imports numpy only; Pillow when a file is read or written, torch only in `to_tensor` and `to_uint8`, so the
torch-free path (core.runtime, the Blender worker on Blender's own Python) writes its images with this module.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

import numpy as np

from .files import atomic_path, check_can_write, check_name_length

if TYPE_CHECKING:
    import torch
    from PIL import Image as PILImage

# accepted numpy dtypes → the value that means full intensity (floats: 1)
DTYPES = {"bool": 1, "uint8": 255, "uint16": 65535, "float16": 1, "float32": 1, "float64": 1}
FLOAT_SLACK = 1e-3  # floats this far outside 0…1 are rounding, clipped; further out is another convention


class UnreadableImage(ValueError):
    """A file that is not an image Tessera can read; the message names it, `reason` says why."""

    def __init__(self, path: object, reason: str):
        super().__init__(f"{path}: {reason}")
        self.reason = reason


# arrays

def check_array(img: object, what: str = "image") -> np.ndarray:
    """Raise ValueError unless `img` is an array in one of the layouts and dtypes above."""
    if not isinstance(img, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(img).__name__}")
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (2, 3, 4))):
        raise ValueError(f"{what} has shape {img.shape}: use (H, W) grey, (H, W, 2) grey + alpha, "
                         f"(H, W, 3) RGB or (H, W, 4) RGBA")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{what} has shape {img.shape}: it holds no pixels")
    if img.dtype.name not in DTYPES:
        raise ValueError(f"{what} has dtype {img.dtype}: use one of {', '.join(DTYPES)} "
                         f"(integers span their dtype's range, floats 0…1)")
    if img.dtype.kind == "f":
        lo, hi = float(np.min(img)), float(np.max(img))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{what} holds NaN or infinite values: floats must be finite, in 0…1")
        if lo < -FLOAT_SLACK or hi > 1 + FLOAT_SLACK:
            raise ValueError(f"{what} holds floats from {lo:g} to {hi:g}: floats must be in 0…1 "
                             f"(for 0…255 values pass a uint8 array)")
    return img


def to_unit(img: np.ndarray) -> np.ndarray:
    """Any accepted array → float32 in [0, 1], same shape."""
    img = check_array(img)
    return np.clip(img.astype(np.float32) / np.float32(DTYPES[img.dtype.name]), 0, 1)


def from_unit(x: np.ndarray, dtype: np.dtype | str) -> np.ndarray:
    """float in [0, 1] → `dtype` (bool comes back as uint8: upscaling makes grey levels)."""
    name = np.dtype(dtype).name
    if name in ("float16", "float32", "float64"):
        return np.clip(x, 0, 1).astype(np.float32)
    top = 255 if name in ("bool", "uint8") else DTYPES[name]
    return (np.clip(x, 0, 1) * top).round().astype(np.uint8 if top == 255 else np.uint16)


def to_rgb8(img: np.ndarray) -> np.ndarray:
    """Any accepted array → (H, W, 3) uint8: grey repeated in R, G and B, alpha left out."""
    img = check_array(img)
    colour = img if img.ndim == 2 else img[..., :1] if img.shape[2] <= 2 else img[..., :3]
    if img.dtype != np.uint8:
        colour = from_unit(to_unit(colour), np.uint8)
    if colour.ndim == 2:
        colour = colour[..., None]
    return np.ascontiguousarray(np.broadcast_to(colour, (*colour.shape[:2], 3)))


def has_transparency(img: np.ndarray) -> bool:
    """True when `img` has an alpha channel that is not fully opaque everywhere."""
    if img.ndim != 3 or img.shape[2] not in (2, 4):
        return False
    alpha = img[..., -1]
    return bool(alpha.min() < DTYPES[img.dtype.name])


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) RGB array of an accepted dtype → (1, 3, H, W) float32 in [0, 1]. Needs torch."""
    import torch

    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        shape = getattr(img, "shape", None)
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {shape}")
    return torch.from_numpy(to_unit(img)).permute(2, 0, 1)[None].contiguous()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float tensor in [0, 1] → (H, W, 3) uint8, rounded half to even. Needs torch."""
    import torch

    assert x.dim() == 4 and x.shape[:2] == (1, 3), f"want (1, 3, H, W), got {tuple(x.shape)}"
    return (x[0].float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


# reading files

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXR_MAGIC = b"\x76\x2f\x31\x01"


def _check_header(head: bytes, name: object) -> None:
    """Refuse what Pillow cannot read but Tessera writes (OpenEXR), and warn about what it reads with less
    than it holds: a 16-bit colour or grey + alpha PNG (colour type 2, 4 or 6), which Pillow reads at 8 bits."""
    if head.startswith(EXR_MAGIC):
        stem = Path(str(name)).with_suffix(".png")
        raise UnreadableImage(name, f"an OpenEXR image; Tessera does not read EXR: use the 16-bit PNG it writes "
                                    f"beside it ({stem.name}), or save the image as a 16-bit PNG")
    if head.startswith(PNG_SIGNATURE) and len(head) >= 26 and head[24] == 16 and head[25] in (2, 4, 6):
        warnings.warn(f"{name}: a 16-bit {'grey + alpha' if head[25] == 4 else 'colour'} PNG, read at 8 bits "
                      f"per channel (Pillow reads only grey PNGs at 16 bits)", stacklevel=3)


def open_image(source: str | Path | BinaryIO, name: str | None = None) -> PILImage.Image:
    """Open and decode an image file with Pillow, turned upright by its EXIF orientation (as phones write it).

    `source` is a path or a binary file object (read from its position; `name`, else its `name`
    attribute, names it in messages). Raises FileNotFoundError, or UnreadableImage (a ValueError)
    naming the file: a folder, a name too long, EXR, an unknown format, a damaged file. Warns when a
    16-bit PNG is read at 8 bits."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, (str, Path)):
        path = Path(source)
        name = str(path) if name is None else name
        check_name_length(path)  # `is_dir` raises on a name too long: say it as for outputs
        try:
            folder, file = path.is_dir(), path.is_file()
        except OSError as e:  # a whole path too long, a loop of links
            raise UnreadableImage(name, f"cannot be read ({e.strerror})") from None
        if folder:
            raise UnreadableImage(name, "is a folder, expected an image file")
        if not file:
            raise FileNotFoundError(f"{name}: no such file")
        try:
            with open(path, "rb") as f:
                head = f.read(32)
        except OSError as e:  # no permission to read it
            raise UnreadableImage(name, f"cannot be read ({e.strerror})") from None
        fp: str | Path | BinaryIO = path
    else:
        name = str(getattr(source, "name", "image")) if name is None else name
        start = source.tell()
        head = source.read(32)
        source.seek(start)
        fp = source
    _check_header(head, name)
    try:
        with Image.open(fp) as im:
            im.load()
            upright = ImageOps.exif_transpose(im)  # a copy, turned when the file says so
            return upright if upright is not None else im.copy()
    except Image.DecompressionBombError as e:
        raise UnreadableImage(name, f"too large to read ({e})") from None
    except UnidentifiedImageError:
        raise UnreadableImage(name, "not a readable image (not a format Pillow knows)") from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError, TypeError,
            KeyError):  # what Pillow's decoders raise on broken files
        raise UnreadableImage(name, "not a readable image (damaged or cut short)") from None


def _srgb(im: PILImage.Image, mode: str) -> PILImage.Image:
    """`im` converted to `mode` ("RGB" or "RGBA"), through its embedded ICC profile when it has one that
    is not sRGB (a Display P3 phone photo, a CMYK print file), as colour-managed viewers show it."""
    from PIL import ImageCms

    icc = im.info.get("icc_profile")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if "srgb" not in (ImageCms.getProfileDescription(src) or "").lower().replace(" ", ""):
                alpha = im.getchannel("A") if "A" in im.getbands() else None
                base = im.convert("RGB") if im.mode not in ("RGB", "CMYK") else im
                rgb = ImageCms.profileToProfile(base, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
                if rgb is not None:
                    if mode == "RGBA":
                        rgb.putalpha(alpha if alpha is not None else 255)
                    return rgb
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # an unusable profile: read the values as they are, as Pillow does
    return im.convert(mode)


def _grey_palette(im: PILImage.Image) -> bool:
    palette = im.getpalette() or []
    return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))


def _grey_if_equal(arr: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) whose R, G and B are equal everywhere → (H, W) or (H, W, 2): a grey image stored as
    colour (a grey + alpha PNG, which Pillow opens as RGBA, or a grey picture saved as RGB)."""
    if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]):
        return np.ascontiguousarray(arr[..., 0] if arr.shape[2] == 3 else arr[..., [0, 3]])
    return arr


def decode(im: PILImage.Image, name: str = "image") -> np.ndarray:
    """A Pillow image → an array in the layouts of this module, keeping range and meaning (else raise
    UnreadableImage naming `name`):

    1 → (H, W) uint8 0/255;  L, P with a grey palette → (H, W) uint8;  LA, La, PA grey → (H, W, 2) uint8;
    I;16* → (H, W) uint16;  I → (H, W) uint16 when its values lie in 0…65535;  F → (H, W) float32 when
    its values lie in 0…1;  RGB, RGBX, YCbCr, LAB, HSV, CMYK, P → (H, W, 3) uint8 sRGB;  RGBA, RGBa, PA,
    P with transparency → (H, W, 4) uint8. Colour whose R, G and B are equal everywhere (a grey + alpha
    PNG, which Pillow opens as RGBA; a grey picture saved as RGB) → grey as above: grey in, grey out.
    """
    mode = im.mode
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode == "L":
        return np.asarray(im)
    if mode in ("LA", "La"):
        return np.asarray(im if mode == "LA" else im.convert("RGBA").convert("LA"))
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(im).astype(np.uint16)  # native byte order
    if mode == "I":
        arr = np.asarray(im)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 65535:
            raise UnreadableImage(name, f"32-bit integer image with values from {lo} to {hi}; Tessera reads "
                                        f"integer images as 16-bit (0…65535): save it as 16-bit or 8-bit")
        return arr.astype(np.uint16)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        if not (np.isfinite(lo) and np.isfinite(hi) and -FLOAT_SLACK <= lo and hi <= 1 + FLOAT_SLACK):
            raise UnreadableImage(name, f"float image with values from {lo:g} to {hi:g}; Tessera reads float "
                                        f"images in 0…1: scale it, or save it as 16-bit")
        return np.clip(arr, 0, 1)
    if mode in ("P", "PA"):
        alpha = mode == "PA" or "transparency" in im.info
        if _grey_palette(im):
            return np.asarray(im.convert("LA" if alpha else "L"))
        return np.asarray(im.convert("RGBA" if alpha else "RGB"))
    if mode in ("RGB", "RGBX", "YCbCr", "LAB", "HSV", "CMYK"):
        return _grey_if_equal(np.asarray(_srgb(im, "RGB")))
    if mode in ("RGBA", "RGBa"):
        return _grey_if_equal(np.asarray(_srgb(im if mode == "RGBA" else im.convert("RGBA"), "RGBA")))
    raise UnreadableImage(name, f"Pillow mode {mode} is not supported: save it as 8- or 16-bit grey, RGB or RGBA")


def read_pixels(path: str | Path) -> np.ndarray:
    """Any image Pillow can read → an array as in `decode` (upright). Raises FileNotFoundError, or
    UnreadableImage (a ValueError) naming the file and why."""
    im = open_image(path)
    return decode(im, str(path))


def read_image(path: str | Path, alpha: Literal["warn", "ignore"] = "warn") -> np.ndarray:
    """Any image Pillow can read → (H, W, 3) uint8 RGB in 0…255, upright, grey repeated, 16-bit and
    float scaled.

    An alpha channel with transparent areas is left out, with a warning naming the file (`alpha="warn"`)
    or silently (`"ignore"`). Raises FileNotFoundError, or ValueError naming the file (see `open_image`
    and `decode`) or, for another `alpha`, naming the accepted values."""
    if alpha not in ("warn", "ignore"):
        raise ValueError(f"alpha={alpha!r}: use 'warn' or 'ignore'")
    img = read_pixels(path)
    if alpha == "warn" and has_transparency(img):
        warnings.warn(f"{path}: transparency ignored (only the colour channels are read)", stacklevel=2)
    return to_rgb8(img)


# writing files

def check_writable(path: str | Path) -> Path:
    """Fail early, before any work, when `path` cannot be written."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    check_name_length(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a file name")
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: output must be a .png file")
    check_can_write(folder, path)
    return path


def png_image(img: np.ndarray) -> PILImage.Image:
    """An array as above → the Pillow image a PNG stores it as: grey (8- or 16-bit), grey + alpha, RGB,
    RGBA (8-bit). Floats are written as 16-bit grey; other 16-bit layouts raise ValueError."""
    from PIL import Image

    img = check_array(img)
    if img.dtype.kind == "f":
        if img.ndim != 2:
            raise ValueError(f"a float image of shape {img.shape} cannot be written as PNG: only (H, W) grey")
        img = from_unit(img, np.uint16)
    if img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    if img.dtype == np.uint16 and img.ndim != 2:
        raise ValueError(f"a 16-bit image of shape {img.shape} cannot be written as PNG here: only (H, W) grey")
    if img.dtype == np.uint16:
        return Image.frombytes("I;16", (img.shape[1], img.shape[0]), np.ascontiguousarray(img, dtype="<u2").tobytes())
    mode = "L" if img.ndim == 2 else {2: "LA", 3: "RGB", 4: "RGBA"}[img.shape[2]]
    return Image.frombytes(mode, (img.shape[1], img.shape[0]), np.ascontiguousarray(img).tobytes())


def write_png(path: str | Path, img: np.ndarray, sweep: bool = True) -> Path:
    """Write an array (layouts and dtypes above; 16-bit and float only as (H, W) grey) as PNG, atomically
    (`sweep` as in `core.files.atomic_path`) → `path`. Raises ValueError for any other array (see
    `check_array`, `png_image`) or a folder that cannot be written."""
    image = png_image(img)
    with atomic_path(path, sweep) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def write_exr(path: str | Path, img: np.ndarray, sweep: bool = True) -> Path:
    """Write an (H, W) float array as a one-channel float32 OpenEXR file, atomically (needs OpenEXR)."""
    import OpenEXR

    with atomic_path(path, sweep) as tmp:
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        with OpenEXR.File(header, {"Y": np.ascontiguousarray(img, dtype=np.float32)}) as f:
            f.write(str(tmp))
    return Path(path)


def have_exr() -> bool:
    import importlib.util

    return importlib.util.find_spec("OpenEXR") is not None
