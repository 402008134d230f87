"""Command-line interface: options -> ``manager`` -> print and exit. The only module that
prints or exits, and the one place where errors become ``error: …`` and exit code 1
(:meth:`SegsyncGroup.main`).

Heavy modules (httpx, deepdiff, pydantic models) are imported inside the commands that need them,
so that ``segsync --version`` stays as cheap as importing click.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import click

from segsync import __version__
from segsync.cli_ui import TerminalUI, complete_spec_ids

if TYPE_CHECKING:
    from segsync.config import Environment
    from segsync.manager import Log, Project

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class SegsyncGroup(click.Group):
    """The edge: every error of every command is rendered here, once, and exits 1 (usage
    errors too: click uses 2, which segsync keeps for "changes present").

    Commands listed in ``lazy`` are imported only when used, to keep start-up cheap.
    """

    #: ``--debug`` was given (on the group or on the command): tracebacks and HTTP logs.
    debug = False
    #: Spec errors of a failed run as GitHub annotations (``plan --format github``).
    github_errors = False
    #: The environment chosen with ``--env`` / ``SEGSYNC_ENV`` (see ``config.py``).
    environment: Environment | None = None
    #: ``--jobs`` / ``SEGSYNC_JOBS``: processes that parse spec files (None: automatic).
    jobs: int | None = None
    #: The signal that stopped the run (``SIGTERM``), when one did.
    stopped_by: str | None = None

    lazy: ClassVar[dict[str, tuple[str, str]]] = {
        "emulator": ("segsync.emulator.command", "emulator_command"),
        "state": ("segsync.cli_state", "state_group"),
        "github": ("segsync.cli_github", "github_group"),
        "import": ("segsync.cli_workspace", "import_command"),
        "columns": ("segsync.cli_workspace", "columns_command"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            import importlib

            module, attr = self.lazy[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attr)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        SegsyncGroup.debug = SegsyncGroup.github_errors = False
        SegsyncGroup.environment = SegsyncGroup.jobs = None
        SegsyncGroup.stopped_by = None
        _stop_on_sigterm()
        try:
            try:
                rv = super().main(*args, **kwargs)
            except click.exceptions.Exit:
                raise
            except (click.ClickException, click.exceptions.Abort):
                raise
            except Exception as exc:
                _render_error(exc)
                sys.exit(1)
        except click.exceptions.Abort:
            if SegsyncGroup.stopped_by is not None:
                click.echo(
                    f"error: stopped by {SegsyncGroup.stopped_by}: requests under way were "
                    "let finish, the state file holds what finished and the lock is released; "
                    "run the command again to go on",
                    err=True,
                )
            else:
                click.echo("error: aborted", err=True)
            sys.exit(1)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(0)
        except click.UsageError as exc:
            if exc.ctx is not None:
                click.echo(exc.ctx.get_usage(), err=True)
                click.echo(f"Try '{exc.ctx.command_path} --help' for help.", err=True)
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(1)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        if isinstance(rv, int) and not isinstance(rv, bool):
            sys.exit(rv)
        sys.exit(0)


def _stop_on_sigterm() -> None:
    """SIGTERM (a CI timeout, `timeout`, a stopped container) stops a run as Ctrl-C does: no
    new request is sent, those under way finish and are recorded, the lock is released."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return  # a signal handler can only be set in the main thread (an embedding program)

    def stop(signum: int, frame: object) -> None:
        SegsyncGroup.stopped_by = signal.Signals(signum).name
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _render_error(exc: Exception) -> None:
    """Print a failure once: spec errors with their places, then ``error: …``; a traceback
    with --debug. Anything that is not a segsync error or an OSError is a bug: re-raised."""
    from segsync.errors import SegsyncError, ValidationFailed
    from segsync.render.errors import error_line, spec_error_lines

    if not isinstance(exc, (SegsyncError, OSError)):
        raise exc
    if SegsyncGroup.debug:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, ValidationFailed):
        github = SegsyncGroup.github_errors
        for line in spec_error_lines(exc.errors, "github" if github else "text"):
            click.echo(line, err=not github)
    if isinstance(exc, OSError):
        message = f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
        click.echo(error_line(message), err=True)
    else:
        click.echo(error_line(exc), err=True)


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        SegsyncGroup.debug = True
    return value


