"""apply.py against the in-process emulator over real loopback HTTP: ordering, the state it
writes, only-changed-field updates, failures that skip dependents, the lost-create check,
replaces, deletes and the safety refusals."""

from __future__ import annotations

import shutil
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from segsync.apply import ApplyReport, execute
from segsync.apply.actions import changed_fields
from segsync.canonical import canonical_managed, to_wire
from segsync.client import CargoClient
from segsync.emulator.server import Emulator
from segsync.emulator.store import WORKFLOW_SEGMENT_NAME, HttpError
from segsync.errors import ConfigError, PlanFileError, StateError, ValidationFailed
from segsync.manager import Prepared, prepare
from segsync.plan import check_safety, make_plan
from segsync.planfile import check_fresh, read_plan_file, write_plan_file
from segsync.refresh import Catalog, target_workspace
from segsync.render.progress import apply_summary, describe_result
from segsync.specs import load_specs
from segsync.state import (
    Entry,
    Intent,
    State,
    StateStore,
    dump_state,
    read_state,
    write_state_atomic,
)
from tests.helpers import EXAMPLES, record_calls, spec_text, write_spec

TLS = ssl.create_default_context()


@dataclass
class Project:
    root: Path
    emu: Emulator

    @property
    def specs(self) -> Path:
        return self.root / "segments"

    @property
    def state_path(self) -> Path:
        return self.root / "segsync.state.json"

    def write(self, rel: str, text: str) -> None:
        write_spec(self.specs, rel, text)

    def state(self) -> State:
        return read_state(self.state_path)

    def client(self) -> CargoClient:
        # Retries wait for nothing: the tests count attempts, not seconds. The TLS context is
        # built once (loading the CA certificates costs ~20 ms per client).
        return CargoClient(
            self.emu.url, self.emu.token, max_retry_time=10, sleep=lambda _: None,
            transport=httpx.HTTPTransport(verify=TLS),
        )

    def prepare(self, *, prune: bool = False, saved: Any = None) -> Prepared:
        state = self.state()
        with self.client() as client:
            return prepare(
                client, Catalog(client), load_specs(self.specs), state, prune=prune, saved=saved
            )

    def apply(
        self,
        *,
        prune: bool = False,
        allow_replace: bool = False,
        force: bool = False,
        parallelism: int = 4,
        seen: list[str] | None = None,
    ) -> ApplyReport:
        prepared = self.prepare(prune=prune)
        check_safety(prepared.plan, prepared.state, allow_replace=allow_replace, force=force)
        with self.client() as client:
            return execute(
                prepared.plan, prepared.cargo, client, StateStore(self.state_path, prepared.state),
                workspace_uuid=prepared.workspace["uuid"], parallelism=parallelism,
                on_result=(lambda r, done, total: seen.append(describe_result(r)))
                if seen is not None else None,
            )

    def live(self) -> list[dict[str, Any]]:
        return [s for s in self.emu.store.raw_segments() if s["deletedAt"] is None]

    def model_uuid(self, slug: str) -> str:
        return next(m["uuid"] for m in self.emu.catalog.models if m["slug"] == slug)


@pytest.fixture
def project(tmp_path: Path, empty_emulator: Emulator) -> Project:
    return Project(tmp_path, empty_emulator)


def assert_in_sync(project: Project) -> None:
    """Every spec has exactly one live segment with its canonical fields; the state knows it."""
    specs = load_specs(project.specs)
    state = project.state()
    live = {s["uuid"]: s for s in project.live()}
    names = [s["name"] for s in live.values()]
    for s in specs:
        entry = state.segments[s.id]
        assert entry.uuid in live, s.id
        assert entry.intent is None and entry.pending_delete is None
        assert names.count(s.name) == 1, s.name
        refs = {ref: state.segments[ref].uuid for ref in s.refs}
        assert entry.refs == refs
        want = canonical_managed(to_wire(s.managed, ref_uuids=refs))  # type: ignore[arg-type]
        assert canonical_managed(live[entry.uuid]) == want
        assert entry.digest == s.digest and entry.applied == s.managed
    assert set(state.segments) == {s.id for s in specs}


# --- creating ---------------------------------------------------------------------------------


