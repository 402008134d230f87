"""Specs + state (+ what Cargo holds) -> a Plan: a frozen value, and every decision about it.

The plan says, per spec id, what apply would do: ``create``, ``update``, ``replace``,
``delete``, ``moved``, ``recreate``, ``orphan`` (in the state, not in the specs, left in
place) or ``unchanged``. Offline, it is made from the specs and the state alone. With
:class:`Cargo` (``plan --refresh`` and apply), the same pass also uses the live segments and
the resolved models: drift, segments deleted outside segsync, a model slug that now names
another model, namesakes, play-owned segments and broken raw ``segmentUuid`` references.

Warnings travel as typed :class:`Warn` values (a code and the text shown), so later stages
decide on the code, never on the English text. The values themselves are in ``plantypes``;
renderers (``render/``) print the plan; apply executes it; this module does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from segsync.canonical import canonical_managed, from_wire
from segsync.diff import ABSENT, FieldChange, field_changes
from segsync.errors import ConfigError, PlanFileError
from segsync.plancargo import against_cargo, needs_new_segment
from segsync.plantypes import (
    CHANGE_KINDS,
    KIND_ORDER,
    KINDS,
    MODEL_CHANGE_TEXT,
    PREVIEW_KINDS,
    SUMMARY_KEYS,
    Action,
    ActionKind,
    Cargo,
    Duplicate,
    Plan,
    Preview,
    Warn,
    WarnCode,
)
from segsync.types import Payload

if TYPE_CHECKING:
    from segsync.specs import LoadedSpec
    from segsync.state import Entry, State

__all__ = [
    "ABSENT", "CHANGE_KINDS", "KINDS", "PREVIEW_KINDS", "SUMMARY_KEYS", "Action", "ActionKind",
    "Cargo", "Duplicate", "FieldChange", "Plan", "Preview", "Warn", "WarnCode",
]

#: Deletes plus replaces above this share of the managed segments need --force ...
SAFETY_SHARE: Final = 0.30
#: ... once at least this many segments are managed.
SAFETY_MIN_MANAGED: Final = 10


def make_plan(
    specs: Sequence[LoadedSpec],
    state: State,
    *,
    prune: bool = False,
    cargo: Cargo | None = None,
    delete_duplicates: bool = False,
) -> Plan:
    """Compare specs with the state (and, with ``cargo``, with Cargo) and return the plan.

    With ``cargo``, a state entry whose segment is not live is planned as ``recreate``; a live
    one whose canonical managed fields differ from ``applied`` as an update (reason "drift")
    whose changes go from remote to spec; then :func:`_against_cargo` adds what only Cargo
    tells (``plancargo``: adoption, duplicates, blocked actions; ``delete_duplicates`` plans
    the deletion of duplicates with equal fields). Every action then knows whether apply
    creates a segment for it.

    Order of ``Plan.actions``, which is the order apply follows:

    1. every action on a spec (create, recreate, replace, moved, update, unchanged) by
       dependency rank, so a spec comes after the specs its ``segment:`` conditions
       reference (rank = 1 + the highest rank of its references, 0 without references);
       within a rank by kind (in ``KINDS`` order), then by id;
    2. then deletes, in reverse dependency rank (over the state's ``refs``) so a segment is
       deleted after those that reference it, ties by id;
    3. then orphans (entries left in place), by id.

    Each step is linear in the number of specs and entries (plus a sort), so planning 10,000
    specs costs about as much as reading them. Field-level changes are computed only for
    specs whose digest differs.
    """
    entries: Mapping[str, Entry] = state.segments
    spec_ids = {spec.id for spec in specs}

    # A renamed file without explicit id: the old entry (no spec) and the new spec (no entry)
    # with the same model as written and the same name are one segment that moved.
    moved_to_from = _guess_moves(specs, entries, spec_ids)
    moved_sources = set(moved_to_from.values())

    # The UUID each spec id has in the state, with moved entries under their new id.
    uuid_of: dict[str, str | None] = {sid: e.uuid for sid, e in entries.items()}
    for new_id, old_id in moved_to_from.items():
        uuid_of[new_id] = entries[old_id].uuid

    remote: dict[str, Payload | None] | None = None
    uuid_to_id: dict[str, str] = {}
    if cargo is not None:
        remote = {sid: cargo.live.get(e.uuid) for sid, e in entries.items() if e.uuid}
        uuid_to_id = {e.uuid: sid for sid, e in entries.items() if e.uuid is not None}
        for new_id, old_id in moved_to_from.items():
            old_uuid = entries[old_id].uuid
            if old_uuid is not None:
                uuid_to_id[old_uuid] = new_id

    primary: dict[str, Action] = {}
    for spec in specs:
        moved_from = moved_to_from.get(spec.id)
        entry = entries[moved_from] if moved_from is not None else entries.get(spec.id)
        primary[spec.id] = _spec_action(spec, entry, moved_from, remote)

    # Referrers of a segment that gets a new UUID (or whose UUID in the state changed since
    # they were applied) must be updated to point at it.
    spec_actions: list[Action] = []
    for spec in specs:
        action = primary[spec.id]
        entry = action.entry
        if action.kind in ("unchanged", "moved", "update") and spec.refs and entry is not None:
            ref_reasons = _ref_reasons(spec, entry, primary, uuid_of, moved_to_from)
            if ref_reasons:
                action = _with_ref_reasons(action, ref_reasons)
        spec_actions.append(action)

    rank = _ranks({s.id: s.refs for s in specs})
    spec_actions.sort(key=lambda a: (rank[a.id], KIND_ORDER[a.kind], a.id))

    gone = [sid for sid in entries if sid not in spec_ids and sid not in moved_sources]
    deletes: list[Action] = []
    orphans: list[Action] = []
    for sid in gone:
        action = _gone_action(sid, entries[sid], prune, remote)
        (deletes if action.kind == "delete" else orphans).append(action)
    if deletes:
        delete_rank = _ranks({a.id: tuple(entries[a.id].refs) for a in deletes})
        deletes.sort(key=lambda a: (-delete_rank[a.id], a.id))
    orphans.sort(key=lambda a: a.id)

    actions = [*spec_actions, *deletes, *orphans]
    duplicates: list[Duplicate] = []
    if cargo is not None:
        actions, duplicates = against_cargo(
            actions, state, cargo, uuid_to_id, delete_duplicates=delete_duplicates
        )
    actions = [_with_creates(a, cargo) for a in actions]
    return Plan(
        actions=tuple(actions), prune=prune, refreshed=cargo is not None,
        duplicates=tuple(duplicates),
    )


def _guess_moves(
    specs: Sequence[LoadedSpec], entries: Mapping[str, Entry], spec_ids: set[str]
) -> dict[str, str]:
    """new spec id -> old entry id, for unambiguous (model, name) matches only."""
    candidates: dict[tuple[str, str], list[str]] = {}
    for sid, entry in entries.items():
        if sid in spec_ids or not entry.applied:
            continue
        if entry.uuid is None and (entry.intent is None or entry.intent.op != "create"):
            continue  # an interrupted create does move with its file: apply searches for it
        name = entry.applied.get("name")
        if isinstance(name, str):
            candidates.setdefault((entry.model, name), []).append(sid)
    if not candidates:
        return {}
    newcomers: dict[tuple[str, str], list[str]] = {}
    for spec in specs:
        if spec.explicit_id or spec.id in entries:
            continue
        key = (spec.model_ref, spec.name)
        if key in candidates:
            newcomers.setdefault(key, []).append(spec.id)
    moves: dict[str, str] = {}
    for key, new_ids in newcomers.items():
        old_ids = candidates[key]
        if len(new_ids) == 1 and len(old_ids) == 1:
            moves[new_ids[0]] = old_ids[0]
    return moves


def _spec_action(
    spec: LoadedSpec,
    entry: Entry | None,
    moved_from: str | None,
    remote: Mapping[str, Payload | None] | None,
) -> Action:
    """The action for one spec, before reference checks."""
    if (
        # The common case, kept cheap: thousands of specs, nearly all unchanged.
        entry is not None
        and remote is None
        and moved_from is None
        and spec.digest == entry.digest
        and spec.model_ref == entry.model
        and entry.uuid is not None
        and entry.intent is None
        and entry.pending_delete is None
    ):
        return Action(
            "unchanged", spec.id, spec.name, spec.file, entry.uuid, spec.model_ref,
            spec=spec, entry=entry,
        )  # fmt: skip
    base: dict[str, Any] = {
        "id": spec.id, "name": spec.name, "file": spec.file, "model": spec.model_ref,
        "spec": spec, "entry": entry,
    }
    if entry is None:
        return Action(kind="create", uuid=None, **base)

    warnings: list[Warn] = []
    if entry.intent is not None and entry.uuid is not None:
        warnings.append(Warn(
            WarnCode.INTERRUPTED,
            f"an interrupted {entry.intent.op} was recorded at {entry.intent.at}; "
            "apply sends it again",
        ))
    if entry.uuid is None:
        at = f" at {entry.intent.at}" if entry.intent is not None else ""
        warnings.append(Warn(
            WarnCode.INTERRUPTED,
            f"an interrupted create was recorded{at}; "
            "apply looks for that segment in Cargo before creating it",
        ))
        return Action(
            kind="create", uuid=None, moved_from=moved_from, warnings=tuple(warnings), **base
        )

    base["uuid"] = entry.uuid
    digest_differs = spec.digest != entry.digest
    live: Payload | None = None
    gone_remotely = False
    state_id = moved_from if moved_from is not None else spec.id
    if remote is not None and state_id in remote:
        live = remote[state_id]
        gone_remotely = live is None or bool(live.get("deletedAt"))

    if spec.model_ref != entry.model or entry.pending_delete is not None:
        reasons: list[str] = []
        if spec.model_ref != entry.model:
            reasons.append(f"model changed {entry.model} -> {spec.model_ref}")
            warnings.append(Warn(WarnCode.MODEL_CHANGE, MODEL_CHANGE_TEXT))
        if entry.pending_delete is not None:
            reasons.append(
                f"unfinished replace: old segment {entry.pending_delete} still to delete"
            )
        if spec.protect:  # the spec decides (the state's flag guards deletes)
            warnings.append(Warn(WarnCode.PROTECTED_REPLACE,
                                 "protected: apply refuses to replace it"))
        if gone_remotely:
            warnings.append(Warn(WarnCode.DELETED_OUTSIDE, "already deleted outside segsync"))
        changes = field_changes(entry.applied, spec.managed) if digest_differs else ()
        return Action(
            kind="replace", changes=changes, reason="; ".join(reasons),
            warnings=tuple(warnings), **base,
        )

    if gone_remotely:
        return Action(
            kind="recreate", reason="deleted outside segsync", warnings=tuple(warnings), **base
        )

    kind: ActionKind = "moved" if moved_from is not None else "update"
    if live is not None:
        # Only the references this entry sent become spec ids again: a raw segmentUuid in the
        # spec stays raw, even when segsync manages that segment.
        sent = {uuid: ref for ref, uuid in entry.refs.items()}
        current = from_wire(canonical_managed(live), uuid_to_id=sent)
        if current != entry.applied and field_changes(entry.applied, current):
            return Action(
                kind=kind,
                changes=field_changes(current, spec.managed),
                moved_from=moved_from,
                reason="drift: changed outside segsync",
                warnings=tuple(warnings),
                **base,
            )

    if digest_differs:
        return Action(
            kind=kind,
            changes=field_changes(entry.applied, spec.managed),
            moved_from=moved_from,
            warnings=tuple(warnings),
            **base,
        )
    if moved_from is not None:
        return Action(kind="moved", moved_from=moved_from, warnings=tuple(warnings), **base)
    if warnings:
        return Action(
            kind="update",
            reason=f"interrupted {entry.intent.op if entry.intent else 'action'}",
            warnings=tuple(warnings),
            **base,
        )
    return Action(kind="unchanged", **base)


def _ref_reasons(
    spec: LoadedSpec,
    entry: Entry,
    primary: Mapping[str, Action],
    uuid_of: Mapping[str, str | None],
    moved_to_from: Mapping[str, str],
) -> list[str]:
    past = {"create": "created", "replace": "replaced", "recreate": "recreated"}
    reasons = []
    for ref in spec.refs:
        ref_action = primary.get(ref)
        if ref_action is not None and ref_action.kind in past:
            reasons.append(f"reference {ref} is {past[ref_action.kind]} and gets a new UUID")
            continue
        recorded = entry.refs.get(ref)
        if recorded is None and ref in moved_to_from:
            recorded = entry.refs.get(moved_to_from[ref])
        current = uuid_of.get(ref)
        if recorded != current:
            reasons.append(f"reference {ref} now points to {current}")
    return reasons


def _with_ref_reasons(action: Action, reasons: list[str]) -> Action:
    kind: ActionKind = "update" if action.kind == "unchanged" else action.kind
    text = "; ".join(reasons)
    reason = f"{action.reason}; {text}" if action.reason else text
    return replace(action, kind=kind, reason=reason, preview=None)


def _gone_action(
    sid: str,
    entry: Entry,
    prune: bool,
    remote: Mapping[str, Payload | None] | None,
) -> Action:
    """An entry whose spec is gone: delete (with prune, unprotected) or orphan."""
    name = entry.applied.get("name") if entry.applied else None
    base: dict[str, Any] = {
        "id": sid, "name": name if isinstance(name, str) else "", "file": entry.file,
        "uuid": entry.uuid, "model": entry.model, "entry": entry,
    }
    warnings: list[Warn] = []
    if entry.uuid is None:
        warnings.append(Warn(WarnCode.NEVER_CREATED,
                             "never created: an interrupted create is recorded for it"))
    if remote is not None and sid in remote:
        live = remote[sid]
        if live is None or live.get("deletedAt"):
            warnings.append(Warn(WarnCode.DELETED_OUTSIDE, "already deleted outside segsync"))
    left = "no longer managed, left in place"
    if not prune:
        return Action(kind="orphan", reason=left, warnings=tuple(warnings), **base)
    if entry.protect:
        kept = Warn(WarnCode.PROTECTED_KEPT, "protected, not deleted")
        return Action(kind="orphan", reason=left, warnings=(kept, *warnings), **base)
    return Action(kind="delete", warnings=tuple(warnings), **base)


def _ranks(graph: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Dependency rank of every node: 0 without dependencies in ``graph``, else 1 + the
    highest rank among them. Iterative (long chains do not hit the recursion limit);
    a cycle, which validation rules out, is cut where it closes."""
    rank: dict[str, int] = {}
    on_stack: set[str] = set()
    for root in sorted(graph):
        if root in rank:
            continue
        stack: list[tuple[str, list[str]]] = [(root, [d for d in graph[root] if d in graph])]
        on_stack.add(root)
        while stack:
            node, pending = stack[-1]
            while pending and (pending[-1] in rank or pending[-1] in on_stack):
                pending.pop()
            if pending:
                dep = pending.pop()
                on_stack.add(dep)
                stack.append((dep, [d for d in graph[dep] if d in graph]))
                continue
            stack.pop()
            on_stack.discard(node)
            rank[node] = 1 + max(
                (rank[d] for d in graph[node] if d in rank and d != node), default=-1
            )
    return rank


def _with_creates(action: Action, cargo: Cargo | None) -> Action:
    creates = action.kind in ("create", "recreate") or needs_new_segment(action, cargo)
    return replace(action, creates_segment=True) if creates else action


# --- decisions on a whole plan ----------------------------------------------------------


def select_targets(
    specs: Sequence[LoadedSpec], state: State, patterns: Sequence[str]
) -> tuple[list[LoadedSpec], State]:
    """The specs whose id matches one of the ``--target`` globs, with the specs they reference
    (transitively), and the state narrowed to their entries. ConfigError for a pattern that
    matches no spec."""
    import fnmatch

    from segsync.spec import did_you_mean

    by_id = {s.id: s for s in specs}
    chosen: set[str] = set()
    for pattern in patterns:
        matched = [sid for sid in by_id if fnmatch.fnmatchcase(sid, pattern)]
        if not matched:
            raise ConfigError(
                f"--target {pattern!r} matches no spec id{did_you_mean(pattern, sorted(by_id))}"
            )
        chosen.update(matched)
    todo = list(chosen)
    while todo:
        for ref in by_id[todo.pop()].refs:
            if ref in by_id and ref not in chosen:
                chosen.add(ref)
                todo.append(ref)
    view = state.model_copy(
        update={"segments": {sid: e for sid, e in state.segments.items() if sid in chosen}}
    )
    return [s for s in specs if s.id in chosen], view


def restrict(plan: Plan, wanted: Mapping[str, str], *, source: str) -> tuple[Plan, list[str]]:
    """Keep exactly the actions of a saved plan (``wanted``: spec id -> kind) and say which
    others were left out; PlanFileError when Cargo now needs another kind for one of them."""
    now = {a.id: a.kind for a in plan.actions if a.kind != "dedupe"}
    mismatches = [
        f"{sid}: the plan says {kind}, Cargo now needs {now.get(sid, 'nothing')}"
        for sid, kind in sorted(wanted.items())
        if now.get(sid) != kind
    ]
    if mismatches:
        raise PlanFileError(
            "the saved plan no longer matches Cargo: " + "; ".join(mismatches)
            + "; run `segsync plan --out FILE` again, or apply without a plan file",
            path=source,
        )
    # Duplicates are deleted by apply's own --delete-duplicates, never by a saved plan.
    extra = [
        a for a in plan.actions
        if a.kind in CHANGE_KINDS and a.kind != "dedupe" and a.id not in wanted
    ]
    notes = []
    if extra:
        shown = ", ".join(f"{a.id} ({a.kind})" for a in extra)
        notes.append(f"not in the saved plan, left for a later apply: {shown}")
    kept = tuple(
        a for a in plan.actions
        if a.kind not in CHANGE_KINDS or a.kind == "dedupe" or a.id in wanted
    )
    return replace(plan, actions=kept), notes


def check_safety(plan: Plan, state: State, *, allow_replace: bool, force: bool) -> None:
    """Refuse the whole run (ConfigError), before any change, for what needs a flag."""
    replaces = [a for a in plan.actions if a.kind == "replace" and a.creates_segment]
    # The spec says whether its segment is protected (the state's flag guards deletes, whose
    # spec is gone).
    protected = [a.id for a in replaces if a.spec is not None and a.spec.protect]
    if protected:
        raise ConfigError(
            f"refusing to replace protected segments: {', '.join(protected)}; segsync never "
            "deletes a segment with `protect: true` (remove it from the spec to allow this)"
        )
    if replaces and not allow_replace:
        raise ConfigError(
            f"{len(replaces)} segment{'s' if len(replaces) != 1 else ''} would be replaced "
            f"(deleted and created again, with a new UUID): {', '.join(a.id for a in replaces)};"
            " run again with --allow-replace to do that"
        )
    deletes = sum(1 for a in plan.actions if a.kind in ("delete", "dedupe"))
    managed = sum(1 for e in state.segments.values() if e.uuid)
    destructive = deletes + len(replaces)
    if managed >= SAFETY_MIN_MANAGED and destructive > SAFETY_SHARE * managed and not force:
        raise ConfigError(
            f"refusing to delete or replace {destructive} of {managed} managed segments "
            f"(more than {SAFETY_SHARE:.0%}); check the plan, then run again with --force"
        )
