"""`segsync state list|show|unlock`: whole outputs and exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import IO

import pytest
from click.testing import Result

from tests.helpers import run_cli, terminal_input
from tests.test_state import GOLDEN, T0

LOCK = {"pid": 4242, "host": "ci-runner-7", "createdAt": T0, "command": "segsync apply"}
HOLDER_LINE = (
    f"segsync.state.json.lock is held by pid 4242 on host ci-runner-7 since {T0} "
    "running `segsync apply`\n"
)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding the golden state file, as the current directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEGSYNC_STATE", raising=False)
    (tmp_path / "segsync.state.json").write_text(GOLDEN, encoding="utf-8")
    return tmp_path


def run(*args: str, stdin: str | IO[bytes] | None = None) -> Result:
    return run_cli(args, input=stdin)


LIST_TEXT = """\
segsync.state.json: version 1, serial 7, lineage 6f1c2b3a-0000-4000-8000-000000000001, workspace ws-1
ID                   UUID                                  MODEL      FILE                               FLAGS
sales/enterprise-eu  5d0b7f0e-7c3a-4f7e-8f56-3b1a9a0e2c11  companies  segments/sales/enterprise-eu.yaml  -
sales/icp            -                                     companies  -                                  protect,intent=create
"""  # noqa: E501


def test_list_text(repo: Path) -> None:
    result = run("state", "list")
    assert (result.exit_code, result.stdout, result.stderr) == (0, LIST_TEXT, "")


def test_list_json(repo: Path) -> None:
    result = run("state", "list", "--format", "json")
    assert (result.exit_code, result.stderr) == (0, "")
    assert (
        result.stdout
        == json.dumps(
            {
                "lineage": "6f1c2b3a-0000-4000-8000-000000000001",
                "segments": [
                    {
                        "file": "segments/sales/enterprise-eu.yaml",
                        "id": "sales/enterprise-eu",
                        "intent": None,
                        "model": "companies",
                        "modelUuid": "0b6f6c8e-1d2a-4d4e-9a51-2c0f3c6a7b10",
                        "pendingDelete": None,
                        "protect": False,
                        "uuid": "5d0b7f0e-7c3a-4f7e-8f56-3b1a9a0e2c11",
                    },
                    {
                        "file": None,
                        "id": "sales/icp",
                        "intent": {"at": T0, "op": "create"},
                        "model": "companies",
                        "modelUuid": None,
                        "pendingDelete": None,
                        "protect": True,
                        "uuid": None,
                    },
                ],
                "serial": 7,
                "version": 1,
                "workspaceUuid": "ws-1",
            },
            indent=2,
        )
        + "\n"
    )


NEW, OLD = "0b4e28ba-2fa1-41d2-883f-0016d3cca427", "7c1d6f0e-52b3-4a8e-9d21-3e5f7a9b1c04"


def test_list_pending_delete_flag_and_state_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("prod.json").write_text(
        json.dumps(
            {
                "version": 1,
                "serial": 2,
                "segments": {
                    "a": {"uuid": NEW, "model": "contacts", "pendingDelete": OLD}
                },
            }
        )
    )
    monkeypatch.setenv("SEGSYNC_STATE", "prod.json")
    result = run("state", "list")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        "prod.json: version 1, serial 2, lineage -, workspace -\n"
        "ID  UUID                                  MODEL     FILE  FLAGS\n"
        f"a   {NEW}  contacts  -     pendingDelete={OLD}\n"
    )


def test_list_of_a_missing_file_is_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("state", "list", "--state", "none.json")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == "none.json: version 1, serial 0, lineage -, workspace -\nno segments\n"
    assert list(tmp_path.iterdir()) == []


def test_list_of_a_corrupt_file_fails_and_leaves_it(repo: Path) -> None:
    broken = GOLDEN.replace('"serial": 7,', '"serial": 7')
    Path("segsync.state.json").write_text(broken, encoding="utf-8")
    result = run("state", "list")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: segsync.state.json:56:3: the state file is not valid JSON (Expecting ',' "
        "delimiter); restore it from git (`git checkout -- segsync.state.json`) or fix it by "
        "hand; segsync leaves it as it is\n"
    )
    assert Path("segsync.state.json").read_text(encoding="utf-8") == broken


def test_list_of_a_newer_file_fails(repo: Path) -> None:
    Path("segsync.state.json").write_text('{"version": 2}')
    result = run("state", "list")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: segsync.state.json: the state file has format version 2, but segsync "
    )


def test_state_that_is_a_directory_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("d").mkdir()
    result = run("state", "list", "--state", "d")
    assert result.exit_code == 1
    assert "'d' is a directory" in result.stderr


SHOW_TEXT = """\
sales/enterprise-eu
  uuid        5d0b7f0e-7c3a-4f7e-8f56-3b1a9a0e2c11
  model       companies
  modelUuid   0b6f6c8e-1d2a-4d4e-9a51-2c0f3c6a7b10
  file        segments/sales/enterprise-eu.yaml
  fileSha256  cd34
  protect     false
  appliedAt   2026-11-27T13:00:00.000Z
  digest      ab12
  refs        sales/icp -> 9a3e2d1c-0b4f-4e6d-8c7b-6a5f4e3d2c12
  applied
    {
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
    }
