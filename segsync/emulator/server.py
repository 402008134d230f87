"""HTTP side of the emulator: routing, authentication, request checks and fault injection.

Built on ``http.server.ThreadingHTTPServer`` (HTTP/1.1 with keep-alive, one thread per
connection). The store does the work; this module turns requests into store calls and results
into responses, following the API reference and the emulator's conventions:

- every path is under ``/v1``; an unknown path (or method) answers 404 with a JSON error;
- ``Authorization: Bearer <token>`` is checked first: a missing or wrong token gets 401 with an
  empty body; without a configured token any non-empty token is accepted;
- a body needs ``Content-Type: application/json`` (else 415); a GET with a body, an empty or
  repeated query parameter, and (unless lax) a ``Content-Type`` without a body or an unknown
  query parameter get 400, as a strict JSON API would answer;
- success is 200 with the payload under its key (DELETE answers ``{}``); errors carry
  ``{"errorMessage", "reason"}`` with the statuses of §8.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from segsync import __version__
from segsync.emulator.data import DEFAULT_WORKSPACE, Catalog, build_catalog
from segsync.emulator.faults import FaultConfig, FaultInjector
from segsync.emulator.store import HttpError, Store, StoreOptions

API_PREFIX = "/v1"
DEFAULT_TOKEN = "emulator-token"
MAX_BODY = 10 * 1024 * 1024

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_HAS_RECORDS = ("added", "updated", "removed", "unchanged")


@dataclass(frozen=True)
class EmulatorOptions:
    """Everything that shapes an emulator; the command-line options map one to one."""

    token: str | None = None
    workspace: str = DEFAULT_WORKSPACE
    data_path: Path | None = None
    fixtures: bool = True
    lax: bool = False
    normalize: bool = False
    list_removed: bool = False
    seed: int = 0
    latency_ms: int = 0
    fail_5xx: float = 0.0
    fail_429: float = 0.0
    bare_429: float = 0.0
    retry_after: int = 1
    drop_after_commit: float = 0.0
    log: Callable[[str], None] | None = None

    @property
    def fault_config(self) -> FaultConfig:
        """The fault options, which carry FaultConfig's own field names."""
        return FaultConfig(**{f.name: getattr(self, f.name) for f in fields(FaultConfig)})


@dataclass(frozen=True)
class Response:
    status: int
    payload: Any
    write: bool = False  # a committed create, update or delete (may be dropped)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Request:
    def __init__(self, method: str, path: str, query: list[tuple[str, str]], body: bytes | None):
        self.method = method
        self.path = path
        self.query = query
        self.body = body

    def json(self) -> Any:
        if self.body is None:
            return None
        try:
            return json.loads(self.body.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _BadRequest(400, f"request body is not valid JSON: {exc}") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


Handler = Callable[["Emulator", _Request, Mapping[str, str], "dict[str, str]"], Response]


def _uuid_arg(value: str, name: str) -> str:
    if not _UUID.match(value):
        raise _BadRequest(400, f"{name}: {value!r} is not a UUID")
    return value


# --------------------------------------------------------------------------- routes


def _create(emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]) -> Response:
    return Response(200, {"segment": emu.store.create(req.json())}, write=True)


def _list(emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]) -> Response:
    model = q.get("modelUuid")
    if model is not None:
        _uuid_arg(model, "modelUuid")
    return Response(200, {"segments": emu.store.list_segments(model)})


def _fetch(emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]) -> Response:
    return Response(200, emu.store.fetch(req.json()))


def _get(emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]) -> Response:
    return Response(200, {"segment": emu.store.get(params["uuid"])})


def _update(emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]) -> Response:
    return Response(200, {"segment": emu.store.update(params["uuid"], req.json())}, write=True)


def _delete(emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]) -> Response:
    # The body is `{}`, as Cargo's own client sends it.
    if req.json() != {}:
        raise _BadRequest(400, "the body of a segment delete must be {}")
    return Response(200, emu.store.delete(params["uuid"]), write=True)