def test_applies_the_example_specs_references_first(project: Project) -> None:
    shutil.copytree(EXAMPLES, project.specs)
    calls = record_calls(project.emu)
    seen: list[str] = []
    report = project.apply(parallelism=8, seen=seen)

    assert apply_summary(report) == "Apply complete: 6 created, 0 updated, 0 replaced, 0 deleted."
    assert report.failures == []
    assert_in_sync(project)
    created = [body["name"] for body in calls["create"]]
    assert created.index("ICP accounts") < created.index("Enterprise EU")
    assert created.index("ICP accounts") < created.index("Young startups")
    state = project.state()
    assert state.workspace_uuid == project.emu.catalog.workspace_uuid
    icp = state.segments["sales/icp"].uuid
    assert state.segments["sales/enterprise-eu"].refs == {"sales/icp": icp}
    assert len(seen) == 6 and all(line.startswith("+ ") and " created (" in line for line in seen)
    assert "+ sales/icp created (" in "\n".join(seen) and f"uuid {icp}" in "\n".join(seen)

    # Applied again: nothing to do, no request that changes anything.
    again = project.prepare()
    assert not again.plan.has_changes
    assert project.apply().results == ()
    assert len(calls["create"]) == 6 and calls["update"] == [] and calls["delete"] == []


def test_listing_is_one_call_per_model(project: Project) -> None:
    shutil.copytree(EXAMPLES, project.specs)
    calls = record_calls(project.emu)
    project.apply()
    assert sorted(calls["list"]) == sorted(
        [project.model_uuid("companies"), project.model_uuid("contacts")]
    )


def test_state_holds_only_what_succeeded_and_dependents_are_skipped(project: Project) -> None:
    shutil.copytree(EXAMPLES, project.specs)

    def refuse_icp(op: str, body: Any) -> None:
        if op == "create" and body["name"] == "ICP accounts":
            raise HttpError(400, "filter: refused for the test", "invalidFilter")

    record_calls(project.emu, fail=refuse_icp)
    report = project.apply()

    failures = dict(report.failures)
    assert set(failures) == {"sales/icp", "sales/enterprise-eu", "sales/young-startups"}
    assert "refused for the test" in failures["sales/icp"]
    assert failures["sales/enterprise-eu"] == "skipped: sales/icp failed"
    assert apply_summary(report) == (
        "Apply incomplete: 3 created, 0 updated, 0 replaced, 0 deleted; 1 failed, 2 skipped."
    )
    state = project.state()
    # The refused create left nothing behind, not even its intent.
    assert sorted(state.segments) == [
        "marketing/decision-makers", "marketing/newsletter-engaged", "sales/stale-opportunities"
    ]
    assert len(project.live()) == 3

    record_calls(project.emu)  # the refusal is gone: running apply again finishes the job
    assert project.apply().failures == []
    assert_in_sync(project)


# --- updating ---------------------------------------------------------------------------------


SORT = "sort:\n  - {columnSlug: arr, kind: desc}\n"


def test_update_sends_only_the_changed_fields(project: Project) -> None:
    project.write("a.yaml", spec_text("A", limit=10, extra=SORT))
    project.apply()
    calls = record_calls(project.emu)
    uuid = project.state().segments["a"].uuid

    project.write("a.yaml", spec_text("A", limit=20, extra=SORT))
    project.apply()
    assert calls["update"] == [(uuid, {"limit": 20})]

    project.write("a.yaml", spec_text("A", limit=20))  # sort removed: cleared with null
    project.apply()
    assert calls["update"][1] == (uuid, {"sort": None})

    project.write("a.yaml", spec_text("A", countries=("DE",), limit=20))  # the filter goes whole
    seen: list[str] = []
    project.apply(seen=seen)
    sent = calls["update"][2][1]
    assert list(sent) == ["filter"]
    assert sent["filter"]["groups"][0]["conditions"][0]["values"] == ["DE"]
    assert seen == [seen[0]] and seen[0].startswith("~ a updated (") and "sent filter" in seen[0]
    assert calls["create"] == [] and calls["delete"] == []
    assert_in_sync(project)


