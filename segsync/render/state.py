"""The state file for people: ``segsync state list`` and ``segsync state show``."""

from __future__ import annotations

import json
from pathlib import Path

from segsync.state import Entry, State


def _entry_flags(entry: Entry) -> str:
    flags = []
    if entry.protect:
        flags.append("protect")
    if entry.intent is not None:
        flags.append(f"intent={entry.intent.op}")
    if entry.pending_delete is not None:
        flags.append(f"pendingDelete={entry.pending_delete}")
    return ",".join(flags) or "-"


def table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def format_state_list(state: State, path: str | Path, *, fmt: str = "text") -> str:
    """Every entry on one line (id, uuid, model, file, flags), sorted by id; ends with a newline.

    ``fmt="json"`` gives an object with the header fields and a ``segments`` list whose items
    always have every key (null when unknown).
    """
    ids = sorted(state.segments)
    if fmt == "json":
        doc = {
            "version": state.version,
            "serial": state.serial,
            "lineage": state.lineage,
            "workspaceUuid": state.workspace_uuid,
            "segments": [
                {
                    "id": spec_id,
                    "uuid": entry.uuid,
                    "model": entry.model,
                    "modelUuid": entry.model_uuid,
                    "file": entry.file,
                    "protect": entry.protect,
                    "intent": entry.intent.model_dump() if entry.intent else None,
                    "pendingDelete": entry.pending_delete,
                }
                for spec_id, entry in ((i, state.segments[i]) for i in ids)
            ],
        }
        return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    lines = [
        f"{path}: version {state.version}, serial {state.serial}, "
        f"lineage {state.lineage or '-'}, workspace {state.workspace_uuid or '-'}"
    ]
    if not ids:
        lines.append("no segments")
    else:
        rows = [["ID", "UUID", "MODEL", "FILE", "FLAGS"]]
        for spec_id in ids:
            entry = state.segments[spec_id]
            rows.append(
                [spec_id, entry.uuid or "-", entry.model, entry.file or "-", _entry_flags(entry)]
            )
        lines.extend(table(rows))
    return "\n".join(lines) + "\n"


def format_entry(spec_id: str, entry: Entry, *, fmt: str = "text") -> str:
    """The whole entry: JSON exactly as in the state file (``fmt="json"``) or a readable text."""
    data = entry.model_dump(mode="json", by_alias=True, exclude_none=True)
    if fmt == "json":
        return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    creating = entry.intent is not None and entry.intent.op == "create"
    rows = [
        ["uuid", entry.uuid or ("- (create under way)" if creating else "-")],
        ["model", entry.model],
        ["modelUuid", entry.model_uuid or "-"],
        ["file", entry.file or "-"],
        ["fileSha256", entry.file_sha256 or "-"],
        ["protect", "true" if entry.protect else "false"],
        ["appliedAt", entry.applied_at or "-"],
        ["digest", entry.digest or "-"],
    ]
    if entry.refs:
        for n, ref in enumerate(sorted(entry.refs)):
            rows.append(["refs" if n == 0 else "", f"{ref} -> {entry.refs[ref]}"])
    else:
        rows.append(["refs", "-"])
    if entry.intent is not None:
        rows.append(["intent", f"{entry.intent.op} since {entry.intent.at}"])
    if entry.pending_delete is not None:
        rows.append(["pendingDelete", entry.pending_delete])
    if entry.applied is None:
        rows.append(["applied", "-"])
    lines = [spec_id, *("  " + line for line in table(rows))]
    if entry.applied is not None:
        lines.append("  applied")
        applied = json.dumps(entry.applied, sort_keys=True, indent=2, ensure_ascii=False)
        lines.extend("    " + line for line in applied.splitlines())
    return "\n".join(lines) + "\n"
