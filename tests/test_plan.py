"""make_plan: every action kind, reference checks, drift, ordering, field-level changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from plan_fixtures import (
    cargo_of,
    cond_number,
    cond_segment,
    cond_string,
    entry_for,
    intent,
    make_spec,
    one_group,
    state_of,
    uuid_for,
)

from segsync.canonical import to_wire
from segsync.plan import ABSENT, Action, FieldChange, Plan, make_plan
from segsync.state import State


def texts(action: Action) -> tuple[str, ...]:
    """The warnings of ``action`` as people read them."""
    return tuple(w.text for w in action.warnings)


def kinds(plan: Plan) -> list[tuple[str, str]]:
    return [(a.kind, a.id) for a in plan.actions]


def test_no_state_plans_every_spec_as_create() -> None:
    specs = [make_spec("a"), make_spec("b")]
    plan = make_plan(specs, State.empty())
    assert kinds(plan) == [("create", "a"), ("create", "b")]
    assert plan.has_changes
    assert plan.summary == {
        "create": 2,
        "update": 0,
        "replace": 0,
        "delete": 0,
        "moved": 0,
        "recreate": 0,
        "unchanged": 0,
        "orphan": 0,
        "adopt": 0,
        "dedupe": 0,
    }
    assert plan.actions[0].spec is specs[0]
    assert plan.actions[0].entry is None
    assert plan.actions[0].uuid is None


def test_same_digest_is_unchanged() -> None:
    spec = make_spec("a", limit=10)
    plan = make_plan([spec], state_of({"a": entry_for(spec)}))
    assert kinds(plan) == [("unchanged", "a")]
    assert not plan.has_changes
    assert plan.count("unchanged") == 1
    assert plan.actions[0].uuid == uuid_for("a")


def test_changed_value_is_update_with_old_and_new() -> None:
    old = make_spec("a", flt=one_group(cond_string("country", "FR"), cond_number("arr", 100)))
    new = make_spec("a", flt=one_group(cond_string("country", "FR"), cond_number("arr", 500)))
    plan = make_plan([new], state_of({"a": entry_for(old)}))
    (action,) = plan.actions
    assert action.kind == "update"
    assert action.changes == (FieldChange("filter.groups[0].conditions[1].value", 100, 500),)
    assert action.reason is None


def test_added_and_removed_fields_use_absent() -> None:
    old = make_spec("a", limit=100)
    new = make_spec("a", sort=[{"columnSlug": "arr", "kind": "desc"}])
    (action,) = make_plan([new], state_of({"a": entry_for(old)})).actions
    assert action.changes == (
        FieldChange("limit", 100, ABSENT),
        FieldChange("sort", ABSENT, [{"columnSlug": "arr", "kind": "desc"}]),
    )


def test_inserted_condition_is_one_addition_not_a_cascade() -> None:
    a, b, c = cond_string("country", "FR"), cond_number("arr", 1), cond_number("employee_count", 2)
    old = make_spec("s", flt=one_group(a, c))
    new = make_spec("s", flt=one_group(a, b, c))
    (action,) = make_plan([new], state_of({"s": entry_for(old)})).actions
    assert action.changes == (FieldChange("filter.groups[0].conditions[1]", ABSENT, b),)


def test_removed_value_in_list() -> None:
    old = make_spec("s", flt=one_group(cond_string("country", "FR", "DE", "ES")))
    new = make_spec("s", flt=one_group(cond_string("country", "FR", "ES")))
    (action,) = make_plan([new], state_of({"s": entry_for(old)})).actions
    assert action.changes == (
        FieldChange("filter.groups[0].conditions[0].values[1]", "DE", ABSENT),
    )


def test_reference_uuid_changed_in_state_is_update() -> None:
    icp = make_spec("sales/icp")
    eu = make_spec("sales/eu", flt=one_group(cond_segment("sales/icp")))
    state = state_of(
        {
            "sales/icp": entry_for(icp, uuid="new-icp-uuid"),
            "sales/eu": entry_for(eu, refs={"sales/icp": "old-icp-uuid"}),
        }
    )
    plan = make_plan([icp, eu], state)
    assert kinds(plan) == [("unchanged", "sales/icp"), ("update", "sales/eu")]
    assert plan.actions[1].reason == "reference sales/icp now points to new-icp-uuid"
    assert plan.actions[1].changes == ()


def test_model_change_is_replace_with_warning() -> None:
    old = make_spec("a", model="companies", limit=5)
    new = make_spec("a", model="contacts", limit=6)
    (action,) = make_plan([new], state_of({"a": entry_for(old)})).actions
    assert action.kind == "replace"
    assert action.reason == "model changed companies -> contacts"
    assert action.changes == (FieldChange("limit", 5, 6),)
    assert texts(action) == (
        "the API cannot move a segment to another model: apply deletes it and creates a new "
        "one (needs --allow-replace)",
    )


def test_protected_replace_warns_that_apply_refuses() -> None:
    old = make_spec("a", model="companies", protect=True)
    new = make_spec("a", model="contacts", protect=True)
    (action,) = make_plan([new], state_of({"a": entry_for(old)})).actions
    assert action.kind == "replace"
    assert "protected: apply refuses to replace it" in texts(action)


def test_referrer_of_replaced_spec_is_updated() -> None:
    icp_old = make_spec("icp", model="companies")
    icp = make_spec("icp", model="companies2")
    eu_old = make_spec("eu", model="companies2", flt=one_group(cond_segment("icp")))
    state = state_of({"icp": entry_for(icp_old), "eu": entry_for(eu_old)})
    plan = make_plan([icp, eu_old], state)
    assert kinds(plan) == [("replace", "icp"), ("update", "eu")]
    assert plan.actions[1].reason == "reference icp is replaced and gets a new UUID"


def test_entry_without_spec_is_orphan_without_prune() -> None:
    gone = make_spec("old/one", "Old one")
    plan = make_plan([], state_of({"old/one": entry_for(gone)}))
    (action,) = plan.actions
    assert (action.kind, action.name, action.file) == ("orphan", "Old one", "segments/old/one.yaml")
    assert action.reason == "no longer managed, left in place"
    assert action.spec is None
    assert not plan.has_changes
    assert plan.count("orphan") == 1


def test_prune_deletes_unprotected_and_keeps_protected() -> None:
    a = make_spec("a")
    p = make_spec("p", protect=True)
    plan = make_plan([], state_of({"a": entry_for(a), "p": entry_for(p)}), prune=True)
    assert kinds(plan) == [("delete", "a"), ("orphan", "p")]
    assert plan.actions[0].uuid == uuid_for("a")
    assert texts(plan.actions[1]) == ("protected, not deleted",)


def test_renamed_file_without_explicit_id_is_moved() -> None:
    old = make_spec("sales/old-name", "Enterprise", explicit_id=False)
    new = make_spec("sales/new-name", "Enterprise", explicit_id=False)
    plan = make_plan([new], state_of({"sales/old-name": entry_for(old)}))
    (action,) = plan.actions
    assert (action.kind, action.id, action.moved_from) == (
        "moved",
        "sales/new-name",
        "sales/old-name",
    )
    assert action.uuid == uuid_for("sales/old-name")
    assert action.changes == ()
    assert plan.has_changes


def test_moved_carries_field_changes() -> None:
    old = make_spec("x/a", "Same", explicit_id=False, limit=1)
    new = make_spec("x/b", "Same", explicit_id=False, limit=2)
    (action,) = make_plan([new], state_of({"x/a": entry_for(old)})).actions
    assert action.kind == "moved"
    assert action.changes == (FieldChange("limit", 1, 2),)


def test_explicit_id_avoids_the_move_guess() -> None:
    old = make_spec("x/a", "Same")
    new = make_spec("x/b", "Same", explicit_id=True)
    plan = make_plan([new], state_of({"x/a": entry_for(old)}), prune=True)
    assert kinds(plan) == [("create", "x/b"), ("delete", "x/a")]


def test_move_needs_same_model_and_unambiguous_match() -> None:
    old = make_spec("x/a", "Same", model="companies", explicit_id=False)
    other_model = make_spec("x/b", "Same", model="contacts", explicit_id=False)
    plan = make_plan([other_model], state_of({"x/a": entry_for(old)}))
    assert kinds(plan) == [("create", "x/b"), ("orphan", "x/a")]


def test_pending_create_intent_is_planned_as_create_with_warning() -> None:
    spec = make_spec("a")
    entry = entry_for(spec, uuid=None, intent=intent("create"), applied=None, digest=None)
    entry = entry.model_copy(update={"uuid": None})
    (action,) = make_plan([spec], state_of({"a": entry})).actions
    assert action.kind == "create"
    assert action.entry is entry
    assert texts(action) == (
        "an interrupted create was recorded at 2026-11-27T13:00:00.000Z; apply looks for that "
        "segment in Cargo before creating it",
    )


def test_pending_delete_is_an_unfinished_replace() -> None:
    spec = make_spec("a")
    entry = entry_for(spec, pending_delete="old-uuid")
    (action,) = make_plan([spec], state_of({"a": entry})).actions
    assert action.kind == "replace"
    assert action.reason == "unfinished replace: old segment old-uuid still to delete"


def remote_of(spec_fields: dict[str, Any], uuid: str, **extra: Any) -> dict[str, Any]:
    return {"uuid": uuid, "recordsCount": 3, "fromPlay": False, **spec_fields, **extra}


def test_remote_gone_is_recreate() -> None:
    spec = make_spec("a")
    state = state_of({"a": entry_for(spec)})
    plan = make_plan([spec], state, cargo=cargo_of([spec], state, {"a": None}))
    assert kinds(plan) == [("recreate", "a")]
    assert plan.actions[0].reason == "deleted outside segsync"
    assert plan.refreshed


def test_remote_drift_is_update_from_remote_to_spec() -> None:
    spec = make_spec("a", limit=100)
    live = remote_of({**spec.managed, "limit": 999.0}, uuid_for("a"))
    state = state_of({"a": entry_for(spec)})
    plan = make_plan([spec], state, cargo=cargo_of([spec], state, {"a": live}))
    (action,) = plan.actions
    assert action.kind == "update"
    assert action.reason == "drift: changed outside segsync"
    assert action.changes == (FieldChange("limit", 999, 100),)


def test_remote_with_segment_uuid_matching_applied_is_unchanged() -> None:
    icp = make_spec("icp")
    eu = make_spec("eu", flt=one_group(cond_segment("icp")), limit=500.0)
    state = state_of({"icp": entry_for(icp), "eu": entry_for(eu)})
    live = {
        "icp": remote_of(to_wire(icp.managed, ref_uuids={}), uuid_for("icp")),
        "eu": remote_of(
            to_wire(eu.managed, ref_uuids={"icp": uuid_for("icp")}),
            uuid_for("eu"),
            columnSlugs=None,
        ),
    }
    plan = make_plan([icp, eu], state, cargo=cargo_of([icp, eu], state, live))
    assert kinds(plan) == [("unchanged", "icp"), ("unchanged", "eu")]


def test_recreated_reference_updates_its_referrer() -> None:
    icp = make_spec("icp")
    eu = make_spec("eu", flt=one_group(cond_segment("icp")))
    state = state_of({"icp": entry_for(icp), "eu": entry_for(eu)})
    live = {
        "icp": None,
        "eu": remote_of(to_wire(eu.managed, ref_uuids={"icp": uuid_for("icp")}), "x"),
    }
    plan = make_plan([icp, eu], state, cargo=cargo_of([icp, eu], state, live))
    assert kinds(plan) == [("recreate", "icp"), ("update", "eu")]
    assert plan.actions[1].reason == "reference icp is recreated and gets a new UUID"


def test_order_follows_references_then_deletes_in_reverse() -> None:
    # c -> b -> a (c references b, b references a); z has no references.
    a = make_spec("a")
    b = make_spec("b", flt=one_group(cond_segment("a")))
    c = make_spec("c", flt=one_group(cond_segment("b")))
    z = make_spec("z")
    # Deleted entries: "d2" references "d1", so d2 goes first.
    d1 = make_spec("d1")
    d2 = make_spec("d2", flt=one_group(cond_segment("d1")))
    state = state_of(
        {"z": entry_for(make_spec("z", limit=1)), "d1": entry_for(d1), "d2": entry_for(d2)}
    )
    plan = make_plan([c, b, a, z], state, prune=True)
    assert kinds(plan) == [
        ("create", "a"),
        ("update", "z"),
        ("create", "b"),
        ("create", "c"),
        ("delete", "d2"),
        ("delete", "d1"),
    ]


def test_long_reference_chain_does_not_recurse() -> None:
    specs = [make_spec("s0")] + [
        make_spec(f"s{i}", flt=one_group(cond_segment(f"s{i - 1}"))) for i in range(1, 3000)
    ]
    plan = make_plan(list(reversed(specs)), State.empty())
    assert [a.id for a in plan.actions] == [f"s{i}" for i in range(3000)]


@pytest.mark.parametrize("prune", [False, True])
def test_plan_is_deterministic(prune: bool) -> None:
    specs = [make_spec(f"s{i:02d}", limit=i) for i in range(20)]
    state = state_of(
        {f"s{i:02d}": entry_for(make_spec(f"s{i:02d}", limit=i + i % 2)) for i in range(25)}
    )
    first = make_plan(specs, state, prune=prune)
    second = make_plan(list(reversed(specs)), state, prune=prune)
    assert kinds(first) == kinds(second)
    assert first.count("update") == 10
    assert first.count("delete" if prune else "orphan") == 5


def test_referrer_of_a_moved_spec_keeps_its_uuid() -> None:
    old_icp = make_spec("sales/icp-old", "ICP", explicit_id=False)
    new_icp = make_spec("sales/icp", "ICP", explicit_id=False)
    eu_old = make_spec("eu", flt=one_group(cond_segment("sales/icp-old")))
    eu_new = make_spec("eu", flt=one_group(cond_segment("sales/icp")))
    state = state_of({"sales/icp-old": entry_for(old_icp), "eu": entry_for(eu_old)})
    plan = make_plan([new_icp, eu_new], state)
    assert kinds(plan) == [("moved", "sales/icp"), ("update", "eu")]
    eu = plan.actions[1]
    # The filter's text changed (the id it names), the UUID it points to did not.
    assert eu.reason is None
    assert eu.changes == (
        FieldChange("filter.groups[0].conditions[0].segment", "sales/icp-old", "sales/icp"),
    )


def test_known_specs_rebuild_the_specs_an_apply_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses
    import shutil

    from segsync.specs import known_specs, load_specs
    from segsync.state import Entry, Intent, State

    shutil.copytree(Path(__file__).parent.parent / "segments", tmp_path / "segments")
    monkeypatch.chdir(tmp_path)
    specs = load_specs("segments")
    entries = {
        s.id: Entry(uuid=f"00000000-0000-4000-8000-{i:012d}", model=s.model_ref,
                    applied=s.managed, digest=s.digest, refs=dict.fromkeys(s.refs, "u"),
                    protect=s.protect, file=s.file, file_sha256=s.file_sha256)
        for i, s in enumerate(specs)
    }
    # an entry with a create under way is not known: its file must be parsed again
    entries["sales/icp"] = entries["sales/icp"].model_copy(
        update={"intent": Intent(op="create", at="2026-11-27T13:00:00.000Z")}
    )
    known = known_specs(State(serial=1, lineage="l", segments=entries), "segments")
    assert "segments/sales/icp.yaml" not in known
    assert len(known) == len(specs) - 1
    for spec in specs:
        if spec.id == "sales/icp":
            continue
        sha, rebuilt = known[spec.file]
        assert sha == spec.file_sha256
        # an explicit `id:` equal to the file's default id cannot be told apart; it matters
        # only to the rename guess, which never concerns a spec that has its entry
        assert rebuilt == dataclasses.replace(
            spec, line=1, column=1, explicit_id=spec.id != spec.file[9:].rsplit(".", 1)[0]
        )
    assert known_specs(State(serial=1, lineage="l", segments=entries), "elsewhere") == {}
