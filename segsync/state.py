"""The state file: what segsync created, read strictly, written atomically, guarded by a lock.

``segsync.state.json`` is committed to git, so it is written deterministically (sorted keys,
2-space indent, final newline, UTF-8, keys whose value is None left out) and its diff shows
exactly which segments changed. A file that cannot be read, is corrupt or comes from a newer
segsync is an error and is never overwritten. Every write is atomic (``fsutil``), so a crash
leaves either the old or the new state, never a mix. ``lock.py`` keeps two runs apart. During
apply, writes are appended to a journal beside the file (``statelog``); reading applies it.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import hashlib
import json
import os
import re
import threading
import uuid as uuidlib
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from segsync import __version__
from segsync.errors import ConfigError, StateError
from segsync.fsutil import append_line, remove_leftovers, write_atomic
from segsync.types import is_uuid

STATE_VERSION = 1
DEFAULT_STATE_PATH = "segsync.state.json"

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


def _check_conflict(text: str, shown: str) -> None:
    """StateError when ``text`` holds git's merge-conflict markers. They never make valid
    JSON, so they are looked for only once parsing failed (a search of the whole text)."""
    conflict = _CONFLICT_MARKER.search(text)
    if conflict is not None:
        raise StateError(
            "the state file holds git merge-conflict markers; resolve the conflict so that "
            "the file is valid JSON (keep each segment's entry from the side that applied it)",
            path=shown,
            line=text.count("\n", 0, conflict.start()) + 1,
        )


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # the slow search only when there is a duplicate
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
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
    for attempt in range(3):
        before = _identity(path)
        raw, data = _read_file(path)
        try:
            data, journaled = _extend(path, raw, data, last=attempt == 2, before=before)
        except _Replaced:  # folded by a writer between the two reads: read both again
            continue
        break
    if data is None:
        return State.empty()
    what = "the state file" + (f" with its journal {journal_path(path)}" if journaled else "")
    hint = _RESTORE_HINT.format(path=shown)
    try:
        state = State.model_validate(data)
    except ValidationError as exc:
        raise StateError(
            f"{what} is not a valid segsync state: {_describe_validation(exc)}; " + hint,
            path=shown,
        ) from exc
    problem = uuid_problem(state)
    if problem is not None:
        raise StateError(f"{problem}; " + hint, path=shown)
    return state


def _read_file(path: str | Path) -> tuple[bytes | None, dict[str, Any] | None]:
    """The bytes of the state file and its JSON object (None, None when it does not exist),
    checked up to the format version."""
    import stat

    shown = str(path)
    hint = _RESTORE_HINT.format(path=shown)
    where = "check the path given with --state or $SEGSYNC_STATE"
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0  # reading it says why
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):  # reading would block, or never end
            raise StateError(f"the state file is not a regular file ({kind}); {where}",
                             path=shown)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        if os.path.islink(path):  # a link to nothing is not "no state yet"
            raise StateError(
                f"the state file is a dangling symbolic link; {where}", path=shown
            ) from None
        return None, None
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

    try:
        data = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        _check_conflict(text, shown)
        raise StateError(
            f"the state file is not valid JSON ({exc.msg}); " + hint,
            path=shown,
            line=exc.lineno,
            column=exc.colno,
        ) from exc
    except ValueError as exc:
        _check_conflict(text, shown)
        raise StateError(f"the state file is not valid JSON ({exc}); " + hint, path=shown) from exc
    except RecursionError:  # arrays or objects nested about 1,000 levels deep
        raise StateError(
            "the state file is nested too deeply to be read (a segsync state nests a few "
            "levels); " + hint,
            path=shown,
        ) from None

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
    return raw, data


# ---------------------------------------------------------------------------------------------
# the journal of an apply (written by ``statelog``): ``<state>.journal``, JSON lines. First a
# header binding it to the state file it extends: {"journal": 1, "base": {"lineage", "serial",
# "sha256"}, "lineage": the one the fold writes}; then one line per write, {"serial": base + n,
# "changes": {spec id: entry or null}, "workspaceUuid"?}; and before a writer replaces the state
# file, {"folded": {"sha256"}}: the bytes that hold it all. A torn last line never counted.

JOURNAL_VERSION = 1


def journal_path(path: str | Path) -> str:
    """The journal of a state file: ``<state>.journal`` beside it."""
    return str(path) + ".journal"


def journal_line(item: Mapping[str, Any]) -> bytes:
    """One line of the journal: compact JSON, sorted keys, UTF-8, a final newline."""
    text = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return (text + "\n").encode("utf-8")


class _Replaced(Exception):
    """The state file changed while its journal was being read."""


def _journal_error(jpath: str, problem: str, path: str | None = None) -> StateError:
    return StateError(
        f"{problem}; move the journal away (`mv {jpath} {jpath}.orphaned`), then run `segsync "
        "apply`: it adopts the segments that run created (found in Cargo with their spec's model, "
        "name and fields) and reports those named like a segment the state holds as duplicates",
        path=path or jpath,
    )


def _identity(path: str | Path) -> tuple[int, ...] | None:
    """What changes when the state file is replaced (a fold renames a new file over it)."""
    with contextlib.suppress(OSError):
        info = os.stat(path)
        return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    return None


def _extend(
    path: str | Path, raw: bytes | None, data: dict[str, Any] | None, *, last: bool,
    before: tuple[int, ...] | None = None,
) -> tuple[dict[str, Any] | None, bool]:
    """``data`` with the journal beside the state file applied; True if there was one to apply.
    A journal the file holds already (its ``folded`` bytes) is a leftover that the next writer
    removes; one that extends another file is an error."""
    jpath = journal_path(path)
    try:
        lines = Path(jpath).read_bytes().split(b"\n")[:-1]
    except FileNotFoundError:  # none, or folded (and removed) since the file was read
        if not last and _identity(path) != before:
            raise _Replaced from None
        return data, False
    except OSError as exc:
        raise StateError(f"cannot read the journal ({exc.strerror or exc})", path=jpath) from exc
    items: list[Any] = []
    for line in lines:
        try:
            items.append(json.loads(line, object_pairs_hook=_reject_duplicates,
                                    parse_constant=_reject_constant))
        except (ValueError, RecursionError):
            items.append(None)
    if not items:  # its header was never complete: it holds nothing
        return data, False
    head = items[0] if isinstance(items[0], dict) else {}
    if type(head.get("journal")) is int and head["journal"] > JOURNAL_VERSION:
        raise StateError(f"the journal has format version {head['journal']}; segsync "
                         f"{__version__} reads version {JOURNAL_VERSION}: upgrade it", path=jpath)
    base = head.get("base") if head.get("journal") == JOURNAL_VERSION else None
    if not isinstance(base, dict) or type(base.get("serial")) is not int:
        raise _journal_error(jpath, "the journal is corrupt at line 1")
    records, folds = items[1:], set()
    while records and isinstance(records[-1], dict) and isinstance(records[-1].get("folded"), dict):
        folds.add(records.pop()["folded"].get("sha256"))
    for n, record in enumerate(records, 1):
        if not isinstance(record, dict) or record.get("serial") != base["serial"] + n or (
            not isinstance(record.get("changes"), dict)
        ):
            raise _journal_error(jpath, f"the journal is corrupt at line {n + 1}")
    digest = None if raw is None else hashlib.sha256(raw).hexdigest()
    if digest != base.get("sha256"):
        if digest in folds:
            return data, False
        with contextlib.suppress(OSError):
            if not last and Path(path).read_bytes() != raw:
                raise _Replaced
        raise _journal_error(jpath, f"the state file is not the one that {jpath} extends (the "
                             "journal of an apply that stopped before it finished); it was "
                             "replaced since, e.g. by git pull or a checkout", str(path))
    if not records:
        return data, False
    data = data if data is not None else {"version": STATE_VERSION, "segments": {}}
    segments = data.setdefault("segments", {})
    for record in records:
        for spec_id, entry in record["changes"].items():
            if entry is None:
                segments.pop(spec_id, None)
            else:
                segments[spec_id] = entry
        if "workspaceUuid" in record:
            data["workspaceUuid"] = record["workspaceUuid"]
    data["serial"], data["lineage"] = base["serial"] + len(records), head.get("lineage")
    return data, True


def uuid_problem(state: State) -> str | None:
    """Why the segment UUIDs of ``state`` cannot be trusted, or None: each one (``uuid`` and
    ``pendingDelete`` of every entry) must be a UUID and appear once. Two entries holding one
    segment would make apply flip it between two specs, and a replace delete the other's."""
    seen: dict[str, str] = {}
    for spec_id in sorted(state.segments):
        entry = state.segments[spec_id]
        for field, uuid in (("uuid", entry.uuid), ("pendingDelete", entry.pending_delete)):
            if uuid is None:
                continue
            where = f"{spec_id!r} ({field})"
            if not is_uuid(uuid):
                return f"the state file has an invalid segment UUID {uuid!r} in {where}"
            key = uuid.lower()
            if key in seen:
                return (
                    f"the state file records segment {uuid} twice, in {seen[key]} and in "
                    f"{where}; keep it in the entry whose spec owns it"
                )
            seen[key] = where
    return None


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


