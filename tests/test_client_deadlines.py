"""Deadlines and progress lines of CargoClient: slow servers never keep it silent or stuck.

Real-time tests talk to a loopback server (127.0.0.1 only, a bounded number of handler threads,
stopped at the end) that drips its answer or never answers; they use timeouts below a second so
the whole file takes a few seconds. The exact progress lines are asserted with
httpx.MockTransport and FakeTime, as in test_client.py.
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import segsync.client
import segsync.deadline
from segsync.client import CargoClient, CreateOutcomeUnknown
from segsync.emulator.server import Emulator
from segsync.errors import NetworkError
from tests.test_client import (
    BASE,
    CREATE_BODY,
    MODEL,
    TOKEN,
    FakeTime,
    HalfRng,
    Handler,
    err,
    ok,
    segment,
    sequence,
)

Answer = Callable[[socket.socket, threading.Event], None]

DRIP_EVERY = 0.2
BODY = b'{"models": []}' + b" " * 200  # 200+ bytes: about 40 s at one byte every 0.2 s
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
    + BODY
)


class ZeroRng(random.Random):
    """Full jitter at zero: retries follow at once, so real-time tests only wait for deadlines."""

    def random(self) -> float:
        return 0.0


class LoopbackServer:
    """An HTTP/1.1 server on 127.0.0.1 that reads each request, then lets ``answer`` reply.

    At most ``limit`` connections are handled at once (more are closed at once); ``stop`` ends
    every handler (they wait on the stop event), closes the sockets and joins the threads.
    """

    def __init__(self, answer: Answer, limit: int = 8) -> None:
        self._answer = answer
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._accepter = threading.Thread(target=self._accept, name="loopback-accept")
        self._accepter.start()

    def url(self, prefix: str = "") -> str:
        return f"http://{prefix}127.0.0.1:{self.port}/v1"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                conn.close()
                continue
            with self._lock:
                self._open.add(conn)
            handler = threading.Thread(target=self._handle, args=(conn,), name="loopback-conn")
            self._threads.append(handler)
            handler.start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5.0)
            while self._read_request(conn):
                with self._lock:
                    self.requests += 1
                self._answer(conn, self._stop)
        except OSError:
            pass  # the client gave up and closed the connection
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()
            self._slots.release()

    @staticmethod
    def _read_request(conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk or len(data) > 1_000_000:
                return False
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        length = int(match.group(1)) if match else 0
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            rest += chunk
        return True

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._accepter.join(5)
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):  # already closed by the client
                    conn.shutdown(socket.SHUT_RDWR)
        for handler in self._threads:
            handler.join(5)
        assert not any(t.is_alive() for t in [self._accepter, *self._threads])


def drip(data: bytes) -> Answer:
    """Send ``data`` one byte every DRIP_EVERY seconds (the status line and headers too)."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        for i in range(len(data)):
            if stop.wait(DRIP_EVERY):
                return
            conn.sendall(data[i : i + 1])

    return answer


def headers_then_drip(conn: socket.socket, stop: threading.Event) -> None:
    """The status line and headers at once, then the body one byte every DRIP_EVERY seconds."""
    head, _, body = ANSWER.partition(b"\r\n\r\n")
    conn.sendall(head + b"\r\n\r\n")
    drip(body)(conn, stop)


def never(conn: socket.socket, stop: threading.Event) -> None:
    """Accept the request and never answer (until the server stops)."""
    stop.wait()


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def start(answer: Answer) -> LoopbackServer:
        server = LoopbackServer(answer)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def real_client(url: str, lines: list[str], *, token: str = TOKEN, **options: Any) -> CargoClient:
    options.setdefault("rng", ZeroRng())
    return CargoClient(url, token, notify=lines.append, **options)


# -- real time: a loopback server that drips or never answers ------------------------------------


