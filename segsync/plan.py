"""Specs + state (+ optionally the live remote segments) -> a Plan: a frozen value, no I/O.

The plan says, per spec id, what apply would do: ``create``, ``update``, ``replace``,
``delete``, ``moved``, ``recreate``, ``orphan`` (in the state, not in the specs, left in
place) or ``unchanged``. Renderers (``render.py``) print it; apply executes it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from segsync.spec import LoadedSpec
    from segsync.state import Entry, State

ActionKind = Literal[
    "create", "update", "replace", "delete", "moved", "recreate", "orphan", "unchanged"
]

#: Every kind, in the order used to sort actions of the same dependency rank and by the summaries.
KINDS: Final[tuple[ActionKind, ...]] = (
    "create",
    "recreate",
    "replace",
    "moved",
    "update",
    "unchanged",
    "delete",
    "orphan",
)
_KIND_ORDER: Final[dict[str, int]] = {kind: i for i, kind in enumerate(KINDS)}

#: The keys of ``Plan.summary`` (and of the JSON ``summary`` object), in this order.
SUMMARY_KEYS: Final[tuple[ActionKind, ...]] = (
    "create",
    "update",
    "replace",
    "delete",
    "moved",
    "recreate",
    "unchanged",
    "orphan",
)

#: Kinds that change something in Cargo or in the state; ``unchanged`` and ``orphan`` do not.
CHANGE_KINDS: Final[frozenset[str]] = frozenset(
    {"create", "update", "replace", "delete", "moved", "recreate"}
)


class _Absent:
    """The value of a field that is not there (added or removed by a change)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


#: ``FieldChange.old`` of a field that is added, ``FieldChange.new`` of one that is removed.
ABSENT: Final = _Absent()


