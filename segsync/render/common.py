"""What every plan format shares: the one table of action symbols, the summary line, and
filters, values and previews in words. Pure functions: same input, same text.

Summary line (``summary_line``):

- with changes: ``Plan: 3 to create, 1 to update, 0 to replace, 0 to delete, 12 unchanged.``;
  ``N to recreate`` follows ``to create`` and ``N to move`` follows ``to update`` when not
  zero, and ``N left in place`` (entries no longer managed) ends the list when not zero;
- without: ``No changes. 12 segments up to date.``, with ``; N no longer managed, left in
  place`` before the full stop when there are orphans.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from segsync.plan import ABSENT, Duplicate, Plan, Preview

#: The symbol of each kind that changes something (ASCII, fixed width 3 when right-aligned):
#: the plan's text, the pull-request comment and apply's progress lines all use it.
SYMBOLS: Final[dict[str, str]] = {
    "create": "+",
    "recreate": "+!",
    "update": "~",
    "moved": ">",
    "replace": "-/+",
    "delete": "-",
    "adopt": "=",
    "dedupe": "-",
}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_line(plan: Plan) -> str:
    """The one-line summary every format shows (see the module docstring)."""
    s = plan.summary
    if not plan.has_changes:
        orphans = f"; {s['orphan']} no longer managed, left in place" if s["orphan"] else ""
        return f"No changes. {plural(s['unchanged'], 'segment')} up to date{orphans}." + (
            f" {duplicates_line(plan)}" if plan.duplicates else ""
        )
    parts = [f"{s['create']} to create"]
    if s["adopt"]:
        parts.append(f"{s['adopt']} to adopt")
    if s["recreate"]:
        parts.append(f"{s['recreate']} to recreate")
    parts.append(f"{s['update']} to update")
    if s["moved"]:
        parts.append(f"{s['moved']} to move")
    parts += [
        f"{s['replace']} to replace",
        f"{s['delete']} to delete",
    ]
    if s["dedupe"]:
        parts.append(f"{plural(s['dedupe'], 'duplicate')} to delete")
    parts.append(f"{s['unchanged']} unchanged")
    if s["orphan"]:
        parts.append(f"{s['orphan']} left in place")
    line = "Plan: " + ", ".join(parts) + "."
    return f"{line} {duplicates_line(plan)}" if plan.duplicates else line


#: What to do about duplicates, said wherever they are listed.
DUPLICATES_HINT: Final = (
    "apply fails while they exist; `segsync apply --delete-duplicates` deletes those with the "
    "same fields"
)


def partial_line(plan: Plan) -> str:
    """``Partial plan: --target sales/* and the specs they reference (3 of 6 specs); …``."""
    shown = ", ".join(plan.targets)
    done, total = plan.covered
    return (
        f"Partial plan: --target {shown} and the specs they reference ({done} of "
        f"{plural(total, 'spec')}); the others are not compared, nothing is deleted."
    )


def duplicates_line(plan: Plan) -> str:
    """``2 duplicate segments in Cargo.`` (live, unmanaged, with a managed segment's name)."""
    return f"{plural(len(plan.duplicates), 'duplicate segment')} in Cargo."


def describe_duplicate(dup: Duplicate) -> str:
    """``<uuid> created <time>, a duplicate of <id>; same fields`` and why it stays, if so."""
    created = f"created {dup.created_at}" if dup.created_at else "creation time unknown"
    fields = "same fields" if dup.same_fields else "other fields"
    note = f"; {dup.note}" if dup.note else ""
    return f"{dup.uuid} {created}, a duplicate of {dup.of} ({fields}){note}"


_CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029"
    # invisible or direction-changing characters: shown, so a name cannot disguise itself
    r"\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def visible(text: str) -> str:
    """Control characters (newline, escape, ...) as ``\\n`` / ``\\x1b``: user text cannot move
    the cursor or colour a terminal."""
    if text.isprintable():  # every character _CONTROL matches is unprintable: nothing to do
        return text
    return _CONTROL.sub(lambda m: json.dumps(m.group())[1:-1], text)


def show_value(value: Any) -> str:
    """A field value for humans: strings quoted, lists and objects as compact JSON,
    ``(absent)`` for a field that is not there."""
    if value is ABSENT:
        return "(absent)"
    return visible(json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": ")))


def quoted(text: str) -> str:
    return visible(json.dumps(text, ensure_ascii=False))


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


def scalar(value: Any) -> str:
    """A value in words; in a list, a string holding a comma is quoted, so that one value
    ``"FR, DE"`` never reads like the two values ``FR, DE``."""
    if isinstance(value, str):
        return value
    if type(value) is int:  # what json.dumps gives, without its machinery
        return str(value)
    if isinstance(value, list):
        return ", ".join(
            json.dumps(v, ensure_ascii=False) if isinstance(v, str) and "," in v else scalar(v)
            for v in value
        )
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def plain(text: str) -> str:
    return text


#: Makes one piece of user text safe for a format (terminal, markdown, HTML).
Escape = Callable[[str], str]
_CONJ: Final[dict[str, str]] = {"and": "all of", "or": "any of"}


def _frequency(freq: Any, esc: Escape) -> str:
    if not isinstance(freq, Mapping):
        return esc(scalar(freq))
    if freq.get("operator") == "not":
        return "never"
    op = _FREQUENCY.get(str(freq.get("operator")))
    return f"{op or esc(str(freq.get('operator')))} {esc(scalar(freq.get('value')))} times"


def _period(period: Any, esc: Escape) -> str:
    if not isinstance(period, Mapping):
        return esc(scalar(period))
    op = _FREQUENCY.get(str(period.get("operator")))
    value, unit = esc(scalar(period.get("value"))), esc(scalar(period.get("unit")))
    return f"{op or esc(str(period.get('operator')))} {value} {unit}s"


def describe_condition(cond: Mapping[str, Any], esc: Escape = plain) -> str:
    """One condition in words: ``country is FR, DE``, ``employee_count > 500``,
    ``founded_at between 2020-01-01 and 2021-01-01``, ``in segment sales/icp``. ``esc`` is
    applied to every piece of user text (column, values, ids), never to the words around."""

    def v(key: str) -> str:
        return esc(scalar(cond.get(key)))

    kind = cond.get("kind")
    op_name = str(cond.get("operator", ""))
    op = _OPERATORS.get(op_name) or esc(op_name)
    col = v("columnSlug")
    related = cond.get("relatedModelUuid")
    suffix = f" (related model {v('relatedModelUuid')})" if related and kind != "occurrence" else ""
    text: str
    if kind == "segment":
        target = cond.get("segment", cond.get("segmentUuid", "?"))
        text = f"{op} {esc(scalar(target))}"
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
        text = f"{esc(scalar(kind))} {esc(scalar(rest))}"
    return text + suffix


def _describe_conditions(conditions: Any, conjonction: Any, esc: Escape) -> str:
    if not isinstance(conditions, list) or not conditions:
        return "(no conditions)"
    joiner = f" {esc(scalar(conjonction))} "
    parts = [describe_condition(c, esc) for c in conditions if isinstance(c, Mapping)]
    return "(" + joiner.join(parts) + ")"


def _conj(value: Any, esc: Escape) -> str:
    return _CONJ.get(str(value)) or esc(scalar(value))


def describe_filter(flt: Mapping[str, Any], esc: Escape = plain) -> list[tuple[int, str]]:
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


def describe_options(managed: Mapping[str, Any], esc: Escape) -> list[tuple[str, str, str]]:
    """``(key, label, escaped value)`` for the sort, limit and tracking columns that are set."""
    out: list[tuple[str, str, str]] = []
    sort = managed.get("sort")
    if isinstance(sort, list) and sort:
        order = ", ".join(
            f"{esc(scalar(s.get('columnSlug')))} {esc(scalar(s.get('kind')))}"
            for s in sort
            if isinstance(s, Mapping)
        )
        out.append(("sort", "Sort", order))
    if "limit" in managed:
        out.append(("limit", "Limit", esc(scalar(managed["limit"]))))
    tracking = managed.get("trackingColumnSlugs")
    if tracking:
        out.append(("trackingColumnSlugs", "Tracking columns", esc(scalar(tracking))))
    return out


def describe_preview(preview: Preview) -> str:
    """``would match 42 records`` (``about 42`` while Cargo refreshes), or why it is unknown."""
    if preview.count is None:
        return f"record count unknown: {preview.note or 'not available'}"
    about = "about " if preview.approximate else ""
    noun = "record" if preview.count == 1 else "records"
    return f"would match {about}{preview.count} {noun}"


