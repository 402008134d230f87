"""`segsync import` end to end: segments made directly in the emulator's store (as a person would
in Cargo's UI), then the command line run in this process (click's CliRunner) in the test's
folder, against the emulator over HTTP on a free loopback port.

What is checked: the files import writes (paths, whole text, references by spec id), that the
next plan shows no changes and the next apply sends no write, that a second import writes
nothing, that --dry-run/--match/--model restrict what is written, that no file is ever
overwritten, that `import --uuid --id` binds an existing spec, and that play-owned segments are
never imported.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from segsync.emulator.server import Emulator
from segsync.emulator.store import PLAY_SEGMENT_NAME, WORKFLOW_SEGMENT_NAME
from segsync.state import read_state
from tests.helpers import (
    EXAMPLES,
    Calls,
    process_against,
    record_calls,
    run_against,
    spec_text,
    write_spec,
)

# A token no output may ever contain; every run below checks it.
TOKEN = "import-Secret-Token-5c2e8a"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
STATE = "segsync.state.json"



def segsync(emu: Emulator, *args: str) -> Result:
    """Run the command line in the current folder; the token must not leak."""
    return run_against(emu, TOKEN, *args)


def record(emu: Emulator) -> Calls:
    """The creates, updates and deletes that reach the emulator's store."""
    return record_calls(emu, lists=False)


