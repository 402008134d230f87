"""Checks of specs against the models' columns (segsync.columns), on the emulator's demo models.

Specs are real files loaded by ``load_specs``; the models are what the emulator serves for
``GET /storage/models/list``; live segments come from the emulator's store (its fixtures, and
segments created and removed through its API). Each rule has its exact message and path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from segsync.canonical import to_wire
from segsync.columns import ColumnProblem, check_columns, describe_columns
from segsync.emulator.data import build_catalog
from segsync.emulator.store import PLAY_SEGMENT_NAME, HttpError, Store, StoreOptions
from segsync.specs import LoadedSpec, load_specs
from segsync.types import Path as FieldPath
from segsync.types import Payload
from tests.helpers import EXAMPLES, spec_text, write_spec

STORE = Store(build_catalog("demo"), StoreOptions(list_removed=True))
#: The models as ``GET /storage/models/list`` serves them, by slug.
MODELS: dict[str, Payload] = {m["slug"]: m for m in STORE.models()}
CATALOG: dict[str, Payload] = {m["uuid"]: m for m in STORE.models()}
COMPANIES = MODELS["companies"]["uuid"]
CONTACTS = MODELS["contacts"]["uuid"]
LEGACY = MODELS["accounts_legacy"]["uuid"]
#: A spec's model as written -> its model, as model resolution gives it.
BY_REF: dict[str, Payload] = {
    "companies": MODELS["companies"], "crm.companies": MODELS["companies"],
    "contacts": MODELS["contacts"], COMPANIES: MODELS["companies"],
}
GROUP: FieldPath = ("filter", "groups", 0, "conditions")
FREQ = (
    "frequency: {operator: moreThan, value: 2}, "
    "period: {operator: lessThan, value: 30, unit: day}"
)


def _specs(tmp_path: Path, *texts: str) -> list[LoadedSpec]:
    for i, text in enumerate(texts):
        write_spec(tmp_path, f"s{i}.yaml", text)
    return load_specs(tmp_path)


def _found(
    tmp_path: Path, *conditions: str, live: dict[str, Payload] | None = None, extra: str = ""
) -> list[tuple[FieldPath, str]]:
    """(path, message) of each problem of one companies spec with ``conditions`` after the
    helper's ``country is FR`` condition (index 0)."""
    spec = _specs(tmp_path, spec_text("S", conditions=conditions, extra=extra))
    return [(p.path, p.message) for p in check_columns(spec, BY_REF, CATALOG, live)]


def _live() -> dict[str, Payload]:
    return {s["uuid"]: s for s in STORE.list_segments()}


# --- specs that fit the models ----------------------------------------------------------------


def test_every_example_fits_the_demo_models() -> None:
    specs = load_specs(EXAMPLES)
    assert len(specs) == 6
    assert check_columns(specs, BY_REF, CATALOG, _live()) == []


def test_every_column_kind_on_its_own_column_type_fits(tmp_path: Path) -> None:
    assert _found(
        tmp_path,
        "{kind: number, columnSlug: arr, operator: isNull}",
        "{kind: date, columnSlug: founded_at, operator: isNotNull}",
        "{kind: boolean, columnSlug: is_customer, operator: isTrue}",
        "{kind: array, columnSlug: tags, operator: isNull}",
        "{kind: object, columnSlug: address, operator: isNotNull}",
        "{kind: vector, columnSlug: embedding, operator: isNull}",
        "{kind: any, columnSlug: raw, operator: isNull}",
        "{kind: string, columnSlug: revenue_band, operator: isEmpty}",  # an additional column
        "{kind: objectProperty, columnSlug: address, operator: is, propertyName: city, "
        "value: Paris}",
        "{kind: array, columnSlug: tags, operator: matchConditions, conjonction: or, "
        "propertyConditions: [{kind: objectProperty, columnSlug: tags, operator: is, "
        "propertyName: label, value: b2b}]}",  # tags lists no properties: any name is taken
        extra="sort: [{columnSlug: revenue_band, kind: asc}]\ntrackingColumnSlugs: [raw]\n",
    ) == []


# --- unknown columns --------------------------------------------------------------------------


