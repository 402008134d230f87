"""The state file: what segsync created, read strictly, written atomically, guarded by a lock.

``segsync.state.json`` is committed to git, so it is written deterministically (sorted keys,
2-space indent, final newline, UTF-8, keys whose value is None left out) and its diff shows
exactly which segments changed. A file that cannot be read, is corrupt or comes from a newer
segsync is an error and is never overwritten. Every write goes to a temporary file in the same
folder, is fsynced and renamed over the old file, so a crash leaves either the old or the new
state, never a mix. ``<state>.lock``, created exclusively, keeps two runs apart.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import json
import os
import re
import secrets
import socket
import sys
import threading
import uuid as uuidlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from segsync import __version__
from segsync.errors import ConfigError, LockError, StateError

STATE_VERSION = 1
DEFAULT_STATE_PATH = "segsync.state.json"
LOCK_SUFFIX = ".lock"

_RESTORE_HINT = (
    "restore it from git (`git checkout -- {path}`) or fix it by hand; segsync leaves it as it is"
)


def utc_now() -> str:
    """The current UTC time, ISO-8601 with milliseconds and ``Z``: ``2026-11-27T13:00:00.000Z``."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def parse_time(value: str) -> datetime:
    """An ISO-8601 time with a UTC offset or ``Z`` as an aware datetime; ValueError otherwise."""
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone (expected e.g. 2026-11-27T13:00:00.000Z)")
    return parsed


def _check_time(value: str) -> str:
    try:
        parse_time(value)
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 time with time zone: {value!r}") from exc
    return value


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, strict=True, protected_namespaces=()
    )


class Intent(_Model):
    """An action under way: the operation and the client time taken just before its request."""

    op: Literal["create", "update", "delete", "replace"]
    at: str

    @field_validator("at")
    @classmethod
    def _valid_at(cls, value: str) -> str:
        return _check_time(value)


class Entry(_Model):
    """What segsync knows about one managed segment, keyed by spec id in ``State.segments``."""

    uuid: str | None = None
    model: str
    model_uuid: str | None = Field(default=None, alias="modelUuid")
    applied: dict[str, Any] | None = None
    digest: str | None = None
    refs: dict[str, str] = Field(default_factory=dict)
    protect: bool = False
    file: str | None = None
    file_sha256: str | None = Field(default=None, alias="fileSha256")
    applied_at: str | None = Field(default=None, alias="appliedAt")
    intent: Intent | None = None
    pending_delete: str | None = Field(default=None, alias="pendingDelete")

    @field_validator("applied_at")
    @classmethod
    def _valid_applied_at(cls, value: str | None) -> str | None:
        return None if value is None else _check_time(value)


class State(_Model):
    """The whole state file."""

    version: int = Field(default=STATE_VERSION, ge=1)
    serial: int = Field(default=0, ge=0)
    lineage: str | None = None
    workspace_uuid: str | None = Field(default=None, alias="workspaceUuid")
    segments: dict[str, Entry] = Field(default_factory=dict)

    @classmethod
    def empty(cls) -> State:
        """The state before the first write: serial 0, no lineage, no segments."""
        return cls()


# ---------------------------------------------------------------------------------------------
# reading