def test_changed_fields() -> None:
    current = {"name": "A", "filter": {"x": 1}, "sort": [{"columnSlug": "a", "kind": "asc"}],
               "limit": 5}
    desired = {"name": "A", "filter": {"x": 1}, "limit": 5.0, "trackingColumnSlugs": ["b"]}
    assert changed_fields(current, canonical_managed(desired)) == {
        "sort": None, "trackingColumnSlugs": ["b"]
    }
    assert changed_fields({"name": "A", "filter": {"v": 1}}, {"name": "A", "filter": {"v": True}})


def test_drift_is_restored_from_the_live_segment(project: Project) -> None:
    project.write("a.yaml", spec_text("A", limit=10))
    project.apply()
    uuid = project.state().segments["a"].uuid
    assert uuid is not None
    project.emu.store.update(uuid, {"limit": 99, "name": "Renamed in Cargo"})
    calls = record_calls(project.emu)

    prepared = project.prepare()
    assert [(a.kind, a.reason) for a in prepared.plan.changes()] == [
        ("update", "drift: changed outside segsync")
    ]
    project.apply()
    assert calls["update"] == [(uuid, {"limit": 10, "name": "A"})]
    assert_in_sync(project)


def test_a_segment_linked_to_a_workflow_fails_and_keeps_its_entry(project: Project) -> None:
    project.write("a.yaml", spec_text("A", limit=10))
    project.write("b.yaml", spec_text("B", limit=10))
    project.apply()
    before = project.state().segments["a"]
    assert before.uuid is not None
    project.emu.store.set_linked_to_workflow(before.uuid)
    project.write("a.yaml", spec_text("A", limit=11))
    project.write("b.yaml", spec_text("B", limit=11))

    report = project.apply()
    failures = dict(report.failures)
    assert list(failures) == ["a"] and "workflow" in failures["a"]
    assert "segmentLinkedToWorkflow" in failures["a"]
    state = project.state()
    assert state.segments["a"] == before  # unchanged
    assert state.segments["b"].applied is not None and state.segments["b"].applied["limit"] == 11


def test_an_update_whose_segment_vanished_fails_with_a_recreate_hint(project: Project) -> None:
    project.write("a.yaml", spec_text("A", limit=10))
    project.apply()
    before = project.state().segments["a"]

    def gone(op: str, body: Any) -> None:
        raise HttpError(404, "segment not found", "segmentNotFound")

    record_calls(project.emu, fail=gone)
    project.write("a.yaml", spec_text("A", limit=11))
    report = project.apply()
    [(sid, message)] = report.failures
    assert sid == "a" and "deleted outside segsync while apply ran" in message
    assert "run apply again to recreate it" in message
    assert project.state().segments["a"] == before


def test_a_perpetual_diff_is_a_warning_not_a_loop(project: Project) -> None:
    project.write("a.yaml", spec_text("A", limit=10))
    project.apply()
    store = project.emu.store
    update = store.update

    def stores_another_limit(uuid: str, body: Any) -> Any:
        segment = update(uuid, body)
        return {**segment, "limit": 1}

    store.update = stores_another_limit  # type: ignore[method-assign]
    project.write("a.yaml", spec_text("A", limit=11))
    report = project.apply()
    [result] = report.results
    assert result.status == "done"
    assert result.warnings and "perpetual diff" in result.warnings[0]
    assert "limit" in result.warnings[0]


# --- the lost-create check --------------------------------------------------------------------


def test_a_create_whose_answer_is_lost_is_adopted_not_repeated(project: Project) -> None:
    from segsync.emulator.faults import FaultConfig

    for i in range(5):
        project.write(f"s{i}.yaml", spec_text(f"S{i}", limit=10 + i))
    project.write("ref.yaml", spec_text("Ref", ref="s0"))
    calls = record_calls(project.emu)
    project.emu.set_faults(FaultConfig(drop_after_commit=1.0))  # every write's answer is lost
    seen: list[str] = []
    report = project.apply(seen=seen)

    assert report.failures == []
    assert len(calls["create"]) == 6  # each sent once, then found by listing
    assert sum("adopted" in line for line in seen) == 6
    assert_in_sync(project)


def test_a_create_answered_502_is_checked_then_sent_again(project: Project) -> None:
    project.write("a.yaml", spec_text("A"))
    failed: list[str] = []

    def first_fails(op: str, body: Any) -> None:
        if op == "create" and not failed:
            failed.append(body["name"])
            raise HttpError(502, "bad gateway")

    calls = record_calls(project.emu, fail=first_fails)
    report = project.apply()
    assert report.failures == []
    assert len(calls["create"]) == 2
    # listed once to refresh, once to look for the lost create
    assert len(calls["list"]) == 2
    assert_in_sync(project)