def test_unknown_column_in_a_condition(tmp_path: Path) -> None:
    assert _found(tmp_path, "{kind: string, columnSlug: contry, operator: isNull}") == [
        ((*GROUP, 1, "columnSlug"),
         "unknown column 'contry' on model 'companies' (did you mean 'country'?)"),
    ]


def test_unknown_column_without_a_close_one(tmp_path: Path) -> None:
    assert _found(tmp_path, "{kind: string, columnSlug: zzz, operator: isNull}") == [
        ((*GROUP, 1, "columnSlug"), "unknown column 'zzz' on model 'companies'"),
    ]


def test_unknown_column_in_sort(tmp_path: Path) -> None:
    extra = "sort:\n  - columnSlug: arr\n    kind: desc\n  - columnSlug: employe_count\n" \
            "    kind: asc\n"
    assert _found(tmp_path, extra=extra) == [
        (("sort", 1, "columnSlug"),
         "unknown column 'employe_count' on model 'companies' (did you mean 'employee_count'?)"),
    ]


def test_unknown_column_in_tracking_columns(tmp_path: Path) -> None:
    assert _found(tmp_path, extra="trackingColumnSlugs: [stage, ownr]\n") == [
        (("trackingColumnSlugs", 1),
         "unknown column 'ownr' on model 'companies' (did you mean 'owner'?)"),
    ]


def test_sort_and_tracking_columns_are_never_looked_up_on_a_related_model(
    tmp_path: Path,
) -> None:
    extra = "sort: [{columnSlug: lead_score, kind: desc}]\ntrackingColumnSlugs: [lead_score]\n"
    message = "unknown column 'lead_score' on model 'companies'"
    assert _found(tmp_path, extra=extra) == [
        (("sort", 0, "columnSlug"), message), (("trackingColumnSlugs", 0), message),
    ]


def test_unknown_column_in_match_conditions_is_reported_at_each_place(tmp_path: Path) -> None:
    """Property conditions repeat the parent's column (the spec requires it): each place where
    the misspelt slug is written must change, so each is reported."""
    found = _found(
        tmp_path,
        "{kind: object, columnSlug: adress, operator: matchConditions, conjonction: and, "
        "propertyConditions: [{kind: objectProperty, columnSlug: adress, operator: is, "
        "propertyName: city, value: Paris}, {kind: objectProperty, columnSlug: adress, "
        "operator: isNull, propertyName: zip}]}",
    )
    message = "unknown column 'adress' on model 'companies' (did you mean 'address'?)"
    assert found == [
        ((*GROUP, 1, "columnSlug"), message),
        ((*GROUP, 1, "propertyConditions", 0, "columnSlug"), message),
        ((*GROUP, 1, "propertyConditions", 1, "columnSlug"), message),
    ]


# --- kind against type, object properties -----------------------------------------------------


def test_kind_that_differs_from_the_column_type(tmp_path: Path) -> None:
    assert _found(tmp_path, "{kind: number, columnSlug: country, operator: is, value: 3}") == [
        ((*GROUP, 1, "kind"),
         "kind 'number' does not match column 'country' of model 'companies', which is of "
         "type 'string' (Cargo would match no records)"),
    ]


def test_object_kind_on_an_array_column(tmp_path: Path) -> None:
    assert _found(tmp_path, "{kind: object, columnSlug: tags, operator: isNull}") == [
        ((*GROUP, 1, "kind"),
         "kind 'object' does not match column 'tags' of model 'companies', which is of "
         "type 'array' (Cargo would match no records)"),
    ]


def test_unknown_property_of_an_object_column(tmp_path: Path) -> None:
    assert _found(
        tmp_path,
        "{kind: objectProperty, columnSlug: address, operator: is, propertyName: cty, "
        "value: Paris}",
    ) == [
        ((*GROUP, 1, "propertyName"),
         "column 'address' of model 'companies' has no property 'cty' (did you mean 'city'?); "
         "its properties are 'city', 'zip', 'street'"),
    ]


