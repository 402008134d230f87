"""Renderers: golden files for text, markdown, json and github; escaping; the markdown limit.

Regenerate the golden files with ``SEGSYNC_UPDATE_GOLDEN=1 pytest tests/test_render.py``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from plan_fixtures import (
    assert_golden,
    cond_string,
    entry_for,
    every_kind_plan,
    make_spec,
    one_group,
    state_of,
)

from segsync.plan import Plan, make_plan
from segsync.render import (
    describe_condition,
    describe_filter,
    github_annotation,
    github_escape_data,
    github_escape_property,
    md_escape,
    render_github,
    render_json,
    render_markdown,
    render_text,
    summary_line,
)
from segsync.state import State

HOSTILE = (
    "Evil `code` </details></summary> | *bold* _it_ [x](https://e.example) @octocat #12 "
    "<img src=x onerror=alert(1)> &amp;\nsecond line"
)


def hostile_plan() -> Plan:
    old = make_spec("evil/name", "Harmless", flt=one_group(cond_string("country", "FR")))
    new = make_spec(
        "evil/name",
        HOSTILE,
        flt=one_group(cond_string("country", "</details>", "a|b", "`x`", "\n## heading")),
    )
    create = make_spec("evil/created", HOSTILE.replace("Evil", "Created"))
    return make_plan([new, create], state_of({"evil/name": entry_for(old)}))


@pytest.mark.parametrize(
    ("fmt", "render"),
    [
        ("txt", render_text),
        ("md", render_markdown),
        ("json", render_json),
        ("github", render_github),
    ],
)
def test_every_kind_golden(fmt: str, render: Any) -> None:
    plan = every_kind_plan()
    assert {a.kind for a in plan.actions} == {
        "create",
        "update",
        "replace",
        "delete",
        "moved",
        "recreate",
        "orphan",
        "unchanged",
    }
    assert_golden(f"plan_every_kind.{fmt}", render(plan))


@pytest.mark.parametrize(("fmt", "render"), [("txt", render_text), ("md", render_markdown)])
def test_hostile_name_golden(fmt: str, render: Any) -> None:
    assert_golden(f"plan_hostile.{fmt}", render(hostile_plan()))


def test_hostile_markdown_keeps_its_structure() -> None:
    out = render_markdown(hostile_plan())
    # Only our own tags: every <details>, </details>, <summary> is one segsync wrote.
    assert out.count("<details>") == out.count("</details>") == 2
    assert out.count("<summary>") == out.count("</summary>") == 2
    assert "<img" not in out
    assert "@octocat" not in out  # broken by a zero-width space: no mention
    assert "](https" not in out
    assert "\n## heading" not in out
    # No user text inside a code span: our only backticks are in the fixed section notes.
    for line in out.splitlines():
        if "evil" in line.lower() or "created" in line.lower():
            assert "`" not in line.replace("\\`", "").replace("&#96;", "")
    # Table rows keep three cells: every | inside a value is escaped.
    rows = [line for line in out.splitlines() if line.startswith("| name")]
    assert len(rows) == 1
    assert len(re.findall(r"(?<!\\)\|", rows[0])) == 4


def test_hostile_text_shows_control_characters_escaped() -> None:
    out = render_text(hostile_plan())
    assert "\\nsecond line" in out
    assert "\x1b" not in out
    spec = make_spec("a", "bell\x07 and escape\x1b[31m red")
    text = render_text(make_plan([spec], State.empty()))
    assert "\x1b" not in text and "\x07" not in text
    assert '"bell\\u0007 and escape\\u001b[31m red"' in text


def many_creates(n: int) -> Plan:
    specs = [
        make_spec(
            f"bulk/segment-{i:05d}",
            f"Bulk segment {i}",
            flt=one_group(cond_string("country", *[f"C{j}" for j in range(20)])),
        )
        for i in range(n)
    ]
    return make_plan(specs, State.empty())


def test_markdown_is_cut_at_60000_characters_with_a_note() -> None:
    plan = many_creates(400)
    out = render_markdown(plan)
    assert len(out) <= 60_000
    shown = out.count("<details>")
    assert 0 < shown < 400
    assert out.startswith(
        "**Plan: 400 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged.**\n"
    )
    assert out.endswith(
        f"> [!NOTE]\n> {400 - shown} actions left out to keep this comment under "
        "60,000 characters. Run `segsync plan` to see the whole plan.\n"
    )
    assert out.count("<details>") == out.count("</details>")


def test_truncated_markdown_golden_keeps_summary_and_banner() -> None:
    base = every_kind_plan()
    plan = Plan(actions=base.actions + many_creates(30).actions, prune=True)
    out = render_markdown(plan, limit=4_000)
    assert len(out) <= 4_000
    assert "> [!WARNING]" in out
    assert_golden("plan_truncated.md", out)


def test_markdown_without_changes() -> None:
    spec = make_spec("a")
    plan = make_plan([spec], state_of({"a": entry_for(spec)}))
    assert render_markdown(plan) == "**No changes. 1 segment up to date.**\n\n"


def test_no_changes_text_and_json_agree() -> None:
    spec = make_spec("a")
    orphan = make_spec("gone")
    plan = make_plan([spec], state_of({"a": entry_for(spec), "gone": entry_for(orphan)}))
    assert (
        summary_line(plan)
        == "No changes. 1 segment up to date; 1 no longer managed, left in place."
    )
    assert render_text(plan) == (
        "No longer managed, left in place (delete them with --prune):\n"
        '    gone  "Gone"  (segments/gone.yaml)\n'
        "\n"
        "No changes. 1 segment up to date; 1 no longer managed, left in place.\n"
    )
    doc = json.loads(render_json(plan))
    assert doc["summary"]["unchanged"] == 1
    assert doc["summary"]["orphan"] == 1
    assert [a["action"] for a in doc["actions"]] == ["orphan"]


def test_summary_line_without_moves_matches_the_documented_form() -> None:
    spec = make_spec("a", limit=1)
    specs = [spec, make_spec("b"), make_spec("c")]
    plan = make_plan(
        specs, state_of({"a": entry_for(make_spec("a", limit=2)), "c": entry_for(specs[2])})
    )
    assert (
        summary_line(plan)
        == "Plan: 1 to create, 1 to update, 0 to replace, 0 to delete, 1 unchanged."
    )


def test_text_colour_only_when_asked() -> None:
    plan = many_creates(1)
    assert "\x1b[" not in render_text(plan)
    coloured = render_text(plan, color=True)
    assert "\x1b[32m" in coloured  # green +
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == render_text(plan)


def test_json_is_deterministic_and_lists_changes_only() -> None:
    plan = every_kind_plan()
    text = render_json(plan)
    assert text == render_json(every_kind_plan())
    doc = json.loads(text)
    assert doc["formatVersion"] == 1
    assert list(doc) == sorted(doc)
    assert "unchanged" not in {a["action"] for a in doc["actions"]}
    assert doc["summary"] == {
        "adopt": 0,
        "create": 1,
        "dedupe": 0,
        "delete": 1,
        "moved": 1,
        "orphan": 1,
        "recreate": 1,
        "replace": 1,
        "unchanged": 1,
        "update": 1,
    }


@pytest.mark.parametrize(
    ("cond", "words"),
    [
        (cond_string("country", "FR", "DE"), "country is FR, DE"),
        (
            {
                "kind": "number",
                "columnSlug": "employee_count",
                "operator": "greaterThan",
                "value": 500,
            },
            "employee_count > 500",
        ),
        (
            {
                "kind": "date",
                "columnSlug": "founded_at",
                "operator": "between",
                "firstValue": "2020-01-01",
                "lastValue": "2021-01-01",
            },
            "founded_at between 2020-01-01 and 2021-01-01",
        ),
        ({"kind": "segment", "operator": "in", "segment": "sales/icp"}, "in segment sales/icp"),
        ({"kind": "segment", "operator": "notIn", "segmentUuid": "u-1"}, "not in segment u-1"),
        ({"kind": "string", "columnSlug": "owner", "operator": "isNotEmpty"}, "owner is not empty"),
        (
            {
                "kind": "objectProperty",
                "columnSlug": "address",
                "propertyName": "zip",
                "operator": "between",
                "value": "75000",
                "otherValue": "75999",
            },
            "address.zip between 75000 and 75999",
        ),
        (
            {
                "kind": "object",
                "columnSlug": "address",
                "operator": "matchConditions",
                "conjonction": "and",
                "propertyConditions": [
                    {
                        "kind": "objectProperty",
                        "columnSlug": "address",
                        "propertyName": "city",
                        "operator": "is",
                        "value": "Paris",
                    }
                ],
            },
            "address matches (address.city is Paris)",
        ),
        ({"kind": "sql", "name": "recent", "clause": "x > 1"}, "SQL recent: x > 1"),
        (
            {
                "kind": "number",
                "columnSlug": "arr",
                "operator": "isNull",
                "relatedModelUuid": "m-2",
            },
            "arr is null (related model m-2)",
        ),
        (
            {
                "kind": "occurrence",
                "relatedModelUuid": "m-3",
                "frequency": {"operator": "moreThan", "value": 2},
                "period": {"operator": "lessThan", "value": 30, "unit": "day"},
                "conjonction": "and",
                "conditions": [cond_string("country", "FR")],
            },
            "related model m-3 occurs more than 2 times, period less than 30 days, "
            "where (country is FR)",
        ),
        (
            {
                "kind": "enrollment",
                "workflowUuid": "w-1",
                "activityKind": "workflowEntered",
                "frequency": {"operator": "not"},
                "period": {"operator": "moreThan", "value": 7, "unit": "day"},
            },
            "workflow w-1: workflowEntered never, period more than 7 days",
        ),
    ],
)
def test_conditions_in_words(cond: dict[str, Any], words: str) -> None:
    assert describe_condition(cond) == words


def test_filter_in_words_escapes_only_user_text() -> None:
    flt = one_group(cond_string("*col*", "<b>"))
    assert describe_filter(flt, md_escape) == [(0, "all of:"), (1, "\\*col\\* is &lt;b&gt;")]


def test_md_escape() -> None:
    assert md_escape("a_b*c`d|e") == "a\\_b\\*c\\`d\\|e"
    assert md_escape("<details>") == "&lt;details&gt;"
    assert md_escape("[x](y)") == "\\[x\\]\\(y\\)"
    assert md_escape("hi @team") == "hi @&#8203;team"
    assert md_escape("one\ntwo") == "one<br>two"


def test_github_escaping() -> None:
    assert github_escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert github_escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert github_annotation("notice", "hello") == "::notice::hello"
    assert (
        github_annotation("error", "bad: x\ny", file="s/a,b.yaml", line=3, col=9, title="t: 1")
        == "::error file=s/a%2Cb.yaml,line=3,col=9,title=t%3A 1::bad: x%0Ay"
    )


def test_every_character_shown_escaped_is_unprintable() -> None:
    """``visible`` returns printable text as it is: right only while every character its
    pattern escapes is unprintable."""
    import sys

    from segsync.render.common import _CONTROL, visible

    matched = [chr(c) for c in range(sys.maxunicode + 1) if _CONTROL.fullmatch(chr(c))]
    assert len(matched) > 60
    assert not any(ch.isprintable() for ch in matched)
    assert visible("a\u202eb\nc") == "a\\u202eb\\nc"