def test_a_failed_search_for_a_lost_create_is_repeated_before_any_resend(
    project: Project,
) -> None:
    project.write("a.yaml", spec_text("A"))
    lists: list[int] = []
    store = project.emu.store
    list_segments = type(store).list_segments.__get__(store)

    def flaky_list(model_uuid: str | None = None) -> Any:
        lists.append(1)
        if 2 <= len(lists) <= 6:  # the first search exhausts the client's 5 attempts
            raise HttpError(502, "bad gateway")
        return list_segments(model_uuid)

    def first_create_fails(op: str, body: Any) -> None:
        if op == "create" and len(calls["create"]) == 1:
            raise HttpError(502, "bad gateway")

    calls = record_calls(project.emu, fail=first_create_fails)
    store.list_segments = flaky_list  # type: ignore[method-assign]
    report = project.apply()
    assert report.failures == []
    assert len(calls["create"]) == 2 and len(lists) == 7
    assert_in_sync(project)


def test_a_create_that_never_succeeds_gives_up_and_leaves_no_intent(project: Project) -> None:
    project.write("a.yaml", spec_text("A"))

    def always(op: str, body: Any) -> None:
        raise HttpError(502, "bad gateway")

    calls = record_calls(project.emu, fail=always)
    report = project.apply()
    [(sid, message)] = report.failures
    assert sid == "a" and "gave up after 5 attempts" in message
    # each attempt was checked: the message says none created it, not that it "may exist"
    assert "may exist" not in message and "none of them created it" in message
    assert len(calls["create"]) == 5 and len(calls["list"]) == 6  # a search after each
    assert project.state().segments == {} and project.live() == []


def _intent_state(project: Project, name: str, at: datetime) -> None:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
    state = State(
        serial=3,
        lineage="6f1c2b3a-0000-4000-8000-000000000001",
        segments={
            "a": Entry(
                uuid=None,
                model="companies",
                model_uuid=project.model_uuid("companies"),
                applied={"name": name},
                file="segments/a.yaml",
                intent=Intent(op="create", at=stamp),
            )
        },
    )
    write_state_atomic(project.state_path, dump_state(state))


def _direct_create(project: Project, name: str, limit: int | None = None) -> str:
    body: dict[str, Any] = {
        "name": name,
        "modelUuid": project.model_uuid("companies"),
        "filter": {"conjonction": "and", "groups": [{"conjonction": "and", "conditions": [
            {"kind": "string", "columnSlug": "country", "operator": "is", "values": ["FR"]}]}]},
    }
    if limit is not None:
        body["limit"] = limit
    return str(project.emu.store.create(body)["uuid"])


def test_an_interrupted_create_is_adopted_and_brought_up_to_date(project: Project) -> None:
    project.write("a.yaml", spec_text("A", limit=10))
    _intent_state(project, "A", datetime.now(timezone.utc) - timedelta(seconds=5))
    made = _direct_create(project, "A", limit=3)  # the interrupted run's create, with old fields
    calls = record_calls(project.emu)

    prepared = project.prepare()
    [action] = prepared.plan.changes()
    assert action.kind == "create" and "interrupted create" in action.warnings[0].text
    report = project.apply()
    assert report.failures == [] and report.results[0].detail.startswith("adopted")
    assert calls["create"] == []
    assert calls["update"] == [(made, {"limit": 10})]
    assert project.state().segments["a"].uuid == made
    assert_in_sync(project)


def test_several_candidates_fail_and_keep_the_intent(project: Project) -> None:
    project.write("a.yaml", spec_text("A"))
    _intent_state(project, "A", datetime.now(timezone.utc) - timedelta(seconds=5))
    one, two = _direct_create(project, "A"), _direct_create(project, "A")
    calls = record_calls(project.emu)

    report = project.apply()
    [(sid, message)] = report.failures
    assert sid == "a" and one in message and two in message and "intent stays" in message
    entry = project.state().segments["a"]
    assert entry.uuid is None and entry.intent is not None
    assert calls["create"] == []


