"""Spec models: every invalid case file gives its exact message and place; canonical form."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from segsync.canonical import (
    canonical_managed,
    conditions,
    digest,
    from_wire,
    refs_of,
    to_wire,
)
from segsync.errors import ValidationFailed
from segsync.specs import load_specs

CASES = Path(__file__).parent / "cases" / "invalid"
EXAMPLES = Path(__file__).parent.parent / "segments"
SINGLE = sorted(p for p in CASES.glob("*.yaml"))
CROSS = sorted(p for p in CASES.iterdir() if p.is_dir())


def _errors(folder: Path) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        load_specs(folder)
    return [str(e) for e in info.value.errors]


def test_there_are_at_least_30_cases() -> None:
    assert len(SINGLE) + len(CROSS) >= 30


@pytest.mark.parametrize("case", SINGLE, ids=lambda p: p.stem)
def test_invalid_case(case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "segments").mkdir()
    shutil.copy(case, tmp_path / "segments" / case.name)
    monkeypatch.chdir(tmp_path)
    expected = case.with_suffix(".expected").read_text().splitlines()
    assert _errors(Path("segments")) == expected


@pytest.mark.parametrize("case", CROSS, ids=lambda p: p.name)
def test_invalid_cross_file_case(
    case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(case, tmp_path / "segments", ignore=shutil.ignore_patterns("expected"))
    monkeypatch.chdir(tmp_path)
    assert _errors(Path("segments")) == (case / "expected").read_text().splitlines()


def test_examples_are_valid() -> None:
    specs = load_specs(EXAMPLES)
    assert len(specs) >= 6
    ids = [s.id for s in specs]
    assert ids == sorted(ids)
    assert "sales/enterprise-eu" in ids
    eu = next(s for s in specs if s.id == "sales/enterprise-eu")
    assert eu.refs == ("sales/icp",)
    assert eu.explicit_id and eu.model == "companies" and eu.model_uuid is None


def _write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


SPEC = """\
# a comment
name: Big
model: companies
filter:
  conjonction: or
  groups:
    - conjonction: and
      conditions:
        - kind: string
          columnSlug: country
          operator: is
          values: FR
        - kind: number
          columnSlug: arr
          operator: greaterThan
          value: 500.0
limit: 10
"""

SAME_SPEC_OTHER_STYLE = """\
model: "companies"
limit: 10.0
filter: {groups: [{conditions: [
    {values: ["FR"], operator: is, columnSlug: country, kind: string},
    {value: 500, kind: number, operator: greaterThan, columnSlug: arr}],
  conjonction: "and"}], conjonction: or}
