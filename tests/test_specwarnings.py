"""Warnings that never fail a run (segsync.specwarnings): exact messages and paths, on specs
loaded from real files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from segsync.errors import ValidationFailed
from segsync.specs import LoadedSpec, load_specs
from segsync.specwarnings import SpecWarning, spec_warnings
from segsync.types import Path as FieldPath
from tests.helpers import EXAMPLES, spec_text, write_spec

GROUP: FieldPath = ("filter", "groups", 0, "conditions")
FREQ = (
    "frequency: {operator: moreThan, value: 2}, "
    "period: {operator: lessThan, value: 30, unit: day}"
)


def _spec(tmp_path: Path, text: str) -> LoadedSpec:
    write_spec(tmp_path, "s.yaml", text)
    (spec,) = load_specs(tmp_path)
    return spec


def _found(spec: LoadedSpec) -> list[tuple[FieldPath, str]]:
    found = spec_warnings(spec)
    assert all(w.spec is spec for w in found)
    for w in found:  # one line, nothing raw that a terminal would act on
        assert w.message.isprintable(), w.message
    return [(w.path, w.message) for w in found]


def _values_spec(values: str) -> str:
    """A spec whose one condition has ``values:`` written exactly as given (block style)."""
    return (
        "name: S\nmodel: companies\nfilter:\n  conjonction: and\n  groups:\n"
        "    - conjonction: and\n      conditions:\n        - kind: string\n"
        "          columnSlug: country\n          operator: is\n"
        f"          values: {values}\n"
    )


def test_the_examples_give_no_warning() -> None:
    specs = load_specs(EXAMPLES)
    assert [w for s in specs for w in spec_warnings(s)] == []


# --- one string with a comma in values --------------------------------------------------------

FR_DE = (
    "values is the one string 'FR, DE', which matches only that exact text; a comma does not "
    "separate values: to match any of them, write a list: values: [FR, DE] (a value that "
    "really holds a comma can stay)"
)


def test_one_string_with_a_comma(tmp_path: Path) -> None:
    assert _found(_spec(tmp_path, _values_spec("FR, DE"))) == [((*GROUP, 0, "values"), FR_DE)]


def test_a_one_element_list_with_a_comma_warns_the_same(tmp_path: Path) -> None:
    """The canonical form cannot tell ``values: "FR, DE"`` from ``values: ["FR, DE"]``."""
    assert _found(_spec(tmp_path, _values_spec('["FR, DE"]'))) == [
        ((*GROUP, 0, "values"), FR_DE)
    ]


@pytest.mark.parametrize(
    ("values", "fix"),
    [
        ("FR,DE", "to match any of them, write a list: values: [FR, DE]"),
        ('"Head of, Chief"', "to match any of them, write a list: values: [Head of, Chief]"),
        ('"1, 2, true"', 'to match any of them, write a list: values: ["1", "2", "true"]'),
        ('"a: b, c"', 'to match any of them, write a list: values: ["a: b", c]'),
        ('"FR,"', "remove the comma if it is a typo"),
    ],
)
def test_the_list_suggested_is_valid_yaml_for_the_same_strings(
    tmp_path: Path, values: str, fix: str
) -> None:
    ((path, message),) = _found(_spec(tmp_path, _values_spec(values)))
    assert path == (*GROUP, 0, "values")
    assert f"a comma does not separate values: {fix} (a value" in message
    if "write a list" in fix:  # the suggestion loads as a list of those strings
        suggested = fix.split("values: ", 1)[1]
        listed = _spec(tmp_path / "again", _values_spec(suggested))
        values_now = listed.managed["filter"]["groups"][0]["conditions"][0]["values"]
        assert len(values_now) > 1 and all(isinstance(v, str) for v in values_now)


@pytest.mark.parametrize("values", ["[FR, DE]", "FR", '["Acme, Inc.", Other]'])
def test_lists_and_strings_without_a_comma_do_not_warn(tmp_path: Path, values: str) -> None:
    assert _found(_spec(tmp_path, _values_spec(values))) == []


def test_a_comma_inside_an_occurrence_condition(tmp_path: Path) -> None:
    spec = _spec(tmp_path, spec_text("S", conditions=[
        "{kind: occurrence, relatedModelUuid: 9a1c3e5f-0000-4000-8000-00000000abcd, "
        f"{FREQ}, conjonction: and, conditions: "
        "[{kind: string, columnSlug: seniority, operator: is, values: 'VP, CTO'}]}"
    ]))
    assert _found(spec) == [(
        (*GROUP, 1, "conditions", 0, "values"),
        "values is the one string 'VP, CTO', which matches only that exact text; a comma does "
        "not separate values: to match any of them, write a list: values: [VP, CTO] (a value "
        "that really holds a comma can stay)",
    )]


# --- names ------------------------------------------------------------------------------------


def test_leading_and_trailing_spaces(tmp_path: Path) -> None:
    """``load_specs`` rejects them, so only a spec made otherwise (the state's record of an
    older spec, an import) can carry them; the warning guards those."""
    with pytest.raises(ValidationFailed):
        _spec(tmp_path / "rejected", spec_text(" ICP "))
    loaded = _spec(tmp_path / "loaded", spec_text("ICP"))
    spec = dataclasses.replace(loaded, managed={**loaded.managed, "name": " ICP "})
    assert _found(spec) == [(
        ("name",),
        "name ' ICP ' starts or ends with white space: Cargo shows and compares names exactly, "
        "so it looks like a name it is not; remove the spaces",
    )]


def test_control_characters_are_named_never_echoed(tmp_path: Path) -> None:
    spec = _spec(tmp_path, spec_text("a\u0007b\tc"))  # JSON-quoted by the helper
    assert spec.name == "a\u0007b\tc"
    assert _found(spec) == [(
        ("name",),
        "name 'a\\u0007b\\u0009c' contains the control character(s) \\u0007, \\u0009: they "
        "are invisible or break the line where the name is shown; remove them",
    )]


def test_bidirectional_controls(tmp_path: Path) -> None:
    spec = _spec(tmp_path, spec_text("ICP \u202eUE\u202c \u2066x\u2069"))
    assert _found(spec) == [(
        ("name",),
        "name 'ICP \\u202eUE\\u202c \\u2066x\\u2069' contains the bidirectional control "
        "character(s) \\u202c, \\u202e, \\u2066, \\u2069: they make the name display in another "
        "order than it is written, which can disguise it; remove them",
    )]


def test_zero_width_characters(tmp_path: Path) -> None:
    spec = _spec(tmp_path, spec_text("\ufeffI\u200bC\u2060P"))
    assert _found(spec) == [(
        ("name",),
        "name '\\ufeffI\\u200bC\\u2060P' contains the zero-width character(s) \\u200b, "
        "\\u2060, \\ufeff: they are invisible, so the name differs from one that looks the "
        "same; remove them",
    )]


def test_a_plain_name_with_accents_and_symbols_does_not_warn(tmp_path: Path) -> None:
    name = "Entreprises — Île-de-France (≥ 50) 🚀 مرحبا"
    text = spec_text("S").replace('name: "S"', f'name: "{name}"')  # written as UTF-8
    spec = _spec(tmp_path, text)
    assert spec.name == name
    assert _found(spec) == []


# --- repeated conditions ----------------------------------------------------------------------


def test_a_condition_repeated_in_one_group(tmp_path: Path) -> None:
    repeated = "{kind: number, columnSlug: arr, operator: greaterThan, value: 500}"
    spec = _spec(tmp_path, spec_text("S", conditions=[
        repeated,
        "{kind: string, columnSlug: country, operator: is, values: FR}",  # = condition 0
        "{kind: number, columnSlug: arr, operator: greaterThan, value: 500.0}",  # = 1
        repeated,
    ]))
    def message(first: int) -> str:
        return (
            f"this condition repeats filter.groups[0].conditions[{first}] of the same group: "
            "it changes nothing (under 'and' or 'or'), and is often a copy meant to be edited; "
            "change it or delete it"
        )
    assert _found(spec) == [
        ((*GROUP, 2), message(0)), ((*GROUP, 3), message(1)), ((*GROUP, 4), message(1)),
    ]


def test_the_same_condition_in_two_groups_is_no_repeat(tmp_path: Path) -> None:
    text = (
        "name: S\nmodel: companies\nfilter:\n  conjonction: or\n  groups:\n"
        "    - conjonction: and\n      conditions:\n"
        "        - {kind: string, columnSlug: stage, operator: is, values: [lead]}\n"
        "        - {kind: string, columnSlug: stage, operator: is, values: [lead, won]}\n"
        "    - conjonction: and\n      conditions:\n"
        "        - {kind: string, columnSlug: stage, operator: is, values: [lead]}\n"
    )
    assert _found(_spec(tmp_path, text)) == []


def test_warnings_come_name_first_then_in_document_order(tmp_path: Path) -> None:
    repeated = "{kind: string, columnSlug: country, operator: is, values: 'FR, DE'}"
    spec = _spec(tmp_path, spec_text("S\u200b", countries=(), conditions=[repeated, repeated]))
    found = spec_warnings(spec)
    assert [w.path for w in found] == [
        ("name",), (*GROUP, 0, "values"), (*GROUP, 1), (*GROUP, 1, "values"),
    ]
    assert all(isinstance(w, SpecWarning) for w in found)
    with pytest.raises(dataclasses.FrozenInstanceError):
        found[0].message = "changed"  # type: ignore[misc]


def test_every_character_warned_about_is_unprintable() -> None:
    """A printable name without outer spaces is not inspected further: that is only right
    while every control, bidirectional and zero-width character is unprintable."""
    import sys
    import unicodedata

    from segsync.specwarnings import BIDI_CONTROLS, ZERO_WIDTH

    controls = {chr(c) for c in range(sys.maxunicode + 1)
                if unicodedata.category(chr(c)) == "Cc"}
    assert all(not ch.isprintable() for ch in BIDI_CONTROLS | ZERO_WIDTH | controls)


def test_a_condition_with_a_list_for_its_column_is_compared_too() -> None:
    """An applied entry of a state file is not validated like a spec: odd values in it do
    not stop the repeated-condition check."""
    from segsync.specs import LoadedSpec
    from segsync.specwarnings import spec_warnings

    odd = {"kind": "string", "columnSlug": ["a"], "operator": "is", "values": ["x"]}
    spec = LoadedSpec(
        id="odd", explicit_id=False, file="segments/odd.yaml", model="companies",
        model_uuid=None, digest="", refs=(), protect=False, file_sha256="",
        managed={"name": "Odd", "filter": {"conjonction": "and", "groups": [
            {"conjonction": "and", "conditions": [odd, dict(odd)]}]}},
    )
    [warning] = spec_warnings(spec)
    assert warning.path == ("filter", "groups", 0, "conditions", 1)
    assert "repeats filter.groups[0].conditions[0]" in warning.message