_CONFLICT_MARKER = re.compile(r"^(?:<<<<<<< |>>>>>>> |=======$)", re.MULTILINE)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _describe_validation(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        problems.append(f"{where}: {error['msg']}")
    more = exc.error_count() - len(problems)
    if more > 0:
        problems.append(f"and {more} more")
    return "; ".join(problems)


def read_state(path: str | Path) -> State:
    """The state in ``path``; ``State.empty()`` when the file does not exist.

    Anything else that is not a valid state of a version this segsync reads raises StateError
    naming the file and what to do. The file is only ever opened for reading.
    """
    # Parsing builds many objects and no garbage cycles; pausing the cyclic collector halves
    # the time for a state of 10,000 segments.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _read_state(path)
    finally:
        if enabled:
            gc.enable()


def _read_state(path: str | Path) -> State:
    shown = str(path)
    hint = _RESTORE_HINT.format(path=shown)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return State.empty()
    except OSError as exc:
        raise StateError(
            f"cannot read the state file ({exc.strerror or exc}); check the path given with "
            "--state or $SEGSYNC_STATE and its permissions",
            path=shown,
        ) from exc

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StateError(
            f"the state file is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); " + hint,
            path=shown,
        ) from exc

    conflict = _CONFLICT_MARKER.search(text)
    if conflict is not None:
        raise StateError(
            "the state file holds git merge-conflict markers; resolve the conflict so that "
            "the file is valid JSON (keep each segment's entry from the side that applied it)",
            path=shown,
            line=text.count("\n", 0, conflict.start()) + 1,
        )

    try:
        data = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        raise StateError(
            f"the state file is not valid JSON ({exc.msg}); " + hint,
            path=shown,
            line=exc.lineno,
            column=exc.colno,
        ) from exc
    except ValueError as exc:
        raise StateError(f"the state file is not valid JSON ({exc}); " + hint, path=shown) from exc

    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(data), "a number"
        )
        raise StateError(
            f"the state file must hold a JSON object, not {kind}; " + hint,
            path=shown,
        )
    version = data.get("version")
    if type(version) is not int or version < 1:
        raise StateError(
            f"the state file has no valid format version (version: {json.dumps(version)}); " + hint,
            path=shown,
        )
    if version > STATE_VERSION:
        raise StateError(
            f"the state file has format version {version}, but segsync {__version__} reads "
            f"version {STATE_VERSION} at most; upgrade segsync (`pip install --upgrade segsync`)",
            path=shown,
        )
    try:
        return State.model_validate(data)
    except ValidationError as exc:
        raise StateError(
            f"the state file is not a valid segsync state: {_describe_validation(exc)}; " + hint,
            path=shown,
        ) from exc


# ---------------------------------------------------------------------------------------------
# writing


def dump_state(state: State) -> bytes:
    """The bytes of the state file: sorted keys, 2-space indent, final newline, UTF-8.

    Keys whose value is None are left out, everywhere in the state's own structure (an entry
    without ``intent`` has no ``intent`` key; a state without a workspace has no
    ``workspaceUuid``). Values inside ``applied`` are kept exactly as they are.
    """
    data = state.model_dump(mode="json", by_alias=True, exclude_none=True)
    text = json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


class _IncrementalDump:
    """``dump_state`` for a store that writes often: the same bytes, but only the entries named
    as changed are encoded again.

    json's encoder is pure Python when it indents (~0.4 ms per entry), so encoding every entry
    on every write would make an apply of N segments cost O(N²). The encoded entries are kept
    in id order; a call that does not continue from the state of the previous call (``previous``
    is not the state encoded last, e.g. after a failed write) encodes everything again.
    """

    def __init__(self) -> None:
        self._base: State | None = None
        self._ids: list[str] = []  # sorted spec ids
        self._texts: list[bytes] = []  # their encoded entries, in the same order

    @staticmethod
    def _encode(spec_id: str, entry: Entry) -> bytes:
        data = entry.model_dump(mode="json", by_alias=True, exclude_none=True)
        text = json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
        key = json.dumps(spec_id, ensure_ascii=False)
        # JSON text holds no raw newline inside strings: each one starts a new line.
        return (f"    {key}: " + text.replace("\n", "\n    ")).encode("utf-8")

    def dump(
        self,
        state: State,
        *,
        previous: State | None = None,
        changed: Iterable[str] | None = None,
    ) -> bytes:
        """Exactly ``dump_state(state)``; ``state`` is ``previous`` with ``changed`` ids set
        or removed."""
        segments = state.segments
        if changed is None or previous is None or previous is not self._base:
            self._ids = sorted(segments)
            self._texts = [self._encode(i, segments[i]) for i in self._ids]
        else:
            for spec_id in changed:
                at = bisect.bisect_left(self._ids, spec_id)
                present = at < len(self._ids) and self._ids[at] == spec_id
                entry = segments.get(spec_id)
                if entry is None:
                    if present:
                        del self._ids[at]
                        del self._texts[at]
                elif present:
                    self._texts[at] = self._encode(spec_id, entry)
                else:
                    self._ids.insert(at, spec_id)
                    self._texts.insert(at, self._encode(spec_id, entry))
        self._base = state
        head = state.model_dump(
            mode="json", by_alias=True, exclude_none=True, exclude={"segments"}
        )
        head["segments"] = None
        # One join of bytes: the file is built without intermediate copies of its whole text.
        pieces: list[bytes] = [b"{\n"]
        for n, name in enumerate(sorted(head)):
            if n:
                pieces.append(b",\n")
            key = json.dumps(name, ensure_ascii=False)
            if name == "segments":
                if not self._texts:
                    pieces.append(f"  {key}: {{}}".encode())
                    continue
                pieces.append(f"  {key}: {{\n".encode())
                for i, encoded in enumerate(self._texts):
                    if i:
                        pieces.append(b",\n")
                    pieces.append(encoded)
                pieces.append(b"\n  }")
            else:
                text = json.dumps(
                    head[name], sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False
                )
                pieces.append(f"  {key}: {text}".replace("\n", "\n  ").encode())
        pieces.append(b"\n}\n")
        return b"".join(pieces)


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


