"""`segsync apply` end to end: the real command line in a subprocess, against the emulator over
HTTP on a free loopback port. The emulator runs in the test process, so each test can count the
requests that reached its store."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from segsync.canonical import canonical_managed, to_wire
from segsync.emulator.server import Emulator
from segsync.specs import load_specs
from segsync.state import read_state

EXAMPLES = Path(__file__).resolve().parents[1] / "segments"
# A token no output may ever contain; every run below checks it.
TOKEN = "e2e-Secret-Token-7f3a9c1d5e"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def env_for(emu: Emulator, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARGO_", "SEGSYNC_"))}
    env.update({"CARGO_API_URL": emu.url, "CARGO_API_TOKEN": TOKEN, "NO_COLOR": "1", **extra})
    return env


def segsync(
    cwd: Path, emu: Emulator, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the command line; no terminal (stdin is /dev/null). The token must not leak."""
    proc = subprocess.run(
        [sys.executable, "-m", "segsync", *args],
        cwd=cwd,
        env=env or env_for(emu),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert TOKEN not in proc.stdout and TOKEN not in proc.stderr
    return proc


Calls = dict[str, list[Any]]


def record(emu: Emulator) -> Calls:
    """Count the creates, updates, deletes and lists that reach the emulator's store."""
    calls: Calls = {"create": [], "update": [], "delete": [], "list": []}
    store = emu.store
    cls = type(store)

    def wrap(name: str, key: str) -> None:
        original = getattr(cls, name).__get__(store)

        def recorded(*args: Any) -> Any:
            calls[key].append(args[0] if len(args) == 1 else args)
            return original(*args)

        setattr(store, name, recorded)

    wrap("create", "create")
    wrap("update", "update")
    wrap("delete", "delete")
    wrap("list_segments", "list")
    return calls


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


@pytest.fixture
def emu(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory(token=TOKEN)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "segments")
    return tmp_path


def simple(name: str, model: str = "companies", limit: int = 10) -> str:
    return textwrap.dedent(
        f"""\
        name: {name}
        model: {model}
        filter:
          conjonction: and
          groups:
            - conjonction: and
              conditions:
                - kind: string
                  columnSlug: country
                  operator: is
                  values: [FR, DE]
        limit: {limit}
        """
    )


def test_apply_the_examples_then_plan_shows_no_changes(root: Path, emu: Emulator) -> None:
    proc = segsync(root, emu, "apply", "--auto-approve")
    assert proc.returncode == 0, proc.stderr
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

    offline = segsync(root, emu, "plan", "--detailed-exitcode")
    assert (offline.returncode, offline.stdout) == (0, "No changes. 6 segments up to date.\n")
    refreshed = segsync(root, emu, "plan", "--refresh", "--detailed-exitcode")
    assert (refreshed.returncode, refreshed.stdout) == (0, "No changes. 6 segments up to date.\n")
    again = segsync(root, emu, "apply", "--auto-approve")
    assert again.returncode == 0
    assert again.stdout.splitlines()[1:] == ["No changes. 6 segments up to date."]


def test_edit_delete_and_model_change(tmp_path: Path, emu: Emulator) -> None:
    specs = tmp_path / "segments"
    specs.mkdir()
    (specs / "a.yaml").write_text(simple("A"))
    (specs / "b.yaml").write_text(simple("B"))
    (specs / "c.yaml").write_text(simple("C"))
    assert segsync(tmp_path, emu, "apply", "--auto-approve").returncode == 0
    uuids = {k: e.uuid for k, e in read_state(tmp_path / "segsync.state.json").segments.items()}
    calls = record(emu)

    # An edited spec: exactly one PUT, with only the changed field.
    (specs / "a.yaml").write_text(simple("A", limit=25))
    proc = segsync(tmp_path, emu, "apply", "--auto-approve")
    assert proc.returncode == 0
    assert calls["update"] == [(uuids["a"], {"limit": 25})]
    assert calls["create"] == [] and calls["delete"] == []
    assert re.search(rf"^~ a updated \(\d+\.\d\ds\) uuid {uuids['a']}; sent limit$",
                     proc.stdout, re.M)

    # A deleted spec: left in place without --prune, deleted with it.
    (specs / "b.yaml").unlink()
    proc = segsync(tmp_path, emu, "apply", "--auto-approve")
    assert proc.returncode == 0 and calls["delete"] == []
    assert "No longer managed, left in place (delete them with --prune):" in proc.stdout
    proc = segsync(tmp_path, emu, "apply", "--auto-approve", "--prune")
    assert proc.returncode == 0 and calls["delete"] == [uuids["b"]]
    assert proc.stdout.splitlines()[-1] == (
        "Apply complete: 0 created, 0 updated, 0 replaced, 1 deleted."
    )

    # A changed model: refused without --allow-replace, before any change.
    (specs / "c.yaml").write_text(simple("C", model="contacts"))
    proc = segsync(tmp_path, emu, "apply", "--auto-approve")
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: 1 segment would be replaced (deleted and created again, with a new UUID): c; "
        "run again with --allow-replace to do that\n"
    )
    assert calls["create"] == [] and len(calls["delete"]) == 1
    proc = segsync(tmp_path, emu, "apply", "--auto-approve", "--allow-replace")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == (
        "Apply complete: 0 created, 0 updated, 1 replaced, 0 deleted."
    )
    assert calls["delete"][-1] == uuids["c"] and len(calls["create"]) == 1
    assert calls["create"][0]["modelUuid"] == next(
        m["uuid"] for m in emu.catalog.models if m["slug"] == "contacts"
    )
    assert_in_sync(tmp_path, emu)


