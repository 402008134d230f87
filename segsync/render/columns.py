"""``segsync columns``: the workspace's models and their columns, for people writing specs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from segsync.columns import describe_columns
from segsync.render.state import table


def render_columns(models: Sequence[tuple[str, dict[str, Any]]], fmt: str) -> str:
    """One table per model (``text``), or one JSON object ``{"models": [...]}`` (``json``)."""
    if fmt == "json":
        doc = {"models": [
            {"model": name, "uuid": model.get("uuid"), "name": model.get("name"),
             "columns": [
                 {"slug": slug, "type": kind, "kind": origin,
                  "properties": props.split(", ") if props else None}
                 for slug, kind, origin, props in describe_columns(model)
             ]}
            for name, model in models
        ]}
        return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    out: list[str] = []
    for name, model in models:
        out.append(f"{name}  ({model.get('name') or name}, {model.get('uuid')})")
        rows = [["COLUMN", "TYPE", "KIND", "PROPERTIES"]]
        rows += [[slug, kind, origin, props or "-"]
                 for slug, kind, origin, props in describe_columns(model)]
        out += ["  " + line for line in table(rows)] if len(rows) > 1 else ["  (no columns)"]
        out.append("")
    return "\n".join(out) if out else "This workspace has no models.\n"
