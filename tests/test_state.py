"""State file: strict reading, deterministic atomic writes, the StateStore and the lock."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from segsync import __version__
from segsync.errors import LockError, StateError
from segsync.lock import StateLock, break_lock, read_lock
from segsync.state import (
    STATE_VERSION,
    Entry,
    Intent,
    State,
    StateStore,
    dump_state,
    parse_time,
    read_state,
    utc_now,
    write_state_atomic,
)

T0 = "2026-11-27T13:00:00.000Z"
M_UUID = "0b6f6c8e-1d2a-4d4e-9a51-2c0f3c6a7b10"
U1 = "5d0b7f0e-7c3a-4f7e-8f56-3b1a9a0e2c11"
U2 = "9a3e2d1c-0b4f-4e6d-8c7b-6a5f4e3d2c12"

GOLDEN = """\
{
  "lineage": "6f1c2b3a-0000-4000-8000-000000000001",
  "segments": {
    "sales/enterprise-eu": {
      "applied": {
        "filter": {
          "conjonction": "and",
          "groups": [
            {
              "conditions": [
                {
                  "columnSlug": "country",
                  "kind": "string",
                  "operator": "is",
                  "values": [
                    "FR",
                    "DE"
                  ]
                },
                {
                  "kind": "segment",
                  "operator": "in",
                  "segment": "sales/icp"
                }
              ],
              "conjonction": "and"
            }
          ]
        },
        "limit": 500,
        "name": "Entreprises Européennes"
      },
      "appliedAt": "2026-11-27T13:00:00.000Z",
      "digest": "ab12",
      "file": "segments/sales/enterprise-eu.yaml",
      "fileSha256": "cd34",
      "model": "companies",
      "modelUuid": "0b6f6c8e-1d2a-4d4e-9a51-2c0f3c6a7b10",
      "protect": false,
      "refs": {
        "sales/icp": "9a3e2d1c-0b4f-4e6d-8c7b-6a5f4e3d2c12"
      },
      "uuid": "5d0b7f0e-7c3a-4f7e-8f56-3b1a9a0e2c11"
    },
    "sales/icp": {
      "intent": {
        "at": "2026-11-27T13:00:00.000Z",
        "op": "create"
      },
      "model": "companies",
      "protect": true,
      "refs": {}
    }
  },
  "serial": 7,
  "version": 1,
  "workspaceUuid": "ws-1"
}
"""


def applied(reverse: bool = False) -> dict[str, Any]:
    condition = {
        "kind": "string",
        "columnSlug": "country",
        "operator": "is",
        "values": ["FR", "DE"],
    }
    if reverse:
        condition = dict(reversed(list(condition.items())))
    group = {
        "conjonction": "and",
        "conditions": [condition, {"kind": "segment", "operator": "in", "segment": "sales/icp"}],
    }
    data = {
        "name": "Entreprises Européennes",
        "filter": {"conjonction": "and", "groups": [group]},
        "limit": 500,
    }
    return dict(reversed(list(data.items()))) if reverse else data


def sample_state(reverse: bool = False) -> State:
    eu = Entry(
        uuid=U1,
        model="companies",
        model_uuid=M_UUID,
        applied=applied(reverse),
        digest="ab12",
        refs={"sales/icp": U2},
        file="segments/sales/enterprise-eu.yaml",
        file_sha256="cd34",
        applied_at=T0,
    )
    icp = Entry(uuid=None, model="companies", protect=True, intent=Intent(op="create", at=T0))
    pairs = [("sales/enterprise-eu", eu), ("sales/icp", icp)]
    return State(
        serial=7,
        lineage="6f1c2b3a-0000-4000-8000-000000000001",
        workspace_uuid="ws-1",
        segments=dict(reversed(pairs)) if reverse else dict(pairs),
    )


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- models and serialisation -----------------------------------------------------------------


def test_dump_is_the_golden_bytes() -> None:
    assert dump_state(sample_state()) == GOLDEN.encode("utf-8")


def test_dump_ignores_key_order_of_the_input() -> None:
    assert dump_state(sample_state(reverse=True)) == dump_state(sample_state())
    assert dump_state(sample_state()) == dump_state(sample_state())


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "segsync.state.json"
    write_state_atomic(path, dump_state(sample_state()))
    assert path.read_bytes() == GOLDEN.encode("utf-8")
    state = read_state(path)
    assert state == sample_state()
    assert state.segments["sales/icp"].uuid is None
    assert state.segments["sales/icp"].intent == Intent(op="create", at=T0)
    assert dump_state(state) == path.read_bytes()


def test_none_inside_applied_is_kept() -> None:
    state = State(segments={"a": Entry(model="m", applied={"limit": None})})
    data = json.loads(dump_state(state))
    assert data == {
        "segments": {"a": {"applied": {"limit": None}, "model": "m", "protect": False, "refs": {}}},
        "serial": 0,
        "version": 1,
    }


def test_empty_state() -> None:
    assert State.empty() == State(version=1, serial=0, lineage=None, workspace_uuid=None)
    assert dump_state(State.empty()) == b'{\n  "segments": {},\n  "serial": 0,\n  "version": 1\n}\n'


def test_models_are_frozen_and_strict() -> None:
    entry = Entry(model="companies")
    with pytest.raises(ValidationError):
        entry.uuid = "x"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        Entry.model_validate({"model": "companies", "uuidd": "x"})
    with pytest.raises(ValidationError, match="literal"):
        Intent.model_validate({"op": "upsert", "at": T0})
    with pytest.raises(ValidationError, match="ISO-8601"):
        Intent(op="create", at="yesterday")
    with pytest.raises(ValidationError, match="ISO-8601"):
        Entry(model="m", applied_at="2026-11-27T13:00:00")  # no time zone
    # aliases and Python names are both accepted
    assert Entry.model_validate({"model": "m", "modelUuid": "u"}).model_uuid == "u"
    assert Entry(model="m", model_uuid="u").model_uuid == "u"


def test_utc_now_and_parse_time() -> None:
    now = utc_now()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now)
    assert parse_time(now).utcoffset() is not None
    assert parse_time(T0).isoformat() == "2026-11-27T13:00:00+00:00"


# --- reading ----------------------------------------------------------------------------------


def test_missing_file_is_an_empty_state_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "segsync.state.json"
    assert read_state(path) == State.empty()
    assert files_in(tmp_path) == []


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "truncated": (
        GOLDEN.encode()[:100],
        r"{p}:5:1: the state file is not valid JSON \(Expecting property name enclosed in "
        r"double quotes\); restore it from git",
    ),
    "empty": (b"", r"{p}:1:1: the state file is not valid JSON \(Expecting value\)"),
    "not utf-8": (
        b'{"version": 1, "serial": 0, "segments": {"caf\xe9": {}}}',
        r"{p}: the state file is not UTF-8 text \(byte 0xe9 at offset 45\)",
    ),
    "array": (b"[]", r"{p}: the state file must hold a JSON object, not an array"),
    "duplicate key": (
        b'{"version": 1, "serial": 0, "segments": {}, "serial": 3}',
        r"{p}: the state file is not valid JSON \(duplicate key 'serial'\)",
    ),
    "NaN": (
        b'{"version": 1, "serial": NaN, "segments": {}}',
        r"{p}: the state file is not valid JSON \(NaN is not valid JSON\)",
    ),
    "merge conflict": (
        b'{\n<<<<<<< HEAD\n  "serial": 3,\n=======\n  "serial": 4,\n>>>>>>> main\n}\n',
        r"{p}:2: the state file holds git merge-conflict markers",
    ),
    "no version": (
        b'{"serial": 0, "segments": {}}',
        r"{p}: the state file has no valid format version \(version: null\)",
    ),
    "string version": (
        b'{"version": "1", "serial": 0, "segments": {}}',
        r'{p}: the state file has no valid format version \(version: "1"\)',
    ),
    "unknown key": (
        b'{"version": 1, "serial": 0, "segments": {"a": {"model": "m", "uuidd": "x"}}}',
        r"{p}: the state file is not a valid segsync state: segments\.a\.uuidd: Extra inputs "
        r"are not permitted; restore it from git \(`git checkout -- {p}`\)",
    ),
    "wrong type": (
        b'{"version": 1, "serial": "7", "segments": {"a": {"uuid": 5}}}',
        r"{p}: the state file is not a valid segsync state: serial: Input should be a valid "
        r"integer; segments\.a\.uuid: Input should be a valid string; segments\.a\.model: "
        r"Field required; restore",
    ),
    "negative serial": (
        b'{"version": 1, "serial": -1, "segments": {}}',
        r"{p}: the state file is not a valid segsync state: serial: Input should be greater "
        r"than or equal to 0",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_is_a_clear_error_and_left_unchanged(tmp_path: Path, case: str) -> None:
    content, pattern = BAD_FILES[case]
    path = tmp_path / "segsync.state.json"
    path.write_bytes(content)
    with pytest.raises(StateError) as info:
        read_state(path)
    assert re.match(pattern.format(p=re.escape(str(path))), str(info.value)), str(info.value)
    assert path.read_bytes() == content
    assert files_in(tmp_path) == ["segsync.state.json"]


def test_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "segsync.state.json"
    content = json.dumps({"version": STATE_VERSION + 1, "serial": 3, "future": {}}).encode()
    path.write_bytes(content)
    with pytest.raises(StateError) as info:
        read_state(path)
    assert str(info.value) == (
        f"{path}: the state file has format version 2, but segsync {__version__} reads "
        "version 1 at most; upgrade segsync (`pip install --upgrade segsync`)"
    )
    assert path.read_bytes() == content


def test_directory_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "segsync.state.json"
    path.mkdir()
    with pytest.raises(StateError) as info:
        read_state(path)
    assert str(info.value) == (
        f"{path}: cannot read the state file (Is a directory); check the path given with "
        "--state or $SEGSYNC_STATE and its permissions"
    )


def test_parent_that_is_a_file_is_a_clear_read_error(tmp_path: Path) -> None:
    (tmp_path / "notadir").write_text("x")
    with pytest.raises(StateError, match=r"cannot read the state file \(Not a directory\)"):
        read_state(tmp_path / "notadir" / "segsync.state.json")


# --- writing ----------------------------------------------------------------------------------


def test_new_file_gets_default_permissions_and_existing_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    umask = os.umask(0o022)
    try:
        write_state_atomic(path, b"{}\n")
        assert path.stat().st_mode & 0o777 == 0o644
        path.chmod(0o640)
        write_state_atomic(path, b"{}\n\n")
        assert path.stat().st_mode & 0o777 == 0o640
        assert path.read_bytes() == b"{}\n\n"
    finally:
        os.umask(umask)


def test_symlinked_state_file_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_bytes(b"old")
    link = tmp_path / "segsync.state.json"
    link.symlink_to(real)
    write_state_atomic(link, b"new")
    assert link.is_symlink()
    assert real.read_bytes() == b"new"


def test_parent_that_is_a_regular_file_is_unwritable(tmp_path: Path) -> None:
    # Root cannot create anything below a regular file: a genuine "cannot write" for any user.
    parent = tmp_path / "notadir"
    parent.write_bytes(b"keep me")
    with pytest.raises(StateError) as info:
        write_state_atomic(parent / "segsync.state.json", b"{}")
    assert str(info.value) == (
        f"{parent}/segsync.state.json: cannot write the state file (Not a directory); check "
        f"that the folder {parent} exists and is writable; the previous state file is unchanged"
    )
    assert parent.read_bytes() == b"keep me"
    assert files_in(tmp_path) == ["notadir"]


def test_missing_folder_is_unwritable(tmp_path: Path) -> None:
    with pytest.raises(StateError, match=r"No such file or directory"):
        write_state_atomic(tmp_path / "nope" / "segsync.state.json", b"{}")
    assert files_in(tmp_path) == []


def test_immutable_folder_leaves_state_unchanged(tmp_path: Path) -> None:
    # chattr +i makes a folder read-only even for root (unlike chmod), on file systems that
    # support it; elsewhere the test is skipped rather than proving nothing.
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "segsync.state.json"
    path.write_bytes(GOLDEN.encode())
    chattr = shutil.which("chattr")
    if (
        chattr is None
        or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode
    ):
        pytest.skip("chattr +i is not available here")
    try:
        store = StateStore(path, read_state(path))
        with pytest.raises(
            StateError, match=r"cannot write the state file \(Operation not permitted\)"
        ):
            store.update({"new": Entry(model="m")})
        assert store.state.serial == 7
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)
    assert path.read_bytes() == GOLDEN.encode()
    assert files_in(folder) == ["segsync.state.json"]


@pytest.mark.parametrize("failing", ["replace", "fsync", "write"])
def test_write_failing_before_the_rename_keeps_old_state_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "segsync.state.json"
    path.write_bytes(GOLDEN.encode())

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    store = StateStore(path, read_state(path))
    with pytest.raises(
        StateError, match=r"cannot write the state file \(No space left on device\)"
    ):
        store.update({"sales/icp": None})
    monkeypatch.undo()
    assert path.read_bytes() == GOLDEN.encode()
    assert files_in(tmp_path) == ["segsync.state.json"]
    assert store.state == sample_state()


def test_interrupt_during_write_removes_temp_and_propagates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "segsync.state.json"
    path.write_bytes(b"old")

    def interrupted(*args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_state_atomic(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert files_in(tmp_path) == ["segsync.state.json"]


def test_process_killed_between_write_and_rename_keeps_old_state(tmp_path: Path) -> None:
    # A real crash: the process dies after the temporary file is written and fsynced, before
    # the rename. The old state stays whole and readable. The temporary file is left behind
    # (nothing can remove it in a killed process); its name matches `segsync.state.json.*`,
    # which the README's .gitignore line covers, and reading ignores it.
    path = tmp_path / "segsync.state.json"
    path.write_bytes(GOLDEN.encode())
    script = textwrap.dedent(
        """
        import os, signal, sys
        from segsync.state import State, dump_state, write_state_atomic
        os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
        write_state_atomic(sys.argv[1], dump_state(State(serial=99)))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True)
    assert proc.returncode == -9, proc.stderr
    assert path.read_bytes() == GOLDEN.encode()
    assert read_state(path) == sample_state()
    leftovers = [n for n in files_in(tmp_path) if n != "segsync.state.json"]
    assert len(leftovers) == 1
    assert re.fullmatch(r"segsync\.state\.json\.[0-9a-f]{12}\.tmp", leftovers[0])
    assert json.loads((tmp_path / leftovers[0]).read_bytes())["serial"] == 99


