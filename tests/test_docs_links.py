"""The documentation covers every command and option, and its links lead somewhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from segsync.cli import cli

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in PAGES)


def _walk(
    command: click.Command, path: list[str], ctx: click.Context
) -> Iterator[tuple[list[str], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)  # lazy commands load here
            assert sub is not None, name
            yield from _walk(sub, [*path, name], click.Context(sub, parent=ctx, info_name=name))


def _tree() -> list[tuple[list[str], click.Command]]:
    return list(_walk(cli, ["segsync"], click.Context(cli, info_name="segsync")))


def test_the_tree_is_walked_whole() -> None:
    paths = {" ".join(path) for path, _ in _tree()}
    assert {"segsync plan", "segsync state merge", "segsync github apply"} <= paths


def test_every_command_and_long_option_is_documented() -> None:
    text = _text()
    missing: list[str] = []
    for path, command in _tree():
        name = " ".join(path)
        if len(path) > 1 and name not in text:
            missing.append(name)
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("--") and opt != "--help" and opt not in text:
                    missing.append(f"{name} {opt}")
    assert missing == []


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, spaces to '-', punctuation dropped but '-'
    and '_' (markup characters such as backticks are punctuation too)."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
            continue
        match = re.match(r"#{1,6} (.+)", line)
        if fence or not match:
            continue
        base = slug(match.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        anchors.add(base if n == 0 else f"{base}-{n}")
    return anchors


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans hold no links
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_slug_follows_github() -> None:
    assert slug("Planning: `segsync plan`") == "planning-segsync-plan"
    assert slug("Pull requests: `examples/workflows/segsync-plan.yml`") == (
        "pull-requests-examplesworkflowssegsync-planyml"
    )
    assert slug("What it serves") == "what-it-serves"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files_and_headings(page: Path) -> None:
    broken: list[str] = []
    links = _links(page)
    for link in links:
        if re.match(r"[a-z][a-z0-9+.-]*:", link):  # https:, mailto:, …
            continue
        target, _, anchor = link.partition("#")
        file = (page.parent / target).resolve() if target else page
        found = file.exists() and (
            not anchor or (file.suffix == ".md" and anchor in _anchors(file))
        )
        if not found:
            broken.append(link)
    assert broken == []


def test_the_readme_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in PAGES[1:]:
        assert f"](docs/{page.name}" in readme, page.name


def test_pages_point_at_nothing_users_do_not_have() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "/work/" not in text and "shared/" not in text and "§" not in text, page.name
