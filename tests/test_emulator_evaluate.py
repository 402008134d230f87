"""Filter evaluation of the emulator on small hand-written record sets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from segsync.emulator.evaluate import select, sort_records

TYPES = {
    "name": "string",
    "n": "number",
    "d": "date",
    "flag": "boolean",
    "obj": "object",
    "arr": "array",
    "vec": "vector",
}

RECORDS: list[dict[str, Any]] = [
    {"_id": "r1", "name": "Acme", "n": 10, "d": "2024-01-15", "flag": True,
     "obj": {"city": "Paris", "zip": "75001"}, "arr": [{"k": "a"}], "vec": [0.1]},
    {"_id": "r2", "name": "acme labs", "n": 20.5, "d": "2024-01-15T23:30:00.000Z", "flag": False,
     "obj": {"city": "Berlin", "zip": "10115"}, "arr": [{"k": "b"}, {"k": "a"}], "vec": None},
    {"_id": "r3", "name": "", "n": None, "d": "2023-12-31", "flag": None, "obj": None,
     "arr": [], "vec": None},
    {"_id": "r4", "name": None, "n": 30, "d": None, "flag": True, "obj": {"city": ""},
     "arr": None, "vec": [0.3]},
]  # fmt: skip


def ids(
    flt: Any,
    *,
    sort: Any = None,
    limit: Any = None,
    segments: Mapping[str, frozenset[str]] | None = None,
) -> list[str]:
    members = segments or {}
    rows = select(
        RECORDS,
        flt,
        sort,
        limit,
        column_types=TYPES,
        in_segment=lambda uuid: members.get(uuid, frozenset()),
    )
    return [str(r["_id"]) for r in rows]


def one(cond: dict[str, Any]) -> dict[str, Any]:
    return {"conjonction": "and", "groups": [{"conjonction": "and", "conditions": [cond]}]}


def s(op: str, values: Any = None) -> dict[str, Any]:
    cond: dict[str, Any] = {"kind": "string", "columnSlug": "name", "operator": op}
    if values is not None:
        cond["values"] = values
    return cond


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        (s("is", ["ACME"]), ["r1"]),
        (s("is", "acme"), ["r1"]),
        (s("is", ["acme", "acme labs"]), ["r1", "r2"]),
        (s("isNot", ["acme"]), ["r2", "r3", "r4"]),
        (s("contains", ["LAB"]), ["r2"]),
        (s("doesNotContain", ["lab"]), ["r1", "r3", "r4"]),
        (s("startsWith", ["acme"]), ["r1", "r2"]),
        (s("endsWith", ["labs", "me"]), ["r1", "r2"]),
        (s("isNull"), ["r4"]),
        (s("isNotNull"), ["r1", "r2", "r3"]),
        (s("isEmpty"), ["r3", "r4"]),
        (s("isNotEmpty"), ["r1", "r2"]),
    ],
)
def test_string_operators(cond: dict[str, Any], expected: list[str]) -> None:
    assert ids(one(cond)) == expected


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ({"operator": "is", "value": 10}, ["r1"]),
        ({"operator": "is", "value": 10.0}, ["r1"]),
        ({"operator": "isNot", "value": 10}, ["r2", "r3", "r4"]),
        ({"operator": "greaterThan", "value": 10}, ["r2", "r4"]),
        ({"operator": "lowerThan", "value": 30}, ["r1", "r2"]),
        ({"operator": "between", "firstValue": 10, "lastValue": 20.5}, ["r1", "r2"]),
        ({"operator": "isNull"}, ["r3"]),
        ({"operator": "isNotNull"}, ["r1", "r2", "r4"]),
    ],
)
def test_number_operators(cond: dict[str, Any], expected: list[str]) -> None:
    assert ids(one({"kind": "number", "columnSlug": "n", **cond})) == expected


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        # a date-only value compares days: the datetime on 2024-01-15 is that day
        ({"operator": "is", "value": "2024-01-15"}, ["r1", "r2"]),
        ({"operator": "isNot", "value": "2024-01-15"}, ["r3", "r4"]),
        ({"operator": "greaterThan", "value": "2024-01-01"}, ["r1", "r2"]),
        ({"operator": "lowerThan", "value": "2024-01-15"}, ["r3"]),
        # a datetime value compares instants (date-only records are midnight UTC)
        ({"operator": "greaterThan", "value": "2024-01-15T12:00:00Z"}, ["r2"]),
        ({"operator": "between", "firstValue": "2023-12-31", "lastValue": "2024-01-14"}, ["r3"]),
        ({"operator": "isNull"}, ["r4"]),
        ({"operator": "is", "value": "not a date"}, []),
    ],
)
def test_date_operators(cond: dict[str, Any], expected: list[str]) -> None:
    assert ids(one({"kind": "date", "columnSlug": "d", **cond})) == expected


def test_boolean_and_null_only_kinds() -> None:
    def b(op: str) -> list[str]:
        return ids(one({"kind": "boolean", "columnSlug": "flag", "operator": op}))

    assert b("isTrue") == ["r1", "r4"]
    assert b("isFalse") == ["r2"]
    assert b("isNull") == ["r3"]
    assert ids(one({"kind": "vector", "columnSlug": "vec", "operator": "isNotNull"})) == [
        "r1",
        "r4",
    ]
    assert ids(one({"kind": "object", "columnSlug": "obj", "operator": "isNull"})) == ["r3"]
    assert ids(one({"kind": "array", "columnSlug": "arr", "operator": "isNull"})) == ["r4"]


def prop(op: str, name: str = "city", column: str = "obj", **extra: Any) -> dict[str, Any]:
    cond = {"kind": "objectProperty", "columnSlug": column, "propertyName": name, "operator": op}
    return {**cond, **extra}


def test_object_property_and_match_conditions() -> None:
    assert ids(one(prop("is", value="paris"))) == ["r1"]
    assert ids(one(prop("isEmpty"))) == ["r3", "r4"]
    assert ids(one(prop("isNot", value="Paris"))) == ["r2", "r3", "r4"]
    assert ids(one(prop("greaterThan", "zip", value="50000"))) == ["r1"]
    assert ids(one(prop("between", "zip", value="10000", otherValue="20000"))) == ["r2"]
    match_object = {
        "kind": "object", "columnSlug": "obj", "operator": "matchConditions",
        "conjonction": "and", "propertyConditions": [prop("startsWith", value="Ber")],
    }  # fmt: skip
    assert ids(one(match_object)) == ["r2"]
    match_array = {
        "kind": "array", "columnSlug": "arr", "operator": "matchConditions",
        "conjonction": "or", "propertyConditions": [prop("is", "k", "arr", value="a")],
    }  # fmt: skip
    assert ids(one(match_array)) == ["r1", "r2"]


def test_groups_and_conjonctions() -> None:
    acme = s("startsWith", ["acme"])
    big = {"kind": "number", "columnSlug": "n", "operator": "greaterThan", "value": 15}
    assert ids({"conjonction": "and", "groups": []}) == ["r1", "r2", "r3", "r4"]
    assert ids({"conjonction": "or", "groups": [{"conjonction": "and", "conditions": []}]}) == [
        "r1", "r2", "r3", "r4",
    ]  # fmt: skip
    both = {"conjonction": "and", "groups": [{"conjonction": "and", "conditions": [acme, big]}]}
    assert ids(both) == ["r2"]
    either = {"conjonction": "and", "groups": [{"conjonction": "or", "conditions": [acme, big]}]}
    assert ids(either) == ["r1", "r2", "r4"]
    across = {
        "conjonction": "or",
        "groups": [
            {"conjonction": "and", "conditions": [acme]},
            {"conjonction": "and", "conditions": [big]},
        ],
    }
    assert ids(across) == ["r1", "r2", "r4"]
    across["conjonction"] = "and"
    assert ids(across) == ["r2"]


def test_cargo_silent_failures_match_nothing_or_everything() -> None:
    acme = s("startsWith", ["acme"])
    group = {"conjonction": "and", "conditions": [acme]}
    assert ids({"conjunction": "and", "groups": [group]}) == []
    misspelled = {"conjunction": "and", "conditions": [acme]}
    assert ids({"conjonction": "and", "groups": [misspelled]}) == []
    # top-level conditions are ignored: the whole model
    everything = ids({"conjonction": "and", "groups": [], "conditions": [acme]})
    assert everything == ["r1", "r2", "r3", "r4"]
    # a kind that differs from the column type, an unknown column, unevaluated kinds
    assert ids(one({"kind": "number", "columnSlug": "name", "operator": "isNull"})) == []
    assert ids(one({"kind": "string", "columnSlug": "nope", "operator": "isNull"})) == []
    assert ids(one({"kind": "sql", "name": "x", "clause": "1=1"})) == []
    assert ids(one({**s("isNull"), "relatedModelUuid": "x"})) == []


def test_segment_conditions() -> None:
    members = {"seg-a": frozenset({"r1", "r3"})}
    cond = {"kind": "segment", "operator": "in", "segmentUuid": "seg-a"}
    assert ids(one(cond), segments=members) == ["r1", "r3"]
    assert ids(one({**cond, "operator": "notIn"}), segments=members) == ["r2", "r4"]
    assert ids(one({**cond, "segmentUuid": "unknown"}), segments=members) == []


def test_sort_and_limit() -> None:
    everything = {"conjonction": "and", "groups": []}
    assert ids(everything, sort=[{"columnSlug": "n", "kind": "desc"}]) == ["r4", "r2", "r1", "r3"]
    assert ids(everything, sort=[{"columnSlug": "n", "kind": "asc"}], limit=2) == ["r1", "r2"]
    by_flag_then_n = [{"columnSlug": "flag", "kind": "desc"}, {"columnSlug": "n", "kind": "desc"}]
    assert ids(everything, sort=by_flag_then_n) == ["r4", "r1", "r2", "r3"]
    assert ids(everything, limit=3) == ["r1", "r2", "r3"]
    assert sort_records(list(RECORDS), None) == RECORDS
