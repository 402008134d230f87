"""Evaluate a segment filter on the demo records, for ``recordsCount`` and the fetch endpoint.

What is evaluated (everything else matches no record):

- ``string``: is / isNot (a ``values`` list means any-of / none-of), contains, doesNotContain,
  startsWith, endsWith, compared case-insensitively; isNull, isNotNull, isEmpty (null or ""),
  isNotEmpty. A null value matches isNot and doesNotContain.
- ``number`` and ``date``: is, isNot, greaterThan, lowerThan, between (bounds included),
  isNull, isNotNull. A date-only value compares the record's day; a datetime compares instants.
- ``boolean``: isTrue, isFalse, isNull, isNotNull. ``object``, ``array``, ``vector``, ``any``:
  isNull, isNotNull. ``object`` matchConditions tests the object; ``array`` matchConditions
  matches when one element (an object) passes. ``objectProperty`` compares the property as a
  string (numerically for greaterThan/lowerThan/between when both sides are numbers).
- ``segment`` in / notIn, through a callback that gives a segment's members.
- A filter without groups, and a group without conditions, match every record.

Never matched: ``sql``, ``enrollment``, ``occurrence``, any condition with ``relatedModelUuid``
(the demo data has no relationships), a condition whose kind differs from its column's type or
whose column is unknown (as Cargo does), and, as Cargo reportedly does, every record when a
level of the filter spells ``conjunction``. A top-level ``conditions`` key is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Any

InSegment = Callable[[str], frozenset[str]]
"""segment uuid -> ``_id`` of its member records (empty for an unknown or removed segment)."""

_COLUMN_KINDS = frozenset(
    {"string", "number", "date", "boolean", "object", "array", "vector", "any", "objectProperty"}
)


def select(
    records: Sequence[Mapping[str, Any]],
    flt: Any,
    sort: Any,
    limit: Any,
    *,
    column_types: Mapping[str, str],
    in_segment: InSegment,
) -> list[Mapping[str, Any]]:
    """The member records of a segment: matching records, sorted, capped by ``limit``."""
    if _misspelled(flt):
        return []
    rows = [r for r in records if _filter_matches(flt, r, column_types, in_segment)]
    rows = sort_records(rows, sort)
    if isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit > 0:
        rows = rows[: int(limit)]
    return rows


def _misspelled(flt: Any) -> bool:
    if not isinstance(flt, dict):
        return True
    if "conjunction" in flt and "conjonction" not in flt:
        return True
    groups = flt.get("groups", [])
    return isinstance(groups, list) and any(
        isinstance(g, dict) and "conjunction" in g and "conjonction" not in g for g in groups
    )


def _combine(conjonction: Any, results: Any) -> bool:
    return all(results) if conjonction == "and" else any(results)


def _filter_matches(
    flt: Mapping[str, Any],
    record: Mapping[str, Any],
    column_types: Mapping[str, str],
    in_segment: InSegment,
) -> bool:
    groups = flt.get("groups", [])
    if not isinstance(groups, list) or not groups:
        return True

    def group_matches(group: Any) -> bool:
        if not isinstance(group, dict):
            return False
        conditions = group.get("conditions", [])
        if not isinstance(conditions, list) or not conditions:
            return True
        return _combine(
            group.get("conjonction", "or"),
            (condition_matches(c, record, column_types, in_segment) for c in conditions),
        )

    return _combine(flt.get("conjonction", "or"), (group_matches(g) for g in groups))


def condition_matches(
    cond: Any,
    record: Mapping[str, Any],
    column_types: Mapping[str, str],
    in_segment: InSegment,
) -> bool:
    """Whether ``record`` passes one top-level condition."""
    if not isinstance(cond, dict):
        return False
    kind = cond.get("kind")
    operator = cond.get("operator")
    if kind == "segment":
        target = cond.get("segmentUuid")
        inside = isinstance(target, str) and record.get("_id") in in_segment(target)
        return inside if operator == "in" else (not inside if operator == "notIn" else False)
    if kind not in _COLUMN_KINDS or cond.get("relatedModelUuid") is not None:
        return False
    slug = cond.get("columnSlug")
    if not isinstance(slug, str) or slug not in column_types:
        return False
    column_type = column_types[slug]
    value = record.get(slug)
    if kind == "objectProperty":
        return column_type == "object" and _object_property(cond, value)
    if kind != column_type:
        return False
    if operator == "isNull":
        return value is None
    if operator == "isNotNull":
        return value is not None
    if kind == "string":
        return _string(cond, value)
    if kind == "number":
        return _number(cond, value)
    if kind == "date":
        return _date(cond, value)
    if kind == "boolean":
        return (operator == "isTrue" and value is True) or (
            operator == "isFalse" and value is False
        )
    if operator == "matchConditions" and kind in ("object", "array"):
        inner = cond.get("propertyConditions")
        if not isinstance(inner, list):
            return False
        conj = cond.get("conjonction", "or")

        def passes(obj: Any) -> bool:
            return isinstance(obj, dict) and _combine(
                conj, (_object_property(p, obj) for p in inner)
            )

        if kind == "object":
            return passes(value)
        return isinstance(value, list) and any(passes(item) for item in value)
    return False


# --------------------------------------------------------------------------- kinds


def _string(cond: Mapping[str, Any], value: Any) -> bool:
    operator = cond.get("operator")
    if operator == "isEmpty":
        return value is None or value == ""
    if operator == "isNotEmpty":
        return value is not None and value != ""
    raw = cond.get("values")
    wanted = [raw] if isinstance(raw, str) else raw
    if not isinstance(wanted, list):
        return False
    needles = [w.lower() for w in wanted if isinstance(w, str)]
    text = value.lower() if isinstance(value, str) else None
    if operator == "is":
        return text is not None and text in needles
    if operator == "isNot":
        return text is None or text not in needles
    if operator == "contains":
        return text is not None and any(n in text for n in needles)
    if operator == "doesNotContain":
        return text is None or not any(n in text for n in needles)
    if operator == "startsWith":
        return text is not None and any(text.startswith(n) for n in needles)
    if operator == "endsWith":
        return text is not None and any(text.endswith(n) for n in needles)
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(cond: Mapping[str, Any], value: Any) -> bool:
    operator = cond.get("operator")
    if operator == "between":
        first, last = cond.get("firstValue"), cond.get("lastValue")
        return (
            _is_number(value) and _is_number(first) and _is_number(last) and first <= value <= last
        )
    target = cond.get("value")
    if not _is_number(target):
        return False
    if operator == "isNot":
        return not _is_number(value) or value != target
    if not _is_number(value):
        return False
    if operator == "is":
        return bool(value == target)
    if operator == "greaterThan":
        return bool(value > target)
    if operator == "lowerThan":
        return bool(value < target)
    return False


def _parse_moment(text: Any) -> tuple[date, datetime | None] | None:
    """(day, instant) of an ISO date or datetime; instant is None for a date-only text."""
    if not isinstance(text, str):
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text), None
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.date(), moment


def _compare(record_value: Any, bound: Any) -> int | None:
    """Sign of record_value - bound, at the bound's precision (day or instant); None if unknown."""
    left, right = _parse_moment(record_value), _parse_moment(bound)
    if left is None or right is None:
        return None
    if right[1] is None:
        a: date | datetime = left[0]
        b: date | datetime = right[0]
    else:
        a = left[1] or datetime(left[0].year, left[0].month, left[0].day, tzinfo=timezone.utc)
        b = right[1]
    return (a > b) - (a < b)


