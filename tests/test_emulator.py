"""The emulator over real loopback HTTP: documented shapes, errors, strictness and modes."""

from __future__ import annotations

import ast
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import segsync.emulator
from segsync.emulator import validate_segment_body
from segsync.emulator.checks import is_uuid4
from segsync.emulator.data import build_catalog
from segsync.emulator.filters import check_filter, check_sort
from segsync.emulator.server import Emulator
from segsync.emulator.store import PLAY_SEGMENT_NAME, WORKFLOW_SEGMENT_NAME

# Written here, not imported: the tests check the emulator against the reference, not segsync.
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z")

SEGMENT_KEYS = {
    "uuid",
    "workspaceUuid",
    "userUuid",
    "modelUuid",
    "slug",
    "name",
    "filter",
    "sort",
    "limit",
    "trackingColumnSlugs",
    "columnSlugs",
    "recordsCount",
    "fromPlay",
    "syncedAt",
    "lastChange",
    "createdAt",
    "updatedAt",
    "deletedAt",
}
CHANGE_KEYS = {
    "uuid",
    "slug",
    "totalRecordsCount",
    "updatedRecordsCount",
    "removedRecordsCount",
    "addedRecordsCount",
    "unchangedRecordsCount",
    "createdAt",
}
MODEL_KEYS = {
    "uuid",
    "workspaceUuid",
    "datasetUuid",
    "slug",
    "name",
    "kind",
    "columns",
    "additionalColumns",
    "idColumnSlug",
    "titleColumnSlug",
    "timeColumnSlug",
    "segmentsCount",
    "createdAt",
    "updatedAt",
    "deletedAt",
}

Api = httpx.Client


def connect(emu: Emulator, token: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=emu.url,
        headers={"Authorization": f"Bearer {token or emu.token}"},
        timeout=30,
        verify=False,  # plain HTTP on loopback; skips loading CA certificates per client
    )


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    with connect(emulator) as client:
        yield client


@pytest.fixture
def empty_api(empty_emulator: Emulator) -> Iterator[httpx.Client]:
    with connect(empty_emulator) as client:
        yield client


def model_uuid(emu: Emulator, slug: str) -> str:
    return str(next(m["uuid"] for m in emu.catalog.models if m["slug"] == slug))


def flt(*conditions: dict[str, Any], conj: str = "and") -> dict[str, Any]:
    return {"conjonction": "and", "groups": [{"conjonction": conj, "conditions": list(conditions)}]}


def string_is(column: str, *values: str) -> dict[str, Any]:
    return {"kind": "string", "columnSlug": column, "operator": "is", "values": list(values)}


def number_gt(column: str, value: float) -> dict[str, Any]:
    return {"kind": "number", "columnSlug": column, "operator": "greaterThan", "value": value}


def create(api: Api, emu: Emulator, name: str = "EU", **fields: Any) -> dict[str, Any]:
    body = {"name": name, "modelUuid": model_uuid(emu, "companies"), "filter": flt(), **fields}
    response = api.post("/segmentation/segments", json=body)
    assert response.status_code == 200, response.text
    segment: dict[str, Any] = response.json()["segment"]
    return segment


def error(response: httpx.Response, status: int, reason: str | None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["errorMessage"], str)
    assert body.get("reason") == reason
    message: str = body["errorMessage"]
    return message


def companies_where(predicate: Callable[[dict[str, Any]], bool]) -> int:
    """An independent count over the demo records (not through the emulator's evaluator)."""
    records = build_catalog().records[model_uuid_of_default("companies")]
    return sum(1 for r in records if predicate(r))


def model_uuid_of_default(slug: str) -> str:
    return str(next(m["uuid"] for m in build_catalog().models if m["slug"] == slug))


# --------------------------------------------------------------------------- storage contract


def test_current_workspace(api: Api, emulator: Emulator) -> None:
    response = api.get("/workspaceManagement/workspaces/current")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    workspace = response.json()["workspace"]
    assert workspace["uuid"] == emulator.catalog.workspace_uuid
    assert UUID4.match(workspace["uuid"])
    assert workspace["name"] == "demo"


def test_datasets_list(api: Api, emulator: Emulator) -> None:
    datasets = api.get("/storage/datasets/list").json()["datasets"]
    assert [d["slug"] for d in datasets] == ["crm", "warehouse"]
    for d in datasets:
        assert {
            "uuid",
            "workspaceUuid",
            "slug",
            "kind",
            "createdAt",
            "updatedAt",
            "deletedAt",
        } <= set(d)
        assert "name" not in d
        assert d["workspaceUuid"] == emulator.catalog.workspace_uuid
        assert UUID4.match(d["uuid"])
    crm, warehouse = datasets
    assert crm["kind"] == "native" and "connectorUuid" not in crm
    assert warehouse["kind"] == "connector" and UUID4.match(warehouse["connectorUuid"])


def test_models_list_and_get(api: Api, emulator: Emulator) -> None:
    models = api.get("/storage/models/list").json()["models"]
    assert [m["slug"] for m in models] == ["companies", "contacts", "accounts_legacy"]
    datasets = {d["slug"]: d["uuid"] for d in api.get("/storage/datasets/list").json()["datasets"]}
    for model in models:
        assert set(model) >= MODEL_KEYS
        assert UUID4.match(model["uuid"])
        got = api.get(f"/storage/models/{model['uuid']}").json()["model"]
        assert got == model
    companies, contacts, legacy = models
    assert companies["datasetUuid"] == contacts["datasetUuid"] == datasets["crm"]
    assert legacy["deletedAt"] is not None and companies["deletedAt"] is None
    assert companies["segmentsCount"] == 2  # the two fixture segments
    assert (companies["idColumnSlug"], companies["titleColumnSlug"]) == ("domain", "name")
    assert companies["timeColumnSlug"] == "last_activity_at"
    columns = {c["slug"]: c for c in companies["columns"]}
    assert list(columns) == [
        "name",
        "domain",
        "country",
        "industry",
        "employee_count",
        "arr",
        "founded_at",
        "last_activity_at",
        "is_customer",
        "stage",
        "owner",
        "tags",
        "address",
        "embedding",
        "raw",
    ]
    for column in columns.values():
        assert column["kind"] == "original" and column["originalSlug"] == column["slug"]
        assert {"slug", "type", "label"} <= set(column)
    assert columns["address"]["properties"] == ["city", "zip", "street"]
    assert {c["type"] for c in columns.values()} == {
        "string",
        "number",
        "date",
        "boolean",
        "array",
        "object",
        "vector",
        "any",
    }
    assert companies["additionalColumns"] == [
        {"slug": "revenue_band", "type": "string", "label": "Revenue band", "kind": "computed"}
    ]
    contact_columns = {c["slug"]: c["type"] for c in contacts["columns"]}
    assert contact_columns["preferences"] == "object" and contact_columns["topics"] == "array"


def test_get_model_errors(api: Api) -> None:
    unknown = api.get("/storage/models/8f0e3a52-5d2b-4c8e-9f1a-2b3c4d5e6f70")
    assert "8f0e3a52" in error(unknown, 404, "modelNotFound")
    error(api.get("/storage/models/not-a-uuid"), 400, None)


def test_columns_list_and_exists(api: Api, emulator: Emulator) -> None:
    companies = model_uuid(emulator, "companies")
    columns = api.get("/storage/columns/list", params={"modelUuid": companies}).json()
    assert columns == {
        "columns": [c["slug"] for c in emulator.catalog.models[0]["columns"]] + ["revenue_band"]
    }
    error(api.get("/storage/columns/list"), 400, None)
    unknown = api.get("/storage/columns/list", params={"modelUuid": str(UUID4_EXAMPLE)})
    error(unknown, 404, "modelNotFound")

    def exists(path: str, **params: str) -> Any:
        response = api.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()["exists"]

    assert exists("/storage/columns/existsBySlug", slug="arr", modelUuid=companies) is True
    assert exists("/storage/columns/existsBySlug", slug="revenue_band", modelUuid=companies)
    assert exists("/storage/columns/existsBySlug", slug="email", modelUuid=companies) is False
    crm = emulator.catalog.datasets[0]["uuid"]
    warehouse = emulator.catalog.datasets[1]["uuid"]
    assert exists("/storage/models/existsBySlug", slug="companies", datasetUuid=crm) is True
    assert exists("/storage/models/existsBySlug", slug="companies", datasetUuid=warehouse) is False
    assert (
        exists("/storage/models/existsBySlug", slug="accounts_legacy", datasetUuid=warehouse)
        is False
    )
    error(api.get("/storage/models/existsBySlug", params={"slug": "companies"}), 400, None)
    assert api.get("/storage/relationships/list").json() == {"relationships": []}