@dataclass(frozen=True)
class FieldChange:
    """One changed field: dotted path (``filter.groups[0].conditions[1].value``), old -> new."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Action:
    """What happens to one spec id. ``changes`` holds field-level old -> new for update,
    moved and replace; ``spec`` is None for delete/orphan, ``entry`` is None for create."""

    kind: ActionKind
    id: str
    name: str
    file: str | None
    uuid: str | None
    model: str | None
    changes: tuple[FieldChange, ...] = ()
    moved_from: str | None = None
    spec: LoadedSpec | None = None
    entry: Entry | None = None
    reason: str | None = None
    warnings: tuple[str, ...] = ()
    preview: Preview | None = None  # with `plan --preview`: what the new filter would match


@dataclass(frozen=True)
class Preview:
    """How many records a created or updated segment would hold, from Cargo's fetch endpoint.

    ``count`` is None when it cannot be asked yet (a referenced segment is not created);
    ``approximate`` when Cargo said it was still refreshing its data.
    """

    count: int | None
    approximate: bool = False
    note: str | None = None


#: Kinds whose spec filter is sent to Cargo, so a preview can tell what it would match.
PREVIEW_KINDS: Final[frozenset[str]] = frozenset({"create", "update", "replace", "recreate"})


@dataclass(frozen=True)
class Plan:
    """The actions, ordered for execution (see ``make_plan``), with their counts."""

    actions: tuple[Action, ...]
    prune: bool = False
    refreshed: bool = False

    @cached_property
    def _counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        for action in self.actions:
            counts[action.kind] += 1
        return counts

    def count(self, kind: ActionKind) -> int:
        return self._counts[kind]

    @property
    def summary(self) -> dict[str, int]:
        """Counts per kind: create, update, replace, delete, moved, recreate, unchanged, orphan."""
        return {kind: self._counts[kind] for kind in SUMMARY_KEYS}

    @property
    def has_changes(self) -> bool:
        """True when apply would do anything (every kind but ``unchanged`` and ``orphan``)."""
        return any(self._counts[kind] for kind in CHANGE_KINDS)

    def changes(self) -> tuple[Action, ...]:
        """The actions that are neither ``unchanged`` nor ``orphan``, in plan order."""
        return tuple(a for a in self.actions if a.kind in CHANGE_KINDS)


def make_plan(
    specs: Sequence[LoadedSpec],
    state: State,
    *,
    prune: bool = False,
    remote: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> Plan:
    """Compare specs with the state and return the plan.

    ``remote`` (refresh and apply only) maps the state's spec ids (for a moved spec, its old
    id) to the live segment, or None when it is gone; ids missing from it are not checked.
    A gone segment is planned as ``recreate``; a live one whose canonical managed fields differ
    from ``applied`` as an update (reason "drift") whose changes go from remote to spec.

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

    uuid_to_id: dict[str, str] | None = None
    if remote is not None:
        uuid_to_id = {}
        for sid, e in entries.items():
            if e.uuid is not None:
                uuid_to_id[e.uuid] = sid
        for new_id, old_id in moved_to_from.items():
            old_uuid = entries[old_id].uuid
            if old_uuid is not None:
                uuid_to_id[old_uuid] = new_id

    primary: dict[str, Action] = {}
    for spec in specs:
        moved_from = moved_to_from.get(spec.id)
        entry = entries[moved_from] if moved_from is not None else entries.get(spec.id)
        primary[spec.id] = _spec_action(spec, entry, moved_from, remote, uuid_to_id)

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
    spec_actions.sort(key=lambda a: (rank[a.id], _KIND_ORDER[a.kind], a.id))

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

    return Plan(
        actions=(*spec_actions, *deletes, *orphans), prune=prune, refreshed=remote is not None
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
    remote: Mapping[str, Mapping[str, Any] | None] | None,
    uuid_to_id: Mapping[str, str] | None,
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
        "id": spec.id,
        "name": spec.name,
        "file": spec.file,
        "model": spec.model_ref,
        "spec": spec,
        "entry": entry,
    }
    if entry is None:
        return Action(kind="create", uuid=None, **base)

    warnings: list[str] = []
    if entry.intent is not None and entry.uuid is not None:
        warnings.append(
            f"an interrupted {entry.intent.op} was recorded at {entry.intent.at}; "
            "apply sends it again"
        )
    if entry.uuid is None:
        at = f" at {entry.intent.at}" if entry.intent is not None else ""
        warnings.append(
            f"an interrupted create was recorded{at}; "
            "apply looks for that segment in Cargo before creating it"
        )
        return Action(
            kind="create", uuid=None, moved_from=moved_from, warnings=tuple(warnings), **base
        )

    base["uuid"] = entry.uuid
    digest_differs = spec.digest != entry.digest
    live: Mapping[str, Any] | None = None
    gone_remotely = False
    state_id = moved_from if moved_from is not None else spec.id
    if remote is not None and state_id in remote:
        live = remote[state_id]
        gone_remotely = live is None or bool(live.get("deletedAt"))

    if spec.model_ref != entry.model or entry.pending_delete is not None:
        reasons: list[str] = []
        if spec.model_ref != entry.model:
            reasons.append(f"model changed {entry.model} -> {spec.model_ref}")
            warnings.append(
                "the API cannot move a segment to another model: apply deletes it and "
                "creates a new one (needs --allow-replace)"
            )
        if entry.pending_delete is not None:
            reasons.append(
                f"unfinished replace: old segment {entry.pending_delete} still to delete"
            )
        if spec.protect:  # the spec decides, as in apply (the state's flag guards deletes)
            warnings.append("protected: apply refuses to replace it")
        if gone_remotely:
            warnings.append("already deleted outside segsync")
        changes = _diff(entry.applied, spec.managed) if digest_differs else ()
        return Action(
            kind="replace",
            changes=changes,
            reason="; ".join(reasons),
            warnings=tuple(warnings),
            **base,
        )

    if gone_remotely:
        return Action(
            kind="recreate",
            reason="deleted outside segsync",
            warnings=tuple(warnings),
            **base,
        )

    kind: ActionKind = "moved" if moved_from is not None else "update"
    if live is not None and uuid_to_id is not None:
        from segsync.spec import canonical_managed

        current = _spec_ids_for_uuids(canonical_managed(live), uuid_to_id)
        if current != entry.applied:
            return Action(
                kind=kind,
                changes=_diff(current, spec.managed),
                moved_from=moved_from,
                reason="drift: changed outside segsync",
                warnings=tuple(warnings),
                **base,
            )

    if digest_differs:
        return Action(
            kind=kind,
            changes=_diff(entry.applied, spec.managed),
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
    return Action(
        kind=kind,
        id=action.id,
        name=action.name,
        file=action.file,
        uuid=action.uuid,
        model=action.model,
        changes=action.changes,
        moved_from=action.moved_from,
        spec=action.spec,
        entry=action.entry,
        reason=reason,
        warnings=action.warnings,
    )


def _gone_action(
    sid: str,
    entry: Entry,
    prune: bool,
    remote: Mapping[str, Mapping[str, Any] | None] | None,
) -> Action:
    """An entry whose spec is gone: delete (with prune, unprotected) or orphan."""
    name = entry.applied.get("name") if entry.applied else None
    base: dict[str, Any] = {
        "id": sid,
        "name": name if isinstance(name, str) else "",
        "file": entry.file,
        "uuid": entry.uuid,
        "model": entry.model,
        "entry": entry,
    }
    warnings: list[str] = []
    if entry.uuid is None:
        warnings.append("never created: an interrupted create is recorded for it")
    if remote is not None and sid in remote:
        live = remote[sid]
        if live is None or live.get("deletedAt"):
            warnings.append("already deleted outside segsync")
    if not prune:
        return Action(
            kind="orphan",
            reason="no longer managed, left in place",
            warnings=tuple(warnings),
            **base,
        )
    if entry.protect:
        return Action(
            kind="orphan",
            reason="no longer managed, left in place",
            warnings=("protected, not deleted", *warnings),
            **base,
        )
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


def _spec_ids_for_uuids(managed: Mapping[str, Any], uuid_to_id: Mapping[str, str]) -> Any:
    """A remote segment's canonical fields with ``segmentUuid`` conditions turned back into
    ``segment: <spec id>`` where the UUID is one segsync manages, so they compare with
    ``applied``."""
    flt = managed.get("filter")
    if not isinstance(flt, Mapping) or not isinstance(flt.get("groups"), list):
        return dict(managed)
    groups = []
    for group in flt["groups"]:
        conditions = group.get("conditions") if isinstance(group, Mapping) else None
        if not isinstance(conditions, list):
            groups.append(group)
            continue
        new_conditions = []
        for cond in conditions:
            if (
                isinstance(cond, Mapping)
                and cond.get("kind") == "segment"
                and cond.get("segmentUuid") in uuid_to_id
            ):
                spec_id = uuid_to_id[cond["segmentUuid"]]
                cond = {k: v for k, v in cond.items() if k != "segmentUuid"}
                cond["segment"] = spec_id
            new_conditions.append(cond)
        groups.append({**group, "conditions": new_conditions})
    return {**managed, "filter": {**flt, "groups": groups}}


# --- field-level diff -------------------------------------------------------------------


def _diff(old: Any, new: Any) -> tuple[FieldChange, ...]:
    """Field-level differences between two canonical forms, as dotted paths."""
    out: list[FieldChange] = []
    _diff_into(out, "", ABSENT if old is None else old, new)
    return tuple(out)


def _join(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _diff_into(out: list[FieldChange], path: str, old: Any, new: Any) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new)):
            _diff_into(out, _join(path, str(key)), old.get(key, ABSENT), new.get(key, ABSENT))
        return
    if isinstance(old, list) and isinstance(new, list):
        _diff_lists(out, path, old, new)
        return
    if (type(old) is not type(new) and not _same_number(old, new)) or old != new:
        out.append(FieldChange(path, old, new))


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