name: 'Big'
"""


def test_canonical_form_ignores_style_order_and_comments(tmp_path: Path) -> None:
    _write(tmp_path / "a", "big.yaml", SPEC)
    _write(tmp_path / "b", "big.yml", SAME_SPEC_OTHER_STYLE)
    (a,) = load_specs(tmp_path / "a")
    with pytest.raises(ValidationFailed):  # limit 10.0 is not a whole number
        load_specs(tmp_path / "b")
    _write(tmp_path / "c", "big.yml", SAME_SPEC_OTHER_STYLE.replace("limit: 10.0", "limit: 10"))
    (c,) = load_specs(tmp_path / "c")
    assert a.managed == c.managed
    assert a.digest == c.digest
    assert a.file_sha256 != c.file_sha256
    assert a.managed["filter"]["groups"][0]["conditions"][0]["values"] == ["FR"]
    assert a.managed["filter"]["groups"][0]["conditions"][1]["value"] == 500
    assert a.id == c.id == "big"


def test_canonical_form_of_a_value_change_differs(tmp_path: Path) -> None:
    _write(tmp_path / "a", "big.yaml", SPEC)
    _write(tmp_path / "b", "big.yaml", SPEC.replace("value: 500.0", "value: 501"))
    (a,) = load_specs(tmp_path / "a")
    (b,) = load_specs(tmp_path / "b")
    assert a.digest != b.digest


def test_digest_is_sha256_of_sorted_compact_json() -> None:
    import hashlib

    managed = canonical_managed({"name": "x", "limit": 3.0, "sort": None, "uuid": "ignored"})
    assert managed == {"name": "x", "limit": 3}
    text = json.dumps(managed, sort_keys=True, separators=(",", ":"))
    assert digest(managed) == hashlib.sha256(text.encode()).hexdigest()


def test_canonical_managed_of_a_remote_segment_matches_the_spec(tmp_path: Path) -> None:
    _write(tmp_path, "big.yaml", SPEC)
    (spec,) = load_specs(tmp_path)
    remote = {
        "uuid": "u", "slug": "big", "name": "Big", "modelUuid": "m", "recordsCount": 3,
        "sort": None, "trackingColumnSlugs": None, "columnSlugs": None, "limit": 10,
        "filter": {"conjonction": "or", "groups": [{"conjonction": "and", "conditions": [
            {"kind": "string", "columnSlug": "country", "operator": "is", "values": "FR",
             "relatedModelUuid": None},
            {"kind": "number", "columnSlug": "arr", "operator": "greaterThan", "value": 500.0},
        ]}]},
    }
    assert canonical_managed(remote) == spec.managed


def test_to_wire_and_back_resolve_segment_references(tmp_path: Path) -> None:
    _write(tmp_path, "icp.yaml", "name: ICP\nmodel: companies\nfilter: {conjonction: and, "
           "groups: []}\n")
    _write(tmp_path, "eu.yaml", "name: EU\nmodel: companies\nfilter:\n  conjonction: and\n"
           "  groups:\n    - conjonction: and\n      conditions:\n"
           "        - {kind: segment, operator: in, segment: icp}\n")
    eu = next(s for s in load_specs(tmp_path) if s.id == "eu")
    uuid = "3f0c1a2b-5d6e-4f70-8a9b-0c1d2e3f4a5b"
    body = to_wire(eu.managed, ref_uuids={"icp": uuid})
    cond = body["filter"]["groups"][0]["conditions"][0]
    assert cond == {"kind": "segment", "operator": "in", "segmentUuid": uuid}
    # the spec's canonical form keeps the spec id
    assert eu.managed["filter"]["groups"][0]["conditions"][0]["segment"] == "icp"
    # and back, at every level: the one rule both ways
    assert from_wire(body, uuid_to_id={uuid: "icp"}) == eu.managed
    assert list(refs_of(eu.managed)) == [
        (("filter", "groups", 0, "conditions", 0, "segment"), "icp")
    ]


def test_conditions_reaches_nested_conditions() -> None:
    prop = {"kind": "objectProperty", "columnSlug": "address", "propertyName": "city",
            "operator": "is", "value": "Paris"}
    inner = {"kind": "string", "columnSlug": "x", "operator": "isNull"}
    filt = {"conjonction": "and", "groups": [{"conjonction": "or", "conditions": [
        {"kind": "object", "columnSlug": "address", "operator": "matchConditions",
         "conjonction": "and", "propertyConditions": [prop]},
        {"kind": "occurrence", "conditions": [inner]},
    ]}]}
    paths = [p for p, _ in conditions(filt)]
    assert paths == [
        ("filter", "groups", 0, "conditions", 0),
        ("filter", "groups", 0, "conditions", 0, "propertyConditions", 0),
        ("filter", "groups", 0, "conditions", 1),
        ("filter", "groups", 0, "conditions", 1, "conditions", 0),
    ]


def test_every_kind_and_operator_is_accepted(tmp_path: Path) -> None:
    """One valid condition for each (kind, operator) of the filter reference (docs/specs.md)."""
    uuid = "3f0c1a2b-5d6e-4f70-8a9b-0c1d2e3f4a5b"
    freq = {"operator": "moreThan", "value": 2}
    period = {"operator": "lessThan", "value": 30, "unit": "day"}
    conds: list[dict[str, object]] = []
    for op in ("is", "isNot", "contains", "doesNotContain", "startsWith", "endsWith"):
        conds.append({"kind": "string", "columnSlug": "s", "operator": op, "values": ["a"]})
    for op in ("isNull", "isNotNull", "isEmpty", "isNotEmpty"):
        conds.append({"kind": "string", "columnSlug": "s", "operator": op})
    for kind, value, first, last in (("number", 1, 1, 2.5), ("date", "2025-01-15",
                                     "2025-01-01", "2025-01-31T10:00:00Z")):
        for op in ("is", "isNot", "greaterThan", "lowerThan"):
            conds.append({"kind": kind, "columnSlug": "c", "operator": op, "value": value})
        conds.append({"kind": kind, "columnSlug": "c", "operator": "between",
                      "firstValue": first, "lastValue": last})
        for op in ("isNull", "isNotNull"):
            conds.append({"kind": kind, "columnSlug": "c", "operator": op})
    for op in ("isTrue", "isFalse", "isNull", "isNotNull"):
        conds.append({"kind": "boolean", "columnSlug": "b", "operator": op})
    for kind in ("object", "array", "vector", "any"):
        for op in ("isNull", "isNotNull"):
            conds.append({"kind": kind, "columnSlug": "o", "operator": op,
                          "relatedModelUuid": uuid})
    for op in ("is", "isNot", "contains", "doesNotContain", "startsWith", "endsWith",
               "greaterThan", "lowerThan"):
        conds.append({"kind": "objectProperty", "columnSlug": "o", "propertyName": "p",
                      "operator": op, "value": "1"})
    conds.append({"kind": "objectProperty", "columnSlug": "o", "propertyName": "p",
                  "operator": "between", "value": "1", "otherValue": "9"})
    for op in ("isNull", "isNotNull", "isEmpty", "isNotEmpty"):
        conds.append({"kind": "objectProperty", "columnSlug": "o", "propertyName": "p",
                      "operator": op})
    for kind in ("object", "array"):
        conds.append({"kind": kind, "columnSlug": "o", "operator": "matchConditions",
                      "conjonction": "or", "propertyConditions": [
                          {"kind": "objectProperty", "columnSlug": "o", "propertyName": "p",
                           "operator": "is", "value": "x"}]})
    conds.append({"kind": "segment", "operator": "in", "segmentUuid": uuid})
    conds.append({"kind": "segment", "operator": "notIn", "segmentUuid": uuid})
    conds.append({"kind": "sql", "name": "big", "clause": "arr > 10"})
    conds.append({"kind": "enrollment", "workflowUuid": uuid, "activityKind": "workflowEntered",
                  "frequency": {"operator": "not"}, "period": period})
    conds.append({"kind": "enrollment", "workflowUuid": uuid,
                  "activityKind": "workflowNodeExecuted", "nodeSlug": "n", "frequency": freq,
                  "period": period})
    conds.append({"kind": "occurrence", "relatedModelUuid": uuid, "frequency": freq,
                  "period": period, "conjonction": "and", "conditions": [
                      {"kind": "number", "columnSlug": "amount", "operator": "greaterThan",
                       "value": 3}]})
    filt = {"conjonction": "and", "groups": [{"conjonction": "and", "conditions": conds}]}
    spec = {"name": "All", "model": "companies", "filter": filt}
    (tmp_path / "all.yaml").write_text(json.dumps(spec))  # JSON is YAML
    (loaded,) = load_specs(tmp_path)
    assert len(loaded.managed["filter"]["groups"][0]["conditions"]) == len(conds) == 57


def test_known_files_are_not_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from segsync import specs as spec_module

    shutil.copytree(EXAMPLES, tmp_path / "segments")
    monkeypatch.chdir(tmp_path)
    specs = load_specs("segments")
    known = {s.file: (s.file_sha256, s) for s in specs}
    changed = tmp_path / "segments" / "sales" / "icp.yaml"
    changed.write_text(changed.read_text().replace("lastValue: 5000", "lastValue: 6000"))
    parsed: list[str] = []
    real = spec_module.parse_spec

    def counting(data: bytes, file: str, default: str) -> object:
        parsed.append(file)
        return real(data, file, default)

    monkeypatch.setattr(spec_module, "parse_spec", counting)
    again = load_specs("segments", known=known)
    assert parsed == ["segments/sales/icp.yaml"]
    assert [s.id for s in again] == [s.id for s in specs]
    icp = next(s for s in again if s.id == "sales/icp")
    assert icp.file_sha256 == hashlib.sha256(changed.read_bytes()).hexdigest()
    assert icp.digest != next(s for s in specs if s.id == "sales/icp").digest
    assert [s for s in again if s.id != "sales/icp"] == [s for s in specs if s.id != "sales/icp"]


def test_known_files_still_get_cross_file_checks_with_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "segments")
    monkeypatch.chdir(tmp_path)
    known = {s.file: (s.file_sha256, s) for s in load_specs("segments")}
    (tmp_path / "segments" / "sales" / "icp.yaml").unlink()  # still referenced by two specs
    with pytest.raises(ValidationFailed) as info:
        load_specs("segments", known=known)
    assert [str(e) for e in info.value.errors] == [
        "segments/sales/enterprise-eu.yaml:12:20: filter.groups[0].conditions[0].segment: "
        "unknown spec id 'sales/icp'",
        "segments/sales/young-startups.yaml:20:20: filter.groups[0].conditions[2].segment: "
        "unknown spec id 'sales/icp'",
    ]
