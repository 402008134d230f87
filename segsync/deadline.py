"""A deadline for a whole HTTP attempt (connect, send, the complete answer), not per read.

httpx's timeouts apply to each socket operation, so a server that drips its answer one byte at
a time never times out. Here every socket operation of an attempt is cut to what is left of the
attempt's deadline (through the transport's network backend), and the answer's body is read as a
stream checked against the deadline after each chunk. While an answer is awaited, a "still
waiting" line is told every ``NOTIFY_EVERY`` seconds. Each thread holds its own attempt.
"""

from __future__ import annotations

import math
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpcore
import httpx

#: Seconds between two "still waiting for Cargo" lines while an answer is awaited.
NOTIFY_EVERY = 10.0


def secs(seconds: float) -> str:
    return f"{round(seconds, 1):g}"  # 12, 0.5, 1.2


class Attempt:
    """One attempt's deadline and "still waiting" lines, held in ``current`` by its thread."""

    def __init__(
        self,
        clock: Callable[[], float],
        timeout: float,
        started: float,
        action: str,
        tell: Callable[[str], None] | None,
    ) -> None:
        self.clock, self.started, self.action, self.tell = clock, started, action, tell
        self.every = NOTIFY_EVERY if tell is not None and NOTIFY_EVERY > 0 else math.inf
        now = clock()
        self.deadline = now + timeout
        self.heard = False  # some bytes of the answer arrived
        self.next_line = started + (math.floor((now - started) / self.every) + 1) * self.every

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def poll(self) -> None:
        """Say "still waiting" once per NOTIFY_EVERY s of the call (past the deadline, the
        timeout's own line follows)."""
        now = self.clock()
        if self.tell is None or not self.next_line <= now < self.deadline:
            return
        so_far = math.floor((now - self.started) / self.every) * self.every
        self.next_line = self.started + so_far + self.every
        self.tell(f"still waiting for Cargo: {secs(so_far)} s so far ({self.action})")


current = threading.local()


def running() -> Attempt | None:
    attempt: Attempt | None = getattr(current, "attempt", None)
    return attempt


def _limit(timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
    """``timeout`` cut to the running attempt's deadline; ``expired`` once that has passed."""
    attempt = running()
    if attempt is None:
        return timeout
    remaining = attempt.remaining()
    if remaining <= 0:
        raise expired("")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose waits end at the running attempt's deadline (as is, without one)."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        attempt = running()
        if attempt is None:
            return self._stream.read(max_bytes, timeout)
        # httpcore's per-read timeout (real seconds) still ends a read under a clock that
        # does not move (a test's).
        until = math.inf if timeout is None else time.monotonic() + timeout
        while True:  # wake up to say each "still waiting" line, then read on
            attempt.poll()
            wait = min(attempt.remaining(), until - time.monotonic())
            if wait <= 0:
                raise httpcore.ReadTimeout("")
            line_in = max(attempt.next_line - attempt.clock(), 0.01)
            try:
                data = self._stream.read(max_bytes, min(wait, line_in))
            except httpcore.ReadTimeout:
                if line_in < wait:
                    continue
                raise httpcore.ReadTimeout("") from None
            attempt.heard = attempt.heard or bool(data)
            return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _limit(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _limit(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """Opens ``_DeadlineStream`` connections, within the running attempt's deadline."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _limit(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        timeout = _limit(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def guard_transport(transport: object) -> None:
    """Give an httpx ``HTTPTransport`` (a proxy's too) the deadline-keeping network backend.

    httpx offers no public way to choose its pool's backend, hence ``_pool``; should a later
    httpx move it, the per-chunk check of ``WatchedBody`` still bounds the answer's body.
    """
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _DeadlineBackend):
        pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]


class WatchedBody(httpx.SyncByteStream):
    """An answer's body checked against the attempt's deadline after each chunk (any transport)."""

    def __init__(self, stream: httpx.SyncByteStream, attempt: Attempt, request: httpx.Request):
        self._stream, self._attempt, self._request = stream, attempt, request

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            self._attempt.heard = self._attempt.heard or bool(chunk)
            self._attempt.poll()
            if self._attempt.remaining() <= 0:
                raise httpx.ReadTimeout("", request=self._request)
            yield chunk

    def close(self) -> None:
        self._stream.close()