# --- StateStore -------------------------------------------------------------------------------


def test_serial_grows_and_lineage_is_fixed_at_first_write(tmp_path: Path) -> None:
    path = tmp_path / "segsync.state.json"
    store = StateStore(path, read_state(path))
    assert store.state.lineage is None
    first = store.update({"a": Entry(model="m", uuid=U1)}, workspace_uuid="ws-1")
    assert (first.serial, first.workspace_uuid) == (1, "ws-1")
    lineage = first.lineage
    assert lineage is not None and re.fullmatch(r"[0-9a-f-]{36}", lineage)
    second = store.update({"b": Entry(model="m", uuid=U2)})
    third = store.update({})
    assert (second.serial, third.serial) == (2, 3)
    assert second.lineage == third.lineage == lineage
    assert third.workspace_uuid == "ws-1"
    assert read_state(path) == third == store.state
    assert path.read_bytes() == dump_state(third)

    # a new store over the file keeps its lineage and continues its serial
    again = StateStore(path, read_state(path)).update({"a": None})
    assert (again.serial, again.lineage, sorted(again.segments)) == (4, lineage, ["b"])


def test_update_refuses_another_workspace(tmp_path: Path) -> None:
    path = tmp_path / "segsync.state.json"
    path.write_bytes(GOLDEN.encode())
    store = StateStore(path, read_state(path))
    with pytest.raises(StateError, match="the state belongs to workspace ws-1, not ws-2"):
        store.update({}, workspace_uuid="ws-2")
    assert path.read_bytes() == GOLDEN.encode()
    assert store.update({}, workspace_uuid="ws-1").serial == 8


