"""Atomic file writes: write to a temporary file beside the target, then rename it into place.

A crash or a kill at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_dir() -> Path:
    """Downloads, curated data and other regenerable files: $TESSERA_CACHE or ~/.cache/tessera."""
    return Path(os.environ.get("TESSERA_CACHE", Path.home() / ".cache" / "tessera"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_can_write(folder: Path, what: Path) -> None:
    """Raise ValueError naming `what` unless a file can be created in `folder`, or, where `folder` does
    not exist yet, in its nearest existing parent. Tried for real: `os.access` says yes to root even on
    a read-only file system or in /proc."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{what}: cannot write there ({folder} is a file, not a folder)")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".tessera-probe.", suffix=".tmp")
    except OSError as e:
        raise ValueError(f"{what}: cannot write to {folder} ({e.strerror})") from None
    os.close(fd)
    os.unlink(probe)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` (with normal permissions).
    A folder that cannot be made or written raises ValueError naming `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise ValueError(f"{path}: cannot write ({e.strerror})") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file what open() would
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