UUID4_EXAMPLE = "8f0e3a52-5d2b-4c8e-9f1a-2b3c4d5e6f70"


# --------------------------------------------------------------------------- segment contract


def test_create_response_has_every_documented_field(
    empty_api: Api, empty_emulator: Emulator
) -> None:
    segment = create(
        empty_api, empty_emulator, "Enterprise EU!", filter=flt(string_is("country", "FR"))
    )
    assert set(segment) == SEGMENT_KEYS
    assert UUID4.match(segment["uuid"])
    assert segment["workspaceUuid"] == empty_emulator.catalog.workspace_uuid
    assert UUID4.match(segment["userUuid"])
    assert segment["modelUuid"] == model_uuid(empty_emulator, "companies")
    assert segment["name"] == "Enterprise EU!"
    assert segment["slug"] == "enterprise_eu"
    assert segment["filter"] == flt(string_is("country", "FR"))
    assert segment["recordsCount"] == 0  # computed asynchronously, as Cargo does
    assert segment["fromPlay"] is False
    for key in (
        "sort",
        "limit",
        "trackingColumnSlugs",
        "columnSlugs",
        "syncedAt",
        "lastChange",
        "deletedAt",
    ):
        assert segment[key] is None, key
    assert TIMESTAMP.match(segment["createdAt"])
    assert segment["updatedAt"] == segment["createdAt"]


def test_slugs_are_derived_and_unique(empty_api: Api, empty_emulator: Emulator) -> None:
    slugs = [
        create(empty_api, empty_emulator, name)["slug"]
        for name in ("Big EU", "big-eu", "Ünï 😀", "😀!")
    ]
    assert slugs == ["big_eu", "big_eu_2", "n", "segment"]
    for slug in slugs:
        assert re.fullmatch(r"[a-zA-Z0-9_]+", slug)


def test_optional_fields_are_stored(empty_api: Api, empty_emulator: Emulator) -> None:
    fields: dict[str, Any] = {
        "sort": [{"columnSlug": "arr", "kind": "desc"}],
        "limit": 5,
        "trackingColumnSlugs": ["stage"],
        "columnSlugs": ["name", "domain"],
    }
    segment = create(empty_api, empty_emulator, **fields)
    assert {k: segment[k] for k in fields} == fields
    got = empty_api.get(f"/segmentation/segments/{segment['uuid']}").json()["segment"]
    assert {k: got[k] for k in fields} == fields
    assert got["recordsCount"] == 5  # the limit caps the membership


def test_get_computes_records_count(empty_api: Api, empty_emulator: Emulator) -> None:
    segment = create(
        empty_api,
        empty_emulator,
        filter=flt(string_is("country", "FR", "DE"), number_gt("employee_count", 100)),
    )
    got = empty_api.get(f"/segmentation/segments/{segment['uuid']}").json()["segment"]
    expected = companies_where(
        lambda r: r["country"] in ("FR", "DE") and (r["employee_count"] or 0) > 100
    )
    assert 0 < expected < 300
    assert got["recordsCount"] == expected
    assert set(got) == SEGMENT_KEYS
    assert got["syncedAt"] is not None and TIMESTAMP.match(got["syncedAt"])
    listed = empty_api.get("/segmentation/segments/list").json()["segments"]
    assert [s["recordsCount"] for s in listed] == [expected]


def test_list_filters_by_model(api: Api, emulator: Emulator) -> None:
    contacts = model_uuid(emulator, "contacts")
    body = {"name": "Subscribers", "modelUuid": contacts, "filter": flt()}
    created = api.post("/segmentation/segments", json=body).json()["segment"]
    every = api.get("/segmentation/segments/list").json()["segments"]
    assert len(every) == 3
    for segment in every:
        assert set(segment) == SEGMENT_KEYS
    only = api.get("/segmentation/segments/list", params={"modelUuid": contacts}).json()
    assert only == {
        "segments": [{**created, "recordsCount": 400, "syncedAt": created["updatedAt"]}]
    }
    other = api.get("/segmentation/segments/list", params={"modelUuid": UUID4_EXAMPLE}).json()
    assert other == {"segments": []}
    error(api.get("/segmentation/segments/list", params={"modelUuid": "x"}), 400, None)


def test_fixture_segments(api: Api, emulator: Emulator) -> None:
    segments = {s["name"]: s for s in api.get("/segmentation/segments/list").json()["segments"]}
    assert set(segments) == {PLAY_SEGMENT_NAME, WORKFLOW_SEGMENT_NAME}
    play, linked = segments[PLAY_SEGMENT_NAME], segments[WORKFLOW_SEGMENT_NAME]
    assert play["fromPlay"] is True and linked["fromPlay"] is False
    assert play["uuid"] == emulator.catalog.fixture_segment_uuid("play")
    assert linked["uuid"] == emulator.catalog.fixture_segment_uuid("workflow")
    for segment in (play, linked):
        assert set(segment["lastChange"]) == CHANGE_KEYS
        assert segment["lastChange"]["totalRecordsCount"] == segment["recordsCount"] > 0
        update = api.put(f"/segmentation/segments/{segment['uuid']}", json={"name": "x"})
        error(update, 409, "segmentLinkedToWorkflow")
        delete = api.request("DELETE", f"/segmentation/segments/{segment['uuid']}", json={})
        error(delete, 409, "segmentLinkedToWorkflow")
    assert play["recordsCount"] == companies_where(lambda r: r["stage"] == "opportunity")
    changes = api.get("/segmentation/changes/list", params={"segmentUuid": play["uuid"]}).json()
    assert changes["changes"][0]["segmentUuid"] == play["uuid"]


def test_no_fixtures_means_empty_workspace(empty_api: Api) -> None:
    assert empty_api.get("/segmentation/segments/list").json() == {"segments": []}


def test_linking_a_segment_to_a_workflow(empty_api: Api, empty_emulator: Emulator) -> None:
    segment = create(empty_api, empty_emulator)
    empty_emulator.store.set_linked_to_workflow(segment["uuid"])
    update = empty_api.put(f"/segmentation/segments/{segment['uuid']}", json={"limit": 3})
    error(update, 409, "segmentLinkedToWorkflow")
    empty_emulator.store.set_linked_to_workflow(segment["uuid"], False)
    assert (
        empty_api.put(f"/segmentation/segments/{segment['uuid']}", json={"limit": 3}).json()[
            "segment"
        ]["limit"]
        == 3
    )


# --------------------------------------------------------------------------- update