def write_state_atomic(path: str | Path, data: bytes) -> None:
    """Replace the state file ``path`` with ``data`` atomically (``fsutil.write_atomic``);
    StateError, with the previous file unchanged, when it cannot be written.

    ``data`` replaces the journal beside the file too (a writer made it from ``read_state``,
    which applies the journal): the journal records that it is folded into these bytes before
    the rename, and is removed after it. A run killed in between leaves a journal that reading
    ignores and the next write removes."""
    jpath = journal_path(path)
    try:
        journal = os.path.lexists(jpath) and append_line(
            jpath, journal_line({"folded": {"sha256": hashlib.sha256(data).hexdigest()}})
        )
        write_atomic(path, data)
    except OSError as exc:
        folder = os.path.dirname(os.path.realpath(path)) or "."
        raise StateError(
            f"cannot write the state file ({exc.strerror or exc}); check that the folder "
            f"{folder} exists and is writable; the previous state file is unchanged",
            path=str(path),
        ) from exc
    if journal:
        with contextlib.suppress(OSError):  # left behind, it is ignored: it says it is folded
            os.unlink(jpath)


def check_workspace(state: State, workspace_uuid: str | None, path: str | Path) -> None:
    """StateError when ``state`` already belongs to another workspace than ``workspace_uuid``
    (a write about to record it)."""
    if workspace_uuid is not None and state.workspace_uuid not in (None, workspace_uuid):
        raise StateError(
            f"the state belongs to workspace {state.workspace_uuid}, not {workspace_uuid}; "
            "use the state file of that workspace",
            path=str(path),
        )