def _date(cond: Mapping[str, Any], value: Any) -> bool:
    operator = cond.get("operator")
    if operator == "between":
        low, high = _compare(value, cond.get("firstValue")), _compare(value, cond.get("lastValue"))
        return low is not None and high is not None and low >= 0 and high <= 0
    if operator == "isNot" and value is None:
        return _parse_moment(cond.get("value")) is not None
    sign = _compare(value, cond.get("value"))
    if sign is None:
        return False
    return {
        "is": sign == 0,
        "isNot": sign != 0,
        "greaterThan": sign > 0,
        "lowerThan": sign < 0,
    }.get(str(operator), False)


def _as_float(text: Any) -> float | None:
    if _is_number(text):
        return float(text)
    if isinstance(text, str):
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _object_property(cond: Any, obj: Any) -> bool:
    if not isinstance(cond, dict) or cond.get("kind") != "objectProperty":
        return False
    name = cond.get("propertyName")
    prop = obj.get(name) if isinstance(obj, dict) and isinstance(name, str) else None
    operator = cond.get("operator")
    if operator == "isNull":
        return prop is None
    if operator == "isNotNull":
        return prop is not None
    if operator == "isEmpty":
        return prop is None or prop == ""
    if operator == "isNotEmpty":
        return prop is not None and prop != ""
    wanted = cond.get("value")
    if not isinstance(wanted, str):
        return False
    if prop is None:
        return operator in ("isNot", "doesNotContain")
    text = prop if isinstance(prop, str) else json.dumps(prop)
    low, needle = text.lower(), wanted.lower()
    if operator in ("greaterThan", "lowerThan", "between"):
        return _ordered(operator, text, wanted, cond.get("otherValue"))
    return {
        "is": low == needle,
        "isNot": low != needle,
        "contains": needle in low,
        "doesNotContain": needle not in low,
        "startsWith": low.startswith(needle),
        "endsWith": low.endswith(needle),
    }.get(str(operator), False)


def _ordered(operator: str, text: str, first: str, other: Any) -> bool:
    def sign(bound: Any) -> int | None:
        if not isinstance(bound, str):
            return None
        x, y = _as_float(text), _as_float(bound)
        if x is not None and y is not None:
            return (x > y) - (x < y)
        return (text > bound) - (text < bound)

    lower = sign(first)
    if lower is None:
        return False
    if operator == "greaterThan":
        return lower > 0
    if operator == "lowerThan":
        return lower < 0
    upper = sign(other)
    return upper is not None and lower >= 0 and upper <= 0


# --------------------------------------------------------------------------- sort


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value, sort_keys=True))


def sort_records(rows: list[Mapping[str, Any]], sort: Any) -> list[Mapping[str, Any]]:
    """Rows ordered by the sort entries (stable; nulls last in both directions)."""
    if not isinstance(sort, list):
        return rows
    for entry in reversed(sort):
        if not isinstance(entry, dict) or not isinstance(entry.get("columnSlug"), str):
            continue
        slug = entry["columnSlug"]
        present = [r for r in rows if r.get(slug) is not None]
        missing = [r for r in rows if r.get(slug) is None]
        present.sort(key=lambda r: _sort_key(r[slug]), reverse=entry.get("kind") == "desc")
        rows = present + missing
    return rows
