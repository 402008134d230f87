"""The state lock: ``<state>.lock`` beside the state file keeps two applies apart.

The lock file is created exclusively and holds who took it (pid, host, time, command), so a
second run fails at once naming the holder, and ``segsync state unlock`` can remove a lock
whose run is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from segsync.errors import LockError, StateError
from segsync.state import DEFAULT_STATE_PATH, utc_now

LOCK_SUFFIX = ".lock"


def lock_path(state_path: str | Path) -> str:
    """The lock file of a state file: ``<state>.lock`` beside it."""
    return str(state_path) + LOCK_SUFFIX


def _default_command() -> str:
    # Program name and subcommand words only: options (and anything after them) stay out of a
    # file other people read.
    words = [os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "segsync"]
    for arg in sys.argv[1:]:
        if arg.startswith("-"):
            break
        words.append(arg)
    return " ".join(words)


def _pid_is_gone(pid: object, host: object) -> bool:
    if type(pid) is not int or pid <= 0 or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def read_lock(state_path: str | Path) -> dict[str, Any] | None:
    """The holder recorded in the lock file (``pid``, ``host``, ``createdAt``, ``command``).

    None when there is no lock; an empty dict when the lock exists but its contents cannot be
    understood (a run that crashed while writing it).
    """
    try:
        raw = Path(lock_path(state_path)).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(
            f"cannot read the lock file ({exc.strerror or exc})", path=lock_path(state_path)
        ) from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def break_lock(state_path: str | Path) -> bool:
    """Remove the lock file; True if there was one."""
    try:
        os.unlink(lock_path(state_path))
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StateError(
            f"cannot remove the lock file ({exc.strerror or exc})", path=lock_path(state_path)
        ) from exc
    return True


def describe_holder(holder: Mapping[str, Any]) -> str:
    """``pid 123 on host X since T`` (what is known of it)."""
    if not holder:
        return "an unknown run (the lock file's contents are unreadable)"
    parts = [f"pid {holder.get('pid', '?')}", f"on host {holder.get('host', '?')}"]
    if holder.get("createdAt"):
        parts.append(f"since {holder['createdAt']}")
    if holder.get("command"):
        parts.append(f"running `{holder['command']}`")
    return " ".join(parts)


class StateLock:
    """Exclusive lock file ``<state>.lock`` (O_CREAT|O_EXCL), JSON {pid, host, createdAt, command}.

    A second run fails at once with LockError naming the holder. The lock is released when the
    ``with`` block ends, exceptions included; a crashed run leaves it behind, which
    ``segsync state unlock`` removes.
    """

    def __init__(self, state_path: str | Path, *, command: str | None = None) -> None:
        self._state_path = state_path
        self._path = lock_path(state_path)
        self._command = command
        self._written: bytes | None = None
        #: Set when a stale lock of this host was taken over (to tell the user).
        self.note: str | None = None

    @property
    def path(self) -> str:
        return self._path

    @property
    def held(self) -> bool:
        return self._written is not None

    def acquire(self) -> None:
        if self._written is not None:
            raise RuntimeError(f"{self._path} is already held by this StateLock")
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "createdAt": utc_now(),
            "command": self._command or _default_command(),
        }
        data = (json.dumps(holder, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
        try:
            try:
                fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if not self._take_over():
                    raise self._held_error() from None
                fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise self._held_error() from None
        except OSError as exc:
            raise StateError(
                f"cannot create the lock file ({exc.strerror or exc}); check that its folder "
                "exists and is writable",
                path=self._path,
            ) from exc
        try:
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
            raise StateError(
                f"cannot write the lock file ({exc.strerror or exc})", path=self._path
            ) from exc
        self._written = data

    def _take_over(self) -> bool:
        """Remove a lock whose holder ran on this host and is gone (a killed run); True when
        removed. ``note`` then says so. A lock of another host is never taken over."""
        try:
            raw = Path(self._path).read_bytes()
            holder = json.loads(raw.decode("utf-8"))
        except (OSError, ValueError):
            return False
        if not isinstance(holder, dict) or not _pid_is_gone(holder.get("pid"), holder.get("host")):
            return False
        try:
            if Path(self._path).read_bytes() != raw:
                return False  # someone else took it meanwhile
            os.unlink(self._path)
        except OSError:
            return False
        self.note = (
            f"took over the lock of {describe_holder(holder)}: that process is no longer "
            "running on this host"
        )
        return True

    def _held_error(self) -> LockError:
        try:
            holder = read_lock(self._state_path)
        except StateError:
            holder = {}
        unlock = "segsync state unlock"
        if str(self._state_path) != DEFAULT_STATE_PATH:
            unlock += f" --state {self._state_path}"
        gone = ""
        if holder and _pid_is_gone(holder.get("pid"), holder.get("host")):
            gone = "; no process with that pid runs on this host any more"
        return LockError(
            f"state is locked by {describe_holder(holder or {})} ({self._path}){gone}; "
            f"if that run is gone, run `{unlock}`"
        )

    def release(self) -> None:
        """Remove the lock file if it is still the one this object wrote; no-op when not held."""
        if self._written is None:
            return
        written, self._written = self._written, None
        try:
            current = Path(self._path).read_bytes()
        except OSError:
            return
        # Someone may have broken the lock and another run taken it: leave theirs alone.
        if current == written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
