"""The documentation shows what the repository holds: the workflows users copy, in full."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
WORKFLOWS = sorted((ROOT / "examples" / "workflows").glob("*.yml"))


def test_there_are_workflows_to_copy() -> None:
    assert [p.name for p in WORKFLOWS] == [
        "segsync-apply.yml", "segsync-drift.yml", "segsync-plan.yml",
    ]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_each_workflow_is_shown_in_full_in_the_github_actions_page(workflow: Path) -> None:
    page = (ROOT / "docs" / "github-actions.md").read_text(encoding="utf-8")
    assert f"```yaml\n{workflow.read_text(encoding='utf-8')}```" in page


def test_the_pre_commit_hook_runs_validate() -> None:
    import yaml

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert [(h["id"], h["entry"], h["language"]) for h in hooks] == [
        ("segsync-validate", "segsync validate", "python")
    ]


def test_the_readme_stays_a_front_door() -> None:
    # the details live in docs/; the README links to them
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