def fake_uuid(t: int, i: int) -> str:
    return f"00000000-0000-4000-8000-{t:06d}{i:06d}"


def test_concurrent_updates_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "segsync.state.json"
    store = StateStore(path, State.empty())
    threads, per_thread = 8, 25
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                store.update({f"t{t}/s{i}": Entry(model="m", uuid=fake_uuid(t, i))})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    final = read_state(path)
    assert final == store.state
    assert final.serial == threads * per_thread
    assert len(final.segments) == threads * per_thread
    assert {e.uuid for e in final.segments.values()} == {
        fake_uuid(t, i) for t in range(threads) for i in range(per_thread)
    }
    assert files_in(tmp_path) == ["segsync.state.json"]


def test_every_write_is_exactly_dump_state_even_after_a_failed_one(tmp_path: Path) -> None:
    # The store encodes again only the entries a write changes; the file must still be the
    # bytes of dump_state after any sequence of changes, and a failed write must not be the
    # base of the next one.
    import random

    folder = tmp_path / "project"
    folder.mkdir()
    path = folder / "segsync.state.json"
    entry = Entry(
        uuid=U1, model="m", applied={"name": "a\u2028b\n", "x": [1, {"b": 2.5}]},
        refs={"é": U2}, intent=Intent(op="create", at="2026-01-01T00:00:00.000Z"),
    )
    other = Entry(uuid=U2, model="m", protect=True)
    store = StateStore(path, State.empty())
    rng = random.Random(7)
    for step in range(100):
        changes: dict[str, Entry | None] = {
            rng.choice(["a", "b", "é/x", "a/b", "zz", "A"]): rng.choice([entry, other, None])
            for _ in range(rng.randint(0, 3))
        }
        store.update(changes, workspace_uuid="ws-1" if step > 5 else None)
        assert path.read_bytes() == dump_state(store.state), step
    assert store.state.workspace_uuid == "ws-1" and store.state.lineage is not None

    before = store.state
    folder.rename(tmp_path / "moved")  # no write can succeed now
    with pytest.raises(StateError, match="cannot write the state file"):
        store.update({"failed": other, "a": None})
    assert store.state is before
    (tmp_path / "moved").rename(folder)
    store.update({"b": entry})
    assert path.read_bytes() == dump_state(store.state)
    assert "failed" not in store.state.segments