def test_a_namesake_older_than_the_intent_margin_is_not_adopted(project: Project) -> None:
    project.write("a.yaml", spec_text("A"))
    old = _direct_create(project, "A")  # created now; the intent is from 11 minutes later
    _intent_state(project, "A", datetime.now(timezone.utc) + timedelta(minutes=11))
    calls = record_calls(project.emu)

    report = project.apply()
    assert report.failures == [] and len(calls["create"]) == 1
    assert project.state().segments["a"].uuid not in (None, old)


# --- deletes, replaces, moves -----------------------------------------------------------------


def test_deletes_need_prune_and_spare_protected_segments(project: Project) -> None:
    project.write("a.yaml", spec_text("A"))
    project.write("b.yaml", spec_text("B", extra="protect: true\n"))
    project.write("c.yaml", spec_text("C", ref="a"))
    project.apply()
    uuids = {k: e.uuid for k, e in project.state().segments.items()}
    for name in ("a", "b", "c"):
        (project.specs / f"{name}.yaml").unlink()
    project.write("d.yaml", spec_text("D"))

    calls = record_calls(project.emu)
    project.apply()
    assert calls["delete"] == []
    assert set(project.state().segments) == {"a", "b", "c", "d"}

    project.apply(prune=True)
    # c referenced a: c goes first; b is protected and stays.
    assert calls["delete"] == [uuids["c"], uuids["a"]]
    assert set(project.state().segments) == {"b", "d"}
    assert {s["name"] for s in project.live()} == {"B", "D"}


def test_a_delete_of_a_segment_already_gone_removes_the_entry(project: Project) -> None:
    project.write("a.yaml", spec_text("A"))
    project.apply()
    uuid = project.state().segments["a"].uuid
    assert uuid is not None
    project.emu.store.delete(uuid)
    (project.specs / "a.yaml").unlink()
    report = project.apply(prune=True)
    assert report.failures == [] and project.state().segments == {}


def test_a_segment_referenced_by_a_kept_spec_is_not_deleted(project: Project) -> None:
    project.write("a.yaml", spec_text("A"))
    project.apply()
    uuid = project.state().segments["a"].uuid
    (project.specs / "a.yaml").unlink()
    project.write("b.yaml", spec_text("B", raw_ref=uuid))
    report = project.apply(prune=True)
    [(sid, message)] = report.failures
    assert sid == "a"
    assert message.startswith(f"segment {uuid} is still referenced by b (")
    assert message.endswith("segments/b.yaml); it is not deleted")
    assert "a" in project.state().segments
    assert uuid in {s["uuid"] for s in project.live()}


def test_replace_needs_the_flag_then_repoints_references_and_deletes_last(
    project: Project,
) -> None:
    project.write("base.yaml", spec_text("Base"))
    project.write("child.yaml", spec_text("Child", ref="base"))
    project.write("other.yaml", spec_text("Other"))
    project.apply()
    old = {k: e.uuid for k, e in project.state().segments.items()}
    project.write("base.yaml", spec_text("Base", model="contacts"))
    project.write("child.yaml", spec_text("Child", model="contacts", ref="base"))

    with pytest.raises(ConfigError, match=r"2 segments would be replaced .*: base, child; run "
                       r"again with --allow-replace"):
        project.apply()
    assert project.state().segments["base"].uuid == old["base"]

    calls = record_calls(project.emu)
    seen: list[str] = []
    report = project.apply(allow_replace=True, seen=seen)
    assert report.failures == []
    assert apply_summary(report) == "Apply complete: 0 created, 0 updated, 2 replaced, 0 deleted."
    # old child (which referenced old base) is deleted before old base
    assert calls["delete"] == [old["child"], old["base"]]
    assert seen[-2].startswith("- child (old segment) deleted (") and old["child"] in seen[-2]
    assert seen[-1].startswith("- base (old segment) deleted (") and old["base"] in seen[-1]
    state = project.state()
    assert state.segments["base"].model_uuid == project.model_uuid("contacts")
    assert state.segments["child"].refs == {"base": state.segments["base"].uuid}
    assert_in_sync(project)
    assert old["other"] == state.segments["other"].uuid


