"""Builders of LoadedSpec, Entry and State values for plan and render tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from segsync.canonical import canonical_managed, conditions, digest, to_wire
from segsync.plan import Cargo, Plan, make_plan
from segsync.specs import LoadedSpec
from segsync.state import Entry, Intent, State

T0 = "2026-11-27T13:00:00.000Z"
LINEAGE = "6f1c2b3a-0000-4000-8000-000000000001"


def uuid_for(spec_id: str) -> str:
    """A stable fake UUID per spec id (readable in golden files)."""
    n = sum(ord(c) * (i + 1) for i, c in enumerate(spec_id)) % 10**12
    return f"00000000-0000-4000-8000-{n:012d}"


def cond_string(column: str, *values: str, operator: str = "is") -> dict[str, Any]:
    return {"kind": "string", "columnSlug": column, "operator": operator, "values": list(values)}


def cond_number(column: str, value: int, operator: str = "greaterThan") -> dict[str, Any]:
    return {"kind": "number", "columnSlug": column, "operator": operator, "value": value}


def cond_segment(spec_id: str, operator: str = "in") -> dict[str, Any]:
    return {"kind": "segment", "operator": operator, "segment": spec_id}


def one_group(*conditions: dict[str, Any], conj: str = "and") -> dict[str, Any]:
    return {"conjonction": "and", "groups": [{"conjonction": conj, "conditions": list(conditions)}]}


def make_spec(
    spec_id: str,
    name: str | None = None,
    *,
    model: str = "companies",
    flt: dict[str, Any] | None = None,
    explicit_id: bool = True,
    protect: bool = False,
    file: str | None = None,
    line: int = 2,
    **extra: Any,
) -> LoadedSpec:
    """A LoadedSpec as spec.load_specs would build it (``extra``: sort, limit, ...)."""
    fields = {
        "name": name or spec_id.rsplit("/", 1)[-1].replace("-", " ").title(),
        "filter": flt if flt is not None else one_group(cond_string("country", "FR")),
        **extra,
    }
    managed = canonical_managed(fields)
    refs = sorted(
        {
            c["segment"]
            for _, c in conditions(managed["filter"])
            if c.get("kind") == "segment" and "segment" in c
        }
    )
    return LoadedSpec(
        id=spec_id,
        explicit_id=explicit_id,
        file=file or f"segments/{spec_id}.yaml",
        model=model,
        model_uuid=None,
        managed=managed,
        digest=digest(managed),
        refs=tuple(refs),
        protect=protect,
        file_sha256="0" * 64,
        line=line,
        column=1,
    )


def entry_for(
    spec: LoadedSpec,
    *,
    uuid: str | None = None,
    refs: dict[str, str] | None = None,
    applied: dict[str, Any] | None = None,
    **overrides: Any,
) -> Entry:
    """The state entry of ``spec`` as apply would have recorded it."""
    managed = applied if applied is not None else spec.managed
    fields: dict[str, Any] = {
        "uuid": uuid or uuid_for(spec.id),
        "model": spec.model_ref,
        "model_uuid": "11111111-0000-4000-8000-000000000001",
        "applied": managed,
        "digest": digest(managed),
        "refs": refs if refs is not None else {r: uuid_for(r) for r in spec.refs},
        "protect": spec.protect,
        "file": spec.file,
        "applied_at": T0,
    }
    fields.update(overrides)
    return Entry(**fields)


def state_of(entries: dict[str, Entry], serial: int = 3) -> State:
    return State(serial=serial, lineage=LINEAGE, segments=entries)


def intent(op: str) -> Intent:
    return Intent(op=op, at=T0)  # type: ignore[arg-type]


GOLDEN_DIR = Path(__file__).parent / "golden"


def assert_golden(name: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/<name>``; SEGSYNC_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN_DIR / name
    if os.environ.get("SEGSYNC_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        return
    assert path.exists(), f"{path} is missing; run with SEGSYNC_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_bytes().decode("utf-8")


def every_kind_plan() -> Plan:
    """A plan with one action of every kind (and a referrer of the recreated segment)."""
    eu = make_spec(
        "sales/enterprise-eu",
        "Enterprise EU",
        flt={
            "conjonction": "and",
            "groups": [
                {
                    "conjonction": "and",
                    "conditions": [
                        cond_segment("sales/icp"),
                        cond_string("country", "FR", "DE"),
                        cond_number("employee_count", 500),
                        {
                            "kind": "date",
                            "columnSlug": "founded_at",
                            "operator": "between",
                            "firstValue": "2020-01-01",
                            "lastValue": "2021-01-01",
                        },
                    ],
                },
                {
                    "conjonction": "or",
                    "conditions": [
                        {"kind": "boolean", "columnSlug": "is_customer", "operator": "isFalse"},
                        {"kind": "string", "columnSlug": "owner", "operator": "isNull"},
                    ],
                },
            ],
        },
        sort=[{"columnSlug": "arr", "kind": "desc"}],
        limit=250,
        trackingColumnSlugs=["stage"],
    )
    icp = make_spec(
        "sales/icp",
        "ICP accounts",
        flt=one_group(cond_string("industry", "Software", "SaaS")),
        limit=500,
    )
    icp_old = make_spec(
        "sales/icp", "ICP accounts", flt=one_group(cond_string("industry", "Software")), limit=100
    )
    leads_old = make_spec("marketing/leads", "Leads", model="companies")
    leads = make_spec("marketing/leads", "Leads", model="contacts", line=3)
    churned = make_spec("old/churned", "Churned accounts")
    kept = make_spec("old/kept", "Kept for finance", protect=True)
    smb_old = make_spec("sales/small-business", "SMB", explicit_id=False, limit=10)
    smb = make_spec("sales/smb", "SMB", explicit_id=False, limit=20)
    gone = make_spec("sales/gone", "Deleted by hand")
    stable = make_spec("sales/stable", "Stable")
    state = state_of(
        {
            "sales/icp": entry_for(icp_old),
            "marketing/leads": entry_for(leads_old),
            "old/churned": entry_for(churned),
            "old/kept": entry_for(kept),
            "sales/small-business": entry_for(smb_old),
            "sales/gone": entry_for(gone),
            "sales/stable": entry_for(stable),
        }
    )
    specs = [eu, icp, leads, smb, gone, stable]
    return make_plan(
        specs, state, prune=True, cargo=cargo_of(specs, state, {"sales/gone": None})
    )


MODEL_UUIDS = {
    "companies": "11111111-0000-4000-8000-000000000001",
    "contacts": "11111111-0000-4000-8000-000000000002",
}


def cargo_of(
    specs: list[LoadedSpec], state: State, remote: dict[str, dict[str, Any] | None]
) -> Cargo:
    """What Cargo would hold: every entry's segment live as applied, except those named in
    ``remote`` (spec id -> the live segment, or None when Cargo no longer has it)."""
    models = {s.model_ref: {"uuid": MODEL_UUIDS[s.model_ref]} for s in specs}
    uuids = {sid: e.uuid for sid, e in state.segments.items() if e.uuid}
    live: dict[str, dict[str, Any]] = {}
    for sid, entry in state.segments.items():
        if entry.uuid is None:
            continue
        if sid in remote:
            segment = remote[sid]
            if segment is None:
                continue
        else:
            refs = {ref: uuids.get(ref, "gone") for ref in entry.refs}
            segment = to_wire(entry.applied or {}, ref_uuids=refs)
        live[entry.uuid] = {"uuid": entry.uuid, "modelUuid": entry.model_uuid, **segment}
    return Cargo(models=models, live=live)
