"""Plan -> text (terminal), markdown (pull-request comment), json (machines), github (workflow
commands). Pure functions of the plan: same plan, same bytes.

Summary line, shared by every format (``summary_line``):

- with changes: ``Plan: 3 to create, 1 to update, 0 to replace, 0 to delete, 12 unchanged.``;
  ``N to recreate`` follows ``to create`` and ``N to move`` follows ``to update`` when not
  zero, and ``N left in place`` (entries no longer managed) ends the list when not zero;
- without: ``No changes. 12 segments up to date.``, with ``; N no longer managed, left in
  place`` before the full stop when there are orphans.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import click

from segsync.plan import ABSENT, KINDS, Action, ActionKind, FieldChange, Plan, Preview

FORMAT_VERSION: Final = 1
MARKDOWN_LIMIT: Final = 60_000

#: Symbol per kind in the text format (ASCII, fixed width 3 when right-aligned).
SYMBOLS: Final[dict[str, str]] = {
    "create": "+",
    "recreate": "+!",
    "update": "~",
    "moved": ">",
    "replace": "-/+",
    "delete": "-",
}
_LEGEND_ORDER: Final = ("create", "recreate", "update", "moved", "replace", "delete")
_COLORS: Final[dict[str, str]] = {
    "create": "green",
    "recreate": "green",
    "update": "yellow",
    "moved": "cyan",
    "replace": "red",
    "delete": "red",
}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_line(plan: Plan) -> str:
    """The one-line summary every format shows (see the module docstring)."""
    s = plan.summary
    if not plan.has_changes:
        orphans = f"; {s['orphan']} no longer managed, left in place" if s["orphan"] else ""
        return f"No changes. {_plural(s['unchanged'], 'segment')} up to date{orphans}."
    parts = [f"{s['create']} to create"]
    if s["recreate"]:
        parts.append(f"{s['recreate']} to recreate")
    parts.append(f"{s['update']} to update")
    if s["moved"]:
        parts.append(f"{s['moved']} to move")
    parts += [
        f"{s['replace']} to replace",
        f"{s['delete']} to delete",
        f"{s['unchanged']} unchanged",
    ]
    if s["orphan"]:
        parts.append(f"{s['orphan']} left in place")
    return "Plan: " + ", ".join(parts) + "."


# --- values -----------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _visible(text: str) -> str:
    """Control characters (newline, escape, ...) as ``\\n`` / ``\\x1b``: user text cannot move
    the cursor or colour a terminal."""
    return _CONTROL.sub(lambda m: json.dumps(m.group())[1:-1], text)


def show_value(value: Any) -> str:
    """A field value for humans: strings quoted, lists and objects as compact JSON,
    ``(absent)`` for a field that is not there."""
    if value is ABSENT:
        return "(absent)"
    return _visible(json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": ")))


def _quoted(text: str) -> str:
    return _visible(json.dumps(text, ensure_ascii=False))


# --- readable filters -------------------------------------------------------------------

_OPERATORS: Final[dict[str, str]] = {
    "is": "is",
    "isNot": "is not",
    "contains": "contains",
    "doesNotContain": "does not contain",
    "startsWith": "starts with",
    "endsWith": "ends with",
    "greaterThan": ">",
    "lowerThan": "<",
    "isNull": "is null",
    "isNotNull": "is not null",
    "isEmpty": "is empty",
    "isNotEmpty": "is not empty",
    "isTrue": "is true",
    "isFalse": "is false",
    "in": "in segment",
    "notIn": "not in segment",
}
_FREQUENCY: Final[dict[str, str]] = {
    "moreThan": "more than",
    "lessThan": "less than",
    "exactly": "exactly",
}


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(_scalar(v) for v in value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _plain(text: str) -> str:
    return text


Escape = Callable[[str], str]
_CONJ: Final[dict[str, str]] = {"and": "all of", "or": "any of"}


def _frequency(freq: Any, esc: Escape) -> str:
    if not isinstance(freq, Mapping):
        return esc(_scalar(freq))
    if freq.get("operator") == "not":
        return "never"
    op = _FREQUENCY.get(str(freq.get("operator")))
    return f"{op or esc(str(freq.get('operator')))} {esc(_scalar(freq.get('value')))} times"


def _period(period: Any, esc: Escape) -> str:
    if not isinstance(period, Mapping):
        return esc(_scalar(period))
    op = _FREQUENCY.get(str(period.get("operator")))
    value, unit = esc(_scalar(period.get("value"))), esc(_scalar(period.get("unit")))
    return f"{op or esc(str(period.get('operator')))} {value} {unit}s"


def describe_condition(cond: Mapping[str, Any], esc: Escape = _plain) -> str:
    """One condition in words: ``country is FR, DE``, ``employee_count > 500``,
    ``founded_at between 2020-01-01 and 2021-01-01``, ``in segment sales/icp``. ``esc`` is
    applied to every piece of user text (column, values, ids), never to the words around."""

    def v(key: str) -> str:
        return esc(_scalar(cond.get(key)))

    kind = cond.get("kind")
    op_name = str(cond.get("operator", ""))
    op = _OPERATORS.get(op_name) or esc(op_name)
    col = v("columnSlug")
    related = cond.get("relatedModelUuid")
    suffix = f" (related model {v('relatedModelUuid')})" if related and kind != "occurrence" else ""
    text: str
    if kind == "segment":
        target = cond.get("segment", cond.get("segmentUuid", "?"))
        text = f"{op} {esc(_scalar(target))}"
    elif kind == "sql":
        text = f"SQL {v('name')}: {v('clause')}"
    elif kind == "enrollment":
        node = f" node {v('nodeSlug')}" if cond.get("nodeSlug") else ""
        text = (
            f"workflow {v('workflowUuid')}{node}: {v('activityKind')} "
            f"{_frequency(cond.get('frequency'), esc)}, "
            f"period {_period(cond.get('period'), esc)}"
        )
    elif kind == "occurrence":
        inner = _describe_conditions(cond.get("conditions"), cond.get("conjonction"), esc)
        text = (
            f"related model {v('relatedModelUuid')} occurs "
            f"{_frequency(cond.get('frequency'), esc)}, "
            f"period {_period(cond.get('period'), esc)}, where {inner}"
        )
    elif op_name == "matchConditions":
        inner = _describe_conditions(cond.get("propertyConditions"), cond.get("conjonction"), esc)
        text = f"{col} matches {inner}"
    elif kind == "objectProperty":
        prop = f"{col}.{v('propertyName')}"
        if op_name == "between":
            text = f"{prop} between {v('value')} and {v('otherValue')}"
        elif "value" in cond:
            text = f"{prop} {op} {v('value')}"
        else:
            text = f"{prop} {op}"
    elif op_name == "between":
        text = f"{col} between {v('firstValue')} and {v('lastValue')}"
    elif "values" in cond:
        text = f"{col} {op} {v('values')}"
    elif "value" in cond:
        text = f"{col} {op} {v('value')}"
    elif op_name:
        text = f"{col} {op}"
    else:
        rest = {k: val for k, val in cond.items() if k != "kind"}
        text = f"{esc(_scalar(kind))} {esc(_scalar(rest))}"
    return text + suffix


def _describe_conditions(conditions: Any, conjonction: Any, esc: Escape) -> str:
    if not isinstance(conditions, list) or not conditions:
        return "(no conditions)"
    joiner = f" {esc(_scalar(conjonction))} "
    parts = [describe_condition(c, esc) for c in conditions if isinstance(c, Mapping)]
    return "(" + joiner.join(parts) + ")"


def _conj(value: Any, esc: Escape) -> str:
    return _CONJ.get(str(value)) or esc(_scalar(value))


def describe_filter(flt: Mapping[str, Any], esc: Escape = _plain) -> list[tuple[int, str]]:
    """The filter as ``(depth, line)`` pairs for a nested list: ``all of these groups:``,
    then per group ``any of:`` and its conditions one level deeper."""
    groups = flt.get("groups")
    if not isinstance(groups, list) or not groups:
        return [(0, "every record (no groups)")]
    lines: list[tuple[int, str]] = []
    depth = 0
    if len(groups) > 1:
        lines.append((0, f"{_conj(flt.get('conjonction'), esc)} these groups:"))
        depth = 1
    for group in groups:
        conditions = group.get("conditions") if isinstance(group, Mapping) else None
        if not isinstance(conditions, list) or not conditions:
            lines.append((depth, "every record (empty group)"))
            continue
        lines.append((depth, f"{_conj(group.get('conjonction'), esc)}:"))
        lines.extend((depth + 1, describe_condition(c, esc)) for c in conditions)
    return lines


# --- text -------------------------------------------------------------------------------


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
            f"{style(SYMBOLS[k], fg=_COLORS[k])} {k}" for k in _LEGEND_ORDER if k in used
        )
        out += ["segsync will perform these actions:", f"Symbols: {legend}", ""]
        for action in changes:
            out += _text_action(action, style)
        out.append("")
    if orphans:
        out.append("No longer managed, left in place (delete them with --prune):")
        for action in orphans:
            out.append(f"    {_text_head(action)}")
            out += [f"      ! {_visible(w)}" for w in action.warnings]
        out.append("")
    out.append(style(summary_line(plan), bold=True))
    return "\n".join(out) + "\n"


def _text_head(action: Action) -> str:
    parts = [_visible(action.id)]
    if action.name:
        parts.append(_quoted(action.name))
    if action.file:
        parts.append(f"({_visible(action.file)})")
    return "  ".join(parts)


def _text_action(action: Action, style: Callable[..., str]) -> list[str]:
    symbol = style(f"{SYMBOLS[action.kind]:>3}", fg=_COLORS[action.kind], bold=True)
    head = _text_head(action)
    if action.moved_from is not None:
        head += f"  moved from {_visible(action.moved_from)}"
    lines = [f"{symbol} {head}"]
    if action.kind == "delete" and action.uuid:
        lines.append(f"      # segment {_visible(action.uuid)}")
    if action.reason:
        lines.append(f"      # {_visible(action.reason)}")
    lines += [style(f"      ! {_visible(w)}", fg="yellow") for w in action.warnings]
    lines += [
        f"      {_visible(c.field)}: {show_value(c.old)} → {show_value(c.new)}"
        for c in action.changes
    ]
    if action.preview is not None:
        lines.append(f"      # {_visible(describe_preview(action.preview))}")
    if action.kind in ("create", "recreate", "replace") and action.spec is not None:
        lines += _text_managed(action.spec.model_ref, action.spec.managed)
    return lines


def _text_managed(model: str, managed: Mapping[str, Any]) -> list[str]:
    """What a new segment will hold, as Terraform shows the attributes of a resource."""
    lines = [f"      model: {_visible(model)}"]
    flt = managed.get("filter")
    if isinstance(flt, Mapping):
        lines.append("      filter:")
        lines += [f"        {'  ' * depth}{text}" for depth, text in describe_filter(flt, _visible)]
    lines += [f"      {key}: {value}" for key, _, value in describe_options(managed, _visible)]
    return lines


def describe_options(managed: Mapping[str, Any], esc: Escape) -> list[tuple[str, str, str]]:
    """``(key, label, escaped value)`` for the sort, limit and tracking columns that are set."""
    out: list[tuple[str, str, str]] = []
    sort = managed.get("sort")
    if isinstance(sort, list) and sort:
        order = ", ".join(
            f"{esc(_scalar(s.get('columnSlug')))} {esc(_scalar(s.get('kind')))}"
            for s in sort
            if isinstance(s, Mapping)
        )
        out.append(("sort", "Sort", order))
    if "limit" in managed:
        out.append(("limit", "Limit", esc(_scalar(managed["limit"]))))
    tracking = managed.get("trackingColumnSlugs")
    if tracking:
        out.append(("trackingColumnSlugs", "Tracking columns", esc(_scalar(tracking))))
    return out


# --- json -------------------------------------------------------------------------------


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
        out["warnings"] = list(action.warnings)
    if action.preview is not None:
        out["preview"] = {
            "count": action.preview.count,
            "approximate": action.preview.approximate,
            **({"note": action.preview.note} if action.preview.note else {}),
        }
    return out


def describe_preview(preview: Preview) -> str:
    """``would match 42 records`` (``about 42`` while Cargo refreshes), or why it is unknown."""
    if preview.count is None:
        return f"record count unknown: {preview.note or 'not available'}"
    about = "about " if preview.approximate else ""
    noun = "record" if preview.count == 1 else "records"
    return f"would match {about}{preview.count} {noun}"


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The ``--format json`` document: every action but ``unchanged`` (counted in
    ``summary``), in plan order."""
    return {
        "formatVersion": FORMAT_VERSION,
        "summary": plan.summary,
        "actions": [action_to_json(a) for a in plan.actions if a.kind != "unchanged"],
    }


