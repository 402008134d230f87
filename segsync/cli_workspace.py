"""``segsync import`` and ``segsync columns``: the commands that read what a workspace already
holds (registered by ``cli.py`` on first use)."""

from __future__ import annotations

import click

from segsync.cli import (
    debug_option,
    dir_option,
    env_option,
    http_log,
    project_of,
    state_option,
    text_or_json,
)


@click.command("import")
@dir_option
@state_option
@click.option(
    "--model",
    default=None,
    metavar="SLUG|UUID",
    help="Only segments of this model (its slug, dataset.slug or UUID).",
)
@click.option(
    "--match",
    default=None,
    metavar="GLOB",
    help="Only segments whose name matches this glob (`Sales *`; case-sensitive).",
)
@click.option(
    "--dry-run", is_flag=True, help="Show the files import would write; write nothing."
)
@click.option(
    "--uuid",
    "bind_uuid",
    default=None,
    metavar="UUID",
    help="With --id: bind one existing spec to one existing segment instead.",
)
@click.option(
    "--id",
    "bind_id",
    default=None,
    metavar="SPEC_ID",
    help="With --uuid: the spec that manages the segment from now on.",
)
@debug_option
def import_command(
    directory: str,
    state_path: str,
    model: str | None,
    match: str | None,
    dry_run: bool,
    bind_uuid: str | None,
    bind_id: str | None,
) -> None:
    """Bring segments that already exist in Cargo under management.

    Writes one spec file per live segment that segsync does not manage (never play-owned or
    deleted ones) as SPECS/<model>/<name>.yaml, in the style of the examples, and records it
    in the state file, so that the next plan shows no changes. An existing file is never
    overwritten; what is skipped is listed with the reason.

    With --uuid and --id, records instead that the spec SPEC_ID manages the segment UUID (as
    Terraform's `import ADDRESS ID`); the next plan shows their differences as an update.

    \b
    Examples:
      segsync import --dry-run
      segsync import --model companies --match 'Sales *'
      segsync import --uuid 0b4e28ba-2fa1-41d2-883f-0016d3cca427 --id sales/icp
    """
    from segsync.errors import ConfigError
    from segsync.manager import bind_segment, import_project

    project = project_of(directory, state_path)
    if (bind_uuid is None) != (bind_id is None):
        raise ConfigError("--uuid and --id go together: `segsync import --uuid UUID --id ID`")
    if bind_uuid is not None and bind_id is not None:
        if model is not None or match is not None or dry_run:
            raise ConfigError("--uuid/--id bind one segment; --model, --match and --dry-run "
                              "are for importing many")
        file, segment = bind_segment(project, bind_uuid, bind_id, log=http_log())
        click.echo(
            f"{bind_id} ({file}) now manages segment {bind_uuid} {segment.get('name')!r}; "
            "run `segsync plan` to see what apply would change in it"
        )
        return
    imported = import_project(project, model=model, match=match, dry_run=dry_run,
                              log=http_log())
    verb = "would write" if imported.dry_run else "wrote"
    for item in imported.written:
        click.echo(f"+ {item.file}  {item.name!r}  ({verb}; segment {item.uuid})")
    for uuid, name, reason in imported.skipped:
        click.echo(f"skipped {uuid} {name!r}: {reason}")
    n, s = len(imported.written), len(imported.skipped)
    noun = "segment" if n == 1 else "segments"
    if imported.dry_run:
        click.echo(f"Dry run: {n} {noun} would be imported, {s} skipped; nothing was written.")
    else:
        click.echo(f"Imported {n} {noun} into {directory} and recorded them in {state_path}; "
                   f"{s} skipped.")


@click.command("columns")
@click.argument("model", required=False, metavar="[MODEL]")
@text_or_json(
    "text: one table per model; json: the same as one JSON object."
)
@env_option
@debug_option
def columns_command(model: str | None, fmt: str) -> None:
    """List the workspace's models and their columns, with types, to write specs with.

    MODEL (a slug, dataset.slug or UUID) shows that model only. Needs CARGO_API_TOKEN.

    \b
    Examples:
      segsync columns
      segsync columns companies --format json
    """
    from segsync.manager import list_columns
    from segsync.render.columns import render_columns

    project = project_of(".", "segsync.state.json")
    click.echo(render_columns(list_columns(project, model, log=http_log()), fmt), nl=False)
