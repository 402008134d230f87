"""Three-way merge of state files, entry by entry, never by text.

Two applies that started from the same state (a base) and each recorded their own results
(ours, theirs) are merged per spec id: an entry changed on one side only takes that side's
version; changed on both sides the same way, either; changed on both sides differently, it is a
conflict and nothing is merged. The merged state keeps the lineage and workspace (both sides
must agree) and gets a serial above both sides', so a plan saved from either is stale.
"""

from __future__ import annotations

from collections.abc import Mapping

from segsync.errors import StateError
from segsync.state import Entry, State, uuid_problem


def merge_states(base: State, ours: State, theirs: State) -> State:
    """The entry-by-entry merge of ``ours`` and ``theirs`` (both made from ``base``);
    StateError naming every conflict."""
    problems: list[str] = []
    for field in ("lineage", "workspace_uuid"):
        mine, other = getattr(ours, field), getattr(theirs, field)
        if mine is not None and other is not None and mine != other:
            label = "lineage" if field == "lineage" else "workspace"
            problems.append(f"the two states have another {label} ({mine} and {other})")
    if problems:
        raise StateError("cannot merge: " + "; ".join(problems))
    merged: dict[str, Entry] = {}
    conflicts: list[str] = []
    for spec_id in sorted(set(base.segments) | set(ours.segments) | set(theirs.segments)):
        entry, conflict = _merge_entry(
            base.segments.get(spec_id), ours.segments.get(spec_id), theirs.segments.get(spec_id)
        )
        if conflict:
            conflicts.append(spec_id)
        elif entry is not None:
            merged[spec_id] = entry
    if conflicts:
        shown = ", ".join(conflicts[:10]) + (f" and {len(conflicts) - 10} more"
                                               if len(conflicts) > 10 else "")
        raise StateError(
            f"cannot merge: both sides changed the entries of {shown} differently; keep the "
            "state of the run that applied last, then run `segsync plan --refresh`"
        )
    result = State(
        version=max(ours.version, theirs.version),
        serial=max(ours.serial, theirs.serial) + 1,
        lineage=ours.lineage or theirs.lineage,
        workspace_uuid=ours.workspace_uuid or theirs.workspace_uuid,
        segments=merged,
    )
    problem = uuid_problem(result)
    if problem is not None:
        raise StateError(f"cannot merge: {problem.replace('the state file', 'the merge')}")
    return result


def _same(a: Entry | None, b: Entry | None) -> bool:
    return _dump(a) == _dump(b)


def _dump(entry: Entry | None) -> Mapping[str, object] | None:
    return None if entry is None else entry.model_dump(mode="json", exclude_none=True)


def _merge_entry(
    base: Entry | None, ours: Entry | None, theirs: Entry | None
) -> tuple[Entry | None, bool]:
    """(merged entry or None when it is gone, whether the two sides conflict)."""
    if _same(ours, theirs):
        return ours, False
    if _same(base, ours):
        return theirs, False
    if _same(base, theirs):
        return ours, False
    return None, True
