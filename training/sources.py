"""Fetch the real texture photographs that ship inside Debian game-data packages.

Which images are used, and what each shows, is listed in `manifest.tsv` beside this file: one row per
image (package, path inside the package, style, licence). A path `archive!member` names a member of a zip
archive (`.pk3`, `public.zip`, `base.wz`) inside the package. Fetching is `apt-get download` plus unpacking
just the listed files and each package's copyright file into a cache folder outside git; each step is
skipped when its output exists, so the command can be rerun after an interruption.

`supertuxkart-data` is reserved as an independent test set and never appears in the manifest.
"""

from __future__ import annotations

import csv
import functools
import shlex
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from core.files import atomic_path

MANIFEST = Path(__file__).with_name("manifest.tsv")
RESERVED = ("supertuxkart-data",)  # the independent test set: never trained or validated on


@dataclass(frozen=True)
class Entry:
    package: str
    path: str      # inside the package's file tree; "archive!member" for a member of a zip archive
    style: str
    licence: str

    @property
    def archive(self) -> str | None:
        return self.path.split("!", 1)[0] if "!" in self.path else None


def read_manifest(path: Path = MANIFEST) -> list[Entry]:
    """The rows of a manifest (lines starting with # are comments). Raises ValueError on a malformed row
    or a reserved package."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    entries = []
    for n, row in enumerate(csv.DictReader(lines, delimiter="\t"), start=2):
        if not all(row.get(k) for k in ("package", "path", "style", "licence")):
            raise ValueError(f"{path}: row {n} needs package, path, style and licence: {row}")
        if row["package"] in RESERVED:
            raise ValueError(f"{path}: row {n}: {row['package']} is reserved as the independent test set")
        entries.append(Entry(row["package"], row["path"], row["style"], row["licence"]))
    return entries


def _run(cmd: str, cwd: Path) -> None:
    print("+", cmd, flush=True)
    subprocess.run(cmd, cwd=cwd, check=True, shell=True)


def _download(package: str, raw: Path) -> Path:
    found = sorted(raw.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"apt-get not found: download the Debian package {package!r} into {raw} by hand")
    _run(f"apt-get download {shlex.quote(package)}", cwd=raw)
    found = sorted(raw.glob(f"{package}_*.deb"))
    if not found:
        raise RuntimeError(f"apt-get download {package} produced no .deb in {raw} (try `apt-get update`)")
    return found[-1]


def copyright_path(package: str) -> str:
    return f"usr/share/doc/{package}/copyright"


def fetch(entries: list[Entry], cache: Path) -> dict[str, Path]:
    """Unpack every file the entries need (and each package's copyright file) under cache/<package>/,
    downloading each package's .deb into cache/raw/ first if it is not there. Returns {package: its
    unpacked root}. Raises RuntimeError when a package cannot be downloaded, CalledProcessError when
    dpkg-deb or tar fails."""
    raw = cache / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    roots = {}
    for package in sorted({e.package for e in entries}):
        root = cache / package
        roots[package] = root
        wanted = sorted({e.archive or e.path for e in entries if e.package == package} | {copyright_path(package)})
        if all((root / w).exists() for w in wanted):
            continue
        root.mkdir(parents=True, exist_ok=True)
        deb = _download(package, raw)
        with atomic_path(root / ".wanted") as tmp:
            tmp.write_text("\n".join(f"./{w}" for w in wanted) + "\n")
        # tar reads the list of members from a file: thousands of names would not fit on a command line
        # tar writes each file whole before the next, but a kill can cut one short: only the archives are
        # big enough for that to matter, and a cut zip fails to open, which names it
        _run(f"dpkg-deb --fsys-tarfile {shlex.quote(str(deb.resolve()))} | tar -xf - -T .wanted", cwd=root)
    return roots


def read_bytes(entry: Entry, root: Path) -> bytes:
    """The image file's bytes, from the unpacked tree or from inside its zip archive; a KTX2 texture, which
    Pillow cannot read, comes back as PNG (see ktx2_to_png). Raises OSError for a missing file, KeyError for a
    member the archive lacks, and what ktx2_to_png raises."""
    if entry.archive is None:
        data = (root / entry.path).read_bytes()
    else:
        data = _zip(root / entry.archive).read(entry.path.split("!", 1)[1])
    return ktx2_to_png(data, entry.path) if entry.path.lower().endswith(".ktx2") else data


def ktx2_to_png(data: bytes, name: str) -> bytes:
    """A KTX2 texture with a Basis Universal payload (ETC1S or UASTC, as warzone2100-data ships) → PNG bytes of
    its largest level, RGB unless the file stores alpha. Raises RuntimeError when the opengl-basisu package is
    not installed (a dependency on the platforms it has wheels for), ValueError for a damaged or non-Basis file."""
    try:
        import opengl_basisu
    except ImportError:
        raise RuntimeError(f"{name}: reading KTX2 needs the opengl-basisu package (pip install -e '.[data]')") from None
    import io

    from PIL import Image

    texture = opengl_basisu.open(data)
    rgba = texture.transcode(opengl_basisu.Target.RGBA8).data
    out = io.BytesIO()
    Image.fromarray(rgba if texture.has_alpha else rgba[..., :3]).save(out, format="PNG", compress_level=1)
    return out.getvalue()


@functools.lru_cache(maxsize=4)
def _zip(path: Path) -> zipfile.ZipFile:
    """Open each archive once per process: reading the index of a 3 GB zip for every member is slow."""
    return zipfile.ZipFile(path)
