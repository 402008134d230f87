"""The table of condition kinds in docs/specs.md says what the spec models accept.

The models of ``segsync/spec.py`` are the single source: each condition class declares its
kinds and operators as ``Literal`` annotations and its keys as model fields. From them this
test derives, for every (kind, operator), the keys a condition takes besides ``kind`` and
``operator`` (and, on a column, ``columnSlug`` and ``relatedModelUuid``) and which of them are
optional, and compares that with the table parsed from the page. The type of each value key
must be named in the row's "values" cell, and the lines under the table (which kinds test a
column; ``frequency`` and ``period``) are checked too.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from segsync import spec

PAGE = Path(__file__).resolve().parents[1] / "docs" / "specs.md"
COLUMN_KEYS = ("columnSlug", "relatedModelUuid")

Key = tuple[str, bool]  # (name, optional)
Table = dict[tuple[str, str | None], frozenset[Key]]  # (kind, operator or None) -> keys

#: How the "values" cell names the type of a value key.
TYPE_WORDS = {
    "Number": "number",
    "IsoDate": "ISO date",
    "Str": "string",
    "Values": "a string or a list of strings",
}


def _literal(cls: type[BaseModel], field: str) -> tuple[str, ...]:
    annotation = cls.model_fields[field].annotation
    assert typing.get_origin(annotation) is typing.Literal, (cls.__name__, field)
    return typing.get_args(annotation)


def _on_a_column(cls: type[BaseModel]) -> bool:
    return "columnSlug" in cls.model_fields


def _keys(cls: type[BaseModel]) -> frozenset[Key]:
    skip = {"kind", "operator", *(COLUMN_KEYS if _on_a_column(cls) else ())}
    return frozenset(
        (name, not info.is_required())
        for name, info in cls.model_fields.items()
        if name not in skip
    )


def from_models() -> Table:
    table: Table = {}
    for cls in spec.CONDITION_CLASSES.values():
        has_operator = "operator" in cls.model_fields
        operators = _literal(cls, "operator") if has_operator else (None,)
        for kind in _literal(cls, "kind"):
            for op in operators:
                assert (kind, op) not in table, f"two classes for {kind} {op}"
                table[kind, op] = _keys(cls)
    return table


def _table_rows(text: str) -> Iterator[list[str]]:
    lines = text.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("| kind | operators |"))
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            return
        yield [cell.strip() for cell in line.strip("|").split("|")]


def _parse_keys(cell: str) -> frozenset[Key]:
    """``none``; ``a``, ``b``, optional ``c``; ``a`` or ``b`` (each optional: one of them)."""
    if cell == "none":
        return frozenset()
    keys: set[Key] = set()
    for part in cell.split(", "):
        alternatives = part.split(" or ")
        for alt in alternatives:
            match = re.fullmatch(r"(optional )?`(\w+)`", alt)
            assert match, f"cannot read {alt!r} in the keys cell {cell!r}"
            keys.add((match.group(2), bool(match.group(1)) or len(alternatives) > 1))
    return frozenset(keys)


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`(\w+)`", cell)


def from_page(text: str) -> tuple[Table, dict[tuple[str, str | None], str]]:
    """The table, and each (kind, operator)'s "values" cell."""
    table: Table = {}
    values: dict[tuple[str, str | None], str] = {}
    for kinds, operators, keys, value_words in _table_rows(text):
        ops: list[str | None] = [None] if operators == "none" else list(_ticked(operators))
        assert ops, f"cannot read the operators {operators!r}"
        for kind in _ticked(kinds):
            for op in ops:
                assert (kind, op) not in table, f"the table has {kind} {op} twice"
                table[kind, op] = _parse_keys(keys)
                values[kind, op] = value_words
    return table, values


def _show(keys: frozenset[Key]) -> str:
    return ", ".join(f"{'optional ' if opt else ''}{name}" for name, opt in sorted(keys)) or "none"


