"""Durable writes during apply: every change is on disk before the run acts on it.

One writer thread owns the store (apply's :class:`~segsync.statelog.JournalStore`, which
appends each write to the state's journal and fsyncs it): tasks hand it their changes and it
writes everything that is pending in one write (at most one write every 40 ms under load), so
N workers cost a few writes a second instead of two per request. A change's :class:`Ticket`
says when it is on disk: it is done only once the store's write returned.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from segsync.errors import StateError
from segsync.state import Entry, State


class Store(Protocol):
    """What the writer writes through: ``StateStore`` or apply's ``JournalStore``."""

    @property
    def state(self) -> State:
        """The state as last written."""

    def update(
        self, changes: Mapping[str, Entry | None], *, workspace_uuid: str | None = None
    ) -> State:
        """Apply ``changes`` and put them on disk; StateError when that fails."""

    def entries(self) -> list[tuple[str, Entry]]:
        """Every ``(spec id, entry)`` of the current state, safe to go through while updates
        go on (``state.segments`` may change under a reader that goes through it)."""


class Ticket:
    """A change handed to the writer; ``wait`` returns once it is on disk (or raises)."""

    def __init__(
        self, changes: Mapping[str, Entry | None], callback: Callable[[StateError | None], None]
    ) -> None:
        self.changes = changes
        self.callback = callback
        self.error: StateError | None = None
        self._event = threading.Event()

    def done(self, error: StateError | None) -> None:
        self.error = error
        self._event.set()
        self.callback(error)

    def wait(self) -> None:
        self._event.wait()
        if self.error is not None:
            raise self.error


def _ignore(error: StateError | None) -> None:
    """The callback of a change nobody waits on."""


class Journal:
    """Group commit: every change pending when a write starts goes into that one write.

    Writes start at least ``min_interval`` seconds apart, so that under load (many results a
    second) each write carries several changes instead of paying an fsync for every one; a
    change that arrives after a quiet moment is written at once.
    """

    def __init__(
        self, store: Store, workspace_uuid: str, *, min_interval: float = 0.04
    ) -> None:
        self._store = store
        self._workspace_uuid = workspace_uuid
        self._min_interval = min_interval
        self._queue: queue.SimpleQueue[Ticket | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="segsync-state", daemon=True)
        self._thread.start()

    @property
    def state(self) -> State:
        """The state as last written: look entries up; go through them with ``entries``."""
        return self._store.state

    def entries(self) -> list[tuple[str, Entry]]:
        """Every ``(spec id, entry)`` as last written, a copy safe from later writes."""
        return self._store.entries()

    def submit(
        self,
        changes: Mapping[str, Entry | None],
        callback: Callable[[StateError | None], None] = _ignore,
    ) -> Ticket:
        ticket = Ticket(changes, callback)
        self._queue.put(ticket)
        return ticket

    def write(self, changes: Mapping[str, Entry | None]) -> None:
        self.submit(changes).wait()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        stop = False
        last = -float("inf")
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            pause = last + self._min_interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            batch = [first]
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            merged: dict[str, Entry | None] = {}
            for ticket in batch:
                merged.update(ticket.changes)
            error: StateError | None = None
            last = time.monotonic()
            try:
                self._store.update(merged, workspace_uuid=self._workspace_uuid)
            except StateError as exc:
                error = exc
            except Exception as exc:  # never leave a waiting task without an answer
                error = StateError(f"cannot write the state file: {type(exc).__name__}: {exc}")
            for ticket in batch:
                ticket.done(error)