def test_a_pending_delete_found_at_start_is_finished(project: Project) -> None:
    project.write("a.yaml", spec_text("A"))
    project.apply()
    leftover = _direct_create(project, "Old A")
    state = project.state()
    entry = state.segments["a"].model_copy(update={"pending_delete": leftover})
    write_state_atomic(
        project.state_path, dump_state(state.model_copy(update={"segments": {"a": entry}}))
    )
    [action] = project.prepare().plan.changes()
    assert action.kind == "replace" and "unfinished replace" in (action.reason or "")
    report = project.apply()  # no --allow-replace needed: nothing new is created
    assert report.failures == []
    assert project.state().segments["a"].pending_delete is None
    assert leftover not in {s["uuid"] for s in project.live()}


def test_a_renamed_file_is_a_state_only_move(project: Project) -> None:
    project.write("old/a.yaml", spec_text("A"))
    project.apply()
    uuid = project.state().segments["old/a"].uuid
    (project.specs / "old/a.yaml").rename(project.specs / "a.yaml")
    calls = record_calls(project.emu)
    report = project.apply()
    assert [(r.kind, r.verb) for r in report.results] == [("moved", "moved")]
    assert calls["create"] == calls["update"] == calls["delete"] == []
    assert set(project.state().segments) == {"a"}
    assert project.state().segments["a"].uuid == uuid


def test_a_segment_deleted_outside_is_recreated_and_referrers_repointed(
    project: Project,
) -> None:
    project.write("a.yaml", spec_text("A"))
    project.write("b.yaml", spec_text("B", ref="a"))
    project.apply()
    gone = project.state().segments["a"].uuid
    assert gone is not None
    project.emu.store.delete(gone)
    prepared = project.prepare()
    assert [(a.id, a.kind) for a in prepared.plan.changes()] == [("a", "recreate"), ("b", "update")]
    report = project.apply()
    assert apply_summary(report) == (
        "Apply complete: 0 created, 1 updated, 0 replaced, 0 deleted, 1 recreated."
    )
    assert project.state().segments["a"].uuid != gone
    assert_in_sync(project)


def test_the_model_slug_may_change_to_another_name_of_the_same_model(project: Project) -> None:
    project.write("a.yaml", spec_text("A"))
    project.apply()
    uuid = project.state().segments["a"].uuid
    project.write("a.yaml", spec_text("A", model="crm.companies"))
    [action] = project.prepare().plan.changes()
    assert action.kind == "update" and "names the same model" in (action.reason or "")
    calls = record_calls(project.emu)
    project.apply()
    assert calls["create"] == calls["update"] == calls["delete"] == []
    entry = project.state().segments["a"]
    assert entry.uuid == uuid and entry.model == "crm.companies"


# --- refusals and checks against Cargo ----------------------------------------------------------


def test_too_many_deletes_need_force(project: Project) -> None:
    for i in range(10):
        project.write(f"s{i}.yaml", spec_text(f"S{i}"))
    project.apply()
    for i in range(4):
        (project.specs / f"s{i}.yaml").unlink()
    with pytest.raises(ConfigError, match=r"refusing to delete or replace 4 of 10 managed "
                       r"segments \(more than 30%\).*--force"):
        project.apply(prune=True)
    assert len(project.live()) == 10
    assert project.apply(prune=True, force=True).failures == []
    assert len(project.live()) == 6


def test_a_protected_segment_is_never_replaced(project: Project) -> None:
    project.write("a.yaml", spec_text("A", extra="protect: true\n"))
    project.apply()
    project.write("a.yaml", spec_text("A", model="contacts", extra="protect: true\n"))
    with pytest.raises(ConfigError, match="refusing to replace protected segments: a"):
        project.apply(allow_replace=True)