def differences(models: Table, page: Table) -> list[str]:
    def pair(k: tuple[str, str | None]) -> str:
        return f"{k[0]} {k[1] or '(no operator)'}"

    out = [
        f"missing from the table: {pair(k)} ({_show(models[k])})" for k in models if k not in page
    ]
    out += [f"in the table, not in the models: {pair(k)}" for k in page if k not in models]
    out += [
        f"{pair(k)}: the table says {_show(page[k])}, the models {_show(models[k])}"
        for k in models
        if k in page and page[k] != models[k]
    ]
    return out


def test_the_table_of_condition_kinds_matches_the_models() -> None:
    page, _ = from_page(PAGE.read_text(encoding="utf-8"))
    found = differences(from_models(), page)
    assert not found, "docs/specs.md's table of condition kinds differs:\n" + "\n".join(found)


def test_differences_say_what_differs() -> None:
    models = from_models()
    page = dict(models)
    del page["number", "between"]
    page["number", "within"] = frozenset({("value", False)})
    page["segment", "in"] = frozenset({("segment", False)})
    assert differences(models, page) == [
        "missing from the table: number between (firstValue, lastValue)",
        "in the table, not in the models: number within",
        "segment in: the table says segment, the models optional segment, optional segmentUuid",
    ]


def _type_word(info: FieldInfo) -> str:
    for alias, word in TYPE_WORDS.items():
        known = FieldInfo.from_annotation(getattr(spec, alias))
        if (known.annotation, known.metadata) == (info.annotation, info.metadata):
            return word
    raise AssertionError(f"no word for the type {info.annotation} {info.metadata}")


def test_the_values_cell_names_the_type_of_each_value_key() -> None:
    _, values = from_page(PAGE.read_text(encoding="utf-8"))
    wrong: list[str] = []
    for cls in spec.CONDITION_CLASSES.values():
        value_keys = spec.VALUE_KEYS & set(cls.model_fields)
        for kind in _literal(cls, "kind"):
            for op in _literal(cls, "operator") if "operator" in cls.model_fields else (None,):
                for key in sorted(value_keys):
                    word = _type_word(cls.model_fields[key])
                    if word not in values.get((kind, op), ""):
                        wrong.append(f"{kind} {op}: {key} is {word!r}, the table does not say so")
    assert not wrong, "docs/specs.md's table of condition kinds:\n" + "\n".join(wrong)


def test_the_kinds_on_a_column_are_those_the_page_names() -> None:
    text = " ".join(PAGE.read_text(encoding="utf-8").split())
    match = re.search(r"Every kind but (.*?) tests a column: its conditions also take "
                      r"`columnSlug` and an optional `relatedModelUuid`\.", text)
    assert match, "the page says which kinds test a column"
    not_on_a_column = {
        kind
        for cls in spec.CONDITION_CLASSES.values()
        if not _on_a_column(cls)
        for kind in _literal(cls, "kind")
    }
    assert set(_ticked(match.group(1))) == not_on_a_column
    for cls in spec.CONDITION_CLASSES.values():
        if _on_a_column(cls):
            fields = cls.model_fields
            assert fields["columnSlug"].is_required(), cls.__name__
            assert not fields["relatedModelUuid"].is_required(), cls.__name__
    assert set(spec.ALL_KINDS) == {k for k, _ in from_models()}


def test_frequency_and_period_are_those_of_the_models() -> None:
    text = PAGE.read_text(encoding="utf-8")
    match = re.search(
        r"`frequency` is `\{operator: (\w+)\}` or `\{operator: ([\w|]+), value: N\}`;\s*"
        r"`period` is `\{operator: ([\w|]+), value: N, unit: (\w+)\}`",
        text,
    )
    assert match, "the page describes frequency and period"
    assert (match.group(1),) == _literal(spec.FrequencyNot, "operator")
    assert set(match.group(2).split("|")) == set(_literal(spec.FrequencyCount, "operator"))
    assert set(match.group(3).split("|")) == set(_literal(spec.Period, "operator"))
    assert (match.group(4),) == _literal(spec.Period, "unit")
    assert set(spec.FrequencyCount.model_fields) == {"operator", "value"}
    assert set(spec.Period.model_fields) == {"operator", "value", "unit"}