def test_unknown_property_inside_match_conditions(tmp_path: Path) -> None:
    assert _found(
        tmp_path,
        "{kind: object, columnSlug: address, operator: matchConditions, conjonction: and, "
        "propertyConditions: [{kind: objectProperty, columnSlug: address, operator: isNull, "
        "propertyName: city}, {kind: objectProperty, columnSlug: address, operator: is, "
        "propertyName: country, value: FR}]}",
    ) == [
        ((*GROUP, 1, "propertyConditions", 1, "propertyName"),
         "column 'address' of model 'companies' has no property 'country'; its properties "
         "are 'city', 'zip', 'street'"),
    ]


def test_object_property_on_an_array_column_only_inside_match_conditions(
    tmp_path: Path,
) -> None:
    assert _found(
        tmp_path,
        "{kind: objectProperty, columnSlug: tags, operator: is, propertyName: label, "
        "value: b2b}",
    ) == [
        ((*GROUP, 1, "kind"),
         "kind 'objectProperty' tests an object column (an array column only inside "
         "matchConditions); column 'tags' of model 'companies' is of type 'array' (Cargo "
         "would match no records)"),
    ]


def test_match_conditions_on_a_string_column(tmp_path: Path) -> None:
    assert _found(
        tmp_path,
        "{kind: object, columnSlug: industry, operator: matchConditions, conjonction: or, "
        "propertyConditions: [{kind: objectProperty, columnSlug: industry, operator: isNull, "
        "propertyName: x}]}",
    ) == [
        ((*GROUP, 1, "kind"),
         "kind 'object' does not match column 'industry' of model 'companies', which is of "
         "type 'string' (Cargo would match no records)"),
        ((*GROUP, 1, "propertyConditions", 0, "kind"),
         "kind 'objectProperty' tests an object or array column; column 'industry' of model "
         "'companies' is of type 'string' (Cargo would match no records)"),
    ]


# --- related models and occurrences -----------------------------------------------------------


def test_a_related_model_column_is_looked_up_on_the_related_model(tmp_path: Path) -> None:
    assert _found(
        tmp_path,
        f"{{kind: number, columnSlug: lead_score, relatedModelUuid: {CONTACTS}, "
        "operator: greaterThan, value: 50}",
        f"{{kind: number, columnSlug: employee_count, relatedModelUuid: {CONTACTS}, "
        "operator: greaterThan, value: 50}",
        f"{{kind: number, columnSlug: title, relatedModelUuid: {CONTACTS}, operator: isNull}}",
        f"{{kind: object, columnSlug: preferences, relatedModelUuid: {CONTACTS}, operator: "
        "matchConditions, conjonction: and, propertyConditions: [{kind: objectProperty, "
        "columnSlug: preferences, operator: is, propertyName: langage, value: fr}]}",
    ) == [
        ((*GROUP, 2, "columnSlug"), "unknown column 'employee_count' on model 'contacts'"),
        ((*GROUP, 3, "kind"),
         "kind 'number' does not match column 'title' of model 'contacts', which is of type "
         "'string' (Cargo would match no records)"),
        ((*GROUP, 4, "propertyConditions", 0, "propertyName"),
         "column 'preferences' of model 'contacts' has no property 'langage' (did you mean "
         "'language'?); its properties are 'channel', 'language'"),
    ]


def test_unknown_and_removed_related_models(tmp_path: Path) -> None:
    missing = "9a1c3e5f-0000-4000-8000-00000000abcd"
    assert _found(
        tmp_path,
        f"{{kind: number, columnSlug: nope, relatedModelUuid: {missing}, operator: isNull}}",
        f"{{kind: string, columnSlug: nope, relatedModelUuid: {LEGACY}, operator: isNull}}",
    ) == [
        ((*GROUP, 1, "relatedModelUuid"),
         f"relatedModelUuid '{missing}' is not a model of this workspace; give the uuid of the "
         "related model whose column the condition tests"),
        ((*GROUP, 2, "relatedModelUuid"),
         f"related model 'accounts_legacy' ({LEGACY}) was removed from Cargo"),
    ]


