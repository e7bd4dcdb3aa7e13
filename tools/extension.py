"""Build and validate the Blender extension zips with Blender's own tool (shipped inside the bpy package).

    python tools/extension.py [--out dist] [--platform linux-x64 ...] [--python 3.13 ...]
        → dist/tessera-<version>-<platform>.zip (Blender 4.2 to 5.0) and
          dist/tessera-<version>-<platform>-py313.zip (Blender 5.1 and newer) for each platform
          (default: all four), validated

Each zip carries, as unmodified wheels from PyPI, what the worker imports on Blender's own Python besides
numpy (which Blender ships): ONNX Runtime, safetensors and Pillow, for one Python: 3.11 (Blender 4.2 to 5.0)
or 3.13 (Blender 5.1 and newer). The manifest's `wheels` names them all; `download` fetches the missing ones
into wheels/ (ignored by git) with `pip download --only-binary=:all: --no-deps`. The build runs on a staged
copy holding exactly one platform's wheels for one Python, with `platforms` and `wheels` narrowed to them and
`blender_version_min`/`_max` to the Blenders that run that Python, so no zip carries another's wheels and each
Blender installs only the zip meant for it.

Why a zip per Python rather than both Pythons' wheels in one: Blender's installer (bl_pkg) would take such a
zip (it installs only the wheels whose cpXY tag is its own Python, an abi3 wheel for its version and newer,
and enables the extension when its Python is among those of the wheels), but ONNX Runtime and Pillow twice
put the Windows zip over MAX_MB.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / "wheels"
SHIPPED = ("__init__.py", "blender_addon", "core")  # besides the manifest and the wheels


class Blenders(NamedTuple):
    """The Blender versions that run one Python: min ≤ version < max (None: no upper bound yet)."""
    min: str
    max: str | None
    suffix: str  # of its zips' names


# Python → the Blenders that run it (bpy 4.2 to 5.0 are cp311 wheels, 5.1 and newer cp313). No max for 3.13: a
# later Blender on another Python would install that zip but not enable it (bl_pkg checks the wheels' Python)
PYTHONS = {"3.11": Blenders("4.2.0", "5.1.0", ""), "3.13": Blenders("5.1.0", None, "-py313")}
# Blender platform → the pip --platform tag that fetches its wheels (pip also takes older compatible tags)
PIP_PLATFORMS = {"linux-x64": "manylinux_2_28_x86_64", "windows-x64": "win_amd64",
                 "macos-arm64": "macosx_13_0_arm64", "macos-x64": "macosx_13_0_x86_64"}
MAX_MB = 60


def blender_ext() -> Path:
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: the bpy package is not installed (pip install 'bpy==4.5.*')")
    package = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(package.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise SystemExit("error: blender_ext.py not found inside the bpy package")
    return found[-1]


def manifest() -> dict:
    return tomllib.loads((ROOT / "blender_manifest.toml").read_text())


def wheel_platforms(name: str) -> set[str]:
    """A wheel file name → the Blender platforms of the four this extension ships that it is for."""
    found = set()
    for tag in name[:-len(".whl")].split("-")[-1].split("."):  # e.g. manylinux_2_27_x86_64.manylinux_2_28_x86_64
        if tag == "any":
            found |= set(PIP_PLATFORMS)
        elif tag == "win_amd64":
            found.add("windows-x64")
        elif tag.startswith(("manylinux", "musllinux", "linux")) and tag.endswith("x86_64"):
            found.add("linux-x64")
        elif tag.startswith("macosx"):
            found |= {"macos-arm64", "macos-x64"} if tag.endswith("universal2") else \
                {"macos-arm64"} if tag.endswith("arm64") else {"macos-x64"} if tag.endswith("x86_64") else set()
    if not found:
        raise ValueError(f"wheel {name} is for none of {', '.join(PIP_PLATFORMS)}")
    return found


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def wheel_pythons(name: str) -> set[str]:
    """A wheel file name → the Pythons of PYTHONS it installs on, as Blender's installer decides
    (bl_pkg's _extensions_wheel_filter_for_this_system): cpXY on X.Y only, an abi3 one on X.Y and newer,
    pyX on any X.*."""
    python_tag, abi_tag = name[:-len(".whl")].split("-")[-3:-1]
    found = set()
    for tag in python_tag.split("."):
        m = re.fullmatch(r"(?:cp|py)(\d)(\d*)", tag)
        if m is None:
            raise ValueError(f"wheel {name}: unknown Python tag {tag}")
        for python in PYTHONS:
            if not m[2]:
                ok = _version(python)[0] == int(m[1])
            else:
                ok = _version(python) == (int(m[1]), int(m[2])) or \
                    ("abi3" in abi_tag.split(".") and _version(python) >= (int(m[1]), int(m[2])))
            if ok:
                found.add(python)
    if not found:
        raise ValueError(f"wheel {name} is for none of Python {', '.join(PYTHONS)}")
    return found


def wheels_for(platform: str, python: str) -> list[str]:
    """The manifest's wheels (./wheels/NAME.whl) for one Blender platform and Python."""
    return [w for w in manifest()["wheels"]
            if platform in wheel_platforms(Path(w).name) and python in wheel_pythons(Path(w).name)]


def download(platforms: list[str], pythons: list[str]) -> None:
    """Fetch the manifest's wheels for `platforms` and `pythons` that wheels/ lacks, exactly as named, from
    PyPI."""
    WHEELS.mkdir(exist_ok=True)
    for wheel in dict.fromkeys(w for p in platforms for py in pythons for w in wheels_for(p, py)):
        name = Path(wheel).name
        if (WHEELS / name).is_file():
            continue
        dist, version = name.split("-")[:2]
        # the wheel's own platform tags: pip does not count manylinux_2_17 as compatible with a
        # --platform of manylinux_2_28, so asking by the platform alone misses older-glibc wheels
        tags = [t for t in name[:-len(".whl")].split("-")[-1].split(".") if t != "any"] or \
            [PIP_PLATFORMS[p] for p in platforms]
        python = min(wheel_pythons(name), key=_version)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        *[arg for t in tags for arg in ("--platform", t)], "--python-version", python,
                        "-d", str(WHEELS), f"{dist.replace('_', '-')}=={version}"], check=True)
        if not (WHEELS / name).is_file():
            raise SystemExit(f"error: pip fetched another file than {name} (see {WHEELS}); "
                             f"update the manifest's wheels")


