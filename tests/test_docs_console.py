"""The README's quick start is real output: its two console examples are replayed against the
emulator and compared line by line (UUIDs of new segments, durations and the port masked; the
result lines of a parallel apply compared as a set, since they finish in any order)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from segsync.emulator.server import Emulator
from tests.helpers import EXAMPLES, ROOT, run_cli

_TIME = re.compile(r"\(\d+\.\d\ds\)")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _console_blocks(text: str) -> list[list[tuple[str, list[str]]]]:
    """Each ```console block as (command, output lines) pairs."""
    blocks = []
    for body in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        steps: list[tuple[str, list[str]]] = []
        for line in body.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        blocks.append(steps)
    return blocks


def _mask(line: str, keep: set[str]) -> str:
    line = _TIME.sub("(T)", line)
    return _UUID.sub(lambda m: m.group() if m.group() in keep else "UUID", line)


def _same(shown: list[str], real: list[str], keep: set[str]) -> None:
    shown_m = [_mask(x, keep) for x in shown]
    real_m = [_mask(x, keep) for x in real]
    results = [i for i, x in enumerate(shown_m) if re.match(r"[+~=-] \S+ (created|updated)", x)]
    if results:  # apply's result lines: the same lines, in the order they finished
        a, b = results[0], results[-1] + 1
        assert shown_m[:a] == real_m[:a]
        assert sorted(shown_m[a:b]) == sorted(real_m[a:b])
        assert shown_m[b:] == real_m[b:]
    else:
        assert shown_m == real_m


@pytest.fixture
def quick_start(
    tmp_path: Path, emulator_factory: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> Emulator:
    shutil.copytree(EXAMPLES, tmp_path / "segments")
    monkeypatch.chdir(tmp_path)
    emu: Emulator = emulator_factory(token="demo", fixtures=True)
    monkeypatch.setenv("CARGO_API_URL", emu.url)
    monkeypatch.setenv("CARGO_API_TOKEN", "demo")
    monkeypatch.setenv("NO_COLOR", "1")
    return emu


def test_the_quick_start_is_real_output(quick_start: Emulator) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first, second = _console_blocks(readme)[:2]
    keep = {quick_start.catalog.workspace_uuid} | {m["uuid"] for m in quick_start.catalog.models}
    assert first[0][0].startswith("segsync emulator ")
    # the emulator's banner names the demo workspace the apply below targets
    assert first[0][1][0] == f"workspace 'demo' {quick_start.catalog.workspace_uuid}"
    assert first[1][0].startswith("export CARGO_API_URL=")
    assert second[0][0] == "sed -i 's/limit: 250/limit: 300/' segments/sales/enterprise-eu.yaml"
    spec = Path("segments/sales/enterprise-eu.yaml")
    for command, shown in [*first[2:], second[0], *second[1:]]:
        if command.startswith("sed "):
            spec.write_text(spec.read_text().replace("limit: 250", "limit: 300"))
            continue
        assert command.startswith("segsync "), command
        result = run_cli(command.split()[1:])
        assert result.exit_code == 0, result.stderr
        _same(shown, result.stdout.splitlines(), keep)
