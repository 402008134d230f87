"""The emulator's own structural check of a filter and a sort, restated from Cargo's API reference.

The emulator is an independent witness of the payloads segsync builds, so nothing here comes
from segsync's validator: the API reference is written down again as data. ``CONDITION_KINDS``
is the table of §4.3 (kind -> operator families -> required and optional keys, each with the
check of its value), ``FREQUENCY`` and ``PERIOD`` are the shapes of those objects, and ``FILTER``
and ``SORT`` are §4.1 and §4.4; their entries are the value checks of
:mod:`segsync.emulator.checks`, and a few functions here walk every level against them. What a
table cannot say is a named rule in ``RULES`` (``nodeSlug`` only with ``workflowNodeExecuted``,
property conditions on their parent's column).

It is strict on purpose (§4.2): Cargo silently accepts ``conjunction``, a top-level
``conditions`` and other mistakes, and the segment then matches nothing or everything. So key
sets are exact at every level (an unknown key is refused, with a "did you mean"), ``conjonction``
is required everywhere, and values have their documented types. Each problem is one line
``<path>: <message>``, e.g. ``filter.groups[0].conditions[1].operator: 'greaterThen' is not an
operator of kind 'number' (did you mean 'greaterThan'?)``.

Optional keys (``relatedModelUuid``, ``nodeSlug``) may be ``null``: §4.7 treats null and absent
alike. What needs the workspace (columns, their types, related models, segments) is checked in
``validate.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segsync.emulator.checks import (
    DATE,
    NAME,
    NUMBER,
    TEXT,
    UUID4,
    Check,
    Report,
    closest,
    describe,
    did_you_mean,
    list_of,
    one_of,
    shown,
)

# --------------------------------------------------------------------------- schema values

CONJONCTION = one_of("and", "or")  # spelt the French way at every level, with no default
_STRINGS = list_of(TEXT, nonempty=True)


def _values(value: Any, where: str, report: Report) -> None:
    """``values`` of a string condition: one string, or a non-empty list of strings."""
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        report(where, f"expected a string or a list of strings, got {describe(value)}")
        return
    _STRINGS(value, where, report)


VALUES: Check = _values


# --------------------------------------------------------------------------- key sets

# Unknown keys whose meaning is known: (scope, key) -> (the key it stands for, hint). Scope "*"
# is any level. The stood-for key is then not also reported missing.
KEY_HINTS: Mapping[tuple[str, str], tuple[str | None, str]] = {
    ("*", "conjunction"): (
        "conjonction",
        "did you mean 'conjonction'? Cargo accepts this spelling and then matches nothing",
    ),
    ("filter", "conditions"): (
        None,
        "conditions belong inside a group: filter.groups[].conditions; Cargo ignores them "
        "here and the segment covers the whole model",
    ),
    ("group", "groups"): (None, "groups do not nest; a group holds conditions"),
    ("segment", "segment"): (
        "segmentUuid",
        "'segment' names a segsync spec, which the API does not know; send 'segmentUuid'",
    ),
    ("*", "field"): ("columnSlug", "did you mean 'columnSlug'?"),
    ("*", "column"): ("columnSlug", "did you mean 'columnSlug'?"),
}
VALUE_KEYS = frozenset({"value", "values", "firstValue", "lastValue", "otherValue"})


def _unknown_key(
    key: str, allowed: Sequence[str], scope: str, obj: Mapping[str, Any]
) -> tuple[str, str | None]:
    """The message for an unknown key, and the allowed key it likely stands for."""
    stands_for, hint = KEY_HINTS.get((scope, key)) or KEY_HINTS.get(("*", key)) or (None, "")
    if hint and (stands_for is None or stands_for in allowed):
        return f"unknown key ({hint})", stands_for
    close = closest(key, allowed)
    if close is not None:
        return f"unknown key (did you mean '{close}'?)", close
    if key == "operator" and scope in CONDITION_KINDS:
        return f"unknown key (kind '{scope}' takes no operator)", None
    if key in VALUE_KEYS and not VALUE_KEYS.intersection(allowed):
        return f"unknown key (operator {shown(obj.get('operator'))} takes no value)", None
    return f"unknown key; expected one of {', '.join(allowed)}", None


def check_keys(
    obj: Mapping[str, Any],
    where: str,
    report: Report,
    *,
    scope: str,
    required: Mapping[str, Check],
    optional: Mapping[str, Check] | None = None,
    fixed: Sequence[str] = (),
) -> None:
    """Exact key set of ``obj``, then the value of each key.

    ``fixed`` keys are allowed and checked by the caller (``kind``, ``operator``). Unknown keys
    are refused; a required key is missing unless an unknown key was taken for it (a misspelling
    is reported once). An optional key may be null.
    """
    optional = optional or {}
    allowed = [*fixed, *required, *optional]
    taken_for: set[str] = set()
    for key in obj:
        if key not in allowed:
            message, stands_for = _unknown_key(key, allowed, scope, obj)
            if stands_for is not None:
                taken_for.add(stands_for)
            report(f"{where}.{key}", message)
    for key, check in required.items():
        if key in obj:
            check(obj[key], f"{where}.{key}", report)
        elif key not in taken_for:
            report(f"{where}.{key}", "missing required key")
    for key, check in optional.items():
        if obj.get(key) is not None:
            check(obj[key], f"{where}.{key}", report)


def shape(scope: str, required: Mapping[str, Check]) -> Check:
    """An object with exactly the ``required`` keys (filter, group, sort entry)."""

    def check(value: Any, where: str, report: Report) -> None:
        if not isinstance(value, dict):
            report(where, f"expected an object, got {describe(value)}")
            return
        check_keys(value, where, report, scope=scope, required=required)

    return check


# --------------------------------------------------------------------------- operator families


@dataclass(frozen=True)
class Family:
    """Operators that take the same keys: one row of the §4.3 table.

    ``operators`` is empty for a kind that takes no ``operator`` (sql, enrollment, occurrence).
    """

    operators: tuple[str, ...]
    required: Mapping[str, Check] = field(default_factory=dict)
    optional: Mapping[str, Check] = field(default_factory=dict)


def pick_family(
    obj: Mapping[str, Any],
    where: str,
    report: Report,
    families: Sequence[Family],
    what: str,
    elsewhere: Sequence[str] = (),
) -> Family | None:
    """The family that ``obj["operator"]`` selects; None (reported) when there is none.

    ``what`` names a valid operator in messages (``an operator of kind 'number'``);
    ``elsewhere`` lists the other kinds that have the given operator, for the hint.
    """
    operators = [op for family in families for op in family.operators]
    if not operators:
        return families[0]
    if "operator" not in obj:
        report(f"{where}.operator", f"missing required key; expected one of {', '.join(operators)}")
        return None
    op = obj["operator"]
    for family in families:
        if isinstance(op, str) and op in family.operators:
            return family
    hint = did_you_mean(op, operators)
    if not hint and elsewhere:
        owners = ", ".join(f"'{k}'" for k in elsewhere)
        hint = f" (it is an operator of kind {owners})"
    if not hint:
        hint = f"; expected one of {', '.join(operators)}"
    report(f"{where}.operator", f"{shown(op)} is not {what}{hint}")
    return None


def operated(noun: str, *families: Family) -> Check:
    """An object whose ``operator`` selects its other keys (``frequency``, ``period``)."""

    def check(value: Any, where: str, report: Report) -> None:
        if not isinstance(value, dict):
            report(where, f"expected an object, got {describe(value)}")
            return
        family = pick_family(value, where, report, families, f"a {noun} operator")
        if family is not None:
            check_keys(
                value,
                where,
                report,
                scope=noun,
                required=family.required,
                optional=family.optional,
                fixed=("operator",),
            )

    return check


# §4.3: "frequency (same shape on occurrence and enrollment)" and "period"; "day" is the only unit.
FREQUENCY = operated(
    "frequency",
    Family(("not",)),
    Family(("moreThan", "lessThan", "exactly"), {"value": NUMBER}),
)
PERIOD = operated(
    "period",
    Family(("lessThan", "moreThan", "exactly"), {"value": NUMBER, "unit": one_of("day")}),
)


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Kind:
    """The operator families of one condition kind; ``on_column``: it tests a column.

    Column-based kinds also require ``columnSlug`` and accept ``relatedModelUuid`` (§4.3).
    """

    families: tuple[Family, ...]
    on_column: bool


def on_column(*families: Family) -> Kind:
    """A kind that tests a column (``columnSlug`` required, ``relatedModelUuid`` optional)."""
    return Kind(families, on_column=True)


def standalone(*families: Family) -> Kind:
    """A kind with no column (segment, sql, enrollment, occurrence): only its own keys."""
    return Kind(families, on_column=False)


def conditions_of(kinds: Sequence[str], place: str) -> Check:
    """A list of conditions restricted to ``kinds``; ``place`` says where, for messages."""

    def item(value: Any, where: str, report: Report) -> None:
        check_condition(value, where, report, kinds=kinds, place=place)

    return list_of(item)


COLUMN_KEYS: Mapping[str, Check] = {"columnSlug": NAME}
RELATED_KEYS: Mapping[str, Check] = {"relatedModelUuid": UUID4}

NULL = ("isNull", "isNotNull")
EMPTY = ("isEmpty", "isNotEmpty")
STRING_MATCH = ("is", "isNot", "contains", "doesNotContain", "startsWith", "endsWith")
COMPARE = ("is", "isNot", "greaterThan", "lowerThan")
BETWEEN = ("between",)
# §4.3: "occurrence.conditions may hold only string, number, object, array, any, vector, date
# and boolean conditions".
OCCURRENCE_KINDS = ("string", "number", "object", "array", "any", "vector", "date", "boolean")

MATCH_CONDITIONS = Family(
    ("matchConditions",),
    {
        "conjonction": CONJONCTION,
        "propertyConditions": conditions_of(("objectProperty",), "in propertyConditions"),
    },
)

# The API reference's table of kinds and operators, row by row.
CONDITION_KINDS: Mapping[str, Kind] = {
    "string": on_column(
        Family(STRING_MATCH, {"values": VALUES}),
        Family(NULL + EMPTY),
    ),
    "number": on_column(
        Family(COMPARE, {"value": NUMBER}),
        Family(BETWEEN, {"firstValue": NUMBER, "lastValue": NUMBER}),
        Family(NULL),
    ),
    "date": on_column(
        Family(COMPARE, {"value": DATE}),
        Family(BETWEEN, {"firstValue": DATE, "lastValue": DATE}),
        Family(NULL),
    ),
    "boolean": on_column(Family(("isTrue", "isFalse", *NULL))),
    "object": on_column(Family(NULL), MATCH_CONDITIONS),
    "array": on_column(Family(NULL), MATCH_CONDITIONS),
    "vector": on_column(Family(NULL)),
    "any": on_column(Family(NULL)),
    "objectProperty": on_column(
        # Its values are strings even for greaterThan, lowerThan and between.
        Family((*STRING_MATCH, "greaterThan", "lowerThan"), {"propertyName": NAME, "value": TEXT}),
        Family(BETWEEN, {"propertyName": NAME, "value": TEXT, "otherValue": TEXT}),
        Family(NULL + EMPTY, {"propertyName": NAME}),
    ),
    "segment": standalone(Family(("in", "notIn"), {"segmentUuid": UUID4})),
    "sql": standalone(Family((), {"name": NAME, "clause": NAME})),
    "enrollment": standalone(
        Family(
            (),
            {
                "workflowUuid": UUID4,
                "activityKind": one_of("workflowEntered", "workflowNodeExecuted", "workflowLeft"),
                "frequency": FREQUENCY,
                "period": PERIOD,
            },
            {"nodeSlug": NAME},
        )
    ),
    "occurrence": standalone(
        Family(
            (),
            {
                "relatedModelUuid": UUID4,
                "frequency": FREQUENCY,
                "period": PERIOD,
                "conjonction": CONJONCTION,
                "conditions": conditions_of(OCCURRENCE_KINDS, "inside an occurrence"),
            },
        )
    ),
}
ALL_KINDS = tuple(CONDITION_KINDS)
COLUMN_KINDS = frozenset(name for name, kind in CONDITION_KINDS.items() if kind.on_column)


# --------------------------------------------------------------------------- rules beyond the table

Rule = Callable[[Mapping[str, Any], str, Report], None]
"""A check across the keys of one condition whose kind and operator are valid."""


def _node_slug_needs_node_activity(cond: Mapping[str, Any], where: str, report: Report) -> None:
    """§4.3: ``nodeSlug`` goes with activityKind ``workflowNodeExecuted``."""
    activity = cond.get("activityKind")
    if cond.get("nodeSlug") is not None and activity != "workflowNodeExecuted":
        report(
            f"{where}.nodeSlug",
            f"'nodeSlug' goes only with activityKind 'workflowNodeExecuted', not {shown(activity)}",
        )


def _property_conditions_on_parent_column(
    cond: Mapping[str, Any], where: str, report: Report
) -> None:
    """§4.3: segsync requires each property condition's columnSlug to be its parent's."""
    parent = cond.get("columnSlug")
    inner = cond.get("propertyConditions")
    if cond.get("operator") != "matchConditions" or not isinstance(parent, str):
        return
    for i, prop in enumerate(inner if isinstance(inner, list) else []):
        slug = prop.get("columnSlug") if isinstance(prop, dict) else None
        if isinstance(slug, str) and slug != parent:
            report(
                f"{where}.propertyConditions[{i}].columnSlug",
                f"'{slug}' differs from the parent's columnSlug '{parent}'; "
                "property conditions test the parent's column",
            )


RULES: Mapping[str, tuple[Rule, ...]] = {
    "enrollment": (_node_slug_needs_node_activity,),
    "object": (_property_conditions_on_parent_column,),
    "array": (_property_conditions_on_parent_column,),
}


def check_condition(
    cond: Any, where: str, report: Report, *, kinds: Sequence[str], place: str
) -> None:
    """One condition: its kind (among ``kinds``), its operator, its exact keys, the rules.

    A wrong kind or operator is reported alone: the keys to expect are then unknown.
    """
    if not isinstance(cond, dict):
        report(where, f"expected an object (a condition), got {describe(cond)}")
        return
    if "kind" not in cond:
        report(f"{where}.kind", f"missing required key; expected one of {', '.join(kinds)}")
        return
    name = cond["kind"]
    if not isinstance(name, str) or name not in kinds:
        if isinstance(name, str) and name in CONDITION_KINDS:
            message = f"kind '{name}' is not allowed {place}"
        else:
            message = f"{shown(name)} is not a condition kind{did_you_mean(name, kinds)}"
        report(f"{where}.kind", f"{message}; expected one of {', '.join(kinds)}")
        return
    kind = CONDITION_KINDS[name]
    operator = cond.get("operator")
    elsewhere = [
        other
        for other, spec in CONDITION_KINDS.items()
        if other != name and any(operator in f.operators for f in spec.families)
    ]
    family = pick_family(
        cond, where, report, kind.families, f"an operator of kind '{name}'", elsewhere
    )
    if family is None:
        return
    check_keys(
        cond,
        where,
        report,
        scope=name,
        required={**COLUMN_KEYS, **family.required} if kind.on_column else family.required,
        optional={**RELATED_KEYS, **family.optional} if kind.on_column else family.optional,
        fixed=("kind", "operator") if family.operators else ("kind",),
    )
    for rule in RULES.get(name, ()):
        rule(cond, where, report)


# --------------------------------------------------------------------------- filter and sort

GROUP = shape(
    "group", {"conjonction": CONJONCTION, "conditions": conditions_of(ALL_KINDS, "in a group")}
)
FILTER = shape("filter", {"conjonction": CONJONCTION, "groups": list_of(GROUP)})
SORT = list_of(shape("sort", {"columnSlug": NAME, "kind": one_of("asc", "desc")}))


def _run(check: Check, value: Any, where: str) -> list[str]:
    """Every problem ``check`` finds in ``value``, as ``<path>: <message>`` lines."""
    found: list[str] = []
    check(value, where, lambda at, message: found.append(f"{at}: {message}"))
    return found


def check_filter(flt: Any) -> list[str]:
    """Every structural problem of a filter as the API receives it (§4); empty when valid."""
    return _run(FILTER, flt, "filter")


def check_sort(sort: Any) -> list[str]:
    """Every structural problem of a non-null ``sort`` (§4.4); empty when valid."""
    return _run(SORT, sort, "sort")
