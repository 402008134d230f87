"""The composite action (action.yml) run step by step the way a GitHub runner runs it.

A small harness reads action.yml, evaluates each step's ``if:``, expands the ``${{ … }}``
expressions it uses, and runs each ``run:`` step with ``bash --noprofile --norc -eo pipefail``
in its working directory, with the environment a runner gives a step (GITHUB_OUTPUT,
GITHUB_STEP_SUMMARY, GITHUB_EVENT_PATH, GITHUB_REF, …). ``actions/setup-python`` is skipped and
so is the pip install (segsync is installed in this virtualenv: its ``bin`` comes first on
PATH); ``actions/upload-artifact`` is simulated by copying ``path`` into an artifacts folder.

Around it: a bare ``origin`` repository and a developer's clone; each simulated run works in
its own shallow clone checked out (detached) at the pushed commit, as actions/checkout does
with ``persist-credentials: false``, with no git identity configured (as on a hosted runner);
an emulator for Cargo; a fake GitHub API (tests/fake_github.py) for the pull-request comment.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from segsync.emulator.server import Emulator
from segsync.emulator.store import HttpError
from segsync.github import COMMENT_LIMIT, MARKER
from segsync.specs import load_specs
from segsync.state import State, dump_state, read_state
from tests.fake_github import BOT, FakeGitHub
from tests.helpers import applied_state, spec_text, write_spec, write_state

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
VENV_BIN = Path(sys.executable).parent
#: The job's token (``github.token``): it must reach GitHub and never any output.
TOKEN = "ghs_fAkEt0kEn0123456789abcdefABCDEF0123"
REPOSITORY = "acme/segments"
SERVER_URL = "https://github.com"
PR = 7
PLAN_MARKER = f"{MARKER} segments -->"

_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_IF_COMMAND = re.compile(r"always\(\) && inputs\.command == '([a-z]+)'")
_PINNED = re.compile(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}")


# --- git ----------------------------------------------------------------------------------------


def git(cwd: Path, *args: str, env: Mapping[str, str], check: bool = True) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=dict(env), capture_output=True, text=True, check=False,
        stdin=subprocess.DEVNULL, timeout=60,
    )
    if check:
        assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


@dataclass
class Repos:
    """A bare ``origin``, a developer's clone of it on ``main``, and the runs' checkouts."""

    root: Path
    dev_env: dict[str, str]
    runner_env: dict[str, str]

    @property
    def origin(self) -> Path:
        return self.root / "origin.git"

    @property
    def dev(self) -> Path:
        return self.root / "dev"

    def dev_git(self, *args: str) -> str:
        return git(self.dev, *args, env=self.dev_env)

    def origin_git(self, *args: str, check: bool = True) -> str:
        return git(self.origin, *args, env=self.dev_env, check=check)

    def push(self, message: str, ref: str = "main") -> str:
        """Commit everything in the developer's clone and push it to ``ref``; the sha."""
        self.dev_git("add", "-A")
        self.dev_git("commit", "--quiet", "-m", message)
        self.dev_git("push", "--quiet", "origin", f"HEAD:refs/heads/{ref}"
                     if not ref.startswith("refs/") else f"HEAD:{ref}")
        return self.dev_git("rev-parse", "HEAD")

    def checkout(self, name: str, sha: str) -> Path:
        """What actions/checkout does: init, shallow fetch of the one commit, detached checkout,
        no credentials kept."""
        workspace = self.root / name
        workspace.mkdir()
        env = self.runner_env
        git(workspace, "init", "--quiet", env=env)
        git(workspace, "remote", "add", "origin", self.origin.as_uri(), env=env)
        git(workspace, "fetch", "--quiet", "--no-tags", "--depth=1", "origin",
            f"+{sha}:refs/remotes/origin/main", env=env)
        git(workspace, "checkout", "--quiet", "--detach", sha, env=env)
        return workspace

    def give_the_runner_an_identity(self) -> None:
        """What a workflow does with ``git config --global user.name/user.email``."""
        config = Path(self.runner_env["HOME"], ".gitconfig")
        config.write_text(config.read_text() + "\tname = runner\n\temail = runner@example.com\n")

    def main_sha(self) -> str:
        return self.origin_git("rev-parse", "refs/heads/main")

    def on_main(self, path: str) -> str:
        return self.origin_git("show", f"main:{path}")

    def subjects(self) -> list[str]:
        return self.origin_git("log", "--format=%s", "main").splitlines()


@pytest.fixture
def repos(tmp_path: Path) -> Repos:
    dev_home, runner_home = tmp_path / "dev-home", tmp_path / "runner-home"
    dev_home.mkdir()
    runner_home.mkdir()
    # A hosted runner has no git identity and cannot guess one ("runner@fv-az…(none)"):
    # useConfigOnly makes git refuse to guess here too, whatever this machine's hostname.
    (runner_home / ".gitconfig").write_text("[user]\n\tuseConfigOnly = true\n")
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CONFIG_NOSYSTEM": "1",
            "LANG": "C.UTF-8"}
    dev_env = {
        **base, "HOME": str(dev_home), "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL":
        "dev@example.com", "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    found = Repos(tmp_path, dev_env, {**base, "HOME": str(runner_home)})
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(found.origin),
        env=dev_env)
    git(tmp_path, "clone", "--quiet", str(found.origin), str(found.dev), env=dev_env)
    found.dev_git("checkout", "--quiet", "-B", "main")
    return found


