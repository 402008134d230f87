"""`segsync apply` end to end: the command line run in this process (click's CliRunner), in the
test's folder, against the emulator over HTTP on a free loopback port. The emulator runs in the
test process too, so each test can count the requests that reached its store. One run is a real
process: the apply that holds the lock while another one tries."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from segsync.canonical import canonical_managed, to_wire
from segsync.emulator.faults import FaultConfig, FaultInjector
from segsync.emulator.server import Emulator
from segsync.specs import load_specs
from segsync.state import read_state
from tests.helpers import (
    EXAMPLES,
    cargo_env,
    process_env,
    record_calls,
    run_cli,
    spec_text,
    write_spec,
)

# A token no output may ever contain; every run below checks it.
TOKEN = "e2e-Secret-Token-7f3a9c1d5e"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def env_for(emu: Emulator, **extra: str | None) -> dict[str, str | None]:
    return cargo_env(emu.url, TOKEN, **extra)


def segsync(emu: Emulator, *args: str, env: Mapping[str, str | None] | None = None) -> Result:
    """Run the command line in the current folder; no terminal (stdin is empty). The token
    must not leak."""
    result = run_cli(args, env=env_for(emu) if env is None else env)
    assert TOKEN not in result.stdout and TOKEN not in result.stderr
    return result


def live(emu: Emulator) -> list[dict[str, Any]]:
    return [s for s in emu.store.raw_segments() if s["deletedAt"] is None and not s["fromPlay"]]


def assert_in_sync(root: Path, emu: Emulator) -> None:
    """One live segment per spec, with the spec's canonical fields; the state has its UUID."""
    specs = load_specs(root / "segments")
    state = read_state(root / "segsync.state.json")
    by_uuid = {s["uuid"]: s for s in live(emu)}
    names = [s["name"] for s in by_uuid.values()]
    assert set(state.segments) == {s.id for s in specs}
    for spec in specs:
        entry = state.segments[spec.id]
        assert entry.uuid in by_uuid and entry.intent is None, spec.id
        assert names.count(spec.name) == 1, spec.name
        refs = {ref: str(state.segments[ref].uuid) for ref in spec.refs}
        assert canonical_managed(by_uuid[entry.uuid]) == canonical_managed(
            to_wire(spec.managed, ref_uuids=refs)
        )


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command runs in the test's own folder."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def emu(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory(token=TOKEN)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "segments")
    return tmp_path


def simple(name: str, model: str = "companies", limit: int = 10) -> str:
    return spec_text(name, model=model, countries=("FR", "DE"), limit=limit)


def test_apply_the_examples_then_plan_shows_no_changes(root: Path, emu: Emulator) -> None:
    proc = segsync(emu, "apply", "--auto-approve")
    assert proc.exit_code == 0, proc.stderr
    workspace = emu.catalog.workspace_uuid
    lines = proc.stdout.splitlines()
    assert lines[0] == f"Target workspace: demo ({workspace})"
    assert "Plan: 6 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged." in lines
    created = [line for line in lines if line.startswith("+ ")]
    assert len(created) == 6
    for line in created:
        assert re.fullmatch(rf"\+ [a-z/-]+ created \(\d+\.\d\ds\) uuid {UUID}", line), line
    assert lines[-1] == "Apply complete: 6 created, 0 updated, 0 replaced, 0 deleted."
    order = [line.split()[1] for line in created]
    assert order.index("sales/icp") < order.index("sales/enterprise-eu")
    assert_in_sync(root, emu)
    state = read_state(root / "segsync.state.json")
    assert state.workspace_uuid == workspace
    for line in created:
        assert line.split()[-1] == state.segments[line.split()[1]].uuid

    offline = segsync(emu, "plan", "--detailed-exitcode")
    assert (offline.exit_code, offline.stdout) == (0, "No changes. 6 segments up to date.\n")
    refreshed = segsync(emu, "plan", "--refresh", "--detailed-exitcode")
    assert (refreshed.exit_code, refreshed.stdout) == (0, "No changes. 6 segments up to date.\n")
    again = segsync(emu, "apply", "--auto-approve")
    assert again.exit_code == 0
    assert again.stdout.splitlines()[1:] == ["No changes. 6 segments up to date."]


