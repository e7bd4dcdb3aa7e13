"""Tessera as a Blender extension: this folder is the package Blender installs (see blender_manifest.toml).

The add-on itself lives in `blender_addon/`; `core/` (with the shipped weights) runs in a worker process.
Imports happen in register(), so importing this folder as a package outside Blender costs nothing.
"""


def register() -> None:
    from .blender_addon import register

    register()


def unregister() -> None:
    from .blender_addon import unregister

    unregister()