def test_update_is_partial_and_null_clears(empty_api: Api, empty_emulator: Emulator) -> None:
    segment = create(
        empty_api,
        empty_emulator,
        filter=flt(string_is("country", "FR")),
        sort=[{"columnSlug": "arr", "kind": "desc"}],
        limit=10,
        trackingColumnSlugs=["stage"],
        columnSlugs=["name"],
    )
    path = f"/segmentation/segments/{segment['uuid']}"
    renamed = empty_api.put(path, json={"name": "Renamed"}).json()["segment"]
    assert renamed["name"] == "Renamed"
    assert renamed["filter"] == segment["filter"] and renamed["limit"] == 10
    assert renamed["slug"] == segment["slug"]  # the slug stays
    assert renamed["createdAt"] == segment["createdAt"]
    assert renamed["updatedAt"] >= segment["updatedAt"]
    cleared = empty_api.put(
        path, json={"sort": None, "limit": None, "trackingColumnSlugs": None, "columnSlugs": None}
    ).json()["segment"]
    assert [cleared[k] for k in ("sort", "limit", "trackingColumnSlugs", "columnSlugs")] == [
        None
    ] * 4
    assert cleared["name"] == "Renamed"
    new_filter = flt(string_is("country", "DE"))
    changed = empty_api.put(path, json={"filter": new_filter}).json()["segment"]
    assert changed["filter"] == new_filter
    assert changed["recordsCount"] == companies_where(lambda r: r["country"] == "DE")
    assert empty_api.get(path).json()["segment"] == changed


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": None}, "name: cannot be null"),
        ({"filter": None}, "filter: cannot be null"),
        ({"name": ""}, "name: must be a non-empty string"),
        ({"modelUuid": UUID4_EXAMPLE}, "modelUuid: a segment's model cannot be changed"),
        ({"slug": "mine"}, "slug: read-only"),
        ({"recordsCount": 3}, "recordsCount: read-only"),
        ({"nmae": "x"}, "nmae: unknown key (did you mean 'name'?)"),
        ({"limit": 0}, "limit: expected a positive integer"),
        (
            {"trackingColumnSlugs": ["stge"]},
            "unknown column 'stge' on model 'companies' (did you mean 'stage'?)",
        ),
        (
            {"filter": flt(number_gt("country", 3))},
            "kind: 'number' does not match column 'country'",
        ),
    ],
)
def test_update_rejects(
    empty_api: Api, empty_emulator: Emulator, body: dict[str, Any], fragment: str
) -> None:
    segment = create(empty_api, empty_emulator)
    response = empty_api.put(f"/segmentation/segments/{segment['uuid']}", json=body)
    assert fragment in error(response, 400, "invalidFilter")
    unchanged = empty_api.get(f"/segmentation/segments/{segment['uuid']}").json()["segment"]
    assert unchanged["updatedAt"] == segment["updatedAt"]


def test_update_unknown_or_removed_is_not_found(empty_api: Api, empty_emulator: Emulator) -> None:
    error(empty_api.put(f"/segmentation/segments/{UUID4_EXAMPLE}", json={}), 404, "segmentNotFound")
    segment = create(empty_api, empty_emulator)
    empty_api.request("DELETE", f"/segmentation/segments/{segment['uuid']}", json={})
    response = empty_api.put(f"/segmentation/segments/{segment['uuid']}", json={"name": "x"})
    error(response, 404, "segmentNotFound")


# --------------------------------------------------------------------------- delete


def test_delete_is_soft(empty_api: Api, empty_emulator: Emulator) -> None:
    keep = create(empty_api, empty_emulator, "keep")
    gone = create(empty_api, empty_emulator, "gone")
    path = f"/segmentation/segments/{gone['uuid']}"
    response = empty_api.request("DELETE", path, json={})
    assert response.status_code == 200 and response.json() == {}
    assert [s["uuid"] for s in empty_api.get("/segmentation/segments/list").json()["segments"]] == [
        keep["uuid"]
    ]
    error(empty_api.get(path), 404, "segmentNotFound")
    error(empty_api.request("DELETE", path, json={}), 409, "segmentAlreadyRemoved")
    # a delete without a body is accepted too
    assert (
        empty_api.request("DELETE", f"/segmentation/segments/{keep['uuid']}", json={}).json() == {}
    )
    error(
        empty_api.request("DELETE", f"/segmentation/segments/{UUID4_EXAMPLE}", json={}),
        404,
        "segmentNotFound",
    )
    removed = {s["uuid"]: s for s in empty_emulator.store.raw_segments()}
    assert TIMESTAMP.match(removed[gone["uuid"]]["deletedAt"])


