"""CargoClient against httpx.MockTransport handlers acting as fake Cargo servers.

Time is faked: the client's ``sleep`` and ``clock`` come from ``FakeTime``, which records every
requested delay and advances a fake monotonic clock, so retries are asserted without sleeping.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import httpx
import pytest

from segsync import __version__
from segsync.client import (
    DEFAULT_BASE_URL,
    CargoClient,
    CreateOutcomeUnknown,
    parse_retry_after,
    redact,
)
from segsync.errors import ApiError, ConfigError, NetworkError, SegsyncError
from segsync.refresh import Catalog

TOKEN = "tok-M4RK3R-5f0c2e9a71"
BASE = "https://cargo.test/v1"
SEG = "0b6e3c1a-2d4f-4a8b-9c1d-3e5f7a9b1c2d"
SEG2 = "1c7f4d2b-3e5a-4b9c-8d2e-4f6a8b0c2d3e"
MODEL = "2d8a5e3c-4f6b-4cad-9e3f-5a7b9c1d3e4f"

Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """A monotonic clock that only moves when the client sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[tuple[str, float]] = []
        self.lock = threading.Lock()
        self.during_next_sleep: Callable[[], None] | None = None

    def monotonic(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append((threading.current_thread().name, seconds))
            hook, self.during_next_sleep = self.during_next_sleep, None
        if hook is not None:
            hook()
        with self.lock:
            self.now += seconds

    @property
    def delays(self) -> list[float]:
        return [d for _, d in self.sleeps]


class HalfRng(random.Random):
    """Full jitter lands exactly in the middle of its range, so delays are predictable."""

    def random(self) -> float:
        return 0.5


@dataclass
class Harness:
    client: CargoClient
    time: FakeTime
    lines: list[str]
    requests: list[httpx.Request] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.client)


@pytest.fixture
def make() -> Iterator[Callable[..., Harness]]:
    """Build a client around a handler; afterwards, check no debug line ever held the token."""
    made: list[Harness] = []

    def build(handler: Handler, **kwargs: Any) -> Harness:
        fake = FakeTime()
        lines: list[str] = []
        harness_requests: list[httpx.Request] = []

        def recording(request: httpx.Request) -> httpx.Response:
            request.read()
            harness_requests.append(request)
            return handler(request)

        options: dict[str, Any] = {
            "transport": httpx.MockTransport(recording),
            "sleep": fake.sleep,
            "clock": fake.monotonic,
            "rng": HalfRng(),
            "debug_log": lines.append,
        }
        options.update(kwargs)
        client = CargoClient(BASE, TOKEN, **options)
        harness = Harness(client, fake, lines, harness_requests)
        made.append(harness)
        return harness

    yield build
    for harness in made:
        harness.client.close()
        assert not [line for line in harness.lines if TOKEN in line]


def ok(payload: Any) -> httpx.Response:
    return httpx.Response(200, json=payload)


def err(status: int, reason: str | None = None, message: str | None = None) -> httpx.Response:
    body: dict[str, str] = {}
    if reason is not None:
        body["reason"] = reason
    if message is not None:
        body["errorMessage"] = message
    return httpx.Response(status, json=body)


def segment(uuid: str = SEG, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "uuid": uuid,
        "workspaceUuid": "ws",
        "modelUuid": MODEL,
        "slug": "eu",
        "name": "EU",
        "filter": {"conjonction": "and", "groups": []},
        "sort": None,
        "limit": None,
        "trackingColumnSlugs": None,
        "fromPlay": False,
        "deletedAt": None,
        "somethingCargoAddedLater": {"x": 1},
    }
    data.update(overrides)
    return data


def sequence(*responses: httpx.Response | Exception) -> Handler:
    """A handler that answers with the given responses (or raises the given errors) in turn."""
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler


# -- configuration ------------------------------------------------------------------------------


def test_missing_token_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARGO_API_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="CARGO_API_TOKEN is not set"):
        CargoClient(BASE)
    with pytest.raises(ConfigError, match="CARGO_API_TOKEN is not set"):
        CargoClient(BASE, "   ")


def test_url_and_token_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARGO_API_URL", "http://127.0.0.1:8787/v1/")
    monkeypatch.setenv("CARGO_API_TOKEN", TOKEN)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok({"workspace": {"uuid": "w1", "name": "Acme"}})

    with CargoClient(transport=httpx.MockTransport(handler)) as client:
        assert client.current_workspace() == {"uuid": "w1", "name": "Acme"}
    assert str(seen[0].url) == "http://127.0.0.1:8787/v1/workspaceManagement/workspaces/current"
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"

    monkeypatch.delenv("CARGO_API_URL")
    with CargoClient() as client:
        assert client.base_url == DEFAULT_BASE_URL


