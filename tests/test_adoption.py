"""Adoption, duplicates and the state's UUID check, end to end: the command line run in this
process (click's CliRunner) in the test's folder against the emulator over HTTP; one test kills
a real `python -m segsync apply` subprocess whose create a loopback proxy holds back.

- A create whose model and name match exactly one live unmanaged segment with the same managed
  fields is an ``adopt``: no request, the state records it. Other fields: that action fails
  with the UUID, the differences and the `segsync import --uuid … --id …` hint.
- Live unmanaged namesakes of managed segments are duplicates: listed by `plan --refresh` and
  `apply`, which fails while any exist; `apply --delete-duplicates` deletes those with equal
  fields.
- The state file is checked on read: each segment UUID valid and held by one entry.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from segsync.emulator.server import Emulator
from segsync.state import read_state
from tests.helpers import Calls, process_against, record_calls, run_against, spec_text, write_spec

TOKEN = "adopt-Secret-Token-91d4b7"
STATE = "segsync.state.json"
SPECS = 50



def segsync(emu: Emulator, *args: str) -> Result:
    """Run the command line in the current folder; the token must not leak."""
    return run_against(emu, TOKEN, *args)


def record(emu: Emulator) -> Calls:
    """The creates, updates and deletes that reach the emulator's store."""
    return record_calls(emu, lists=False)


NO_WRITES: Calls = {"create": [], "update": [], "delete": []}


def live_by_name(emu: Emulator) -> dict[str, list[str]]:
    """Name -> UUIDs of the live segments that plays do not own."""
    names: dict[str, list[str]] = {}
    for segment in emu.store.raw_segments():
        if segment["deletedAt"] is None and not segment["fromPlay"]:
            names.setdefault(segment["name"], []).append(segment["uuid"])
    return names


def state_uuids(folder: Path) -> dict[str, str | None]:
    return {k: e.uuid for k, e in read_state(folder / STATE).segments.items()}


