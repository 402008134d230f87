"""Saved plans (``segsync plan --out FILE``): write, read back with a checksum, check freshness.

A plan file is deterministic JSON::

    {"checksum": "sha256:<hex of the rest>", "formatVersion": 1, "kind": "segsync-plan",
     "options": {"prune": false, "refresh": false}, "state": {"lineage": "...", "serial": 7},
     "specs": {"<id>": {"digest": "...", "model": "companies", "protect": false}, ...},
     "summary": {...}, "actions": [<as in --format json>]}

``checksum`` covers every other key (serialised with sorted keys and no whitespace), so an
edited file is refused. ``apply FILE`` reads it, checks that the state and the specs are
still those it was made from (``check_fresh``), and applies it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from segsync.errors import PlanFileError
from segsync.fsutil import write_atomic
from segsync.render.machine import action_to_json, dump_json

if TYPE_CHECKING:
    from segsync.plan import Plan
    from segsync.specs import LoadedSpec
    from segsync.state import State

PLAN_FILE_VERSION: Final = 1
_KIND: Final = "segsync-plan"
_AGAIN: Final = "run `segsync plan` again"


@dataclass(frozen=True)
class SpecFingerprint:
    """What a plan depends on in one spec: its digest, its model as written, ``protect``."""

    digest: str
    model: str
    protect: bool


@dataclass(frozen=True)
class SavedPlan:
    """A plan file read back: what it was made from, and its actions as JSON objects."""

    path: str
    lineage: str | None
    serial: int
    prune: bool
    refresh: bool
    specs: Mapping[str, SpecFingerprint]
    summary: Mapping[str, int]
    actions: tuple[Mapping[str, Any], ...]


def fingerprints(specs: Sequence[LoadedSpec]) -> dict[str, SpecFingerprint]:
    return {
        s.id: SpecFingerprint(digest=s.digest, model=s.model_ref, protect=s.protect) for s in specs
    }


def _checksum(body: Mapping[str, Any]) -> str:
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()


def plan_file_document(
    plan: Plan, *, state: State, specs: Sequence[LoadedSpec], prune: bool
) -> dict[str, Any]:
    """The plan file's content (checksum included)."""
    body: dict[str, Any] = {
        "formatVersion": PLAN_FILE_VERSION,
        "kind": _KIND,
        "options": {"prune": prune, "refresh": plan.refreshed},
        "state": {"lineage": state.lineage, "serial": state.serial},
        "specs": {
            sid: {"digest": fp.digest, "model": fp.model, "protect": fp.protect}
            for sid, fp in sorted(fingerprints(specs).items())
        },
        "summary": plan.summary,
        "actions": [action_to_json(a) for a in plan.actions if a.kind != "unchanged"],
    }
    return {**body, "checksum": _checksum(body)}


def write_plan_file(
    path: str | Path, plan: Plan, *, state: State, specs: Sequence[LoadedSpec], prune: bool
) -> None:
    """Write the plan file atomically; PlanFileError naming it when that is not possible."""
    text = dump_json(plan_file_document(plan, state=state, specs=specs, prune=prune))
    try:
        write_atomic(path, text.encode("utf-8"))
    except OSError as exc:
        raise PlanFileError(
            f"cannot write the plan file ({exc.strerror or exc})", path=str(path)
        ) from exc


def read_plan_file(path: str | Path) -> SavedPlan:
    """Read and verify a plan file; PlanFileError when unreadable, altered or of another
    format version."""
    where = str(path)
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanFileError(f"cannot read the plan file: {exc}", path=where) from exc
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PlanFileError(
            f"not a segsync plan file (invalid JSON: {exc.msg})", path=where, line=exc.lineno
        ) from exc
    except RecursionError:  # arrays or objects nested about 1,000 levels deep
        raise PlanFileError(
            f"not a segsync plan file (nested too deeply to be read); {_AGAIN}", path=where
        ) from None
    if not isinstance(doc, dict) or doc.get("kind") != _KIND:
        raise PlanFileError("not a segsync plan file", path=where)
    if doc.get("formatVersion") != PLAN_FILE_VERSION:
        raise PlanFileError(
            f"plan file format {doc.get('formatVersion')!r} is not supported "
            f"(this segsync reads format {PLAN_FILE_VERSION}); {_AGAIN}",
            path=where,
        )
    body = {k: v for k, v in doc.items() if k != "checksum"}
    try:
        checksum = _checksum(body)
    except RecursionError:  # read, but too deep to serialise again
        raise PlanFileError(
            f"not a segsync plan file (nested too deeply to be read); {_AGAIN}", path=where
        ) from None
    if doc.get("checksum") != checksum:
        raise PlanFileError(
            f"the plan file was altered after it was written (checksum mismatch); {_AGAIN}",
            path=where,
        )
    try:
        specs = {
            sid: SpecFingerprint(
                digest=str(v["digest"]), model=str(v["model"]), protect=bool(v["protect"])
            )
            for sid, v in doc["specs"].items()
        }
        state = doc["state"]
        return SavedPlan(
            path=where,
            lineage=state["lineage"],
            serial=int(state["serial"]),
            prune=bool(doc["options"]["prune"]),
            refresh=bool(doc["options"].get("refresh", False)),
            specs=specs,
            summary=dict(doc["summary"]),
            actions=tuple(doc["actions"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PlanFileError(
            f"malformed plan file ({exc!r} missing or invalid)", path=where
        ) from exc


def check_fresh(saved: SavedPlan, state: State, specs: Sequence[LoadedSpec]) -> None:
    """Raise PlanFileError naming what changed when the state or the specs are no longer
    those the plan was made from."""
    problems: list[str] = []
    if state.lineage != saved.lineage:
        problems.append(
            f"the state file is another one (lineage {state.lineage} instead of {saved.lineage})"
        )
    elif state.serial != saved.serial:
        problems.append(
            "the state file changed since the plan was made "
            f"(serial {saved.serial} -> {state.serial})"
        )
    current = fingerprints(specs)
    added = sorted(set(current) - set(saved.specs))
    removed = sorted(set(saved.specs) - set(current))
    changed = sorted(
        sid for sid in set(current) & set(saved.specs) if current[sid] != saved.specs[sid]
    )
    for label, ids in (("added", added), ("removed", removed), ("changed", changed)):
        if ids:
            shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            problems.append(f"specs {label} since the plan was made: {shown}")
    if problems:
        raise PlanFileError(
            f"the saved plan is stale: {'; '.join(problems)}; {_AGAIN}", path=saved.path
        )
