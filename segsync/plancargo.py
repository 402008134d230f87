"""The plan's decisions that need Cargo: model resolution, adoption, duplicates, blocked actions.

``plan.make_plan`` calls :func:`against_cargo` when it is given what Cargo holds. Rules:

- A spec whose model slug now resolves to another model is a replace; one whose model is only
  written another way (slug, ``dataset.slug``, uuid) is not.
- A create (or recreate) whose model and name match exactly one live segment that segsync does
  not manage, is not play-owned and holds the spec's managed fields, is an ``adopt``: apply
  records that segment, no request. Namesakes with other fields, or several of them, block the
  create: segsync never makes a second segment silently; the message says how to import it.
- A live unmanaged segment with a managed segment's model and name is a :class:`Duplicate`,
  listed by the plan; with ``delete_duplicates``, those with equal fields (not play-owned, not
  referenced) become ``dedupe`` actions.
- Play-owned segments and raw ``segmentUuid`` references to missing segments block an action.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from segsync.canonical import canonical_managed, from_wire, refs_of, segment_uuids, to_wire
from segsync.diff import ABSENT, field_changes
from segsync.plantypes import (
    CHANGE_KINDS,
    MODEL_CHANGE_TEXT,
    Action,
    Cargo,
    Duplicate,
    Warn,
    WarnCode,
)
from segsync.types import Payload, dotted

if TYPE_CHECKING:
    from segsync.state import State


def needs_new_segment(action: Action, cargo: Cargo | None) -> bool:
    """A replace that creates a segment (the model changed), not one only finishing a delete."""
    spec, entry = action.spec, action.entry
    if action.kind != "replace" or spec is None or entry is None:
        return False
    if entry.intent is not None and entry.intent.op == "replace":
        return True
    model = cargo.models.get(spec.model_ref) if cargo is not None else None
    new_uuid = model.get("uuid") if model is not None else None
    if entry.model_uuid is not None and new_uuid is not None:
        return bool(entry.model_uuid != new_uuid)
    return spec.model_ref != entry.model


def _show(value: Any) -> str:
    return "(absent)" if value is ABSENT else json.dumps(value, ensure_ascii=False)


def describe_changes(old: Any, new: Any, limit: int = 5) -> str:
    """``limit: 100 -> 500; sort: (absent) -> [...]`` (at most ``limit`` fields, then a count)."""
    changes = field_changes(old, new)
    shown = [f"{c.field}: {_show(c.old)} -> {_show(c.new)}" for c in changes[:limit]]
    if len(changes) > limit:
        shown.append(f"and {len(changes) - limit} more")
    return "; ".join(shown)


class _Context:
    """What every check of one plan shares: the live segments by (model, name), the UUIDs
    segsync manages, and the spec id of each managed or adopted UUID (grown as the plan adopts,
    in dependency order, so a reference to an adopted spec resolves)."""

    def __init__(self, state: State, cargo: Cargo, uuid_to_id: Mapping[str, str]) -> None:
        self.cargo = cargo
        self.managed = {e.uuid for e in state.segments.values() if e.uuid}
        self.managed |= {e.pending_delete for e in state.segments.values() if e.pending_delete}
        self.uuid_to_id = dict(uuid_to_id)
        self.by_name: dict[tuple[str, str], list[Payload]] = {}
        for segment in cargo.live.values():
            key = (str(segment.get("modelUuid")), str(segment.get("name")))
            self.by_name.setdefault(key, []).append(segment)

    def holds(self, segment: Mapping[str, Any], managed: Mapping[str, Any]) -> bool:
        """Whether a live segment holds exactly these managed fields (compared as Cargo holds
        them: each ``segment:`` reference as the UUID it names; an unknown one never equal)."""
        id_to_uuid = {sid: uuid for uuid, sid in self.uuid_to_id.items()}
        try:
            wire = to_wire(managed, ref_uuids=id_to_uuid)
        except KeyError:
            return False
        return canonical_managed(wire) == canonical_managed(segment)

    def as_spec(self, segment: Mapping[str, Any], managed: Mapping[str, Any]) -> Payload:
        """A live segment's fields as ``managed`` writes them: its ``segment:`` references as
        spec ids, raw UUIDs raw (for showing the differences)."""
        named = {ref for _, ref in refs_of(managed)}
        mapping = {uuid: sid for uuid, sid in self.uuid_to_id.items() if sid in named}
        return from_wire(canonical_managed(segment), uuid_to_id=mapping)

    def namesakes(self, model_uuid: str, name: str, own: str | None) -> list[Payload]:
        """Live segments with this model and name that segsync does not manage."""
        return [
            s for s in self.by_name.get((model_uuid, name), [])
            if s.get("uuid") not in self.managed and s.get("uuid") != own
            and not s.get("deletedAt")
        ]


def against_cargo(
    actions: Sequence[Action],
    state: State,
    cargo: Cargo,
    uuid_to_id: Mapping[str, str],
    *,
    delete_duplicates: bool = False,
) -> tuple[list[Action], list[Duplicate]]:
    """The actions with what only Cargo tells, plus dedupe actions, and the duplicates left."""
    ctx = _Context(state, cargo, uuid_to_id)
    checked = []
    for action in actions:
        action = _one(action, ctx)
        if action.kind == "adopt" and action.uuid is not None:
            ctx.managed.add(action.uuid)
            ctx.uuid_to_id[action.uuid] = action.id
        checked.append(action)
    duplicates = _duplicates(checked, ctx)
    if not delete_duplicates:
        return checked, duplicates
    referenced = _referenced(checked, state, cargo)
    left: list[Duplicate] = []
    for dup in duplicates:
        live = cargo.live.get(dup.uuid, {})
        note = None
        if not dup.same_fields:
            note = "its fields differ from the managed segment's: delete it in Cargo if unwanted"
        elif live.get("fromPlay") is True:
            note = "owned by a play: segsync never deletes it"
        elif dup.uuid in referenced:
            note = f"referenced by {referenced[dup.uuid]}: not deleted"
        if note is not None:
            left.append(replace(dup, note=note))
            continue
        checked.append(Action(
            kind="dedupe", id=dup.of, name=dup.name, file=None, uuid=dup.uuid, model=dup.model,
            reason=f"a duplicate of {dup.of}, created {dup.created_at or 'at an unknown time'}",
        ))
    return checked, left


def _referenced(actions: Sequence[Action], state: State, cargo: Cargo) -> dict[str, str]:
    """uuid -> who names that segment in a filter: a spec id (its filter, or the refs its entry
    recorded), or a live segment in Cargo (managed or not: deleting its target breaks it)."""
    found: dict[str, str] = {}
    for segment in sorted(cargo.live.values(), key=lambda s: str(s.get("uuid"))):
        if segment.get("deletedAt"):
            continue
        for _, raw in segment_uuids(segment):
            found.setdefault(raw, f"segment {segment.get('uuid')} ({segment.get('name')!r})")
    for spec_id, entry in sorted(state.segments.items()):
        for uuid in entry.refs.values():
            found.setdefault(uuid, spec_id)
    for action in actions:
        if action.spec is not None:
            for _, raw in segment_uuids(action.spec.managed):
                found.setdefault(raw, action.spec.id)
    return found


def _duplicates(actions: Sequence[Action], ctx: _Context) -> list[Duplicate]:
    """Unmanaged live namesakes of every managed segment that stays live."""
    found: list[Duplicate] = []
    for action in actions:
        if action.kind in ("delete", "orphan", "create", "recreate", "dedupe"):
            continue
        own = ctx.cargo.live.get(action.uuid) if action.uuid else None
        if own is None or action.spec is None:
            continue
        model_uuid = str(own.get("modelUuid"))
        mine = canonical_managed(own)
        for segment in ctx.namesakes(model_uuid, action.spec.name, action.uuid):
            if segment.get("fromPlay") is True:
                continue  # a play's segment is the play's business, never a duplicate of ours
            created = segment.get("createdAt")
            found.append(Duplicate(
                of=action.id, uuid=str(segment.get("uuid")), name=action.spec.name,
                model=action.spec.model_ref,
                created_at=created if isinstance(created, str) else None,
                same_fields=canonical_managed(segment) == mine,
            ))
    return sorted(found, key=lambda d: (d.of, d.created_at or "", d.uuid))


def _one(action: Action, ctx: _Context) -> Action:
    cargo = ctx.cargo
    spec, entry = action.spec, action.entry
    if spec is not None and entry is not None and action.kind in ("update", "moved", "unchanged"):
        new_uuid = str(cargo.models[spec.model_ref]["uuid"])
        if entry.model_uuid is not None and entry.model_uuid != new_uuid:
            action = replace(
                action,
                kind="replace",
                reason=f"model {spec.model_ref} now resolves to {new_uuid}; the segment is "
                f"on model {entry.model_uuid}",
                warnings=(*action.warnings, Warn(WarnCode.MODEL_CHANGE, MODEL_CHANGE_TEXT)),
            )
    if (
        action.kind == "replace" and spec is not None and entry is not None
        and entry.pending_delete is None and not needs_new_segment(action, cargo)
    ):
        # Another way of writing the same model (slug, dataset.slug, uuid): no replace.
        dropped = (WarnCode.MODEL_CHANGE, WarnCode.PROTECTED_REPLACE)
        action = replace(
            action,
            kind="update",
            reason=f"model {entry.model} -> {spec.model_ref} names the same model "
            f"({entry.model_uuid}): no replace needed",
            warnings=tuple(w for w in action.warnings if w.code not in dropped),
        )
    warnings = list(action.warnings)
    problem: str | None = None
    own = cargo.live.get(entry.uuid) if entry is not None and entry.uuid else None
    if own is not None and own.get("fromPlay") is True and action.kind in CHANGE_KINDS:
        problem = (
            f"segment {own.get('uuid')} is owned by a play (fromPlay); segsync never "
            "changes or deletes play segments"
        )
    creates = action.kind in ("create", "recreate") or needs_new_segment(action, cargo)
    sends = creates or action.kind in ("update", "moved", "replace")
    if spec is not None and sends:
        model_uuid = str(cargo.models[spec.model_ref]["uuid"])
        namesakes = ctx.namesakes(model_uuid, spec.name, entry.uuid if entry else None)
        play = [s for s in namesakes if s.get("fromPlay") is True]
        others = [s for s in namesakes if s.get("fromPlay") is not True]
        if play:
            problem = (
                f"a segment owned by a play has the name {spec.name!r} on model "
                f"{spec.model_ref} ({play[0].get('uuid')}); segsync never touches play "
                "segments: give the spec another name"
            )
        interrupted = entry is not None and entry.intent is not None
        if others and action.kind in ("create", "recreate") and not interrupted and not play:
            adopted = _adopt_or_refuse(action, others, ctx)
            if isinstance(adopted, Action):
                return adopted
            problem = adopted
        for path, raw in segment_uuids(spec.managed):
            target = cargo.live.get(raw)
            where = dotted(path[:-1])
            if target is None or target.get("modelUuid") != model_uuid:
                problem = problem or (
                    f"{where}: segment {raw} does not exist on model {spec.model_ref} in "
                    "Cargo (deleted, or on another model)"
                )
            elif target.get("fromPlay") is True:
                problem = problem or (
                    f"{where}: segment {raw} is owned by a play; reference a segment that "
                    "segsync or a person manages"
                )
    if problem is not None:
        warnings.append(Warn(WarnCode.BLOCKED, f"apply fails this action: {problem}"))
    if tuple(warnings) != action.warnings or problem is not None:
        action = replace(action, warnings=tuple(warnings), blocked=problem)
    return action


def _adopt_or_refuse(action: Action, others: list[Payload], ctx: _Context) -> Action | str:
    """The adopt action for the one namesake holding the spec's fields; else why not."""
    spec = action.spec
    assert spec is not None
    if len(others) == 1:
        segment = others[0]
        uuid = str(segment.get("uuid"))
        if ctx.holds(segment, spec.managed):
            return replace(
                action,
                kind="adopt",
                uuid=uuid,
                reason=f"Cargo already has this segment ({uuid}, not managed by segsync, same "
                "name and fields): apply records it, with no request",
            )
        return (
            f"Cargo already has a segment named {spec.name!r} on model {spec.model_ref} that "
            f"segsync does not manage ({uuid}, created {segment.get('createdAt')}), with other "
            f"fields ({describe_changes(ctx.as_spec(segment, spec.managed), spec.managed)}); "
            "to manage that segment, run "
            f"`segsync import --uuid {uuid} --id {spec.id}` (the next apply then updates it), "
            "or give the spec another name"
        )
    listed = ", ".join(
        f"{s.get('uuid')} created {s.get('createdAt')}"
        for s in sorted(others, key=lambda s: str(s.get("createdAt")))
    )
    return (
        f"Cargo already has {len(others)} segments named {spec.name!r} on model "
        f"{spec.model_ref} that segsync does not manage ({listed}); delete the extra ones in "
        f"Cargo and run apply again, or run `segsync import --uuid UUID --id {spec.id}` for "
        "the one to keep"
    )
