"""``segsync state``: inspect the state file and release a stale lock (registered by
``cli.py`` on first use)."""

from __future__ import annotations

import click

from segsync import cli as cli_module
from segsync.cli import CONTEXT_SETTINGS, debug_option, state_option, text_or_json


@click.group("state", context_settings=CONTEXT_SETTINGS)
def state_group() -> None:
    """Inspect the state file and release a stale lock.

    \b
    Example:
      segsync state list
      segsync state show sales/enterprise-eu
      segsync state unlock
    """


@state_group.command("list")
@state_option
@text_or_json(
    "text: a header and one line per segment; json: the same as one JSON object."
)
@debug_option
def state_list(state_path: str, fmt: str) -> None:
    """List the segments recorded in the state file, sorted by id.

    Each line shows the spec id, the segment UUID, the model as written, the spec file and
    flags: protect, intent=OP (an action was under way when a run stopped) and
    pendingDelete=UUID (a replace whose old segment is not deleted yet). A missing state
    file is an empty state.

    \b
    Example:
      segsync state list
      segsync state list --state prod.state.json --format json
    """
    from segsync.render.state import format_state_list
    from segsync.state import read_state

    click.echo(format_state_list(read_state(state_path), state_path, fmt=fmt), nl=False)


@state_group.command("show")
@click.argument("spec_id", metavar="ID")
@state_option
@text_or_json(
    "text: readable fields; json: the entry exactly as stored in the state file."
)
@debug_option
def state_show(spec_id: str, state_path: str, fmt: str) -> None:
    """Show the state entry of one segment, by spec id.

    Everything the state file records for it: UUID, model, spec file, protect, when it was
    applied, the digest and fields last applied, references, and any action under way.

    \b
    Example:
      segsync state show sales/enterprise-eu
      segsync state show sales/enterprise-eu --format json
    """
    from segsync.render.state import format_entry
    from segsync.state import get_entry, read_state

    entry = get_entry(read_state(state_path), spec_id, state_path)
    click.echo(format_entry(spec_id, entry, fmt=fmt), nl=False)


@state_group.command("unlock")
@state_option
@click.option(
    "--yes", is_flag=True, help="Remove the lock without asking (required without a terminal)."
)
@debug_option
def state_unlock(state_path: str, yes: bool) -> None:
    """Remove a stale state lock.

    A run that crashed or was killed leaves its lock behind. This command shows who holds
    the lock and asks for confirmation on a terminal; without a terminal it refuses unless
    --yes is given. Only remove a lock when that run has really ended: two applies at once
    can create duplicate segments. Exits 1 when there is no lock, so a script notices that
    it had nothing to unlock.

    \b
    Example:
      segsync state unlock
      segsync state unlock --state prod.state.json --yes
    """
    from segsync.errors import ConfigError, StateError
    from segsync.lock import break_lock, describe_holder, lock_path, read_lock

    lock = lock_path(state_path)
    holder = read_lock(state_path)
    if holder is None:
        raise StateError("there is no lock to remove (the file does not exist)", path=lock)
    click.echo(f"{lock} is held by {describe_holder(holder)}")
    if not yes:
        if not cli_module.stdin_is_terminal():
            raise ConfigError(
                "not removing the lock without confirmation: no terminal to ask on; "
                "pass --yes if that run has ended"
            )
        if not click.confirm("Remove it? Only do this if that run has ended", default=False):
            raise click.exceptions.Abort()
    if break_lock(state_path):
        click.echo(f"removed {lock}")
    else:
        click.echo(f"{lock} was already gone")


@state_group.command("merge")
@click.argument("base", type=click.Path(dir_okay=False))
@click.argument("ours", type=click.Path(dir_okay=False))
@click.argument("theirs", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the merged state here (default: over OURS, as git's merge drivers do).",
)
@debug_option
def state_merge(base: str, ours: str, theirs: str, output: str | None) -> None:
    """Merge two state files that grew from the same one, entry by entry.

    An entry changed on one side only takes that side; changed on both sides differently is a
    conflict: exit 1 and nothing is written. Used as a git merge driver, a rebase of two
    applies' state commits merges them instead of conflicting on text:

    \b
      git config merge.segsync-state.driver "segsync state merge %O %A %B"
      echo "segsync.state.json merge=segsync-state" >> .gitattributes

    \b
    Example:
      segsync state merge base.json ours.json theirs.json -o merged.json
    """
    from pathlib import Path

    from segsync.errors import ConfigError
    from segsync.state import State, dump_state, read_state, write_state_atomic
    from segsync.statemerge import merge_states

    for name, path in (("BASE", base), ("OURS", ours), ("THEIRS", theirs)):
        if not Path(path).exists():
            # Read as "no state", a missing side would delete every entry of the other.
            raise ConfigError(f"{path}: no such file ({name}); nothing was merged")
    for name, path in (("OURS", ours), ("THEIRS", theirs)):
        if Path(path).stat().st_size == 0:
            raise ConfigError(f"{path}: the {name} state is empty; nothing was merged")
    # git gives an empty BASE when the two sides have no common state: merge from nothing.
    start = State.empty() if Path(base).stat().st_size == 0 else read_state(base)
    merged = merge_states(start, read_state(ours), read_state(theirs))
    target = output or ours
    write_state_atomic(target, dump_state(merged))
    click.echo(f"merged {len(merged.segments)} entries into {target} (serial {merged.serial})")