def test_occurrence_conditions_are_looked_up_on_its_related_model(tmp_path: Path) -> None:
    inner = (
        "{kind: string, columnSlug: seniority, operator: is, values: [VP]}, "
        "{kind: number, columnSlug: employee_count, operator: greaterThan, value: 10}, "
        "{kind: object, columnSlug: preferences, operator: matchConditions, conjonction: and, "
        "propertyConditions: [{kind: objectProperty, columnSlug: preferences, operator: is, "
        "propertyName: chanel, value: email}]}, "
        f"{{kind: number, columnSlug: arr, relatedModelUuid: {COMPANIES}, operator: isNull}}"
    )
    found = _found(
        tmp_path,
        f"{{kind: occurrence, relatedModelUuid: {CONTACTS}, {FREQ}, conjonction: and, "
        f"conditions: [{inner}]}}",
    )
    assert found == [
        ((*GROUP, 1, "conditions", 1, "columnSlug"),
         "unknown column 'employee_count' on model 'contacts'"),
        ((*GROUP, 1, "conditions", 2, "propertyConditions", 0, "propertyName"),
         "column 'preferences' of model 'contacts' has no property 'chanel' (did you mean "
         "'channel'?); its properties are 'channel', 'language'"),
    ]


def test_an_occurrence_on_an_unknown_model_hides_its_inner_conditions(tmp_path: Path) -> None:
    missing = "9a1c3e5f-0000-4000-8000-00000000abcd"
    assert _found(
        tmp_path,
        f"{{kind: occurrence, relatedModelUuid: {missing}, {FREQ}, conjonction: and, "
        "conditions: [{kind: string, columnSlug: nope, operator: isNull}]}",
    ) == [
        ((*GROUP, 1, "relatedModelUuid"),
         f"relatedModelUuid '{missing}' is not a model of this workspace; give the uuid of the "
         "related model whose column the condition tests"),
    ]


# --- raw segmentUuid references ---------------------------------------------------------------


def _segment(model_uuid: str, name: str) -> str:
    flt = {"conjonction": "and", "groups": []}
    return str(STORE.create({"modelUuid": model_uuid, "name": name, "filter": flt})["uuid"])


def test_raw_segment_references(tmp_path: Path) -> None:
    same = _segment(COMPANIES, "columns test: same model")
    other = _segment(CONTACTS, "columns test: contacts")
    removed = _segment(COMPANIES, "columns test: removed")
    STORE.delete(removed)
    play = build_catalog("demo").fixture_segment_uuid("play")
    missing = "9a1c3e5f-0000-4000-8000-00000000abcd"
    live = _live()
    assert live[play]["name"] == PLAY_SEGMENT_NAME
    assert live[removed]["deletedAt"] is not None
    conds = [f"{{kind: segment, operator: in, segmentUuid: {u}}}"
             for u in (same, missing, other, removed, play)]
    assert _found(tmp_path, *conds, live=live) == [
        ((*GROUP, 2, "segmentUuid"),
         f"no segment {missing} in Cargo; a segment condition must name a live segment of "
         "model 'companies'"),
        ((*GROUP, 3, "segmentUuid"),
         f"segment {other} ('columns test: contacts') is on model 'contacts', not 'companies'; "
         "a segment condition must name a segment of the same model"),
        ((*GROUP, 4, "segmentUuid"),
         f"segment {removed} ('columns test: removed') was removed from Cargo; reference a "
         "live segment or remove the condition"),
        ((*GROUP, 5, "segmentUuid"),
         f"segment {play} ('{PLAY_SEGMENT_NAME}') is owned by a play; reference a segment "
         "that segsync or a person manages"),
    ]
    assert _found(tmp_path, *conds, live=None) == []  # offline: not checked


# --- several specs, model resolution ----------------------------------------------------------


def test_problems_come_in_spec_order_then_filter_sort_tracking(tmp_path: Path) -> None:
    first = spec_text("B", model="contacts", countries=(),
                      conditions=["{kind: string, columnSlug: titel, operator: isNull}"],
                      extra="trackingColumnSlugs: [nope]\nsort: [{columnSlug: nope, kind: asc}]\n")
    second = spec_text("A", model="crm.companies", countries=("FR", "DE"),
                       conditions=["{kind: date, columnSlug: arr, operator: isNull}"])
    specs = _specs(tmp_path, first, second)
    given = [specs[1], specs[0]]  # the order given, not the order loaded
    found = check_columns(given, BY_REF, CATALOG)
    assert [(p.spec.id, p.path, p.message) for p in found] == [
        ("s1", (*GROUP, 1, "kind"),
         "kind 'date' does not match column 'arr' of model 'companies', which is of type "
         "'number' (Cargo would match no records)"),
        ("s0", (*GROUP, 0, "columnSlug"),
         "unknown column 'titel' on model 'contacts' (did you mean 'title'?)"),
        ("s0", ("sort", 0, "columnSlug"), "unknown column 'nope' on model 'contacts'"),
        ("s0", ("trackingColumnSlugs", 0), "unknown column 'nope' on model 'contacts'"),
    ]
    assert all(isinstance(p, ColumnProblem) for p in found)
    with pytest.raises(dataclasses.FrozenInstanceError):
        found[0].message = "changed"  # type: ignore[misc]