def test_a_token_that_cannot_be_sent_is_refused_without_echoing_it() -> None:
    bad = TOKEN + "\nX-Injected: 1"
    with pytest.raises(ConfigError) as info:
        CargoClient(BASE, bad)
    assert TOKEN not in str(info.value)
    assert "CARGO_API_TOKEN" in str(info.value)


def test_surrounding_whitespace_of_the_token_is_ignored() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return ok({"datasets": []})

    with CargoClient(BASE, f"  {TOKEN}\n", transport=httpx.MockTransport(handler)) as client:
        client.list_datasets()
    assert seen == [f"Bearer {TOKEN}"]


@pytest.mark.parametrize("url", ["api.getcargo.io/v1", "ftp://cargo.test", "https://"])
def test_a_base_url_that_is_not_http_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="CARGO_API_URL must be an http"):
        CargoClient(url, TOKEN)


def test_close_and_context_manager() -> None:
    client = CargoClient(BASE, TOKEN, transport=httpx.MockTransport(lambda r: ok({})))
    with client as entered:
        assert entered is client
    with pytest.raises(RuntimeError):
        client.list_models()
    assert TOKEN not in repr(client)


# -- wire format --------------------------------------------------------------------------------


def test_get_has_no_body_and_no_content_type(make: Callable[..., Harness]) -> None:
    h = make(lambda r: ok({"segments": []}))
    h.client.list_segments(MODEL)
    (request,) = h.requests
    assert request.method == "GET"
    assert request.content == b""
    assert "Content-Type" not in request.headers
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["User-Agent"] == (
        f"segsync/{__version__} (+python-httpx/{httpx.__version__})"
    )
    assert request.url.path == "/v1/segmentation/segments/list"
    assert request.url.params["modelUuid"] == MODEL


@pytest.mark.parametrize("model_uuid", [None, ""])
def test_query_parameters_without_a_value_are_left_out(
    make: Callable[..., Harness], model_uuid: str | None
) -> None:
    h = make(lambda r: ok({"segments": []}))
    h.client.list_segments(model_uuid)
    assert h.requests[0].url.query == b""
    assert str(h.requests[0].url) == f"{BASE}/segmentation/segments/list"


