"""Atomic file writes: write to a temporary file beside the target, then rename it into place.

A crash or a kill at any moment leaves either the old file or the new one, never half of one. The
temporary file is `.<name>.tessera-<random>.tmp` (the name shortened to fit the file system's limit) and
is locked while it is written; a kill releases the lock, and the next write to the same name (or
`sweep_stale` on the folder) deletes what a killed run left. A file another run is still writing stays.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; stale temporary files are swept by age instead
    fcntl = None  # type: ignore[assignment]

TMP_MARK = ".tessera-"   # temporary names: "." + name + TMP_MARK + 8 hex digits + ".tmp"
TMP_TAIL = re.compile(re.escape(TMP_MARK) + r"[0-9a-f]{8}\.tmp")  # exactly what `_tmp_name` appends
UNLOCKED_STALE_S = 24 * 3600  # without locks, a temporary file this old is taken as left by a kill


def cache_dir() -> Path:
    """Downloads, curated data and other regenerable files: $TESSERA_CACHE or ~/.cache/tessera."""
    return Path(os.environ.get("TESSERA_CACHE", Path.home() / ".cache" / "tessera"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def name_max(folder: Path) -> int:
    """The longest file name (in bytes) the file system at `folder` (or its nearest existing parent) takes."""
    while not os.path.exists(folder) and folder != folder.parent:
        folder = folder.parent
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # Windows, or a file system that does not say
        return 255


def check_name_length(path: Path) -> None:
    """Raise ValueError when a name in `path` (the file's or a folder's still to be made) is longer than
    the file system allows."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.name and not os.path.lexists(part):  # (False, not an error, for a name too long)
            limit, length = name_max(part.parent), len(os.fsencode(part.name))
            if length > limit:
                raise ValueError(f"{part.name[:40]}…: name is {length} bytes long; this file system allows {limit}")


def _tmp_name(name: str, limit: int) -> str:
    """A temporary name for `name` that fits in `limit` bytes: the name is shortened, never the marker."""
    tail = f"{TMP_MARK}{secrets.token_hex(4)}.tmp"
    room = limit - 1 - len(tail)
    stem = os.fsencode(name)[:max(room, 0)].decode(errors="ignore")  # cut on a character boundary
    return f".{stem}{tail}"


def try_lock(fd: int) -> bool:
    """Take the advisory lock of an open temporary file without waiting → whether it was free."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def sweep_stale(folder: Path, name: str | None = None) -> int:
    """Delete the temporary files that killed runs left in `folder` (only those for `name` if given):
    names Tessera makes (`.<name>.tessera-<8 hex digits>.tmp`, never a user's own `.notes.tessera-x.tmp`)
    that nobody holds locked (or, without locks, older than a day). → how many were deleted."""
    pattern = f".{glob.escape(name[:16]) if name else ''}*{TMP_MARK}{'[0-9a-f]' * 8}.tmp"
    removed = 0
    for tmp in Path(folder).glob(pattern):
        if not TMP_TAIL.search(tmp.name):  # glob's [0-9a-f] ignores case on some systems
            continue
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue  # gone already, or not ours to read
        try:
            if fcntl is None:
                stale = time.time() - os.fstat(fd).st_mtime > UNLOCKED_STALE_S
                os.close(fd)  # Windows cannot delete a file that is still open
                fd = -1
            else:
                stale = try_lock(fd)
            if stale:
                tmp.unlink(missing_ok=True)  # (with a lock: still held, so no writer can take it meanwhile)
                removed += 1
        finally:
            if fd >= 0:
                os.close(fd)
    return removed


def check_can_write(folder: Path, what: Path) -> None:
    """Raise ValueError naming `what` unless a file can be created in `folder`, or, where `folder` does
    not exist yet, in its nearest existing parent. Tried for real: `os.access` says yes to root even on
    a read-only file system or in /proc. A name in `what` too long for the file system is refused too."""
    check_name_length(Path(what))
    while not os.path.exists(folder) and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{what}: cannot write there ({folder} is a file, not a folder)")
    probe = folder / _tmp_name("probe", 255)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise ValueError(f"{what}: cannot write to {folder} ({e.strerror})") from None
    os.close(fd)
    probe.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path, sweep: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` (with normal permissions).
    With `sweep`, first delete what killed writes of the same name left (`sweep_stale`); code that writes
    many files into one folder sweeps it once itself and passes False. A folder that cannot be made or
    written raises ValueError naming `path`."""
    path = Path(path)
    check_name_length(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if sweep:
            sweep_stale(path.parent, path.name)
        tmp, fd = _create_locked(path)
    except OSError as e:
        raise ValueError(f"{path}: cannot write ({e.strerror})") from None
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # created 0600 like mkstemp; give the file what open() would
        if fcntl is None:  # Windows: no lock to keep, and an open file can be neither renamed nor deleted
            os.close(fd)
            fd = -1
        os.replace(tmp, path)
    finally:
        if fd >= 0:
            os.close(fd)  # releases the lock: from here on a sweep may take what is left
        tmp.unlink(missing_ok=True)


def _create_locked(path: Path) -> tuple[Path, int]:
    """A new, empty temporary file beside `path`, locked by the returned descriptor (kept open while it
    is written). A sweep in another process may lock it between creating and locking (and then delete
    it), or delete it before we lock it; either way, retry under a new name."""
    limit = name_max(path.parent)
    while True:
        tmp = path.parent / _tmp_name(path.name, limit)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        if not try_lock(fd):  # a sweep holds it and is about to delete it
            os.close(fd)
            continue
        try:
            if os.fstat(fd).st_ino == os.stat(tmp).st_ino:
                return tmp, fd
        except FileNotFoundError:
            pass
        os.close(fd)


def write_text(path: str | Path, text: str, sweep: bool = True) -> Path:
    """Write `text` to `path` atomically (`sweep` as in `atomic_path`)."""
    with atomic_path(path, sweep) as tmp:
        tmp.write_text(text)
    return Path(path)