def _diff_lists(out: list[FieldChange], path: str, old: list[Any], new: list[Any]) -> None:
    """Same length: element by element. Otherwise align with difflib so that one inserted
    condition shows as one addition rather than every later condition changing."""
    if len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _diff_into(out, f"{path}[{i}]", a, b)
        return
    a_keys = [json.dumps(x, sort_keys=True) for x in old]
    b_keys = [json.dumps(x, sort_keys=True) for x in new]
    matcher = difflib.SequenceMatcher(a=a_keys, b=b_keys, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        common = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(common):
            _diff_into(out, f"{path}[{j1 + k}]", old[i1 + k], new[j1 + k])
        for i in range(i1 + common, i2):
            out.append(FieldChange(f"{path}[{i}]", old[i], ABSENT))
        for j in range(j1 + common, j2):
            out.append(FieldChange(f"{path}[{j}]", ABSENT, new[j]))


def known_specs(state: State, directory: str) -> dict[str, tuple[str, LoadedSpec]]:
    """The specs the state recorded at the last apply, by file, for ``load_specs(known=...)``.

    An entry knows its spec fully when it holds the file's sha256 and what was applied from
    it, with nothing under way (no intent, no pending delete). A file with those bytes makes
    that same spec again, so it need not be parsed to be planned. (``explicit_id`` is taken
    as "the id differs from the file's default id"; it only matters to the rename guess,
    which never concerns a spec that has its entry.)
    """
    from pathlib import Path

    from segsync.spec import UUID4_PATTERN, LoadedSpec

    uuid4 = re.compile(UUID4_PATTERN)
    base = Path(directory).as_posix()
    prefix = "" if base == "." else base + "/"
    known: dict[str, tuple[str, LoadedSpec]] = {}
    for spec_id, entry in state.segments.items():
        if (
            entry.uuid is None or entry.file is None or entry.file_sha256 is None
            or entry.applied is None or entry.digest is None or entry.intent is not None
            or entry.pending_delete is not None or not entry.file.startswith(prefix)
        ):
            continue
        default_id = entry.file[len(prefix):].rsplit(".", 1)[0]
        is_uuid = uuid4.match(entry.model) is not None
        known[entry.file] = (entry.file_sha256, LoadedSpec(
            id=spec_id,
            explicit_id=spec_id != default_id,
            file=entry.file,
            model=None if is_uuid else entry.model,
            model_uuid=entry.model if is_uuid else None,
            managed=entry.applied,
            digest=entry.digest,
            refs=tuple(sorted(entry.refs)),
            protect=entry.protect,
            file_sha256=entry.file_sha256,
        ))
    return known