def debug_option(f: F) -> F:
    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        callback=_set_debug,
        help="Show tracebacks and HTTP request logs (the token is never shown).",
    )(f)


def http_log() -> Log | None:
    if not SegsyncGroup.debug:
        return None
    return lambda line: click.echo(f"debug: {line}", err=True)


def dir_option(f: F) -> F:
    return jobs_option(click.option(
        "--dir",
        "directory",
        default="segments",
        show_default=True,
        type=click.Path(file_okay=False),
        help="Folder holding the segment specs (*.yaml, *.yml, searched recursively).",
    )(f))


def _set_jobs(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None:
        SegsyncGroup.jobs = value
    return value


def jobs_option(f: F) -> F:
    return click.option(
        "--jobs",
        "-j",
        type=click.IntRange(min=1),
        envvar="SEGSYNC_JOBS",
        default=None,
        metavar="N",
        expose_value=False,
        callback=_set_jobs,
        help="Parse spec files in N processes ($SEGSYNC_JOBS); 1 parses them in this one. "
        "Default: one per core, when there are enough files to gain from it.",
    )(f)


def _set_env(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value:
        from segsync.config import select

        SegsyncGroup.environment = select(value)
    return value


def env_option(f: F) -> F:
    return click.option(
        "--env",
        "env_name",
        envvar="SEGSYNC_ENV",
        default=None,
        metavar="NAME",
        is_eager=True,
        expose_value=False,
        callback=_set_env,
        help="Use environment NAME of segsync.toml: its state file, API URL and token "
        "variable ($SEGSYNC_ENV).",
    )(f)


def _state_path(ctx: click.Context, param: click.Parameter, value: str) -> str:
    env = SegsyncGroup.environment
    if env is not None and ctx.get_parameter_source("state_path") in (
        click.core.ParameterSource.DEFAULT, click.core.ParameterSource.DEFAULT_MAP
    ):
        return env.state
    return value


def state_option(f: F) -> F:
    return env_option(click.option(
        "--state",
        "state_path",
        default=lambda: os.environ.get("SEGSYNC_STATE", "segsync.state.json"),
        show_default="segsync.state.json, or $SEGSYNC_STATE, or the --env's",
        type=click.Path(dir_okay=False),
        callback=_state_path,
        help="State file recording the segments segsync created.",
    )(f))


def _offline(directory: str, state_path: str) -> Project:
    from segsync.manager import Project

    return Project(directory, state_path, jobs=SegsyncGroup.jobs)


def project_of(directory: str, state_path: str) -> Project:
    """The project a command works on, with the chosen environment's API and token."""
    from segsync.manager import Project

    env = SegsyncGroup.environment
    if env is None:
        return Project(directory, state_path, notify=_notify, jobs=SegsyncGroup.jobs)
    token = os.environ.get(env.token_env, "").strip()
    return Project(
        directory, state_path, api_url=env.api_url, token=token,
        token_help=f"{env.token_env} is not set: it holds the token of environment "
        f"{env.name!r} ({env.source})", notify=_notify, jobs=SegsyncGroup.jobs,
    )


def _notify(line: str) -> None:
    """A line while segsync waits for Cargo or retries (stderr; from worker threads too)."""
    click.echo(line, err=True)


@click.group(cls=SegsyncGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="segsync", message="%(prog)s %(version)s")
@env_option
@jobs_option
@debug_option
def cli() -> None:
    """Cargo segments as code: validate, plan and apply YAML segment specs.

    \b
    Example:
      segsync validate --dir segments
      segsync plan --format markdown --out plan.json
    """


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def main() -> None:
    """The console script. After a SIGTERM, the process ends once the state is written and the
    lock released, without waiting for background reads that only slow the stop down."""
    try:
        cli()
    except SystemExit as exc:
        if SegsyncGroup.stopped_by is None:
            raise
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exc.code if isinstance(exc.code, int) else 1)


def text_or_json(help: str) -> Callable[[F], F]:
    """``--format text|json`` (default text), with what each gives for this command."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help=help,
    )


def target_option(f: F) -> F:
    return click.option(
        "--target",
        "targets",
        multiple=True,
        metavar="ID",
        shell_complete=complete_spec_ids,
        help="Only this spec id (a glob such as 'sales/*'; repeatable) and the specs it "
        "references. Not with --prune.",
    )(f)


def strict_option(f: F) -> F:
    return click.option(
        "--strict",
        is_flag=True,
        help="Treat warnings (a comma inside one `values` string, invisible characters in a "
        "name, a repeated condition) as errors: exit 1.",
    )(f)


@cli.command()
@dir_option
@state_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text: one line per error; json: a machine-readable report; "
    "github: workflow annotations on the offending lines.",
)
@click.option(
    "--remote",
    is_flag=True,
    help="Also check every model, column, kind and property against the workspace's models "
    "(needs CARGO_API_TOKEN; one read of the models, one list call per model).",
)
@strict_option
@debug_option
def validate(directory: str, state_path: str, fmt: str, remote: bool, strict: bool) -> int:
    """Check every spec file strictly and report all errors, and warnings.

    Offline by default. Every error names its place as file:line:column. With --remote, also
    checks the specs against the workspace: the model exists, every column named in filters,
    sort, trackingColumnSlugs and matchConditions exists on its model, each condition's kind
    matches its column's type, properties exist. Exit 0 when all specs are valid, 1 otherwise
    (and with --strict, when there are warnings).

    \b
    Examples:
      segsync validate
      segsync validate --dir segments --format github
      segsync validate --remote --strict
    """
    from segsync.errors import ValidationFailed
    from segsync.manager import validate_project
    from segsync.render.errors import validation_report
    from segsync.specs import count_spec_files

    errors = []
    warnings: list[Any] = []
    try:
        _, total, warnings = validate_project(
            project_of(directory, state_path) if remote else _offline(directory, state_path),
            remote=remote, log=http_log(),
        )
    except ValidationFailed as exc:
        errors, total = exc.errors, count_spec_files(directory)
    click.echo(validation_report(errors, total, fmt, warnings), nl=False)
    return 1 if errors or (strict and warnings) else 0


@cli.command()
def schema() -> None:
    """Print the JSON Schema of a spec file, for editors and other tools.

    \b
    Example (then point your editor at it, see the README):
      segsync schema > segsync.schema.json
    """
    import json

    from segsync.spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


@cli.command()
@dir_option
@state_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json", "github"]),
    default="text",
    show_default=True,
    help="text: for a terminal (colour unless NO_COLOR is set); markdown: a pull-request "
    "comment; json: for machines (formatVersion 1); github: workflow annotations.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also save the plan to FILE, for `segsync apply FILE` (refused once stale).",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Plan deletes for state entries whose spec is gone (unless protected).",
)
@click.option(
    "--refresh",
    is_flag=True,
    help="Also read the managed segments from Cargo (one list call per model; needs "
    "CARGO_API_TOKEN): changes made outside segsync show as updates, deleted ones as recreate.",
)
@click.option(
    "--preview",
    is_flag=True,
    help="Ask Cargo how many records each created or updated segment would match (one fetch "
    "call each; needs CARGO_API_TOKEN).",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when the plan has changes (0: none, 1: error).",
)
@target_option
@strict_option
@debug_option
def plan(
    directory: str,
    state_path: str,
    fmt: str,
    out: str | None,
    prune: bool,
    refresh: bool,
    preview: bool,
    detailed_exitcode: bool,
    targets: tuple[str, ...],
    strict: bool,
) -> int:
    """Show what apply would change: specs compared with the state file.

    Offline by default: no token, no network. Actions: create, update (old -> new per
    field), replace (the model changed), delete (only with --prune), moved (a renamed file),
    recreate (with --refresh: deleted outside segsync), and entries no longer managed,
    which are left in place.

    \b
    Examples:
      segsync plan
      segsync plan --format markdown > plan.md
      segsync plan --out plan.json --detailed-exitcode
      segsync plan --refresh --prune
      segsync plan --preview
    """
    from segsync.errors import ValidationFailed
    from segsync.manager import plan_project
    from segsync.planfile import write_plan_file
    from segsync.render import render
    from segsync.render.errors import spec_error_lines

    SegsyncGroup.github_errors = fmt == "github"
    planned = plan_project(
        project_of(directory, state_path), prune=prune, refresh=refresh, preview=preview,
        targets=targets, log=http_log(),
    )
    if planned.warnings:
        if strict:
            raise ValidationFailed(planned.warnings)
        github = fmt == "github"
        for line in spec_error_lines(planned.warnings, "github" if github else "text"):
            click.echo(line, err=not github)
    color = fmt == "text" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    click.echo(render(planned.plan, fmt, color=color), nl=False, color=color)
    if out is not None:
        write_plan_file(out, planned.plan, state=planned.state, specs=planned.specs, prune=prune)
        form = "segsync apply" if stdin_is_terminal() else "segsync apply --auto-approve"
        click.echo(f"Plan saved to {out}; apply it with `{form} {out}`.", err=True)
    return 2 if detailed_exitcode and planned.plan.has_changes else 0


@cli.command()
@click.argument("planfile", required=False, type=click.Path(dir_okay=False))
@dir_option
@state_option
@click.option(
    "--auto-approve",
    is_flag=True,
    help="Apply without asking for confirmation (needed without a terminal, as in CI).",
)
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="How many independent actions run at the same time.",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Delete the segments whose spec is gone (never those marked protect: true).",
)
@click.option(
    "--allow-replace",
    is_flag=True,
    help="Allow replacing segments whose model changed: delete and create again (new UUID).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Allow deleting and replacing more than 30% of the managed segments at once "
    "(checked when 10 or more are managed).",
)
@click.option(
    "--delete-duplicates",
    is_flag=True,
    help="Delete the live segments that segsync does not manage but that have a managed "
    "segment's model, name and fields (shown in the plan first; never play-owned or "
    "referenced ones).",
)
@target_option
@debug_option
def apply(
    planfile: str | None,
    directory: str,
    state_path: str,
    auto_approve: bool,
    parallelism: int,
    prune: bool,
    allow_replace: bool,
    force: bool,
    delete_duplicates: bool,
    targets: tuple[str, ...],
) -> int:
    """Make Cargo match the specs: create, update, replace and delete segments.

    Reads the specs, locks the state file, names the target workspace, reads the managed
    segments from Cargo (one list call per model), shows the plan and asks for confirmation
    on a terminal. Every result is written to the state file before it is reported, so an
    interrupted or failed apply can simply be run again. A spec whose segment already exists
    in Cargo unmanaged (same model, name and fields) is adopted without a request; unmanaged
    copies of managed segments are listed as duplicates and make apply exit 1. With PLANFILE (from
    `segsync plan --out`), applies exactly that plan and refuses it once stale.

    \b
    Examples:
      segsync apply
      segsync apply --auto-approve --parallelism 8
      segsync plan --out plan.json && segsync apply --auto-approve plan.json
    """
    from segsync.errors import ApplyError, ConfigError, DuplicatesFound
    from segsync.manager import apply_project
    from segsync.render.progress import apply_summary

    if not auto_approve and not stdin_is_terminal():
        raise ConfigError(
            "apply asks for confirmation, but there is no terminal to ask on; pass "
            "--auto-approve to apply without asking (as in CI)"
        )
    ui = TerminalUI(auto_approve=auto_approve, debug=SegsyncGroup.debug)
    try:
        applied = apply_project(
            project_of(directory, state_path), ui, planfile=planfile, prune=prune,
            allow_replace=allow_replace, force=force, parallelism=parallelism,
            delete_duplicates=delete_duplicates, targets=targets, log=http_log(),
        )
    finally:
        ui.close()
    report = applied.report
    if report is not None:
        click.echo(apply_summary(report))
    if report is not None and report.failures:
        for spec_id, message in report.failures:
            click.echo(f"error: {spec_id}: {message}", err=True)
        click.echo(
            f"The state file {state_path} records everything that succeeded; fix the "
            "causes above and run `segsync apply` again to finish.",
            err=True,
        )
        raise ApplyError(report.failures)
    if applied.duplicates:
        raise DuplicatesFound(len(applied.duplicates))
    return 0
