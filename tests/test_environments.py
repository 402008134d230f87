"""Environments (segsync.toml, ``[tool.segsync]`` in pyproject.toml, ``--env``, SEGSYNC_ENV) end
to end: one spec tree applied to two emulated workspaces, "staging" and "production" (same
models and slugs, other UUIDs), each with its own state file, URL and token variable.

The command line runs in this process (click's CliRunner) in the test's folder. One run is a
real process: the apply refused because its state belongs to the other workspace stops while
its background reads of the datasets and models may still be under way (see
tests/test_cli_apply.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from segsync.emulator.server import Emulator
from tests.helpers import EXAMPLES, run_cli

STAGING_TOKEN = "stg-T0K3N-5a1e9c"
PRODUCTION_TOKEN = "prd-T0K3N-77b3f0"
NO_CONFIG_ENV = (
    "error: no environment 'staging': there is no segsync.toml (or [tool.segsync] in "
    "pyproject.toml) with [env.NAME] tables here\n"
)
EXAMPLE_NAMES = {
    "Decision makers (non-US)", "Newsletter - engaged subscribers", "ICP accounts",
    "Stale opportunities", "Enterprise EU", "Young startups",
}


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command runs in the test's own folder holding the example specs, with no
    CARGO_/SEGSYNC_ variable set."""
    for name in list(os.environ):
        if name.startswith(("CARGO_", "SEGSYNC_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(EXAMPLES, tmp_path / "segments")


def segsync(*args: str, **env: str | None) -> tuple[int, str, str]:
    """``segsync ARGS`` with ``env`` laid over the environment: (exit code, stdout, stderr).
    No token may show."""
    result = run_cli(args, env=env)
    for token in (STAGING_TOKEN, PRODUCTION_TOKEN):
        assert token not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def toml_env(name: str, state: str, token_env: str, url: str | None = None) -> str:
    url_line = f'api-url = "{url}"\n' if url is not None else ""
    return f'[env.{name}]\nstate = "{state}"\n{url_line}token-env = "{token_env}"\n'


@pytest.fixture
def staging(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory(workspace="staging", fixtures=False, token=STAGING_TOKEN)


@pytest.fixture
def production(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory(workspace="production", fixtures=False, token=PRODUCTION_TOKEN)


@pytest.fixture
def configured(
    tmp_path: Path, staging: Emulator, production: Emulator, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """segsync.toml with [env.staging] and [env.production]; both tokens set."""
    (tmp_path / "segsync.toml").write_text(
        "# Two workspaces, one spec tree.\n"
        + toml_env("staging", "staging.state.json", "CARGO_STAGING_TOKEN", staging.url)
        + "\n"
        + toml_env("production", "production.state.json", "CARGO_PRODUCTION_TOKEN",
                   production.url),
        encoding="utf-8",
    )
    monkeypatch.setenv("CARGO_STAGING_TOKEN", STAGING_TOKEN)
    monkeypatch.setenv("CARGO_PRODUCTION_TOKEN", PRODUCTION_TOKEN)
    return tmp_path


def live(emu: Emulator) -> dict[str, str]:
    """uuid -> name of each segment the emulator holds (none is removed here)."""
    segments = emu.store.raw_segments()
    assert all(s["deletedAt"] is None for s in segments)
    return {s["uuid"]: s["name"] for s in segments}


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def assert_applied(code_out_err: tuple[int, str, str], emu: Emulator) -> None:
    code, out, err = code_out_err
    assert (code, err) == (0, "")
    lines = out.splitlines()
    name = emu.catalog.workspace_name
    assert lines[0] == f"Target workspace: {name} ({emu.catalog.workspace_uuid})"
    assert lines[-1] == "Apply complete: 6 created, 0 updated, 0 replaced, 0 deleted."


# --- 4. two environments, one spec tree ------------------------------------------------------


def test_each_environment_gets_its_own_segments_and_state(
    configured: Path, staging: Emulator, production: Emulator
) -> None:
    assert_applied(segsync("--env", "staging", "apply", "--auto-approve"), staging)
    assert live(production) == {}
    assert_applied(segsync("apply", "--auto-approve", "--env", "production"), production)

    states = {
        emu: read_json(configured / f"{emu.catalog.workspace_name}.state.json")
        for emu in (staging, production)
    }
    for emu, state in states.items():
        assert state["workspaceUuid"] == emu.catalog.workspace_uuid
        uuids = {e["uuid"] for e in state["segments"].values()}
        assert live(emu) == {e["uuid"]: e["applied"]["name"] for e in state["segments"].values()}
        assert set(live(emu).values()) == EXAMPLE_NAMES and len(uuids) == 6
    assert states[staging]["workspaceUuid"] != states[production]["workspaceUuid"]
    assert not {e["uuid"] for e in states[staging]["segments"].values()} & {
        e["uuid"] for e in states[production]["segments"].values()
    }
    assert not (configured / "segsync.state.json").exists()

    in_sync = (0, "No changes. 6 segments up to date.\n", "")
    assert segsync("--env", "staging", "plan", "--refresh") == in_sync
    assert segsync("--env", "production", "plan", "--refresh") == in_sync
    assert segsync("plan", "--refresh", SEGSYNC_ENV="production") == in_sync
    assert segsync("--env", "staging", "validate", "--remote") == (0, "6 specs, 0 errors\n", "")

    # SEGSYNC_ENV=production is --env production: the same plan of the same segment, against
    # production (the staging token is not even needed).
    icp = configured / "segments" / "sales" / "icp.yaml"
    icp.write_text(icp.read_text(encoding="utf-8") + "limit: 100\n", encoding="utf-8")
    by_flag = segsync("--env", "production", "plan", "--refresh", "--format", "json")
    by_variable = segsync("plan", "--refresh", "--format", "json",
                          SEGSYNC_ENV="production", CARGO_STAGING_TOKEN=None)
    assert by_flag == by_variable and by_flag[0] == 0
    (action,) = [a for a in json.loads(by_flag[1])["actions"] if a["action"] != "unchanged"]
    assert (action["id"], action["action"]) == ("sales/icp", "update")
    assert action["uuid"] == states[production]["segments"]["sales/icp"]["uuid"]
    assert action["uuid"] != states[staging]["segments"]["sales/icp"]["uuid"]


# --- 5. a state used against the other environment -------------------------------------------


def test_a_state_used_against_the_other_workspace_is_refused(
    configured: Path, staging: Emulator, production: Emulator
) -> None:
    assert_applied(segsync("--env", "staging", "apply", "--auto-approve"), staging)
    state = configured / "staging.state.json"
    before = state.read_bytes()
    # --state given explicitly wins over the environment's; the token is production's.
    proc = subprocess.run(
        [sys.executable, "-m", "segsync", "--env", "production", "apply", "--auto-approve",
         "--state", "staging.state.json"],
        env=dict(os.environ), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=120,
    )
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"error: the state belongs to workspace {staging.catalog.workspace_uuid}, but the token "
        f"is for workspace production ({production.catalog.workspace_uuid}); use that "
        "workspace's token, or the state file of this workspace (--state)\n"
    )
    assert PRODUCTION_TOKEN not in proc.stderr
    assert live(production) == {}
    assert len(live(staging)) == 6
    assert state.read_bytes() == before
    assert sorted(p.name for p in configured.iterdir()) == [
        "segments", "segsync.toml", "staging.state.json"
    ]


# --- 6. configuration errors, pyproject.toml, no configuration -------------------------------


def test_an_unknown_environment_name(configured: Path) -> None:
    assert segsync("--env", "stagng", "plan") == (
        1, "", "error: no environment 'stagng' (did you mean 'staging'?); configured: "
        "production, staging\n"
    )
    assert segsync("validate", SEGSYNC_ENV="prodution") == (
        1, "", "error: no environment 'prodution' (did you mean 'production'?); configured: "
        "production, staging\n"
    )


def test_a_missing_token_variable_names_it_and_its_environment(
    configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARGO_PRODUCTION_TOKEN")
    missing = (
        "error: CARGO_PRODUCTION_TOKEN is not set: it holds the token of environment "
        "'production' (segsync.toml)\n"
    )
    assert segsync("--env", "production", "plan", "--refresh") == (1, "", missing)
    assert segsync("--env", "production", "apply", "--auto-approve") == (1, "", missing)
    assert not (configured / "production.state.json.lock").exists()
    # CARGO_API_TOKEN is not the environment's token variable.
    assert segsync("--env", "production", "columns", CARGO_API_TOKEN=PRODUCTION_TOKEN) == (
        1, "", missing
    )
    # Offline commands need no token.
    assert segsync("--env", "production", "validate") == (0, "6 specs, 0 errors\n", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[env.staging]\nstate = "staging.state.json"\ntoken-env = "T"\ntoken_env = "T"\n',
            "env.staging: unknown key 'token_env' (did you mean 'token-env'?)",
        ),
        (
            '[environments.staging]\nstate = "staging.state.json"\ntoken-env = "T"\n',
            "unknown key 'environments' (expected [env.NAME] tables)",
        ),
    ],
)
def test_an_unknown_key_in_segsync_toml(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "segsync.toml").write_text(text, encoding="utf-8")
    assert segsync("--env", "staging", "plan") == (1, "", f"error: segsync.toml: {message}\n")


def test_tool_segsync_in_pyproject_then_segsync_toml_wins(
    tmp_path: Path, staging: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "segments"\nversion = "1"\n\n'
        + toml_env("staging", "py.state.json", "PY_STAGING_TOKEN", staging.url)
        .replace("[env.staging]", "[tool.segsync.env.staging]"),
        encoding="utf-8",
    )
    assert segsync("--env", "staging", "plan", "--refresh") == (
        1, "", "error: PY_STAGING_TOKEN is not set: it holds the token of environment "
        "'staging' (pyproject.toml [tool.segsync])\n"
    )
    monkeypatch.setenv("PY_STAGING_TOKEN", STAGING_TOKEN)
    assert_applied(segsync("--env", "staging", "apply", "--auto-approve"), staging)
    state = read_json(tmp_path / "py.state.json")
    assert state["workspaceUuid"] == staging.catalog.workspace_uuid
    assert segsync("--env", "staging", "plan") == (0, "No changes. 6 segments up to date.\n", "")

    # Both files: segsync.toml wins (its own, still empty, state file; its token variable).
    (tmp_path / "segsync.toml").write_text(
        toml_env("staging", "toml.state.json", "TOML_STAGING_TOKEN", staging.url),
        encoding="utf-8",
    )
    code, out, err = segsync("--env", "staging", "plan")
    assert (code, err) == (0, "")
    assert out.endswith("\nPlan: 6 to create, 0 to update, 0 to replace, 0 to delete, "
                        "0 unchanged.\n")
    assert segsync("--env", "staging", "plan", "--refresh") == (
        1, "", "error: TOML_STAGING_TOKEN is not set: it holds the token of environment "
        "'staging' (segsync.toml)\n"
    )
    assert segsync("--env", "staging", "state", "list") == (
        0, "toml.state.json: version 1, serial 0, lineage -, workspace -\nno segments\n", ""
    )
    assert not (tmp_path / "toml.state.json").exists()


def test_without_configuration_env_is_an_error_and_nothing_else_changes(
    tmp_path: Path, staging: Emulator
) -> None:
    # A pyproject.toml without [tool.segsync] is no configuration.
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    assert segsync("--env", "staging", "plan") == (1, "", NO_CONFIG_ENV)
    assert segsync("plan", "--env", "staging") == (1, "", NO_CONFIG_ENV)
    assert segsync("validate", SEGSYNC_ENV="staging") == (1, "", NO_CONFIG_ENV)
    assert segsync("validate") == (0, "6 specs, 0 errors\n", "")
    assert not list(tmp_path.glob("*.json"))

    cargo = {"CARGO_API_URL": staging.url, "CARGO_API_TOKEN": STAGING_TOKEN}
    assert_applied(segsync("apply", "--auto-approve", **cargo), staging)
    state = read_json(tmp_path / "segsync.state.json")
    assert state["workspaceUuid"] == staging.catalog.workspace_uuid
    assert live(staging) == {e["uuid"]: e["applied"]["name"] for e in state["segments"].values()}
    assert segsync("plan", "--refresh", **cargo) == (
        0, "No changes. 6 segments up to date.\n", ""
    )
    assert segsync("plan", "--refresh") == (
        1, "", "error: CARGO_API_TOKEN is not set: create a token in Cargo (Settings → API "
        "Tokens) and export it as CARGO_API_TOKEN\n"
    )
