"""``segsync state merge``: entry by entry, and never from a file that is not there."""

from __future__ import annotations

from pathlib import Path

from segsync.state import Entry, State, dump_state
from tests.helpers import run_cli

A = "0b4e28ba-2fa1-41d2-883f-0016d3cca427"
B = "7c1d6f0e-52b3-4a8e-9d21-3e5f7a9b1c04"


def _state(path: Path, **entries: str) -> bytes:
    state = State(serial=3, lineage="6f1c2b3a-0000-4000-8000-000000000001",
                  segments={sid: Entry(model="companies", uuid=u) for sid, u in entries.items()})
    data = dump_state(state)
    path.write_bytes(data)
    return data


def test_a_missing_side_is_an_error_and_nothing_is_written(tmp_path: Path) -> None:
    base = _state(tmp_path / "base.json", a=A)
    ours = _state(tmp_path / "ours.json", a=A, b=B)
    for args, named in (
        (["base.json", "ours.json", "missing.json"], "missing.json: no such file (THEIRS)"),
        (["base.json", "missing.json", "ours.json"], "missing.json: no such file (OURS)"),
        (["missing.json", "ours.json", "base.json"], "missing.json: no such file (BASE)"),
    ):
        result = run_cli(["state", "merge", *(str(tmp_path / a) for a in args)])
        assert result.exit_code == 1
        assert result.stderr == f"error: {tmp_path}/{named}; nothing was merged\n"
    assert (tmp_path / "ours.json").read_bytes() == ours
    assert (tmp_path / "base.json").read_bytes() == base


def test_an_empty_base_merges_from_nothing(tmp_path: Path) -> None:
    (tmp_path / "base.json").write_bytes(b"")
    _state(tmp_path / "ours.json", a=A)
    _state(tmp_path / "theirs.json", b=B)
    result = run_cli(["state", "merge", *(str(tmp_path / n) for n in
                                          ("base.json", "ours.json", "theirs.json"))])
    assert result.exit_code == 0, result.stderr
    merged = (tmp_path / "ours.json").read_text()
    assert A in merged and B in merged and '"serial": 4' in merged