def test_edit_delete_and_model_change(tmp_path: Path, emu: Emulator) -> None:
    specs = tmp_path / "segments"
    write_spec(specs, "a.yaml", simple("A"))
    write_spec(specs, "b.yaml", simple("B"))
    write_spec(specs, "c.yaml", simple("C"))
    assert segsync(emu, "apply", "--auto-approve").exit_code == 0
    uuids = {k: e.uuid for k, e in read_state(tmp_path / "segsync.state.json").segments.items()}
    calls = record_calls(emu)

    # An edited spec: exactly one PUT, with only the changed field.
    write_spec(specs, "a.yaml", simple("A", limit=25))
    proc = segsync(emu, "apply", "--auto-approve")
    assert proc.exit_code == 0
    assert calls["update"] == [(uuids["a"], {"limit": 25})]
    assert calls["create"] == [] and calls["delete"] == []
    assert re.search(rf"^~ a updated \(\d+\.\d\ds\) uuid {uuids['a']}; sent limit$",
                     proc.stdout, re.M)

    # A deleted spec: left in place without --prune, deleted with it.
    (specs / "b.yaml").unlink()
    proc = segsync(emu, "apply", "--auto-approve")
    assert proc.exit_code == 0 and calls["delete"] == []
    assert "No longer managed, left in place (delete them with --prune):" in proc.stdout
    proc = segsync(emu, "apply", "--auto-approve", "--prune")
    assert proc.exit_code == 0 and calls["delete"] == [uuids["b"]]
    assert proc.stdout.splitlines()[-1] == (
        "Apply complete: 0 created, 0 updated, 0 replaced, 1 deleted."
    )

    # A changed model: refused without --allow-replace, before any change.
    write_spec(specs, "c.yaml", simple("C", model="contacts"))
    proc = segsync(emu, "apply", "--auto-approve")
    assert proc.exit_code == 1
    assert proc.stderr == (
        "error: 1 segment would be replaced (deleted and created again, with a new UUID): c; "
        "run again with --allow-replace to do that\n"
    )
    assert calls["create"] == [] and len(calls["delete"]) == 1
    proc = segsync(emu, "apply", "--auto-approve", "--allow-replace")
    assert proc.exit_code == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == (
        "Apply complete: 0 created, 0 updated, 1 replaced, 0 deleted."
    )
    assert calls["delete"][-1] == uuids["c"] and len(calls["create"]) == 1
    assert calls["create"][0]["modelUuid"] == next(
        m["uuid"] for m in emu.catalog.models if m["slug"] == "contacts"
    )
    assert_in_sync(tmp_path, emu)


# Faults are drawn in the order requests arrive, which 8 workers change from run to run; what a
# seed fixes is the sequence of draws. The first DRAWS draws of this one (more than the run can
# make, checked below) hold only 4 faults, 429 or 502, from draw 8 on: fewer than the 5 attempts
# any one request, listing or create gets, so no retry budget can run out whatever the order,
# and one run must succeed. A dropped answer is adopted by the listing that follows it and uses
# up no budget. The run reads 4 times before its first create (workspace, datasets, models, the
# listing), then at most once per fault until an answer is dropped; draws 8 to 99 hold 9 drops,
# so some of them fall on creates.
FAULTS = FaultConfig(
    seed=275, fail_5xx=0.02, fail_429=0.02, retry_after=0, drop_after_commit=0.1
)
DRAWS = 150


