"""Errors are rendered once, at the command-line edge: ``error: …``, exit 1, and a traceback only
with ``--debug`` (given to the group or to the command)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from segsync.apply import execute
from segsync.cli import cli
from segsync.client import CargoClient
from segsync.emulator.server import Emulator
from segsync.manager import prepare
from segsync.refresh import Catalog
from segsync.state import StateStore, read_state

SPEC = """\
name: {name}
model: companies
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - {{kind: string, columnSlug: country, operator: is, values: [FR]}}
"""


def test_a_user_error_is_one_line_and_a_traceback_only_with_debug(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = str(tmp_path / "nope")
    plain = runner.invoke(cli, ["plan", "--dir", missing])
    assert plain.exit_code == 1
    assert plain.stderr == f"error: {missing}: no such folder (give the specs folder with --dir)\n"
    for args in (["--debug", "plan", "--dir", missing], ["plan", "--dir", missing, "--debug"]):
        debug = runner.invoke(cli, args)
        assert debug.exit_code == 1
        assert "Traceback (most recent call last)" in debug.stderr
        assert "ConfigError" in debug.stderr
        assert debug.stderr.endswith(plain.stderr)


def test_spec_errors_go_to_stderr_or_become_annotations(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: X\nmodel: companies\nfilter: 3\n")
    runner = CliRunner()
    text = runner.invoke(cli, ["plan", "--dir", str(tmp_path)])
    assert text.exit_code == 1 and text.stdout == ""
    assert text.stderr == (
        f"{tmp_path}/bad.yaml:3:9: filter: expected a mapping, got the number 3\n"
        "error: 1 validation error\n"
    )
    github = runner.invoke(cli, ["plan", "--dir", str(tmp_path), "--format", "github"])
    assert github.exit_code == 1
    assert github.stdout == (
        f"::error file={tmp_path}/bad.yaml,line=3,col=9::filter: expected a mapping, "
        "got the number 3\n"
    )
    assert github.stderr == "error: 1 validation error\n"


class _BrokenClient(CargoClient):
    """A client with a bug in one call: apply must report it, with its traceback, and go on."""

    def create_segment(self, body: Any) -> Any:
        if body["name"] == "Broken":
            raise RuntimeError("boom")
        return super().create_segment(body)


def test_a_bug_in_one_task_is_reported_with_its_traceback(
    tmp_path: Path, empty_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segsync.specs import load_specs

    specs_dir = tmp_path / "segments"
    specs_dir.mkdir()
    (specs_dir / "ok.yaml").write_text(SPEC.format(name="Fine"))
    (specs_dir / "broken.yaml").write_text(SPEC.format(name="Broken"))
    state_path = tmp_path / "segsync.state.json"
    specs, state = load_specs(specs_dir), read_state(state_path)
    with _BrokenClient(empty_emulator.url, empty_emulator.token) as client:
        prepared = prepare(client, Catalog(client), specs, state)
        report = execute(
            prepared.plan, prepared.cargo, client, StateStore(state_path, state),
            workspace_uuid=prepared.workspace["uuid"],
        )
    by_id = {r.id: r for r in report.results}
    assert by_id["ok"].status == "done"
    assert by_id["broken"].status == "failed"
    assert by_id["broken"].message == "internal error: RuntimeError: boom"
    assert by_id["broken"].traceback is not None
    assert "RuntimeError: boom" in by_id["broken"].traceback
    # the bug struck inside the create call: its outcome is unknown, so the intent stays for
    # the next apply's lost-create search
    broken = read_state(state_path).segments["broken"]
    assert broken.uuid is None and broken.intent is not None and broken.intent.op == "create"


def test_no_arguments_prints_the_help_once() -> None:
    result = CliRunner().invoke(cli, [], prog_name="segsync")
    assert result.exit_code == 0
    assert result.stdout.count("Usage: segsync") == 1
    assert "Commands:" in result.stdout and result.stderr == ""


def test_sigterm_stops_apply_like_ctrl_c(tmp_path: Path, empty_emulator: Emulator) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys
    import threading

    from tests.helpers import spec_text, write_spec

    for i in range(12):
        write_spec(tmp_path / "segments", f"s{i:02d}.yaml", spec_text(f"Term {i:02d}"))
    store = empty_emulator.store
    create = type(store).create.__get__(store)
    third = threading.Event()
    count = [0]

    def slow(body: Any) -> Any:
        count[0] += 1
        if count[0] == 3:
            third.set()
        import time

        time.sleep(0.2)  # requests stay under way while SIGTERM arrives
        return create(body)

    store.create = slow  # type: ignore[method-assign]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARGO_", "SEGSYNC_"))}
    env.update({"CARGO_API_URL": empty_emulator.url, "CARGO_API_TOKEN": empty_emulator.token})
    # A real process: the signal is the point.
    proc = subprocess.Popen(
        [sys.executable, "-m", "segsync", "apply", "--auto-approve", "--parallelism", "2"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    assert third.wait(30)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert err.endswith(
        "error: stopped by SIGTERM: requests under way were let finish, the state file holds "
        "what finished and the lock is released; run the command again to go on\n"
    )
    assert "Traceback" not in err
    assert not (tmp_path / "segsync.state.json.lock").exists()
    state = json.loads((tmp_path / "segsync.state.json").read_text())
    live = {s["name"]: s["uuid"] for s in store.raw_segments() if s["deletedAt"] is None}
    recorded = {e["uuid"] for e in state["segments"].values() if "uuid" in e}
    assert recorded <= set(live.values())  # nothing recorded that Cargo lacks
    assert len(live) < 12  # it stopped before the end
    store.create = create  # type: ignore[method-assign]
    again = subprocess.run(
        [sys.executable, "-m", "segsync", "apply", "--auto-approve"], cwd=tmp_path, env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert again.returncode == 0, again.stderr
    names = [s["name"] for s in store.raw_segments() if s["deletedAt"] is None]
    assert sorted(names) == [f"Term {i:02d}" for i in range(12)]  # each once


def test_a_killed_run_s_temporary_state_files_are_removed_on_the_next_write(
    tmp_path: Path,
) -> None:
    from segsync.state import Entry, State, StateStore

    state = tmp_path / "segsync.state.json"
    leftover = tmp_path / "segsync.state.json.0123456789ab.tmp"
    other = tmp_path / "segsync.state.json.notours.tmp"
    leftover.write_text("{")
    other.write_text("keep")
    store = StateStore(state, State.empty())
    store.update({"a": Entry(model="m", uuid="0b4e28ba-2fa1-41d2-883f-0016d3cca427")})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "segsync.state.json", "segsync.state.json.notours.tmp",
    ]


def test_a_plan_file_that_cannot_be_written_names_the_plan_file(tmp_path: Path) -> None:
    import shutil

    from tests.helpers import EXAMPLES

    shutil.copytree(EXAMPLES, tmp_path / "segments")
    out = tmp_path / "missing" / "plan.json"
    result = CliRunner().invoke(
        cli, ["plan", "--dir", str(tmp_path / "segments"), "--state",
              str(tmp_path / "s.json"), "--out", str(out)],
    )
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {out}: cannot write the plan file (No such file or directory)\n"
    )
    assert ".tmp" not in result.stderr


def test_apply_s_help_shows_the_form_that_works_without_a_terminal() -> None:
    result = CliRunner().invoke(cli, ["apply", "--help"])
    assert "segsync plan --out plan.json && segsync apply --auto-approve plan.json" in (
        result.stdout
    )


def test_a_reference_across_two_spellings_of_one_model_is_not_refused_offline(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").write_text(SPEC.format(name="A").replace(
        "model: companies", "model: crm.companies"))
    (tmp_path / "b.yaml").write_text(
        "name: B\nmodel: companies\nfilter:\n  conjonction: and\n  groups:\n"
        "    - conjonction: and\n      conditions:\n"
        "        - {kind: segment, operator: in, segment: a}\n")
    (tmp_path / "c.yaml").write_text(
        "name: C\nmodel: contacts\nfilter:\n  conjonction: and\n  groups:\n"
        "    - conjonction: and\n      conditions:\n"
        "        - {kind: segment, operator: in, segment: a}\n")
    result = CliRunner().invoke(cli, ["validate", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    # companies and crm.companies may be one model (checked against Cargo later); contacts not
    assert result.stdout == (
        f"{tmp_path}/c.yaml:8:50: filter.groups[0].conditions[0].segment: spec 'a' is on model "
        "'crm.companies', not 'contacts'; a segment condition must name a segment of the same "
        "model\n3 specs, 1 error\n"
    )