# --- lock -------------------------------------------------------------------------------------


def test_lock_file_content_and_release(tmp_path: Path) -> None:
    state = tmp_path / "segsync.state.json"
    with StateLock(state, command="segsync apply") as lock:
        assert lock.held
        holder = read_lock(state)
        assert holder is not None
        assert sorted(holder) == ["command", "createdAt", "host", "pid"]
        assert holder["pid"] == os.getpid()
        assert holder["host"] == socket.gethostname()
        assert holder["command"] == "segsync apply"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", holder["createdAt"])
        assert files_in(tmp_path) == ["segsync.state.json.lock"]
    assert not lock.held
    assert read_lock(state) is None
    assert files_in(tmp_path) == []


def test_lock_is_released_on_exception(tmp_path: Path) -> None:
    state = tmp_path / "segsync.state.json"
    with pytest.raises(RuntimeError, match="inside"), StateLock(state):
        raise RuntimeError("inside")
    assert read_lock(state) is None


def test_held_lock_fails_at_once_and_leaves_everything_unchanged(tmp_path: Path) -> None:
    state = tmp_path / "segsync.state.json"
    state.write_bytes(GOLDEN.encode())
    lock_file = tmp_path / "segsync.state.json.lock"
    lock_file.write_text(
        json.dumps({"pid": 123, "host": "ci-runner-7", "createdAt": T0, "command": "segsync apply"})
    )
    before = lock_file.read_bytes()
    with pytest.raises(LockError) as info, StateLock(state):
        pytest.fail("the lock was acquired")  # pragma: no cover
    assert str(info.value) == (
        f"state is locked by pid 123 on host ci-runner-7 since {T0} running `segsync apply` "
        f"({lock_file}); if that run is gone, run `segsync state unlock --state {state}`"
    )
    assert lock_file.read_bytes() == before
    assert state.read_bytes() == GOLDEN.encode()


