"""Apply's journal: writes appended beside the state file, applied by every reader, folded into
the state file at the end of a run (or at the start of the next one), and safe to kill at any
point of the fold."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from segsync.emulator.server import Emulator
from segsync.errors import StateError
from segsync.state import (
    Entry,
    Intent,
    State,
    StateStore,
    dump_state,
    journal_path,
    read_state,
)
from segsync.statelog import JournalStore
from tests.helpers import cargo_env, run_cli, spec_text, write_spec, write_state

LINEAGE = "6f1c2b3a-0000-4000-8000-000000000001"
T0 = "2026-11-27T13:00:00.000Z"


def uuid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def entry(i: int) -> Entry:
    return Entry(uuid=uuid(i), model="companies", applied={"name": f"Segment {i}"},
                 file=f"segments/s{i}.yaml", applied_at=T0)


def intent(i: int) -> Entry:
    return Entry(model="companies", applied={"name": f"Segment {i}"},
                 intent=Intent(op="create", at=T0))


def base_state(count: int = 3) -> State:
    return State(serial=3, lineage=LINEAGE, workspace_uuid="ws-1",
                 segments={f"s{i}": entry(i) for i in range(count)})


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(journal_path(path)).read_bytes().splitlines()]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return write_state(tmp_path / "segsync.state.json", base_state())


def three_updates(store: JournalStore) -> State:
    store.update({"s10": intent(10)}, workspace_uuid="ws-1")
    store.update({"s10": entry(10), "s0": None}, workspace_uuid="ws-1")
    return store.update({"s1": intent(1)}, workspace_uuid="ws-1")


def pending(path: Path) -> State:
    """Leave on disk what an apply killed after three writes leaves: the state file as it was
    and a journal of three lines; the state they make."""
    store = JournalStore(path, read_state(path))
    three_updates(store)
    state_bytes, journal = path.read_bytes(), Path(journal_path(path)).read_bytes()
    store.close()
    path.write_bytes(state_bytes)
    Path(journal_path(path)).write_bytes(journal)
    return store.state


# --- writing and reading ----------------------------------------------------------------------


def test_updates_are_appended_and_every_reader_sees_them(path: Path) -> None:
    before = path.read_bytes()
    with JournalStore(path, read_state(path)) as store:
        final = three_updates(store)
        assert path.read_bytes() == before  # the state file waits for the fold
        head, *records = lines(path)
        assert head["base"]["serial"] == 3 and head["base"]["lineage"] == LINEAGE
        assert [r["serial"] for r in records] == [4, 5, 6]
        assert records[1]["changes"]["s0"] is None
        assert records[1]["changes"]["s10"]["uuid"] == uuid(10)
        assert read_state(path) == final == store.state
        assert read_state(path).segments["s1"].intent == Intent(op="create", at=T0)
    # Folded at the end: one write of exactly the state, the journal gone.
    assert not os.path.exists(journal_path(path))
    assert path.read_bytes() == dump_state(final)
    assert (final.serial, final.lineage, sorted(final.segments)) == (
        6, LINEAGE, ["s1", "s10", "s2"]
    )


def test_entries_are_a_copy_and_the_caller_s_state_is_left_alone(path: Path) -> None:
    """Updates change the store's entries in place (no copy of the whole mapping per write):
    what was handed out for going through, and the state the store was made from, stay."""
    initial = read_state(path)
    store = JournalStore(path, initial)
    taken = store.entries()
    three_updates(store)
    assert [spec_id for spec_id, _ in taken] == ["s0", "s1", "s2"]
    assert sorted(initial.segments) == ["s0", "s1", "s2"]
    assert sorted(spec_id for spec_id, _ in store.entries()) == ["s1", "s10", "s2"]
    assert dict(store.entries()) == store.state.segments
    store.close()
    assert read_state(path).segments == store.state.segments


def test_a_first_apply_writes_the_empty_state_then_journals(tmp_path: Path) -> None:
    path = tmp_path / "segsync.state.json"
    store = JournalStore(path, read_state(path))
    store.open()
    assert not path.exists()  # nothing written before the first change
    first = store.update({"s1": intent(1)}, workspace_uuid="ws-1")
    assert json.loads(path.read_bytes()) == {"segments": {}, "serial": 0, "version": 1}
    assert lines(path)[0]["base"]["lineage"] is None
    assert lines(path)[0]["lineage"] == first.lineage is not None
    assert read_state(path) == first
    assert (first.serial, first.workspace_uuid) == (1, "ws-1")
    store.close()
    assert read_state(path) == first and not os.path.exists(journal_path(path))


def test_a_store_that_wrote_nothing_writes_nothing(path: Path) -> None:
    before = path.read_bytes()
    with JournalStore(path, read_state(path)):
        pass
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["segsync.state.json"]


def test_the_workspace_is_checked_as_the_state_store_does(path: Path) -> None:
    with JournalStore(path, read_state(path)) as store:
        with pytest.raises(StateError, match="the state belongs to workspace ws-1, not ws-2"):
            store.update({}, workspace_uuid="ws-2")
        assert not os.path.exists(journal_path(path))


def test_a_torn_last_line_is_ignored(path: Path) -> None:
    made = pending(path)
    with open(journal_path(path), "ab") as journal:
        journal.write(b'{"changes":{"s2":null},"ser')  # killed mid-append
    assert read_state(path) == made
    # The next writer folds what counted and removes the journal.
    again = StateStore(path, read_state(path)).update({})
    assert not os.path.exists(journal_path(path))
    assert read_state(path) == again and "s2" in again.segments and again.serial == 7


def test_a_journal_without_a_complete_first_line_holds_nothing(path: Path) -> None:
    before = path.read_bytes()
    Path(journal_path(path)).write_bytes(b'{"base":{"lin')
    assert read_state(path) == base_state()
    with JournalStore(path, read_state(path)) as store:  # entering removes it
        assert not os.path.exists(journal_path(path))
        store.update({"s5": entry(5)})
    assert read_state(path).serial == 4 and path.read_bytes() != before


def test_a_pending_journal_is_folded_when_the_next_run_starts(path: Path) -> None:
    made = pending(path)
    assert read_state(path) == made and made.serial == 6
    with JournalStore(path, read_state(path)) as store:
        assert not os.path.exists(journal_path(path))
        assert path.read_bytes() == dump_state(made)  # same serial: a saved plan stays fresh
        store.update({"s2": None})
        assert lines(path)[0]["base"]["serial"] == 6
    assert read_state(path).serial == 7 and "s2" not in read_state(path).segments


def test_left_behind_after_the_fold_it_is_ignored_then_removed(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if killed between the rename of the folded state and the unlink of the journal.
    journal = journal_path(path)
    unlink = os.unlink

    def keep_journal(name: Any, *args: Any, **kwargs: Any) -> None:
        if os.fspath(name) == journal:
            raise OSError(5, "Input/output error")
        unlink(name, *args, **kwargs)

    with JournalStore(path, read_state(path)) as store:
        three_updates(store)
        monkeypatch.setattr(os, "unlink", keep_journal)
    monkeypatch.undo()
    assert os.path.exists(journal) and "folded" in lines(path)[-1]
    assert path.read_bytes() == dump_state(store.state)
    assert read_state(path) == store.state  # not applied a second time
    with JournalStore(path, read_state(path)):  # the next writer removes it
        pass
    assert not os.path.exists(journal) and read_state(path) == store.state


def test_import_and_merge_write_the_journal_in_and_remove_it(path: Path) -> None:
    made = pending(path)
    imported = StateStore(path, read_state(path)).update({"s7": entry(7)})
    assert not os.path.exists(journal_path(path))
    assert imported.serial == made.serial + 1
    assert imported.segments == {**made.segments, "s7": entry(7)}

    base, theirs = path.parent / "base.json", path.parent / "theirs.json"
    write_state(base, base_state())
    write_state(theirs, base_state().model_copy(update={"segments": {
        **base_state().segments, "s8": entry(8)}}))
    made = pending(path)
    merged = run_cli(["state", "merge", str(base), str(path), str(theirs)])
    assert merged.exit_code == 0, merged.stderr
    assert not os.path.exists(journal_path(path))
    assert read_state(path).segments == {**made.segments, "s8": entry(8)}


def test_a_failed_append_stops_the_store_and_keeps_what_was_written(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JournalStore(path, read_state(path))
    first = store.update({"s5": entry(5)})

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StateError, match=r"cannot write the journal \(No space left on device\)"):
        store.update({"s6": entry(6)})
    monkeypatch.undo()
    assert store.state is first
    with pytest.raises(StateError, match="cannot write the journal"):
        store.update({"s7": entry(7)})  # never after a line the failure may have torn
    store.close()
    assert not os.path.exists(journal_path(path))
    assert read_state(path) == first and path.read_bytes() == dump_state(first)


def test_a_reader_racing_a_fold_reads_again(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A reader that read the state file before a fold and its journal after it (the next
    # run's, over the folded file) reads both again instead of reporting a mismatch.
    import segsync.state as state_module

    stale = state_module._read_file(path)
    made = pending(path)
    with JournalStore(path, read_state(path)) as store:
        store.update({"s9": entry(9)})
        calls = []
        real = state_module._read_file

        def first_stale(where: str | Path) -> Any:
            calls.append(where)
            return stale if len(calls) == 1 else real(where)

        monkeypatch.setattr(state_module, "_read_file", first_stale)
        assert read_state(path) == store.state
        assert len(calls) == 2 and "s9" in store.state.segments and made.serial == 6


# --- what a user sees -------------------------------------------------------------------------


def test_a_journal_of_another_state_file_is_a_one_line_error(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(path.parent)
    monkeypatch.delenv("SEGSYNC_STATE", raising=False)
    pending(path)
    # The state file is replaced after the crash (say by git pull).
    write_state(path, base_state(5).model_copy(update={"serial": 9}))
    for args in (["state", "list"], ["state", "show", "s1"]):
        result = run_cli(args)
        assert (result.exit_code, result.stdout) == (1, ""), result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith(
            "error: segsync.state.json: the state file is not the one that "
            "segsync.state.json.journal extends"
        )
        assert "`mv segsync.state.json.journal segsync.state.json.journal.orphaned`" in (
            result.stderr
        )
    os.rename("segsync.state.json.journal", "segsync.state.json.journal.orphaned")
    listed = run_cli(["state", "list"])
    assert listed.exit_code == 0 and "serial 9" in listed.stdout


def test_a_corrupt_journal_line_is_a_one_line_error(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(path.parent)
    monkeypatch.delenv("SEGSYNC_STATE", raising=False)
    pending(path)
    journal = Path(journal_path(path))
    head, _, *rest = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join([head, b"{not json\n", *rest]))
    result = run_cli(["state", "list"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith(
        "error: segsync.state.json.journal: the journal is corrupt at line 2; move the journal "
        "away"
    ) and result.stderr.count("\n") == 1


def test_a_journal_of_a_newer_segsync_is_refused(path: Path) -> None:
    Path(journal_path(path)).write_bytes(b'{"journal": 2, "base": {}}\n')
    with pytest.raises(StateError, match="the journal has format version 2"):
        read_state(path)


# --- kills ------------------------------------------------------------------------------------

KILLED = textwrap.dedent(
    """
    import os, signal, sys
    from segsync.state import Entry, read_state
    from segsync.statelog import JournalStore

    path, when, point = sys.argv[1:]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    real_write = os.write

    def half(fd, data):  # half of the line reaches the file, then the run dies
        real_write(fd, bytes(data)[: len(data) // 2])
        die()

    # marker: after the "folded" line is written; rename: before the folded state replaces
    # the file; unlink: after it, before the journal is removed; record: mid-append
    name = {"marker": "ftruncate", "rename": "replace", "unlink": "unlink", "record": "write"}
    store = JournalStore(path, read_state(path))
    if when == "end":
        store.open()
        for i in range(3):
            uuid = f"00000000-0000-4000-8000-0000000001{i:02d}"
            store.update({f"k{i}": Entry(model="m", uuid=uuid)})
    setattr(os, name[point], half if point == "record" else die)
    if point == "record":
        store.update({"lost": Entry(model="m")})
    elif when == "start":
        store.open()
    else:
        store.close()
    raise SystemExit("not killed")
    """
)


def run_killed(path: Path, when: str, point: str) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED, str(path), when, point],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


@pytest.mark.parametrize("point", ["record", "marker", "rename", "unlink"])
def test_killed_while_writing_or_folding_at_the_end(path: Path, point: str) -> None:
    run_killed(path, "end", point)
    json.loads(path.read_bytes())  # the state file is whole, whatever the moment
    state = read_state(path)
    # Every acknowledged write is there; the one torn by the kill is not.
    assert sorted(state.segments) == ["k0", "k1", "k2", "s0", "s1", "s2"]
    assert state.serial == 6
    # The next run settles the journal and goes on from there.
    with JournalStore(path, state) as store:
        assert not os.path.exists(journal_path(path))
        store.update({"k0": None})
    assert read_state(path).serial == 7
    assert sorted(read_state(path).segments) == ["k1", "k2", "s0", "s1", "s2"]


@pytest.mark.parametrize("point", ["marker", "rename", "unlink"])
def test_killed_while_folding_a_killed_run_s_journal(path: Path, point: str) -> None:
    run_killed(path, "end", "record")
    made = read_state(path)
    run_killed(path, "start", point)  # the next run dies while folding it
    json.loads(path.read_bytes())
    assert read_state(path) == made
    with JournalStore(path, read_state(path)):
        pass
    assert not os.path.exists(journal_path(path)) and read_state(path) == made
    assert path.read_bytes() == dump_state(made)


def test_a_killed_apply_s_intent_shows_in_state_list_and_its_saved_plan_applies(
    tmp_path: Path, emulator_factory: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_apply_crash import SPECS, TOKEN, kill_at, live_by_name, start_apply, write_specs

    emu = emulator_factory(token=TOKEN, fixtures=False, latency_ms=20)
    write_specs(tmp_path)
    env = cargo_env(emu.url, TOKEN)
    monkeypatch.chdir(tmp_path)
    state_path = tmp_path / "segsync.state.json"
    set_pid = kill_at(emu, "before", 3)
    proc = start_apply(tmp_path, env)
    set_pid(proc.pid)
    proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL
    emu.store.create = type(emu.store).create.__get__(emu.store)  # type: ignore[method-assign]
    assert run_cli(["state", "unlock", "--yes"], env=env).exit_code == 0

    # The intents are in the journal; every reader sees them as if in the state file.
    raw = json.loads(state_path.read_bytes())
    assert not any("intent" in e for e in raw["segments"].values())
    assert os.path.exists(journal_path(state_path))
    listed = run_cli(["state", "list"], env=env)
    assert listed.exit_code == 0 and "intent=create" in listed.stdout
    waiting = [i for i, e in read_state(state_path).segments.items() if e.intent is not None]
    shown = run_cli(["state", "show", waiting[0], "--format", "json"], env=env)
    assert json.loads(shown.stdout)["intent"]["op"] == "create"

    # A plan saved now names the state as the next run finds it once folded: not stale.
    assert run_cli(["plan", "--out", "plan.json"], env=env).exit_code == 0
    done = run_cli(["apply", "--auto-approve", "plan.json"], env=env)
    assert done.exit_code == 0, done.stderr
    assert not os.path.exists(journal_path(state_path))
    final = json.loads(state_path.read_bytes())
    assert len(final["segments"]) == SPECS
    assert not any("intent" in e for e in final["segments"].values())
    assert all(len(uuids) == 1 for uuids in live_by_name(emu).values())
    assert run_cli(["apply", "--auto-approve", "plan.json"], env=env).exit_code == 1  # stale


def test_an_apply_with_nothing_to_do_folds_a_killed_run_s_journal(
    tmp_path: Path, empty_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = cargo_env(empty_emulator.url, empty_emulator.token)
    write_spec(tmp_path / "segments", "a.yaml", spec_text("Alpha"))
    assert run_cli(["apply", "--auto-approve"], env=env).exit_code == 0
    path = tmp_path / "segsync.state.json"
    applied = read_state(path)
    # A killed run's last write: the entry again, with nothing left to do.
    store = JournalStore(path, applied)
    store.update({"a": applied.segments["a"]})
    state_bytes, journal = path.read_bytes(), Path(journal_path(path)).read_bytes()
    store.close()
    path.write_bytes(state_bytes)
    Path(journal_path(path)).write_bytes(journal)

    done = run_cli(["apply", "--auto-approve"], env=env)
    assert done.exit_code == 0 and "No changes." in done.stdout, done.stdout
    assert not os.path.exists(journal_path(path))
    assert path.read_bytes() == dump_state(store.state) and store.state.serial == applied.serial + 1


def test_a_reader_that_finds_the_journal_gone_after_a_fold_reads_again(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fold replaces the state file and removes the journal between a reader's read of
    the file and its look for the journal: the reader must not return the file it read
    without the journal (the state before the apply), but read again."""
    import segsync.state as state_module

    expected = pending(path)
    real = state_module._read_file
    calls: list[int] = []

    def read_then_fold(p: Any) -> Any:
        result = real(p)
        if not calls:  # the writer's fold lands just now
            state_module.write_state_atomic(path, dump_state(expected))
        calls.append(1)
        return result

    monkeypatch.setattr(state_module, "_read_file", read_then_fold)
    got = read_state(path)
    assert not Path(journal_path(path)).exists()
    assert got.segments == expected.segments and got.serial == expected.serial
    assert len(calls) == 2