def segsync_process(emu: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m segsync ARGS`` as a real process in the current folder."""
    return process_against(emu, TOKEN, *args)


def bulk_spec(i: int, limit: int | None = None) -> str:
    """Spec ``bulk/s{i:03d}``: every tenth from 5 on references the one five before it."""
    ref = f"bulk/s{i - 5:03d}" if i % 10 == 5 else None
    return spec_text(
        f"Bulk {i:03d}",
        countries=("FR", "DE"),
        conditions=[f"{{kind: number, columnSlug: employee_count, operator: greaterThan, "
                    f"value: {i}}}"],
        ref=ref,
        limit=100 + i if limit is None else limit,
    )


def write_bulk(folder: Path, count: int = SPECS, start: int = 0) -> None:
    for i in range(start, start + count):
        write_spec(folder / "segments", f"bulk/s{i:03d}.yaml", bulk_spec(i))


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command runs in the test's own folder."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def emu(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory(token=TOKEN, fixtures=False)


# --- 4. a lost state file: every segment adopted ------------------------------------------------


def apply_then_lose_the_state(tmp_path: Path, emu: Emulator) -> dict[str, str | None]:
    write_bulk(tmp_path)
    first = segsync(emu, "apply", "--auto-approve", "--parallelism", "8")
    assert first.exit_code == 0, first.stderr
    uuids = state_uuids(tmp_path)
    assert len(uuids) == SPECS
    (tmp_path / STATE).unlink()
    return uuids


def test_a_lost_state_is_rebuilt_by_adopting_every_segment(
    tmp_path: Path, emu: Emulator
) -> None:
    uuids = apply_then_lose_the_state(tmp_path, emu)
    calls = record(emu)

    plan = segsync(emu, "plan", "--refresh", "--format", "json")
    assert plan.exit_code == 0, plan.stderr
    data = json.loads(plan.stdout)
    assert {a["id"]: (a["action"], a["uuid"], a["changes"]) for a in data["actions"]} == {
        sid: ("adopt", uuid, []) for sid, uuid in uuids.items()
    }
    assert data["summary"]["adopt"] == SPECS and sum(data["summary"].values()) == SPECS
    assert "duplicates" not in data or data["duplicates"] == []

    proc = segsync(emu, "apply", "--auto-approve", "--parallelism", "8")
    assert proc.exit_code == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"Plan: 0 to create, {SPECS} to adopt, 0 to update, 0 to replace, 0 to delete, " \
           "0 unchanged." in lines
    adopted = sorted(line for line in lines if line.startswith("= ") and " adopted " in line)
    assert len(adopted) == SPECS
    for line, (sid, uuid) in zip(adopted, sorted(uuids.items()), strict=True):
        assert line.startswith(f"= {sid} adopted (") and line.endswith(
            f") uuid {uuid}; found in Cargo with the same name and fields; no request sent"
        ), line
    assert lines[-1] == f"Apply complete: 0 created, 0 updated, 0 replaced, 0 deleted, " \
                        f"{SPECS} adopted."
    assert calls == NO_WRITES  # not one create, update or delete

    state = read_state(tmp_path / STATE)
    assert {k: e.uuid for k, e in state.segments.items()} == uuids
    assert all(e.intent is None for e in state.segments.values())
    assert state.segments["bulk/s015"].refs == {"bulk/s010": uuids["bulk/s010"]}
    assert state.workspace_uuid == emu.catalog.workspace_uuid
    for args in (("plan", "--detailed-exitcode"), ("plan", "--refresh", "--detailed-exitcode")):
        plan = segsync(emu, *args)
        assert (plan.exit_code, plan.stdout) == (0, f"No changes. {SPECS} segments up to date.\n")
    assert calls == NO_WRITES
    assert all(len(u) == 1 for u in live_by_name(emu).values())


def test_a_namesake_with_other_fields_is_never_adopted_nor_duplicated(
    tmp_path: Path, emu: Emulator
) -> None:
    uuids = apply_then_lose_the_state(tmp_path, emu)
    changed = str(uuids["bulk/s017"])  # no spec references it
    emu.store.update(changed, {"limit": 999})
    calls = record(emu)

    proc = segsync(emu, "apply", "--auto-approve")
    assert proc.exit_code == 1
    lines = proc.stdout.splitlines()
    adopted = [line for line in lines if line.startswith("= ") and " adopted " in line]
    assert len(adopted) == SPECS - 1
    assert not any(line.startswith("= bulk/s017 ") for line in adopted)
    failed = [line for line in lines if line.startswith("! ")]
    assert len(failed) == 1
    assert failed[0].startswith("! bulk/s017 failed (")
    why = (
        f"Cargo already has a segment named 'Bulk 017' on model companies that segsync does "
        f"not manage ({changed}, created "
    )
    hint = (
        "), with other fields (limit: 999 -> 117); to manage that segment, run "
        f"`segsync import --uuid {changed} --id bulk/s017` (the next apply then updates it), "
        "or give the spec another name"
    )
    assert why in failed[0] and failed[0].endswith(hint)
    assert lines[-1] == (
        f"Apply incomplete: 0 created, 0 updated, 0 replaced, 0 deleted, {SPECS - 1} adopted; "
        "1 failed."
    )
    errors = proc.stderr.splitlines()
    assert errors[0].startswith(f"error: bulk/s017: {why}") and errors[0].endswith(hint)
    assert errors[-1] == "error: 1 action failed"
    assert calls == NO_WRITES  # above all, no second "Bulk 017"
    names = live_by_name(emu)
    assert len(names) == SPECS and all(len(u) == 1 for u in names.values())
    recorded = state_uuids(tmp_path)
    assert recorded == {k: v for k, v in uuids.items() if k != "bulk/s017"}

    # Following the hint: the spec takes the segment over, and the next apply updates it.
    bind = segsync(emu, "import", "--uuid", changed, "--id", "bulk/s017")
    assert bind.exit_code == 0, bind.stderr
    plan = segsync(emu, "plan", "--format", "json")
    assert [(a["id"], a["action"], a["changes"]) for a in json.loads(plan.stdout)["actions"]] == [
        ("bulk/s017", "update", [{"field": "limit", "new": 117, "old": 999}])
    ]
    proc = segsync(emu, "apply", "--auto-approve")
    assert proc.exit_code == 0, proc.stderr
    assert calls == {"create": [], "update": [(changed, {"limit": 117})], "delete": []}
    assert state_uuids(tmp_path) == uuids
    plan = segsync(emu, "plan", "--refresh", "--detailed-exitcode")
    assert (plan.exit_code, plan.stdout) == (0, f"No changes. {SPECS} segments up to date.\n")


def test_several_namesakes_or_a_play_namesake_block_the_create(
    tmp_path: Path, emu: Emulator
) -> None:
    companies = next(m["uuid"] for m in emu.catalog.models if m["slug"] == "companies")
    twin = {
        "modelUuid": companies, "name": "Twin",
        "filter": {"conjonction": "and", "groups": [{"conjonction": "and", "conditions": [
            {"kind": "string", "columnSlug": "country", "operator": "is", "values": ["FR"]},
        ]}]},
    }
    older = emu.store.create(twin)["uuid"]
    newer = emu.store.create(twin)["uuid"]
    write_spec(tmp_path / "segments", "twin.yaml", spec_text("Twin"))
    calls = record(emu)

    proc = segsync(emu, "apply", "--auto-approve")
    assert proc.exit_code == 1
    assert calls == NO_WRITES
    error = proc.stderr.splitlines()[0]
    assert error.startswith("error: twin: Cargo already has 2 segments named 'Twin' on model "
                            "companies that segsync does not manage (")
    assert older in error and newer in error
    assert "`segsync import --uuid UUID --id twin`" in error
    assert live_by_name(emu)["Twin"] == [older, newer]
    assert state_uuids(tmp_path) == {}  # (a missing state file reads as empty)

    # A play's segment with the spec's very name and fields is never adopted either. (A spec
    # cannot take the emulator's fixture play segment's name, and no API call makes a play
    # segment: one is marked play-owned in the store here.)
    (tmp_path / "segments" / "twin.yaml").unlink()
    opps = emu.store.create(dict(twin, name="Opportunities"))["uuid"]
    emu.store._segments[opps].data["fromPlay"] = True
    calls["create"].clear()  # that create was this test's own
    write_spec(tmp_path / "segments", "opps.yaml", spec_text("Opportunities"))
    proc = segsync(emu, "apply", "--auto-approve")
    assert proc.exit_code == 1
    assert calls == NO_WRITES
    assert proc.stderr.splitlines()[0] == (
        "error: opps: a segment owned by a play has the name 'Opportunities' on model "
        f"companies ({opps}); segsync never touches play segments: give the spec another name"
    )
    assert state_uuids(tmp_path) == {}
    assert live_by_name(emu)["Twin"] == [older, newer]


# --- 5. two working copies, one after the other -------------------------------------------------


def test_two_working_copies_applying_in_turn_make_no_duplicate(
    tmp_path: Path, emu: Emulator
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    write_bulk(one, count=10)
    os.chdir(one)
    first = segsync(emu, "apply", "--auto-approve")
    assert first.exit_code == 0, first.stderr
    shutil.copytree(one, two)  # the same specs and the same (old) state file
    for copy in (one, two):  # the same change in both: 5 new specs and one edited
        write_bulk(copy, count=5, start=10)
        write_spec(copy / "segments", "bulk/s003.yaml", bulk_spec(3, limit=42))
    calls = record(emu)

    proc = segsync(emu, "apply", "--auto-approve")
    assert proc.exit_code == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == (
        "Apply complete: 5 created, 1 updated, 0 replaced, 0 deleted."
    )
    assert len(calls["create"]) == 5 and len(calls["update"]) == 1

    os.chdir(two)  # its state is still the old one: it knows none of the 5 new segments
    proc = segsync(emu, "apply", "--auto-approve")
    assert proc.exit_code == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "Apply complete: 0 created, 1 updated, 0 replaced, 0 deleted, 5 adopted."
    assert sum(" adopted (" in line for line in lines) == 5
    assert any(line.startswith("~ bulk/s003 updated (") and line.endswith("; no request needed")
               for line in lines)
    # Not one request from the second copy: no create, and no update (Cargo has it already).
    assert len(calls["create"]) == 5 and len(calls["update"]) == 1 and calls["delete"] == []

    names = live_by_name(emu)
    assert sorted(names) == [f"Bulk {i:03d}" for i in range(15)]
    assert all(len(uuids) == 1 for uuids in names.values()), names
    assert state_uuids(one) == state_uuids(two)
    assert set(state_uuids(one).values()) == {u[0] for u in names.values()}
    for copy in (one, two):
        os.chdir(copy)
        plan = segsync(emu, "plan", "--refresh", "--detailed-exitcode")
        assert (plan.exit_code, plan.stdout) == (0, "No changes. 15 segments up to date.\n")


# --- 6. a create that commits late, after a killed run ------------------------------------------


class HoldingProxy:
    """An HTTP relay on 127.0.0.1 in front of the emulator: forwards each request as it comes,
    except the first create (``POST /v1/segmentation/segments``), which it holds until
    :meth:`release`, then forwards. One thread per connection, at most MAX_CONNECTIONS."""

    CREATE = "/v1/segmentation/segments"
    MAX_CONNECTIONS = 16
    _HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length",
                      "proxy-connection", "te", "upgrade"})

    def __init__(self, upstream: Emulator) -> None:
        self.upstream = (upstream.host, upstream.port)
        self.held = threading.Event()
        self.forwarded = threading.Event()
        self.held_body: dict[str, Any] | None = None
        self.held_answer: tuple[int, bytes] | None = None
        self._release = threading.Event()
        self._taken = False
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.MAX_CONNECTIONS)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._relay(self)

            do_POST = do_PUT = do_DELETE = do_GET

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                if not proxy._slots.acquire(blocking=False):
                    self.shutdown_request(request)  # over the bound: refused
                    return
                super().process_request(request, client_address)

            def process_request_thread(self, request: Any, client_address: Any) -> None:
                try:
                    super().process_request_thread(request, client_address)
                finally:
                    proxy._slots.release()

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client killed mid-request is expected here

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> HoldingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._thread.join(10)
        self._server.server_close()

    def release(self) -> None:
        self._release.set()

    def _relay(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        hold = False
        if handler.command == "POST" and handler.path == self.CREATE:
            with self._lock:
                hold, self._taken = not self._taken, True
        if hold:
            self.held_body = json.loads(body or b"null")
            self.held.set()
            if not self._release.wait(60):
                handler.close_connection = True
                return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in self._HOP}
        upstream = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            answer = upstream.getresponse()
            status, data = answer.status, answer.read()
            content_type = answer.getheader("Content-Type")
            retry_after = answer.getheader("Retry-After")
        finally:
            upstream.close()
        if hold:
            self.held_answer = (status, data)
            self.forwarded.set()
        try:
            handler.send_response(status)
            if content_type:
                handler.send_header("Content-Type", content_type)
            if retry_after:
                handler.send_header("Retry-After", retry_after)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            handler.wfile.flush()
        except OSError:  # the client is gone (killed): its answer is lost
            handler.close_connection = True


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def intents(state_path: Path) -> dict[str, Any]:
    """Spec id -> intent, as on disk: the state file with the journal of the apply under way."""
    segments = read_state(state_path).segments
    return {k: e.intent.model_dump() for k, e in segments.items() if e.intent is not None}


def test_a_create_committed_after_the_next_run_is_found_and_deleted_as_a_duplicate(
    tmp_path: Path, emu: Emulator
) -> None:
    write_bulk(tmp_path, count=3)
    state_path = tmp_path / STATE
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CARGO_", "SEGSYNC_")) and "proxy" not in k.lower()}
    with HoldingProxy(emu) as proxy:
        env.update({"CARGO_API_URL": proxy.url, "CARGO_API_TOKEN": TOKEN, "NO_COLOR": "1"})
        run = subprocess.Popen(
            [sys.executable, "-m", "segsync", "apply", "--auto-approve", "--parallelism", "1"],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        try:
            assert proxy.held.wait(60), "the first create never reached the proxy"
            held = proxy.held_body
            assert held is not None
            # parallelism 1 and no dependency among s000-s002: the first create is s000's.
            assert held["name"] == "Bulk 000"
            wait_for(lambda: "bulk/s000" in intents(state_path), 10, "the create's intent")
            run.send_signal(signal.SIGKILL)
            out, err = run.communicate(timeout=30)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate(timeout=30)
        assert run.returncode == -signal.SIGKILL, (out, err)
        assert live_by_name(emu) == {}  # the held create has not reached Cargo

        unlock = segsync(emu, "state", "unlock", "--yes")
        assert unlock.exit_code == 0, unlock.stderr
        calls = record(emu)
        second = segsync(emu, "apply", "--auto-approve")  # straight to the emulator
        assert second.exit_code == 0, second.stderr
        assert second.stdout.splitlines()[-1] == (
            "Apply complete: 3 created, 0 updated, 0 replaced, 0 deleted."
        )
        assert len(calls["create"]) == 3
        kept = state_uuids(tmp_path)

        proxy.release()  # the killed run's create commits now, after the second run
        assert proxy.forwarded.wait(30)
    assert proxy.held_answer is not None and proxy.held_answer[0] == 200
    late = json.loads(proxy.held_answer[1])["segment"]["uuid"]
    assert live_by_name(emu)["Bulk 000"] == [kept["bulk/s000"], late]
    assert len(calls["create"]) == 4 and calls["create"][3] == held  # the late one

    plan = segsync(emu, "plan", "--refresh")
    assert plan.exit_code == 0, plan.stderr
    lines = plan.stdout.splitlines()
    assert lines[0].startswith("Duplicates in Cargo, not managed by segsync")
    assert any(line.strip().startswith(f"{late} created ") and
               line.endswith("a duplicate of bulk/s000 (same fields)") for line in lines)
    assert lines[-1] == "No changes. 3 segments up to date. 1 duplicate segment in Cargo."

    refused = segsync(emu, "apply", "--auto-approve")
    assert refused.exit_code == 1
    assert late in refused.stdout and "Duplicates in Cargo" in refused.stdout
    assert refused.stderr == (
        "error: 1 duplicate segment in Cargo (listed above): segsync manages one segment of "
        "each name; delete the extra ones in Cargo, or run `segsync apply --delete-duplicates` "
        "to delete those with the managed segment's fields\n"
    )
    assert calls["delete"] == [] and len(calls["create"]) == 4 and calls["update"] == []

    dedupe = segsync(emu, "apply", "--auto-approve", "--delete-duplicates")
    assert dedupe.exit_code == 0, dedupe.stderr
    assert calls["delete"] == [late]
    assert any(line.startswith("- bulk/s000 deleted (") and
               line.endswith(f"uuid {late}; a duplicate of bulk/s000")
               for line in dedupe.stdout.splitlines())
    names = live_by_name(emu)
    assert names == {f"Bulk {i:03d}": [kept[f"bulk/s{i:03d}"]] for i in range(3)}
    assert state_uuids(tmp_path) == kept

    final = segsync(emu, "apply", "--auto-approve")
    assert final.exit_code == 0, final.stderr
    assert final.stdout.splitlines()[1:] == ["No changes. 3 segments up to date."]
    assert len(calls["create"]) == 4 and calls["delete"] == [late] and calls["update"] == []


def test_delete_duplicates_leaves_those_with_other_fields(tmp_path: Path, emu: Emulator) -> None:
    write_bulk(tmp_path, count=2)
    assert segsync(emu, "apply", "--auto-approve").exit_code == 0
    uuids = state_uuids(tmp_path)
    companies = next(m["uuid"] for m in emu.catalog.models if m["slug"] == "companies")
    same = emu.store.get(str(uuids["bulk/s000"]))
    twin = emu.store.create({"modelUuid": companies, "name": same["name"],
                             "filter": same["filter"], "limit": same["limit"]})["uuid"]
    other = emu.store.get(str(uuids["bulk/s001"]))
    differs = emu.store.create({"modelUuid": companies, "name": other["name"],
                                "filter": other["filter"], "limit": 5})["uuid"]
    calls = record(emu)

    proc = segsync(emu, "apply", "--auto-approve", "--delete-duplicates")
    assert proc.exit_code == 1
    assert calls == {"create": [], "update": [], "delete": [twin]}
    assert any(line.strip().startswith(f"{differs} created ") and
               "a duplicate of bulk/s001 (other fields)" in line
               for line in proc.stdout.splitlines())
    assert proc.stderr.startswith("error: 1 duplicate segment in Cargo (listed above)")
    assert live_by_name(emu) == {"Bulk 000": [uuids["bulk/s000"]],
                                 "Bulk 001": [uuids["bulk/s001"], differs]}


# --- 7. the state's segment UUIDs are checked on read ---------------------------------------


def corrupt(kind: str, segments: dict[str, Any]) -> tuple[str, str]:
    """Spoil a state's entries in one of three ways; the two entries the error must name."""
    if kind == "same uuid":
        segments["bulk/s002"]["uuid"] = segments["bulk/s000"]["uuid"]
        return "'bulk/s000' (uuid)", "'bulk/s002' (uuid)"
    if kind == "pendingDelete":
        segments["bulk/s001"]["pendingDelete"] = segments["bulk/s000"]["uuid"]
        return "'bulk/s000' (uuid)", "'bulk/s001' (pendingDelete)"
    segments["bulk/s001"]["uuid"] = "seg-0001"
    return "'seg-0001'", "'bulk/s001' (uuid)"


@pytest.mark.parametrize("kind", ["same uuid", "pendingDelete", "not a uuid"])
def test_a_state_with_a_shared_or_invalid_uuid_is_refused_untouched(
    tmp_path: Path, emu: Emulator, kind: str
) -> None:
    write_bulk(tmp_path, count=3)
    assert segsync(emu, "apply", "--auto-approve").exit_code == 0
    state_path = tmp_path / STATE
    data = json.loads(state_path.read_text(encoding="utf-8"))
    first, second = corrupt(kind, data["segments"])
    spoiled = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
    state_path.write_bytes(spoiled)
    before = os.stat(state_path).st_mtime_ns
    calls = record(emu)

    runs: list[tuple[tuple[str, ...], int, str, str]] = []
    for args in (("plan",), ("state", "list"), ("state", "list", "--format", "json")):
        result = segsync(emu, *args)
        runs.append((args, result.exit_code, result.stdout, result.stderr))
    proc = segsync_process(emu, "apply", "--auto-approve")  # it reads Cargo before the state
    runs.append((("apply", "--auto-approve"), proc.returncode, proc.stdout, proc.stderr))
    for args, code, out, err in runs:
        assert (code, out) == (1, ""), (args, out, err)
        assert err.count("\n") == 1 and err.endswith("\n"), err  # one line
        assert err.startswith(f"error: {STATE}: the state file "), err
        assert first in err and second in err, err
        assert state_path.read_bytes() == spoiled and os.stat(state_path).st_mtime_ns == before
        assert not (tmp_path / f"{STATE}.lock").exists()
    assert len({err for *_, err in runs}) == 1  # the same words from every command
    assert calls == NO_WRITES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segments", STATE]


def test_a_duplicate_that_a_live_segment_references_is_not_deleted(
    tmp_path: Path, emu: Emulator
) -> None:
    write_spec(tmp_path / "segments", "a.yaml", spec_text("Alpha"))
    assert segsync(emu, "apply", "--auto-approve").exit_code == 0
    companies = next(
        m["uuid"] for m in emu.catalog.models if m["slug"] == "companies" and not m["deletedAt"]
    )
    group = {"conjonction": "and", "conditions": [
        {"kind": "string", "columnSlug": "country", "operator": "is", "values": ["FR"]}]}
    dup = emu.store.create({"name": "Alpha", "modelUuid": companies,
                            "filter": {"conjonction": "and", "groups": [group]}})["uuid"]
    ref = {"kind": "segment", "operator": "in", "segmentUuid": dup}
    user = emu.store.create({
        "name": "Uses the copy", "modelUuid": companies,
        "filter": {"conjonction": "and", "groups": [{"conjonction": "and", "conditions": [ref]}]},
    })["uuid"]
    result = segsync(emu, "apply", "--auto-approve", "--delete-duplicates")
    assert result.exit_code == 1  # the duplicate stays, so apply says so
    assert f"referenced by segment {user} ('Uses the copy'): not deleted" in result.stdout
    assert dup in live_by_name(emu)["Alpha"]