# --- the runner ---------------------------------------------------------------------------------


@dataclass
class ActionRun:
    """What one run of the action left: the "Run segsync" step's exit code and streams, the
    action's outputs, the job summary and the uploaded artifacts."""

    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    artifacts: Path
    steps: list[tuple[str, str]]
    raw_outputs: str = ""

    @property
    def annotations(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("::")]

    def artifact(self, name: str) -> Path:
        return self.artifacts / name

    def texts(self) -> list[str]:
        """Everything the run wrote that someone could read."""
        written = [self.stdout, self.stderr, self.summary, self.raw_outputs]
        written += [p.read_text(encoding="utf-8", errors="replace")
                    for p in self.artifacts.rglob("*") if p.is_file()]
        return written


def parse_output_file(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT as the runner reads it: ``name=value`` or ``name<<DELIM`` … ``DELIM``."""
    found: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value: list[str] = []
            while lines[i] != delimiter:  # an unterminated heredoc fails the run
                value.append(lines[i])
                i += 1
            i += 1
            found[name] = "\n".join(value)
        else:
            name, _, rest = line.partition("=")
            found[name] = rest
    return found


@dataclass
class ActionRunner:
    """Runs action.yml's steps for one job; ``run`` may be called once per simulated run."""

    root: Path
    fake: FakeGitHub
    home: Path
    count: int = 0
    runs: list[ActionRun] = field(default_factory=list)

    def run(
        self,
        workspace: Path,
        inputs: Mapping[str, str],
        *,
        ref: str = "refs/heads/main",
        event_name: str = "push",
        event: Mapping[str, Any] | None = None,
        cargo: Emulator | None = None,
    ) -> ActionRun:
        self.count += 1
        base = self.root / f"run-{self.count}"
        temp, artifacts = base / "temp", base / "artifacts"
        temp.mkdir(parents=True)
        artifacts.mkdir()
        event_path = base / "event.json"
        event_path.write_text(json.dumps(event or {
            "ref": ref, "repository": {"full_name": REPOSITORY, "default_branch": "main"},
        }))
        unknown = set(inputs) - set(ACTION["inputs"])
        assert not unknown, f"not inputs of action.yml: {unknown}"
        context = {
            "github.action_path": str(ROOT),
            "github.token": TOKEN,
            "github.workspace": str(workspace),
            "runner.temp": str(temp),
        }
        values: dict[str, str] = {}
        step_outputs: dict[str, dict[str, str]] = {}

        def expand(text: str) -> str:
            def one(match: re.Match[str]) -> str:
                expression = match.group(1)
                if expression.startswith("inputs."):
                    return values[expression.removeprefix("inputs.")]
                output = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression)
                if output:  # an output a step did not set is the empty string
                    return step_outputs.get(output.group(1), {}).get(output.group(2), "")
                assert expression in context, f"an expression the harness does not know: {text}"
                return context[expression]

            return _EXPRESSION.sub(one, text)

        for name, spec in ACTION["inputs"].items():
            values[name] = expand(str(spec.get("default", "")))
        values.update(inputs)

        env_base = {
            "PATH": f"{VENV_BIN}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "LANG": "C.UTF-8",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_ACTION_PATH": str(ROOT),
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_REF": ref,
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_API_URL": self.fake.url,
            "GITHUB_SERVER_URL": SERVER_URL,
            "GITHUB_RUN_ID": str(9000 + self.count),
            "RUNNER_TEMP": str(temp),
        }
        if cargo is not None:
            env_base["CARGO_API_URL"] = cargo.url
            env_base["CARGO_API_TOKEN"] = cargo.token

        failed = False
        steps: list[tuple[str, str]] = []
        summary_parts: list[str] = []
        raw_outputs: list[str] = []
        returncode, stdout, stderr = 0, "", ""
        for index, step in enumerate(ACTION["runs"]["steps"]):
            name = step.get("name") or step.get("uses", "")
            condition = step.get("if")
            if condition is None:
                wanted = not failed
            else:
                matched = _IF_COMMAND.fullmatch(condition.strip())
                assert matched, f"an if: the harness does not know: {condition}"
                wanted = values["command"] == matched.group(1)
            if not wanted:
                steps.append((name, "skipped"))
                continue
            uses = step.get("uses")
            if uses is not None:
                assert _PINNED.fullmatch(uses.split(" ")[0]), f"not pinned to a sha: {uses}"
                if uses.startswith("actions/setup-python@"):
                    assert step["with"]["python-version"] == "${{ inputs.python-version }}"
                    steps.append((name, "setup-python (skipped: this virtualenv)"))
                elif uses.startswith("actions/upload-artifact@"):
                    options = {k: expand(str(v)) for k, v in step["with"].items()}
                    assert options["if-no-files-found"] == "ignore"
                    if not options["path"]:  # upload-artifact's path input is required
                        steps.append((name, "failed: Input required and not supplied: path"))
                        failed = True
                        continue
                    source = workspace / options["path"]
                    target = artifacts / options["name"]
                    if source.is_dir():
                        shutil.copytree(source, target)
                    elif source.is_file():
                        target.mkdir()
                        shutil.copy2(source, target / source.name)
                    steps.append((name, f"uploaded {options['name']}"))
                else:
                    raise AssertionError(f"a uses: the harness does not know: {uses}")
                continue
            if name.startswith("Install segsync"):
                # Installed from the action's own checkout, never from a registry.
                assert '"$ACTION_PATH"' in step["run"] and "pip install" in step["run"]
                assert step["env"] == {"ACTION_PATH": "${{ github.action_path }}"}
                steps.append((name, "skipped (segsync is installed in this virtualenv)"))
                continue
            assert step.get("shell") == "bash"
            output_file, summary_file = base / f"output-{index}", base / f"summary-{index}.md"
            output_file.touch()
            summary_file.touch()
            env = {
                **env_base,
                **{k: expand(str(v)) for k, v in (step.get("env") or {}).items()},
                "GITHUB_OUTPUT": str(output_file),
                "GITHUB_STEP_SUMMARY": str(summary_file),
            }
            cwd = workspace / expand(step.get("working-directory", "."))
            script = temp / f"step-{index}.sh"
            script.write_text(step["run"], encoding="utf-8")
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                cwd=cwd, env=env, capture_output=True, text=True, timeout=180,
                stdin=subprocess.DEVNULL, check=False,
            )
            script.unlink()
            raw = output_file.read_text(encoding="utf-8")
            raw_outputs.append(raw)
            if step.get("id"):
                step_outputs[step["id"]] = parse_output_file(raw)
            summary_parts.append(summary_file.read_text(encoding="utf-8"))
            steps.append((name, f"exit {done.returncode}"))
            if step.get("id") == "run":
                returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
            failed = failed or done.returncode != 0

        outputs: dict[str, str] = {}
        for name, spec in ACTION["outputs"].items():
            matched = re.fullmatch(r"\$\{\{ steps\.(\w+)\.outputs\.([\w-]+) \}\}", spec["value"])
            assert matched, spec["value"]
            step_id, key = matched.groups()
            if key in step_outputs.get(step_id, {}):
                outputs[name] = step_outputs[step_id][key]
        result = ActionRun(returncode, stdout, stderr, outputs, "".join(summary_parts),
                           artifacts, steps, "".join(raw_outputs))
        self.runs.append(result)
        return result


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture
def runner(tmp_path: Path, fake_github: FakeGitHub, repos: Repos) -> Iterator[ActionRunner]:
    actions = ActionRunner(tmp_path / "runner", fake_github, Path(repos.runner_env["HOME"]))
    yield actions
    # The job's token reached GitHub in the Authorization header only: never in anything a
    # run wrote, nor in a comment, nor in a checkout's git configuration.
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    for run in actions.runs:
        for text in run.texts():
            assert TOKEN not in text and basic not in text
    for comment in fake_github.comments:
        assert TOKEN not in comment.body
    for config in tmp_path.glob("*/.git/config"):
        assert TOKEN not in config.read_text()
    for request in fake_github.requests:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert TOKEN not in request.path