def _changes(
    emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]
) -> Response:
    segment = q.get("segmentUuid")
    if segment is None:
        raise _BadRequest(400, "segmentUuid: missing required query parameter")
    _uuid_arg(segment, "segmentUuid")
    if "hasRecords" in q and q["hasRecords"] not in _HAS_RECORDS:
        raise _BadRequest(400, f"hasRecords: expected one of {', '.join(_HAS_RECORDS)}")
    for key in ("limit", "offset"):
        if key in q and not q[key].isdigit():
            raise _BadRequest(400, f"{key}: expected a non-negative integer")
    changes = emu.store.changes(segment)
    offset = int(q.get("offset", "0"))
    limit = int(q["limit"]) if "limit" in q else len(changes)
    return Response(200, {"changes": changes[offset : offset + limit]})


def _datasets(
    emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]
) -> Response:
    return Response(200, {"datasets": emu.store.datasets()})


def _models(emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]) -> Response:
    return Response(200, {"models": emu.store.models()})


def _model(emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]) -> Response:
    return Response(200, {"model": emu.store.model(params["uuid"])})


def _required(q: Mapping[str, str], *names: str) -> list[str]:
    missing = [n for n in names if n not in q]
    if missing:
        raise _BadRequest(400, f"{', '.join(missing)}: missing required query parameter")
    return [q[n] for n in names]


def _model_exists(
    emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]
) -> Response:
    slug, dataset = _required(q, "slug", "datasetUuid")
    _uuid_arg(dataset, "datasetUuid")
    return Response(200, {"exists": emu.store.model_exists(slug, dataset)})


def _columns(
    emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]
) -> Response:
    (model,) = _required(q, "modelUuid")
    return Response(200, {"columns": emu.store.columns(_uuid_arg(model, "modelUuid"))})


def _column_exists(
    emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]
) -> Response:
    slug, model = _required(q, "slug", "modelUuid")
    _uuid_arg(model, "modelUuid")
    return Response(200, {"exists": emu.store.column_exists(slug, model)})


def _relationships(
    emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]
) -> Response:
    return Response(200, {"relationships": []})


def _workspace(
    emu: Emulator, req: _Request, params: Mapping[str, str], q: dict[str, str]
) -> Response:
    return Response(200, {"workspace": emu.store.workspace()})


_U = r"(?P<uuid>[^/]+)"
ROUTES: tuple[tuple[str, re.Pattern[str], tuple[str, ...], Handler], ...] = tuple(
    (method, re.compile(pattern + r"\Z"), query, handler)
    for method, pattern, query, handler in (
        ("POST", r"/segmentation/segments", (), _create),
        ("GET", r"/segmentation/segments/list", ("modelUuid",), _list),
        ("POST", r"/segmentation/segments/fetch", (), _fetch),
        ("GET", rf"/segmentation/segments/{_U}", (), _get),
        ("PUT", rf"/segmentation/segments/{_U}", (), _update),
        ("DELETE", rf"/segmentation/segments/{_U}", (), _delete),
        (
            "GET",
            r"/segmentation/changes/list",
            ("segmentUuid", "hasRecords", "limit", "offset", "notEmpty"),
            _changes,
        ),
        ("GET", r"/storage/datasets/list", (), _datasets),
        ("GET", r"/storage/models/list", (), _models),
        ("GET", r"/storage/models/existsBySlug", ("slug", "datasetUuid"), _model_exists),
        ("GET", rf"/storage/models/{_U}", (), _model),
        ("GET", r"/storage/columns/list", ("modelUuid",), _columns),
        ("GET", r"/storage/columns/existsBySlug", ("slug", "modelUuid"), _column_exists),
        ("GET", r"/storage/relationships/list", (), _relationships),
        ("GET", r"/workspaceManagement/workspaces/current", (), _workspace),
    )
)