def test_lock_of_default_state_path_names_plain_unlock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("segsync.state.json.lock").write_text("garbage")
    with pytest.raises(LockError) as info:
        StateLock("segsync.state.json").acquire()
    assert str(info.value) == (
        "state is locked by an unknown run (the lock file's contents are unreadable) "
        "(segsync.state.json.lock); if that run is gone, run `segsync state unlock`"
    )
    assert read_lock("segsync.state.json") == {}


def test_lock_of_a_dead_local_process_is_taken_over_with_a_note(tmp_path: Path) -> None:
    # A real process that has ended: the pid of a run that is gone from this host.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    state = tmp_path / "segsync.state.json"
    holder = {"pid": int(dead.stdout), "host": socket.gethostname(), "createdAt": T0}
    (tmp_path / "segsync.state.json.lock").write_text(json.dumps(holder))
    lock = StateLock(state)
    lock.acquire()
    assert lock.note == (
        f"took over the lock of pid {int(dead.stdout)} on host {socket.gethostname()} since "
        f"{T0}: that process is no longer running on this host"
    )
    current = read_lock(state)
    assert current is not None and current["pid"] == os.getpid()
    lock.release()
    assert read_lock(state) is None


def test_lock_of_another_host_is_never_taken_over(tmp_path: Path) -> None:
    state = tmp_path / "segsync.state.json"
    holder = {"pid": 1, "host": "another-host.example", "createdAt": T0}
    (tmp_path / "segsync.state.json.lock").write_text(json.dumps(holder))
    with pytest.raises(LockError, match=r"state is locked by pid 1 on host another-host\.example"):
        StateLock(state).acquire()