# --- Cargo --------------------------------------------------------------------------------------


def on_create(emu: Emulator, hook: Callable[[dict[str, Any]], None]) -> list[str]:
    """Call ``hook(body)`` before each create the emulator serves; the names created."""
    store = emu.store
    create = type(store).create.__get__(store)
    names: list[str] = []

    def wrapped(body: Any) -> Any:
        hook(body)
        result = create(body)
        names.append(body["name"])
        return result

    store.create = wrapped  # type: ignore[method-assign]
    return names


def live(emu: Emulator) -> list[dict[str, Any]]:
    return [s for s in emu.store.raw_segments() if s["deletedAt"] is None]


def live_names(emu: Emulator) -> list[str]:
    return sorted(s["name"] for s in live(emu))


def state_of(text: str) -> State:
    return State.model_validate_json(text)


def write_specs(folder: Path, names: Mapping[str, str]) -> None:
    """One spec per ``rel: segment name`` under ``folder/segments``."""
    for rel, name in names.items():
        write_spec(folder / "segments", rel, spec_text(name))


SET_1 = {"sales/icp.yaml": "ICP accounts", "sales/eu.yaml": "EU accounts",
         "marketing/news.yaml": "Newsletter"}
SET_2 = {"sales/us.yaml": "US accounts", "marketing/events.yaml": "Event leads"}


def first_commit(repos: Repos, specs: Mapping[str, str]) -> str:
    """Specs and an empty state file, committed on main and pushed."""
    write_specs(repos.dev, specs)
    write_state(repos.dev / "segsync.state.json", State.empty())
    return repos.push("specs")


