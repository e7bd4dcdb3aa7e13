"""Build and validate the Blender extension zip with Blender's own tool (shipped inside the bpy package).

    python tools/extension.py [--out dist]     → dist/tessera-<version>.zip, validated
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def blender_ext() -> Path:
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: the bpy package is not installed (pip install 'bpy==4.5.*')")
    package = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(package.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise SystemExit("error: blender_ext.py not found inside the bpy package")
    return found[-1]


def build(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    tool = [sys.executable, str(blender_ext())]
    subprocess.run([*tool, "build", "--source-dir", str(ROOT), "--output-dir", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    manifest = (ROOT / "blender_manifest.toml").read_text().splitlines()
    version = next(ln.split("=")[1].strip().strip('"') for ln in manifest if ln.startswith("version"))
    zip_path = out / f"tessera-{version}.zip"
    subprocess.run([*tool, "validate", str(zip_path)], check=True)
    return zip_path


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "dist")
    print(build(p.parse_args().out))
