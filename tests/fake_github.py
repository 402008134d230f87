"""A fake of the few GitHub REST API calls segsync makes for its pull-request comment.

A plain ``http.server`` on 127.0.0.1 (a free port, served from a thread) keeping issue comments
in memory:

- ``GET  /repos/{owner}/{repo}/issues/{n}/comments?per_page=&page=`` (pages linked by a
  ``Link: <…>; rel="next"`` header, as GitHub does);
- ``POST /repos/{owner}/{repo}/issues/{n}/comments``;
- ``PATCH /repos/{owner}/{repo}/issues/comments/{id}``.

Every request is recorded (method, path with query, headers, body) so that a test can check
the ``Authorization`` header. A request without ``Authorization: Bearer <token>`` gets 401;
with ``read_only`` set (a fork's pull request) writes get 403 and reads still work.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BOT = "github-actions[bot]"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Comment:
    id: int
    issue: int
    body: str
    login: str

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "body": self.body, "user": {"login": self.login, "type": "Bot"}}


@dataclass
class FakeGitHub:
    token: str
    repo: str = "acme/segments"
    #: The login a comment created with the token gets (the token's identity).
    login: str = BOT
    #: Answer 403 to every write, as GitHub does for a fork's read-only token.
    read_only: bool = False
    comments: list[Comment] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    _next_id: int = 1000
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def do_PATCH(self) -> None:
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- what tests set up and look at ----------------------------------------------------------

    def add_comment(self, issue: int, body: str, login: str) -> Comment:
        with self._lock:
            comment = Comment(self._next_id, issue, body, login)
            self._next_id += 1
            self.comments.append(comment)
            return comment

    def on_issue(self, issue: int) -> list[Comment]:
        return [c for c in self.comments if c.issue == issue]

    # --- serving --------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.requests.append(Request(handler.command, handler.path, headers, body))
        status, payload, extra = self._answer(handler.command, handler.path, headers, body)
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(
        self, method: str, target: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials"}, {}
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        prefix = f"/repos/{self.repo}/issues/"
        listed = re.fullmatch(re.escape(prefix) + r"(\d+)/comments", parts.path)
        edited = re.fullmatch(re.escape(prefix) + r"comments/(\d+)", parts.path)
        if method in ("POST", "PATCH") and self.read_only:
            return 403, {"message": "Resource not accessible by integration"}, {}
        if listed and method == "GET":
            return self._list(int(listed.group(1)), parts.path, query)
        if listed and method == "POST":
            if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                return 422, {"message": "body is required"}, {}
            if len(body["body"]) > 65_536:
                return 422, {"message": "body is too long (maximum is 65536 characters)"}, {}
            created = self.add_comment(int(listed.group(1)), body["body"], self.login)
            return 201, created.json(), {}
        if edited and method == "PATCH":
            if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                return 422, {"message": "body is required"}, {}
            if len(body["body"]) > 65_536:
                return 422, {"message": "body is too long (maximum is 65536 characters)"}, {}
            with self._lock:
                found = next((c for c in self.comments if c.id == int(edited.group(1))), None)
                if found is None:
                    return 404, {"message": "Not Found"}, {}
                if found.login != self.login:
                    return 403, {"message": "not the author of this comment"}, {}
                found.body = body["body"]
                return 200, found.json(), {}
        return 404, {"message": "Not Found"}, {}

    def _list(
        self, issue: int, path: str, query: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(query.get("per_page", "30")), 100)
        page = int(query.get("page", "1"))
        with self._lock:
            everything = [c.json() for c in self.comments if c.issue == issue]
        pages = max(1, -(-len(everything) // per_page))
        shown = everything[(page - 1) * per_page : page * per_page]
        links = []
        if page < pages:
            links.append(f'<{self.url}{path}?per_page={per_page}&page={page + 1}>; rel="next"')
            links.append(f'<{self.url}{path}?per_page={per_page}&page={pages}>; rel="last"')
        return 200, shown, {"Link": ", ".join(links)} if links else {}
