"""Shell completion works as docs/plan-and-apply.md says: the set-up line of each shell gives
that shell's completion script, and ``--target`` completes the spec ids the page names."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from segsync.cli import cli
from tests.helpers import EXAMPLES, ROOT

PAGE = ROOT / "docs" / "plan-and-apply.md"
SHELLS = ("bash", "zsh", "fish")


def _section() -> str:
    text = PAGE.read_text(encoding="utf-8")
    match = re.search(r"^## Shell completion\n(.*?)^## ", text, flags=re.S | re.M)
    assert match, "docs/plan-and-apply.md has a 'Shell completion' section"
    return match.group(1)


def _set_up_lines() -> dict[str, str]:
    """The line the section gives for each shell (the one after its ``# SHELL, in …`` comment)."""
    block = re.search(r"^```sh\n(.*?)^```", _section(), flags=re.S | re.M)
    assert block
    lines = block.group(1).splitlines()
    return {
        comment.split()[1].rstrip(","): line
        for comment, line in zip(lines[::2], lines[1::2], strict=True)
    }


def _complete(mode: str, words: str, cword: str) -> str:
    """What ``segsync`` prints when the shell asks (``_SEGSYNC_COMPLETE=MODE``)."""
    result = CliRunner().invoke(
        cli, [], prog_name="segsync", catch_exceptions=False,
        env={"_SEGSYNC_COMPLETE": mode, "COMP_WORDS": words, "COMP_CWORD": cword},
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def _offered(shell: str, words: str) -> list[str]:
    """The values completed for the last (incomplete) word of ``words`` in ``shell``."""
    incomplete = words.split(" ")[-1]
    if shell == "fish":  # fish passes the incomplete word itself
        out = _complete("fish_complete", words, incomplete).splitlines()
        return [x.split(",", 1)[1] for x in out]
    cword = str(len(words.split(" ")) - 1)
    out = _complete(f"{shell}_complete", words, cword).splitlines()
    if shell == "bash":
        return [x.split(",", 1)[1] for x in out]
    return out[1::3]  # zsh: type, value, help


def test_the_page_gives_one_set_up_line_per_shell() -> None:
    assert _set_up_lines() == {
        "bash": 'eval "$(_SEGSYNC_COMPLETE=bash_source segsync)"',
        "zsh": 'eval "$(_SEGSYNC_COMPLETE=zsh_source segsync)"',
        "fish": "_SEGSYNC_COMPLETE=fish_source segsync | source",
    }


@pytest.mark.parametrize("shell", SHELLS)
def test_each_set_up_line_gives_that_shells_script(shell: str) -> None:
    (mode,) = re.findall(r"_SEGSYNC_COMPLETE=(\w+)", _set_up_lines()[shell])
    script = _complete(mode, "", "")
    # the script registers itself for segsync and asks it in that shell's own mode
    registers = {
        "bash": "complete -o nosort -F _segsync_completion segsync",
        "zsh": "compdef _segsync_completion segsync",
        "fish": "complete --no-files --command segsync",
    }
    assert registers[shell] in script
    assert f"_SEGSYNC_COMPLETE={shell}_complete" in script


@pytest.fixture
def examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "segments")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_target_completes_the_spec_ids_the_page_names(examples: Path) -> None:
    text = " ".join(_section().split())
    match = re.search(
        r"`(segsync \w+ --target [\w/]*)` then Tab offers ((?:`[\w/-]+`(?:, )?)+)", text
    )
    assert match, "the section shows what --target completes"
    named = re.findall(r"`([\w/-]+)`", match.group(2))
    for shell in SHELLS:
        assert _offered(shell, match.group(1)) == named, shell


@pytest.mark.parametrize("shell", SHELLS)
def test_target_completes_from_the_specs_folder_given_by_dir(examples: Path, shell: str) -> None:
    (examples / "other" / "crm").mkdir(parents=True)
    (examples / "other" / "crm" / "churn.yml").write_text("")
    (examples / "other" / "crm" / "notes.txt").write_text("")
    assert _offered(shell, "segsync apply --dir other --target ") == ["crm/churn"]
    assert _offered(shell, "segsync apply --target mark") == [
        "marketing/decision-makers", "marketing/newsletter-engaged"
    ]