def test_bodies_are_json_with_content_type(make: Callable[..., Harness]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/fetch"):
            return ok({"records": [], "count": 3, "columns": [], "isRefreshing": False})
        if request.method == "DELETE":
            return httpx.Response(200, json={})
        return ok({"segment": segment()})

    h = make(handler)
    body = {"name": "EU", "modelUuid": MODEL, "filter": {"conjonction": "and", "groups": []}}
    assert h.client.create_segment(body)["uuid"] == SEG
    assert h.client.update_segment(SEG, {"name": "EU 2", "limit": None})["uuid"] == SEG
    assert h.client.fetch_segment({**body, "fetchingLimit": 1})["count"] == 3
    h.client.delete_segment(SEG)
    assert h.paths == [
        "POST /v1/segmentation/segments",
        f"PUT /v1/segmentation/segments/{SEG}",
        "POST /v1/segmentation/segments/fetch",
        f"DELETE /v1/segmentation/segments/{SEG}",
    ]
    sent = [json.loads(r.content) for r in h.requests]
    assert sent == [body, {"name": "EU 2", "limit": None}, {**body, "fetchingLimit": 1}, {}]
    assert all(r.headers["Content-Type"] == "application/json" for r in h.requests)


def test_path_parameters_are_quoted(make: Callable[..., Harness]) -> None:
    h = make(lambda r: ok({"segment": segment()}))
    h.client.get_segment("../storage/models/list?x=1")
    url = h.requests[0].url
    assert url.raw_path == b"/v1/segmentation/segments/..%2Fstorage%2Fmodels%2Flist%3Fx%3D1"
    assert url.query == b""


# -- payload shapes -----------------------------------------------------------------------------


def test_payloads_are_unwrapped_and_unknown_fields_kept(make: Callable[..., Harness]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/workspaces/current"):
            return ok({"workspace": {"uuid": "w", "name": "Acme", "new": True}, "extra": 1})
        if path.endswith("/datasets/list"):
            return ok({"datasets": [{"uuid": "d1", "slug": "crm", "kind": "native"}]})
        if path.endswith("/models/list"):
            return ok({"models": [{"uuid": MODEL, "slug": "companies", "columns": []}]})
        if path.endswith(f"/models/{MODEL}"):
            return ok({"model": {"uuid": MODEL, "slug": "companies", "uniqueColumns": []}})
        return ok({"segment": segment()})

    h = make(handler)
    assert h.client.current_workspace()["new"] is True
    assert h.client.list_datasets() == [{"uuid": "d1", "slug": "crm", "kind": "native"}]
    assert h.client.list_models()[0]["slug"] == "companies"
    assert h.client.get_model(MODEL)["uniqueColumns"] == []
    got = h.client.get_segment(SEG)
    assert got is not None
    assert got["somethingCargoAddedLater"] == {"x": 1}


def test_list_segments_drops_removed_and_play_owned_unless_asked(
    make: Callable[..., Harness],
) -> None:
    live = segment(SEG)
    removed = segment(SEG2, deletedAt="2025-01-01T00:00:00.000Z")
    play = segment(MODEL, fromPlay=True)
    h = make(lambda r: ok({"segments": [live, removed, play]}))
    assert [s["uuid"] for s in h.client.list_segments()] == [SEG]
    assert [s["uuid"] for s in h.client.list_segments(include_removed=True)] == [SEG, SEG2]
    assert [s["uuid"] for s in h.client.list_segments(include_play=True)] == [SEG, MODEL]
    everything = h.client.list_segments(include_removed=True, include_play=True)
    assert len(everything) == 3


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(404),
        err(404, "segmentNotFound", "no such segment"),
        err(400, "segmentNotFound"),
        ok({"segment": segment(deletedAt="2025-01-01T00:00:00.000Z")}),
    ],
    ids=["bare-404", "404-reason", "400-reason", "deletedAt"],
)
def test_get_segment_returns_none_when_gone(
    make: Callable[..., Harness], response: httpx.Response
) -> None:
    h = make(lambda r: response)
    assert h.client.get_segment(SEG) is None
    assert len(h.requests) == 1


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>ok</html>", b"[]", b'{"segments": {}}', b'{"segments": [1, 2]}', b"{}"],
)
def test_an_unexpected_success_body_is_an_api_error(
    make: Callable[..., Harness], body: bytes
) -> None:
    h = make(lambda r: httpx.Response(200, content=body))
    with pytest.raises(ApiError, match="listing segments failed") as info:
        h.client.list_segments()
    assert not isinstance(info.value, NetworkError)


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "reason", "error_message", "fragment"),
    [
        (httpx.Response(400), None, None, "Cargo answered 400 Bad Request"),
        (
            httpx.Response(400, content=b"<html>\n  bad  request\n</html>"),
            None,
            None,
            "<html> bad request </html>",
        ),
        (httpx.Response(400, json=["not", "an", "object"]), None, None, "400 Bad Request"),
        (httpx.Response(400, json={"unrelated": 1}), None, None, "400 Bad Request"),
        (httpx.Response(400, json={"reason": 7, "errorMessage": None}), None, None, "400 Bad"),
        (err(400, "somethingNew", "explained"), "somethingNew", "explained", "400 somethingNew"),
        (err(400, message="only text"), None, "only text", "only text"),
    ],
    ids=["empty", "html", "json-list", "json-no-keys", "json-wrong-types", "both", "message"],
)
def test_error_bodies_are_parsed_defensively(
    make: Callable[..., Harness],
    response: httpx.Response,
    reason: str | None,
    error_message: str | None,
    fragment: str,
) -> None:
    h = make(lambda r: response)
    with pytest.raises(ApiError) as info:
        h.client.update_segment(SEG, {"name": "x"})
    exc = info.value
    assert (exc.status, exc.reason, exc.error_message) == (400, reason, error_message)
    assert fragment in str(exc)
    assert str(exc).startswith(f"updating segment {SEG} failed")
    assert len(h.requests) == 1


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            httpx.Response(401),
            "Cargo refused the token (401): check CARGO_API_TOKEN and that it belongs to "
            "this workspace",
        ),
        (err(403), "the token probably lacks the 'segmentation:write' permission"),
        (err(400, message="Forbidden action"), "lacks the 'segmentation:write' permission"),
        (err(400, "invalidFilter", "unknown column 'contry'"), "unknown column 'contry'"),
        (err(404, "segmentNotFound"), "it was deleted outside segsync"),
        (err(409, "segmentLinkedToWorkflow"), "a Cargo workflow uses this segment"),
        (err(409, "somethingElse"), "409 somethingElse"),
    ],
    ids=["401", "403", "forbidden-text", "invalidFilter", "notFound", "workflow", "409"],
)
def test_client_errors_are_not_retried_and_say_what_to_do(
    make: Callable[..., Harness], response: httpx.Response, expected: str
) -> None:
    h = make(lambda r: response)
    with pytest.raises(ApiError) as info:
        h.client.update_segment(SEG, {"name": "x"})
    assert expected in str(info.value)
    assert info.value.status == response.status_code
    assert len(h.requests) == 1
    assert h.time.sleeps == []


