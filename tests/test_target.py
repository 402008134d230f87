"""``--target``: plan and apply part of the specs (and what they reference), never a delete."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from segsync.emulator.server import Emulator
from tests.helpers import EXAMPLES, run_cli


@pytest.fixture
def project(tmp_path: Path, empty_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "segments")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARGO_API_URL", empty_emulator.url)
    monkeypatch.setenv("CARGO_API_TOKEN", empty_emulator.token)
    return tmp_path


def test_a_partial_plan_says_so_and_holds_the_referenced_specs(project: Path) -> None:
    result = run_cli(["plan", "--target", "sales/enterprise-eu"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-2:] == [
        "Partial plan: --target sales/enterprise-eu and the specs they reference (2 of 6 "
        "specs); the others are not compared, nothing is deleted.",
        "Plan: 2 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged.",
    ]
    assert "+ sales/icp " in result.stdout and "+ sales/enterprise-eu " in result.stdout
    assert "marketing/" not in result.stdout


def test_apply_of_a_target_creates_only_it_and_leaves_the_rest_of_the_state(
    project: Path, empty_emulator: Emulator
) -> None:
    assert run_cli(["apply", "--auto-approve"]).exit_code == 0
    before = (project / "segsync.state.json").read_text()
    icp = project / "segments" / "sales" / "icp.yaml"
    icp.write_text(icp.read_text().replace("name: ICP accounts", "name: ICP accounts (v2)"))
    news = project / "segments" / "marketing" / "newsletter-engaged.yaml"
    news.write_text(news.read_text().replace("name: Newsletter", "name: Newsletter (new)"))
    result = run_cli(["apply", "--auto-approve", "--target", "sales/icp"])
    assert result.exit_code == 0, result.stderr
    assert "Apply complete: 0 created, 1 updated, 0 replaced, 0 deleted." in result.stdout
    names = sorted(s["name"] for s in empty_emulator.store.raw_segments())
    assert not any(n.startswith("Newsletter (new)") for n in names)  # not targeted: untouched
    after = (project / "segsync.state.json").read_text()
    assert after != before and "marketing/newsletter-engaged" in after  # the whole state kept
    plan = run_cli(["plan"])
    assert "Plan: 0 to create, 1 to update" in plan.stdout  # the newsletter change is still due


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "--target", "sales/*", "--prune"],
         "error: --target plans part of the specs, and --prune needs all of them (a spec left "
         "out would look deleted); use one or the other\n"),
        (["plan", "--target", "sales/icpp"],
         "error: --target 'sales/icpp' matches no spec id (did you mean 'sales/icp'?)\n"),
        (["apply", "--auto-approve", "--target", "sales/*", "plan.json"],
         "error: --target and a plan file: a saved plan is applied whole\n"),
    ],
)
def test_refusals(project: Path, args: list[str], message: str) -> None:
    (project / "plan.json").write_text("{}")
    result = run_cli(args)
    assert (result.exit_code, result.stderr) == (1, message)


def test_spec_ids_are_completed_for_target(project: Path) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, COMP_WORDS="segsync plan --target sales/", COMP_CWORD="3",
               _SEGSYNC_COMPLETE="bash_complete")
    # A real process: completion is what the shell runs.
    done = subprocess.run(
        [sys.executable, "-c", "from segsync.cli import cli; cli(prog_name='segsync')"],
        cwd=project, env=env, capture_output=True, text=True, check=False,
    )
    assert done.stdout.splitlines() == [
        "plain,sales/enterprise-eu", "plain,sales/icp", "plain,sales/stale-opportunities",
        "plain,sales/young-startups",
    ]
