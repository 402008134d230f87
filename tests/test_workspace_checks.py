"""Checks against the workspace and warnings, end to end: `segsync validate --remote`,
`plan --refresh` and `apply` on specs that are valid on their own but wrong for the workspace's
columns; `segsync columns`; the warnings of `validate` and `plan` (golden files
``tests/golden/warnings_*``, regenerated with ``SEGSYNC_UPDATE_GOLDEN=1``).

The command line runs in this process (click's CliRunner) in the test's folder, against an
emulator on a loopback port. Every run below that reaches Cargo stops only after apply's
background reads of the workspace, datasets and models have been waited for (the column checks
need the models), so none of them needs a process of its own (see tests/test_cli_apply.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from plan_fixtures import assert_golden

from segsync.emulator.server import Emulator
from tests.helpers import EXAMPLES, run_cli, write_spec


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command runs in the test's own folder, with no CARGO_/SEGSYNC_ variable set
    (SEGSYNC_UPDATE_GOLDEN is the tests' own)."""
    for name in list(os.environ):
        if name.startswith(("CARGO_", "SEGSYNC_")) and name != "SEGSYNC_UPDATE_GOLDEN":
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)


def segsync(*args: str, emu: Emulator | None = None) -> tuple[int, str, str]:
    """``segsync ARGS``: (exit code, stdout, stderr); against ``emu`` when given."""
    env = {"CARGO_API_URL": emu.url, "CARGO_API_TOKEN": emu.token} if emu is not None else None
    result = run_cli(args, env=env)
    if emu is not None:
        assert emu.token not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def model_uuid(emu: Emulator, slug: str) -> str:
    (uuid,) = [m["uuid"] for m in emu.catalog.models if m["slug"] == slug]
    return str(uuid)


# --- 1. column mistakes, found before anything is sent --------------------------------------

# Six mistakes in three files; the misspelt object column of a matchConditions condition is
# written twice (a property condition repeats its parent's columnSlug, which offline validation
# requires), and each place is reported: 7 errors.
ACCOUNTS = """\
name: Accounts in France and Germany
model: companies
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - kind: string
          columnSlug: contry
          operator: is
          values: [FR, DE]
sort:
  - columnSlug: employe_count
    kind: desc
"""
ADDRESSES = """\
name: Parisian accounts
model: companies
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - kind: object
          columnSlug: adress
          operator: matchConditions
          conjonction: and
          propertyConditions:
            - kind: objectProperty
              columnSlug: adress
              operator: is
              propertyName: city
              value: Paris
        - kind: objectProperty
          columnSlug: address
          operator: isNull
          propertyName: zipcode
"""
TRACKED = """\
name: Scored contacts
model: contacts
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - kind: string
          columnSlug: lead_score
          operator: isNotEmpty
trackingColumnSlugs: [title, lead_scor]
"""
COLUMN_ERRORS = [
    "segments/marketing/tracked.yaml:8:17: filter.groups[0].conditions[0].kind: kind 'string' "
    "does not match column 'lead_score' of model 'contacts', which is of type 'number' (Cargo "
    "would match no records)",
    "segments/marketing/tracked.yaml:11:30: trackingColumnSlugs[1]: unknown column 'lead_scor' "
    "on model 'contacts' (did you mean 'lead_score'?)",
    "segments/sales/accounts.yaml:9:23: filter.groups[0].conditions[0].columnSlug: unknown "
    "column 'contry' on model 'companies' (did you mean 'country'?)",
    "segments/sales/accounts.yaml:13:17: sort[0].columnSlug: unknown column 'employe_count' on "
    "model 'companies' (did you mean 'employee_count'?)",
    "segments/sales/addresses.yaml:9:23: filter.groups[0].conditions[0].columnSlug: unknown "
    "column 'adress' on model 'companies' (did you mean 'address'?)",
    "segments/sales/addresses.yaml:14:27: filter.groups[0].conditions[0].propertyConditions[0]"
    ".columnSlug: unknown column 'adress' on model 'companies' (did you mean 'address'?)",
    "segments/sales/addresses.yaml:21:25: filter.groups[0].conditions[1].propertyName: column "
    "'address' of model 'companies' has no property 'zipcode' (did you mean 'zip'?); its "
    "properties are 'city', 'zip', 'street'",
]


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """The example specs (all fit the demo models) and three files with column mistakes."""
    shutil.copytree(EXAMPLES, tmp_path / "segments")
    write_spec(tmp_path, "segments/sales/accounts.yaml", ACCOUNTS)
    write_spec(tmp_path, "segments/sales/addresses.yaml", ADDRESSES)
    write_spec(tmp_path, "segments/marketing/tracked.yaml", TRACKED)
    return tmp_path


