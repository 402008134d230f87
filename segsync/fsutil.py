"""The one way segsync replaces a file: atomically, so a crash leaves the old or the new bytes;
and the primitives of an append-only file whose lines are each on disk before they count.

The state file, saved plans and the lock all go through here (the emulator, an independent
program, keeps its own); so does the journal beside the state file during apply.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path


def fsync_dir(folder: str) -> None:
    """Make the folder's entries (a rename, a new file) durable."""
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
        write_all(fd, data)
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
    fsync_dir(folder)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write part of it)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def append_line(path: str | Path, line: bytes) -> bool:
    """Append ``line`` to the append-only file ``path`` after its last complete line (what
    follows it, a line torn by a crash mid-append, is cut) and fsync it. False, with nothing
    written, when there is no such file; True otherwise (nothing is appended to a file with no
    complete line: it holds nothing)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        end = os.fstat(fd).st_size
        while end > 0:
            start = max(0, end - 65536)
            at = os.pread(fd, end - start, start).rfind(b"\n")
            if at >= 0:
                end = start + at + 1
                break
            end = start
        if end:
            os.lseek(fd, end, os.SEEK_SET)
            write_all(fd, line)
            os.ftruncate(fd, end + len(line))
            os.fsync(fd)
    finally:
        os.close(fd)
    return True


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