def _toml_list(key: str, values: list[str]) -> str:
    return f"{key} = [\n" + "".join(f'  "{v}",\n' for v in values) + "]\n"


def staged_manifest(platform: str, python: str) -> str:
    """blender_manifest.toml narrowed to one platform, its wheels for `python` and the Blenders that run
    `python`."""
    text = (ROOT / "blender_manifest.toml").read_text()
    for key, values in (("platforms", [platform]), ("wheels", wheels_for(platform, python))):
        text, n = re.subn(rf"^{key} = \[[^\]]*\]\n", _toml_list(key, values), text, flags=re.M)
        assert n == 1, f"blender_manifest.toml: no {key} = [...] block"
    blenders = PYTHONS[python]
    text = re.sub(r'^blender_version_max = "[^"]*"\n', "", text, flags=re.M)
    versions = f'blender_version_min = "{blenders.min}"\n' + \
        (f'blender_version_max = "{blenders.max}"\n' if blenders.max else "")
    text, n = re.subn(r'^blender_version_min = "[^"]*"\n', versions, text, flags=re.M)
    assert n == 1, "blender_manifest.toml: no blender_version_min"
    return text


def stage(platform: str, python: str, folder: Path) -> Path:
    """A copy of what the zip for `platform` and `python` holds → `folder`."""
    folder.mkdir(parents=True)
    (folder / "blender_manifest.toml").write_text(staged_manifest(platform, python))
    for name in SHIPPED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, folder / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, folder / name)
    (folder / "wheels").mkdir()
    for wheel in wheels_for(platform, python):
        shutil.copy2(WHEELS / Path(wheel).name, folder / "wheels")
    return folder


