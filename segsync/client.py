"""HTTP client of the Cargo API: auth, retries with a shared backoff, and errors a user can act on.

Methods return the parsed payload as plain dicts (unknown fields are kept and never required) or
raise an ``ApiError`` subclass whose message says what to do next. The token travels only in the
``Authorization`` header; every message, log line and repr the client produces is passed through
``redact`` as a second line of defence.

Retry policy (Cargo publishes none): a 429 honours ``Retry-After`` (seconds or HTTP date), otherwise
exponential backoff with full jitter; 5xx and network errors are retried for GET, PUT, DELETE and
the preview POST. A create is sent again only when the connection was never established; any
other failure, a 429 included (Cargo publishes no contract for it), raises
``CreateOutcomeUnknown`` so the caller can reconcile before trying again.

``timeout`` bounds a whole attempt (connect, send, the complete answer), not each read: a server
dripping its answer fails the attempt at the deadline, as a timeout. ``notify`` gets a line before
each retry and every ``NOTIFY_EVERY`` s while an answer is awaited (redacted, like all else).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from segsync import __version__
from segsync.apierrors import error_fields, one_line, parse_retry_after, redact, scope_hint
from segsync.deadline import (
    NOTIFY_EVERY,
    Attempt,
    WatchedBody,
    current,
    guard_transport,
    running,
    secs,
)
from segsync.errors import ApiError, ConfigError, NetworkError
from segsync.types import Payload

DEFAULT_BASE_URL = "https://api.getcargo.io/v1"
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0

# Reasons that mean "this segment is gone"; after an uncertain delete attempt they mean success.
GONE_REASONS = frozenset({"segmentNotFound", "segmentAlreadyRemoved"})

# Printable ASCII without spaces: anything else cannot go into a header, and h11 would quote the
# offending header value (the token) in its error message.
_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")
# Transport errors raised before a single byte of the request left this machine.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Transport errors worth another attempt (a bad URL or a local protocol error is not).
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

__all__ = ["NOTIFY_EVERY", "CargoClient", "CreateOutcomeUnknown", "parse_retry_after", "redact"]


class CreateOutcomeUnknown(NetworkError):
    """A create was sent, but whether it happened is unknown (timeout, dropped connection, 5xx)."""


def _quote(uuid: str) -> str:
    return urllib.parse.quote(uuid, safe="")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class CargoClient:
    """Synchronous client of Cargo's v1 API, safe to share between threads."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        max_attempts: int = 5,
        max_retry_time: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        debug_log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        """``timeout`` bounds each attempt as a whole. ``notify`` gets progress lines for the
        user (stderr in the CLI), from the threads that make the requests."""
        token = token if token is not None else os.environ.get("CARGO_API_TOKEN", "")
        token = token.strip()
        if not token:
            raise ConfigError(
                "CARGO_API_TOKEN is not set: create a token in Cargo (Settings → API Tokens) "
                "and export it as CARGO_API_TOKEN"
            )
        if not _TOKEN_RE.match(token):
            raise ConfigError(
                "CARGO_API_TOKEN contains spaces, control or non-ASCII characters and cannot be "
                "sent; copy the token again from Cargo"
            )
        self._token = token
        url = (base_url or os.environ.get("CARGO_API_URL", "") or DEFAULT_BASE_URL).strip()
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(
                redact(
                    f"CARGO_API_URL must be an http(s) URL such as {DEFAULT_BASE_URL}, got {url!r}",
                    token,
                )
            )
        self.base_url = url.rstrip("/")
        # The base URL as messages show it: scheme, host, port and path, no credentials.
        self._shown_url = str(parsed.copy_with(userinfo=b"", query=None, fragment=None)).rstrip("/")
        if max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._max_retry_time = max_retry_time
        self._sleep = sleep
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._debug_log = debug_log
        self._notify = notify
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": f"segsync/{__version__} (+python-httpx/{httpx.__version__})",
            },
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )
        # The timeout bounds a whole attempt: socket waits end at the attempt's deadline.
        for mounted in (self._http._transport, *self._http._mounts.values()):
            guard_transport(mounted)
        # A 429 seen by any thread pushes this monotonic time forward; every request waits for it.
        self._gate_lock = threading.Lock()
        self._not_before = -math.inf

    def __repr__(self) -> str:
        return f"CargoClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CargoClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- endpoints ---------------------------------------------------------------------------

    def current_workspace(self) -> Payload:
        """``GET /workspaceManagement/workspaces/current`` → the workspace object."""
        action = "reading the current workspace"
        response = self._call("GET", "/workspaceManagement/workspaces/current", action)
        return self._object(self._json(response, action), "workspace", action)

    def list_datasets(self) -> list[Payload]:
        action = "listing datasets"
        response = self._call("GET", "/storage/datasets/list", action)
        return self._objects(self._json(response, action), "datasets", action)

    def list_models(self) -> list[Payload]:
        action = "listing models"
        response = self._call("GET", "/storage/models/list", action)
        return self._objects(self._json(response, action), "models", action)

    def get_model(self, uuid: str) -> Payload:
        action = f"reading model {uuid}"
        response = self._call("GET", f"/storage/models/{_quote(uuid)}", action)
        return self._object(self._json(response, action), "model", action)

    def list_segments(
        self,
        model_uuid: str | None = None,
        *,
        include_removed: bool = False,
        include_play: bool = False,
    ) -> list[Payload]:
        """Every segment (of one model), without removed and play-owned ones unless asked."""
        action = f"listing the segments of model {model_uuid}" if model_uuid else "listing segments"
        response = self._call(
            "GET", "/segmentation/segments/list", action, params={"modelUuid": model_uuid}
        )
        segments = self._objects(self._json(response, action), "segments", action)
        return [
            s
            for s in segments
            if (include_removed or s.get("deletedAt") is None)
            and (include_play or s.get("fromPlay") is not True)
        ]

    def get_segment(self, uuid: str) -> Payload | None:
        """The segment, or None when it is gone (404, ``segmentNotFound`` or ``deletedAt`` set)."""
        action = f"reading segment {uuid}"
        try:
            response = self._call("GET", f"/segmentation/segments/{_quote(uuid)}", action)
        except ApiError as exc:
            if not isinstance(exc, NetworkError) and (
                exc.status == 404 or exc.reason == "segmentNotFound"
            ):
                return None
            raise
        segment = self._object(self._json(response, action), "segment", action)
        return None if segment.get("deletedAt") is not None else segment

    def create_segment(self, body: Mapping[str, Any]) -> Payload:
        """``POST /segmentation/segments``; CreateOutcomeUnknown when it may have happened."""
        name = body.get("name")
        action = f"creating segment {name!r}" if isinstance(name, str) else "creating a segment"
        response = self._call(
            "POST", "/segmentation/segments", action, body=dict(body), create=True
        )
        try:
            segment = self._object(self._json(response, action), "segment", action)
            if not isinstance(segment.get("uuid"), str):
                raise ApiError(f"{action}: Cargo's answer has no segment uuid")
        except ApiError as exc:
            # A 2xx means the segment was most likely created, but without its uuid it cannot
            # be recorded: the caller has to reconcile, exactly as after a lost response.
            raise self._error(
                CreateOutcomeUnknown,
                f"{action}: the outcome is unknown ({exc.message}); the segment may exist in Cargo",
                status=response.status_code,
            ) from None
        return segment

    def update_segment(self, uuid: str, fields: Mapping[str, Any]) -> Payload:
        """``PUT /segmentation/segments/{uuid}`` with only the given fields (null clears)."""
        action = f"updating segment {uuid}"
        response = self._call(
            "PUT", f"/segmentation/segments/{_quote(uuid)}", action, body=dict(fields)
        )
        return self._object(self._json(response, action), "segment", action)

    def delete_segment(self, uuid: str) -> None:
        """``DELETE /segmentation/segments/{uuid}``; a retry that finds it gone is a success."""
        action = f"deleting segment {uuid}"
        self._call(
            "DELETE",
            f"/segmentation/segments/{_quote(uuid)}",
            action,
            body={},
            gone_ok_on_retry=True,
        )

    def fetch_segment(self, body: Mapping[str, Any]) -> Payload:
        """Preview POST: ``{records, count, columns, isRefreshing}`` for an unsaved filter."""
        action = "previewing a filter"
        response = self._call("POST", "/segmentation/segments/fetch", action, body=dict(body))
        return self._json(response, action)

    # -- transport, retries, errors ----------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        action: str,
        *,
        params: Mapping[str, str | None] | None = None,
        body: dict[str, Any] | None = None,
        create: bool = False,
        gone_ok_on_retry: bool = False,
    ) -> httpx.Response:
        """Send one logical request with retries; return a 2xx response or raise an ApiError.

        ``gone_ok_on_retry`` (delete): after an attempt that may have reached Cargo (5xx, lost
        answer), a "segment is gone" answer means that attempt worked, so it counts as success.
        """
        note = ""
        query = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        shown = path + ("?" + urllib.parse.urlencode(query) if query else "")
        started = self._clock()
        slept = 0.0
        maybe_done = False  # an earlier attempt may have reached the server
        attempt = 0
        while True:
            attempt += 1
            slept += self._wait_turn()
            t0 = time.perf_counter()
            watch = Attempt(self._clock, self._timeout, started, action, self._tell_or_none())
            try:
                response = self._send(method, path, query, body, watch)
            except httpx.TransportError as exc:
                elapsed_ms = (time.perf_counter() - t0) * 1000
                detail = self._describe(exc)
                sent = not isinstance(exc, _NOT_SENT)
                timed_out = isinstance(exc, httpx.TimeoutException)
                within = f" within {self._timeout:g} s"
                if isinstance(exc, httpx.ConnectTimeout) or not timed_out:
                    what = f"could not reach Cargo at {self._shown_url}" + within * timed_out
                elif watch.heard:
                    what = "Cargo's answer did not arrive in full" + within
                else:
                    what = "Cargo did not answer" + within
                if create and sent:
                    self._log(
                        f"{method} {shown} -> {detail} in {elapsed_ms:.0f} ms "
                        f"(attempt {attempt}/{self._max_attempts})"
                    )
                    raise self._error(
                        CreateOutcomeUnknown,
                        f"{action}: the outcome is unknown ("
                        + (f"{what}: {detail}" if timed_out else detail)
                        + "); the segment may exist in Cargo",
                    ) from None
                delay = self._backoff(attempt)
                # After a timeout, another attempt may take the whole timeout again: it is made
                # only if it can end within the retry budget (a silent server fails in time).
                wait = delay + (self._timeout if isinstance(exc, httpx.TimeoutException) else 0)
                retry = isinstance(exc, _TRANSIENT) and self._may_retry(
                    attempt, started, slept, wait
                )
                self._log(
                    f"{method} {shown} -> {detail} in {elapsed_ms:.0f} ms "
                    f"(attempt {attempt}/{self._max_attempts})"
                    + (f"; retrying in {delay:.2f} s" if retry else "")
                )
                if not retry:
                    raise self._error(
                        NetworkError,
                        f"{action} failed: {what} ({detail}); check CARGO_API_URL and the "
                        "network" + self._gave_up(attempt),
                    ) from None
                if isinstance(exc, httpx.ConnectTimeout):
                    waited = "waiting for Cargo: could not connect" + within
                elif timed_out:
                    answer = "no complete answer in" if watch.heard else "no answer for"
                    waited = f"waiting for Cargo: {answer} {self._timeout:g} s"
                else:
                    waited = f"could not reach Cargo ({detail}): waiting {secs(delay)} s"
                self._tell(f"{waited}, {self._retry_no(attempt)} ({action})")
                maybe_done = maybe_done or sent
                self._sleep(delay)
                slept += delay
                continue

            elapsed_ms = (time.perf_counter() - t0) * 1000
            status = response.status_code
            line = (
                f"{method} {shown} -> {status} {response.reason_phrase} in {elapsed_ms:.0f} ms "
                f"(attempt {attempt}/{self._max_attempts})"
            )
            if 200 <= status < 300:
                self._log(line)
                return response
            reason, _, _ = error_fields(response)
            if gone_ok_on_retry and maybe_done and (reason in GONE_REASONS or status == 404):
                self._log(line + "; an earlier attempt already removed it")
                return httpx.Response(200, request=response.request)
            if status == 429 or status >= 500:
                now = time.time()
                asked = parse_retry_after(response.headers.get("Retry-After"), now)
                delay = self._backoff(attempt) if asked is None else asked
                if create:
                    # A create is sent again only after the lost-create check,
                    # even after a 429 (Cargo publishes no contract for it). The wait it asked
                    # for still applies to every thread's next request, that check included.
                    if status == 429:
                        self._slow_down_all(delay)
                        self._tell(
                            f"Cargo is rate-limiting (429): waiting {secs(delay)} s before the "
                            f"next request ({action})"
                        )
                    self._log(line)
                    raise self._http_error(
                        response, method, path, action, attempt, cls=CreateOutcomeUnknown
                    )
                if not self._may_retry(attempt, started, slept, delay):
                    if asked is not None and asked > self._max_retry_time:
                        note = f" (it asked to wait {asked:g} s, more than the retry budget)"
                    self._log(line)
                    raise self._http_error(response, method, path, action, attempt, note=note)
                self._log(line + f"; retrying in {delay:.2f} s")
                trouble = "is rate-limiting" if status == 429 else "had a server error"
                self._tell(
                    f"Cargo {trouble} ({status}): waiting {secs(delay)} s, "
                    f"{self._retry_no(attempt)} ({action})"
                )
                if status == 429:
                    # Shared: the next request of every thread waits for it (in _wait_turn).
                    self._slow_down_all(delay)
                else:
                    maybe_done = True
                    self._sleep(delay)
                    slept += delay
                continue
            self._log(line)
            raise self._http_error(response, method, path, action, attempt)

    def _send(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: dict[str, Any] | None,
        watch: Attempt,
    ) -> httpx.Response:
        """One attempt: the request and its complete answer, within ``watch``'s deadline."""
        request = self._http.build_request(
            method, path, params=query or None, json=body if method != "GET" else None
        )
        outer = running()
        current.attempt = watch
        try:
            response = self._http.send(request, stream=True)
            try:
                if isinstance(response.stream, httpx.SyncByteStream):
                    response.stream = WatchedBody(response.stream, watch, request)
                response.read()
            finally:
                response.close()
        finally:
            current.attempt = outer
        return response

    def _retry_no(self, attempt: int) -> str:
        return f"retry {attempt} of {self._max_attempts - 1}"

    def _tell_or_none(self) -> Callable[[str], None] | None:
        return None if self._notify is None else self._tell

    def _tell(self, line: str) -> None:
        """Hand a progress line to ``notify``; a failing ``notify`` never fails a request."""
        if self._notify is None:
            return
        try:
            self._notify(redact(line, self._token))
        except Exception as exc:
            self._log(f"notify failed: {type(exc).__name__}: {one_line(str(exc))}")

    def _wait_turn(self) -> float:
        with self._gate_lock:
            wait = self._not_before - self._clock()
        if wait > 0:
            self._sleep(wait)
            return wait
        return 0.0

    def _slow_down_all(self, delay: float) -> None:
        with self._gate_lock:
            self._not_before = max(self._not_before, self._clock() + delay)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base · 2^(attempt-1)))."""
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (attempt - 1))
        return ceiling * self._rng.random()

    def _may_retry(self, attempt: int, started: float, slept: float, delay: float) -> bool:
        # The sum of requested sleeps also counts, so an injected sleep that returns at once
        # still exhausts the time budget.
        elapsed = max(self._clock() - started, slept)
        return attempt < self._max_attempts and elapsed + delay <= self._max_retry_time

    def _gave_up(self, attempt: int) -> str:
        return f" (gave up after {_plural(attempt, 'attempt')})" if attempt > 1 else ""

    def _describe(self, exc: httpx.TransportError) -> str:
        text = one_line(str(exc))
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    def scrub(self, text: str) -> str:
        """``text`` with every form of the token replaced by ``***``."""
        return redact(text, self._token)

    def _log(self, line: str) -> None:
        if self._debug_log is not None:
            self._debug_log(redact(line, self._token))

    def _error(
        self,
        cls: type[ApiError],
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        error_message: str | None = None,
    ) -> ApiError:
        def clean(value: str | None) -> str | None:
            return None if value is None else redact(value, self._token)

        return cls(
            redact(message, self._token),
            status=status,
            reason=clean(reason),
            error_message=clean(error_message),
        )

    def _http_error(
        self,
        response: httpx.Response,
        method: str,
        path: str,
        action: str,
        attempts: int,
        *,
        cls: type[ApiError] = ApiError,
        note: str = "",
    ) -> ApiError:
        status = response.status_code
        phrase = response.reason_phrase
        reason, said, excerpt = error_fields(response)
        code = f"{status} {reason}" if reason else f"{status} {phrase}".strip()
        details = f": {said}" if said else (f": {excerpt}" if excerpt else "")
        lowered = (said or "").lower()
        if cls is CreateOutcomeUnknown:
            message = (
                f"{action}: the outcome is unknown (Cargo answered {code} after the request was "
                f"sent{details}); the segment may exist in Cargo"
            )
        elif status == 401:
            message = (
                "Cargo refused the token (401): check CARGO_API_TOKEN and that it belongs to "
                "this workspace"
            )
        elif status == 403:
            message = (
                f"{action} was refused ({code}{details}): the token probably lacks "
                f"{scope_hint(method, path)}; ask a workspace admin for a token that has it"
            )
        elif reason == "segmentLinkedToWorkflow":
            message = (
                f"{action} failed: a Cargo workflow uses this segment ({reason}); unlink it "
                "from the workflow in Cargo, then apply again"
            )
        elif reason == "segmentNotFound":
            message = (
                f"{action} failed: the segment is not in Cargo ({code}): it was deleted outside "
                "segsync; `segsync plan --refresh` shows it as a recreate"
            )
        elif reason == "segmentAlreadyRemoved":
            message = f"{action} failed: the segment was already removed in Cargo ({code})"
        elif reason == "invalidFilter":
            message = f"{action} failed: Cargo rejected the filter ({code}){details}"
        elif "forbidden" in lowered or "unauthorized" in lowered:
            message = (
                f"{action} was refused ({code}{details}): the token probably lacks "
                f"{scope_hint(method, path)}; ask a workspace admin for a token that has it"
            )
        elif reason in ("modelNotFound", "datasetNotFound"):
            message = (
                f"{action} failed: Cargo does not know this model ({code}){details}; check the "
                "spec's model or modelUuid"
            )
        elif status == 429:
            message = (
                f"{action} failed: Cargo is rate-limiting requests ({code}){details}; try again "
                "later or lower --parallelism"
            )
        elif status >= 500:
            message = (
                f"{action} failed: Cargo had a server error ({code}){details}; try again later"
            )
        elif 300 <= status < 400 or (status == 404 and reason is None and said is None):
            message = f"{action} failed: Cargo answered {code}{details}; is CARGO_API_URL right?"
        else:
            message = f"{action} failed: Cargo answered {code}{details}"
        if cls is not CreateOutcomeUnknown:
            message += note + self._gave_up(attempts)
        return self._error(cls, message, status=status, reason=reason, error_message=said)

    def _json(self, response: httpx.Response, action: str) -> Payload:
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self._error(
                ApiError,
                f"{action} failed: Cargo answered {response.status_code} without the expected "
                "JSON object",
                status=response.status_code,
            )
        return data

    def _object(self, data: Payload, key: str, action: str) -> Payload:
        value = data.get(key)
        if not isinstance(value, dict):
            raise self._error(ApiError, f"{action} failed: Cargo's answer has no '{key}' object")
        return value

    def _objects(self, data: Payload, key: str, action: str) -> list[Payload]:
        value = data.get(key)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self._error(ApiError, f"{action} failed: Cargo's answer has no '{key}' list")
        return value
