"""Build and validate the Blender extension zips with Blender's own tool (shipped inside the bpy package).

    python tools/extension.py [--out dist] [--platform linux-x64 ...]
        → dist/tessera-<version>-<platform>.zip for each platform (default: all four), validated

Each zip carries, as unmodified wheels from PyPI, what the worker imports on Blender's own Python besides
numpy (which Blender ships): ONNX Runtime, safetensors and Pillow, for the Python of Blender 4.2 to 5.0
(3.11). The manifest's `wheels` names them; `download` fetches the missing ones into wheels/ (ignored by
git) with `pip download --only-binary=:all: --no-deps`. The build runs on a staged copy holding exactly
one platform's wheels, with `platforms` and `wheels` narrowed to it, so no zip carries another's.
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

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / "wheels"
SHIPPED = ("__init__.py", "blender_addon", "core")  # besides the manifest and the wheels
PYTHON = "3.11"  # Blender 4.2 to 5.0 (bpy 4.2-5.0 are cp311 wheels; 5.1 moved to 3.13)
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


def wheels_for(platform: str) -> list[str]:
    """The manifest's wheels (./wheels/NAME.whl) for one Blender platform."""
    return [w for w in manifest()["wheels"] if platform in wheel_platforms(Path(w).name)]


def download(platforms: list[str]) -> None:
    """Fetch the manifest's wheels for `platforms` that wheels/ lacks, exactly as named, from PyPI."""
    WHEELS.mkdir(exist_ok=True)
    for platform in platforms:
        for wheel in wheels_for(platform):
            name = Path(wheel).name
            if (WHEELS / name).is_file():
                continue
            dist, version = name.split("-")[:2]
            # the wheel's own platform tags: pip does not count manylinux_2_17 as compatible with a
            # --platform of manylinux_2_28, so asking by the platform alone misses older-glibc wheels
            tags = [t for t in name[:-len(".whl")].split("-")[-1].split(".") if t != "any"] or [PIP_PLATFORMS[platform]]
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            *[arg for t in tags for arg in ("--platform", t)], "--python-version", PYTHON,
                            "-d", str(WHEELS), f"{dist.replace('_', '-')}=={version}"], check=True)
            if not (WHEELS / name).is_file():
                raise SystemExit(f"error: pip fetched another file than {name} (see {WHEELS}); "
                                 f"update the manifest's wheels")


def _toml_list(key: str, values: list[str]) -> str:
    return f"{key} = [\n" + "".join(f'  "{v}",\n' for v in values) + "]\n"


def stage(platform: str, folder: Path) -> Path:
    """A copy of what the zip for `platform` holds, its manifest narrowed to that platform → `folder`."""
    text = (ROOT / "blender_manifest.toml").read_text()
    for key, values in (("platforms", [platform]), ("wheels", wheels_for(platform))):
        text, n = re.subn(rf"^{key} = \[[^\]]*\]\n", _toml_list(key, values), text, flags=re.M)
        assert n == 1, f"blender_manifest.toml: no {key} = [...] block"
    folder.mkdir(parents=True)
    (folder / "blender_manifest.toml").write_text(text)
    for name in SHIPPED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, folder / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, folder / name)
    (folder / "wheels").mkdir()
    for wheel in wheels_for(platform):
        shutil.copy2(WHEELS / Path(wheel).name, folder / "wheels")
    return folder


def build(out: Path, platforms: list[str] | None = None) -> dict[str, Path]:
    """Download the wheels, build one zip per platform with Blender's builder (`--split-platforms`) and
    validate each → {platform: zip}. Raises SystemExit when a zip is over MAX_MB."""
    platforms = platforms or list(manifest()["platforms"])
    out.mkdir(parents=True, exist_ok=True)
    download(platforms)
    tool = [sys.executable, str(blender_ext())]
    version = manifest()["version"]
    zips = {}
    with tempfile.TemporaryDirectory() as tmp:
        for platform in platforms:
            src = stage(platform, Path(tmp) / platform)
            subprocess.run([*tool, "build", "--split-platforms", "--source-dir", str(src), "--output-dir", str(out)],
                           check=True, stdout=subprocess.DEVNULL)
            zip_path = out / f"tessera-{version}-{platform.replace('-', '_')}.zip"
            subprocess.run([*tool, "validate", str(zip_path)], check=True, stdout=subprocess.DEVNULL)
            if zip_path.stat().st_size > MAX_MB * 2**20:
                raise SystemExit(f"error: {zip_path.name} is {zip_path.stat().st_size / 2**20:.1f} MiB, over {MAX_MB}")
            zips[platform] = zip_path
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


def build_here(out: Path) -> Path:
    """The zip for this machine's platform only (for tests and `make preview`) → its path."""
    return build(out, [this_platform()])[this_platform()]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "dist")
    p.add_argument("--platform", action="append", choices=list(PIP_PLATFORMS),
                   help="build only this platform's zip (repeatable; default all four)")
    args = p.parse_args()
    for platform, path in build(args.out, args.platform).items():
        print(f"{path}  {path.stat().st_size / 2**20:.1f} MiB  ({platform})")
