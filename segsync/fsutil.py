"""The one way segsync replaces a file: atomically, so a crash leaves the old or the new bytes.

The state file, saved plans and the lock all go through here (the emulator, an independent
program, keeps its own).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path


def _fsync_dir(folder: str) -> None:
    # Makes the rename itself durable. Some platforms and file systems cannot open or fsync a
    # folder; the data is then as durable as the platform allows.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: after a crash it holds the old or the new bytes.

    The bytes go to a temporary file beside the target (same folder, so the rename cannot cross
    file systems), which is flushed, fsynced and renamed over the target; then the folder is
    fsynced. On failure the temporary file is removed and the OSError propagates. A symlinked
    target stays a symlink: its target is replaced. A new file gets the mode the umask gives;
    an existing one keeps its mode.
    """
    target = os.path.realpath(path)
    folder = os.path.dirname(target) or "."
    tmp = os.path.join(folder, f"{os.path.basename(target)}.{secrets.token_hex(6)}.tmp")
    fd: int | None = None
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with contextlib.suppress(FileNotFoundError):
            os.fchmod(fd, os.stat(target).st_mode & 0o7777)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.replace(tmp, target)
    except BaseException:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def remove_leftovers(path: str | Path) -> list[str]:
    """Remove the temporary files that :func:`write_atomic` left beside ``path`` when a run was
    killed mid-write (``<name>.<12 hex digits>.tmp``, nothing else); the names removed. Call it
    only while holding the file's lock: another writer's temporary file would look the same."""
    target = os.path.realpath(path)
    folder = os.path.dirname(target) or "."
    pattern = re.compile(re.escape(os.path.basename(target)) + r"\.[0-9a-f]{12}\.tmp")
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in sorted(names):
        if pattern.fullmatch(name):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
                removed.append(name)
    return removed
