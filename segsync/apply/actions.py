"""What apply does for each kind of action, and the lost-create search that keeps it crash-safe.

Every handler takes a :class:`Task` and returns :class:`Done` (the state changes to write and
what to report) or raises :class:`Failure`; the runner writes the changes and reports the
result once they are on disk.

Crash safety. A create is never repeated blindly: when its outcome is unknown, or when the state
holds an intent from an interrupted run, segsync lists the model's segments and looks for one
with the spec's name that is live, not play-owned, not in the state and created at or after the
intent's time minus 10 minutes. None: the create is sent (with a fresh intent). One: it is
adopted (and updated if its fields differ). Several: the action fails naming them, and the
intent stays for a human. Update and delete need no intent: the next run re-plans them from the
segments it lists.

Decisions: an update that finds its segment gone (404 / ``segmentNotFound``) fails with that
message instead of creating a segment nobody approved; the next apply plans it as a recreate.
``segmentLinkedToWorkflow`` fails the action and leaves its state entry as it was.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from segsync.apply.journal import Journal, Ticket
from segsync.canonical import (
    MANAGED_FIELDS,
    canonical_managed,
    dumps_compact,
    segment_uuids,
    to_wire,
)
from segsync.client import GONE_REASONS, CreateOutcomeUnknown
from segsync.errors import ApiError, NetworkError
from segsync.plan import Action, Cargo, Plan
from segsync.state import Entry, Intent, parse_time, utc_now
from segsync.types import Payload

if TYPE_CHECKING:
    from segsync.client import CargoClient
    from segsync.specs import LoadedSpec

#: Clock-skew margin of the lost-create check: a segment created up to this long before the
#: intent's (client) time still counts as the one that create made.
RECONCILE_MARGIN: Final = timedelta(minutes=10)
#: How often one create is sent when each attempt's outcome stays unknown and no segment shows up.
MAX_CREATE_ATTEMPTS: Final = 5


class Failure(Exception):
    """A task failed with a message for the user."""


@dataclass(eq=False)
class Task:
    """One unit of work: an action's main step, or the delete of a replaced segment."""

    key: str
    index: int
    action: Action
    step: Literal["main", "cleanup"] = "main"
    phase: int = 1
    deps: set[str] = field(default_factory=set)
    dependents: list[str] = field(default_factory=list)
    intent: Ticket | None = None
    intent_at: str | None = None
    wrote_intent: bool = False  # this run wrote an intent for the task
    maybe_created: bool = False  # a create was sent and its outcome is still unknown


@dataclass(frozen=True)
class Done:
    """A handler's result: the state changes to write, then what to report."""

    changes: Mapping[str, Entry | None]
    verb: str
    uuid: str | None = None
    detail: str = ""
    warnings: Sequence[str] = ()
    lost: str = ""  # added to the message when the write of ``changes`` fails


_LOST_CREATE: Final = (
    "; the intent stays in the state file and the next apply adopts the segment"
)


def transient(exc: ApiError) -> bool:
    """An error worth another try later in the same run (no answer, 429, 5xx)."""
    return isinstance(exc, NetworkError) or exc.status in (429, None) or (exc.status or 0) >= 500


def prior_intent(action: Action) -> Intent | None:
    """The intent an interrupted run left for this action's create, as planned (not the one
    this run writes)."""
    entry = action.entry
    if entry is None:
        return None
    if action.kind == "create" and entry.uuid is None:
        # No intent at all (an entry edited by hand): any namesake may be the one.
        return entry.intent or Intent(op="create", at="1970-01-01T00:00:00.000Z")
    if action.kind == "replace" and entry.intent is not None and entry.intent.op == "replace":
        return entry.intent
    return None



