"""``segsync github plan|apply|drift``: what the composite action runs inside GitHub Actions
(registered by ``cli.py`` on first use). Each reads the runner's environment and writes the
job summary, step outputs and annotations."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from segsync import cli as cli_module
from segsync.cli import CONTEXT_SETTINGS, debug_option, dir_option, state_option
from segsync.cli_ui import TerminalUI


@click.group("github", context_settings=CONTEXT_SETTINGS)
def github_group() -> None:
    """Run segsync as a GitHub Actions step (the composite action calls these).

    \b
    Example (what action.yml runs):
      segsync github plan --out-dir "$RUNNER_TEMP/segsync"
      segsync github apply --branch main
      segsync github drift
    """


def _out_dir(value: str | None) -> Path:
    base = value or os.path.join(os.environ.get("RUNNER_TEMP", "."), "segsync")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _token() -> str:
    return os.environ.get("SEGSYNC_GITHUB_TOKEN") or os.environ.get("GITHUB_TOKEN", "")


def _in_repository() -> str:
    """Where this step runs inside the repository (``team-a/``), for annotations and keys;
    annotations then name files from the repository's root, as GitHub wants."""
    from segsync.errors import SegsyncError
    from segsync.github import Git
    from segsync.render import machine

    try:
        prefix = Git().prefix()
    except SegsyncError:
        prefix = ""
    machine.annotation_base = prefix
    return prefix


@github_group.command("plan")
@dir_option
@state_option
@click.option("--refresh", is_flag=True, help="Also read Cargo (needs CARGO_API_TOKEN).")
@click.option(
    "--comment",
    type=click.Choice(["auto", "never"]),
    default="auto",
    show_default=True,
    help="auto: keep one plan comment on the pull request (skipped when the token is read-only).",
)
@click.option(
    "--comment-author",
    default="github-actions[bot]",
    show_default=True,
    help="Only a comment by this login is updated (the token's identity).",
)
@click.option("--out-dir", default=None, help="Where the plan files go ($RUNNER_TEMP/segsync).")
@debug_option
def github_plan(
    directory: str,
    state_path: str,
    refresh: bool,
    comment: str,
    comment_author: str,
    out_dir: str | None,
) -> None:
    """Validate and plan in one run: annotations, job summary, plan files, one PR comment.

    Writes plan.txt, plan.md, plan.json and the saved plan segsync-plan.json to --out-dir (for
    the artifact), sets the outputs has-changes, summary and plan-file, and keeps one comment on
    the pull request, found by a hidden marker and its author; when the specs are invalid the
    comment says so. Exit 1 when the specs are invalid.
    """
    from segsync.errors import ValidationFailed
    from segsync.github import Runner, invalid_comment, plan_comment
    from segsync.manager import plan_project
    from segsync.planfile import write_plan_file
    from segsync.render import render

    runner = Runner.from_environment()
    folder = _out_dir(out_dir)
    prefix = _in_repository()
    cli_module.SegsyncGroup.github_errors = True
    try:
        planned = plan_project(cli_module.project_of(directory, state_path), refresh=refresh,
                               log=cli_module.http_log())
    except ValidationFailed as exc:
        body = invalid_comment([str(e) for e in exc.errors], run_url=runner.run_url)
        runner.summary(body)
        runner.output("has-changes", "false")
        runner.output("summary", "{}")
        if comment == "auto":
            _comment(runner, _key(prefix + directory), body, comment_author)
        raise
    plan = planned.plan
    markdown = render(plan, "markdown")
    env = cli_module.SegsyncGroup.environment
    if env is not None:
        markdown = f"#### segsync plan for {env.name}\n\n{markdown}"
    (folder / "plan.txt").write_text(render(plan, "text"), encoding="utf-8")
    (folder / "plan.md").write_text(markdown, encoding="utf-8")
    (folder / "plan.json").write_text(render(plan, "json"), encoding="utf-8")
    plan_file = folder / "segsync-plan.json"
    write_plan_file(plan_file, plan, state=planned.state, specs=planned.specs, prune=False)
    click.echo(render(plan, "github"), nl=False)
    runner.summary(markdown)
    runner.output("has-changes", "true" if plan.has_changes else "false")
    runner.output("summary", json.dumps(plan.summary, sort_keys=True))
    runner.output("plan-file", str(plan_file))
    if comment == "auto":
        _comment(runner, _key(prefix + directory), plan_comment(markdown, run_url=runner.run_url),
                 comment_author)


def _key(directory: str) -> str:
    """What tells this plan's comment from another one's on the same pull request: the specs
    folder, and the environment when one is chosen."""
    env = cli_module.SegsyncGroup.environment
    return directory if env is None else f"{directory} env={env.name}"


