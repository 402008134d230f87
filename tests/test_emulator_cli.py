"""``segsync emulator`` as a user runs it: a subprocess, its ready line, options and errors."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
from click.testing import CliRunner

from segsync.cli import cli
from segsync.emulator.data import build_catalog
from segsync.emulator.launcher import EmulatorProcess, launch_emulator
from segsync.emulator.server import Emulator

TOKEN = "cli-S3CR3T-7a1c9e"
MATCH_ALL = {"conjonction": "and", "groups": []}


def connect(proc: EmulatorProcess, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token or proc.token}"}
    return httpx.Client(base_url=proc.url, headers=headers, timeout=30, verify=False)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segsync", "emulator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_help_lists_every_option_with_an_example() -> None:
    result = CliRunner().invoke(cli, ["emulator", "--help"])
    assert result.exit_code == 0
    for option in (
        "--host", "--port", "--token", "--data", "--workspace", "--no-fixtures", "--lax",
        "--normalize", "--list-removed", "--seed", "--latency-ms", "--fail-5xx", "--fail-429",
        "--429-without-retry-after", "--retry-after", "--drop-after-commit", "--verbose",
    ):  # fmt: skip
        assert option in result.output, option
    assert "Example:" in result.output
    assert "segsync emulator --port 8787" in result.output
    assert "CARGO_API_URL=http://127.0.0.1:8787/v1" in result.output


def test_serves_logs_without_the_token_and_stops_cleanly() -> None:
    with launch_emulator("--verbose", token=TOKEN) as proc:
        assert proc.url.startswith("http://127.0.0.1:") and proc.url.endswith("/v1")
        with connect(proc) as api:
            assert api.get("/workspaceManagement/workspaces/current").status_code == 200
        with connect(proc, token="wrong") as api:
            assert api.get("/storage/models/list").status_code == 401
        code = proc.stop()
    assert code == 0
    assert proc.output[-1] == "segsync emulator stopped"
    assert not any("accepting any" in line for line in proc.output)
    demo = build_catalog()
    assert proc.output[0] == f"workspace 'demo' {demo.workspace_uuid}"
    assert f"  model crm.companies {demo.models[0]['uuid']}" in proc.output
    assert proc.errors == [
        "GET /v1/workspaceManagement/workspaces/current -> 200",
        "GET /v1/storage/models/list -> 401",
    ]
    assert all(TOKEN not in line for line in proc.output + proc.errors)


def test_without_token_any_token_is_accepted_and_said() -> None:
    with launch_emulator(token=None) as proc:
        assert "note: accepting any non-empty bearer token (use --token to require one)" in (
            proc.output
        )
        for token in ("x", "another"):
            with connect(proc, token=token) as api:
                assert api.get("/storage/datasets/list").status_code == 200


def test_data_file_carries_segments_across_runs(tmp_path: Path) -> None:
    data = tmp_path / "emulator.json"
    args = ("--data", str(data), "--workspace", "staging", "--no-fixtures")
    with launch_emulator(*args, token=TOKEN) as first:
        staging = build_catalog("staging")
        assert first.output[0] == f"workspace 'staging' {staging.workspace_uuid}"
        assert staging.workspace_uuid != build_catalog().workspace_uuid
        model = staging.models[0]["uuid"]
        with connect(first) as api:
            body = {"name": "kept", "modelUuid": model, "filter": MATCH_ALL}
            created = api.post("/segmentation/segments", json=body).json()["segment"]
        first.process.send_signal(signal.SIGINT)  # Ctrl-C
        assert first.process.wait(timeout=30) == 0
    assert first.output[-1] == "segsync emulator stopped"
    with launch_emulator(*args, token=TOKEN) as second, connect(second) as api:
        listed = api.get("/segmentation/segments/list").json()["segments"]
        assert [s["uuid"] for s in listed] == [created["uuid"]]
    other = run("--data", str(data), "--port", "0")
    assert other.returncode == 1
    assert other.stderr == (
        f"error: {data}: this data file belongs to workspace 'staging', not 'demo' "
        "(use --workspace to match it)\n"
    )


def test_port_in_use_is_an_error(emulator_factory: Callable[..., Emulator]) -> None:
    busy = emulator_factory()
    result = run("--port", str(busy.port))
    assert result.returncode == 1
    assert result.stderr == (
        f"error: cannot listen on 127.0.0.1:{busy.port}: Address already in use (another "
        "emulator or program uses that port; choose another with --port, or 0 for a free one)\n"
    )


def test_bad_fault_options_are_errors() -> None:
    both = run("--fail-5xx", "0.6", "--fail-429", "0.6")
    assert both.returncode == 1
    assert both.stderr == "error: --fail-5xx and --fail-429 together must not exceed 1\n"
    out_of_range = run("--fail-429", "2")
    assert out_of_range.returncode == 1
    assert "--fail-429" in out_of_range.stderr


def test_ctrl_c_stops_it_even_when_started_with_sigint_ignored(tmp_path: Path) -> None:
    """A shell starts a background job with SIGINT ignored, and a child inherits that: the
    emulator still stops on SIGINT (and folds its data file)."""
    data = tmp_path / "emulator.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "segsync", "emulator", "--port", "0", "--data", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("segsync emulator listening on "):
                break
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0
    assert out.splitlines()[-1] == "segsync emulator stopped"
    assert data.exists() and not Path(f"{data}.log").exists()
