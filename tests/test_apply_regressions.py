"""End-to-end regressions of apply's crash safety in rarer paths: a replace over an unfinished
replace, a renamed spec whose model changed, and a renamed spec whose create was interrupted.
The command line runs in this process (the apply that is killed, in a real process) against an
in-process emulator whose store is hooked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from segsync.emulator.server import Emulator
from segsync.emulator.store import HttpError
from segsync.state import read_state
from tests.helpers import cargo_env, process_env, run_cli, spec_text, write_spec


class Project:
    def __init__(self, root: Path, emu: Emulator) -> None:
        self.root = root
        self.emu = emu
        (root / "segments").mkdir()
        self.env = cargo_env(emu.url, emu.token)

    def write(self, file: str, name: str, model: str) -> None:
        write_spec(self.root / "segments", file, spec_text(name, model=model))

    def apply(self, *args: str) -> Result:
        return run_cli(["apply", "--auto-approve", *args], env=self.env)

    def apply_killed_at_first_create(self, *args: str) -> None:
        """Run apply and SIGKILL it right after the emulator commits its first create."""
        store = self.emu.store
        real = store.create
        pid: list[int] = []

        def create_then_kill(body: Any) -> Any:
            result = real(body)
            os.kill(pid[0], signal.SIGKILL)
            return result

        store.create = create_then_kill  # type: ignore[method-assign]
        try:
            # A real process: it is killed with SIGKILL.
            proc = subprocess.Popen(
                [sys.executable, "-m", "segsync", "apply", "--auto-approve", *args],
                cwd=self.root, env=process_env(self.env), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            pid.append(proc.pid)
            assert proc.wait(timeout=120) == -signal.SIGKILL
        finally:
            store.create = real  # type: ignore[method-assign]
        unlock = run_cli(["state", "unlock", "--yes"], env=self.env)
        assert unlock.exit_code == 0, unlock.stderr

    def state(self) -> dict[str, Any]:
        """The entries on disk, as stored: the state file with its journal, if any."""
        state = read_state(self.root / "segsync.state.json")
        data = state.model_dump(mode="json", by_alias=True, exclude_none=True)
        return data["segments"]  # type: ignore[no-any-return]

    def live(self, name: str) -> list[str]:
        return [s["uuid"] for s in self.emu.store.raw_segments()
                if s["deletedAt"] is None and s["name"] == name]


@pytest.fixture
def project(
    tmp_path: Path, emulator_factory: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> Project:
    monkeypatch.chdir(tmp_path)
    return Project(tmp_path, emulator_factory(fixtures=False))


def test_replace_over_an_unfinished_replace_keeps_its_intent(project: Project) -> None:
    project.write("a.yaml", "A seg", "companies")
    assert project.apply().exit_code == 0
    first = project.state()["a"]["uuid"]
    store = project.emu.store
    real_delete = store.delete

    def linked(uuid: str) -> Any:
        if uuid == first:
            raise HttpError(409, "linked to a workflow", "segmentLinkedToWorkflow")
        return real_delete(uuid)

    store.delete = linked  # type: ignore[method-assign]
    project.write("a.yaml", "A seg", "contacts")
    assert project.apply("--allow-replace").exit_code == 1  # the old one could not go
    assert project.state()["a"]["pendingDelete"] == first
    store.delete = real_delete  # type: ignore[method-assign]

    intents: list[Any] = []
    real_create = store.create

    def record(body: Any) -> Any:
        intents.append(project.state()["a"].get("intent"))
        return real_create(body)

    store.create = record  # type: ignore[method-assign]
    project.write("a.yaml", "A seg", "companies")
    project.apply_killed_at_first_create("--allow-replace")
    store.create = real_create  # type: ignore[method-assign]
    assert intents and intents[0] is not None and intents[0]["op"] == "replace"

    done = project.apply("--allow-replace")
    assert done.exit_code == 0, done.stderr
    assert len(project.live("A seg")) == 1
    assert project.state()["a"]["uuid"] == project.live("A seg")[0]


def test_renamed_spec_whose_model_changed_is_replaced(project: Project) -> None:
    """The slug stays, but the state recorded another model UUID for it (say the model was
    recreated): a rename plus a replace, which must move the entry with its intent."""
    project.write("a.yaml", "MV seg", "contacts")
    assert project.apply().exit_code == 0
    path = project.root / "segsync.state.json"
    data = json.loads(path.read_text())
    old = data["segments"]["a"]["uuid"]
    companies = next(m["uuid"] for m in project.emu.catalog.models if m["slug"] == "companies")
    data["segments"]["a"]["modelUuid"] = companies
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    (project.root / "segments" / "a.yaml").rename(project.root / "segments" / "b.yaml")
    done = project.apply("--allow-replace")
    assert done.exit_code == 0, done.stderr
    assert list(project.state()) == ["b"]
    (uuid,) = project.live("MV seg")
    assert uuid == project.state()["b"]["uuid"] != old


def test_interrupted_create_of_a_renamed_spec_is_adopted(project: Project) -> None:
    project.write("a.yaml", "R seg", "companies")
    project.apply_killed_at_first_create()
    assert project.state()["a"]["intent"]["op"] == "create"
    (project.root / "segments" / "a.yaml").rename(project.root / "segments" / "b.yaml")
    done = project.apply()
    assert done.exit_code == 0, done.stderr
    assert "adopted" in done.stdout
    (uuid,) = project.live("R seg")
    assert project.state() == {"b": project.state()["b"]}
    assert project.state()["b"]["uuid"] == uuid