def segsync_process(emu: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m segsync ARGS`` as a real process in the current folder."""
    return process_against(emu, TOKEN, *args)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (relative posix path -> bytes)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def model_uuid(emu: Emulator, slug: str) -> str:
    return str(next(m["uuid"] for m in emu.catalog.models if m["slug"] == slug))


# --- segment bodies, as Cargo's API takes them ---------------------------------------------------


def string(column: str, operator: str, *values: str) -> dict[str, Any]:
    return {"kind": "string", "columnSlug": column, "operator": operator, "values": list(values)}


def number(column: str, operator: str, value: float) -> dict[str, Any]:
    return {"kind": "number", "columnSlug": column, "operator": operator, "value": value}


def boolean(column: str, operator: str) -> dict[str, Any]:
    return {"kind": "boolean", "columnSlug": column, "operator": operator}


def date(column: str, operator: str, value: str) -> dict[str, Any]:
    return {"kind": "date", "columnSlug": column, "operator": operator, "value": value}


def in_segment(uuid: str, operator: str = "in") -> dict[str, Any]:
    return {"kind": "segment", "operator": operator, "segmentUuid": uuid}


def body(
    emu: Emulator,
    model: str,
    name: str,
    *groups: list[dict[str, Any]],
    conjonction: str = "and",
    sort: list[tuple[str, str]] | None = None,
    limit: int | None = None,
    tracking: list[str] | None = None,
) -> dict[str, Any]:
    """A create body: ``groups`` of ANDed conditions, joined by ``conjonction``."""
    data: dict[str, Any] = {
        "modelUuid": model_uuid(emu, model),
        "name": name,
        "filter": {
            "conjonction": conjonction,
            "groups": [{"conjonction": "and", "conditions": g} for g in groups],
        },
    }
    if sort is not None:
        data["sort"] = [{"columnSlug": column, "kind": kind} for column, kind in sort]
    if limit is not None:
        data["limit"] = limit
    if tracking is not None:
        data["trackingColumnSlugs"] = tracking
    return data


#: name -> the spec id import gives it (written out by hand: the slug rule is part of the test).
SPEC_IDS = {
    "ICP accounts": "companies/icp-accounts",
    "Enterprise EU": "companies/enterprise-eu",
    "Young startups": "companies/young-startups",
    "Stale opportunities": "companies/stale-opportunities",
    "Customers": "companies/customers",
    "Customers: France": "companies/customers-france",
    "Customers: France (1000+ staff)": "companies/customers-france-1000-staff",
    "SaaS in the Nordics": "companies/saas-in-the-nordics",
    "Churn risk": "companies/churn-risk",
    "Owners: Alice & Bob": "companies/owners-alice-bob",
    "Large ARR": "companies/large-arr",
    "Recently active": "companies/recently-active",
    "Decision makers (non-US)": "contacts/decision-makers-non-us",
    "Decision makers in France": "contacts/decision-makers-in-france",
    "Newsletter - engaged subscribers": "contacts/newsletter-engaged-subscribers",
    "Engaged decision makers": "contacts/engaged-decision-makers",
    "High lead score": "contacts/high-lead-score",
    "Heads of": "contacts/heads-of",
    "French contacts": "contacts/french-contacts",
    "Unsubscribed": "contacts/unsubscribed",
}
#: name -> the names its filter references (by segmentUuid in Cargo, by spec id once imported).
REFERENCES = {
    "Enterprise EU": ["ICP accounts"],
    "Young startups": ["ICP accounts"],
    "Customers: France": ["Customers"],
    "Customers: France (1000+ staff)": ["Customers: France"],
    "Churn risk": ["Customers"],
    "Decision makers in France": ["Decision makers (non-US)"],
    "Engaged decision makers": ["Decision makers (non-US)", "Newsletter - engaged subscribers"],
}


def seed(emu: Emulator) -> dict[str, str]:
    """Create the 20 segments of SPEC_IDS in the store, referenced ones first; name -> uuid."""
    u: dict[str, str] = {}

    def make(data: dict[str, Any]) -> None:
        u[data["name"]] = emu.store.create(data)["uuid"]

    # Companies. The first two hold exactly the fields of the repository's examples.
    make(body(
        emu, "companies", "ICP accounts",
        [string("industry", "is", "Software", "SaaS", "Fintech"),
         {"kind": "number", "columnSlug": "employee_count", "operator": "between",
          "firstValue": 200, "lastValue": 5000},
         boolean("is_customer", "isFalse")],
        sort=[("employee_count", "desc")], tracking=["stage", "owner"],
    ))
    make(body(
        emu, "companies", "Enterprise EU",
        [in_segment(u["ICP accounts"]),
         string("country", "is", "FR", "DE", "ES", "IT", "NL", "BE", "SE"),
         number("arr", "greaterThan", 100000)],
        sort=[("arr", "desc")], limit=250, tracking=["stage"],
    ))
    make(body(
        emu, "companies", "Young startups",
        [{"kind": "date", "columnSlug": "founded_at", "operator": "between",
          "firstValue": "2020-01-01", "lastValue": "2023-12-31"},
         {"kind": "string", "columnSlug": "domain", "operator": "isNotEmpty"},
         in_segment(u["ICP accounts"], "notIn")],
        limit=1000,
    ))
    make(body(
        emu, "companies", "Stale opportunities",
        [string("stage", "is", "qualified", "opportunity"),
         date("last_activity_at", "lowerThan", "2025-01-01")],
        [string("stage", "is", "lead"),
         {"kind": "date", "columnSlug": "last_activity_at", "operator": "isNull"}],
        conjonction="or", sort=[("last_activity_at", "asc")],
    ))
    make(body(emu, "companies", "Customers", [boolean("is_customer", "isTrue")]))
    make(body(emu, "companies", "Customers: France",
              [in_segment(u["Customers"]), string("country", "is", "FR")]))
    make(body(emu, "companies", "Customers: France (1000+ staff)",
              [in_segment(u["Customers: France"]),
               number("employee_count", "greaterThan", 1000)],
              sort=[("employee_count", "desc"), ("arr", "desc")], limit=50))
    make(body(emu, "companies", "SaaS in the Nordics",
              [string("industry", "is", "SaaS"), string("country", "is", "SE", "NO", "DK", "FI")]))
    make(body(emu, "companies", "Churn risk",
              [in_segment(u["Customers"]), date("last_activity_at", "lowerThan", "2024-06-01")],
              tracking=["stage"]))
    make(body(emu, "companies", "Owners: Alice & Bob",
              [string("owner", "is", "alice@example.com", "bob@example.com")]))
    make(body(emu, "companies", "Large ARR", [number("arr", "greaterThan", 1000000)],
              sort=[("arr", "desc")], limit=100))
    make(body(emu, "companies", "Recently active",
              [date("last_activity_at", "greaterThan", "2025-06-01")]))
    # Contacts.
    make(body(
        emu, "contacts", "Decision makers (non-US)",
        [string("seniority", "is", "VP", "C-Level", "Director"),
         number("lead_score", "greaterThan", 60), string("country", "isNot", "US")],
        sort=[("lead_score", "desc")], limit=500,
    ))
    make(body(emu, "contacts", "Decision makers in France",
              [in_segment(u["Decision makers (non-US)"]), string("country", "is", "FR")]))
    make(body(
        emu, "contacts", "Newsletter - engaged subscribers",
        [boolean("is_subscribed", "isTrue"), date("last_seen_at", "greaterThan", "2025-06-01")],
        tracking=["title"],
    ))
    make(body(emu, "contacts", "Engaged decision makers",
              [in_segment(u["Decision makers (non-US)"]),
               in_segment(u["Newsletter - engaged subscribers"])]))
    make(body(emu, "contacts", "High lead score", [number("lead_score", "greaterThan", 80)],
              sort=[("lead_score", "desc")]))
    make(body(emu, "contacts", "Heads of", [string("title", "contains", "Head of", "Chief")]))
    make(body(emu, "contacts", "French contacts", [string("country", "is", "FR")], limit=10))
    make(body(emu, "contacts", "Unsubscribed", [boolean("is_subscribed", "isFalse")]))
    assert sorted(u) == sorted(SPEC_IDS)
    return u


def example_text(rel: str, replace: Mapping[str, str] = {}) -> str:
    """An example spec of the repository without its comment and ``id:`` lines."""
    lines = (EXAMPLES / rel).read_text(encoding="utf-8").splitlines(keepends=True)
    text = "".join(line for line in lines if not line.startswith(("#", "id: ")))
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command runs in the test's own folder."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def emu(emulator_factory: Callable[..., Emulator]) -> Emulator:
    """An emulator without fixture segments (the play fixture has its own test)."""
    return emulator_factory(token=TOKEN, fixtures=False)


# --- 1. import twenty segments ------------------------------------------------------------------


def test_import_twenty_segments_then_plan_and_apply_change_nothing(
    tmp_path: Path, emu: Emulator
) -> None:
    uuids = seed(emu)
    specs = tmp_path / "segments"

    proc = segsync(emu, "import")
    assert proc.exit_code == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[-1] == (
        f"Imported 20 segments into segments and recorded them in {STATE}; 0 skipped."
    )
    written = {
        name: f"segments/{spec_id}.yaml" for name, spec_id in SPEC_IDS.items()
    }
    assert sorted(lines[:-1]) == sorted(
        f"+ {written[name]}  {name!r}  (wrote; segment {uuids[name]})" for name in SPEC_IDS
    )
    assert sorted(snapshot(specs)) == sorted(f"{i}.yaml" for i in SPEC_IDS.values())

    # The state records each segment under its spec id, references included.
    state = read_state(tmp_path / STATE)
    assert state.workspace_uuid == emu.catalog.workspace_uuid
    assert {sid: e.uuid for sid, e in state.segments.items()} == {
        SPEC_IDS[name]: uuid for name, uuid in uuids.items()
    }
    for name, spec_id in SPEC_IDS.items():
        entry = state.segments[spec_id]
        assert entry.file == written[name] and entry.intent is None
        assert entry.model == spec_id.split("/")[0]
        assert entry.refs == {SPEC_IDS[r]: uuids[r] for r in REFERENCES.get(name, [])}

    # The files read like the examples: whole texts, references by spec id, no raw UUID.
    text = {name: (tmp_path / written[name]).read_text(encoding="utf-8") for name in SPEC_IDS}
    assert text["Enterprise EU"] == example_text(
        "sales/enterprise-eu.yaml", {"segment: sales/icp": "segment: companies/icp-accounts"}
    )
    assert text["ICP accounts"] == example_text("sales/icp.yaml")
    assert text["Customers: France (1000+ staff)"] == (
        'name: "Customers: France (1000+ staff)"\n'
        "model: companies\n"
        "filter:\n"
        "  conjonction: and\n"
        "  groups:\n"
        "    - conjonction: and\n"
        "      conditions:\n"
        "        - kind: segment\n"
        "          operator: in\n"
        "          segment: companies/customers-france\n"
        "        - kind: number\n"
        "          columnSlug: employee_count\n"
        "          operator: greaterThan\n"
        "          value: 1000\n"
        "sort:\n"
        "  - columnSlug: employee_count\n"
        "    kind: desc\n"
        "  - columnSlug: arr\n"
        "    kind: desc\n"
        "limit: 50\n"
    )
    assert text["Engaged decision makers"].endswith(
        "        - kind: segment\n"
        "          operator: in\n"
        "          segment: contacts/decision-makers-non-us\n"
        "        - kind: segment\n"
        "          operator: in\n"
        "          segment: contacts/newsletter-engaged-subscribers\n"
    )
    for name, body_text in text.items():
        assert "segmentUuid" not in body_text and not re.search(UUID, body_text), name
        assert body_text.startswith(f"name: {json.dumps(name) if ':' in name else name}\n"
                                    f"model: {SPEC_IDS[name].split('/')[0]}\nfilter:\n"), name
        for ref in REFERENCES.get(name, []):
            assert f"segment: {SPEC_IDS[ref]}\n" in body_text, (name, ref)

    # Valid specs; nothing to change offline, against Cargo, or when applied.
    check = segsync(emu, "validate")
    assert (check.exit_code, check.stdout) == (0, "20 specs, 0 errors\n")
    before = emu.store.raw_segments()
    calls = record(emu)
    for args in (("plan", "--detailed-exitcode"), ("plan", "--refresh", "--detailed-exitcode")):
        plan = segsync(emu, *args)
        assert (plan.exit_code, plan.stdout) == (0, "No changes. 20 segments up to date.\n")
    applied = segsync(emu, "apply", "--auto-approve")
    assert applied.exit_code == 0, applied.stderr
    assert applied.stdout.splitlines()[1:] == ["No changes. 20 segments up to date."]
    assert calls == {"create": [], "update": [], "delete": []}
    assert emu.store.raw_segments() == before

    # A second import: everything is managed already; nothing is written.
    files, state_bytes = snapshot(specs), (tmp_path / STATE).read_bytes()
    again = segsync(emu, "import")
    assert (again.exit_code, again.stdout) == (
        0, f"Imported 0 segments into segments and recorded them in {STATE}; 0 skipped.\n"
    )
    assert snapshot(specs) == files
    assert (tmp_path / STATE).read_bytes() == state_bytes
    assert calls == {"create": [], "update": [], "delete": []}


# --- 2. --dry-run, --match, --model, and files never overwritten ----------------------------


def test_dry_run_writes_nothing(tmp_path: Path, emu: Emulator) -> None:
    uuids = seed(emu)
    proc = segsync(emu, "import", "--dry-run")
    assert proc.exit_code == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "Dry run: 20 segments would be imported, 0 skipped; nothing was written."
    assert sorted(lines[:-1]) == sorted(
        f"+ segments/{SPEC_IDS[name]}.yaml  {name!r}  (would write; segment {uuids[name]})"
        for name in SPEC_IDS
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder, state or lock file


def test_match_and_model_restrict_what_is_imported(tmp_path: Path, emu: Emulator) -> None:
    uuids = seed(emu)

    # Only contacts whose name starts with "Decision": one references the other.
    proc = segsync(emu, "import", "--model", "contacts", "--match", "Decision *")
    assert proc.exit_code == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"+ segments/contacts/decision-makers-in-france.yaml  'Decision makers in France'  "
        f"(wrote; segment {uuids['Decision makers in France']})",
        f"+ segments/contacts/decision-makers-non-us.yaml  'Decision makers (non-US)'  "
        f"(wrote; segment {uuids['Decision makers (non-US)']})",
        f"Imported 2 segments into segments and recorded them in {STATE}; 0 skipped.",
    ]
    assert sorted(snapshot(tmp_path / "segments")) == [
        "contacts/decision-makers-in-france.yaml", "contacts/decision-makers-non-us.yaml",
    ]
    text = (tmp_path / "segments/contacts/decision-makers-in-france.yaml").read_text()
    assert "segment: contacts/decision-makers-non-us\n" in text

    # --model by UUID, and a glob on a model: the companies "Customers*" only.
    proc = segsync(emu, "import", "--model", model_uuid(emu, "companies"),
                   "--match", "Customers*")
    assert proc.exit_code == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == (
        f"Imported 3 segments into segments and recorded them in {STATE}; 0 skipped."
    )
    assert sorted(snapshot(tmp_path / "segments")) == [
        "companies/customers-france-1000-staff.yaml", "companies/customers-france.yaml",
        "companies/customers.yaml",
        "contacts/decision-makers-in-france.yaml", "contacts/decision-makers-non-us.yaml",
    ]
    # The glob is case-sensitive and matches the whole name.
    proc = segsync(emu, "import", "--match", "customers*")
    assert (proc.exit_code, proc.stdout.splitlines()[-1]) == (
        0, f"Imported 0 segments into segments and recorded them in {STATE}; 0 skipped."
    )
    # A segment referencing one an earlier import brought in names it by spec id.
    proc = segsync(emu, "import", "--match", "Churn risk")
    assert proc.exit_code == 0, proc.stderr
    churn = (tmp_path / "segments/companies/churn-risk.yaml").read_text()
    assert "segment: companies/customers\n" in churn  # managed by the earlier import

    state = read_state(tmp_path / STATE)
    assert sorted(state.segments) == [
        "companies/churn-risk", "companies/customers", "companies/customers-france",
        "companies/customers-france-1000-staff",
        "contacts/decision-makers-in-france", "contacts/decision-makers-non-us",
    ]
    plan = segsync(emu, "plan", "--refresh", "--detailed-exitcode")
    assert (plan.exit_code, plan.stdout) == (0, "No changes. 6 segments up to date.\n")

    # The rest, in one go: 14 more, and everything is managed.
    proc = segsync(emu, "import")
    assert proc.exit_code == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == (
        f"Imported 14 segments into segments and recorded them in {STATE}; 0 skipped."
    )
    plan = segsync(emu, "plan", "--refresh", "--detailed-exitcode")
    assert (plan.exit_code, plan.stdout) == (0, "No changes. 20 segments up to date.\n")


def test_a_raw_reference_to_a_segment_imported_later_stays_unchanged(
    tmp_path: Path, emu: Emulator
) -> None:
    base = emu.store.create(body(emu, "companies", "Base", [string("country", "is", "FR")]))
    emu.store.create(body(emu, "companies", "Child", [in_segment(base["uuid"])]))
    # Child alone first: its reference target is not managed, so the file keeps the UUID.
    assert segsync(emu, "import", "--match", "Child").exit_code == 0
    child = (tmp_path / "segments/companies/child.yaml").read_text(encoding="utf-8")
    assert child.endswith(f"          segmentUuid: {base['uuid']}\n")
    assert segsync(emu, "import").exit_code == 0  # then Base
    offline = segsync(emu, "plan", "--detailed-exitcode")
    assert (offline.exit_code, offline.stdout) == (0, "No changes. 2 segments up to date.\n")
    # Neither the file nor Cargo changed, yet a refreshed plan reports a drift of Child.
    refreshed = segsync(emu, "plan", "--refresh", "--detailed-exitcode")
    assert (refreshed.exit_code, refreshed.stdout) == (0, "No changes. 2 segments up to date.\n")


def test_an_unknown_model_is_an_error(tmp_path: Path, emu: Emulator) -> None:
    seed(emu)
    proc = segsync(emu, "import", "--model", "no_such_model")
    assert proc.exit_code == 1
    assert proc.stderr.startswith("error: ") and "no_such_model" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_existing_file_is_never_overwritten(tmp_path: Path, emu: Emulator) -> None:
    companies = model_uuid(emu, "companies")
    one = [string("country", "is", "FR")]
    alpha = emu.store.create(body(emu, "companies", "Alpha", one))["uuid"]
    beta = emu.store.create(body(emu, "companies", "Beta", one))["uuid"]
    gamma = emu.store.create(body(emu, "companies", "Gamma", one))["uuid"]
    specs = tmp_path / "segments"
    # A spec of the same name and model, not applied yet: apply adopts, import leaves it.
    write_spec(specs, "companies/alpha.yaml", spec_text("Alpha", limit=5))
    # Another spec already at the path Beta's file would take: Beta gets a numbered file.
    write_spec(specs, "companies/beta.yaml", spec_text("Not beta"))
    # A file appearing at Gamma's path while import runs (after it read the specs folder).
    late = b"# written by someone else meanwhile\n"
    cls = type(emu.store)
    list_segments = cls.list_segments.__get__(emu.store)

    def list_and_write(model: str | None = None) -> Any:
        if model == companies and not (specs / "companies/gamma.yaml").exists():
            (specs / "companies/gamma.yaml").write_bytes(late)
        return list_segments(model)

    emu.store.list_segments = list_and_write  # type: ignore[method-assign]
    before = snapshot(specs)

    proc = segsync(emu, "import")
    assert proc.exit_code == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"+ segments/companies/beta-2.yaml  'Beta'  (wrote; segment {beta})",
        f"skipped {alpha} 'Alpha': segments/companies/alpha.yaml already names a segment with "
        "this name on this model; `segsync apply` adopts it when its fields are the same, or "
        f"run `segsync import --uuid {alpha} --id companies/alpha`",
        f"skipped {gamma} 'Gamma': segments/companies/gamma.yaml exists; segsync never "
        "overwrites a file",
        f"Imported 1 segment into segments and recorded them in {STATE}; 2 skipped.",
    ]
    after = snapshot(specs)
    assert {k: after[k] for k in before} == before  # not one byte changed
    assert after["companies/gamma.yaml"] == late
    assert sorted(after) == ["companies/alpha.yaml", "companies/beta-2.yaml",
                             "companies/beta.yaml", "companies/gamma.yaml"]
    assert sorted(read_state(tmp_path / STATE).segments) == ["companies/beta-2"]


# --- 3. import --uuid --id: bind a spec to a live segment --------------------------------------


def test_bind_a_spec_to_a_live_segment_then_plan_shows_one_update(
    tmp_path: Path, emu: Emulator
) -> None:
    live = emu.store.create(body(emu, "companies", "Key accounts",
                                 [string("country", "is", "FR", "DE")], limit=100))
    write_spec(tmp_path / "segments", "sales/key.yaml",
               spec_text("Key accounts", countries=("FR", "DE"), limit=500))
    state_path = tmp_path / STATE

    # Before the bind, apply would refuse to create a namesake with other fields.
    blocked = segsync(emu, "plan", "--refresh", "--format", "json")
    assert blocked.exit_code == 0
    (action,) = json.loads(blocked.stdout)["actions"]
    assert action["action"] == "create"

    proc = segsync(emu, "import", "--uuid", live["uuid"], "--id", "sales/key")
    assert proc.exit_code == 0, proc.stderr
    assert proc.stdout == (
        f"sales/key (segments/sales/key.yaml) now manages segment {live['uuid']} "
        "'Key accounts'; run `segsync plan` to see what apply would change in it\n"
    )
    entry = read_state(state_path).segments["sales/key"]
    assert entry.uuid == live["uuid"] and entry.model_uuid == live["modelUuid"]

    for args in (("plan", "--format", "json"), ("plan", "--refresh", "--format", "json")):
        plan = segsync(emu, *args)
        assert plan.exit_code == 0, plan.stderr
        data = json.loads(plan.stdout)
        assert data["actions"] == [{
            "action": "update", "changes": [{"field": "limit", "new": 500, "old": 100}],
            "file": "segments/sales/key.yaml", "id": "sales/key", "model": "companies",
            "name": "Key accounts", "uuid": live["uuid"],
        }]
        assert data["summary"]["update"] == 1
        assert sum(data["summary"].values()) == 1

    calls = record(emu)
    proc = segsync(emu, "apply", "--auto-approve")
    assert proc.exit_code == 0, proc.stderr
    assert calls == {"create": [], "update": [(live["uuid"], {"limit": 500})], "delete": []}
    plan = segsync(emu, "plan", "--refresh", "--detailed-exitcode")
    assert (plan.exit_code, plan.stdout) == (0, "No changes. 1 segment up to date.\n")


def test_bind_refusals_leave_the_state_alone(tmp_path: Path, emu: Emulator) -> None:
    one = [string("country", "is", "FR")]
    first = emu.store.create(body(emu, "companies", "First", one))["uuid"]
    people = emu.store.create(body(emu, "contacts", "People", one))["uuid"]
    write_spec(tmp_path / "segments", "a.yaml", spec_text("First"))
    proc = segsync(emu, "import", "--uuid", first, "--id", "a")
    assert proc.exit_code == 0, proc.stderr
    state_bytes = (tmp_path / STATE).read_bytes()
    write_spec(tmp_path / "segments", "b.yaml", spec_text("Second"))

    # Refused once Cargo is being read (a real process each: see segsync_process) ...
    for args, message in {
        ("--uuid", first, "--id", "nope"): "no spec has the id 'nope'",
        ("--uuid", first, "--id", "b"): f"segment {first} is already managed by a",
        ("--uuid", people, "--id", "b"): f"segment {people} is on model",
    }.items():
        proc = segsync_process(emu, "import", *args)
        assert (proc.returncode, proc.stdout) == (1, ""), args
        assert proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr
        assert (tmp_path / STATE).read_bytes() == state_bytes
    # ... and before.
    for args, message in {
        ("--uuid", first): "--uuid and --id go together",
        ("--uuid", people, "--id", "b", "--dry-run"): "--uuid/--id bind one segment",
    }.items():
        result = segsync(emu, "import", *args)
        assert (result.exit_code, result.stdout) == (1, ""), args
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
        assert (tmp_path / STATE).read_bytes() == state_bytes


# --- 8. play-owned segments --------------------------------------------------------------------


def test_play_segments_are_never_imported(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    emu = emulator_factory(token=TOKEN)  # with the fixture segments
    by_name = {s["name"]: s for s in emu.store.raw_segments()}
    play = by_name[PLAY_SEGMENT_NAME]
    assert play["fromPlay"] is True
    workflow = by_name[WORKFLOW_SEGMENT_NAME]
    skip = (f"skipped {play['uuid']} {PLAY_SEGMENT_NAME!r}: owned by a play (fromPlay): "
            "segsync never manages it")

    proc = segsync(emu, "import", "--match", "GENERATED*")
    assert proc.exit_code == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        skip, f"Imported 0 segments into segments and recorded them in {STATE}; 1 skipped."
    ]
    assert not (tmp_path / "segments").exists() and not (tmp_path / STATE).exists()

    proc = segsync(emu, "import")
    assert proc.exit_code == 0, proc.stderr
    wf_file = "segments/companies/fixture-churn-risk-customers-linked-to-a-workflow.yaml"
    assert proc.stdout.splitlines() == [
        f"+ {wf_file}  {WORKFLOW_SEGMENT_NAME!r}  (wrote; segment {workflow['uuid']})",
        skip,
        f"Imported 1 segment into segments and recorded them in {STATE}; 1 skipped.",
    ]
    assert sorted(snapshot(tmp_path / "segments")) == [wf_file.removeprefix("segments/")]
    state = read_state(tmp_path / STATE)
    assert [e.uuid for e in state.segments.values()] == [workflow["uuid"]]
    plan = segsync(emu, "plan", "--refresh", "--detailed-exitcode")
    assert (plan.exit_code, plan.stdout) == (0, "No changes. 1 segment up to date.\n")

    # Binding a spec to the play segment is refused too (a spec cannot even take its name).
    write_spec(tmp_path / "segments", "play.yaml", spec_text("Opportunities"))
    state_bytes = (tmp_path / STATE).read_bytes()
    proc = segsync_process(emu, "import", "--uuid", play["uuid"], "--id", "play")
    assert proc.returncode == 1
    assert proc.stderr == (
        f"error: segment {play['uuid']} is owned by a play; segsync never manages it\n"
    )
    assert (tmp_path / STATE).read_bytes() == state_bytes
