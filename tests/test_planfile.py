"""Saved plan files: round trip, checksum, freshness against state and specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plan_fixtures import LINEAGE, entry_for, every_kind_plan, make_spec, state_of

from segsync.errors import PlanFileError
from segsync.plan import make_plan
from segsync.planfile import SpecFingerprint, check_fresh, read_plan_file, write_plan_file
from segsync.render import plan_to_json
from segsync.specs import LoadedSpec
from segsync.state import State

Saved = tuple[Path, list[LoadedSpec], State]


@pytest.fixture
def saved(tmp_path: Path) -> Saved:
    specs = [make_spec("a", limit=1), make_spec("b")]
    state = state_of({"a": entry_for(make_spec("a", limit=2))}, serial=7)
    plan = make_plan(specs, state, prune=True)
    path = tmp_path / "plan.json"
    write_plan_file(path, plan, state=state, specs=specs, prune=True)
    return path, specs, state


def test_round_trip(saved: Saved) -> None:
    path, specs, state = saved
    plan = read_plan_file(path)
    assert (plan.lineage, plan.serial, plan.prune) == (LINEAGE, 7, True)
    assert plan.specs["a"] == SpecFingerprint(
        digest=specs[0].digest, model="companies", protect=False
    )
    assert sorted(plan.specs) == ["a", "b"]
    assert [a["action"] for a in plan.actions] == ["create", "update"]
    assert plan.summary["update"] == 1
    check_fresh(plan, state, specs)
    text = path.read_text()
    assert text.endswith("}\n")
    assert json.loads(text)["checksum"].startswith("sha256:")


def test_actions_are_those_of_the_json_format(tmp_path: Path) -> None:
    plan = every_kind_plan()
    state = state_of({})
    write_plan_file(tmp_path / "p.json", plan, state=state, specs=[], prune=True)
    assert list(read_plan_file(tmp_path / "p.json").actions) == plan_to_json(plan)["actions"]


def test_altered_file_is_refused(saved: Saved) -> None:
    path = saved[0]
    path.write_text(path.read_text().replace('"prune": true', '"prune": false'))
    with pytest.raises(PlanFileError, match="altered after it was written") as info:
        read_plan_file(path)
    assert info.value.path == str(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", r"not a segsync plan file \(invalid JSON"),
        ("[]", "not a segsync plan file"),
        ('{"kind": "segsync-plan", "formatVersion": 99}', "plan file format 99 is not supported"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(PlanFileError, match=message):
        read_plan_file(path)
    with pytest.raises(PlanFileError, match="cannot read the plan file"):
        read_plan_file(tmp_path / "missing.json")


def test_stale_when_state_serial_or_lineage_changed(
    saved: Saved,
) -> None:
    path, specs, state = saved
    plan = read_plan_file(path)
    newer = state.model_copy(update={"serial": 8})
    with pytest.raises(PlanFileError, match=r"serial 7 -> 8\); run `segsync plan` again"):
        check_fresh(plan, newer, specs)
    other = state.model_copy(update={"lineage": "other"})
    with pytest.raises(PlanFileError, match="the state file is another one"):
        check_fresh(plan, other, specs)


def test_stale_when_specs_changed(saved: Saved) -> None:
    path, _, state = saved
    plan = read_plan_file(path)
    changed = [make_spec("a", limit=3), make_spec("c")]
    with pytest.raises(PlanFileError) as info:
        check_fresh(plan, state, changed)
    assert str(info.value) == (
        f"{path}: the saved plan is stale: specs added since the plan was made: c; "
        "specs removed since the plan was made: b; specs changed since the plan was made: a; "
        "run `segsync plan` again"
    )
    protected = [make_spec("a", limit=1), make_spec("b", protect=True)]
    with pytest.raises(PlanFileError, match="specs changed since the plan was made: b"):
        check_fresh(plan, state, protected)