def zip_name(platform: str, python: str) -> str:
    return f"{manifest()['id']}-{manifest()['version']}-{platform.replace('-', '_')}{PYTHONS[python].suffix}.zip"


def build(out: Path, platforms: list[str] | None = None, pythons: list[str] | None = None
          ) -> dict[tuple[str, str], Path]:
    """Download the wheels, build one zip per platform and Python with Blender's builder
    (`--split-platforms`) and validate each → {(platform, python): zip}. Raises SystemExit when a zip is
    over MAX_MB."""
    platforms = platforms or list(manifest()["platforms"])
    pythons = pythons or list(PYTHONS)
    out.mkdir(parents=True, exist_ok=True)
    download(platforms, pythons)
    tool = [sys.executable, str(blender_ext())]
    zips = {}
    with tempfile.TemporaryDirectory() as tmp:
        for python in pythons:
            for platform in platforms:
                src = stage(platform, python, Path(tmp) / python / platform)
                built = Path(tmp) / python / f"{platform}.zips"
                built.mkdir()
                subprocess.run([*tool, "build", "--split-platforms", "--source-dir", str(src),
                                "--output-dir", str(built)], check=True, stdout=subprocess.DEVNULL)
                (zip_built,) = built.glob("*.zip")  # tessera-<version>-<platform>.zip
                zip_path = out / zip_name(platform, python)
                shutil.move(zip_built, zip_path)
                subprocess.run([*tool, "validate", str(zip_path)], check=True, stdout=subprocess.DEVNULL)
                if zip_path.stat().st_size > MAX_MB * 2**20:
                    raise SystemExit(f"error: {zip_path.name} is {zip_path.stat().st_size / 2**20:.1f} MiB, "
                                     f"over {MAX_MB}")
                zips[platform, python] = zip_path
    return zips


def this_platform() -> str:
    """This machine's Blender platform, e.g. linux-x64. Raises SystemExit for one no zip is built for."""
    import platform

    system = {"Linux": "linux", "Windows": "windows", "Darwin": "macos"}.get(platform.system(), platform.system())
    machine = {"x86_64": "x64", "AMD64": "x64", "arm64": "arm64", "aarch64": "arm64"}.get(platform.machine(), "")
    name = f"{system}-{machine}"
    if name not in PIP_PLATFORMS:
        raise SystemExit(f"error: no extension zip is built for this machine ({name}): {', '.join(PIP_PLATFORMS)}")
    return name


def this_python() -> str:
    """The Python running this (the bpy module's, for tests and previews) → its X.Y. Raises SystemExit for one
    no zip is built for."""
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if python not in PYTHONS:
        raise SystemExit(f"error: no extension zip is built for Python {python}: {', '.join(PYTHONS)}")
    return python


def build_here(out: Path) -> Path:
    """The zip for this machine's platform and Python only (for tests and `make preview`) → its path."""
    return build(out, [this_platform()], [this_python()])[this_platform(), this_python()]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "dist")
    p.add_argument("--platform", action="append", choices=list(PIP_PLATFORMS),
                   help="build only this platform's zips (repeatable; default all four)")
    p.add_argument("--python", action="append", choices=list(PYTHONS),
                   help="build only the zips for this Python (repeatable; default both)")
    args = p.parse_args()
    for (platform, python), path in build(args.out, args.platform, args.python).items():
        blenders = PYTHONS[python]
        print(f"{path}  {path.stat().st_size / 2**20:.1f} MiB  ({platform}, Python {python}: "
              f"Blender >= {blenders.min}{', < ' + blenders.max if blenders.max else ''})")