def test_a_hundred_specs_through_5xx_429_and_dropped_answers(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    emu = emulator_factory(
        token=TOKEN, fixtures=False, seed=11, fail_5xx=0.2, fail_429=0.1, retry_after=0,
        drop_after_commit=0.05,
    )
    specs = tmp_path / "segments" / "bulk"
    specs.mkdir(parents=True)
    for i in range(100):
        (specs / f"s{i:03d}.yaml").write_text(simple(f"Bulk {i:03d}", limit=100 + i))

    runs = [segsync(tmp_path, emu, "apply", "--auto-approve", "--parallelism", "8")]
    if runs[0].returncode != 0:  # allowed once: a retry budget can run out under 30 % faults
        print(runs[0].stderr)
        runs.append(segsync(tmp_path, emu, "apply", "--auto-approve", "--parallelism", "8"))
    assert runs[-1].returncode == 0, runs[-1].stderr
    counts = emu.faults.counts
    assert counts["502_empty"] + counts["502_json"] + counts["502_html"] > 0
    assert counts["429"] > 0 and counts["dropped"] > 0

    names = [s["name"] for s in live(emu)]
    assert len(names) == 100 and len(set(names)) == 100
    state = read_state(tmp_path / "segsync.state.json")
    assert {e.uuid for e in state.segments.values()} == {s["uuid"] for s in live(emu)}
    emu.set_faults(type(emu.faults.config)())  # no more faults: check the content
    assert_in_sync(tmp_path, emu)
    check = segsync(tmp_path, emu, "plan", "--refresh", "--detailed-exitcode")
    assert check.returncode == 0, check.stdout
    print(f"applies needed: {len(runs)}; faults: {dict(counts)}")


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
    first = subprocess.Popen(
        [sys.executable, "-m", "segsync", "apply", "--auto-approve"],
        cwd=root, env=env_for(emu), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert arrived.wait(120), "the first apply never asked for the workspace"
        lock = (root / "segsync.state.json.lock").read_text()
        assert TOKEN not in lock and json.loads(lock)["pid"] == first.pid

        second = segsync(root, emu, "apply", "--auto-approve")
        assert second.returncode == 1 and second.stdout == ""
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
    planned = segsync(root, emu, "plan", "--out", str(saved))
    assert planned.returncode == 0
    proc = segsync(root, emu, "apply", "--auto-approve", "--debug", str(saved))
    assert proc.returncode == 0, proc.stderr
    debug = [line for line in proc.stderr.splitlines() if line.startswith("debug: ")]
    assert any(re.match(r"debug: POST /segmentation/segments -> 200 OK in", d) for d in debug)
    assert any(d.startswith("debug: GET /workspaceManagement/workspaces/current") for d in debug)
    # A wrong token: refused, and still not shown.
    refused = segsync(root, emu, "apply", "--auto-approve", "--debug",
                      env=env_for(emu, CARGO_API_TOKEN=TOKEN[::-1]))
    assert refused.returncode == 1 and "Cargo refused the token (401)" in refused.stderr
    assert TOKEN[::-1] not in refused.stdout + refused.stderr
    for path in (saved, root / "segsync.state.json"):
        assert TOKEN not in path.read_text()


def test_a_saved_plan_is_applied_once_then_stale(root: Path, emu: Emulator) -> None:
    saved = root / "plan.json"
    assert segsync(root, emu, "plan", "--out", str(saved)).returncode == 0
    proc = segsync(root, emu, "apply", "--auto-approve", str(saved))
    assert proc.returncode == 0 and proc.stdout.endswith(
        "Apply complete: 6 created, 0 updated, 0 replaced, 0 deleted.\n"
    )
    stale = segsync(root, emu, "apply", "--auto-approve", str(saved))
    assert stale.returncode == 1
    assert stale.stderr.startswith(f"error: {saved}: the saved plan is stale: the state file is ")
    assert stale.stdout == ""


def test_without_a_terminal_apply_needs_auto_approve(root: Path, emu: Emulator) -> None:
    calls = record(emu)
    proc = segsync(root, emu, "apply")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (
        "error: apply asks for confirmation, but there is no terminal to ask on; pass "
        "--auto-approve to apply without asking (as in CI)\n"
    )
    assert calls["list"] == [] and not (root / "segsync.state.json").exists()


def test_errors_before_any_change(root: Path, emu: Emulator) -> None:
    (root / "segments" / "bad.yaml").write_text("name: Bad\nmodel: companies\nfilter: {}\n")
    proc = segsync(root, emu, "apply", "--auto-approve")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (
        "segments/bad.yaml:3:9: filter: missing required key 'conjonction'\n"
        "segments/bad.yaml:3:9: filter: missing required key 'groups'\n"
        "error: 2 validation errors\n"
    )
    assert not (root / "segsync.state.json.lock").exists()
    (root / "segments" / "bad.yaml").unlink()

    env = env_for(emu)
    del env["CARGO_API_TOKEN"]
    proc = segsync(root, emu, "apply", "--auto-approve", env=env)
    assert proc.returncode == 1 and "CARGO_API_TOKEN is not set" in proc.stderr
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
    proc = segsync(root, emu, "apply", "--auto-approve")
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-1] == (
        "Apply incomplete: 3 created, 0 updated, 0 replaced, 0 deleted; 1 failed, 2 skipped."
    )
    errors = proc.stderr.splitlines()
    assert errors[0] == "error: sales/enterprise-eu: skipped: sales/icp failed"
    assert errors[1].startswith("error: sales/icp: creating segment 'ICP accounts' failed: ")
    assert errors[2] == "error: sales/young-startups: skipped: sales/icp failed"
    assert errors[-1] == "error: 3 actions failed"

    store.create = create  # type: ignore[method-assign]
    again = segsync(root, emu, "apply", "--auto-approve")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == (
        "Apply complete: 3 created, 0 updated, 0 replaced, 0 deleted."
    )
    assert_in_sync(root, emu)