def test_a_dripping_answer_fails_each_attempt_at_its_deadline(
    serve: Callable[[Answer], LoopbackServer],
) -> None:
    server = serve(drip(ANSWER))
    lines: list[str] = []
    with real_client(server.url(), lines, timeout=1.0, max_attempts=2) as client:
        started = time.monotonic()
        with pytest.raises(NetworkError) as info:
            client.list_models()
        elapsed = time.monotonic() - started
    # two attempts of 1 s each (the retry follows at once), not 40 s per attempt
    assert 2.0 <= elapsed < 2.8
    assert server.requests == 2
    assert str(info.value) == (
        "listing models failed: Cargo's answer did not arrive in full within 1 s (ReadTimeout); "
        "check CARGO_API_URL and the network (gave up after 2 attempts)"
    )
    assert lines == ["waiting for Cargo: no complete answer in 1 s, retry 1 of 1 (listing models)"]


def test_a_create_whose_body_drips_has_an_unknown_outcome_at_the_deadline(
    serve: Callable[[Answer], LoopbackServer],
) -> None:
    server = serve(headers_then_drip)
    lines: list[str] = []
    with real_client(server.url(), lines, timeout=0.6) as client:
        started = time.monotonic()
        with pytest.raises(CreateOutcomeUnknown) as info:
            client.create_segment(CREATE_BODY)
        elapsed = time.monotonic() - started
    assert 0.6 <= elapsed < 1.2
    assert server.requests == 1  # a create is never sent twice blindly
    assert str(info.value) == (
        "creating segment 'EU': the outcome is unknown (Cargo's answer did not arrive in full "
        "within 0.6 s: ReadTimeout); the segment may exist in Cargo"
    )
    assert lines == []