def test_release_leaves_a_lock_taken_over_by_another_run(tmp_path: Path) -> None:
    state = tmp_path / "segsync.state.json"
    lock = StateLock(state)
    lock.acquire()
    assert break_lock(state) is True
    other = StateLock(state, command="other")
    other.acquire()
    lock.release()
    holder = read_lock(state)
    assert holder is not None and holder["command"] == "other"
    other.release()
    assert read_lock(state) is None
    assert break_lock(state) is False


def test_lock_in_an_unwritable_folder_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "notadir").write_text("")
    with pytest.raises(StateError, match=r"cannot create the lock file \(Not a directory\)"):
        StateLock(tmp_path / "notadir" / "segsync.state.json").acquire()


HOLDER_SCRIPT = textwrap.dedent(
    """
    import sys
    from segsync.lock import StateLock
    with StateLock(sys.argv[1], command="segsync apply"):
        print("locked", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
    """
)


def test_lock_contention_across_processes(tmp_path: Path) -> None:
    state = tmp_path / "segsync.state.json"
    state.write_bytes(GOLDEN.encode())
    # A real process holds the lock: another live pid, as a second run would see it.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(LockError, match=rf"^state is locked by pid {holder.pid} on host "):
            StateLock(state).acquire()
        assert state.read_bytes() == GOLDEN.encode()
        holder.stdin.write("go\n")
        holder.stdin.close()
        assert holder.stdout.readline() == "released\n"
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:  # pragma: no cover - only when an assertion failed
            holder.kill()
            holder.wait()
        for pipe in (holder.stdin, holder.stdout):
            if pipe is not None:
                pipe.close()
    with StateLock(state):
        assert read_lock(state) is not None
