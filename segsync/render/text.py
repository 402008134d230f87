"""Plan -> text for a terminal, Terraform-like: a legend, one block per change, the summary."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import click

from segsync.plan import Action, Plan
from segsync.render.common import (
    DUPLICATES_HINT,
    SYMBOLS,
    describe_duplicate,
    describe_filter,
    describe_options,
    describe_preview,
    partial_line,
    quoted,
    show_value,
    summary_line,
    visible,
)

_LEGEND_ORDER: Final = (
    "create", "adopt", "recreate", "update", "moved", "replace", "delete", "dedupe",
)
_LEGEND: Final = {"dedupe": "delete duplicate"}
_COLORS: Final[dict[str, str]] = {
    "create": "green",
    "recreate": "green",
    "update": "yellow",
    "moved": "cyan",
    "replace": "red",
    "delete": "red",
    "adopt": "cyan",
    "dedupe": "red",
}


def render_text(plan: Plan, *, color: bool = False) -> str:
    """Terraform-like text: a legend of the symbols used, one line per change with its field
    changes below, orphans in their own block, and the summary line last."""

    def style(text: str, **kw: Any) -> str:
        return click.style(text, **kw) if color else text

    changes = plan.changes()
    orphans = [a for a in plan.actions if a.kind == "orphan"]
    out: list[str] = []
    if changes:
        used = {a.kind for a in changes}
        legend = ", ".join(
            f"{style(SYMBOLS[k], fg=_COLORS[k])} {_LEGEND.get(k, k)}"
            for k in _LEGEND_ORDER if k in used
        )
        out += ["segsync will perform these actions:", f"Symbols: {legend}", ""]
        for action in changes:
            out += _text_action(action, style)
        out.append("")
    if orphans:
        out.append("No longer managed, left in place (delete them with --prune):")
        for action in orphans:
            out.append(f"    {_text_head(action)}")
            out += [f"      ! {visible(w.text)}" for w in action.warnings]
        out.append("")
    if plan.duplicates:
        out.append(f"Duplicates in Cargo, not managed by segsync ({DUPLICATES_HINT}):")
        out += [f"    {visible(describe_duplicate(d))}" for d in plan.duplicates]
        out.append("")
    if plan.targets:
        out.append(partial_line(plan))
    out.append(style(summary_line(plan), bold=True))
    return "\n".join(out) + "\n"


def _text_head(action: Action) -> str:
    parts = [visible(action.id)]
    if action.name:
        parts.append(quoted(action.name))
    if action.file:
        parts.append(f"({visible(action.file)})")
    return "  ".join(parts)


def _text_action(action: Action, style: Callable[..., str]) -> list[str]:
    symbol = style(f"{SYMBOLS[action.kind]:>3}", fg=_COLORS[action.kind], bold=True)
    head = _text_head(action)
    if action.moved_from is not None:
        head += f"  moved from {visible(action.moved_from)}"
    lines = [f"{symbol} {head}"]
    if action.kind in ("delete", "dedupe") and action.uuid:
        lines.append(f"      # segment {visible(action.uuid)}")
    if action.reason:
        lines.append(f"      # {visible(action.reason)}")
    lines += [style(f"      ! {visible(w.text)}", fg="yellow") for w in action.warnings]
    lines += [
        f"      {visible(c.field)}: {show_value(c.old)} → {show_value(c.new)}"
        for c in action.changes
    ]
    if action.preview is not None:
        lines.append(f"      # {visible(describe_preview(action.preview))}")
    if action.kind in ("create", "recreate", "replace") and action.spec is not None:
        lines += _text_managed(action.spec.model_ref, action.spec.managed)
    return lines


def _text_managed(model: str, managed: Mapping[str, Any]) -> list[str]:
    """What a new segment will hold, as Terraform shows the attributes of a resource."""
    lines = [f"      model: {visible(model)}"]
    flt = managed.get("filter")
    if isinstance(flt, Mapping):
        lines.append("      filter:")
        lines += [f"        {'  ' * depth}{text}" for depth, text in describe_filter(flt, visible)]
    lines += [f"      {key}: {value}" for key, _, value in describe_options(managed, visible)]
    return lines