def applied_commit(repos: Repos, specs: Mapping[str, str]) -> str:
    """Specs and the state of an earlier apply of them, committed on main and pushed."""
    write_specs(repos.dev, specs)
    state = applied_state(
        load_specs(repos.dev / "segments"),
        uuid_for=lambda spec_id: str(uuid.uuid5(uuid.NAMESPACE_URL, spec_id)),
    )
    write_state(repos.dev / "segsync.state.json", state)
    return repos.push("specs, applied")


def apply_inputs(**more: str) -> dict[str, str]:
    return {"command": "apply", "branch": "main", **more}


def pr_event(number: int = PR) -> dict[str, Any]:
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {"number": number, "base": {"ref": "main"}},
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }


# --- 1. two pushes close together -------------------------------------------------------------


@pytest.mark.parametrize(
    "identity",
    [
        pytest.param(False, id="hosted-runner"),
        pytest.param(True, id="git-identity-configured"),
    ],
)
def test_two_pushes_close_together_apply_once_each_on_the_tip(
    repos: Repos, runner: ActionRunner, empty_emulator: Emulator, identity: bool
) -> None:
    if identity:
        repos.give_the_runner_an_identity()
    commit_1 = first_commit(repos, SET_1)
    pushed: list[str] = []

    def developer_pushes_commit_2(body: dict[str, Any]) -> None:
        # While run A applies (after it fetched main's tip, before it pushes its state), a
        # developer merges commit 2: run A's first push is refused.
        if not pushed:
            write_specs(repos.dev, SET_2)
            pushed.append(repos.push("more specs"))

    on_create(empty_emulator, developer_pushes_commit_2)
    run_a = runner.run(repos.checkout("run-a", commit_1), apply_inputs(), cargo=empty_emulator)
    assert run_a.returncode == 0, run_a.stderr
    [commit_2] = pushed
    assert f"Applying main at {commit_1[:12]}" in run_a.stdout
    assert "::notice::state pushed to main after 2 attempts" in run_a.annotations
    assert run_a.outputs["has-changes"] == "true"
    assert json.loads(run_a.outputs["summary"])["created"] == 3
    assert live_names(empty_emulator) == sorted(SET_1.values())

    # Run B was triggered by commit 2 and checks it out: older than main after A's push.
    tip_after_a = repos.main_sha()
    assert tip_after_a != commit_2
    run_b = runner.run(repos.checkout("run-b", commit_2), apply_inputs(), cargo=empty_emulator)
    assert run_b.returncode == 0, run_b.stderr
    assert f"Applying main at {tip_after_a[:12]}" in run_b.stdout
    assert "::notice::state pushed to main" in run_b.annotations
    assert json.loads(run_b.outputs["summary"])["created"] == 2

    # No duplicate: exactly one live segment per spec name.
    every_name = sorted([*SET_1.values(), *SET_2.values()])
    assert live_names(empty_emulator) == every_name
    # Both state commits are on origin/main, on top of the developer's commit.
    subjects = repos.subjects()
    assert subjects == [
        f"segsync: state after apply of {tip_after_a[:12]}",
        f"segsync: state after apply of {commit_1[:12]}",
        "more specs",
        "specs",
    ]
    final = state_of(repos.on_main("segsync.state.json"))
    assert sorted(final.segments) == sorted(
        rel.removesuffix(".yaml") for rel in [*SET_1, *SET_2]
    )
    uuids = [str(entry.uuid) for entry in final.segments.values()]
    assert sorted(uuids) == sorted(s["uuid"] for s in live(empty_emulator))
    assert len(set(uuids)) == 5
    assert final.workspace_uuid == empty_emulator.catalog.workspace_uuid
    # The state artifact of each run is the state that run pushed.
    state_b = run_b.artifact("segsync-state") / "segsync.state.json"
    assert state_b.read_text() == repos.on_main("segsync.state.json") + "\n"


# --- 2. a partial failure ---------------------------------------------------------------------


def test_partial_apply_failure_still_pushes_the_state_and_fails_the_step(
    repos: Repos, runner: ActionRunner, empty_emulator: Emulator
) -> None:
    commit = first_commit(repos, SET_1)

    def refuse_newsletter(body: dict[str, Any]) -> None:
        if body["name"] == "Newsletter":
            raise HttpError(400, "filter: refused for the test", "invalidFilter")

    on_create(empty_emulator, refuse_newsletter)
    run = runner.run(repos.checkout("run", commit), apply_inputs(), cargo=empty_emulator)

    assert run.returncode == 1
    assert "error: 1 actions failed" in run.stderr
    assert any(line.startswith("::error::marketing/news: ") and "refused for the test" in line
               for line in run.annotations)
    assert "::notice::state pushed to main" in run.annotations
    assert live_names(empty_emulator) == ["EU accounts", "ICP accounts"]
    pushed = state_of(repos.on_main("segsync.state.json"))
    assert sorted(pushed.segments) == ["sales/eu", "sales/icp"]
    assert repos.subjects() == [f"segsync: state after apply of {commit[:12]}", "specs"]
    assert json.loads(run.outputs["summary"])["created"] == 2
    assert "Apply incomplete" in run.summary
    # The step failed, and the state artifact was still kept (if: always()).
    assert ("Keep the state file", "uploaded segsync-state") in run.steps
    kept = run.artifact("segsync-state") / "segsync.state.json"
    assert read_state(kept) == pushed