def write_state_atomic(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: after a crash it holds the old or the new bytes.

    The bytes go to a temporary file beside the target (same folder, so the rename cannot cross
    file systems), which is flushed, fsynced and renamed over the target; then the folder is
    fsynced. On failure the temporary file is removed and StateError is raised. A symlinked
    state file stays a symlink: its target is replaced.
    """
    shown = str(path)
    target = os.path.realpath(path)
    folder = os.path.dirname(target) or "."
    tmp = os.path.join(folder, f"{os.path.basename(target)}.{secrets.token_hex(6)}.tmp")
    fd: int | None = None
    try:
        # 0o666 lets the umask decide, like any file the user creates; an existing state file
        # keeps its mode.
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
    except BaseException as exc:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise StateError(
                f"cannot write the state file ({exc.strerror or exc}); check that the folder "
                f"{folder} exists and is writable; the previous state file is unchanged",
                path=shown,
            ) from exc
        raise
    _fsync_dir(folder)


class StateStore:
    """Thread-safe owner of the state during apply; every update is one atomic write."""

    def __init__(self, path: str | Path, state: State) -> None:
        self._path = path
        self._state = state
        self._lock = threading.Lock()
        self._encoder = _IncrementalDump()

    @property
    def path(self) -> str | Path:
        return self._path

    @property
    def state(self) -> State:
        """The current state: the last one written (or the initial one)."""
        return self._state

    def update(
        self, changes: Mapping[str, Entry | None], *, workspace_uuid: str | None = None
    ) -> State:
        """Apply ``changes`` (None deletes an entry) and write them in one atomic write.

        Every call writes, even with no changes: the serial grows by one and the lineage is
        set at the first write. ``workspace_uuid`` records the workspace; a different one than
        the state already holds raises StateError. When the write fails, the in-memory state
        stays as it was and StateError is raised.
        """
        with self._lock:
            current = self._state
            if (
                workspace_uuid is not None
                and current.workspace_uuid is not None
                and workspace_uuid != current.workspace_uuid
            ):
                raise StateError(
                    f"the state belongs to workspace {current.workspace_uuid}, not "
                    f"{workspace_uuid}; use the state file of that workspace",
                    path=str(self._path),
                )
            segments = dict(current.segments)
            for spec_id, entry in changes.items():
                if entry is None:
                    segments.pop(spec_id, None)
                else:
                    segments[spec_id] = entry
            new = State(
                version=STATE_VERSION,
                serial=current.serial + 1,
                lineage=current.lineage or str(uuidlib.uuid4()),
                workspace_uuid=workspace_uuid or current.workspace_uuid,
                segments=segments,
            )
            data = self._encoder.dump(new, previous=current, changed=changes.keys())
            write_state_atomic(self._path, data)
            self._state = new
            return new


# ---------------------------------------------------------------------------------------------
# lock


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


# ---------------------------------------------------------------------------------------------
# summaries for `segsync state list` / `segsync state show`


def _entry_flags(entry: Entry) -> str:
    flags = []
    if entry.protect:
        flags.append("protect")
    if entry.intent is not None:
        flags.append(f"intent={entry.intent.op}")
    if entry.pending_delete is not None:
        flags.append(f"pendingDelete={entry.pending_delete}")
    return ",".join(flags) or "-"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def format_state_list(state: State, path: str | Path, *, fmt: str = "text") -> str:
    """Every entry on one line (id, uuid, model, file, flags), sorted by id; ends with a newline.

    ``fmt="json"`` gives an object with the header fields and a ``segments`` list whose items
    always have every key (null when unknown).
    """
    ids = sorted(state.segments)
    if fmt == "json":
        doc = {
            "version": state.version,
            "serial": state.serial,
            "lineage": state.lineage,
            "workspaceUuid": state.workspace_uuid,
            "segments": [
                {
                    "id": spec_id,
                    "uuid": entry.uuid,
                    "model": entry.model,
                    "modelUuid": entry.model_uuid,
                    "file": entry.file,
                    "protect": entry.protect,
                    "intent": entry.intent.model_dump() if entry.intent else None,
                    "pendingDelete": entry.pending_delete,
                }
                for spec_id, entry in ((i, state.segments[i]) for i in ids)
            ],
        }
        return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    lines = [
        f"{path}: version {state.version}, serial {state.serial}, "
        f"lineage {state.lineage or '-'}, workspace {state.workspace_uuid or '-'}"
    ]
    if not ids:
        lines.append("no segments")
    else:
        rows = [["ID", "UUID", "MODEL", "FILE", "FLAGS"]]
        for spec_id in ids:
            entry = state.segments[spec_id]
            rows.append(
                [spec_id, entry.uuid or "-", entry.model, entry.file or "-", _entry_flags(entry)]
            )
        lines.extend(_table(rows))
    return "\n".join(lines) + "\n"


def get_entry(state: State, spec_id: str, path: str | Path) -> Entry:
    """The entry of ``spec_id``; ConfigError with "did you mean" when there is none."""
    entry = state.segments.get(spec_id)
    if entry is not None:
        return entry
    import difflib

    message = f"no segment {spec_id!r} in the state file"
    close = difflib.get_close_matches(spec_id, sorted(state.segments), n=3, cutoff=0.6)
    if close:
        message += " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
    elif state.segments:
        message += "; `segsync state list` shows the ids"
    else:
        message += "; it has no segments"
    raise ConfigError(message, path=str(path))


def format_entry(spec_id: str, entry: Entry, *, fmt: str = "text") -> str:
    """The whole entry: JSON exactly as in the state file (``fmt="json"``) or a readable text."""
    data = entry.model_dump(mode="json", by_alias=True, exclude_none=True)
    if fmt == "json":
        return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    creating = entry.intent is not None and entry.intent.op == "create"
    rows = [
        ["uuid", entry.uuid or ("- (create under way)" if creating else "-")],
        ["model", entry.model],
        ["modelUuid", entry.model_uuid or "-"],
        ["file", entry.file or "-"],
        ["fileSha256", entry.file_sha256 or "-"],
        ["protect", "true" if entry.protect else "false"],
        ["appliedAt", entry.applied_at or "-"],
        ["digest", entry.digest or "-"],
    ]
    if entry.refs:
        for n, ref in enumerate(sorted(entry.refs)):
            rows.append(["refs" if n == 0 else "", f"{ref} -> {entry.refs[ref]}"])
    else:
        rows.append(["refs", "-"])
    if entry.intent is not None:
        rows.append(["intent", f"{entry.intent.op} since {entry.intent.at}"])
    if entry.pending_delete is not None:
        rows.append(["pendingDelete", entry.pending_delete])
    if entry.applied is None:
        rows.append(["applied", "-"])
    lines = [spec_id, *("  " + line for line in _table(rows))]
    if entry.applied is not None:
        lines.append("  applied")
        applied = json.dumps(entry.applied, sort_keys=True, indent=2, ensure_ascii=False)
        lines.extend("    " + line for line in applied.splitlines())
    return "\n".join(lines) + "\n"
