"""Field-level differences between two canonical forms, for the plan (update) and drift.

deepdiff does the comparison; it is imported only when there is a difference to describe.
Conditions are paired by identity (kind, column, property, target) and sort entries by column,
so an inserted condition is one addition and a changed value one change, not a cascade of
changes down the list. Lists of plain values pair equal values. A list whose items were only
reordered is shown as one change of the whole list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final


class _Absent:
    """The value of a field that is not there (added or removed by a change)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


#: ``FieldChange.old`` of a field that is added, ``FieldChange.new`` of one that is removed.
ABSENT: Final = _Absent()


@dataclass(frozen=True)
class FieldChange:
    """One changed field: dotted path (``filter.groups[0].conditions[1].value``), old -> new."""

    field: str
    old: Any
    new: Any


#: A condition is "the same one" while these stay; any other key is a value that changed.
_IDENTITY_KEYS: Final = ("kind", "columnSlug", "propertyName", "relatedModelUuid")


def _identity(item: Any) -> tuple[Any, ...] | None:
    """What makes a condition or a sort entry "the same one" in two versions of a list."""
    if not isinstance(item, Mapping) or "kind" not in item:
        return None  # a group, or not a condition at all
    if item.get("kind") in ("asc", "desc") and set(item) <= {"columnSlug", "kind"}:
        return ("sort", item.get("columnSlug"))
    return tuple(item.get(key) for key in _IDENTITY_KEYS)


def _same_item(a: Any, b: Any, level: Any = None) -> bool:
    """deepdiff's ``iterable_compare_func``: conditions and sort entries by identity, plain
    values by equality; groups (and anything else) cannot be paired: compared by position."""
    from deepdiff.helper import CannotCompare

    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        ida, idb = _identity(a), _identity(b)
        if ida is None or idb is None:
            raise CannotCompare() from None
        return ida == idb
    return bool(a == b and type(a) is type(b))


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _show(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text = _join(text, part)
    return text


def _at(value: Any, path: Sequence[str | int]) -> Any:
    for part in path:
        value = value[part]
    return value


def _reordered(old: list[Any], new: list[Any]) -> bool:
    """True when items present in both lists (paired as deepdiff pairs them) changed order."""
    used: set[int] = set()
    order: list[int] = []
    for item in new:
        for i, candidate in enumerate(old):
            if i in used:
                continue
            try:
                same = _same_item(candidate, item)
            except Exception:
                same = candidate == item
            if same:
                used.add(i)
                order.append(i)
                break
    return order != sorted(order)


_RANK: Final = {"removed": 0, "changed": 1, "added": 2}


def field_changes(old: Any, new: Any) -> tuple[FieldChange, ...]:
    """The field-level changes from ``old`` to ``new`` (canonical forms), sorted by path;
    ``old`` None means nothing was there before."""
    if old is None:
        return (FieldChange("", ABSENT, new),)
    if old == new:
        return ()
    from deepdiff import DeepDiff

    tree = DeepDiff(
        old, new,
        iterable_compare_func=_same_item,
        ignore_numeric_type_changes=True,
        threshold_to_diff_deeper=0,
        verbose_level=2,
        view="tree",
    )
    found: list[tuple[list[str | int], str, Any, Any]] = []
    reordered: list[list[str | int]] = []
    for report, levels in tree.items():
        for level in levels:
            path: list[str | int] = level.path(output_format="list")
            if report == "iterable_item_moved":
                parent = path[:-1]
                if parent not in reordered and _reordered(_at(old, parent), _at(new, parent)):
                    reordered.append(parent)
            elif report.endswith("_added"):
                found.append((path, "added", ABSENT, level.t2))
            elif report.endswith("_removed"):
                found.append((path, "removed", level.t1, ABSENT))
            else:
                found.append((path, "changed", level.t1, level.t2))
    for parent in reordered:
        found = [f for f in found if f[0][: len(parent)] != parent]
        found.append((parent, "changed", _at(old, parent), _at(new, parent)))

    def key(item: tuple[list[str | int], str, Any, Any]) -> tuple[Any, ...]:
        parts = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in item[0])
        return (parts, _RANK[item[1]])

    return tuple(FieldChange(_show(path), a, b) for path, _, a, b in sorted(found, key=key))