def _comment(runner: object, key: str, body: str, author: str) -> None:
    from segsync.github import Comments, Runner

    assert isinstance(runner, Runner)
    number = runner.pull_request
    if number is None:
        return
    token = _token()
    if not token:
        click.echo("::notice::no GitHub token: the plan comment is skipped (it is in the summary)")
        return
    comments = Comments(runner, token, author=author)
    try:
        outcome = comments.upsert(number, key, body)
    finally:
        comments.close()
    click.echo(f"::notice::plan comment {outcome}")


@github_group.command("apply")
@dir_option
@state_option
@click.option("--branch", default=None,
              help="The branch applied (default: the repository's default branch).")
@click.option("--parallelism", type=click.IntRange(1, 64), default=4, show_default=True,
              help="How many independent actions run at the same time.")
@click.option("--prune", is_flag=True, help="Delete the segments whose spec is gone.")
@click.option("--allow-replace", is_flag=True, help="Allow replacing segments whose model changed.")
@click.option("--force", is_flag=True, help="Allow deleting or replacing more than 30%.")
@click.option("--delete-duplicates", is_flag=True,
              help="Delete unmanaged copies of managed segments with the same fields.")
@debug_option
def github_apply(
    directory: str,
    state_path: str,
    branch: str | None,
    parallelism: int,
    prune: bool,
    allow_replace: bool,
    force: bool,
    delete_duplicates: bool,
) -> None:
    """Apply on the branch's current tip and push the state back.

    Refuses a run for any other branch. Brings the checkout to the tip of the branch (a
    run that starts after another one committed plans against the newer state), applies,
    commits the state file and pushes it, fetching and rebasing when the branch moved meanwhile
    (state files merged entry by entry). Exit 1 when apply failed part-way or the state could not
    be pushed; the state that was reached is committed and pushed in both cases when possible.
    """
    from segsync.errors import ConfigError, DuplicatesFound, SegsyncError
    from segsync.github import Git, Runner
    from segsync.manager import apply_project
    from segsync.render.progress import apply_summary

    runner = Runner.from_environment()
    runner.output("state-file", str(Path(state_path).resolve()))
    _in_repository()
    branch = branch or runner.default_branch
    ref = runner.get("GITHUB_REF")
    if ref != f"refs/heads/{branch}":
        raise ConfigError(
            f"this run is for {ref or 'an unknown ref'}; segsync applies only from "
            f"refs/heads/{branch} (set the input branch to apply another one)"
        )
    git = Git(token=_token())
    tip = git.to_tip(branch)
    click.echo(f"Applying {branch} at {tip[:12]}")
    failure: SegsyncError | None = None
    summary = "No changes."
    try:
        ui = TerminalUI(auto_approve=True, debug=cli_module.SegsyncGroup.debug)
        applied = apply_project(
            cli_module.project_of(directory, state_path), ui, prune=prune,
            allow_replace=allow_replace, force=force, parallelism=parallelism,
            delete_duplicates=delete_duplicates,
            log=cli_module.http_log(),
        )
        ui.close()
        report = applied.report
        if report is not None:
            summary = apply_summary(report)
            click.echo(summary)
            for spec_id, message in report.failures:
                click.echo(f"::error::{spec_id}: {message}")
            if report.failures:
                failure = SegsyncError(f"{len(report.failures)} actions failed")
        if failure is None and applied.duplicates:
            failure = DuplicatesFound(len(applied.duplicates))
        runner.output("has-changes", "true" if report is not None else "false")
        runner.output("summary", json.dumps(report.counts if report else {}, sort_keys=True))
    except SegsyncError as exc:
        failure = exc
    pushed = ""
    if Path(state_path).exists() and git.commit(state_path, f"segsync: state after apply of "
                                                 f"{tip[:12]}"):
        attempts = git.push(branch, state_path)
        pushed = f"state pushed to {branch}" + (f" after {attempts} attempts" if attempts > 1
                                                  else "")
        click.echo(f"::notice::{pushed}")
    runner.summary(f"### segsync apply\n\n{summary}\n\n{pushed or 'state unchanged'}\n")
    if failure is not None:
        raise failure


@github_group.command("drift")
@dir_option
@state_option
@debug_option
def github_drift(directory: str, state_path: str) -> None:
    """Check Cargo against the specs (plan --refresh); exit 1 with the drift in the summary."""
    from segsync.errors import SegsyncError
    from segsync.github import Runner
    from segsync.manager import plan_project
    from segsync.render import render

    runner = Runner.from_environment()
    _in_repository()
    planned = plan_project(cli_module.project_of(directory, state_path), refresh=True,
                           log=cli_module.http_log())
    plan = planned.plan
    click.echo(render(plan, "github"), nl=False)
    runner.output("has-changes", "true" if plan.has_changes else "false")
    runner.output("summary", json.dumps(plan.summary, sort_keys=True))
    if plan.has_changes or plan.duplicates:
        runner.summary("### segsync drift\n\n" + render(plan, "markdown"))
        raise SegsyncError("Cargo differs from the specs (drift); the summary shows how")
    runner.summary("### segsync drift\n\nNo drift: Cargo matches the specs.\n")