"""

SHOW_PENDING = """\
sales/icp
  uuid        - (create under way)
  model       companies
  modelUuid   -
  file        -
  fileSha256  -
  protect     true
  appliedAt   -
  digest      -
  refs        -
  intent      create since 2026-11-27T13:00:00.000Z
  applied     -
"""


def test_show_text(repo: Path) -> None:
    result = run("state", "show", "sales/enterprise-eu")
    assert (result.exit_code, result.stdout, result.stderr) == (0, SHOW_TEXT, "")
    result = run("state", "show", "sales/icp")
    assert (result.exit_code, result.stdout, result.stderr) == (0, SHOW_PENDING, "")


def test_show_json_is_the_entry_as_stored(repo: Path) -> None:
    stored = json.loads(GOLDEN)["segments"]["sales/enterprise-eu"]
    result = run("state", "show", "sales/enterprise-eu", "--format", "json")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == json.dumps(stored, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_show_unknown_id_suggests(repo: Path) -> None:
    result = run("state", "show", "sales/enterprise-us")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: segsync.state.json: no segment 'sales/enterprise-us' in the state file "
        "(did you mean 'sales/enterprise-eu'?)\n"
    )
    result = run("state", "show", "marketing")
    assert result.stderr == (
        "error: segsync.state.json: no segment 'marketing' in the state file; "
        "`segsync state list` shows the ids\n"
    )


def write_lock() -> None:
    Path("segsync.state.json.lock").write_text(json.dumps(LOCK))


def test_unlock_without_a_lock_exits_1(repo: Path) -> None:
    result = run("state", "unlock", "--yes")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: segsync.state.json.lock: there is no lock to remove (the file does not exist)\n"
    )


def test_unlock_without_terminal_refuses_without_yes(repo: Path) -> None:
    write_lock()
    result = run("state", "unlock")
    assert (result.exit_code, result.stdout) == (1, HOLDER_LINE)
    assert result.stderr == (
        "error: not removing the lock without confirmation: no terminal to ask on; "
        "pass --yes if that run has ended\n"
    )
    assert json.loads(Path("segsync.state.json.lock").read_text()) == LOCK


def test_unlock_with_yes(repo: Path) -> None:
    write_lock()
    result = run("state", "unlock", "--yes")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == HOLDER_LINE + "removed segsync.state.json.lock\n"
    assert sorted(p.name for p in repo.iterdir()) == ["segsync.state.json"]
    assert Path("segsync.state.json").read_text(encoding="utf-8") == GOLDEN


@pytest.mark.parametrize(("answer", "removed"), [("y", True), ("n", False), ("", False)])
def test_unlock_asks_on_a_terminal(repo: Path, answer: str, removed: bool) -> None:
    write_lock()
    result = run("state", "unlock", stdin=terminal_input(answer + "\n"))
    prompt = f"Remove it? Only do this if that run has ended [y/N]: {answer}\n"
    if removed:
        assert (result.exit_code, result.stderr) == (0, "")
        assert result.stdout == HOLDER_LINE + prompt + "removed segsync.state.json.lock\n"
        assert not Path("segsync.state.json.lock").exists()
    else:
        assert (result.exit_code, result.stdout) == (1, HOLDER_LINE + prompt)
        assert result.stderr == "error: aborted\n"
        assert json.loads(Path("segsync.state.json.lock").read_text()) == LOCK


def test_unlock_with_unreadable_lock_contents(repo: Path) -> None:
    Path("segsync.state.json.lock").write_text("")
    result = run("state", "unlock", "--yes")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        "segsync.state.json.lock is held by an unknown run (the lock file's contents are "
        "unreadable)\nremoved segsync.state.json.lock\n"
    )


@pytest.mark.parametrize("command", [[], ["list"], ["show"], ["unlock"]])
def test_every_state_command_has_help_with_an_example(command: list[str]) -> None:
    result = run("state", *command, "--help")
    assert result.exit_code == 0
    assert re.search(r"\n  Example:\n    segsync state ", result.stdout), result.stdout