class StateStore:
    """Thread-safe owner of the state for one-off writers (import): every update is one atomic
    write of the whole file. Apply writes through ``statelog.JournalStore`` instead."""

    def __init__(self, path: str | Path, state: State) -> None:
        self._path = path
        self._state = state
        self._lock = threading.Lock()
        self._tidied = False

    @property
    def path(self) -> str | Path:
        return self._path

    @property
    def state(self) -> State:
        """The current state: the last one written (or the initial one)."""
        return self._state

    def entries(self) -> list[tuple[str, Entry]]:
        """Every ``(spec id, entry)`` of the current state (each write makes a new mapping)."""
        return list(self._state.segments.items())

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
            check_workspace(current, workspace_uuid, self._path)
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
            data = dump_state(new)
            if not self._tidied:  # a killed run's temporary files (the caller holds the lock)
                remove_leftovers(self._path)
                self._tidied = True
            write_state_atomic(self._path, data)
            self._state = new
            return new


def get_entry(state: State, spec_id: str, path: str | Path) -> Entry:
    """The entry of ``spec_id``; ConfigError with "did you mean" when there is none."""
    entry = state.segments.get(spec_id)
    if entry is not None:
        return entry
    message = f"no segment {spec_id!r} in the state file"
    close = difflib.get_close_matches(spec_id, sorted(state.segments), n=3, cutoff=0.6)
    if close:
        message += " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
    elif state.segments:
        message += "; `segsync state list` shows the ids"
    else:
        message += "; it has no segments"
    raise ConfigError(message, path=str(path))
