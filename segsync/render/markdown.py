"""Plan -> markdown for a pull-request comment: summary first, destructive sections first,
every segment folded in ``<details>``, user text made inert, never longer than the limit."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any, Final

from segsync.plan import KINDS, Action, ActionKind, Plan
from segsync.render.common import (
    DUPLICATES_HINT,
    SYMBOLS,
    describe_duplicate,
    describe_filter,
    describe_options,
    describe_preview,
    partial_line,
    plural,
    show_value,
    summary_line,
    visible,
)

MARKDOWN_LIMIT: Final = 60_000
_DUPLICATES_SHOWN: Final = 50

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
    return visible(_MD_SPECIAL.sub(_md_special, text))


def html_escape(text: str) -> str:
    """User text made inert inside an HTML line (``<summary>``), where markdown is not
    parsed and a backslash would show: every markdown-significant character as an entity,
    newlines as spaces."""
    return visible(_HTML_SPECIAL.sub(_html_special, text))


def _cap(text: str) -> str:
    if len(text) <= _VALUE_CAP:
        return text
    return f"{text[:_VALUE_CAP]}… ({len(text) - _VALUE_CAP} more characters)"


_SECTION_ORDER: Final[tuple[ActionKind, ...]] = (
    "replace",
    "delete",
    "dedupe",
    "recreate",
    "create",
    "adopt",
    "update",
    "moved",
    "orphan",
)
_SECTION_TITLES: Final[dict[str, str]] = {
    "replace": "Replace",
    "delete": "Delete",
    "dedupe": "Delete duplicates",
    "adopt": "Adopt",
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
    "dedupe": "Live segments with a managed segment's name and fields that segsync does not "
    "manage: apply deletes them (`--delete-duplicates`).",
    "adopt": "Already in Cargo with the same name and fields, not yet managed: apply records "
    "them, with no request.",
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
    if plan.targets:
        head += [f"> {md_escape(partial_line(plan))}", ""]
    deletes = plan.count("delete") + plan.count("dedupe")
    replaces = plan.count("replace")
    if deletes or replaces:
        what = [
            f"deletes {plural(n, 'segment')}"
            if kind == "delete"
            else f"replaces {plural(n, 'segment')}"
            for kind, n in (("delete", deletes), ("replace", replaces))
            if n
        ]
        head += [
            "> [!WARNING]",
            f"> This plan {' and '.join(what)}. Check the details below before merging.",
            "",
        ]
    if plan.duplicates:
        head += [
            f"### Duplicates in Cargo ({len(plan.duplicates)})", "",
            f"Not managed by segsync: {md_escape(DUPLICATES_HINT)}.", "",
            *(f"- {md_escape(describe_duplicate(d))}" for d in plan.duplicates[:_DUPLICATES_SHOWN]),
        ]
        if len(plan.duplicates) > _DUPLICATES_SHOWN:
            head.append(f"- and {len(plan.duplicates) - _DUPLICATES_SHOWN} more")
        head.append("")
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
            f"> [!NOTE]\n> {plural(left_out, 'action')} left out to keep this comment under "
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
    facts += [f"- **Warning**: {md_escape(w.text)}" for w in action.warnings]
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
