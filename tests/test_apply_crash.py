"""An apply killed with SIGKILL at many points, then run again: no duplicate segment, no lost
UUID, and a state file that is valid JSON after every kill.

The killed applies are real processes (SIGKILL is the point) against the in-process emulator;
a hook in the emulator's store kills the run at a chosen create: right before the k-th create
commits (its intent is on disk, the segment will never exist) or right after (the segment
exists, its answer is lost). Other workers' requests are in flight at that moment, so some
answers arrive at a dead process and some state writes never happen. What follows a kill
(unlock, the apply that finishes, the final plan) runs in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from segsync.canonical import canonical_managed, to_wire
from segsync.emulator.server import Emulator
from segsync.emulator.store import HttpError
from segsync.specs import load_specs
from segsync.state import read_state
from tests.helpers import cargo_env, process_env, run_cli, spec_text, write_spec

TOKEN = "crash-test-token-0b5e"
SPECS = 50


def write_specs(root: Path) -> None:
    for i in range(SPECS):
        condition = (
            f"{{kind: number, columnSlug: employee_count, operator: greaterThan, value: {i}}}"
        )
        # A few references, so dependency order is part of the picture.
        ref = f"crash/s{i - 5:03d}" if i % 10 == 5 else None
        text = spec_text(
            f"Crash {i:03d}", countries=(), conditions=[condition], ref=ref, limit=100 + i
        )
        write_spec(root / "segments" / "crash", f"s{i:03d}.yaml", text)


def start_apply(root: Path, env: dict[str, str | None]) -> subprocess.Popen[str]:
    # A real process: the hook kills it with SIGKILL.
    return subprocess.Popen(
        [sys.executable, "-m", "segsync", "apply", "--auto-approve", "--parallelism", "4"],
        cwd=root, env=process_env(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def kill_at(emu: Emulator, when: str, k: int) -> Callable[[int], None]:
    """Arm the store: the k-th create of the next run kills that run (``when``: before or
    after the create commits). Returns the function that tells the hook the run's pid."""
    store = emu.store
    create = type(store).create.__get__(store)
    pid_known = threading.Event()
    target: dict[str, int] = {}
    count = [0]
    lock = threading.Lock()

    def hooked(body: Any) -> Any:
        with lock:
            count[0] += 1
            mine = count[0]
        if mine == k:
            pid_known.wait(60)
            if when == "before":
                os.kill(target["pid"], signal.SIGKILL)
                raise HttpError(503, "the client is gone")
            result = create(body)
            os.kill(target["pid"], signal.SIGKILL)
            return result
        return create(body)

    store.create = hooked  # type: ignore[method-assign]

    def set_pid(pid: int) -> None:
        target["pid"] = pid
        pid_known.set()

    return set_pid


def live_by_name(emu: Emulator) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for segment in emu.store.raw_segments():
        if segment["deletedAt"] is None and not segment["fromPlay"]:
            names.setdefault(segment["name"], []).append(segment["uuid"])
    return names


@pytest.mark.parametrize(
    "kills",
    [
        [("after", 1)],
        [("before", 1)],
        [("after", 12)],
        [("before", 25)],
        [("after", 37)],
        [("after", SPECS)],
        [("after", 10), ("before", 15)],  # killed again while finishing the first kill
    ],
    ids=lambda kills: "+".join(f"{w}{k}" for w, k in kills),
)
def test_killed_apply_then_apply_again(
    tmp_path: Path,
    emulator_factory: Callable[..., Emulator],
    monkeypatch: pytest.MonkeyPatch,
    kills: list[tuple[str, int]],
) -> None:
    emu = emulator_factory(token=TOKEN, fixtures=False, latency_ms=20)
    write_specs(tmp_path)
    env = cargo_env(emu.url, TOKEN)
    monkeypatch.chdir(tmp_path)  # the in-process runs: the same folder as the killed ones
    state_path = tmp_path / "segsync.state.json"
    for when, k in kills:
        set_pid = kill_at(emu, when, k)
        proc = start_apply(tmp_path, env)
        set_pid(proc.pid)
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == -signal.SIGKILL, (out, err)
        json.loads(state_path.read_text())  # valid JSON, whatever the moment of the kill
        read_state(state_path)  # and a valid state
        unlock = run_cli(["state", "unlock", "--yes"], env=env)
        assert unlock.exit_code == 0, unlock.stderr
        # The killed create's intent is on disk: the next run must settle it.
        state = read_state(state_path)
        assert any(e.intent is not None for e in state.segments.values())
        if when == "after":
            assert sum(len(u) for u in live_by_name(emu).values()) >= k
    emu.store.create = type(emu.store).create.__get__(emu.store)  # type: ignore[method-assign]

    final = run_cli(["apply", "--auto-approve", "--parallelism", "4"], env=env)
    out = final.stdout
    assert final.exit_code == 0, final.stderr
    assert out.splitlines()[-1].startswith("Apply complete: ")
    if kills[-1][0] == "after":  # the answer of the k-th create never arrived: adopted now
        assert "adopted: found in Cargo after an interrupted create" in out

    specs = load_specs(tmp_path / "segments")
    state = read_state(state_path)
    names = live_by_name(emu)
    # No duplicate: one live segment per spec name, and nothing else.
    assert sorted(names) == sorted(s.name for s in specs)
    assert all(len(uuids) == 1 for uuids in names.values()), {
        n: u for n, u in names.items() if len(u) > 1
    }
    # No lost UUID: the state records exactly the live segments, with the spec's fields.
    live = {s["uuid"]: s for s in emu.store.raw_segments() if s["deletedAt"] is None}
    assert {e.uuid for e in state.segments.values()} == set(live)
    for spec in specs:
        entry = state.segments[spec.id]
        assert entry.intent is None and entry.uuid == names[spec.name][0]
        refs = {ref: str(state.segments[ref].uuid) for ref in spec.refs}
        assert canonical_managed(live[str(entry.uuid)]) == canonical_managed(
            to_wire(spec.managed, ref_uuids=refs)
        )
    plan = run_cli(["plan", "--detailed-exitcode"], env=env)
    assert (plan.exit_code, plan.stdout) == (0, f"No changes. {SPECS} segments up to date.\n")
