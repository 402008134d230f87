"""`segsync validate` and `segsync schema` through the real command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from segsync.cli import cli
from tests.helpers import EXAMPLES, ROOT, run_cli

CASES = ROOT / "tests" / "cases" / "invalid"


def run(*args: str) -> tuple[int, str, str]:
    result = run_cli(args)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "segments")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _break(project: Path) -> None:
    shutil.copy(CASES / "operator-typo.yaml", project / "segments" / "typo.yaml")
    shutil.copy(CASES / "conjunction-in-group.yaml", project / "segments" / "a-conj.yaml")


def test_examples_validate(project: Path) -> None:
    assert run("validate") == (0, "6 specs, 0 errors\n", "")


def test_all_errors_sorted_by_file_then_line(project: Path) -> None:
    _break(project)
    assert run("validate")[:2] == (1, (
        "segments/a-conj.yaml:6:7: filter.groups[0].conjunction: unknown key 'conjunction' "
        "(did you mean 'conjonction'?)\n"
        "segments/typo.yaml:10:21: filter.groups[0].conditions[0].operator: 'greaterThen' is "
        "not an operator of kind 'number' (did you mean 'greaterThan'?)\n"
        "8 specs, 2 errors\n"
    ))


def test_json_report(project: Path) -> None:
    _break(project)
    code, out, _ = run("validate", "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["specs"] == 8 and report["valid"] is False
    assert report["errors"][1] == {
        "file": "segments/typo.yaml", "line": 10, "column": 21,
        "field": "filter.groups[0].conditions[0].operator",
        "message": "'greaterThen' is not an operator of kind 'number' (did you mean "
        "'greaterThan'?)",
    }


def test_github_annotations(project: Path) -> None:
    _break(project)
    code, out, _ = run("validate", "--format", "github")
    assert code == 1
    assert out.splitlines() == [
        "::error file=segments/a-conj.yaml,line=6,col=7::filter.groups[0].conjunction: unknown "
        "key 'conjunction' (did you mean 'conjonction'?)",
        "::error file=segments/typo.yaml,line=10,col=21::filter.groups[0].conditions[0].operator"
        ": 'greaterThen' is not an operator of kind 'number' (did you mean 'greaterThan'?)",
        "::notice title=segsync validate::8 specs, 2 errors",
    ]


def test_missing_folder_is_a_one_line_error(project: Path) -> None:
    assert run("validate", "--dir", "nope") == (
        1, "", "error: nope: no such folder (give the specs folder with --dir)\n"
    )


def test_usage_error_exits_1(project: Path) -> None:
    code, _, err = run("validate", "--format", "xml")
    assert code == 1
    assert "Invalid value for '--format'" in err


def test_schema_is_valid_and_accepts_the_examples(project: Path) -> None:
    code, out, _ = run("schema")
    assert code == 0
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = sorted(EXAMPLES.rglob("*.yaml"))
    assert len(files) >= 6
    for file in files:
        assert list(validator.iter_errors(yaml.safe_load(file.read_text()))) == [], file
    # and rejects what the models reject
    bad = yaml.safe_load((CASES / "conjunction-in-group.yaml").read_text())
    assert list(validator.iter_errors(bad))
    both = yaml.safe_load((CASES / "model-and-modeluuid.yaml").read_text())
    assert list(validator.iter_errors(both))


def test_committed_schema_file_is_current() -> None:
    _, out, _ = run("schema")
    assert (ROOT / "segsync.schema.json").read_text() == out


def test_help_of_every_command_has_an_example() -> None:
    assert isinstance(cli, __import__("click").Group)
    for name in cli.commands:
        code, out, _ = run(name, "--help")
        assert code == 0, name
        assert "segsync " + name in out or "Example" in out, name


def test_version_from_a_real_process() -> None:
    # Real processes: what is checked is a cold start (the version, and the heavy modules that
    # importing the command line must not pull in), which this process cannot show.
    proc = subprocess.run(
        [sys.executable, "-m", "segsync", "--version"], capture_output=True, text=True,
        env={**os.environ, "CARGO_API_TOKEN": ""}, check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("segsync ")
    modules = subprocess.run(
        [sys.executable, "-c", "import sys; from segsync import cli; "
         "print(' '.join(m for m in ('httpx', 'deepdiff', 'pydantic', 'yaml') "
         "if m in sys.modules))"],
        capture_output=True, text=True, check=True,
    )
    assert modules.stdout.strip() == ""


def test_every_command_is_documented_in_the_readme() -> None:
    import click

    readme = (ROOT / "README.md").read_text()
    names: list[str] = []
    for name in cli.list_commands(click.Context(cli)):
        command = cli.get_command(click.Context(cli), name)
        assert command is not None and command.help, name
        if isinstance(command, click.Group):
            names += [f"{name} {sub}" for sub in command.commands]
        else:
            names.append(name)
    assert "apply" in names and "state unlock" in names
    missing = [n for n in names if f"segsync {n}" not in readme]
    assert missing == []
