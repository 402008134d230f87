"""`segsync plan` through the real command line, on real spec and state files."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from plan_fixtures import LINEAGE, assert_golden, uuid_for

from segsync.canonical import to_wire
from segsync.client import CargoClient
from segsync.planfile import check_fresh, read_plan_file
from segsync.refresh import Catalog
from segsync.specs import load_specs
from segsync.state import Entry, State, read_state
from tests.helpers import applied_state, run_cli, write_state

ICP = """\
# Our ideal customers.
id: sales/icp
name: ICP accounts
model: companies
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - kind: string
          columnSlug: industry
          operator: is
          values: [Software, SaaS]
        - kind: number
          columnSlug: employee_count
          operator: greaterThan
          value: 200
limit: 100
"""

EU = """\
name: Enterprise EU
model: companies
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - kind: segment
          operator: in
          segment: sales/icp
        - kind: string
          columnSlug: country
          operator: is
          values: [FR, DE]
sort:
  - columnSlug: arr
    kind: desc
"""

NEWS = """\
name: Newsletter
model: contacts
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - kind: boolean
          columnSlug: is_subscribed
          operator: isTrue
"""


def run(*args: str) -> tuple[int, str, str]:
    result = run_cli(args)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    specs = tmp_path / "segments"
    (specs / "sales").mkdir(parents=True)
    (specs / "marketing").mkdir()
    (specs / "sales" / "icp.yaml").write_text(ICP)
    (specs / "sales" / "eu.yaml").write_text(EU)
    (specs / "marketing" / "news.yaml").write_text(NEWS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEGSYNC_STATE", raising=False)
    return tmp_path


def record_applied(project: Path) -> None:
    """Write a state in which every current spec was applied (as apply would leave it)."""
    state = applied_state(
        load_specs("segments"), uuid_for=uuid_for,
        model_uuid="11111111-0000-4000-8000-000000000001", serial=4, lineage=LINEAGE,
    )
    write_state(project / "segsync.state.json", state)


def test_no_state_file_creates_everything(project: Path) -> None:
    code, out, err = run("plan")
    assert (code, err) == (0, "")
    assert_golden("cli_plan_create.txt", out)
    assert out.endswith(
        "\nPlan: 3 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged.\n"
    )
    assert not (project / "segsync.state.json").exists()


def test_detailed_exitcode_is_2_with_changes_and_0_without(project: Path) -> None:
    code, out, _ = run("plan", "--detailed-exitcode")
    assert code == 2
    assert "Plan: 3 to create" in out
    record_applied(project)
    assert run("plan", "--detailed-exitcode") == (0, "No changes. 3 segments up to date.\n", "")


def test_renaming_a_file_that_has_an_id_changes_nothing(project: Path) -> None:
    record_applied(project)
    (project / "segments" / "sales" / "icp.yaml").rename(project / "segments" / "ideal.yaml")
    assert run("plan", "--detailed-exitcode") == (0, "No changes. 3 segments up to date.\n", "")


def test_renaming_a_file_without_id_is_moved_not_delete_and_create(project: Path) -> None:
    record_applied(project)
    old = project / "segments" / "sales" / "eu.yaml"
    old.rename(project / "segments" / "sales" / "enterprise-eu.yaml")
    code, out, err = run("plan", "--prune", "--detailed-exitcode")
    assert (code, err) == (2, "")
    assert out == (
        "segsync will perform these actions:\n"
        "Symbols: > moved\n"
        "\n"
        '  > sales/enterprise-eu  "Enterprise EU"  (segments/sales/enterprise-eu.yaml)'
        "  moved from sales/eu\n"
        "\n"
        "Plan: 0 to create, 0 to update, 1 to move, 0 to replace, 0 to delete, 2 unchanged.\n"
    )


def test_comments_and_key_order_change_nothing(project: Path) -> None:
    record_applied(project)
    reordered = """\
        # A different comment, keys in another order, a flow list written as a block list.
        model: companies
        limit: 100
        filter:
          groups:
            - conditions:
                - operator: is
                  values:
                    - Software   # still first
                    - SaaS
                  columnSlug: industry
                  kind: string
                - value: 200
                  operator: greaterThan
                  kind: number
                  columnSlug: employee_count
              conjonction: and
          conjonction: and
        name: ICP accounts
        id: sales/icp
        """
    (project / "segments" / "sales" / "icp.yaml").write_text(textwrap.dedent(reordered))
    assert run("plan", "--detailed-exitcode") == (0, "No changes. 3 segments up to date.\n", "")


def test_changing_a_condition_value_is_one_update_with_old_and_new(project: Path) -> None:
    record_applied(project)
    icp = project / "segments" / "sales" / "icp.yaml"
    icp.write_text(ICP.replace("value: 200", "value: 500"))
    code, out, err = run("plan", "--detailed-exitcode")
    assert (code, err) == (2, "")
    assert out == textwrap.dedent(
        """\
        segsync will perform these actions:
        Symbols: ~ update

          ~ sales/icp  "ICP accounts"  (segments/sales/icp.yaml)
              filter.groups[0].conditions[1].value: 200 → 500

        Plan: 0 to create, 1 to update, 0 to replace, 0 to delete, 2 unchanged.
        """
    )


def test_json_format(project: Path) -> None:
    record_applied(project)
    icp = project / "segments" / "sales" / "icp.yaml"
    icp.write_text(ICP.replace("limit: 100", "limit: 250"))
    code, out, err = run("plan", "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "formatVersion": 1,
        "summary": {
            "create": 0,
            "update": 1,
            "replace": 0,
            "delete": 0,
            "moved": 0,
            "recreate": 0,
            "unchanged": 2,
            "orphan": 0,
            "adopt": 0,
            "dedupe": 0,
        },
        "actions": [
            {
                "action": "update",
                "id": "sales/icp",
                "name": "ICP accounts",
                "file": "segments/sales/icp.yaml",
                "uuid": uuid_for("sales/icp"),
                "model": "companies",
                "changes": [{"field": "limit", "old": 100, "new": 250}],
            }
        ],
    }


def test_markdown_and_github_formats(project: Path) -> None:
    record_applied(project)
    (project / "segments" / "marketing" / "news.yaml").unlink()
    code, out, err = run("plan", "--format", "markdown", "--prune")
    assert (code, err) == (0, "")
    assert_golden("cli_plan_delete.md", out)
    code, out, err = run("plan", "--format", "github", "--prune")
    assert (code, err) == (0, "")
    assert out == (
        "::notice title=segsync plan::Plan: 0 to create, 0 to update, 0 to replace, 1 to delete, "
        "2 unchanged.\n"
        "::warning file=segments/marketing/news.yaml,title=segsync plan%3A delete::"
        f'marketing/news "Newsletter" will be deleted (segment {uuid_for("marketing/news")})\n'
    )


def test_without_prune_a_removed_spec_is_left_in_place(project: Path) -> None:
    record_applied(project)
    (project / "segments" / "marketing" / "news.yaml").unlink()
    code, out, err = run("plan", "--detailed-exitcode")
    assert (code, err) == (0, "")
    assert out == (
        "No longer managed, left in place (delete them with --prune):\n"
        '    marketing/news  "Newsletter"  (segments/marketing/news.yaml)\n'
        "\n"
        "No changes. 2 segments up to date; 1 no longer managed, left in place.\n"
    )


def test_invalid_specs_print_every_error_and_exit_1(project: Path) -> None:
    bad = project / "segments" / "sales" / "bad.yaml"
    bad.write_text(NEWS.replace("isTrue", "isTru").replace("name: Newsletter", "name: Bad"))
    code, out, err = run("plan")
    assert code == 1
    assert out == ""
    assert err.endswith("error: 1 validation error\n")
    assert err.startswith("segments/sales/bad.yaml:10:21: filter.groups[0].conditions[0].operator")

    code, out, err = run("plan", "--format", "github")
    assert code == 1
    assert re.fullmatch(
        r"::error file=segments/sales/bad\.yaml,line=10,col=21::"
        r"filter\.groups\[0\]\.conditions\[0\]\.operator: [^\n]*\n",
        out,
    )
    assert err == "error: 1 validation error\n"


def test_corrupt_state_is_an_error(project: Path) -> None:
    (project / "segsync.state.json").write_text("{not json")
    code, out, err = run("plan")
    assert (code, out) == (1, "")
    assert err.startswith("error: segsync.state.json:1:2: the state file is not valid JSON")


def test_state_option_and_missing_dir(project: Path) -> None:
    record_applied(project)
    (project / "segsync.state.json").rename(project / "prod.json")
    assert run("plan", "--state", "prod.json") == (0, "No changes. 3 segments up to date.\n", "")
    code, out, err = run("plan", "--dir", "nowhere")
    assert (code, out) == (1, "")
    assert err == "error: nowhere: no such folder (give the specs folder with --dir)\n"


def test_out_writes_a_plan_file_that_apply_can_check(project: Path) -> None:
    record_applied(project)
    icp = project / "segments" / "sales" / "icp.yaml"
    icp.write_text(ICP.replace("limit: 100", "limit: 250"))
    code, out, err = run("plan", "--out", "plan.json", "--format", "json")
    assert code == 0
    # Without a terminal (as in CI), the form that works there.
    assert err == (
        "Plan saved to plan.json; apply it with `segsync apply --auto-approve plan.json`.\n"
    )
    saved = read_plan_file(project / "plan.json")
    assert (saved.lineage, saved.serial, saved.prune) == (LINEAGE, 4, False)
    assert [a["action"] for a in saved.actions] == [a["action"] for a in json.loads(out)["actions"]]
    specs = load_specs(project / "segments")
    state = read_state(project / "segsync.state.json")
    check_fresh(saved, state, specs)  # fresh: no error

    icp.write_text(ICP.replace("limit: 100", "limit: 300"))
    from segsync.errors import PlanFileError

    with pytest.raises(PlanFileError, match=r"specs changed since the plan was made: sales/icp"):
        check_fresh(saved, state, load_specs(project / "segments"))


def test_help_has_an_example() -> None:
    code, out, _ = run("plan", "--help")
    assert code == 0
    assert "segsync plan --format markdown" in out
    assert "--detailed-exitcode" in out


def test_refresh_reports_drift_and_deleted_segments(
    project: Path, empty_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARGO_API_URL", empty_emulator.url)
    monkeypatch.setenv("CARGO_API_TOKEN", empty_emulator.token)
    entries: dict[str, Entry] = {}
    with CargoClient() as client:
        specs = {s.id: s for s in load_specs("segments")}
        for spec_id in ("marketing/news", "sales/icp", "sales/eu"):
            spec = specs[spec_id]
            model_uuid = Catalog(client).resolve(spec.model_ref)["uuid"]
            refs = {r: entries[r].uuid or "" for r in spec.refs}
            body = {**to_wire(spec.managed, ref_uuids=refs), "modelUuid": model_uuid}
            created = client.create_segment(body)
            entries[spec_id] = Entry(
                uuid=created["uuid"],
                model=spec.model_ref,
                model_uuid=model_uuid,
                applied=spec.managed,
                digest=spec.digest,
                refs=refs,
                file=spec.file,
            )
        state = State(serial=1, lineage=LINEAGE, segments=entries)
        write_state(project / "segsync.state.json", state)
        assert run("plan", "--refresh") == (0, "No changes. 3 segments up to date.\n", "")

        client.update_segment(entries["sales/icp"].uuid or "", {"limit": 999})
        client.delete_segment(entries["marketing/news"].uuid or "")

    code, out, err = run("plan", "--refresh", "--detailed-exitcode")
    assert (code, err) == (2, "")
    assert out == (
        "segsync will perform these actions:\n"
        "Symbols: +! recreate, ~ update\n"
        "\n"
        ' +! marketing/news  "Newsletter"  (segments/marketing/news.yaml)\n'
        "      # deleted outside segsync\n"
        "      model: contacts\n"
        "      filter:\n"
        "        all of:\n"
        "          is_subscribed is true\n"
        '  ~ sales/icp  "ICP accounts"  (segments/sales/icp.yaml)\n'
        "      # drift: changed outside segsync\n"
        "      limit: 999 → 100\n"
        "\n"
        "Plan: 0 to create, 1 to recreate, 1 to update, 0 to replace, 0 to delete, 1 unchanged.\n"
    )


def test_refresh_needs_a_token(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARGO_API_TOKEN", raising=False)
    code, out, err = run("plan", "--refresh")
    assert (code, out) == (1, "")
    assert err.startswith("error: CARGO_API_TOKEN is not set")


def test_preview_asks_cargo_for_record_counts(
    project: Path, empty_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setenv("CARGO_API_URL", empty_emulator.url)
    monkeypatch.setenv("CARGO_API_TOKEN", empty_emulator.token)
    specs = {s.id: s for s in load_specs("segments")}
    with CargoClient() as client:
        icp = specs["sales/icp"]
        body = {**to_wire(icp.managed, ref_uuids={}),
                "modelUuid": Catalog(client).resolve(icp.model_ref)["uuid"]}
        body.pop("name")
        expected = client.fetch_segment(body)["count"]
    assert isinstance(expected, int) and expected > 0

    code, out, err = run("plan", "--preview", "--format", "json")
    assert (code, err) == (0, "")
    previews = {a["id"]: a["preview"] for a in json.loads(out)["actions"]}
    assert previews["sales/icp"] == {"count": expected, "approximate": False}
    assert isinstance(previews["marketing/news"]["count"], int)
    assert previews["sales/eu"] == {
        "count": None, "approximate": False,
        "note": "references sales/icp, not created yet",
    }
    code, out, _ = run("plan", "--preview")
    assert code == 0
    assert f"      # would match {expected} records\n" in out
    assert "      # record count unknown: references sales/icp, not created yet\n" in out
    # nothing was created by previewing
    with CargoClient() as client:
        assert client.list_segments() == []


def test_refresh_runs_the_checks_that_need_cargo(
    project: Path, empty_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARGO_API_URL", empty_emulator.url)
    monkeypatch.setenv("CARGO_API_TOKEN", empty_emulator.token)
    missing = "0b4e28ba-2fa1-41d2-883f-0016d3cca427"
    (project / "segments" / "sales" / "partners.yaml").write_text(
        "name: Partners\nmodel: companies\nfilter:\n  conjonction: and\n  groups:\n"
        "    - conjonction: and\n      conditions:\n"
        f"        - {{kind: segment, operator: in, segmentUuid: {missing}}}\n"
    )
    offline = run("plan")
    assert offline[0] == 0 and "no segment" not in offline[1] + offline[2]  # offline: no check
    code, out, err = run("plan", "--refresh")
    assert (code, out) == (1, "")
    assert err == (
        "segments/sales/partners.yaml:8:54: filter.groups[0].conditions[0].segmentUuid: no "
        f"segment {missing} in Cargo; a segment condition must name a live segment of model "
        "'companies'\nerror: 1 validation error\n"
    )
