"""Helpers shared by the tests and the benchmarks: spec files, state files, the command line run
in this process (or its environment for a child process), and the calls an emulator's store got.

Import them as ``from tests.helpers import ...``: the editable install puts the repository root
on ``sys.path``, so this works from the tests and from ``python benchmarks/<script>.py`` alike.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from click.testing import CliRunner, Result

from segsync.cli import cli

if TYPE_CHECKING:
    from segsync.emulator.server import Emulator
    from segsync.specs import LoadedSpec
    from segsync.state import State

ROOT = Path(__file__).resolve().parents[1]
#: The example specs of the repository (6 specs, references included).
EXAMPLES = ROOT / "segments"
LINEAGE = "6f1c2b3a-0000-4000-8000-000000000001"
APPLIED_AT = "2026-11-27T13:00:00.000Z"


# --- spec files -------------------------------------------------------------------------------


def spec_text(
    name: str,
    *,
    model: str = "companies",
    countries: Sequence[str] = ("FR",),
    conditions: Sequence[str] = (),
    ref: str | None = None,
    raw_ref: str | None = None,
    limit: int | None = None,
    extra: str = "",
) -> str:
    """The text of a spec file with one group of ANDed conditions, in this order: country is one
    of ``countries`` (left out when empty), then ``conditions`` (flow-style YAML mappings, as
    written), then "in segment" conditions on spec id ``ref`` and on segment UUID ``raw_ref``.
    ``limit`` when given; ``extra`` (more top-level keys) is appended as is."""
    written: list[str] = []
    if countries:
        values = ", ".join(countries)
        written.append(
            f"{{kind: string, columnSlug: country, operator: is, values: [{values}]}}"
        )
    written.extend(conditions)
    if ref is not None:
        written.append(f"{{kind: segment, operator: in, segment: {ref}}}")
    if raw_ref is not None:
        written.append(f"{{kind: segment, operator: in, segmentUuid: {raw_ref}}}")
    text = (
        f"name: {json.dumps(name)}\n"
        f"model: {model}\n"
        "filter:\n"
        "  conjonction: and\n"
        "  groups:\n"
        "    - conjonction: and\n"
        "      conditions:\n"
    )
    text += "".join(f"        - {condition}\n" for condition in written)
    if limit is not None:
        text += f"limit: {limit}\n"
    return text + extra


def write_spec(folder: str | Path, rel: str, text: str) -> Path:
    """Write ``text`` to ``folder/rel`` (sub-folders created); returns the path."""
    path = Path(folder) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- state files ------------------------------------------------------------------------------


def applied_state(
    specs: Iterable[LoadedSpec],
    *,
    uuid_for: Callable[[str], str],
    model_uuid: str | None = None,
    serial: int = 1,
    lineage: str = LINEAGE,
    applied_at: str = APPLIED_AT,
) -> State:
    """The state an apply of every spec in ``specs`` leaves behind: spec ``id`` got the segment
    ``uuid_for(id)`` (references too), on the model ``model_uuid`` when given."""
    from segsync.state import Entry, State

    entries = {
        spec.id: Entry(
            uuid=uuid_for(spec.id),
            model=spec.model_ref,
            model_uuid=model_uuid,
            applied=spec.managed,
            digest=spec.digest,
            refs={ref: uuid_for(ref) for ref in spec.refs},
            protect=spec.protect,
            file=spec.file,
            file_sha256=spec.file_sha256,
            applied_at=applied_at,
        )
        for spec in specs
    }
    return State(serial=serial, lineage=lineage, segments=entries)


def write_state(path: str | Path, state: State) -> Path:
    """Write ``state`` to the state file ``path``, byte for byte as segsync writes it."""
    from segsync.state import dump_state

    target = Path(path)
    target.write_bytes(dump_state(state))
    return target


# --- the command line, in this process --------------------------------------------------------


def run_cli(
    args: Sequence[str],
    *,
    env: Mapping[str, str | None] | None = None,
    input: str | bytes | IO[Any] | None = None,
    catch_exceptions: bool = False,
) -> Result:
    """``segsync ARGS`` in this process, through click's CliRunner.

    stdout and stderr are kept apart (``result.stdout``, ``result.stderr``); stdin reads
    ``input`` and is not a terminal (see :func:`terminal_input`); ``env`` is laid over
    ``os.environ`` for the call (None unsets a variable). The group's ``main`` ends with
    ``sys.exit``, which becomes ``result.exit_code``. Any other exception is a bug (segsync
    renders its own errors), so it propagates with its traceback unless ``catch_exceptions``.
    The command sets its own SIGTERM handler; this process gets its own back afterwards.
    """
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        return CliRunner().invoke(
            cli, list(args), input=input, env=env, catch_exceptions=catch_exceptions
        )
    finally:
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)


def cargo_env(url: str, token: str, **extra: str | None) -> dict[str, str | None]:
    """Environment changes for one run against ``url`` with ``token``: every other CARGO_* and
    SEGSYNC_* variable of this process unset, NO_COLOR set, then ``extra`` (None unsets).
    Give it to :func:`run_cli` as ``env``, or to :func:`process_env` for a child process."""
    env: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith(("CARGO_", "SEGSYNC_"))
    }
    env.update({"CARGO_API_URL": url, "CARGO_API_TOKEN": token, "NO_COLOR": "1", **extra})
    return env


def process_env(changes: Mapping[str, str | None]) -> dict[str, str]:
    """The environment of a child process: ``os.environ`` with ``changes`` (None unsets)."""
    merged = {**os.environ, **changes}
    return {name: value for name, value in merged.items() if value is not None}


# --- what reached the emulator -----------------------------------------------------------------

Calls = dict[str, list[Any]]


def record_calls(
    emu: Emulator, fail: Callable[[str, Any], None] | None = None, *, lists: bool = True
) -> Calls:
    """Record each create (its body), update ((uuid, body)), delete (uuid) and list (model uuid)
    that reaches ``emu``'s store; ``fail(op, args)`` may raise (say an emulator HttpError) to
    refuse a create or an update. ``lists=False`` records the writes only. Recording again
    replaces the earlier recorder."""
    calls: Calls = {"create": [], "update": [], "delete": []}
    if lists:
        calls["list"] = []
    store = emu.store
    # The class's methods, so that a second recorder does not stack on the first.
    cls = type(store)
    create, update = cls.create.__get__(store), cls.update.__get__(store)
    delete, list_ = cls.delete.__get__(store), cls.list_segments.__get__(store)

    def on_create(body: Any) -> Any:
        calls["create"].append(body)
        if fail is not None:
            fail("create", body)
        return create(body)

    def on_update(uuid: str, body: Any) -> Any:
        calls["update"].append((uuid, body))
        if fail is not None:
            fail("update", (uuid, body))
        return update(uuid, body)

    def on_delete(uuid: str) -> Any:
        calls["delete"].append(uuid)
        return delete(uuid)

    def on_list(model_uuid: str | None = None) -> Any:
        calls["list"].append(model_uuid)
        return list_(model_uuid)

    store.create = on_create  # type: ignore[method-assign]
    store.update = on_update  # type: ignore[method-assign]
    store.delete = on_delete  # type: ignore[method-assign]
    if lists:
        store.list_segments = on_list  # type: ignore[method-assign]
    return calls


def run_against(emu: Emulator, token: str, *args: str) -> Result:
    """``segsync ARGS`` in this process against ``emu`` (the current folder); the token must
    not show in its output."""
    result = run_cli(args, env=cargo_env(emu.url, token))
    assert token not in result.stdout and token not in result.stderr
    return result


def process_against(emu: Emulator, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m segsync ARGS`` as a real process against ``emu`` (no proxy variables, so
    loopback stays direct); the token must not show in its output."""
    changes = cargo_env(emu.url, token)
    changes.update({k: None for k in os.environ if "proxy" in k.lower()})
    proc = subprocess.run(
        [sys.executable, "-m", "segsync", *args], env=process_env(changes),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert token not in proc.stdout and token not in proc.stderr
    return proc


# --- the command line, helpers -----------------------------------------------------------------


class _TerminalBytes(io.BytesIO):
    def isatty(self) -> bool:
        return True


def terminal_input(text: str) -> IO[bytes]:
    """Input for :func:`run_cli` that says it is a terminal: prompts are asked and answered
    with ``text``."""
    return _TerminalBytes(text.encode("utf-8"))