@pytest.mark.parametrize(
    ("call", "scope"),
    [
        (lambda c: c.list_segments(), "'segmentation:read'"),
        (lambda c: c.get_segment(SEG), "'segmentation:read'"),
        (lambda c: c.delete_segment(SEG), "'segmentation:write'"),
        (lambda c: c.create_segment({"name": "a"}), "'segmentation:write'"),
        (lambda c: c.list_models(), "'storage:read'"),
        (lambda c: c.get_model(MODEL), "'storage:read'"),
        (lambda c: c.fetch_segment({}), "'segmentation:read' permission (Cargo does not say"),
    ],
)
def test_a_refusal_names_the_scope_that_is_probably_missing(
    make: Callable[..., Harness], call: Callable[[CargoClient], object], scope: str
) -> None:
    h = make(lambda r: err(403, message="Unauthorized"))
    with pytest.raises(ApiError) as info:
        call(h.client)
    assert scope in str(info.value)
    assert len(h.requests) == 1


def test_a_bare_404_on_a_list_hints_at_the_base_url(make: Callable[..., Harness]) -> None:
    h = make(lambda r: httpx.Response(404))
    with pytest.raises(ApiError, match="is CARGO_API_URL right"):
        h.client.list_models()


# -- retries --------------------------------------------------------------------------------------


CALLS: dict[str, Callable[[CargoClient], object]] = {
    "GET": lambda c: c.list_segments(),
    "PUT": lambda c: c.update_segment(SEG, {"name": "x"}),
    "DELETE": lambda c: c.delete_segment(SEG),
    "fetch POST": lambda c: c.fetch_segment({"modelUuid": MODEL}),
}
SUCCESS = ok({"segments": [], "segment": segment(), "records": [], "count": 0})
FAILURES: dict[str, httpx.Response | Exception] = {
    "502-empty": httpx.Response(502),
    "503-json": err(503, message="maintenance"),
    "connect": httpx.ConnectError("refused"),
    "read-timeout": httpx.ReadTimeout("timed out"),
    "dropped": httpx.RemoteProtocolError("Server disconnected without sending a response."),
}


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("call", list(CALLS))
def test_server_and_network_errors_are_retried(
    make: Callable[..., Harness], call: str, failure: str
) -> None:
    h = make(sequence(FAILURES[failure], FAILURES[failure], SUCCESS))
    CALLS[call](h.client)
    assert len(h.requests) == 3
    assert h.time.delays == [0.5, 1.0]  # full jitter at its midpoint: 0.5 × 1 s, 0.5 × 2 s


def test_attempts_are_bounded_and_backoff_is_capped(make: Callable[..., Harness]) -> None:
    h = make(lambda r: err(503, message="down"), max_attempts=8, max_retry_time=1000.0)
    with pytest.raises(ApiError) as info:
        h.client.list_models()
    assert len(h.requests) == 8
    assert h.time.delays == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    assert info.value.status == 503
    assert "gave up after 8 attempts" in str(info.value)
    assert "down" in str(info.value)


def test_the_default_is_five_attempts(make: Callable[..., Harness]) -> None:
    h = make(lambda r: httpx.Response(502), max_retry_time=1000.0)
    with pytest.raises(ApiError, match="gave up after 5 attempts"):
        h.client.list_models()
    assert len(h.requests) == 5


def test_the_retry_time_budget_is_bounded(make: Callable[..., Harness]) -> None:
    h = make(lambda r: httpx.Response(502), max_attempts=10, max_retry_time=3.0)
    with pytest.raises(ApiError):
        h.client.list_models()
    # 0.5 + 1.0 slept; the next 2.0 s would end past the 3 s budget.
    assert h.time.delays == [0.5, 1.0]
    assert len(h.requests) == 3


def test_the_budget_holds_even_when_sleep_returns_at_once(make: Callable[..., Harness]) -> None:
    h = make(
        lambda r: httpx.Response(502),
        max_attempts=50,
        max_retry_time=3.0,
        sleep=lambda s: None,
        clock=time.monotonic,
    )
    with pytest.raises(ApiError):
        h.client.list_models()
    assert len(h.requests) == 3


def test_full_jitter_stays_within_its_range(make: Callable[..., Harness]) -> None:
    h = make(lambda r: httpx.Response(503), rng=random.Random(1234), max_attempts=7)
    with pytest.raises(ApiError):
        h.client.list_models()
    ceilings = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert len(h.time.delays) == 6
    assert all(0 <= d < c for d, c in zip(h.time.delays, ceilings, strict=True))
    assert len(set(h.time.delays)) == 6


def test_network_errors_give_up_with_a_network_error(make: Callable[..., Harness]) -> None:
    h = make(sequence(httpx.ConnectError("[Errno 111] Connection refused")))
    with pytest.raises(NetworkError) as info:
        h.client.list_models()
    message = str(info.value)
    assert "could not reach Cargo at https://cargo.test/v1" in message
    assert "Connection refused" in message
    assert "gave up after 5 attempts" in message
    assert len(h.requests) == 5