# --- 3. another branch ------------------------------------------------------------------------


def test_apply_from_another_branch_refuses_and_changes_nothing(
    repos: Repos, runner: ActionRunner, empty_emulator: Emulator
) -> None:
    commit = first_commit(repos, SET_1)
    workspace = repos.checkout("run", commit)
    before = sorted(str(p.relative_to(workspace)) for p in workspace.rglob("*"))

    run = runner.run(workspace, apply_inputs(), ref="refs/heads/feature", cargo=empty_emulator)

    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "error: this run is for refs/heads/feature; segsync applies only from refs/heads/main "
        "(set the input branch to apply another one)"
    )
    assert live(empty_emulator) == []
    assert repos.main_sha() == commit
    assert git(workspace, "rev-parse", "HEAD", env=repos.runner_env) == commit
    assert git(workspace, "status", "--porcelain", env=repos.runner_env) == ""
    assert sorted(str(p.relative_to(workspace)) for p in workspace.rglob("*")) == before
    assert "has-changes" not in run.outputs


# --- 4. plan on a pull request ----------------------------------------------------------------


def test_plan_on_a_pull_request_keeps_one_comment(
    repos: Repos, runner: ActionRunner, fake_github: FakeGitHub
) -> None:
    applied_commit(repos, SET_1)
    # 120 comments before segsync's: its comment is found on the list's second page.
    for i in range(120):
        fake_github.add_comment(PR, f"looks good {i}", f"reviewer{i % 3}")
    other = fake_github.add_comment(PR, f"{PLAN_MARKER}\nsomeone else's copy", "mallory")
    repos.dev_git("checkout", "--quiet", "-b", "feature")
    write_specs(repos.dev, SET_2)
    head = repos.push("two more", ref=f"refs/pull/{PR}/merge")

    run = runner.run(repos.checkout("pr-1", head), {"command": "plan"}, ref=f"refs/pull/{PR}/merge",
                     event_name="pull_request", event=pr_event())

    assert run.returncode == 0, run.stderr
    summary_line = "Plan: 2 to create, 0 to update, 0 to replace, 0 to delete, 3 unchanged."
    assert run.annotations == [
        f"::notice title=segsync plan::{summary_line}",
        "::notice::plan comment created",
    ]
    out_dir = Path(runner.root / "run-1" / "temp" / "segsync")
    markdown = (out_dir / "plan.md").read_text()
    assert markdown.startswith(f"**{summary_line}**")
    assert run.summary == markdown
    assert run.outputs["has-changes"] == "true"
    counts = json.loads(run.outputs["summary"])
    assert {k: v for k, v in counts.items() if v} == {"create": 2, "unchanged": 3}
    assert run.outputs["plan-file"] == str(out_dir / "segsync-plan.json")
    assert json.loads(Path(run.outputs["plan-file"]).read_text())
    assert sorted(p.name for p in run.artifact("segsync-plan").iterdir()) == [
        "plan.json", "plan.md", "plan.txt", "segsync-plan.json",
    ]
    ours = [c for c in fake_github.on_issue(PR) if c.login == BOT]
    assert len(ours) == 1
    [comment] = ours
    assert comment.body.startswith(f"{PLAN_MARKER}\n**{summary_line}**")
    assert f"{SERVER_URL}/{REPOSITORY}/actions/runs/9001" in comment.body
    listed = [r.path for r in fake_github.requests if r.method == "GET"]
    assert listed == [
        f"/repos/{REPOSITORY}/issues/{PR}/comments?per_page=100",
        f"/repos/{REPOSITORY}/issues/{PR}/comments?per_page=100&page=2",
    ]

    # A new push to the pull request changes a spec: the same comment is updated.
    write_spec(repos.dev / "segments", "sales/us.yaml", spec_text("US accounts", limit=10))
    write_spec(repos.dev / "segments", "sales/ca.yaml", spec_text("CA accounts"))
    head_2 = repos.push("three more", ref=f"refs/pull/{PR}/merge")
    run_2 = runner.run(repos.checkout("pr-2", head_2), {"command": "plan"},
                       ref=f"refs/pull/{PR}/merge", event_name="pull_request", event=pr_event())

    assert run_2.returncode == 0, run_2.stderr
    assert "::notice::plan comment updated" in run_2.annotations
    ours_2 = [c for c in fake_github.on_issue(PR) if c.login == BOT]
    assert [c.id for c in ours_2] == [comment.id]
    assert ours_2[0].body.startswith(
        f"{PLAN_MARKER}\n**Plan: 3 to create, 0 to update, 0 to replace, 0 to delete, "
        "3 unchanged.**"
    )
    assert "CA accounts" in ours_2[0].body and "/actions/runs/9002" in ours_2[0].body
    # Another author's comment with the same marker is never touched.
    assert other.body == f"{PLAN_MARKER}\nsomeone else's copy" and other.login == "mallory"
    assert len(fake_github.on_issue(PR)) == 122
    writes = [(r.method, r.path) for r in fake_github.requests if r.method != "GET"]
    assert writes == [
        ("POST", f"/repos/{REPOSITORY}/issues/{PR}/comments"),
        ("PATCH", f"/repos/{REPOSITORY}/issues/comments/{comment.id}"),
    ]


