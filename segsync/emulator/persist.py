"""The emulator's data file (``--data FILE``) and the change log kept beside it.

The data file holds every segment as one JSON document. Rewriting it on every change would cost
time in proportion to the segments held, so a change is appended instead, as one JSON line, to
``FILE.log`` (written and synced before the request is answered). The log is folded into the data
file (written to a temporary file, synced, renamed over it) when the emulator stops cleanly, when
it starts and finds the log of an emulator that was killed, and while it runs once the log has
grown past the segments held (so a change costs the same on average, whatever their number).

A line of the log is an entry of the data file's ``segments`` list: the whole segment as it is
after the change. Folding puts each entry in place of the segment with its UUID (or last, for a
new one), in the order of the lines, so folding a log twice gives the same file. A last line
without its end (the emulator was killed while writing it) was never answered and is ignored.

Written for the emulator alone: it imports nothing of segsync's own modules.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from segsync.emulator.errors import EmulatorError
from segsync.emulator.validate import SEGMENT_KEYS

DATA_FORMAT = "segsync-emulator-data"
DATA_VERSION = 1
LOG_SUFFIX = ".log"

Entry = dict[str, Any]
"""One segment of the data file: ``{"segment": {...}, "linkedToWorkflow": bool}``."""

_STORED_KEYS = tuple(k for k in SEGMENT_KEYS if k != "recordsCount")
_sync = getattr(os, "fdatasync", os.fsync)


def log_path(data_path: Path) -> Path:
    """Where the change log of ``data_path`` is kept: beside it, ``.log`` added to its name."""
    return data_path.with_name(data_path.name + LOG_SUFFIX)


def entry(segment: dict[str, Any], linked_to_workflow: bool) -> Entry:
    return {"segment": segment, "linkedToWorkflow": linked_to_workflow}


def _checked(raw: Any, where: Path, kind: str = "data file") -> tuple[dict[str, Any], bool]:
    data = raw.get("segment") if isinstance(raw, dict) else None
    if (
        not isinstance(data, dict)
        or not all(k in data for k in _STORED_KEYS)
        or not all(isinstance(data[k], str) for k in ("uuid", "modelUuid", "slug"))
    ):
        raise EmulatorError(f"emulator {kind} holds a malformed segment", path=str(where))
    return data, bool(raw.get("linkedToWorkflow"))


# --------------------------------------------------------------------------- the data file


def encode(workspace: str, entries: list[Entry]) -> str:
    """The data file's text for ``entries``, in their order."""
    payload = {
        "format": DATA_FORMAT,
        "version": DATA_VERSION,
        "workspace": workspace,
        "segments": entries,
    }
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def read_data(path: Path, workspace: str) -> list[tuple[dict[str, Any], bool]]:
    """The segments of a data file (segment, linked to a workflow), or an EmulatorError."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EmulatorError(f"cannot read emulator data file: {exc}", path=str(path)) from exc
    if not isinstance(raw, dict) or raw.get("format") != DATA_FORMAT:
        raise EmulatorError("not a segsync emulator data file", path=str(path))
    if raw.get("version") != DATA_VERSION:
        raise EmulatorError(
            f"unsupported emulator data version {raw.get('version')!r}", path=str(path)
        )
    if raw.get("workspace") != workspace:
        raise EmulatorError(
            f"this data file belongs to workspace {raw.get('workspace')!r}, "
            f"not {workspace!r} (use --workspace to match it)",
            path=str(path),
        )
    entries = raw.get("segments")
    if not isinstance(entries, list):
        raise EmulatorError("emulator data file has no segment list", path=str(path))
    return [_checked(item, path) for item in entries]


def _sync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (where the system allows it)."""
    flags = getattr(os, "O_DIRECTORY", None)
    if flags is None:
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` at once: a temporary file, synced, renamed over it."""
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_directory(directory)


# --------------------------------------------------------------------------- the change log


def read_log(path: Path) -> list[tuple[dict[str, Any], bool]] | None:
    """The changes a log holds, in order (None when there is no log); an EmulatorError if corrupt.

    What follows the last line end is a line that a kill cut short: ignored, as is a last line
    that is not JSON (its write was never acknowledged). Any other line must be a whole entry.
    """
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EmulatorError(f"cannot read emulator change log: {exc}", path=str(path)) from exc
    *lines, _cut_short = content.split(b"\n")
    changes: list[tuple[dict[str, Any], bool]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError among them
            if number == len(lines):
                break
            raise EmulatorError(
                f"cannot read emulator change log: line {number} is not JSON ({exc})",
                path=str(path),
            ) from exc
        changes.append(_checked(raw, path, "change log"))
    return changes


class ChangeLog:
    """The change log of one data file, opened on the first change: appends lines, synced."""

    def __init__(self, data_path: Path) -> None:
        self.path = log_path(data_path)
        self.lines = 0
        self._fd: int | None = None
        self._size = 0

    def append(self, item: Entry) -> None:
        """Add one change; it is on disk when this returns."""
        line = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        data = memoryview(line.encode("utf-8") + b"\n")
        if self._fd is None:
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._size = os.lseek(self._fd, 0, os.SEEK_END)
            if created:
                _sync_directory(self.path.parent)
        fd = self._fd
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            _sync(fd)
        except BaseException:
            with contextlib.suppress(OSError):  # leave no partial line for the next to follow
                os.ftruncate(fd, self._size)
            raise
        self._size += len(data)
        self.lines += 1

    def remove(self) -> None:
        """Close and delete the log (its changes are in the data file now)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.unlink(missing_ok=True)
        self.lines = 0
        self._size = 0