def test_a_timeout_says_how_long_it_waited(make: Callable[..., Harness]) -> None:
    h = make(sequence(httpx.ReadTimeout("")), max_attempts=1, timeout=12.5)
    with pytest.raises(NetworkError, match=r"did not answer within 12\.5 s \(ReadTimeout\)"):
        h.client.list_models()


def test_a_local_transport_problem_is_not_retried(make: Callable[..., Harness]) -> None:
    h = make(sequence(httpx.UnsupportedProtocol("bad scheme")))
    with pytest.raises(NetworkError):
        h.client.list_models()
    assert len(h.requests) == 1


def test_retry_after_seconds_is_honoured(make: Callable[..., Harness]) -> None:
    limited = httpx.Response(429, headers={"Retry-After": "7"})
    h = make(sequence(limited, ok({"models": []})))
    assert h.client.list_models() == []
    assert h.time.delays == [7.0]
    assert len(h.requests) == 2


def test_retry_after_http_date_is_honoured(make: Callable[..., Harness]) -> None:
    when = email.utils.formatdate(time.time() + 40, usegmt=True)
    limited = httpx.Response(429, headers={"Retry-After": when})
    h = make(sequence(limited, ok({"models": []})))
    h.client.list_models()
    (delay,) = h.time.delays
    assert 30.0 < delay <= 41.0


def test_retry_after_on_a_503_is_honoured(make: Callable[..., Harness]) -> None:
    h = make(sequence(httpx.Response(503, headers={"Retry-After": "3"}), ok({"models": []})))
    h.client.list_models()
    assert h.time.delays == [3.0]


def test_a_429_without_usable_retry_after_backs_off(make: Callable[..., Harness]) -> None:
    h = make(
        sequence(
            httpx.Response(429),
            httpx.Response(429, headers={"Retry-After": "soon"}),
            ok({"models": []}),
        )
    )
    h.client.list_models()
    assert h.time.delays == [0.5, 1.0]


def test_a_retry_after_beyond_the_budget_gives_up_at_once(make: Callable[..., Harness]) -> None:
    h = make(lambda r: httpx.Response(429, headers={"Retry-After": "600"}))
    with pytest.raises(ApiError) as info:
        h.client.list_models()
    assert len(h.requests) == 1
    assert h.time.sleeps == []
    assert "rate-limiting" in str(info.value)
    assert "asked to wait 600 s" in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-1", None),
        ("nan", None),
        ("", None),
        (None, None),
        ("tomorrow", None),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(value, now) == expected


# -- create: never blindly repeated ----------------------------------------------------------------


CREATE_BODY = {"name": "EU", "modelUuid": MODEL, "filter": {"conjonction": "and", "groups": []}}


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(502),
        err(500, message="oops"),
        httpx.ReadTimeout("timed out"),
        httpx.WriteError("broken pipe"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.Response(200, content=b"not json"),
        ok({"segment": {"name": "EU"}}),
    ],
    ids=["502", "500", "read-timeout", "write-error", "dropped", "2xx-garbage", "2xx-no-uuid"],
)
def test_create_with_an_unknown_outcome_is_sent_once(
    make: Callable[..., Harness], failure: httpx.Response | Exception
) -> None:
    h = make(sequence(failure, ok({"segment": segment()})))
    with pytest.raises(CreateOutcomeUnknown) as info:
        h.client.create_segment(CREATE_BODY)
    assert len(h.requests) == 1
    assert h.time.sleeps == []
    assert isinstance(info.value, NetworkError)
    assert "creating segment 'EU': the outcome is unknown" in str(info.value)


def test_create_on_a_5xx_keeps_status_and_message(make: Callable[..., Harness]) -> None:
    h = make(lambda r: err(502, "upstream", "gateway"))
    with pytest.raises(CreateOutcomeUnknown) as info:
        h.client.create_segment(CREATE_BODY)
    assert (info.value.status, info.value.reason, info.value.error_message) == (
        502,
        "upstream",
        "gateway",
    )


def test_create_after_a_429_is_left_to_the_lost_create_check(
    make: Callable[..., Harness],
) -> None:
    limited = httpx.Response(429, headers={"Retry-After": "2"})
    h = make(sequence(limited, ok({"segments": []})))
    with pytest.raises(CreateOutcomeUnknown):
        h.client.create_segment(CREATE_BODY)
    assert len(h.requests) == 1
    # the wait Cargo asked for holds for the next request (the lost-create listing)
    assert h.client.list_segments(MODEL) == []
    assert h.time.delays == [2.0]


def test_create_is_retried_when_the_connection_never_opened(
    make: Callable[..., Harness],
) -> None:
    h = make(sequence(httpx.ConnectError("refused"), ok({"segment": segment()})))
    assert h.client.create_segment(CREATE_BODY)["uuid"] == SEG
    assert len(h.requests) == 2