# --- 5. a fork --------------------------------------------------------------------------------


def test_plan_on_a_fork_skips_the_comment_and_stays_green(
    repos: Repos, runner: ActionRunner, fake_github: FakeGitHub
) -> None:
    applied_commit(repos, SET_1)
    write_specs(repos.dev, SET_2)
    head = repos.push("from a fork", ref=f"refs/pull/{PR}/merge")
    fake_github.read_only = True

    run = runner.run(repos.checkout("pr", head), {"command": "plan"}, ref=f"refs/pull/{PR}/merge",
                     event_name="pull_request", event=pr_event())

    assert run.returncode == 0, run.stderr
    assert run.annotations[-1] == (
        "::notice::plan comment skipped: GitHub answered 403 (a fork's pull request gets a "
        "read-only token); the plan is in the job summary"
    )
    assert run.summary.startswith(
        "**Plan: 2 to create, 0 to update, 0 to replace, 0 to delete, 3 unchanged.**"
    )
    assert "US accounts" in run.summary
    assert fake_github.comments == []
    assert [r.method for r in fake_github.requests] == ["GET", "POST"]
    assert run.outputs["has-changes"] == "true"


# --- 6. invalid specs -------------------------------------------------------------------------


def test_invalid_specs_fail_with_annotations_and_replace_the_comment(
    repos: Repos, runner: ActionRunner, fake_github: FakeGitHub
) -> None:
    first_commit(repos, SET_1)
    write_specs(repos.dev, SET_2)
    head = repos.push("valid", ref=f"refs/pull/{PR}/merge")
    first = runner.run(repos.checkout("pr-1", head), {"command": "plan"},
                       ref=f"refs/pull/{PR}/merge", event_name="pull_request", event=pr_event())
    assert first.returncode == 0, first.stderr
    [comment] = fake_github.on_issue(PR)

    write_spec(repos.dev / "segments", "sales/us.yaml",
               spec_text("US accounts", extra="limt: 5\n"))
    write_spec(repos.dev / "segments", "sales/bad.yaml", "name: Bad\nmodel: companies\n")
    head_2 = repos.push("broken", ref=f"refs/pull/{PR}/merge")
    run = runner.run(repos.checkout("pr-2", head_2), {"command": "plan"},
                     ref=f"refs/pull/{PR}/merge", event_name="pull_request", event=pr_event())

    assert run.returncode == 1
    errors = [line for line in run.annotations if line.startswith("::error ")]
    files = sorted(re.match(r"::error file=([^,]+),line=(\d+)", line).groups()  # type: ignore[union-attr]
                   for line in errors)
    us_line = spec_text("US accounts").count("\n") + 1
    assert ("segments/sales/us.yaml", str(us_line)) in files
    assert any(f == "segments/sales/bad.yaml" for f, _ in files)
    assert "::notice::plan comment updated" in run.annotations
    [updated] = fake_github.on_issue(PR)
    assert updated.id == comment.id
    assert updated.body.startswith(f"{PLAN_MARKER}\n**The specs are invalid: no plan.**")
    assert "limt" in updated.body and "/actions/runs/9002" in updated.body
    assert "Plan:" not in updated.body
    assert run.summary.startswith("**The specs are invalid: no plan.**")
    assert run.outputs == {"has-changes": "false", "summary": "{}"}


# --- 7. drift ---------------------------------------------------------------------------------


def test_drift_is_green_until_a_managed_segment_changes_in_cargo(
    repos: Repos, runner: ActionRunner, empty_emulator: Emulator
) -> None:
    commit = first_commit(repos, SET_1)
    applied = runner.run(repos.checkout("apply", commit), apply_inputs(), cargo=empty_emulator)
    assert applied.returncode == 0, applied.stderr
    tip = repos.main_sha()

    clean = runner.run(repos.checkout("drift-1", tip), {"command": "drift"},
                       event_name="schedule", cargo=empty_emulator)
    assert clean.returncode == 0, clean.stderr
    assert clean.outputs["has-changes"] == "false"
    assert clean.summary == "### segsync drift\n\nNo drift: Cargo matches the specs.\n"
    assert [name for name, outcome in clean.steps if outcome.startswith("uploaded")] == []

    entry = state_of(repos.on_main("segsync.state.json")).segments["sales/eu"]
    assert entry.uuid is not None
    empty_emulator.store.update(entry.uuid, {"limit": 42})
    drifted = runner.run(repos.checkout("drift-2", tip), {"command": "drift"},
                         event_name="schedule", cargo=empty_emulator)

    assert drifted.returncode == 1
    assert drifted.stderr.strip().splitlines()[-1] == (
        "error: Cargo differs from the specs (drift); the summary shows how"
    )
    assert drifted.outputs["has-changes"] == "true"
    assert drifted.summary.startswith(
        "### segsync drift\n\n**Plan: 0 to create, 1 to update, 0 to replace, 0 to delete, "
        "2 unchanged.**"
    )
    assert "sales/eu" in drifted.summary and "42" in drifted.summary
    assert repos.main_sha() == tip