# --------------------------------------------------------------------------- HTTP plumbing


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (closing its pool, a killed run) is not an error to print."""
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are two writes: no 40 ms delayed-ACK stall
    server_version = f"segsync-emulator/{__version__}"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the emulator logs its own lines (without headers) when asked to."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise _BadRequest(413, "request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            data = b"".join(chunks)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise _BadRequest(413, "request body too large")
            data = self.rfile.read(length) if length > 0 else b""
        return data or None

    def _handle(self) -> None:
        emulator = cast(_HTTPServer, self.server).emulator
        try:
            body = self._read_body()
        except (ValueError, _BadRequest) as exc:
            self.close_connection = True
            status = exc.status if isinstance(exc, _BadRequest) else 400
            self._send(status, {"errorMessage": str(exc)})
            return
        if not emulator.authorized(self.headers.get("Authorization")):
            emulator.log_line(self.command, self.path, 401)
            self._send(401, None)
            return
        draw = emulator.faults.draw()
        # --latency-ms is the time each answer takes at least, like a network round trip plus
        # the server's work: the emulator's own processing happens within it, not on top.
        answer_at = time.monotonic() + emulator.faults.config.latency_ms / 1000
        if draw.status == 429:
            retry = (
                {}
                if draw.variant == "bare"
                else {"Retry-After": str(emulator.faults.config.retry_after)}
            )
            emulator.log_line(self.command, self.path, 429, "injected")
            _sleep_until(answer_at)
            self._send(429, None, retry)
            return
        if draw.status == 502:
            raw = {
                "empty": b"",
                "json": b'{"errorMessage":"Bad gateway"}',
                "html": b"<html><body><h1>502 Bad Gateway</h1></body></html>",
            }[draw.variant]
            kind = {"json": "application/json", "html": "text/html"}.get(draw.variant)
            emulator.log_line(self.command, self.path, 502, "injected")
            _sleep_until(answer_at)
            self._send_raw(502, raw, kind)
            return
        headers = {key.lower(): value for key, value in self.headers.items()}
        response = emulator.dispatch(self.command, self.path, headers, body)
        _sleep_until(answer_at)
        if response.write and response.status == 200:
            emulator.faults.record_write()
            if draw.drop:
                emulator.faults.record_drop()
                emulator.log_line(self.command, self.path, response.status, "committed, dropped")
                self.close_connection = True
                return
        # logged before answering: a client that saw the answer finds the line written
        emulator.log_line(self.command, self.path, response.status)
        self._send(response.status, response.payload)

    def _send(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        if payload is None:
            self._send_raw(status, b"", None, headers)
        else:
            data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            self._send_raw(status, data, "application/json; charset=utf-8", headers)

    def _send_raw(
        self,
        status: int,
        data: bytes,
        content_type: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if data:
            self.wfile.write(data)


# --------------------------------------------------------------------------- emulator


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


class Emulator:
    """A running (or ready to run) emulator bound to ``host:port`` (port 0: a free port).

    Use it in-process as a context manager (``with Emulator(port=0) as emu:``), or call
    :meth:`serve_forever` in the current thread. ``url`` ends in ``/v1``; ``token`` is the
    configured token, or a placeholder when any token is accepted.
    """

    def __init__(
        self,
        options: EmulatorOptions | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.options = options or EmulatorOptions()
        self.catalog: Catalog = build_catalog(self.options.workspace)
        self.store = Store(
            self.catalog,
            StoreOptions(
                fixtures=self.options.fixtures,
                lax=self.options.lax,
                normalize=self.options.normalize,
                list_removed=self.options.list_removed,
                data_path=self.options.data_path,
            ),
        )
        self.faults = FaultInjector(self.options.fault_config)
        self._server = _HTTPServer((host, port), self)
        address = self._server.server_address
        self.host = str(address[0])
        self.port = int(address[1])
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ public

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{API_PREFIX}"

    @property
    def token(self) -> str:
        return self.options.token or DEFAULT_TOKEN

    @property
    def accepts_any_token(self) -> bool:
        return self.options.token is None

    def set_faults(self, config: FaultConfig) -> None:
        """Replace the fault configuration (and restart its random sequence)."""
        self.faults = FaultInjector(config)

    def start(self) -> Emulator:
        """Serve in a background thread; returns self."""
        if self._thread is None:
            # a short poll interval keeps stop() quick (serve_forever checks for shutdown per poll)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.02},
                name="segsync-emulator",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the current thread until :meth:`shutdown` or KeyboardInterrupt."""
        try:
            self._server.serve_forever()
        finally:
            self._close()

    def shutdown(self) -> None:
        """Ask a running ``serve_forever`` to return (from another thread)."""
        self._server.shutdown()

    def stop(self) -> None:
        """Stop serving, close open connections, release the port and fold the change log."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Emulator(url={self.url!r}, workspace={self.options.workspace!r})"

    # ------------------------------------------------------------------ internals

    def _close(self) -> None:
        self._server.close_connections()
        self._server.server_close()
        self.store.close()  # with --data: the change log is folded into the data file

    def authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        if self.options.token is None:
            return True
        return hmac.compare_digest(token.encode(), self.options.token.encode())

    def log_line(self, method: str, path: str, status: int, note: str = "") -> None:
        if self.options.log is not None:
            self.options.log(f"{method} {path} -> {status}" + (f" ({note})" if note else ""))

    def dispatch(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes | None
    ) -> Response:
        """Route one authenticated request (``headers`` keys in lower case); never raises."""
        try:
            return self._dispatch(method, target, headers, body)
        except HttpError as exc:
            return Response(exc.status, exc.body())
        except _BadRequest as exc:
            return Response(exc.status, {"errorMessage": exc.message})
        except Exception as exc:  # an emulator bug: answer it rather than drop the connection
            return Response(500, {"errorMessage": f"emulator error: {type(exc).__name__}: {exc}"})

    def _dispatch(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes | None
    ) -> Response:
        parts = urlsplit(target)
        path = parts.path
        route = None
        params: dict[str, str] = {}
        if path.startswith(API_PREFIX + "/"):
            sub = path[len(API_PREFIX) :]
            for r_method, pattern, allowed, handler in ROUTES:
                match = pattern.match(sub)
                if match and r_method == method:
                    route = (allowed, handler)
                    params = match.groupdict()
                    break
        if route is None:
            raise HttpError(404, f"no route for {method} {path}")
        allowed, handler = route
        if "uuid" in params:
            _uuid_arg(params["uuid"], "uuid")
        query = self._query(parts.query, allowed)
        content_type = headers.get("content-type")
        if body is not None:
            if method == "GET":
                raise _BadRequest(400, "a GET request must not have a body")
            if (
                content_type is None
                or content_type.split(";")[0].strip().lower() != "application/json"
            ):
                raise _BadRequest(
                    415, "a request body must be sent as Content-Type: application/json"
                )
        elif content_type is not None and not self.options.lax:
            raise _BadRequest(400, "Content-Type is set but the request has no body")
        return handler(self, _Request(method, path, list(query.items()), body), params, query)

    def _query(self, raw: str, allowed: tuple[str, ...]) -> dict[str, str]:
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw, keep_blank_values=True):
            if key in query:
                raise _BadRequest(400, f"{key}: query parameter given more than once")
            if key not in allowed:
                if self.options.lax:
                    continue
                known = f" (this endpoint takes {', '.join(allowed)})" if allowed else ""
                raise _BadRequest(400, f"{key}: unknown query parameter{known}")
            if value == "" or value == "null":
                raise _BadRequest(400, f"{key}: empty query parameter (leave it out instead)")
            query[key] = value
        return query


def start_emulator(*, host: str = "127.0.0.1", port: int = 0, **options: Any) -> Emulator:
    """Start an in-process emulator in a background thread; ``options`` are EmulatorOptions."""
    return Emulator(EmulatorOptions(**options), host=host, port=port).start()