def test_a_spec_whose_model_did_not_resolve_is_left_to_model_resolution(tmp_path: Path) -> None:
    condition = "{kind: string, columnSlug: x, operator: isNull}"
    specs = _specs(tmp_path, spec_text("S", model="unknown_model", conditions=[condition]))
    assert check_columns(specs, BY_REF, CATALOG) == []


def test_a_model_that_lists_no_columns_is_not_checked(tmp_path: Path) -> None:
    specs = _specs(tmp_path, spec_text("S", conditions=["{kind: string, columnSlug: x, "
                                                        "operator: isNull}"]))
    older = {k: v for k, v in MODELS["companies"].items()
             if k not in ("columns", "additionalColumns")}
    assert check_columns(specs, {"companies": older}, CATALOG) == []


# --- agreement with the emulator's strict checks ----------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "extra"),
    [
        (["{kind: string, columnSlug: contry, operator: isNull}"], ""),
        (["{kind: number, columnSlug: country, operator: is, value: 3}"], ""),
        (["{kind: objectProperty, columnSlug: address, operator: isNull, propertyName: cty}"],
         ""),
        (["{kind: objectProperty, columnSlug: tags, operator: isNull, propertyName: x}"], ""),
        ([f"{{kind: number, columnSlug: arr, relatedModelUuid: {CONTACTS}, operator: isNull}}"],
         ""),
        ([f"{{kind: number, columnSlug: lead_score, relatedModelUuid: {CONTACTS}, "
          "operator: isNull}"], ""),
        ([f"{{kind: occurrence, relatedModelUuid: {CONTACTS}, {FREQ}, conjonction: and, "
          "conditions: [{kind: string, columnSlug: stage, operator: isNull}]}"], ""),
        ([], "sort: [{columnSlug: nope, kind: asc}]\n"),
        ([], "trackingColumnSlugs: [stage, nope]\n"),
        ([], "trackingColumnSlugs: [stage, revenue_band]\n"),
    ],
)
def test_a_spec_passes_exactly_when_the_strict_emulator_takes_it(
    tmp_path: Path, conditions: Sequence[str], extra: str
) -> None:
    spec = _specs(tmp_path, spec_text("S", conditions=conditions, extra=extra))[0]
    body: dict[str, Any] = {**to_wire(spec.managed, ref_uuids={}), "modelUuid": COMPANIES}
    try:
        Store(build_catalog("demo"), StoreOptions(fixtures=False)).create(body)
        taken = True
    except HttpError:
        taken = False
    assert taken == (check_columns([spec], BY_REF, CATALOG) == [])


# --- describe_columns ---------------------------------------------------------------------------


def test_describe_columns_lists_columns_then_additional_columns() -> None:
    rows = describe_columns(MODELS["contacts"])
    assert rows[0] == ("email", "string", "original", "")
    assert ("preferences", "object", "original", "channel, language") in rows
    assert rows[-1] == ("company_name", "string", "lookup", "")
    assert [r[0] for r in rows] == [c["slug"] for c in MODELS["contacts"]["columns"]] + [
        "company_name"
    ]


def test_describe_columns_is_lenient() -> None:
    model = {"columns": [{"slug": "a", "type": "string"}, "junk"],
             "additionalColumns": [{"slug": "b", "type": "number", "kind": "metric",
                                    "properties": ["x", "y"]}]}
    assert describe_columns(model) == [("a", "string", "original", ""),
                                       ("b", "number", "metric", "x, y")]
    assert describe_columns({}) == []