# --- 8. a very long plan ------------------------------------------------------------------------


def test_the_comment_for_2000_new_segments_is_cut_under_githubs_limit(
    tmp_path: Path, runner: ActionRunner, fake_github: FakeGitHub
) -> None:
    workspace = tmp_path / "big"
    for i in range(2000):
        write_spec(workspace / "segments", f"bulk/s{i:04}.yaml", spec_text(f"Bulk {i:04}"))

    run = runner.run(workspace, {"command": "plan"}, ref=f"refs/pull/{PR}/merge",
                     event_name="pull_request", event=pr_event())

    assert run.returncode == 0, run.stderr
    assert "::notice::plan comment created" in run.annotations
    [comment] = fake_github.on_issue(PR)
    assert len(comment.body) < COMMENT_LIMIT
    assert comment.body.startswith(
        f"{PLAN_MARKER}\n**Plan: 2000 to create, 0 to update, 0 to replace, 0 to delete, "
        "0 unchanged.**"
    )
    cut = re.search(r"> (\d+) actions left out to keep this comment under", comment.body)
    assert cut is not None
    shown = comment.body.count("<details>")
    assert shown + int(cut.group(1)) == 2000
    assert f"[run's artifacts]({SERVER_URL}/{REPOSITORY}/actions/runs/9001)" in comment.body
    # The whole plan is in the artifact.
    whole = json.loads((run.artifact("segsync-plan") / "plan.json").read_text())
    assert len(whole["actions"]) == 2000


# --- 9. the state merge driver ----------------------------------------------------------------


def _state_with(base: State, **changes: Any) -> State:
    """``base`` with some entries changed (``spec_id=dict of Entry fields``) and serial + 1."""
    segments = dict(base.segments)
    for spec_id, fields in changes.items():
        spec_id = spec_id.replace("__", "/")
        segments[spec_id] = segments[spec_id].model_copy(update=fields)
    return base.model_copy(update={"segments": segments, "serial": base.serial + 1})