def test_create_rejected_is_a_plain_api_error(make: Callable[..., Harness]) -> None:
    h = make(lambda r: err(400, "invalidFilter", "column 'contry' does not exist"))
    with pytest.raises(ApiError) as info:
        h.client.create_segment(CREATE_BODY)
    assert not isinstance(info.value, NetworkError)
    assert "column 'contry' does not exist" in str(info.value)
    assert len(h.requests) == 1


# -- delete ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gone",
    [err(409, "segmentAlreadyRemoved"), err(404, "segmentNotFound"), httpx.Response(404)],
    ids=["alreadyRemoved", "notFound", "bare-404"],
)
@pytest.mark.parametrize(
    "first", [httpx.Response(502), httpx.ReadTimeout("t")], ids=["502", "timeout"]
)
def test_delete_retry_that_finds_the_segment_gone_succeeds(
    make: Callable[..., Harness], first: httpx.Response | Exception, gone: httpx.Response
) -> None:
    h = make(sequence(first, gone))
    h.client.delete_segment(SEG)
    assert len(h.requests) == 2
    assert h.lines[-1].endswith("an earlier attempt already removed it")


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (err(404, "segmentNotFound"), "it was deleted outside segsync"),
        (err(409, "segmentAlreadyRemoved"), "already removed"),
        (err(409, "segmentLinkedToWorkflow"), "a Cargo workflow uses this segment"),
    ],
)
def test_delete_first_attempt_errors_are_reported(
    make: Callable[..., Harness], first: httpx.Response, expected: str
) -> None:
    h = make(lambda r: first)
    with pytest.raises(ApiError) as info:
        h.client.delete_segment(SEG)
    assert expected in str(info.value)
    assert info.value.reason == json.loads(first.content)["reason"]
    assert len(h.requests) == 1


def test_delete_after_a_429_does_not_count_gone_as_success(make: Callable[..., Harness]) -> None:
    # A 429 is a refusal: the segment was removed by someone else, which is worth reporting.
    h = make(sequence(httpx.Response(429), err(404, "segmentNotFound")))
    with pytest.raises(ApiError, match="deleted outside segsync"):
        h.client.delete_segment(SEG)
    assert len(h.requests) == 2


@pytest.mark.parametrize(
    "response",
    [httpx.Response(200, json={}), httpx.Response(204), httpx.Response(200, content=b"nope")],
)
def test_delete_accepts_any_2xx(make: Callable[..., Harness], response: httpx.Response) -> None:
    h = make(lambda r: response)
    h.client.delete_segment(SEG)
    assert len(h.requests) == 1
    assert h.lines[0].startswith(f"DELETE /segmentation/segments/{SEG} -> 2")


# -- shared backoff -------------------------------------------------------------------------------


def test_a_429_seen_by_one_thread_delays_the_next_request_of_all(
    make: Callable[..., Harness],
) -> None:
    limited = {"done": False}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(SEG) and not limited["done"]:
            limited["done"] = True
            return httpx.Response(429, headers={"Retry-After": "5"})
        return ok({"segment": segment(request.url.path.rsplit("/", 1)[1])})

    h = make(handler)

    def other_worker() -> None:
        worker = threading.Thread(target=h.client.get_segment, args=(SEG2,), name="B")
        worker.start()
        worker.join()

    # While A waits out its 429, worker B starts a request of its own.
    h.time.during_next_sleep = other_worker
    first = threading.Thread(target=h.client.get_segment, args=(SEG,), name="A")
    first.start()
    first.join()

    assert h.time.sleeps == [("A", 5.0), ("B", 5.0)]
    assert [r.url.path.rsplit("/", 1)[1] for r in h.requests] == [SEG, SEG2, SEG]

    # Once the retry time has passed, nobody waits any more.
    h.client.get_segment(SEG2)
    assert len(h.time.sleeps) == 2


def test_a_5xx_delays_only_the_thread_that_saw_it(make: Callable[..., Harness]) -> None:
    failed = {"done": False}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(SEG) and not failed["done"]:
            failed["done"] = True
            return httpx.Response(503)
        return ok({"segment": segment()})

    h = make(handler)

    def other_worker() -> None:
        worker = threading.Thread(target=h.client.get_segment, args=(SEG2,), name="B")
        worker.start()
        worker.join()

    h.time.during_next_sleep = other_worker
    first = threading.Thread(target=h.client.get_segment, args=(SEG,), name="A")
    first.start()
    first.join()
    assert h.time.sleeps == [("A", 0.5)]
    assert len(h.requests) == 3


def test_many_threads_share_one_client(make: Callable[..., Harness]) -> None:
    lock = threading.Lock()
    count = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            count["n"] += 1
            n = count["n"]
        if n % 7 == 0:
            return httpx.Response(503)
        return ok({"segment": segment()})

    h = make(handler)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        try:
            for _ in range(25):
                assert h.client.get_segment(SEG) is not None
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(h.requests) == 200 + len(h.time.sleeps)