def test_a_server_that_never_answers_says_so_while_waiting(
    serve: Callable[[Answer], LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segsync.deadline, "NOTIFY_EVERY", 0.2)
    server = serve(never)
    lines: list[str] = []
    with real_client(server.url(), lines, timeout=0.5, max_attempts=2) as client:
        started = time.monotonic()
        with pytest.raises(NetworkError) as info:
            client.list_models()
        elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.8
    assert server.requests == 2
    assert str(info.value) == (
        "listing models failed: Cargo did not answer within 0.5 s (ReadTimeout); check "
        "CARGO_API_URL and the network (gave up after 2 attempts)"
    )
    retry = "waiting for Cargo: no answer for 0.5 s, retry 1 of 1 (listing models)"
    assert retry in lines
    before, after = lines[: lines.index(retry)], lines[lines.index(retry) + 1 :]
    # a line per 0.2 s mark of the call: 0.2 and 0.4 in the first attempt, 0.6 and 0.8 in the
    # second (a busy machine may wake up late and say two marks as one)
    first, second = marks(before, "listing models"), marks(after, "listing models")
    assert first and set(first) <= {0.2, 0.4}
    assert second and set(second) <= {0.6, 0.8, 1.0}
    assert first + second == sorted(set(first + second))


def marks(lines: list[str], action: str) -> list[float]:
    """The seconds of "still waiting" lines (every line must be one)."""
    shown = re.compile(rf"still waiting for Cargo: ([\d.]+) s so far \({re.escape(action)}\)")
    found = [shown.fullmatch(line) for line in lines]
    assert all(found), lines
    return [float(m.group(1)) for m in found if m]


def test_threads_sharing_the_client_each_keep_their_own_deadline(
    serve: Callable[[Answer], LoopbackServer],
) -> None:
    server = serve(never)
    lines: list[str] = []
    errors: list[BaseException] = []
    with real_client(server.url(), lines, timeout=0.5, max_attempts=1) as client:

        def work() -> None:
            try:
                client.list_models()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 1.2  # side by side, not one after the other
    assert len(errors) == 4
    assert all("did not answer within 0.5 s" in str(e) for e in errors)


def test_a_slow_answer_within_the_deadline_arrives_with_progress_lines(
    emulator_factory: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segsync.deadline, "NOTIFY_EVERY", 0.1)
    emu = emulator_factory(latency_ms=400)
    lines: list[str] = []
    with CargoClient(emu.url, emu.token, timeout=2.0, notify=lines.append) as client:
        assert client.current_workspace()["uuid"]
        # the connection is kept and reused: the deadline holds on it too
        assert client.current_workspace()["uuid"]
    said = marks(lines, "reading the current workspace")
    assert 0.1 in said and 0.3 in said and max(said) <= 0.5


def test_an_emulator_slower_than_the_deadline_times_out(
    emulator_factory: Callable[..., Emulator],
) -> None:
    emu = emulator_factory(latency_ms=900)
    lines: list[str] = []
    with real_client(emu.url, lines, timeout=0.4, max_attempts=1, token=emu.token) as client:
        started = time.monotonic()
        with pytest.raises(NetworkError, match=r"did not answer within 0\.4 s"):
            client.list_models()
        assert time.monotonic() - started < 0.8


def test_could_not_reach_names_the_whole_base_url_without_credentials() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    # nothing listens on the port any more: the connection is refused
    lines: list[str] = []
    url = f"http://user:secret@127.0.0.1:{port}/v1/"
    with real_client(url, lines, max_attempts=2) as client, pytest.raises(NetworkError) as info:
        client.list_models()
    message = str(info.value)
    assert message.startswith(
        "listing models failed: could not reach Cargo at "
        f"http://127.0.0.1:{port}/v1 (ConnectError: "
    )
    assert message.endswith("; check CARGO_API_URL and the network (gave up after 2 attempts)")
    assert "secret" not in message
    assert len(lines) == 1
    assert lines[0].startswith("could not reach Cargo (ConnectError: ")
    assert lines[0].endswith("): waiting 0 s, retry 1 of 1 (listing models)")


# -- exact lines: MockTransport and FakeTime ------------------------------------------------------


def mock_client(handler: Handler, fake: FakeTime, **options: Any) -> tuple[CargoClient, list[str]]:
    lines: list[str] = []
    options.setdefault("rng", HalfRng())
    client = CargoClient(
        BASE,
        TOKEN,
        transport=httpx.MockTransport(handler),
        sleep=fake.sleep,
        clock=fake.monotonic,
        notify=lines.append,
        **options,
    )
    return client, lines


class FakeDrip(httpx.SyncByteStream):
    """A body that arrives one byte per ``step`` seconds of fake time."""

    def __init__(self, fake: FakeTime, step: float, data: bytes = BODY) -> None:
        self._fake, self._step, self._data = fake, step, data

    def __iter__(self) -> Iterator[bytes]:
        for i in range(len(self._data)):
            self._fake.now += self._step
            yield self._data[i : i + 1]


def test_a_timeout_retry_is_announced() -> None:
    fake = FakeTime()
    client, lines = mock_client(sequence(httpx.ReadTimeout(""), ok({"models": []})), fake)
    with client:
        assert client.list_models() == []
    assert lines == ["waiting for Cargo: no answer for 30 s, retry 1 of 4 (listing models)"]


def test_a_rate_limit_wait_is_announced() -> None:
    fake = FakeTime()
    limited = httpx.Response(429, headers={"Retry-After": "12"})
    client, lines = mock_client(sequence(limited, ok({"models": []})), fake)
    with client:
        assert client.list_models() == []
    assert lines == ["Cargo is rate-limiting (429): waiting 12 s, retry 1 of 4 (listing models)"]
    assert fake.delays == [12.0]


def test_retries_after_server_and_network_errors_are_announced() -> None:
    fake = FakeTime()
    handler = sequence(
        httpx.Response(503),
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectTimeout(""),
        ok({"models": []}),
    )
    client, lines = mock_client(handler, fake, timeout=5.0)
    with client:
        client.list_models()
    assert lines == [
        "Cargo had a server error (503): waiting 0.5 s, retry 1 of 4 (listing models)",
        "could not reach Cargo (ConnectError: [Errno 111] Connection refused): waiting 1 s, "
        "retry 2 of 4 (listing models)",
        "waiting for Cargo: could not connect within 5 s, retry 3 of 4 (listing models)",
    ]


def test_a_create_that_is_rate_limited_announces_the_wait_it_leaves() -> None:
    fake = FakeTime()
    client, lines = mock_client(lambda r: httpx.Response(429, headers={"Retry-After": "3"}), fake)
    with client, pytest.raises(CreateOutcomeUnknown):
        client.create_segment(CREATE_BODY)
    assert lines == [
        "Cargo is rate-limiting (429): waiting 3 s before the next request (creating segment 'EU')"
    ]


def test_a_dripping_answer_is_cut_at_the_deadline_with_lines_every_ten_seconds() -> None:
    fake = FakeTime()
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(fake.now)
        if len(calls) == 1:
            return httpx.Response(200, stream=FakeDrip(fake, 4.0))
        return ok({"segments": []})

    client, lines = mock_client(handler, fake, max_retry_time=120.0)
    with client:
        assert client.list_segments(MODEL) == []
    action = f"listing the segments of model {MODEL}"
    # bytes arrive at 104, 108, ...: the 10 s and 20 s marks are said when the next byte comes;
    # the byte arriving at 132 is past the attempt's 30 s deadline, which ends it
    assert lines == [
        f"still waiting for Cargo: 10 s so far ({action})",
        f"still waiting for Cargo: 20 s so far ({action})",
        f"waiting for Cargo: no complete answer in 30 s, retry 1 of 4 ({action})",
    ]
    assert calls == [100.0, 132.5]  # the retry after 0.5 s of backoff


def test_a_create_whose_answer_drips_past_the_deadline_is_an_unknown_outcome() -> None:
    fake = FakeTime()
    client, lines = mock_client(lambda r: httpx.Response(201, stream=FakeDrip(fake, 7.0)), fake)
    with client, pytest.raises(CreateOutcomeUnknown) as info:
        client.create_segment(CREATE_BODY)
    assert "Cargo's answer did not arrive in full within 30 s: ReadTimeout" in str(info.value)
    assert lines == [
        "still waiting for Cargo: 10 s so far (creating segment 'EU')",
        "still waiting for Cargo: 20 s so far (creating segment 'EU')",
    ]


def test_an_answer_that_completes_in_time_is_read_whole() -> None:
    fake = FakeTime()
    body = b'{"segment": {"uuid": "%s"}}' % segment()["uuid"].encode()
    client, lines = mock_client(
        lambda r: httpx.Response(201, stream=FakeDrip(fake, 0.1, body)), fake
    )
    with client:
        assert client.create_segment(CREATE_BODY)["uuid"] == segment()["uuid"]
    assert lines == []


def test_progress_lines_never_hold_the_token() -> None:
    fake = FakeTime()
    handler = sequence(
        httpx.Response(429, headers={"Retry-After": "1"}),
        err(503, TOKEN),
        httpx.ReadTimeout(TOKEN),
        httpx.ConnectError(f"no route for {TOKEN}"),
        httpx.Response(200, stream=FakeDrip(fake, 6.0)),
    )
    client, lines = mock_client(handler, fake, max_retry_time=1000.0)
    with client, pytest.raises(NetworkError) as info:
        client.get_model(TOKEN)
    assert len(lines) >= 5
    assert all("***" in line for line in lines)
    assert not [line for line in [*lines, str(info.value)] if TOKEN in line]


def test_a_failing_notify_never_fails_the_request() -> None:
    fake = FakeTime()
    debug: list[str] = []

    def broken(line: str) -> None:
        raise OSError("stderr is closed")

    client = CargoClient(
        BASE,
        TOKEN,
        transport=httpx.MockTransport(sequence(httpx.Response(502), ok({"models": []}))),
        sleep=fake.sleep,
        clock=fake.monotonic,
        max_retry_time=120.0,
        rng=HalfRng(),
        notify=broken,
        debug_log=debug.append,
    )
    with client:
        assert client.list_models() == []
    assert "notify failed: OSError: stderr is closed" in debug


def test_without_notify_nothing_is_said_and_nothing_changes() -> None:
    fake = FakeTime()
    client = CargoClient(
        BASE,
        TOKEN,
        transport=httpx.MockTransport(
            sequence(httpx.Response(200, stream=FakeDrip(fake, 4.0)), ok({"models": []}))
        ),
        sleep=fake.sleep,
        clock=fake.monotonic,
        max_retry_time=120.0,
        rng=HalfRng(),
    )
    with client:
        assert client.list_models() == []
    assert fake.delays == [0.5]  # the dripping first answer was cut at its deadline