def test_the_state_merge_driver_merges_entry_by_entry_and_refuses_conflicts(
    repos: Repos, runner: ActionRunner, empty_emulator: Emulator, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from segsync.github import Git, GitError

    # segsync's Git runs git in this process's environment: the runner's (no identity).
    for name in ("HOME", "GIT_CONFIG_NOSYSTEM"):
        monkeypatch.setenv(name, repos.runner_env[name])
    # (with an identity: a rebase without one fails, see NO_IDENTITY_BUG)
    repos.give_the_runner_an_identity()
    commit = first_commit(repos, SET_1)
    applied = runner.run(repos.checkout("apply", commit), apply_inputs(), cargo=empty_emulator)
    assert applied.returncode == 0, applied.stderr
    tip = repos.main_sha()
    base = state_of(repos.on_main("segsync.state.json"))
    assert base.serial >= 1

    # Two runs start from the same state: each changes another entry and commits.
    ours = _state_with(base, sales__icp={"applied_at": "2030-01-01T00:00:00.000Z"})
    theirs = _state_with(base, sales__eu={"applied_at": "2031-01-01T00:00:00.000Z"})
    other = repos.checkout("other", tip)
    mine = repos.checkout("mine", tip)
    for workspace, state in ((other, theirs), (mine, ours)):
        write_state(workspace / "segsync.state.json", state)
        assert Git(workspace).commit("segsync.state.json", "state")
    assert Git(other).push("main", "segsync.state.json") == 1
    assert Git(mine).push("main", "segsync.state.json") == 2

    merged_text = repos.on_main("segsync.state.json")
    assert "<<<<<<<" not in merged_text and ">>>>>>>" not in merged_text
    merged = state_of(merged_text)
    assert merged.segments["sales/icp"].applied_at == "2030-01-01T00:00:00.000Z"
    assert merged.segments["sales/eu"].applied_at == "2031-01-01T00:00:00.000Z"
    assert merged.segments["marketing/news"] == base.segments["marketing/news"]
    assert merged.serial > max(ours.serial, theirs.serial)
    assert merged.lineage == base.lineage

    # The driver itself: the same entry changed differently on both sides.
    folder = tmp_path / "merge"
    folder.mkdir()
    left = _state_with(base, sales__icp={"applied_at": "2032-01-01T00:00:00.000Z"})
    right = _state_with(base, sales__icp={"applied_at": "2033-01-01T00:00:00.000Z"})
    for name, state in (("base", base), ("ours", left), ("theirs", right)):
        write_state(folder / f"{name}.json", state)
    before = (folder / "ours.json").read_bytes()
    refused = subprocess.run(
        [str(VENV_BIN / "segsync"), "state", "merge", "base.json", "ours.json", "theirs.json"],
        cwd=folder, capture_output=True, text=True, check=False, timeout=60,
    )
    assert refused.returncode == 1
    assert "both sides changed the entries of sales/icp differently" in refused.stderr
    assert (folder / "ours.json").read_bytes() == before == dump_state(left)
    assert sorted(p.name for p in folder.iterdir()) == ["base.json", "ours.json", "theirs.json"]

    # Through git: the rebase stops, the push is refused and main keeps the first state.
    tip = repos.main_sha()
    first, second = repos.checkout("first", tip), repos.checkout("second", tip)
    merged_now = state_of(repos.on_main("segsync.state.json"))
    for workspace, when in ((first, "2034"), (second, "2035")):
        changed = _state_with(merged_now, sales__icp={"applied_at": f"{when}-01-01T00:00:00.000Z"})
        write_state(workspace / "segsync.state.json", changed)
        assert Git(workspace).commit("segsync.state.json", f"state {when}")
    assert Git(first).push("main", "segsync.state.json") == 1
    pushed_first = repos.main_sha()
    with pytest.raises(GitError, match="could not be rebased onto main"):
        Git(second).push("main", "segsync.state.json")
    assert repos.main_sha() == pushed_first
    assert state_of(repos.on_main("segsync.state.json")).segments["sales/icp"].applied_at == (
        "2034-01-01T00:00:00.000Z"
    )
    assert git(second, "status", "--porcelain", env=repos.runner_env) == ""


# --- a project in a sub-folder (the working-directory input) ----------------------------------


def test_plans_of_two_projects_in_sub_folders_keep_their_own_comment_and_places(
    repos: Repos, runner: ActionRunner, fake_github: FakeGitHub
) -> None:
    for team in ("team-a", "team-b"):
        write_spec(repos.dev / team / "segments", "x.yaml", spec_text(f"X {team}"))
        write_state(repos.dev / team / "segsync.state.json", State.empty())
    write_spec(repos.dev / "team-a" / "segments", "bad.yaml", "name: Bad\nmodel: companies\n")
    head = repos.push("two projects", ref=f"refs/pull/{PR}/merge")
    workspace = repos.checkout("pr", head)

    team_a = runner.run(workspace, {"command": "plan", "working-directory": "team-a"},
                        ref=f"refs/pull/{PR}/merge", event_name="pull_request", event=pr_event())
    team_b = runner.run(workspace, {"command": "plan", "working-directory": "team-b"},
                        ref=f"refs/pull/{PR}/merge", event_name="pull_request", event=pr_event())

    assert (team_a.returncode, team_b.returncode) == (1, 0)
    assert len(fake_github.on_issue(PR)) == 2  # today: team-b's plan replaced team-a's comment
    assert any(line.startswith("::error file=team-a/segments/bad.yaml,line=1")
               for line in team_a.annotations)


def test_the_merge_driver_also_serves_a_state_file_in_a_sub_folder(
    repos: Repos, runner: ActionRunner, empty_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segsync.github import Git

    for name in ("HOME", "GIT_CONFIG_NOSYSTEM"):
        monkeypatch.setenv(name, repos.runner_env[name])
    repos.give_the_runner_an_identity()
    write_specs(repos.dev / "infra", SET_1)
    write_state(repos.dev / "infra" / "segsync.state.json", State.empty())
    commit = repos.push("specs in infra")
    applied = runner.run(repos.checkout("apply", commit), apply_inputs(**{
        "working-directory": "infra"}), cargo=empty_emulator)
    assert applied.returncode == 0, applied.stderr
    tip = repos.main_sha()
    base = state_of(repos.on_main("infra/segsync.state.json"))
    ours = _state_with(base, sales__icp={"applied_at": "2030-01-01T00:00:00.000Z"})
    theirs = _state_with(base, sales__eu={"applied_at": "2031-01-01T00:00:00.000Z"})
    other, mine = repos.checkout("other", tip), repos.checkout("mine", tip)
    for workspace, state in ((other, theirs), (mine, ours)):
        write_state(workspace / "infra" / "segsync.state.json", state)
        assert Git(workspace / "infra").commit("segsync.state.json", "state")
    assert Git(other / "infra").push("main", "segsync.state.json") == 1
    assert Git(mine / "infra").push("main", "segsync.state.json") == 2

    merged = state_of(repos.on_main("infra/segsync.state.json"))
    assert merged.segments["sales/icp"].applied_at == "2030-01-01T00:00:00.000Z"
    assert merged.segments["sales/eu"].applied_at == "2031-01-01T00:00:00.000Z"
    assert not (mine / "infra" / ".git").exists()
    assert merged.serial > max(ours.serial, theirs.serial)  # today: the text merge keeps it