# -- model resolution -----------------------------------------------------------------------------


DATASETS = [
    {"uuid": "d-crm", "slug": "crm", "deletedAt": None},
    {"uuid": "d-hub", "slug": "hubspot", "deletedAt": None},
    {"uuid": "d-old", "slug": "old", "deletedAt": "2024-01-01T00:00:00.000Z"},
]
MODELS = [
    {"uuid": MODEL, "slug": "companies", "datasetUuid": "d-crm", "deletedAt": None},
    {"uuid": "m-p1", "slug": "people", "datasetUuid": "d-crm", "deletedAt": None},
    {"uuid": "m-p2", "slug": "people", "datasetUuid": "d-hub", "deletedAt": None},
    {"uuid": "m-dead", "slug": "deals", "datasetUuid": "d-hub", "deletedAt": "2024-05-01"},
    {"uuid": "m-gone", "slug": "accounts", "datasetUuid": "d-old", "deletedAt": "2024-01-01"},
]


def catalog(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/datasets/list"):
        return ok({"datasets": DATASETS})
    return ok({"models": MODELS})


@pytest.mark.parametrize(
    ("ref", "uuid"),
    [
        ("companies", MODEL),
        ("crm.companies", MODEL),
        (MODEL, MODEL),
        (MODEL.upper(), MODEL),
        ("crm.people", "m-p1"),
        ("hubspot.people", "m-p2"),
    ],
)
def test_resolve_model(make: Callable[..., Harness], ref: str, uuid: str) -> None:
    h = make(catalog)
    assert h.catalog.resolve(ref)["uuid"] == uuid


def test_resolve_model_lists_once_per_client(make: Callable[..., Harness]) -> None:
    h = make(catalog)
    barrier = threading.Barrier(8)
    results: list[str] = []

    def work() -> None:
        barrier.wait()
        results.append(h.catalog.resolve("companies")["uuid"])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    h.catalog.resolve("crm.people")
    assert results == [MODEL] * 8
    assert sorted(h.paths) == ["GET /v1/storage/datasets/list", "GET /v1/storage/models/list"]


def test_an_ambiguous_bare_slug_names_the_choices(make: Callable[..., Harness]) -> None:
    h = make(catalog)
    with pytest.raises(ConfigError) as info:
        h.catalog.resolve("people")
    assert str(info.value) == (
        "model 'people' is ambiguous: several datasets have a model with this slug; "
        "write one of crm.people, hubspot.people"
    )


def test_an_unknown_model_suggests_the_closest(make: Callable[..., Harness]) -> None:
    h = make(catalog)
    with pytest.raises(ConfigError) as info:
        h.catalog.resolve("companeis")
    assert str(info.value) == (
        "unknown model 'companeis': did you mean 'companies'? "
        "Available models: companies, crm.people, hubspot.people"
    )
    with pytest.raises(ConfigError, match=r"did you mean 'hubspot\.people'"):
        h.catalog.resolve("hubspot.peple")
    with pytest.raises(ConfigError, match=r"^unknown model 'zzz'\. Available models: companies"):
        h.catalog.resolve("zzz")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("deals", "unknown model 'deals'"),
        ("hubspot.deals", "unknown model 'hubspot.deals'"),
        ("old.accounts", "unknown model 'old.accounts'"),
        ("m-dead", "unknown model 'm-dead'"),
    ],
)
def test_deleted_models_and_datasets_are_skipped(
    make: Callable[..., Harness], ref: str, message: str
) -> None:
    h = make(catalog)
    with pytest.raises(ConfigError, match=message) as info:
        h.catalog.resolve(ref)
    assert "deals" not in str(info.value).split("Available models:")[1]


def test_a_deleted_or_unknown_model_uuid_is_reported(make: Callable[..., Harness]) -> None:
    dead = "3e9b6f4d-5a7c-4dbe-8f4a-6b8c0d2e4f5a"
    models = [*MODELS, {"uuid": dead, "slug": "x", "datasetUuid": "d-crm", "deletedAt": "2024"}]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/datasets/list"):
            return ok({"datasets": DATASETS})
        return ok({"models": models})

    h = make(handler)
    with pytest.raises(ConfigError, match="was deleted in Cargo"):
        h.catalog.resolve(dead)
    with pytest.raises(ConfigError, match="does not exist in this workspace"):
        h.catalog.resolve(SEG)


def test_resolve_model_in_an_empty_workspace(make: Callable[..., Harness]) -> None:
    h = make(lambda r: ok({"datasets": [], "models": []}))
    with pytest.raises(ConfigError, match="this workspace has no models"):
        h.catalog.resolve("companies")


