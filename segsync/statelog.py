"""Apply's durable writes: an append-only journal beside the state file, folded into it.

Rewriting the whole state file on every write makes an apply cost more per segment the more
segments the state holds (at 50,000 the file is some 70 MB). :class:`JournalStore` appends
each write instead, as one fsynced line of ``<state>.journal`` (the format is described in
``state``), so what a write puts on disk is what it changes. The journal is folded into the
state file, in one atomic write, when the run ends, and, when a run was killed, when the next
one starts.
``read_state`` applies a pending journal: every reader sees what is on disk, as if the state
file itself had been written.

The store's caller holds the state lock from before the state is read until the store is closed.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import threading
import uuid as uuidlib
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from segsync.errors import StateError
from segsync.fsutil import fsync_dir, remove_leftovers, write_all
from segsync.state import (
    JOURNAL_VERSION,
    STATE_VERSION,
    Entry,
    State,
    check_workspace,
    dump_state,
    journal_line,
    journal_path,
    write_state_atomic,
)


class JournalStore:
    """The state during apply, with ``StateStore``'s ``state`` and ``update``: each update is
    one line appended to the journal and fsynced, and the serial grows by one as it does.

    ``state`` must be what ``read_state(path)`` returned under the lock. As a context manager:
    entering folds a journal that a killed run left; leaving folds this run's journal into the
    state file (also after an error: if that fold fails then, the journal stays, complete, and
    the next reader applies it).
    """

    def __init__(self, path: str | Path, state: State) -> None:
        self._path = path
        self._journal = journal_path(path)
        self._state = state
        # The entries the updates change in place (the caller's state is left as it was).
        self._segments = dict(state.segments)
        self._lineage = state.lineage or str(uuidlib.uuid4())  # the fold writes it
        self._lock = threading.Lock()
        self._fd: int | None = None  # the journal, once this run wrote to it
        self._broken: str | None = None  # why no more line can be appended

    @property
    def path(self) -> str | Path:
        return self._path

    @property
    def state(self) -> State:
        """The current state: the last one written (or the initial one)."""
        return self._state

    def __enter__(self) -> JournalStore:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except StateError:
            if exc is None:
                raise
            # The run's own error says more; the journal keeps every change for the next run.

    def open(self) -> None:
        """Fold the journal a killed run left (``state`` holds it already)."""
        with self._lock:
            if os.path.lexists(self._journal):
                self._fold()

    def close(self) -> None:
        """Fold this run's journal into the state file and remove it; StateError when the
        state file cannot be written (the journal then stays: nothing is lost)."""
        with self._lock:
            if self._fd is None:
                return
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)
            self._fold()

    def update(
        self, changes: Mapping[str, Entry | None], *, workspace_uuid: str | None = None
    ) -> State:
        """Apply ``changes`` (None deletes an entry) and append them to the journal, on disk
        when this returns. ``workspace_uuid`` as in ``StateStore.update``. When the write
        fails, the in-memory state stays as it was, StateError is raised, and so is every
        later update (a line torn by the failure must stay the journal's last)."""
        with self._lock:
            current = self._state
            check_workspace(current, workspace_uuid, self._path)
            if self._broken is not None:
                raise StateError(self._broken, path=self._journal)
            encoded = {
                spec_id: None if entry is None else entry.model_dump(
                    mode="json", by_alias=True, exclude_none=True
                )
                for spec_id, entry in changes.items()
            }
            serial = current.serial + 1
            workspace = workspace_uuid or current.workspace_uuid
            record: dict[str, object] = {"serial": serial, "changes": encoded}
            if workspace != current.workspace_uuid:
                record["workspaceUuid"] = workspace
            line = journal_line(record)
            try:
                if self._fd is None:
                    self._start(line)
                else:
                    write_all(self._fd, line)
                    os.fsync(self._fd)
            except OSError as exc:
                self._broken = (
                    f"cannot write the journal ({exc.strerror or exc}); check that its folder "
                    "is writable and has space; the changes written before are kept"
                )
                raise StateError(self._broken, path=self._journal) from exc
            # On disk: now in memory. The mapping is changed in place (a copy per write would
            # cost a pass over every entry, a millisecond at 50,000): readers look entries up,
            # and those that go through them all take a copy with ``entries``.
            segments = self._segments
            for spec_id, entry in changes.items():
                if entry is None:
                    segments.pop(spec_id, None)
                else:
                    segments[spec_id] = entry
            # Built without validation: the entries are Entry objects already.
            self._state = State.model_construct(
                version=STATE_VERSION, serial=serial, lineage=self._lineage,
                workspace_uuid=workspace, segments=segments,
            )
            return self._state

    def entries(self) -> list[tuple[str, Entry]]:
        """Every ``(spec id, entry)`` of the current state, taken while no write changes them."""
        with self._lock:
            return list(self._state.segments.items())

    def _start(self, first: bytes) -> None:
        """Create the journal over the state file as it is, with the first update's line."""
        remove_leftovers(self._path)  # a killed run's temporary files (the lock is held)
        if os.path.lexists(self._journal) or not os.path.lexists(self._path):
            base = self._fold()  # a journal needs a state file to extend
        else:
            base = Path(self._path).read_bytes()
        header = journal_line({
            "journal": JOURNAL_VERSION,
            "base": {
                "lineage": self._state.lineage,
                "serial": self._state.serial,
                "sha256": hashlib.sha256(base).hexdigest(),
            },
            "lineage": self._lineage,
        })
        fd = os.open(self._journal, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
        try:
            write_all(fd, header + first)
            os.fsync(fd)
            fsync_dir(os.path.dirname(os.path.abspath(self._journal)))
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self._journal)
            raise
        self._fd = fd

    def _fold(self) -> bytes:
        """Write the current state over the state file (which settles the journal); its bytes."""
        enabled = gc.isenabled()
        gc.disable()  # encoding makes many objects and no cycles
        try:
            data = dump_state(self._state)
        finally:
            if enabled:
                gc.enable()
        write_state_atomic(self._path, data)
        return data
