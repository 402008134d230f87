"""Helpers shared by the tests and the benchmarks: spec files, state files, and the command line
run in this process.

Import them as ``from tests.helpers import ...``: the editable install puts the repository root
on ``sys.path``, so this works from the tests and from ``python benchmarks/<script>.py`` alike.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from click.testing import CliRunner, Result

from segsync.cli import cli

if TYPE_CHECKING:
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
    """
    return CliRunner().invoke(
        cli, list(args), input=input, env=env, catch_exceptions=catch_exceptions
    )


class _TerminalBytes(io.BytesIO):
    def isatty(self) -> bool:
        return True


def terminal_input(text: str) -> IO[bytes]:
    """Input for :func:`run_cli` that says it is a terminal: prompts are asked and answered
    with ``text``."""
    return _TerminalBytes(text.encode("utf-8"))