def changed_fields(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The update body turning canonical wire fields ``current`` into ``desired``: changed
    fields only (``filter`` whole), ``None`` to clear an optional field the spec dropped."""
    body: dict[str, Any] = {}
    for key in MANAGED_FIELDS:
        if key in desired:
            if key not in current or dumps_compact(current[key]) != dumps_compact(desired[key]):
                body[key] = desired[key]
        elif key in current:
            body[key] = None
    return body


def _differences(sent: Mapping[str, Any], stored: Mapping[str, Any]) -> list[str]:
    """Managed fields whose canonical form Cargo stored differently from what was sent."""
    canon_sent, canon_stored = canonical_managed(sent), canonical_managed(stored)
    return [
        key
        for key in MANAGED_FIELDS
        if dumps_compact(canon_sent.get(key)) != dumps_compact(canon_stored.get(key))
    ]


def _perpetual(fields: list[str]) -> tuple[str, ...]:
    if not fields:
        return ()
    return (
        f"Cargo stored {', '.join(fields)} differently from what was sent; plan --refresh will "
        "keep showing a difference (a perpetual diff), so segsync does not "
        "send it again in this run",
    )


class Actions:
    """The handlers of one apply run, sharing its client, journal and what Cargo held."""

    def __init__(self, client: CargoClient, journal: Journal, plan: Plan, cargo: Cargo) -> None:
        self._client = client
        self._journal = journal
        self._plan = plan
        self._cargo = cargo
        self._claimed: set[str] = set()  # uuids created or adopted by this run
        self._claimed_lock = threading.Lock()

    def run(self, task: Task) -> Done:
        """Do the task's work; Failure (or ApiError) when it fails."""
        handler = {
            ("create", "main"): self._do_create,
            ("recreate", "main"): self._do_create,
            ("update", "main"): self._do_update,
            ("moved", "main"): self._do_update,
            ("replace", "main"): self._do_replace,
            ("replace", "cleanup"): self._do_cleanup,
            ("delete", "main"): self._do_delete,
            ("adopt", "main"): self._do_adopt,
            ("dedupe", "main"): self._do_dedupe,
        }[(task.action.kind, task.step)]
        return handler(task)

    def intent_entry(self, task: Task) -> tuple[str, Entry]:
        """(time, entry) to record before this task's create is sent."""
        action = task.action
        spec = action.spec
        assert spec is not None
        at = utc_now()
        if action.kind == "replace":
            current = self._entry(action.moved_from or action.id)
            assert current is not None
            return at, current.model_copy(update={"intent": Intent(op="replace", at=at)})
        # Only the name: what a later run needs to find the segment if this one stops.
        return at, Entry(
            uuid=None,
            model=spec.model_ref,
            model_uuid=self._model_uuid(spec),
            applied={"name": spec.name},
            protect=spec.protect,
            file=spec.file,
            file_sha256=spec.file_sha256,
            intent=Intent(op="create", at=at),
        )


    def _entry(self, spec_id: str) -> Entry | None:
        return self._journal.state.segments.get(spec_id)

    def _model_uuid(self, spec: LoadedSpec) -> str:
        return str(self._cargo.models[spec.model_ref]["uuid"])

    def _ref_uuids(self, spec: LoadedSpec) -> dict[str, str]:
        refs: dict[str, str] = {}
        for ref in spec.refs:
            entry = self._entry(ref)
            if entry is None or entry.uuid is None:
                raise Failure(f"the segment of {ref}, which this spec references, does not exist")
            refs[ref] = entry.uuid
        return refs

    def _applied_entry(
        self, spec: LoadedSpec, uuid: str, refs: Mapping[str, str], **extra: Any
    ) -> Entry:
        return Entry(
            uuid=uuid,
            model=spec.model_ref,
            model_uuid=self._model_uuid(spec),
            applied=spec.managed,
            digest=spec.digest,
            refs=dict(refs),
            protect=spec.protect,
            file=spec.file,
            file_sha256=spec.file_sha256,
            applied_at=utc_now(),
            **extra,
        )

    def _claim(self, uuid: str) -> None:
        with self._claimed_lock:
            self._claimed.add(uuid)

    def _known_uuids(self) -> set[str]:
        entries = [e for _, e in self._journal.entries()]
        known = {e.uuid for e in entries if e.uuid}
        known |= {e.pending_delete for e in entries if e.pending_delete}
        with self._claimed_lock:
            known |= self._claimed
        return known

    # -- the lost-create check -------------------------------------------------------------------

    def _reconcile(
        self, name: str, model_uuid: str, since: str | None, *, fresh: bool
    ) -> Payload | None:
        """The segment an earlier create of ``name`` made, None when there is none; Failure
        when several could be it. ``fresh``: list now, else use the listing made at start."""
        if fresh:
            segments = self._client.list_segments(model_uuid)
        else:
            segments = [
                s for s in self._cargo.live.values() if s.get("modelUuid") == model_uuid
            ]
        threshold = None
        if since is not None:
            try:
                threshold = parse_time(since) - RECONCILE_MARGIN
            except ValueError:
                threshold = None
        known = self._known_uuids()
        found = []
        for segment in segments:
            if (
                segment.get("name") != name
                or segment.get("fromPlay") is True
                or segment.get("deletedAt") is not None
                or segment.get("uuid") in known
            ):
                continue
            created = segment.get("createdAt")
            if threshold is not None and isinstance(created, str):
                try:
                    if parse_time(created) < threshold:
                        continue
                except ValueError:
                    pass  # an unreadable time cannot rule it out
            found.append(segment)
        if len(found) > 1:
            uuids = ", ".join(sorted(str(s.get("uuid")) for s in found))
            raise Failure(
                f"{len(found)} segments named {name!r} on model {model_uuid} may come from an "
                f"interrupted create ({uuids}); delete the extra ones in Cargo and run apply "
                "again, which adopts the one left; the intent stays in the state file"
            )
        if found:
            self._claim(str(found[0]["uuid"]))
            return found[0]
        return None

    def _create(
        self,
        task: Task,
        spec: LoadedSpec,
        body: Payload,
        prior: Intent | None,
        intent_entry: Entry,
    ) -> tuple[Payload, bool]:
        """Create the segment for ``spec`` (or find the one an interrupted run created).

        ``prior``: the intent of an interrupted run, reconciled first with the listing made at
        start. ``intent_entry``: the entry to write (with a fresh intent time) before each send
        that is not covered by the intent written at dispatch.
        """
        model_uuid = body["modelUuid"]
        if prior is not None:
            found = self._reconcile(spec.name, model_uuid, prior.at, fresh=False)
            if found is not None:
                return found, True
        writer = self._journal
        last: ApiError | None = None
        unsettled: str | None = None  # intent time of a create whose outcome is unknown
        sent = 0
        for _ in range(2 * MAX_CREATE_ATTEMPTS):
            if unsettled is not None:
                # Never send again before a listing said the last attempt made nothing.
                try:
                    found = self._reconcile(spec.name, model_uuid, unsettled, fresh=True)
                except ApiError as exc:
                    if not transient(exc):
                        raise
                    last = exc
                    continue
                if found is not None:
                    return found, True
                unsettled = None
                task.maybe_created = False
                if sent >= MAX_CREATE_ATTEMPTS:
                    break
            if sent == 0 and task.intent is not None:
                task.intent.wait()
                at = task.intent_at
            else:
                at = utc_now()
                assert intent_entry.intent is not None
                entry = intent_entry.model_copy(
                    update={"intent": Intent(op=intent_entry.intent.op, at=at)}
                )
                task.wrote_intent = True
                writer.write({spec.id: entry})
            task.maybe_created = True
            sent += 1
            try:
                segment = self._client.create_segment(body)
            except CreateOutcomeUnknown as exc:
                last, unsettled = exc, at
                continue
            except ApiError as exc:
                task.maybe_created = False  # refused (4xx, 429), or never reached Cargo
                if not transient(exc):
                    raise
                last = exc
                if sent >= MAX_CREATE_ATTEMPTS:
                    break
                continue
            self._claim(str(segment["uuid"]))
            return segment, False
        assert last is not None
        if unsettled is not None:
            raise Failure(
                f"{last.message}; whether the segment was created is still unknown: the intent "
                "stays in the state file and the next apply looks for it again"
            )
        # Each attempt was checked: none created it, so "may exist" no longer holds.
        said = last.message.replace("; the segment may exist in Cargo", "")
        raise Failure(
            f"{said}; gave up after {sent} attempts (listing the segments showed that none "
            "of them created it)"
        )

    def _settle(self, segment: Payload, body: Payload, adopted: bool) -> tuple[Payload, list[str]]:
        """After a create: bring an adopted segment up to date; warn of a perpetual diff."""
        desired = canonical_managed(body)
        current = canonical_managed(segment)
        if adopted:
            fields = changed_fields(current, desired)
            if fields:
                segment = self._client.update_segment(str(segment["uuid"]), fields)
        return segment, list(_perpetual(_differences(body, segment)))

    # -- handlers ------------------------------------------------------------------------------

    def _do_create(self, task: Task) -> Done:
        action = task.action
        spec = action.spec
        assert spec is not None
        prior = prior_intent(action)
        refs = self._ref_uuids(spec)
        body = to_wire(spec.managed, ref_uuids=refs)
        body["modelUuid"] = self._model_uuid(spec)
        _, intent_entry = self.intent_entry(task)
        segment, adopted = self._create(task, spec, body, prior, intent_entry)
        segment, warnings = self._settle(segment, body, adopted)
        uuid = str(segment["uuid"])
        verb = "recreated" if action.kind == "recreate" else "created"
        detail = "adopted: found in Cargo after an interrupted create" if adopted else ""
        changes: dict[str, Entry | None] = {spec.id: self._applied_entry(spec, uuid, refs)}
        if action.moved_from is not None:
            changes[action.moved_from] = None  # the interrupted create of a renamed file
        return Done(changes, verb, uuid, detail, warnings, lost=_LOST_CREATE)

    def _do_update(self, task: Task) -> Done:
        action = task.action
        spec = action.spec
        assert spec is not None
        source = action.moved_from or action.id
        entry = self._entry(source)
        if entry is None or entry.uuid is None:
            raise Failure(f"the state has no segment for {source}")
        uuid = entry.uuid
        refs = self._ref_uuids(spec)
        fields, warnings = self._bring_up_to_date(uuid, spec, refs)
        changes: dict[str, Entry | None] = {
            spec.id: self._applied_entry(
                spec, uuid, refs, pending_delete=entry.pending_delete
            )
        }
        if action.moved_from is not None:
            changes[action.moved_from] = None
        verb = "moved" if action.kind == "moved" else "updated"
        detail = f"sent {', '.join(fields)}" if fields else "no request needed"
        if action.moved_from is not None:
            detail = f"from {action.moved_from}; {detail}"
        return Done(changes, verb, uuid, detail, warnings)

    def _bring_up_to_date(
        self, uuid: str, spec: LoadedSpec, refs: Mapping[str, str]
    ) -> tuple[list[str], list[str]]:
        """PUT the fields of ``spec`` that differ from the live segment; (fields, warnings)."""
        body = to_wire(spec.managed, ref_uuids=refs)
        live = self._cargo.live.get(uuid)
        if live is None:
            live = self._client.get_segment(uuid)
            if live is None:
                raise Failure(
                    f"segment {uuid} was deleted outside segsync; run apply again to "
                    "recreate it"
                )
        fields = changed_fields(canonical_managed(live), canonical_managed(body))
        if not fields:
            return [], []
        try:
            segment = self._client.update_segment(uuid, fields)
        except ApiError as exc:
            if not isinstance(exc, NetworkError) and (
                exc.status == 404 or exc.reason == "segmentNotFound"
            ):
                raise Failure(
                    f"segment {uuid} was deleted outside segsync while apply ran; run apply "
                    "again to recreate it"
                ) from None
            raise
        return sorted(fields), list(_perpetual(_differences(body, segment)))

    def _do_replace(self, task: Task) -> Done:
        action = task.action
        spec = action.spec
        if task.intent is not None:
            # The entry is read after its intent is on disk, so writing it back below keeps the
            # intent: a create must never be sent without one.
            task.intent.wait()
        old_id = action.moved_from if action.moved_from is not None else action.id
        entry = self._entry(action.id) or self._entry(old_id)
        assert spec is not None and entry is not None
        gone: dict[str, Entry | None] = (
            {old_id: None} if old_id != action.id and self._entry(old_id) is not None else {}
        )
        refs = self._ref_uuids(spec)
        if not action.creates_segment:
            # An unfinished replace: the new segment exists; its old one goes in the cleanup.
            assert entry.uuid is not None
            fields, warnings = self._bring_up_to_date(entry.uuid, spec, refs)
            return Done(
                {**gone, spec.id: self._applied_entry(
                    spec, entry.uuid, refs, pending_delete=entry.pending_delete
                )},
                "replaced", entry.uuid,
                "finishing an earlier replace" + (f"; sent {', '.join(fields)}" if fields else ""),
                warnings,
            )
        if entry.pending_delete is not None:
            # A second model change before the first replace finished: its old segment goes now.
            self._delete_segment(entry.pending_delete)
            entry = entry.model_copy(update={"pending_delete": None})
            self._journal.write({**gone, spec.id: entry})
            gone = {}
        prior = prior_intent(action)
        body = to_wire(spec.managed, ref_uuids=refs)
        body["modelUuid"] = self._model_uuid(spec)
        intent_entry = entry.model_copy(update={"intent": Intent(op="replace", at=utc_now())})
        segment, adopted = self._create(task, spec, body, prior, intent_entry)
        segment, warnings = self._settle(segment, body, adopted)
        uuid = str(segment["uuid"])
        return Done(
            {**gone, spec.id: self._applied_entry(spec, uuid, refs, pending_delete=entry.uuid)},
            "replaced", uuid,
            f"new segment; old segment {entry.uuid} is deleted last"
            + ("; adopted after an interrupted replace" if adopted else ""),
            warnings,
            lost=_LOST_CREATE,
        )

    def _do_cleanup(self, task: Task) -> Done:
        sid = task.action.id
        entry = self._entry(sid)
        if entry is None or entry.pending_delete is None:
            return Done({}, "deleted", detail="nothing left to delete")
        old = entry.pending_delete
        self._refuse_if_referenced(old, sid)
        self._delete_segment(old)
        return Done({sid: entry.model_copy(update={"pending_delete": None})}, "deleted", old)

    def _do_delete(self, task: Task) -> Done:
        sid = task.action.id
        entry = self._entry(sid)
        if entry is None:
            raise Failure(f"the state has no entry {sid}")
        uuids: list[str] = []
        if entry.uuid is not None:
            uuids.append(entry.uuid)
        elif entry.model_uuid is not None and entry.applied and entry.applied.get("name"):
            # Never recorded: an interrupted create may still have made it.
            since = entry.intent.at if entry.intent is not None else None
            found = self._reconcile(str(entry.applied["name"]), entry.model_uuid, since,
                                    fresh=False)
            if found is not None:
                uuids.append(str(found["uuid"]))
        if entry.pending_delete is not None:
            uuids.append(entry.pending_delete)
        for uuid in uuids:
            self._refuse_if_referenced(uuid, sid)
            live = self._cargo.live.get(uuid)
            if live is not None and live.get("fromPlay") is True:
                raise Failure(f"segment {uuid} is owned by a play; segsync never deletes it")
        for uuid in uuids:
            self._delete_segment(uuid)
        return Done({sid: None}, "deleted", uuids[0] if uuids else None,
                    "" if uuids else "it was never created; entry removed")

    def _do_adopt(self, task: Task) -> Done:
        """Record a live segment that already holds the spec's name and fields: no request."""
        action = task.action
        spec = action.spec
        assert spec is not None and action.uuid is not None
        refs = self._ref_uuids(spec)
        self._claim(action.uuid)
        return Done(
            {spec.id: self._applied_entry(spec, action.uuid, refs)}, "adopted", action.uuid,
            "found in Cargo with the same name and fields; no request sent",
        )

    def _do_dedupe(self, task: Task) -> Done:
        """Delete a duplicate of a managed segment (its fields equal the managed one's)."""
        action = task.action
        assert action.uuid is not None
        self._refuse_if_referenced(action.uuid, "")
        live = self._cargo.live.get(action.uuid)
        if live is not None and live.get("fromPlay") is True:
            raise Failure(f"segment {action.uuid} is owned by a play; segsync never deletes it")
        self._delete_segment(action.uuid)
        return Done({}, "deleted", action.uuid, f"a duplicate of {action.id}")

    def _refuse_if_referenced(self, uuid: str, owner: str) -> None:
        """A segment still referenced by a kept spec (or its recorded segment) stays."""
        for spec_id, entry in self._journal.entries():
            if spec_id == owner:
                continue
            if uuid in entry.refs.values():
                raise Failure(
                    f"segment {uuid} is still referenced by {spec_id}; it is not deleted"
                )
        for action in self._plan.actions:
            spec = action.spec
            if spec is None or spec.id == owner:
                continue
            if any(raw == uuid for _, raw in segment_uuids(spec.managed)):
                raise Failure(
                    f"segment {uuid} is still referenced by {spec.id} ({spec.file}); "
                    "it is not deleted"
                )

    def _delete_segment(self, uuid: str) -> None:
        try:
            self._client.delete_segment(uuid)
        except ApiError as exc:
            if isinstance(exc, NetworkError):
                raise
            if exc.status == 404 or exc.reason in GONE_REASONS:
                return  # already gone: what the delete wanted
            raise

