"""Plan -> formats for machines: ``--format json`` (stable, versioned) and ``--format github``
(workflow commands that GitHub shows as annotations)."""

from __future__ import annotations

import json
from typing import Any, Final

from segsync.plan import ABSENT, Action, FieldChange, Plan
from segsync.render.common import (
    DUPLICATES_HINT,
    describe_duplicate,
    partial_line,
    summary_line,
)

FORMAT_VERSION: Final = 1

#: Prepended to every annotation's file: GitHub wants paths from the repository's root, and
#: a step may run in a sub-folder (``segsync github`` sets it from git).
annotation_base = ""


def change_to_json(change: FieldChange) -> dict[str, Any]:
    """``{"field", "old", "new"}``; ``old`` is left out for an added field, ``new`` for a
    removed one (canonical forms hold no nulls, so ``null`` never stands for "absent")."""
    out: dict[str, Any] = {"field": change.field}
    if change.old is not ABSENT:
        out["old"] = change.old
    if change.new is not ABSENT:
        out["new"] = change.new
    return out


def action_to_json(action: Action) -> dict[str, Any]:
    """One action as in ``--format json``."""
    out: dict[str, Any] = {
        "action": action.kind,
        "id": action.id,
        "name": action.name,
        "file": action.file,
        "uuid": action.uuid,
        "model": action.model,
        "changes": [change_to_json(c) for c in action.changes],
    }
    if action.moved_from is not None:
        out["movedFrom"] = action.moved_from
    if action.reason:
        out["reason"] = action.reason
    if action.warnings:
        out["warnings"] = [w.text for w in action.warnings]
    if action.preview is not None:
        out["preview"] = {
            "count": action.preview.count,
            "approximate": action.preview.approximate,
            **({"note": action.preview.note} if action.preview.note else {}),
        }
    return out


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The ``--format json`` document: every action but ``unchanged`` (counted in
    ``summary``), in plan order."""
    doc: dict[str, Any] = {
        "formatVersion": FORMAT_VERSION,
        "summary": plan.summary,
        "actions": [action_to_json(a) for a in plan.actions if a.kind != "unchanged"],
    }
    if plan.targets:
        doc["targets"] = list(plan.targets)
    if plan.duplicates:
        doc["duplicates"] = [
            {
                "of": d.of, "uuid": d.uuid, "name": d.name, "model": d.model,
                "createdAt": d.created_at, "sameFields": d.same_fields,
                **({"note": d.note} if d.note else {}),
            }
            for d in plan.duplicates
        ]
    return doc


def dump_json(data: Any) -> str:
    """Deterministic JSON: sorted keys, 2-space indent, final newline, UTF-8 kept."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def render_json(plan: Plan, *, color: bool = False) -> str:
    return dump_json(plan_to_json(plan))


def github_escape_data(text: str) -> str:
    """Escape the message of a workflow command (``%``, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_escape_property(text: str) -> str:
    """Escape a property value of a workflow command (as data, plus ``:`` and ``,``)."""
    return github_escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(
    level: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    col: int | None = None,
    title: str | None = None,
) -> str:
    """One workflow command line, e.g. ``::error file=a.yaml,line=3,col=5::message`` (no
    newline at the end). ``level`` is ``error``, ``warning`` or ``notice``."""
    props = []
    if file is not None:
        props.append(f"file={github_escape_property(annotation_base + file)}")
    if line is not None:
        props.append(f"line={line}")
    if col is not None:
        props.append(f"col={col}")
    if title is not None:
        props.append(f"title={github_escape_property(title)}")
    head = f"::{level} {','.join(props)}" if props else f"::{level}"
    return f"{head}::{github_escape_data(message)}"


def render_github(plan: Plan, *, color: bool = False) -> str:
    """A ``::notice`` with the summary line, then a ``::warning`` per delete or replace."""
    notice = summary_line(plan) + (f" {partial_line(plan)}" if plan.targets else "")
    lines = [github_annotation("notice", notice, title="segsync plan")]
    for action in plan.actions:
        if action.kind not in ("delete", "replace", "dedupe"):
            continue
        label = f"{action.id} {json.dumps(action.name, ensure_ascii=False)}"
        if action.kind == "delete":
            message = f"{label} will be deleted (segment {action.uuid})"
            line = col = None
        elif action.kind == "dedupe":
            message = f"a duplicate of {label} will be deleted (segment {action.uuid})"
            line = col = None
        else:
            message = f"{label} will be replaced: {action.reason}"
            line = action.spec.line if action.spec is not None else None
            col = action.spec.column if action.spec is not None else None
        if action.warnings:
            message += " (" + "; ".join(w.text for w in action.warnings) + ")"
        lines.append(
            github_annotation(
                "warning",
                message,
                file=action.file,
                line=line,
                col=col,
                title=f"segsync plan: {action.kind}",
            )
        )
    for dup in plan.duplicates:
        lines.append(github_annotation(
            "warning", f"{describe_duplicate(dup)}; {DUPLICATES_HINT}",
            title="segsync plan: duplicate",
        ))
    return "\n".join(lines) + "\n"
