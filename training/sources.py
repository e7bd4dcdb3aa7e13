"""Fetch the raw texture photographs that ship inside two Debian game-data packages.

Both packages are plain Debian archives, so fetching is `apt-get download` plus unpacking the
few folders we use. Everything lands in a cache folder outside git; each step is skipped when its
output already exists, so the command can be rerun after an interruption.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    package: str
    licence: str
    folder: str  # where the unpacked images end up, relative to the cache


ZERO_AD = Source("0ad-data", "CC-BY-SA-3.0", "0ad")
UFOAI = Source("ufoai-textures", "per file (GPL-2/2+, public domain, MIT, CC-BY(-SA))", "ufoai")

_0AD_PUBLIC_ZIP = "usr/share/games/0ad/mods/public/public.zip"
_0AD_TERRAIN = "art/textures/terrain/types/"
_UFOAI_PK3 = "usr/share/games/ufoai/base/0textures.pk3"
_UFOAI_COPYRIGHT = "usr/share/doc/ufoai-textures/copyright"
UFOAI_GOOD_FOLDERS = ("tex_nature", "tex_material", "tex_streets", "tex_buildings", "tex_mattn",
                      "tex_ctp1", "tex_trak", "tex_base", "tex_terrain")


def _run(cmd: list[str] | str, cwd: Path, shell: bool = False) -> None:
    print("+", cmd if shell else " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True, shell=shell)


def _download(package: str, raw: Path) -> Path:
    found = sorted(raw.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"apt-get not found: download the Debian package {package!r} into {raw} by hand")
    _run(["apt-get", "download", package], cwd=raw)
    found = sorted(raw.glob(f"{package}_*.deb"))
    if not found:
        raise RuntimeError(f"apt-get download {package} produced no .deb in {raw} (try `apt-get update`)")
    return found[-1]


def _extract_member(deb: Path, member: str, raw: Path) -> Path:
    target = raw / member
    if not target.exists():
        _run(f"dpkg-deb --fsys-tarfile {deb.name} | tar -xf - ./{member}", cwd=raw, shell=True)
    return target


def _unzip(archive: Path, prefixes: tuple[str, ...], dest: Path) -> int:
    count = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.startswith(prefixes):
                continue
            out = dest / info.filename
            if not out.exists():
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(out.suffix + ".part")
                with zf.open(info) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                tmp.replace(out)
            count += 1
    return count


def fetch_all(cache: Path) -> dict[str, Path]:
    """Make sure both sources are unpacked under `cache`; return source folder per package."""
    raw = cache / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    done = {}

    dest = cache / ZERO_AD.folder
    if not (dest / ".complete").exists():
        deb = _download(ZERO_AD.package, raw)
        public = _extract_member(deb, _0AD_PUBLIC_ZIP, raw)
        n = _unzip(public, (_0AD_TERRAIN,), dest)
        print(f"0ad-data: {n} terrain files", flush=True)
        (dest / ".complete").touch()
        public.unlink()  # 3.3 GB and no longer needed
    done[ZERO_AD.package] = dest / _0AD_TERRAIN

    dest = cache / UFOAI.folder
    if not (dest / ".complete").exists():
        deb = _download(UFOAI.package, raw)
        pk3 = _extract_member(deb, _UFOAI_PK3, raw)
        n = _unzip(pk3, tuple(f"textures/{f}/" for f in UFOAI_GOOD_FOLDERS), dest)
        copyright_file = _extract_member(deb, _UFOAI_COPYRIGHT, raw)
        shutil.copyfile(copyright_file, dest / "copyright")
        print(f"ufoai-textures: {n} files", flush=True)
        (dest / ".complete").touch()
    done[UFOAI.package] = dest
    return done


def ufoai_licences(copyright_file: Path) -> tuple[dict[str, str], str]:
    """Parse the package's machine-readable (DEP-5) copyright file.

    Returns ({"textures/tex_x/name.png": licence}, default licence for files not listed).
    """
    per_file: dict[str, str] = {}
    default = "GPL-2+"
    for paragraph in copyright_file.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        files: list[str] = []
        licence = None
        in_files = False
        for line in paragraph.splitlines():
            if line.startswith("Files:"):
                in_files = True
                files += line[len("Files:"):].split()
            elif line.startswith(" ") and in_files:
                files += line.split()
            else:
                in_files = False
                if line.startswith("License:"):
                    licence = line[len("License:"):].strip()
        if licence is None or not files:
            continue
        if files == ["*"]:
            default = licence
        for f in files:
            if f.startswith("base/textures/"):
                per_file[f[len("base/"):]] = licence
    return per_file, default