def test_play_segments_and_unmanaged_namesakes(project: Project) -> None:
    play = _direct_create(project, "Owned by a play")
    # Private: the emulator has no public way to make a segment play-owned, and the fixture
    # play segment's name is reserved (no spec may use it).
    project.emu.store._segments[play].data["fromPlay"] = True  # as a play would own it
    namesake = _direct_create(project, "Already there")
    other = _direct_create(project, "Other fields", limit=5)
    project.write("play.yaml", spec_text("Owned by a play"))
    project.write("namesake.yaml", spec_text("Already there"))
    project.write("other.yaml", spec_text("Other fields", limit=6))
    project.write("fine.yaml", spec_text("Fine"))

    prepared = project.prepare()
    by_id = {a.id: a for a in prepared.plan.actions}
    assert "owned by a play" in (by_id["play"].blocked or "")
    # the same name and fields: adopted, with no request
    assert (by_id["namesake"].kind, by_id["namesake"].uuid) == ("adopt", namesake)
    # the same name, other fields: refused, with the way to import it
    assert f"segsync import --uuid {other} --id other" in (by_id["other"].blocked or "")
    assert "limit: 5 -> 6" in (by_id["other"].blocked or "")
    calls = record_calls(project.emu)
    report = project.apply()
    assert [sid for sid, _ in report.failures] == ["other", "play"]
    assert [b["name"] for b in calls["create"]] == ["Fine"]
    assert project.emu.store.get(play)["fromPlay"] is True
    names = [s["name"] for s in project.live()]
    # never a second segment of the same name
    assert (names.count("Already there"), names.count("Other fields")) == (1, 1)
    assert project.state().segments["namesake"].uuid == namesake


def test_a_raw_reference_to_a_missing_segment_refuses_the_run(project: Project) -> None:
    project.write("a.yaml", spec_text("A", raw_ref="0b4e28ba-2fa1-41d2-883f-0016d3cca427"))
    project.write("b.yaml", spec_text("B"))
    calls = record_calls(project.emu)
    with pytest.raises(ValidationFailed) as info:
        project.apply()
    [error] = info.value.errors
    assert error.path and error.path.endswith("a.yaml")
    assert "no segment 0b4e28ba-2fa1-41d2-883f-0016d3cca427 in Cargo" in error.message
    assert calls["create"] == [] and not project.state_path.exists()


def test_unknown_model_lists_the_available_ones(project: Project) -> None:
    project.write("a.yaml", spec_text("A", model="companys"))
    with pytest.raises(ConfigError, match=r"segments/a.yaml: unknown model 'companys': did you "
                       r"mean 'companies'\? Available models: .*contacts"):
        project.prepare()


def test_a_state_of_another_workspace_is_refused(
    project: Project, emulator_factory: Callable[..., Emulator]
) -> None:
    project.write("a.yaml", spec_text("A"))
    project.apply()
    other = emulator_factory(workspace="other", fixtures=False)
    with CargoClient(other.url, other.token) as client, pytest.raises(
        StateError, match=r"the state belongs to workspace .* but the token is for workspace other"
    ):
        target_workspace(Catalog(client), project.state())


def test_the_fixture_workflow_segment_is_an_unmanaged_namesake(
    tmp_path: Path, emulator: Emulator
) -> None:
    project = Project(tmp_path, emulator)
    project.write("churn.yaml", spec_text(WORKFLOW_SEGMENT_NAME))
    [action] = project.prepare().plan.changes()
    assert action.kind == "create"
    assert "that segsync does not manage" in (action.blocked or "")
    assert "segsync import --uuid" in (action.blocked or "")


# --- saved plans --------------------------------------------------------------------------------


def test_a_saved_plan_is_applied_exactly_and_refused_when_cargo_changed(
    project: Project,
) -> None:
    project.write("a.yaml", spec_text("A"))
    project.write("b.yaml", spec_text("B"))
    project.apply()
    project.write("a.yaml", spec_text("A", limit=5))
    specs, state = load_specs(project.specs), project.state()
    plan_path = project.root / "plan.json"
    write_plan_file(plan_path, make_plan(specs, state), state=state, specs=specs, prune=False)
    saved = read_plan_file(plan_path)
    check_fresh(saved, state, specs)

    # Drift on b is not in the saved plan: left for later, with a note.
    b = state.segments["b"].uuid
    assert b is not None
    project.emu.store.update(b, {"limit": 7})
    prepared = project.prepare(saved=saved)
    assert [(a.id, a.kind) for a in prepared.plan.changes()] == [("a", "update")]
    assert prepared.notes == ("not in the saved plan, left for a later apply: b (update)",)

    # a deleted outside segsync: the saved update no longer fits.
    a = state.segments["a"].uuid
    assert a is not None
    project.emu.store.delete(a)
    with pytest.raises(PlanFileError, match="a: the plan says update, Cargo now needs recreate"):
        project.prepare(saved=saved)