def test_remote_validation_reports_every_column_mistake_at_its_place(
    broken: Path, emulator: Emulator
) -> None:
    errors = "".join(f"{line}\n" for line in COLUMN_ERRORS)
    assert segsync("validate", "--remote", emu=emulator) == (1, f"{errors}9 specs, 7 errors\n", "")
    github = segsync("validate", "--remote", "--format", "github", emu=emulator)
    assert github[0] == 1 and github[2] == ""
    assert github[1].splitlines()[0] == (
        "::error file=segments/marketing/tracked.yaml,line=8,col=17::filter.groups[0]"
        ".conditions[0].kind: kind 'string' does not match column 'lead_score' of model "
        "'contacts', which is of type 'number' (Cargo would match no records)"
    )
    assert len(github[1].splitlines()) == 8
    assert github[1].endswith("::notice title=segsync validate::9 specs, 7 errors\n")
    # Offline, the specs are valid: nothing there says which columns the models have.
    assert segsync("validate") == (0, "9 specs, 0 errors\n", "")


def test_apply_refuses_column_mistakes_before_any_write(
    broken: Path, emulator: Emulator
) -> None:
    before = emulator.store.raw_segments()
    errors = "".join(f"{line}\n" for line in COLUMN_ERRORS)
    workspace = emulator.catalog.workspace_uuid
    assert segsync("apply", "--auto-approve", emu=emulator) == (
        1, f"Target workspace: demo ({workspace})\n", f"{errors}error: 7 validation errors\n"
    )
    assert emulator.store.raw_segments() == before
    assert sorted(p.name for p in broken.iterdir()) == ["segments"]  # no state, no lock
    assert segsync("plan", "--refresh", emu=emulator) == (
        1, "", f"{errors}error: 7 validation errors\n"
    )
    assert emulator.store.raw_segments() == before
    assert sorted(p.name for p in broken.iterdir()) == ["segments"]


# --- 2. segsync columns -----------------------------------------------------------------------

CONTACTS_TABLE = """\
  COLUMN          TYPE     KIND      PROPERTIES
  email           string   original  -
  first_name      string   original  -
  last_name       string   original  -
  title           string   original  -
  seniority       string   original  -
  country         string   original  -
  company_domain  string   original  -
  lead_score      number   original  -
  last_seen_at    date     original  -
  is_subscribed   boolean  original  -
  signup_at       date     original  -
  preferences     object   original  channel, language
  topics          array    original  -
  company_name    string   lookup    -
"""
COMPANIES_COLUMNS = [
    ("name", "string", "original", None),
    ("domain", "string", "original", None),
    ("country", "string", "original", None),
    ("industry", "string", "original", None),
    ("employee_count", "number", "original", None),
    ("arr", "number", "original", None),
    ("founded_at", "date", "original", None),
    ("last_activity_at", "date", "original", None),
    ("is_customer", "boolean", "original", None),
    ("stage", "string", "original", None),
    ("owner", "string", "original", None),
    ("tags", "array", "original", None),
    ("address", "object", "original", ["city", "zip", "street"]),
    ("embedding", "vector", "original", None),
    ("raw", "any", "original", None),
    ("revenue_band", "string", "computed", None),  # an additional column
]


def test_columns_of_one_model_as_text(empty_emulator: Emulator) -> None:
    uuid = model_uuid(empty_emulator, "contacts")
    assert segsync("columns", "contacts", emu=empty_emulator) == (
        0, f"contacts  (Contacts, {uuid})\n{CONTACTS_TABLE}", ""
    )
    # Every live model, by name, one table each (the removed accounts_legacy is left out).
    code, out, err = segsync("columns", emu=empty_emulator)
    assert (code, err) == (0, "")
    companies = model_uuid(empty_emulator, "companies")
    assert out.startswith(
        f"companies  (Companies, {companies})\n"
        "  COLUMN            TYPE     KIND      PROPERTIES\n"
        "  name              string   original  -\n"
    )
    assert "  address           object   original  city, zip, street\n" in out
    assert out.endswith(f"\n\ncontacts  (Contacts, {uuid})\n{CONTACTS_TABLE}")
    assert "accounts_legacy" not in out