# -- debug log and the token ----------------------------------------------------------------------


def test_debug_log_has_one_line_per_attempt(make: Callable[..., Harness]) -> None:
    h = make(sequence(httpx.Response(503), httpx.ConnectError("refused"), ok({"segments": []})))
    h.client.list_segments(MODEL)
    assert len(h.lines) == 3
    prefix = f"GET /segmentation/segments/list?modelUuid={MODEL} -> "
    assert h.lines[0].startswith(prefix + "503 Service Unavailable in ")
    assert h.lines[0].endswith("(attempt 1/5); retrying in 0.50 s")
    assert h.lines[1].startswith(prefix + "ConnectError: refused in ")
    assert h.lines[1].endswith("(attempt 2/5); retrying in 1.00 s")
    assert h.lines[2].startswith(prefix + "200 OK in ")
    assert h.lines[2].endswith("(attempt 3/5)")


def test_redact() -> None:
    assert redact(f"a {TOKEN} b {TOKEN}", TOKEN) == "a *** b ***"
    assert redact("nothing here", TOKEN) == "nothing here"
    assert redact("text", "") == "text"
    assert redact("b'Bearer long\\\\token'", "long\\token") == "b'Bearer ***'"
    assert redact("q=long%2Ftoken", "long/token") == "q=***"
    # a token too short to be a secret is not masked: masking every "t" garbles everything
    assert redact("the text", "t") == "the text"


def test_the_token_never_appears_in_errors_or_logs(make: Callable[..., Harness]) -> None:
    """Every failure mode, including a server that echoes the token back, is redacted."""
    echo = f"token {TOKEN} is not valid"
    scenarios: list[tuple[Handler, Callable[[CargoClient], object]]] = [
        (lambda r: httpx.Response(401), lambda c: c.list_models()),
        (lambda r: err(401, TOKEN, echo), lambda c: c.list_models()),
        (lambda r: err(403, "forbidden", echo), lambda c: c.list_segments()),
        (lambda r: err(400, "invalidFilter", echo), lambda c: c.create_segment(CREATE_BODY)),
        (lambda r: err(502, TOKEN, echo), lambda c: c.create_segment(CREATE_BODY)),
        (lambda r: httpx.Response(400, content=echo.encode()), lambda c: c.delete_segment(SEG)),
        (lambda r: httpx.Response(503, content=echo.encode()), lambda c: c.get_model(MODEL)),
        (sequence(httpx.ReadError(echo)), lambda c: c.update_segment(SEG, {"name": "n"})),
        (sequence(httpx.ReadTimeout(echo)), lambda c: c.create_segment(CREATE_BODY)),
        (sequence(httpx.LocalProtocolError(echo)), lambda c: c.fetch_segment({})),
        (lambda r: httpx.Response(200, content=echo.encode()), lambda c: c.list_datasets()),
        (lambda r: ok({"datasets": [], "models": []}), lambda c: Catalog(c).resolve(TOKEN)),
        (lambda r: ok({"datasets": []}), lambda c: c.get_segment(TOKEN)),
    ]
    captured: list[str] = []
    for handler, call in scenarios:
        h = make(handler, max_attempts=2)
        with pytest.raises(SegsyncError) as info:
            call(h.client)
        exc = info.value
        captured += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        captured += [str(getattr(exc, a, "")) for a in ("reason", "error_message", "message")]
        captured += h.lines
        captured.append(repr(h.client))
        assert h.requests, "each scenario must reach the fake server"
        assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in h.requests)
    assert captured
    leaks = [text for text in captured if TOKEN in text]
    assert leaks == []
    assert any("***" in text for text in captured)


def test_prefetch_reads_workspace_and_catalog_once_in_the_background(
    make: Callable[..., Harness],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/workspaces/current"):
            return ok({"workspace": {"uuid": "w-1", "name": "Demo"}})
        return catalog(request)

    h = make(handler)
    h.catalog.start()
    assert h.catalog.workspace() == {"uuid": "w-1", "name": "Demo"}
    assert h.catalog.resolve("companies")["uuid"] == MODEL
    assert sorted(h.paths) == [
        "GET /v1/storage/datasets/list",
        "GET /v1/storage/models/list",
        "GET /v1/workspaceManagement/workspaces/current",
    ]
    # read once per run: asking again asks nobody
    assert h.catalog.workspace() == {"uuid": "w-1", "name": "Demo"}
    h.catalog.resolve("companies")
    assert len(h.paths) == 3


def test_prefetch_errors_surface_where_the_answer_is_used(make: Callable[..., Harness]) -> None:
    h = make(lambda request: err(401))
    h.catalog.start()
    with pytest.raises(ApiError) as info:
        h.catalog.workspace()
    assert info.value.status == 401
    with pytest.raises(ApiError):
        h.catalog.resolve("companies")
