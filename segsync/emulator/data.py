"""Demo workspace served by the emulator: datasets, models, typed columns and generated records.

Every UUID is derived from the workspace name (uuid5, then stamped as version 4 so it passes the
v4 pattern Cargo documents), so one name always gives the same UUIDs and two names give two
disjoint workspaces with the same slugs. Records are generated with a fixed seed and are the same
in every workspace.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

DEFAULT_WORKSPACE = "demo"
RECORD_SEED = 20251127
FIXTURE_TIME = "2025-01-01T00:00:00.000Z"

_NAMESPACE = uuid.UUID("0b6f3c1e-59a4-4d2b-9c6e-7f1a2b3c4d5e")


def derive_uuid(workspace: str, *parts: str) -> str:
    """A stable UUID for ``parts`` in ``workspace``, formatted as a v4 UUID."""
    raw = uuid.uuid5(_NAMESPACE, "\x1f".join((workspace, *parts)))
    return str(uuid.UUID(bytes=raw.bytes, version=4))


@dataclass(frozen=True)
class ColumnDef:
    """One column of a demo model; ``kind`` is "original" or an additional-column kind."""

    slug: str
    type: str
    label: str
    kind: str = "original"
    properties: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"slug": self.slug, "type": self.type, "label": self.label}
        if self.properties is not None:
            data["properties"] = list(self.properties)
        data["kind"] = self.kind
        if self.kind == "original":
            data["originalSlug"] = self.slug
        return data


@dataclass(frozen=True)
class ModelDef:
    slug: str
    name: str
    dataset_slug: str
    columns: tuple[ColumnDef, ...]
    additional_columns: tuple[ColumnDef, ...]
    id_column: str
    title_column: str
    time_column: str | None
    deleted_at: str | None = None


@dataclass(frozen=True)
class DatasetDef:
    slug: str
    kind: str  # "native" or "connector"


DATASETS: tuple[DatasetDef, ...] = (
    DatasetDef("crm", "native"),
    DatasetDef("warehouse", "connector"),
)

_C = ColumnDef

MODELS: tuple[ModelDef, ...] = (
    ModelDef(
        slug="companies",
        name="Companies",
        dataset_slug="crm",
        columns=(
            _C("name", "string", "Name"),
            _C("domain", "string", "Domain"),
            _C("country", "string", "Country"),
            _C("industry", "string", "Industry"),
            _C("employee_count", "number", "Employee count"),
            _C("arr", "number", "ARR"),
            _C("founded_at", "date", "Founded at"),
            _C("last_activity_at", "date", "Last activity at"),
            _C("is_customer", "boolean", "Is customer"),
            _C("stage", "string", "Stage"),
            _C("owner", "string", "Owner"),
            _C("tags", "array", "Tags"),
            _C("address", "object", "Address", properties=("city", "zip", "street")),
            _C("embedding", "vector", "Embedding"),
            _C("raw", "any", "Raw"),
        ),
        additional_columns=(_C("revenue_band", "string", "Revenue band", kind="computed"),),
        id_column="domain",
        title_column="name",
        time_column="last_activity_at",
    ),
    ModelDef(
        slug="contacts",
        name="Contacts",
        dataset_slug="crm",
        columns=(
            _C("email", "string", "Email"),
            _C("first_name", "string", "First name"),
            _C("last_name", "string", "Last name"),
            _C("title", "string", "Title"),
            _C("seniority", "string", "Seniority"),
            _C("country", "string", "Country"),
            _C("company_domain", "string", "Company domain"),
            _C("lead_score", "number", "Lead score"),
            _C("last_seen_at", "date", "Last seen at"),
            _C("is_subscribed", "boolean", "Is subscribed"),
            _C("signup_at", "date", "Signup at"),
            _C("preferences", "object", "Preferences", properties=("channel", "language")),
            _C("topics", "array", "Topics"),
        ),
        additional_columns=(_C("company_name", "string", "Company name", kind="lookup"),),
        id_column="email",
        title_column="email",
        time_column="last_seen_at",
    ),
    # A removed model: clients must skip models whose deletedAt is set.
    ModelDef(
        slug="accounts_legacy",
        name="Accounts (legacy)",
        dataset_slug="warehouse",
        columns=(_C("name", "string", "Name"), _C("domain", "string", "Domain")),
        additional_columns=(),
        id_column="domain",
        title_column="name",
        time_column=None,
        deleted_at="2025-03-01T00:00:00.000Z",
    ),
)


@dataclass(frozen=True)
class ModelInfo:
    """What the validator and evaluator need to know about one model."""

    uuid: str
    slug: str
    dataset_uuid: str
    deleted: bool
    column_types: Mapping[str, str]
    properties: Mapping[str, tuple[str, ...] | None]
    column_order: tuple[str, ...]
    columns_json: tuple[dict[str, Any], ...] = field(default=())


@dataclass(frozen=True)
class Catalog:
    """The datasets, models and records of one emulated workspace."""

    workspace_name: str
    workspace_uuid: str
    user_uuid: str
    datasets: tuple[dict[str, Any], ...]
    models: tuple[dict[str, Any], ...]
    model_info: Mapping[str, ModelInfo]
    records: Mapping[str, tuple[dict[str, Any], ...]]

    def fixture_segment_uuid(self, key: str) -> str:
        return derive_uuid(self.workspace_name, "segment", key)


def _slug_of(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


@lru_cache(maxsize=16)
def build_catalog(workspace: str = DEFAULT_WORKSPACE) -> Catalog:
    """The catalog of ``workspace`` (cached: a catalog is immutable)."""
    ws_uuid = derive_uuid(workspace, "workspace")
    dataset_uuids = {d.slug: derive_uuid(workspace, "dataset", d.slug) for d in DATASETS}
    datasets: list[dict[str, Any]] = []
    for d in DATASETS:
        ds: dict[str, Any] = {
            "uuid": dataset_uuids[d.slug],
            "workspaceUuid": ws_uuid,
            "slug": d.slug,
            "kind": d.kind,
        }
        if d.kind == "connector":
            ds["connectorUuid"] = derive_uuid(workspace, "connector", d.slug)
        ds.update({"createdAt": FIXTURE_TIME, "updatedAt": FIXTURE_TIME, "deletedAt": None})
        datasets.append(ds)

    models: list[dict[str, Any]] = []
    infos: dict[str, ModelInfo] = {}
    records: dict[str, tuple[dict[str, Any], ...]] = {}
    all_records = _demo_records()
    for m in MODELS:
        m_uuid = derive_uuid(workspace, "model", m.dataset_slug, m.slug)
        columns = [c.to_json() for c in m.columns]
        additional = [c.to_json() for c in m.additional_columns]
        models.append(
            {
                "uuid": m_uuid,
                "workspaceUuid": ws_uuid,
                "datasetUuid": dataset_uuids[m.dataset_slug],
                "slug": m.slug,
                "name": m.name,
                "description": None,
                "kind": "custom",
                "columns": columns,
                "additionalColumns": additional,
                "idColumnSlug": m.id_column,
                "titleColumnSlug": m.title_column,
                "timeColumnSlug": m.time_column,
                "segmentsCount": 0,
                "config": {},
                "schedule": None,
                "lastRun": None,
                "createdAt": FIXTURE_TIME,
                "updatedAt": m.deleted_at or FIXTURE_TIME,
                "deletedAt": m.deleted_at,
            }
        )
        every = (*m.columns, *m.additional_columns)
        infos[m_uuid] = ModelInfo(
            uuid=m_uuid,
            slug=m.slug,
            dataset_uuid=dataset_uuids[m.dataset_slug],
            deleted=m.deleted_at is not None,
            column_types={c.slug: c.type for c in every},
            properties={c.slug: c.properties for c in every},
            column_order=tuple(c.slug for c in every),
            columns_json=tuple(
                {"slug": c.slug, "type": c.type, "label": c.label, "modelUuid": m_uuid}
                for c in every
            ),
        )
        records[m_uuid] = all_records.get(m.slug, ())
    return Catalog(
        workspace_name=workspace,
        workspace_uuid=ws_uuid,
        user_uuid=derive_uuid(workspace, "user", "emulator"),
        datasets=tuple(datasets),
        models=tuple(models),
        model_info=infos,
        records=records,
    )


# --------------------------------------------------------------------------- records

_PREFIXES = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Aperture",
    "Wonka",
    "Gringotts",
    "Oscorp",
    "Pied",
    "Nakatomi",
    "Monarch",
    "Massive",
    "Dunder",
)
_SUFFIXES = ("Labs", "Systems", "Analytics", "Holdings", "Cloud", "Networks", "Foods", "Bank")
_COUNTRIES = ("US", "FR", "DE", "GB", "ES", "NL", "CA", "JP", "BR", "IN")
_INDUSTRIES = ("software", "finance", "retail", "healthcare", "manufacturing", "education")
_STAGES = ("lead", "qualified", "opportunity", "customer", "churned")
_OWNERS = ("alice@example.com", "bob@example.com", "chloe@example.com", "dmitri@example.com")
_TAGS = ("enterprise", "smb", "partner", "priority", "beta", "expansion")
_CITIES = ("Paris", "Berlin", "London", "Madrid", "Austin", "Toronto", "Tokyo", "Lyon")
_FIRST = (
    "Ada",
    "Linus",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Ken",
    "Margaret",
    "Donald",
    "Frances",
)
_LAST = (
    "Lovelace",
    "Torvalds",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Thompson",
    "Hamilton",
    "Knuth",
    "Allen",
)
_TITLES = ("CEO", "CTO", "VP Sales", "Head of Marketing", "Engineer", "Analyst", "RevOps Manager")
_SENIORITY = ("c_level", "vp", "director", "manager", "individual")
_TOPICS = ("pricing", "security", "integrations", "onboarding", "api", "reporting")
_CHANNELS = ("email", "phone", "slack")
_LANGUAGES = ("en", "fr", "de", "es")

_EPOCH = date(1990, 1, 1)
_ACTIVITY_START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _maybe(rng: random.Random, null_rate: float, value: Any) -> Any:
    return None if rng.random() < null_rate else value


def _revenue_band(arr: Any) -> str | None:
    if arr is None:
        return None
    if arr < 1_000_000:
        return "<1M"
    return "1M-10M" if arr < 10_000_000 else ">10M"


def _companies(rng: random.Random, count: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(count):
        name = f"{rng.choice(_PREFIXES)} {rng.choice(_SUFFIXES)} {i + 1}"
        stage = rng.choice(_STAGES)
        employees = rng.choice((5, 12, 40, 80, 150, 300, 700, 1500, 4000, 12000))
        employees = employees + rng.randrange(0, max(1, employees // 2))
        arr_value: int | float | None = _maybe(rng, 0.1, round(employees * rng.uniform(800, 3000)))
        if arr_value is not None and i % 7 == 0:
            arr_value = arr_value + 0.5
        industry_roll = rng.random()
        industry = (
            None
            if industry_roll < 0.05
            else ""
            if industry_roll < 0.08
            else rng.choice(_INDUSTRIES)
        )
        tags_roll = rng.random()
        tags = (
            None
            if tags_roll < 0.05
            else []
            if tags_roll < 0.25
            else sorted(rng.sample(_TAGS, rng.randint(1, 3)))
        )
        row: dict[str, Any] = {
            "_id": f"cmp_{i + 1:04d}",
            "name": name,
            "domain": f"{_slug_of(name)}.{rng.choice(('com', 'io', 'fr', 'de', 'co.uk'))}",
            "country": _maybe(rng, 0.03, rng.choice(_COUNTRIES)),
            "industry": industry,
            "employee_count": _maybe(rng, 0.05, employees),
            "arr": arr_value,
            "founded_at": _maybe(
                rng, 0.05, (_EPOCH + timedelta(days=rng.randrange(12_700))).isoformat()
            ),
            "last_activity_at": _maybe(
                rng, 0.1, _timestamp(_ACTIVITY_START + timedelta(seconds=rng.randrange(63_000_000)))
            ),
            "is_customer": _maybe(rng, 0.03, stage == "customer"),
            "stage": stage,
            "owner": _maybe(rng, 0.05, rng.choice(_OWNERS)),
            "tags": tags,
            "address": _maybe(
                rng,
                0.1,
                {
                    "city": rng.choice(_CITIES),
                    "zip": f"{rng.randrange(10000, 99999)}",
                    "street": f"{rng.randrange(1, 200)} {rng.choice(_LAST)} Street",
                },
            ),
            "embedding": _maybe(rng, 0.3, [round(rng.uniform(-1, 1), 3) for _ in range(4)]),
            "raw": _maybe(rng, 0.5, {"source": rng.choice(("import", "api", "form"))}),
        }
        row["revenue_band"] = _revenue_band(row["arr"])
        rows.append(row)
    return rows


def _contacts(
    rng: random.Random, count: int, companies: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        company = rng.choice(companies)
        title = _maybe(rng, 0.08, rng.choice(_TITLES))
        row: dict[str, Any] = {
            "_id": f"cnt_{i + 1:04d}",
            "email": f"{first.lower()}.{last.lower()}{i + 1}@{company['domain']}",
            "first_name": first,
            "last_name": last,
            "title": title,
            "seniority": _maybe(rng, 0.1, rng.choice(_SENIORITY)),
            "country": _maybe(rng, 0.05, company["country"] or rng.choice(_COUNTRIES)),
            "company_domain": company["domain"],
            "lead_score": _maybe(rng, 0.1, rng.randrange(0, 101)),
            "last_seen_at": _maybe(
                rng,
                0.15,
                _timestamp(_ACTIVITY_START + timedelta(seconds=rng.randrange(63_000_000))),
            ),
            "is_subscribed": _maybe(rng, 0.05, rng.random() < 0.6),
            "signup_at": (date(2019, 1, 1) + timedelta(days=rng.randrange(2_000))).isoformat(),
            "preferences": _maybe(
                rng, 0.2, {"channel": rng.choice(_CHANNELS), "language": rng.choice(_LANGUAGES)}
            ),
            "topics": sorted(rng.sample(_TOPICS, rng.randint(0, 3))),
            "company_name": company["name"],
        }
        rows.append(row)
    return rows


@lru_cache(maxsize=1)
def _demo_records() -> dict[str, tuple[dict[str, Any], ...]]:
    rng = random.Random(RECORD_SEED)
    companies = _companies(rng, 300)
    contacts = _contacts(rng, 400, companies)
    return {"companies": tuple(companies), "contacts": tuple(contacts)}