def test_a_hundred_specs_through_5xx_429_and_dropped_answers(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    injector = FaultInjector(FAULTS)  # the emulator's own draws, made in advance
    draws = [injector.draw() for _ in range(DRAWS)]
    faults = [n for n, draw in enumerate(draws) if draw.status is not None]
    assert len(faults) == 4 and min(faults) >= 8 and max(faults) < 100
    assert {draws[n].status for n in faults} == {429, 502}
    assert sum(draw.drop for draw in draws[8:100]) == 9

    emu = emulator_factory(token=TOKEN, fixtures=False, **vars(FAULTS))
    for i in range(100):
        write_spec(tmp_path / "segments" / "bulk", f"s{i:03d}.yaml",
                   simple(f"Bulk {i:03d}", limit=100 + i))

    proc = segsync(emu, "apply", "--auto-approve", "--parallelism", "8")
    assert proc.exit_code == 0, proc.stderr
    counts = emu.faults.counts
    assert counts["requests"] <= DRAWS
    assert counts["502_empty"] + counts["502_json"] + counts["502_html"] > 0
    assert counts["429"] > 0 and counts["dropped"] > 0

    names = [s["name"] for s in live(emu)]
    assert len(names) == 100 and len(set(names)) == 100
    state = read_state(tmp_path / "segsync.state.json")
    assert {e.uuid for e in state.segments.values()} == {s["uuid"] for s in live(emu)}
    emu.set_faults(FaultConfig())  # no more faults: check the content
    assert_in_sync(tmp_path, emu)
    check = segsync(emu, "plan", "--refresh", "--detailed-exitcode")
    assert check.exit_code == 0, check.stdout


def test_a_second_apply_fails_at_once_naming_the_holder(root: Path, emu: Emulator) -> None:
    arrived, release = threading.Event(), threading.Event()
    workspace = emu.store.workspace
    calls: list[int] = []

    def held_workspace() -> dict[str, Any]:
        calls.append(1)
        arrived.set()
        release.wait(120)
        return workspace()

    emu.store.workspace = held_workspace  # type: ignore[method-assign]
    # A real process: the lock must be held by another live process, with its own pid.
    first = subprocess.Popen(
        [sys.executable, "-m", "segsync", "apply", "--auto-approve"],
        cwd=root, env=process_env(env_for(emu)), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert arrived.wait(120), "the first apply never asked for the workspace"
        lock = (root / "segsync.state.json.lock").read_text()
        assert TOKEN not in lock and json.loads(lock)["pid"] == first.pid

        second = segsync(emu, "apply", "--auto-approve")
        assert second.exit_code == 1 and second.stdout == ""
        assert second.stderr.startswith(f"error: state is locked by pid {first.pid} on host ")
        assert "running `segsync apply`" in second.stderr
        assert "segsync state unlock" in second.stderr
        assert len(calls) == 1  # the second one never reached Cargo
    finally:
        release.set()
        out, err = first.communicate(timeout=240)
    assert first.returncode == 0, err
    assert TOKEN not in out + err
    assert out.splitlines()[-1] == "Apply complete: 6 created, 0 updated, 0 replaced, 0 deleted."
    assert not (root / "segsync.state.json.lock").exists()
    assert_in_sync(root, emu)


def test_the_token_never_shows_even_with_debug(root: Path, emu: Emulator) -> None:
    saved = root / "plan.json"
    planned = segsync(emu, "plan", "--out", str(saved))
    assert planned.exit_code == 0
    proc = segsync(emu, "apply", "--auto-approve", "--debug", str(saved))
    assert proc.exit_code == 0, proc.stderr
    debug = [line for line in proc.stderr.splitlines() if line.startswith("debug: ")]
    assert any(re.match(r"debug: POST /segmentation/segments -> 200 OK in", d) for d in debug)
    assert any(d.startswith("debug: GET /workspaceManagement/workspaces/current") for d in debug)
    # A wrong token: refused, and still not shown.
    refused = segsync(emu, "apply", "--auto-approve", "--debug",
                      env=env_for(emu, CARGO_API_TOKEN=TOKEN[::-1]))
    assert refused.exit_code == 1 and "Cargo refused the token (401)" in refused.stderr
    assert TOKEN[::-1] not in refused.stdout + refused.stderr
    for path in (saved, root / "segsync.state.json"):
        assert TOKEN not in path.read_text()


def test_a_saved_plan_is_applied_once_then_stale(root: Path, emu: Emulator) -> None:
    saved = root / "plan.json"
    assert segsync(emu, "plan", "--out", str(saved)).exit_code == 0
    proc = segsync(emu, "apply", "--auto-approve", str(saved))
    assert proc.exit_code == 0 and proc.stdout.endswith(
        "Apply complete: 6 created, 0 updated, 0 replaced, 0 deleted.\n"
    )
    stale = segsync(emu, "apply", "--auto-approve", str(saved))
    assert stale.exit_code == 1
    assert stale.stderr.startswith(f"error: {saved}: the saved plan is stale: the state file is ")
    assert stale.stdout == ""


def test_without_a_terminal_apply_needs_auto_approve(root: Path, emu: Emulator) -> None:
    calls = record_calls(emu)
    proc = segsync(emu, "apply")
    assert proc.exit_code == 1 and proc.stdout == ""
    assert proc.stderr == (
        "error: apply asks for confirmation, but there is no terminal to ask on; pass "
        "--auto-approve to apply without asking (as in CI)\n"
    )
    assert calls["list"] == [] and not (root / "segsync.state.json").exists()


def test_errors_before_any_change(root: Path, emu: Emulator) -> None:
    (root / "segments" / "bad.yaml").write_text("name: Bad\nmodel: companies\nfilter: {}\n")
    proc = segsync(emu, "apply", "--auto-approve")
    assert proc.exit_code == 1 and proc.stdout == ""
    assert proc.stderr == (
        "segments/bad.yaml:3:9: filter: missing required key 'conjonction'\n"
        "segments/bad.yaml:3:9: filter: missing required key 'groups'\n"
        "error: 2 validation errors\n"
    )
    assert not (root / "segsync.state.json.lock").exists()
    (root / "segments" / "bad.yaml").unlink()

    proc = segsync(emu, "apply", "--auto-approve", env=env_for(emu, CARGO_API_TOKEN=None))
    assert proc.exit_code == 1 and "CARGO_API_TOKEN is not set" in proc.stderr
    assert not (root / "segsync.state.json.lock").exists()


def test_failures_are_listed_and_a_rerun_finishes(root: Path, emu: Emulator) -> None:
    from segsync.emulator.store import HttpError

    store = emu.store
    create = type(store).create.__get__(store)

    def refuse_icp(body: Any) -> Any:
        if body["name"] == "ICP accounts":
            raise HttpError(400, "filter: refused by the test", "invalidFilter")
        return create(body)

    store.create = refuse_icp  # type: ignore[method-assign]
    proc = segsync(emu, "apply", "--auto-approve")
    assert proc.exit_code == 1
    assert proc.stdout.splitlines()[-1] == (
        "Apply incomplete: 3 created, 0 updated, 0 replaced, 0 deleted; 1 failed, 2 skipped."
    )
    errors = proc.stderr.splitlines()
    assert errors[0] == "error: sales/enterprise-eu: skipped: sales/icp failed"
    assert errors[1].startswith("error: sales/icp: creating segment 'ICP accounts' failed: ")
    assert errors[2] == "error: sales/young-startups: skipped: sales/icp failed"
    assert errors[-1] == "error: 3 actions failed"

    store.create = create  # type: ignore[method-assign]
    again = segsync(emu, "apply", "--auto-approve")
    assert again.exit_code == 0, again.stderr
    assert again.stdout.splitlines()[-1] == (
        "Apply complete: 3 created, 0 updated, 0 replaced, 0 deleted."
    )
    assert_in_sync(root, emu)