def test_columns_of_one_model_as_json(empty_emulator: Emulator) -> None:
    code, out, err = segsync("columns", "companies", "--format", "json", emu=empty_emulator)
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "models": [
            {
                "model": "companies",
                "name": "Companies",
                "uuid": model_uuid(empty_emulator, "companies"),
                "columns": [
                    {"slug": slug, "type": type_, "kind": kind, "properties": properties}
                    for slug, type_, kind, properties in COMPANIES_COLUMNS
                ],
            }
        ]
    }


def test_columns_of_an_unknown_model(empty_emulator: Emulator) -> None:
    assert segsync("columns", "compagnies", emu=empty_emulator) == (
        1, "", "error: unknown model 'compagnies': did you mean 'companies'? Available models: "
        "companies, contacts\n"
    )


# --- 3. warnings ------------------------------------------------------------------------------

EU = """\
name: EU accounts
model: companies
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - kind: string
          columnSlug: country
          operator: is
          values: FR, DE
"""
# The names hold invisible characters, written as YAML escapes: the files stay plain text.
KEY_ACCOUNTS = r"""name: "Key\u200baccounts"
model: companies
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - {kind: boolean, columnSlug: is_customer, operator: isTrue}
    - conjonction: or
      conditions:
        - {kind: number, columnSlug: arr, operator: greaterThan, value: 100000}
        - {kind: string, columnSlug: stage, operator: is, values: [won]}
        - {kind: number, columnSlug: arr, operator: greaterThan, value: 100000}
"""
PAYROLL = r"""name: "Pay\u202eroll\u202c contacts"
model: contacts
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - {kind: string, columnSlug: title, operator: contains, values: [Payroll]}
"""


@pytest.fixture
def warned(tmp_path: Path) -> Path:
    """The examples (no warning) and three specs with four warnings between them."""
    shutil.copytree(EXAMPLES, tmp_path / "segments")
    write_spec(tmp_path, "segments/sales/eu.yaml", EU)
    write_spec(tmp_path, "segments/sales/key-accounts.yaml", KEY_ACCOUNTS)
    write_spec(tmp_path, "segments/marketing/payroll.yaml", PAYROLL)
    return tmp_path


def test_validate_warnings_golden(warned: Path) -> None:
    code, text, err = segsync("validate")
    assert (code, err) == (0, "")
    assert_golden("warnings_validate.txt", text)
    code, github, err = segsync("validate", "--format", "github")
    assert (code, err) == (0, "")
    assert_golden("warnings_validate.github", github)
    # One line each; no invisible character reaches the output raw.
    assert text.isascii() and github.isascii()
    assert text.endswith("\n9 specs, 0 errors, 4 warnings\n")
    assert len(text.splitlines()) == len(github.splitlines()) == 5
    # --strict: the same report, and exit 1.
    assert segsync("validate", "--strict") == (1, text, "")
    assert segsync("validate", "--strict", "--format", "github") == (1, github, "")


def test_plan_shows_the_warnings_and_a_comma_value_quoted(warned: Path) -> None:
    _, text, _ = segsync("validate")
    _, github, _ = segsync("validate", "--format", "github")
    warning_lines = "".join(f"{line}\n" for line in text.splitlines()[:-1])
    annotations = "".join(f"{line}\n" for line in github.splitlines()[:-1])
    assert warning_lines.count("warning: ") == annotations.count("::warning file=") == 4

    code, out, err = segsync("plan")
    assert (code, err) == (0, warning_lines)
    assert (
        "  + sales/eu  \"EU accounts\"  (segments/sales/eu.yaml)\n"
        "      model: companies\n"
        "      filter:\n"
        "        all of:\n"
        "          country is \"FR, DE\"\n"
    ) in out
    # A list prints its values bare (the example's countries).
    assert "          country is FR, DE, ES, IT, NL, BE, SE\n" in out
    assert out.endswith("\nPlan: 9 to create, 0 to update, 0 to replace, 0 to delete, "
                        "0 unchanged.\n")

    code, out, err = segsync("plan", "--format", "github")
    assert (code, err) == (0, "")
    assert out == annotations + (
        "::notice title=segsync plan::Plan: 9 to create, 0 to update, 0 to replace, "
        "0 to delete, 0 unchanged.\n"
    )

    # --strict: the warnings fail the plan, which is not shown.
    assert segsync("plan", "--strict") == (1, "", warning_lines + "error: 4 validation errors\n")
    assert segsync("plan", "--strict", "--format", "github") == (
        1, annotations, "error: 4 validation errors\n"
    )
    assert not (warned / "segsync.state.json").exists()
