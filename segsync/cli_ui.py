"""What apply shows on a terminal, and what the shell completes: the command line's helpers
that are not options."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import click.shell_completion

if TYPE_CHECKING:
    from segsync.apply import ActionResult
    from segsync.plan import Plan


def complete_spec_ids(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    """Spec ids for shell completion of --target: the files below the specs folder (their
    default ids; no file is parsed, so completion stays instant)."""
    root = Path(str(ctx.params.get("directory") or "segments"))
    if not root.is_dir():
        return []
    ids = sorted(
        p.relative_to(root).with_suffix("").as_posix()
        for p in root.rglob("*")
        if p.suffix in (".yaml", ".yml") and p.is_file()
    )
    return [click.shell_completion.CompletionItem(i) for i in ids if i.startswith(incomplete)]


class TerminalUI:
    """What apply shows on the terminal: workspace, plan, question, one line per result (and a
    progress bar on stderr when it is a terminal)."""

    def __init__(self, *, auto_approve: bool, debug: bool = False) -> None:
        self._auto_approve = auto_approve
        self._debug = debug
        self._bar: Any = None

    def note(self, text: str) -> None:
        click.echo(f"note: {text}", err=True)

    def workspace(self, description: str) -> None:
        click.echo(f"Target workspace: {description}")

    def plan(self, plan: Plan, notes: Sequence[str]) -> None:
        from segsync.render import render_text

        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        click.echo(render_text(plan, color=color), nl=False, color=color)
        for note in notes:
            click.echo(f"note: {note}")

    def confirm(self) -> bool:
        return self._auto_approve or click.confirm("Apply these changes?", default=False)

    def result(self, result: ActionResult, done: int, total: int) -> None:
        from segsync.render.progress import describe_result

        if self._bar is None and sys.stderr.isatty():
            self._bar = click.progressbar(length=total, label="Applying", file=sys.stderr)
        if self._bar is not None:
            click.echo("\r\x1b[K", nl=False, err=True)  # the bar's line
        click.echo(describe_result(result))
        for warning in result.warnings:
            click.echo(f"    ! {warning}")
        if result.traceback and self._debug:
            click.echo(result.traceback, err=True, nl=False)
        if self._bar is not None:
            self._bar.length = total
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.render_finish()
