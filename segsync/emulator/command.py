"""The ``segsync emulator`` command (kept light: the server loads when the command runs).

Its errors (:class:`EmulatorError`, and an ``OSError`` such as a port in use) become a
``click.ClickException``, which the segsync command group prints as ``error: <message>`` and
exits 1, like every segsync error; the emulator itself imports nothing of segsync's CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from types import FrameType

RATE = click.FloatRange(0.0, 1.0)


@click.command(
    "emulator",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8787,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (the ready line shows it).",
)
@click.option(
    "--token",
    envvar="SEGSYNC_EMULATOR_TOKEN",
    default=None,
    help="Accept only this bearer token (or set $SEGSYNC_EMULATOR_TOKEN). "
    "Without it any non-empty token is accepted.",
)
@click.option(
    "--data",
    "data_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Keep the segments in this JSON file, so successive runs see the same workspace. "
    "Each change is appended to FILE.log before it is answered, and folded into FILE when "
    "the emulator stops (or, after a kill, when it starts again).",
)
@click.option(
    "--workspace",
    default="demo",
    show_default=True,
    help="Workspace name; each name gives its workspace, datasets and models other UUIDs "
    "(same slugs), so two emulators stand for two workspaces.",
)
@click.option(
    "--fixtures/--no-fixtures",
    default=True,
    show_default=True,
    help="Start with the two fixture segments on companies: GENERATED_PLAY_SEGMENT "
    "(play-owned) and '[fixture] Churn-risk customers (linked to a workflow)'; "
    "both refuse update and delete.",
)
@click.option(
    "--lax",
    is_flag=True,
    help="Be as lax as Cargo reportedly is: accept unknown keys, wrong kinds and unknown "
    "columns in filters (they then match nothing); reject only a non-object filter or "
    "non-list groups/conditions.",
)
@click.option(
    "--normalize",
    is_flag=True,
    help="Store filters normalised (string 'values' become lists, missing 'conjonction' "
    "becomes 'or') instead of as received.",
)
@click.option(
    "--list-removed",
    is_flag=True,
    help="Show removed segments (deletedAt set) in list and get instead of hiding them.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the fault injection.")
@click.option(
    "--latency-ms",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Answer every authenticated request after at least this many milliseconds "
    "(the emulator's own work included), like a network round trip.",
)
@click.option(
    "--fail-5xx",
    default=0.0,
    type=RATE,
    help="Fraction of authenticated requests answered 502 (empty, JSON or HTML body).",
)
@click.option(
    "--fail-429",
    default=0.0,
    type=RATE,
    help="Fraction of authenticated requests answered 429 with an empty body.",
)
@click.option(
    "--429-without-retry-after",
    "bare_429",
    default=0.0,
    type=RATE,
    help="Fraction of those 429 answers sent without a Retry-After header.",
)
@click.option(
    "--retry-after",
    default=1,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seconds given in the Retry-After header of a 429.",
)
@click.option(
    "--drop-after-commit",
    default=0.0,
    type=RATE,
    help="Fraction of committed writes (create, update, delete) whose connection is closed "
    "without an answer.",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Log each request (method, path, status) on stderr."
)
def emulator_command(**opts: Any) -> None:
    """Serve a local Cargo-compatible API with demo models and records.

    Point segsync at it with CARGO_API_URL and any token. It checks request bodies strictly,
    with its own rules from Cargo's API reference (unknown keys, operators, columns, kinds),
    computes record counts on its demo records, and can inject faults: latency, 429, 502 and
    dropped connections after a committed write, reproducibly with --seed.

    \b
    Example:
      segsync emulator --port 8787 --data emulator.json
      export CARGO_API_URL=http://127.0.0.1:8787/v1 CARGO_API_TOKEN=demo
      segsync apply --auto-approve
    \b
    Faults, reproducible:
      segsync emulator --seed 7 --latency-ms 100 --fail-429 0.1 --drop-after-commit 0.05
    """
    from segsync.emulator.errors import EmulatorError

    where = f"{opts['host']}:{opts['port']}"  # _serve takes host and port out of opts
    try:
        if opts["fail_5xx"] + opts["fail_429"] > 1.0:
            raise EmulatorError("--fail-5xx and --fail-429 together must not exceed 1")
        _serve(opts)
    except EmulatorError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # e.g. the port is in use, or the data file cannot be written
        import errno

        detail = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            detail = (
                f"cannot listen on {where}: {detail} (another emulator "
                "or program uses that port; choose another with --port, or 0 for a free one)"
            )
        raise click.ClickException(f"{exc.filename}: {detail}" if exc.filename else detail) from exc


def _serve(opts: dict[str, Any]) -> None:
    import signal
    from pathlib import Path

    from segsync.emulator.server import Emulator, EmulatorOptions

    if opts["data_path"] is not None:
        opts["data_path"] = Path(opts["data_path"])

    verbose = opts.pop("verbose")
    host, port = opts.pop("host"), opts.pop("port")
    emulator = Emulator(
        EmulatorOptions(**opts, log=(lambda line: click.echo(line, err=True)) if verbose else None),
        host=host,
        port=port,
    )
    catalog = emulator.catalog
    click.echo(f"workspace '{catalog.workspace_name}' {catalog.workspace_uuid}")
    datasets = {d["uuid"]: d["slug"] for d in catalog.datasets}
    for model in catalog.models:
        if model["deletedAt"] is None:
            click.echo(f"  model {datasets[model['datasetUuid']]}.{model['slug']} {model['uuid']}")
    if opts["data_path"] is not None:
        click.echo(f"segments kept in {opts['data_path']}")
    if emulator.faults.config.active:
        c = emulator.faults.config
        click.echo(
            f"faults (seed {c.seed}): latency {c.latency_ms} ms, 429 {c.fail_429:g}, "
            f"502 {c.fail_5xx:g}, drop after commit {c.drop_after_commit:g}"
        )
    if emulator.accepts_any_token:
        click.echo("note: accepting any non-empty bearer token (use --token to require one)")
    click.echo("press Ctrl-C to stop")

    def stop(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the exit
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    # Ctrl-C stops it even when it was started with SIGINT ignored (a shell's background job)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        click.echo(f"segsync emulator listening on {emulator.url}")
        emulator.serve_forever()
    except KeyboardInterrupt:
        click.echo("segsync emulator stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