def test_list_removed_switch(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(fixtures=False, list_removed=True)
    with connect(emu) as api:
        segment = create(api, emu)
        api.request("DELETE", f"/segmentation/segments/{segment['uuid']}", json={})
        listed = api.get("/segmentation/segments/list").json()["segments"]
        assert [s["uuid"] for s in listed] == [segment["uuid"]]
        assert listed[0]["deletedAt"] is not None and listed[0]["recordsCount"] == 0
        got = api.get(f"/segmentation/segments/{segment['uuid']}").json()["segment"]
        assert got["deletedAt"] == listed[0]["deletedAt"]
        error(
            api.request("DELETE", f"/segmentation/segments/{segment['uuid']}", json={}),
            409,
            "segmentAlreadyRemoved",
        )


# --------------------------------------------------------------------------- fetch


def test_fetch_shape_count_and_paging(api: Api, emulator: Emulator) -> None:
    companies = model_uuid(emulator, "companies")
    body = {"modelUuid": companies, "filter": flt(string_is("country", "US"))}
    expected = companies_where(lambda r: r["country"] == "US")
    first = api.post("/segmentation/segments/fetch", json={**body, "fetchingLimit": 3}).json()
    assert set(first) == {"records", "count", "columns", "isRefreshing"}
    assert first["count"] == expected and first["isRefreshing"] is False
    assert len(first["records"]) == 3
    assert all(r["country"] == "US" and r["_id"] for r in first["records"])
    assert first["columns"][0] == {
        "slug": "name",
        "type": "string",
        "label": "Name",
        "modelUuid": companies,
    }
    assert [c["slug"] for c in first["columns"]][-1] == "revenue_band"
    for column in first["columns"]:
        assert set(column) == {"slug", "type", "label", "modelUuid"}
    page = {"fetchingLimit": 3, "fetchingOffset": 2}
    second = api.post("/segmentation/segments/fetch", json={**body, **page}).json()
    assert second["records"][0] == first["records"][2]
    capped = api.post("/segmentation/segments/fetch", json={**body, "limit": 4}).json()
    assert capped["count"] == 4
    ordered = api.post(
        "/segmentation/segments/fetch",
        json={
            **body,
            "sort": [{"columnSlug": "employee_count", "kind": "desc"}],
            "fetchingLimit": 5,
        },
    ).json()["records"]
    counts = [r["employee_count"] for r in ordered]
    assert counts == sorted(counts, reverse=True)
    everything = api.post(
        "/segmentation/segments/fetch", json={"modelUuid": companies, "filter": flt()}
    )
    assert everything.json()["count"] == 300


def test_fetch_rejects(api: Api, emulator: Emulator) -> None:
    companies = model_uuid(emulator, "companies")
    bad_filter = {"modelUuid": companies, "filter": flt(string_is("contry", "US"))}
    message = error(api.post("/segmentation/segments/fetch", json=bad_filter), 400, "invalidFilter")
    assert "did you mean 'country'" in message
    no_model = {"modelUuid": UUID4_EXAMPLE, "filter": flt()}
    error(api.post("/segmentation/segments/fetch", json=no_model), 400, "modelNotFound")
    paging = {"modelUuid": companies, "filter": flt(), "fetchingOffset": -1, "sync": "yes"}
    message = error(api.post("/segmentation/segments/fetch", json=paging), 400, "invalidFilter")
    assert "fetchingOffset" in message and "sync: expected a boolean" in message


# --------------------------------------------------------------------------- create validation


COMPANIES = model_uuid_of_default("companies")
CONTACTS = model_uuid_of_default("contacts")


def prop(column: str, name: str, **extra: Any) -> dict[str, Any]:
    base = {"kind": "objectProperty", "columnSlug": column, "propertyName": name}
    return {**base, "operator": "is", "value": "x", **extra}


INVALID_CREATE: list[tuple[str, Any, str]] = [
    ("not an object", [1], "body: expected a JSON object"),
    ("missing name", {"modelUuid": COMPANIES, "filter": flt()}, "name: missing required key"),
    (
        "blank name",
        {"name": "  ", "modelUuid": COMPANIES, "filter": flt()},
        "name: must be a non-empty string",
    ),
    ("missing filter", {"name": "x", "modelUuid": COMPANIES}, "filter: missing required key"),
    ("missing model", {"name": "x", "filter": flt()}, "modelUuid: missing required key"),
    (
        "model not v4",
        {"name": "x", "modelUuid": "abc", "filter": flt()},
        "expected a version-4 UUID",
    ),
    (
        "unknown key",
        {"name": "x", "modelUuid": COMPANIES, "filter": flt(), "slug": "s"},
        "slug: read-only",
    ),
    (
        "typo key",
        {"name": "x", "modelUuid": COMPANIES, "filter": flt(), "limt": 3},
        "limt: unknown key (did you mean 'limit'?)",
    ),
    (
        "null sort",
        {"name": "x", "modelUuid": COMPANIES, "filter": flt(), "sort": None},
        "sort: null is accepted only on update",
    ),
    (
        "limit float",
        {"name": "x", "modelUuid": COMPANIES, "filter": flt(), "limit": 2.5},
        "limit: expected a positive integer",
    ),
    (
        "limit bool",
        {"name": "x", "modelUuid": COMPANIES, "filter": flt(), "limit": True},
        "limit: expected a positive integer",
    ),
    (
        "sort column",
        {
            "name": "x",
            "modelUuid": COMPANIES,
            "filter": flt(),
            "sort": [{"columnSlug": "email", "kind": "asc"}],
        },
        "sort[0].columnSlug: unknown column 'email'",
    ),
    (
        "sort kind",
        {
            "name": "x",
            "modelUuid": COMPANIES,
            "filter": flt(),
            "sort": [{"columnSlug": "arr", "kind": "up", "dir": 1}],
        },
        "sort[0].dir: unknown key",
    ),
    (
        "tracking",
        {"name": "x", "modelUuid": COMPANIES, "filter": flt(), "trackingColumnSlugs": "stage"},
        "trackingColumnSlugs: expected a list",
    ),
    (
        "columnSlugs",
        {"name": "x", "modelUuid": COMPANIES, "filter": flt(), "columnSlugs": ["nope"]},
        "columnSlugs[0]: unknown column 'nope'",
    ),
]
INVALID_FILTERS: list[tuple[str, Any, str]] = [
    ("not an object", "everything", "filter: expected an object, got the string 'everything'"),
    (
        "conjunction",
        {"conjunction": "and", "groups": []},
        "filter.conjunction: unknown key (did you mean 'conjonction'?",
    ),
    ("conditions beside groups", {**flt(), "conditions": []}, "filter.conditions"),
    (
        "operator typo",
        flt({**number_gt("arr", 1), "operator": "greaterThen"}),
        "did you mean 'greaterThan'",
    ),
    (
        "unknown column",
        flt(string_is("contry", "US")),
        "unknown column 'contry' on model 'companies' (did you mean 'country'?)",
    ),
    (
        "kind mismatch",
        flt(string_is("employee_count", "3")),
        "'string' does not match column 'employee_count'",
    ),
    (
        "objectProperty on array",
        flt(prop("tags", "x")),
        "column 'tags' of model 'companies' is of type 'array'",
    ),
    ("objectProperty on string", flt(prop("name", "x")), "is of type 'string'"),
    (
        "unknown property",
        flt(prop("address", "country")),
        "column 'address' has no property 'country'",
    ),
    (
        "match property",
        flt(
            {
                "kind": "object",
                "columnSlug": "address",
                "operator": "matchConditions",
                "conjonction": "and",
                "propertyConditions": [prop("address", "cty")],
            }
        ),
        "propertyConditions[0].propertyName: column 'address' has no property 'cty' "
        "(did you mean 'city'?)",
    ),
    (
        "unknown segment",
        flt({"kind": "segment", "operator": "in", "segmentUuid": UUID4_EXAMPLE}),
        f"no live segment '{UUID4_EXAMPLE}'",
    ),
    (
        "related model",
        flt({**string_is("email", "a"), "relatedModelUuid": UUID4_EXAMPLE}),
        "relatedModelUuid: no model",
    ),
    (
        "related column",
        flt({**string_is("country", "a"), "columnSlug": "domain_x", "relatedModelUuid": CONTACTS}),
        "unknown column 'domain_x' on model 'contacts'",
    ),
    (
        "date value",
        flt({"kind": "date", "columnSlug": "founded_at", "operator": "is", "value": "yesterday"}),
        "not an ISO-8601 date",
    ),
    (
        "value key",
        flt({"kind": "string", "columnSlug": "name", "operator": "is", "value": "x"}),
        "filter.groups[0].conditions[0]",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "fragment"), INVALID_CREATE, ids=[c[0] for c in INVALID_CREATE]
)
def test_create_rejects_body(empty_api: Api, case: str, body: Any, fragment: str) -> None:
    message = error(empty_api.post("/segmentation/segments", json=body), 400, "invalidFilter")
    assert fragment in message
    assert empty_api.get("/segmentation/segments/list").json() == {"segments": []}


@pytest.mark.parametrize(
    ("case", "filter_", "fragment"), INVALID_FILTERS, ids=[c[0] for c in INVALID_FILTERS]
)
def test_create_rejects_filter(empty_api: Api, case: str, filter_: Any, fragment: str) -> None:
    body = {"name": "x", "modelUuid": COMPANIES, "filter": filter_}
    message = error(empty_api.post("/segmentation/segments", json=body), 400, "invalidFilter")
    assert fragment in message
    assert validate_segment_body(body, segments={})  # the helper agrees
    assert empty_api.get("/segmentation/segments/list").json() == {"segments": []}


def test_every_problem_is_reported(empty_api: Api) -> None:
    body = {
        "name": "",
        "modelUuid": COMPANIES,
        "filter": flt(string_is("contry", "US"), number_gt("name", 1)),
        "limit": -1,
    }
    message = error(empty_api.post("/segmentation/segments", json=body), 400, "invalidFilter")
    assert message.count("; ") == 3
    assert validate_segment_body(body) == message.split("; ")


def test_unknown_or_removed_model_is_model_not_found(
    empty_api: Api, empty_emulator: Emulator
) -> None:
    body = {"name": "x", "modelUuid": UUID4_EXAMPLE, "filter": flt()}
    message = error(empty_api.post("/segmentation/segments", json=body), 400, "modelNotFound")
    assert UUID4_EXAMPLE in message
    legacy = model_uuid(empty_emulator, "accounts_legacy")
    body = {"name": "x", "modelUuid": legacy, "filter": flt()}
    error(empty_api.post("/segmentation/segments", json=body), 400, "modelNotFound")


def test_valid_conditions_of_every_kind_are_accepted(empty_api: Api) -> None:
    conditions = [
        string_is("country", "FR"),
        {"kind": "string", "columnSlug": "industry", "operator": "isEmpty"},
        {"kind": "string", "columnSlug": "revenue_band", "operator": "is", "values": ">10M"},
        {
            "kind": "number",
            "columnSlug": "arr",
            "operator": "between",
            "firstValue": 1,
            "lastValue": 2,
        },
        {
            "kind": "date",
            "columnSlug": "founded_at",
            "operator": "greaterThan",
            "value": "2020-01-01T00:00:00Z",
        },
        {"kind": "boolean", "columnSlug": "is_customer", "operator": "isTrue"},
        {"kind": "array", "columnSlug": "tags", "operator": "isNotNull"},
        {"kind": "vector", "columnSlug": "embedding", "operator": "isNull"},
        {"kind": "any", "columnSlug": "raw", "operator": "isNull"},
        prop("address", "city", operator="isNotEmpty", value=None),
        {
            "kind": "array",
            "columnSlug": "tags",
            "operator": "matchConditions",
            "conjonction": "or",
            "propertyConditions": [prop("tags", "anything")],
        },
        {
            "kind": "string",
            "columnSlug": "email",
            "operator": "isNotNull",
            "relatedModelUuid": CONTACTS,
        },
        {"kind": "sql", "name": "recent", "clause": "arr > 10"},
        {
            "kind": "occurrence",
            "relatedModelUuid": CONTACTS,
            "frequency": {"operator": "not"},
            "period": {"operator": "lessThan", "value": 30, "unit": "day"},
            "conjonction": "and",
            "conditions": [{"kind": "number", "columnSlug": "lead_score", "operator": "isNull"}],
        },
    ]
    conditions[9].pop("value")
    body = {"name": "all kinds", "modelUuid": COMPANIES, "filter": flt(*conditions, conj="or")}
    response = empty_api.post("/segmentation/segments", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["segment"]["filter"] == body["filter"]
    assert validate_segment_body(body, segments={}) == []


def test_segment_conditions_between_segments(empty_api: Api, empty_emulator: Emulator) -> None:
    base = create(empty_api, empty_emulator, "US", filter=flt(string_is("country", "US")))
    inside = {"kind": "segment", "operator": "in", "segmentUuid": base["uuid"]}
    child = create(empty_api, empty_emulator, "US big", filter=flt(inside, number_gt("arr", 1e6)))
    outside = create(
        empty_api, empty_emulator, "not US", filter=flt({**inside, "operator": "notIn"})
    )

    def count(segment: dict[str, Any]) -> int:
        got = empty_api.get(f"/segmentation/segments/{segment['uuid']}").json()["segment"]
        return int(got["recordsCount"])

    us = companies_where(lambda r: r["country"] == "US")
    assert count(base) == us
    assert count(child) == companies_where(lambda r: r["country"] == "US" and (r["arr"] or 0) > 1e6)
    assert count(outside) == 300 - us
    # a cycle, direct or not, is refused
    loop = empty_api.put(
        f"/segmentation/segments/{base['uuid']}",
        json={"filter": flt({**inside, "segmentUuid": child["uuid"]})},
    )
    assert "cannot contain itself" in error(loop, 400, "invalidFilter")
    itself = empty_api.put(f"/segmentation/segments/{base['uuid']}", json={"filter": flt(inside)})
    assert "cannot contain itself" in error(itself, 400, "invalidFilter")
    # another model's segment, and a removed segment, are refused
    contacts = {"name": "c", "modelUuid": CONTACTS, "filter": flt(inside)}
    assert "is on model 'companies', not on 'contacts'" in error(
        empty_api.post("/segmentation/segments", json=contacts), 400, "invalidFilter"
    )
    empty_api.request("DELETE", f"/segmentation/segments/{child['uuid']}", json={})
    refer = {
        "name": "r",
        "modelUuid": COMPANIES,
        "filter": flt({**inside, "segmentUuid": child["uuid"]}),
    }
    error(empty_api.post("/segmentation/segments", json=refer), 400, "invalidFilter")


# --------------------------------------------------------------------------- modes


def test_lax_mode_accepts_what_cargo_accepts(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(fixtures=False, lax=True)
    with connect(emu) as api:
        sloppy = {"conjunction": "and", "groups": [{"conditions": [string_is("country", "US")]}]}
        ok = api.post(
            "/segmentation/segments", json={"name": "a", "modelUuid": COMPANIES, "filter": sloppy}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["segment"]["filter"] == sloppy  # stored as received
        mismatch = {"name": "b", "modelUuid": COMPANIES, "filter": flt(number_gt("country", 1))}
        assert api.post("/segmentation/segments", json=mismatch).status_code == 200
        no_conjonction = {"groups": [{"conditions": [string_is("country", "US")]}]}
        defaulted = {"name": "c", "modelUuid": COMPANIES, "filter": no_conjonction}
        assert api.post("/segmentation/segments", json=defaulted).status_code == 200
        counts = {
            s["name"]: s["recordsCount"]
            for s in api.get("/segmentation/segments/list").json()["segments"]
        }
        assert counts == {"a": 0, "b": 0, "c": companies_where(lambda r: r["country"] == "US")}
        bad: Any
        for bad in ("x", {"groups": {}}, {"groups": [{"conditions": "x"}]}, {"groups": [3]}):
            body = {"name": "d", "modelUuid": COMPANIES, "filter": bad}
            error(api.post("/segmentation/segments", json=body), 400, "invalidFilter")
        error(
            api.post("/segmentation/segments", json={"name": "e", "filter": flt()}),
            400,
            "invalidFilter",
        )
        # unknown query parameters are ignored
        assert api.get("/segmentation/segments/list", params={"page": "2"}).status_code == 200


def test_normalize_mode(emulator_factory: Callable[..., Emulator]) -> None:
    strict = emulator_factory(fixtures=False, normalize=True)
    with connect(strict) as api:
        single = flt({"kind": "string", "columnSlug": "country", "operator": "is", "values": "US"})
        stored = create(api, strict, filter=single)["filter"]
        assert stored == flt(string_is("country", "US"))
    lax = emulator_factory(fixtures=False, normalize=True, lax=True)
    with connect(lax) as api:
        body = {"name": "n", "modelUuid": COMPANIES, "filter": {"groups": [{"conditions": []}]}}
        stored = api.post("/segmentation/segments", json=body).json()["segment"]["filter"]
        assert stored == {"conjonction": "or", "groups": [{"conjonction": "or", "conditions": []}]}


def test_strict_mode_stores_filters_as_received(empty_api: Api, empty_emulator: Emulator) -> None:
    single = flt({"kind": "string", "columnSlug": "country", "operator": "is", "values": "US"})
    assert create(empty_api, empty_emulator, filter=single)["filter"] == single


def test_workspaces_differ_in_uuids_not_slugs(emulator_factory: Callable[..., Emulator]) -> None:
    one, two = emulator_factory(), emulator_factory(workspace="staging")
    with connect(one) as a, connect(two) as b:
        wa = a.get("/workspaceManagement/workspaces/current").json()["workspace"]
        wb = b.get("/workspaceManagement/workspaces/current").json()["workspace"]
        assert wa["uuid"] != wb["uuid"] and wb["name"] == "staging"
        ma, mb = (c.get("/storage/models/list").json()["models"] for c in (a, b))
        assert [m["slug"] for m in ma] == [m["slug"] for m in mb]
        assert not {m["uuid"] for m in ma} & {m["uuid"] for m in mb}
        for model in mb:
            assert UUID4.match(model["uuid"]) and model["workspaceUuid"] == wb["uuid"]
        da, db = (c.get("/storage/datasets/list").json()["datasets"] for c in (a, b))
        assert not {d["uuid"] for d in da} & {d["uuid"] for d in db}
        # a model of the other workspace is unknown here
        body = {"name": "x", "modelUuid": ma[0]["uuid"], "filter": flt()}
        error(b.post("/segmentation/segments", json=body), 400, "modelNotFound")
    assert emulator_factory().catalog.models == one.catalog.models  # stable for a name


# --------------------------------------------------------------------------- HTTP rules


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
    ],
)
def test_bad_or_missing_token_is_401_with_empty_body(
    emulator: Emulator, headers: dict[str, str]
) -> None:
    for method, path in (
        ("GET", "/storage/models/list"),
        ("POST", "/segmentation/segments"),
        ("GET", "/nowhere"),
    ):
        response = httpx.request(method, emulator.url + path, headers=headers, verify=False)
        assert response.status_code == 401
        assert response.content == b""


def test_any_token_mode(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(token=None)
    assert emu.accepts_any_token
    for token in ("a", "something-else"):
        response = httpx.get(
            emu.url + "/storage/models/list",
            headers={"Authorization": f"Bearer {token}"},
            verify=False,
        )
        assert response.status_code == 200
    assert httpx.get(emu.url + "/storage/models/list", verify=False).status_code == 401


def test_unknown_paths_and_methods(api: Api) -> None:
    for method, path in (
        ("GET", "/nowhere"),
        ("PATCH", "/segmentation/segments/" + UUID4_EXAMPLE),
        ("POST", "/storage/models/list"),
    ):
        response = api.request(method, path)
        assert "no route" in error(response, 404, None)
    outside = api.get(api.base_url.copy_with(path="/v2/storage/models/list"))
    assert outside.status_code == 404 and outside.json()["errorMessage"]


def test_header_names_are_case_insensitive(emulator: Emulator) -> None:
    with socket.create_connection((emulator.host, emulator.port), timeout=10) as sock:
        body = b'{"name": "x"}'
        sock.sendall(
            b"POST /v1/segmentation/segments HTTP/1.1\r\nhost: x\r\n"
            + f"authorization: bearer {emulator.token}\r\n".encode()
            + b"content-type: application/json\r\ncontent-length: 13\r\n"
            + b"connection: close\r\n\r\n"
            + body
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b'"reason":"invalidFilter"' in answer  # parsed as JSON, checked as a create body


def test_request_hygiene(api: Api, emulator: Emulator) -> None:
    json_header = {"Content-Type": "application/json"}
    error(api.get("/storage/models/list", headers=json_header), 400, None)
    error(api.request("GET", "/storage/models/list", content=b"{}", headers=json_header), 400, None)
    raw = api.post(
        "/segmentation/segments", content=b'{"name": "x"}', headers={"Content-Type": "text/plain"}
    )
    error(raw, 415, None)
    assert "not valid JSON" in error(
        api.post("/segmentation/segments", content=b"{nope", headers=json_header), 400, None
    )
    assert "not valid JSON" in error(
        api.post("/segmentation/segments", content=b'{"limit": NaN}', headers=json_header),
        400,
        None,
    )
    companies = model_uuid(emulator, "companies")
    assert "empty query parameter" in error(
        api.get("/segmentation/segments/list?modelUuid="), 400, None
    )
    error(api.get("/segmentation/segments/list", params={"modelUuid": "null"}), 400, None)
    twice = f"/segmentation/segments/list?modelUuid={companies}&modelUuid={companies}"
    error(api.get(twice), 400, None)
    assert "unknown query parameter" in error(
        api.get("/segmentation/segments/list", params={"deleted": "false"}), 400, None
    )
    error(api.get("/segmentation/segments/not-a-uuid"), 400, None)
    error(api.get("/segmentation/changes/list"), 400, None)


def test_validate_segment_body_helper() -> None:
    good = {"name": "x", "modelUuid": COMPANIES, "filter": flt(string_is("country", "US"))}
    assert validate_segment_body(good) == []
    assert validate_segment_body({"name": "y"}, op="update", model_uuid=COMPANIES) == []
    assert validate_segment_body({"modelUuid": COMPANIES}, op="update", model_uuid=COMPANIES)
    staging = next(m["uuid"] for m in build_catalog("staging").models if m["slug"] == "companies")
    assert validate_segment_body({**good, "modelUuid": staging}, workspace="staging") == []
    assert validate_segment_body({**good, "modelUuid": staging}) != []
    ref = flt({"kind": "segment", "operator": "in", "segmentUuid": UUID4_EXAMPLE})
    assert validate_segment_body({**good, "filter": ref}) == []  # segments unknown: not checked
    assert validate_segment_body({**good, "filter": ref}, segments={UUID4_EXAMPLE: COMPANIES}) == []
    assert validate_segment_body({**good, "filter": ref}, segments={UUID4_EXAMPLE: CONTACTS})


def test_an_emulator_bug_is_answered_500(
    api: Api, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(model_uuid: str | None = None) -> list[dict[str, Any]]:
        raise KeyError("boom")

    monkeypatch.setattr(emulator.store, "list_segments", broken)
    response = api.get("/segmentation/segments/list")
    assert response.status_code == 500
    assert response.json() == {"errorMessage": "emulator error: KeyError: 'boom'"}
    assert api.get("/storage/datasets/list").status_code == 200  # still serving


def test_delete_body_must_be_an_empty_object(empty_api: httpx.Client) -> None:
    """docs/cargo-api.md: the delete body is `{}`; anything else is refused."""
    path = "/segmentation/segments/" + UUID4_EXAMPLE
    assert empty_api.delete(path).status_code == 400
    assert empty_api.request("DELETE", path, json={"force": True}).status_code == 400
    error(empty_api.request("DELETE", path, json={}), 404, "segmentNotFound")


# --------------------------------------------------------------------------- filter structure
# The emulator's own reading of the filter schema (docs/cargo-api.md), message by message
# (no HTTP needed).

AT = "filter.groups[0].conditions[0]"
OTHER_UUID4 = "3f0c1a2b-5d6e-4f70-8a9b-0c1d2e3f4a5b"
EVERY_WEEK = {
    "frequency": {"operator": "moreThan", "value": 1},
    "period": {"operator": "lessThan", "value": 7, "unit": "day"},
}


def enrollment(activity: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "enrollment",
        "workflowUuid": OTHER_UUID4,
        "activityKind": activity,
        **EVERY_WEEK,
        **extra,
    }


def occurrence(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "occurrence",
        "relatedModelUuid": OTHER_UUID4,
        **EVERY_WEEK,
        "conjonction": "and",
        "conditions": list(conditions),
    }


def match_conditions(column: str, *props: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "object",
        "columnSlug": column,
        "operator": "matchConditions",
        "conjonction": "and",
        "propertyConditions": list(props),
    }


def date_is(value: Any) -> dict[str, Any]:
    return {"kind": "date", "columnSlug": "founded_at", "operator": "is", "value": value}


FILTER_PROBLEMS: list[tuple[str, Any, list[str]]] = [
    # unknown keys, with a suggestion; the key a misspelling stands for is not also "missing"
    (
        "unknown key suggested",
        flt({**string_is("country", "US"), "relatedModelUid": OTHER_UUID4}),
        [f"{AT}.relatedModelUid: unknown key (did you mean 'relatedModelUuid'?)"],
    ),
    (
        "unknown key listed",
        flt({**number_gt("arr", 1), "weight": 2}),
        [
            f"{AT}.weight: unknown key; expected one of kind, operator, columnSlug, value, "
            "relatedModelUuid"
        ],
    ),
    (
        "value on a no-value operator",
        flt({"kind": "boolean", "columnSlug": "is_customer", "operator": "isTrue", "value": True}),
        [f"{AT}.value: unknown key (operator 'isTrue' takes no value)"],
    ),
    (
        "sql takes no operator",
        flt({"kind": "sql", "operator": "is", "name": "big", "clause": "arr > 10"}),
        [f"{AT}.operator: unknown key (kind 'sql' takes no operator)"],
    ),
    # operators
    (
        "operator typo",
        flt({**number_gt("arr", 1), "operator": "greaterThen"}),
        [
            f"{AT}.operator: 'greaterThen' is not an operator of kind 'number' "
            "(did you mean 'greaterThan'?)"
        ],
    ),
    (
        "operator of another kind",
        flt({**string_is("country", "FR"), "operator": "in"}),
        [
            f"{AT}.operator: 'in' is not an operator of kind 'string' "
            "(it is an operator of kind 'segment')"
        ],
    ),
    (
        "operator unheard of",
        flt({"kind": "boolean", "columnSlug": "is_customer", "operator": "yes"}),
        [
            f"{AT}.operator: 'yes' is not an operator of kind 'boolean'; "
            "expected one of isTrue, isFalse, isNull, isNotNull"
        ],
    ),
    (
        "operator missing",
        flt({"kind": "vector", "columnSlug": "embedding"}),
        [f"{AT}.operator: missing required key; expected one of isNull, isNotNull"],
    ),
    # value keys by kind
    (
        "value on string",
        flt({"kind": "string", "columnSlug": "country", "operator": "is", "value": "FR"}),
        [f"{AT}.value: unknown key (did you mean 'values'?)"],
    ),
    (
        "values on number",
        flt({"kind": "number", "columnSlug": "arr", "operator": "lowerThan", "values": [1]}),
        [f"{AT}.values: unknown key (did you mean 'value'?)"],
    ),
    (
        "between without lastValue",
        flt({"kind": "number", "columnSlug": "arr", "operator": "between", "firstValue": 1}),
        [f"{AT}.lastValue: missing required key"],
    ),
    (
        "objectProperty between takes otherValue",
        flt(prop("address", "zip", operator="between", lastValue="2")),
        [f"{AT}.lastValue: unknown key (did you mean 'otherValue'?)"],
    ),
    # value types
    (
        "boolean for a number",
        flt(number_gt("arr", True)),
        [f"{AT}.value: expected a number, got the boolean true"],
    ),
    (
        "quoted number",
        flt({"kind": "number", "columnSlug": "arr", "operator": "is", "value": "500"}),
        [f"{AT}.value: expected a number, got the string '500'"],
    ),
    (
        "empty values",
        flt({**string_is("country"), "values": []}),
        [f"{AT}.values: must not be an empty list"],
    ),
    (
        "values item not a string",
        flt({**string_is("country"), "values": ["FR", 75001]}),
        [f"{AT}.values[1]: expected a string, got the number 75001"],
    ),
    (
        "objectProperty value is a string even for greaterThan",
        flt(prop("address", "zip", operator="greaterThan", value=75000)),
        [f"{AT}.value: expected a string, got the number 75000"],
    ),
    (
        "blank column slug",
        flt(string_is(" ", "x")),
        [f"{AT}.columnSlug: must be a non-empty string"],
    ),
    # dates
    (
        "date not ISO",
        flt(date_is("15/01/2025")),
        [f"{AT}.value: '15/01/2025' is not an ISO-8601 date (YYYY-MM-DD, or a date-time)"],
    ),
    (
        "date impossible",
        flt(date_is("2025-02-30")),
        [f"{AT}.value: '2025-02-30' is not a real date (no such day in the calendar)"],
    ),
    (
        "time impossible",
        flt(date_is("2025-01-15T24:00:00Z")),
        [f"{AT}.value: '2025-01-15T24:00:00Z' is not a real time of day"],
    ),
    (
        "date with non-ASCII digits",
        flt(date_is("２０２５-01-15")),
        [f"{AT}.value: '２０２５-01-15' is not an ISO-8601 date (YYYY-MM-DD, or a date-time)"],
    ),
    (
        "date as a number",
        flt(date_is(20250115)),
        [f"{AT}.value: expected an ISO-8601 date string, got the number 20250115"],
    ),
    # UUIDs
    (
        "related model not v4",
        flt(
            {**string_is("email", "a"), "relatedModelUuid": "3f0c1a2b-5d6e-1f70-8a9b-0c1d2e3f4a5b"}
        ),
        [
            f"{AT}.relatedModelUuid: expected a version-4 UUID, got the string "
            "'3f0c1a2b-5d6e-1f70-8a9b-0c1d2e3f4a5b'"
        ],
    ),
    (
        "workflow UUID with a trailing newline",
        flt(enrollment("workflowEntered", workflowUuid=OTHER_UUID4 + "\n")),
        [f"{AT}.workflowUuid: expected a version-4 UUID, got the string '{OTHER_UUID4}\\n'"],
    ),
    # segment conditions: segmentUuid, never segment (a spec id)
    (
        "segment instead of segmentUuid",
        flt({"kind": "segment", "operator": "in", "segment": "sales/icp"}),
        [
            f"{AT}.segment: unknown key ('segment' names a segsync spec, which the API does not "
            "know; send 'segmentUuid')"
        ],
    ),
    (
        "segment has no column",
        flt(
            {"kind": "segment", "operator": "notIn", "segmentUuid": OTHER_UUID4, "columnSlug": "x"}
        ),
        [f"{AT}.columnSlug: unknown key; expected one of kind, operator, segmentUuid"],
    ),
    # §4.1 shape and the §4.2 silent failures
    (
        "conditions beside groups",
        {**flt(), "conditions": [string_is("country", "FR")]},
        [
            "filter.conditions: unknown key (conditions belong inside a group: "
            "filter.groups[].conditions; Cargo ignores them here and the segment covers the whole "
            "model)"
        ],
    ),
    (
        "conjunction misspelt",
        {"conjunction": "and", "groups": [{"conjunction": "or", "conditions": []}]},
        [
            "filter.conjunction: unknown key (did you mean 'conjonction'? Cargo accepts this "
            "spelling and then matches nothing)",
            "filter.groups[0].conjunction: unknown key (did you mean 'conjonction'? Cargo accepts "
            "this spelling and then matches nothing)",
        ],
    ),
    (
        "conjonction not lower case",
        {"conjonction": "AND", "groups": []},
        ["filter.conjonction: 'AND' is not one of 'and', 'or' (did you mean 'and'?)"],
    ),
    (
        "conjonction has no default",
        {"groups": [{"conditions": []}]},
        [
            "filter.conjonction: missing required key",
            "filter.groups[0].conjonction: missing required key",
        ],
    ),
    (
        "groups do not nest",
        {"conjonction": "and", "groups": [{"conjonction": "and", "conditions": [], "groups": []}]},
        ["filter.groups[0].groups: unknown key (groups do not nest; a group holds conditions)"],
    ),
    (
        "groups not a list",
        {"conjonction": "and", "groups": {}},
        ["filter.groups: expected a list, got an object"],
    ),
    ("filter not an object", [], ["filter: expected an object, got a list"]),
    (
        "condition not an object",
        flt("country is US"),  # type: ignore[arg-type]
        [f"{AT}: expected an object (a condition), got the string 'country is US'"],
    ),
    (
        "kind missing",
        flt({"field": "domain", "operator": "is", "value": "acme.com"}),
        [
            f"{AT}.kind: missing required key; expected one of string, number, date, boolean, "
            "object, array, vector, any, objectProperty, segment, sql, enrollment, occurrence"
        ],
    ),
    (
        "kind unknown",
        flt({**string_is("country", "FR"), "kind": "strng"}),
        [
            f"{AT}.kind: 'strng' is not a condition kind (did you mean 'string'?); expected one "
            "of string, number, date, boolean, object, array, vector, any, objectProperty, "
            "segment, sql, enrollment, occurrence"
        ],
    ),
    # enrollment, frequency, period
    (
        "nodeSlug without workflowNodeExecuted",
        flt(enrollment("workflowLeft", nodeSlug="send_email")),
        [
            f"{AT}.nodeSlug: 'nodeSlug' goes only with activityKind 'workflowNodeExecuted', "
            "not 'workflowLeft'"
        ],
    ),
    (
        "activityKind unknown",
        flt(enrollment("workflowEnter")),
        [
            f"{AT}.activityKind: 'workflowEnter' is not one of 'workflowEntered', "
            "'workflowNodeExecuted', 'workflowLeft' (did you mean 'workflowEntered'?)"
        ],
    ),
    (
        "frequency operator typo",
        flt(enrollment("workflowEntered", frequency={"operator": "moreThen", "value": 1})),
        [
            f"{AT}.frequency.operator: 'moreThen' is not a frequency operator "
            "(did you mean 'moreThan'?)"
        ],
    ),
    (
        "frequency not takes no value",
        flt(enrollment("workflowEntered", frequency={"operator": "not", "value": 1})),
        [f"{AT}.frequency.value: unknown key (operator 'not' takes no value)"],
    ),
    (
        "period in weeks",
        flt(
            enrollment(
                "workflowEntered", period={"operator": "exactly", "value": 1, "unit": "week"}
            )
        ),
        [f"{AT}.period.unit: 'week' is not one of 'day'"],
    ),
    (
        "period without a unit",
        flt(enrollment("workflowEntered", period={"operator": "exactly", "value": 1})),
        [f"{AT}.period.unit: missing required key"],
    ),
    # occurrence and matchConditions: inner conditions
    (
        "occurrence with an sql condition",
        flt(occurrence({"kind": "sql", "name": "x", "clause": "1 = 1"})),
        [
            f"{AT}.conditions[0].kind: kind 'sql' is not allowed inside an occurrence; expected "
            "one of string, number, object, array, any, vector, date, boolean"
        ],
    ),
    (
        "occurrence inner condition checked too",
        flt(occurrence(number_gt("lead_score", False))),
        [f"{AT}.conditions[0].value: expected a number, got the boolean false"],
    ),
    (
        "occurrence needs relatedModelUuid",
        flt({k: v for k, v in occurrence().items() if k != "relatedModelUuid"}),
        [f"{AT}.relatedModelUuid: missing required key"],
    ),
    (
        "propertyConditions on another column",
        flt(match_conditions("address", prop("raw", "city"))),
        [
            f"{AT}.propertyConditions[0].columnSlug: 'raw' differs from the parent's columnSlug "
            "'address'; property conditions test the parent's column"
        ],
    ),
    (
        "propertyConditions hold objectProperty only",
        flt(match_conditions("address", string_is("address", "x"))),
        [
            f"{AT}.propertyConditions[0].kind: kind 'string' is not allowed in "
            "propertyConditions; expected one of objectProperty"
        ],
    ),
    (
        "every problem is reported",
        flt({**number_gt("arr", 1), "value": "1"}, {**string_is("country", "FR"), "extra": 1}),
        [
            f"{AT}.value: expected a number, got the string '1'",
            "filter.groups[0].conditions[1].extra: unknown key; expected one of kind, operator, "
            "columnSlug, values, relatedModelUuid",
        ],
    ),
]


@pytest.mark.parametrize(
    ("case", "filter_", "expected"), FILTER_PROBLEMS, ids=[c[0] for c in FILTER_PROBLEMS]
)
def test_filter_check_messages(case: str, filter_: Any, expected: list[str]) -> None:
    assert check_filter(filter_) == expected


def test_filter_check_accepts_every_documented_form() -> None:
    conditions = [
        string_is("country", "FR", "DE"),
        {"kind": "string", "columnSlug": "country", "operator": "startsWith", "values": "F"},
        {"kind": "string", "columnSlug": "industry", "operator": "isNotEmpty"},
        {"kind": "number", "columnSlug": "arr", "operator": "is", "value": 0.5},
        {
            "kind": "number",
            "columnSlug": "arr",
            "operator": "between",
            "firstValue": 1,
            "lastValue": 2,
        },
        {"kind": "number", "columnSlug": "arr", "operator": "isNull"},
        date_is("2024-02-29"),
        date_is("2025-01-15T08:30:00.123+02:00"),
        {
            "kind": "date",
            "columnSlug": "founded_at",
            "operator": "between",
            "firstValue": "2025-01-01",
            "lastValue": "2025-12-31T23:59:59Z",
        },
        {"kind": "boolean", "columnSlug": "is_customer", "operator": "isFalse"},
        {"kind": "array", "columnSlug": "tags", "operator": "isNotNull"},
        {"kind": "vector", "columnSlug": "embedding", "operator": "isNull"},
        {"kind": "any", "columnSlug": "raw", "operator": "isNotNull"},
        prop("address", "city", operator="contains"),
        prop("address", "zip", operator="between", value="1", otherValue="2"),
        {
            "kind": "objectProperty",
            "columnSlug": "address",
            "propertyName": "city",
            "operator": "isEmpty",
        },
        match_conditions("address", prop("address", "city")),
        {**string_is("email", "a"), "relatedModelUuid": OTHER_UUID4},
        {**string_is("email", "a"), "relatedModelUuid": None},  # §4.7: null is absent
        {"kind": "segment", "operator": "notIn", "segmentUuid": OTHER_UUID4.upper()},
        {"kind": "sql", "name": "big", "clause": "arr > 10"},
        enrollment("workflowNodeExecuted", nodeSlug="send_email"),
        enrollment("workflowEntered", nodeSlug=None, frequency={"operator": "not"}),
        occurrence(
            number_gt("lead_score", 3), {"kind": "any", "columnSlug": "x", "operator": "isNull"}
        ),
    ]
    assert check_filter(flt(*conditions, conj="or")) == []
    assert check_filter({"conjonction": "and", "groups": []}) == []


def test_sort_check() -> None:
    assert (
        check_sort([{"columnSlug": "arr", "kind": "desc"}, {"kind": "asc", "columnSlug": "x"}])
        == []
    )
    assert check_sort([]) == []
    assert check_sort([{"columnSlug": "arr", "kind": "descending", "order": 1}, "arr"]) == [
        "sort[0].order: unknown key; expected one of columnSlug, kind",
        "sort[0].kind: 'descending' is not one of 'asc', 'desc'",
        "sort[1]: expected an object, got the string 'arr'",
    ]
    assert check_sort([{"column": "arr", "kind": "asc"}]) == [
        "sort[0].column: unknown key (did you mean 'columnSlug'?)"
    ]


def test_uuids_are_checked_whole() -> None:
    assert is_uuid4(OTHER_UUID4)
    for bad in (OTHER_UUID4 + "\n", " " + OTHER_UUID4, OTHER_UUID4 + "0", "{" + OTHER_UUID4 + "}"):
        assert not is_uuid4(bad), repr(bad)
    body = {"name": "x", "modelUuid": COMPANIES + "\n", "filter": flt()}
    assert validate_segment_body(body) == [
        f"modelUuid: expected a version-4 UUID, got the string '{COMPANIES}\\n'"
    ]


def test_lax_mode_skips_the_structural_check() -> None:
    sloppy = {"conjunction": "and", "groups": [{"conditions": [{"kind": "strng"}]}]}
    body = {
        "name": "x",
        "modelUuid": COMPANIES,
        "filter": sloppy,
        "sort": [{"kind": "asc", "columnSlug": "nope", "x": 1}],
    }
    assert validate_segment_body(body, lax=True) == []
    assert validate_segment_body(body) != []


# --------------------------------------------------------------------------- independence

EMULATOR_DIR = Path(segsync.emulator.__file__).parent


def foreign_imports(source: str) -> list[str]:
    """Imports of segsync modules outside ``segsync.emulator`` (``__version__`` is allowed).

    Covers ``import``, ``from ... import`` at any depth (inside functions and TYPE_CHECKING
    blocks too), relative imports that climb out of the package, and ``import_module`` calls
    whose module name is written out.
    """

    def foreign(module: str) -> bool:
        return (module == "segsync" or module.startswith("segsync.")) and not (
            module == "segsync.emulator" or module.startswith("segsync.emulator.")
        )

    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(f"import {a.name}" for a in node.names if foreign(a.name))
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            names = ", ".join(a.name for a in node.names)
            climbs_out = node.level > 1  # `from .. import x` leaves segsync.emulator
            allowed = module == "segsync" and names == "__version__"
            if climbs_out or (node.level == 0 and foreign(module) and not allowed):
                found.append(f"from {module} import {names}")
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if isinstance(first, ast.JoinedStr) and first.values:
                first = first.values[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and foreign(first.value.rstrip("."))
            ):
                found.append(f"{name}({first.value!r}...)")
    return found


def test_foreign_imports_are_found() -> None:
    source = (
        "from segsync import __version__\n"
        "from segsync.emulator.data import Catalog\n"
        "from . import faults\n"
        "import importlib\n"
        "importlib.import_module(f'segsync.emulator.{name}')\n"
        "def f():\n"
        "    from segsync.errors import ConfigError\n"
        "    import segsync.spec\n"
        "    from .. import cli\n"
        "    from segsync import errors, __version__\n"
        "    importlib.import_module('segsync.cli')\n"
    )
    assert foreign_imports(source) == [
        "from segsync.errors import ConfigError",
        "import segsync.spec",
        "from .. import cli",
        "from segsync import errors, __version__",
        "import_module('segsync.cli'...)",
    ]


def test_the_emulator_imports_nothing_of_segsync_but_its_version() -> None:
    """The emulator is an independent witness: its checks must not be segsync's own."""
    modules = sorted(EMULATOR_DIR.glob("*.py"))
    assert {p.name for p in modules} >= {"filters.py", "validate.py", "command.py", "store.py"}
    found = {
        p.name: imports
        for p in modules
        if (imports := foreign_imports(p.read_text(encoding="utf-8")))
    }
    assert found == {}