def dump_json(data: Any) -> str:
    """Deterministic JSON: sorted keys, 2-space indent, final newline, UTF-8 kept."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def render_json(plan: Plan, *, color: bool = False) -> str:
    return dump_json(plan_to_json(plan))


# --- github -----------------------------------------------------------------------------


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
        props.append(f"file={github_escape_property(file)}")
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
    lines = [github_annotation("notice", summary_line(plan), title="segsync plan")]
    for action in plan.actions:
        if action.kind not in ("delete", "replace"):
            continue
        label = f"{action.id} {json.dumps(action.name, ensure_ascii=False)}"
        if action.kind == "delete":
            message = f"{label} will be deleted (segment {action.uuid})"
            line = col = None
        else:
            message = f"{label} will be replaced: {action.reason}"
            line = action.spec.line if action.spec is not None else None
            col = action.spec.column if action.spec is not None else None
        if action.warnings:
            message += " (" + "; ".join(action.warnings) + ")"
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
    return "\n".join(lines) + "\n"


# --- markdown ---------------------------------------------------------------------------

# One pass each, so an escape is never escaped again (``&#96;`` must not become ``&#&#8203;96;``).
_MD_SPECIAL = re.compile(
    r"(?P<nl>\r\n|[\r\n\u2028\u2029])|(?P<ref>[@#](?=\w))|(?P<ent>[&<>])"
    r"|(?P<punct>[\\`*_{}\[\]()#+\-.!|~\"'=:$^])"
)
_HTML_SPECIAL = re.compile(
    r"(?P<nl>\r\n|[\r\n\u2028\u2029])|(?P<ref>[@#](?=\w))|(?P<ent>[&<>\"'`*_\[\]|\\~])"
)
_ZWSP: Final = "&#8203;"  # after @ or #: no @mention, no #123 link
_VALUE_CAP: Final = 400


def _md_special(match: re.Match[str]) -> str:
    char, kind = match.group(), match.lastgroup
    if kind == "nl":
        return "<br>"
    if kind == "ref":
        return ("\\#" if char == "#" else char) + _ZWSP
    if kind == "ent":
        return html.escape(char)
    return "\\" + char


def _html_special(match: re.Match[str]) -> str:
    char, kind = match.group(), match.lastgroup
    if kind == "nl":
        return " "
    if kind == "ref":
        return char + _ZWSP
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;"}.get(char) or f"&#{ord(char)};"


def md_escape(text: str) -> str:
    """User text made inert in markdown: ``<>&`` as HTML entities, markdown punctuation
    backslash-escaped, ``@mention`` / ``#123`` broken by a zero-width space, newlines as
    ``<br>``, other control characters shown as ``\\xNN``."""
    return _visible(_MD_SPECIAL.sub(_md_special, text))


def html_escape(text: str) -> str:
    """User text made inert inside an HTML line (``<summary>``), where markdown is not
    parsed and a backslash would show: every markdown-significant character as an entity,
    newlines as spaces."""
    return _visible(_HTML_SPECIAL.sub(_html_special, text))


def _cap(text: str) -> str:
    if len(text) <= _VALUE_CAP:
        return text
    return f"{text[:_VALUE_CAP]}… ({len(text) - _VALUE_CAP} more characters)"


_SECTION_ORDER: Final[tuple[ActionKind, ...]] = (
    "replace",
    "delete",
    "recreate",
    "create",
    "update",
    "moved",
    "orphan",
)
_SECTION_TITLES: Final[dict[str, str]] = {
    "replace": "Replace",
    "delete": "Delete",
    "recreate": "Recreate",
    "create": "Create",
    "update": "Update",
    "moved": "Moved",
    "orphan": "No longer managed, left in place",
}
_SECTION_NOTES: Final[dict[str, str]] = {
    "replace": "The model changed: apply deletes each segment and creates it on the new model "
    "(new UUID), only with `--allow-replace`.",
    "delete": "Their specs are gone and `--prune` was given: apply deletes them in Cargo.",
    "recreate": "Deleted outside segsync: apply creates them again (new UUID).",
    "moved": "A renamed spec file: the same segment under a new id (a state-only change, "
    "plus an update when fields changed).",
    "orphan": "Their specs are gone: segsync stops managing them and leaves them in Cargo "
    "(`--prune` deletes them).",
}


def render_markdown(plan: Plan, *, color: bool = False, limit: int = MARKDOWN_LIMIT) -> str:
    """A pull-request comment: summary line, a warning banner when anything is deleted or
    replaced, then one section per kind (destructive kinds first, so that a cut never hides
    them), each segment folded in ``<details>``. Never longer than ``limit`` characters:
    whole actions are left out and a note says how many."""
    head = [f"**{summary_line(plan)}**", ""]
    deletes, replaces = plan.count("delete"), plan.count("replace")
    if deletes or replaces:
        what = [
            f"deletes {_plural(n, 'segment')}"
            if kind == "delete"
            else f"replaces {_plural(n, 'segment')}"
            for kind, n in (("delete", deletes), ("replace", replaces))
            if n
        ]
        head += [
            "> [!WARNING]",
            f"> This plan {' and '.join(what)}. Check the details below before merging.",
            "",
        ]
    by_kind: dict[str, list[Action]] = {k: [] for k in KINDS}
    for action in plan.actions:
        by_kind[action.kind].append(action)

    text = "\n".join(head) + "\n"
    total = sum(len(by_kind[k]) for k in _SECTION_ORDER)
    shown = 0
    note_reserve = 300
    cut = False
    for kind in _SECTION_ORDER:
        actions = by_kind[kind]
        if not actions:
            continue
        section = f"### {_SECTION_TITLES[kind]} ({len(actions)})\n\n"
        if kind in _SECTION_NOTES:
            section += f"{_SECTION_NOTES[kind]}\n\n"
        for i, action in enumerate(actions):
            block = _md_action(action)
            piece = (section if i == 0 else "") + block
            if len(text) + len(piece) + note_reserve > limit:
                cut = True
                break
            text += piece
            shown += 1
        if cut:
            break
    if cut:
        left_out = total - shown
        text += (
            f"> [!NOTE]\n> {_plural(left_out, 'action')} left out to keep this comment under "
            f"{limit:,} characters. Run `segsync plan` to see the whole plan.\n"
        )
    return text


def _md_action(action: Action) -> str:
    symbol = SYMBOLS.get(action.kind, "")
    summary = (
        f"<code>{html.escape(symbol)}</code> <b>{html_escape(action.id)}</b>"
        if symbol
        else (f"<b>{html_escape(action.id)}</b>")
    )
    if action.name:
        summary += f" · {html_escape(action.name)}"
    lines = [f"<details><summary>{summary}</summary>", ""]
    facts: list[str] = []
    if action.file:
        facts.append(f"- File: {md_escape(action.file)}")
    if action.model:
        facts.append(f"- Model: {md_escape(action.model)}")
    if action.uuid:
        facts.append(f"- Segment: {md_escape(action.uuid)}")
    if action.moved_from is not None:
        facts.append(f"- Moved from: {md_escape(action.moved_from)}")
    if action.reason:
        facts.append(f"- Reason: {md_escape(action.reason)}")
    facts += [f"- **Warning**: {md_escape(w)}" for w in action.warnings]
    if action.preview is not None:
        facts.append(f"- Records: {md_escape(describe_preview(action.preview))}")
    lines += facts
    if action.changes:
        lines += ["", "| Field | Old | New |", "| --- | --- | --- |"]
        lines += [
            f"| {md_escape(c.field)} | {md_escape(_cap(show_value(c.old)))} "
            f"| {md_escape(_cap(show_value(c.new)))} |"
            for c in action.changes
        ]
    if action.spec is not None and action.kind in (
        "create",
        "recreate",
        "replace",
        "update",
        "moved",
    ):
        lines += ["", *_md_managed(action.spec.managed)]
    lines += ["", "</details>", "", ""]
    return "\n".join(lines)


def _md_value(text: str) -> str:
    return md_escape(_cap(text))


def _md_managed(managed: Mapping[str, Any]) -> list[str]:
    lines = ["Filter:", ""]
    flt = managed.get("filter")
    if isinstance(flt, Mapping):
        lines += [f"{'  ' * depth}- {text}" for depth, text in describe_filter(flt, _md_value)]
    extras = [f"- {label}: {value}" for _, label, value in describe_options(managed, _md_value)]
    if extras:
        lines += ["", *extras]
    return lines


RENDERERS: Final[dict[str, Callable[..., str]]] = {
    "text": render_text,
    "markdown": render_markdown,
    "json": render_json,
    "github": render_github,
}
