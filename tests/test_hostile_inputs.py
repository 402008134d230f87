"""Hostile inputs: spec entries that are not regular files, symbolic links leading out of the
specs folder or round in a loop, values echoed in messages, YAML that expands or nests without
end, state and plan files nested too deep, and libyaml's bare indentation errors.

Every test names the exact message and exit code, and checks that the state file is left byte
for byte as it was. Runs that stop with an error after ``apply`` started its background reads
of the workspace are real processes (see tests/test_cli_apply.py's docstring for why).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType

import pytest

from segsync import yamlfile
from segsync.emulator.server import Emulator
from segsync.errors import PlanFileError, StateError, ValidationFailed
from segsync.planfile import read_plan_file
from segsync.specs import MAX_SPEC_BYTES, count_spec_files, load_specs
from segsync.state import read_state
from tests.helpers import EXAMPLES, run_cli, spec_text, write_spec
from tests.test_load import without_libyaml

TOKEN = "hostile-Secret-Token-4b1e"
SECRET = "CARGO_API_TOKEN=sk_secret_0123456789abcdefghijklmnopqrstuvwxyz"
NOT_REGULAR = "not a regular file ({}); a spec must be a regular file"
OUTSIDE = (
    "a symbolic link leading outside the specs folder; segsync follows links only to files and "
    "folders inside it"
)
STATE_HINT = (
    "restore it from git (`git checkout -- segsync.state.json`) or fix it by hand; segsync "
    "leaves it as it is"
)

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")


needs_symlinks = pytest.mark.skipif(sys.platform == "win32", reason="links need privileges")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example specs in ``segments/`` and a state file, in the current folder."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith(("CARGO_", "SEGSYNC_"))]:
        monkeypatch.delenv(name)
    shutil.copytree(EXAMPLES, tmp_path / "segments")
    (tmp_path / "segsync.state.json").write_text('{"version": 1, "serial": 3}\n')
    return tmp_path


def state_bytes(root: Path) -> bytes:
    return (root / "segsync.state.json").read_bytes()


def validate(*args: str) -> tuple[int, str, str]:
    result = run_cli(["validate", *args])
    return result.exit_code, result.stdout, result.stderr


def spec_errors(folder: str | Path) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        load_specs(folder)
    return [str(e) for e in info.value.errors]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every path opened with ``os.open`` during the test."""
    paths: list[str] = []
    real_open = os.open

    def spy(path: str | bytes | os.PathLike[str], flags: int, *args: int, **kw: int) -> int:
        paths.append(os.fspath(path))  # type: ignore[arg-type]
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", spy)
    yield paths


# --- 1. every spec entry is read, or is an error ---------------------------------------------


@needs_fifo
@needs_symlinks
@pytest.mark.timeout(60)  # opening the FIFO would wait for a writer
def test_entries_that_are_not_regular_files_are_errors_counted_and_never_opened(
    project: Path, opened: list[str]
) -> None:
    """Before: a FIFO, a dangling link and a link to /dev/zero were skipped unseen, and
    validate said "6 specs, 0 errors" for 9 files."""
    before = state_bytes(project)
    segments = project / "segments"
    os.mkfifo(segments / "queue.yaml")
    (segments / "gone.yaml").symlink_to("nowhere.yaml")
    (segments / "zero.yml").symlink_to("/dev/zero")
    (segments / "a.yaml").symlink_to("b.yaml")
    (segments / "b.yaml").symlink_to("a.yaml")
    code, out, err = validate()
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        f"segments/a.yaml: {NOT_REGULAR.format('a symbolic link loop')}",
        f"segments/b.yaml: {NOT_REGULAR.format('a symbolic link loop')}",
        f"segments/gone.yaml: {NOT_REGULAR.format('a dangling symbolic link')}",
        f"segments/queue.yaml: {NOT_REGULAR.format('a FIFO')}",
        f"segments/zero.yml: {NOT_REGULAR.format('a symbolic link to a character device')}",
        "11 specs, 5 errors",
    ]
    assert not [p for p in opened if p.endswith(("queue.yaml", "zero.yml", "zero"))]
    assert count_spec_files("segments") == 11
    assert state_bytes(project) == before


def test_a_file_over_1_mib_is_an_error_and_is_not_read(
    project: Path, opened: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: any size was read whole (and then parsed)."""
    big = project / "segments" / "big.yaml"
    big.write_bytes(b"# " + b"x" * MAX_SPEC_BYTES + b"\n")
    read: list[int] = []
    real_read = os.read

    def spy(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "read", spy)
    assert spec_errors("segments") == [
        "segments/big.yaml: the file is larger than 1 MiB (1,048,579 bytes); a spec needs a few "
        "kilobytes"
    ]
    assert "segments/big.yaml" in opened  # opened to check its size on the open file ...
    assert sum(read) < 100_000  # ... and not read: the other six specs are small
    body = spec_text("Big").encode()
    big.write_bytes(b"# " + b"x" * (MAX_SPEC_BYTES - len(body) - 3) + b"\n" + body)
    assert big.stat().st_size == MAX_SPEC_BYTES
    assert len(load_specs("segments")) == 7  # 1 MiB exactly is a spec still


@needs_fifo
@pytest.mark.timeout(120)
def test_prune_never_takes_an_unreadable_spec_for_a_deleted_one(
    project: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    """Before: a spec turned into a FIFO was left out, so ``apply --prune`` deleted its
    segment. Now plan and apply stop before any change, the state untouched."""
    emu = emulator_factory(token=TOKEN)
    env = _env(emu)
    (project / "segsync.state.json").unlink()
    applied = run_cli(["apply", "--auto-approve"], env=env)
    assert applied.exit_code == 0, applied.stderr
    before = state_bytes(project)
    uuid = read_state("segsync.state.json").segments["marketing/newsletter-engaged"].uuid
    spec = project / "segments" / "marketing" / "newsletter-engaged.yaml"
    spec.unlink()
    os.mkfifo(spec)
    line = f"segments/marketing/newsletter-engaged.yaml: {NOT_REGULAR.format('a FIFO')}"

    assert validate() == (1, f"{line}\n6 specs, 1 error\n", "")
    plan = run_cli(["plan", "--prune"], env=env)
    assert (plan.exit_code, plan.stdout) == (1, "")
    assert plan.stderr == f"{line}\nerror: 1 validation error\n"
    proc = _process(emu, "apply", "--prune", "--auto-approve")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"{line}\nerror: 1 validation error\n"
    assert state_bytes(project) == before
    assert [s["deletedAt"] for s in emu.store.raw_segments() if s["uuid"] == uuid] == [None]


# --- 2. symbolic links stay inside; values are not echoed -------------------------------------


@needs_symlinks
def test_a_link_leading_outside_is_an_error_that_shows_nothing_of_its_target(
    project: Path,
) -> None:
    """Before: ``segments/env.yaml -> ../.env`` printed "... not the string
    'CARGO_API_TOKEN=sk_secret…'" (40 characters of the secret)."""
    before = state_bytes(project)
    (project / ".env").write_text(SECRET + "\n")
    (project / "outside").mkdir()
    write_spec(project / "outside", "leaked.yaml", spec_text("Leaked"))
    (project / "segments" / "env.yaml").symlink_to("../.env")
    (project / "segments" / "more").symlink_to("../outside")
    code, out, err = validate()
    assert (code, err) == (1, "")
    assert out == (
        f"segments/env.yaml: {OUTSIDE}\n"
        f"segments/more: {OUTSIDE}\n"
        "7 specs, 2 errors\n"
    )
    assert "sk_secret" not in out and "Leaked" not in out
    assert state_bytes(project) == before


@needs_symlinks
def test_links_inside_the_folder_are_followed(project: Path) -> None:
    """A link to a file inside is a spec under the link's own path."""
    write_spec(project / "segments", "shared/base.txt", spec_text("Linked"))
    (project / "segments" / "linked.yaml").symlink_to("shared/base.txt")
    specs = {s.id: s for s in load_specs("segments")}
    assert specs["linked"].file == "segments/linked.yaml"
    assert specs["linked"].name == "Linked"
    assert count_spec_files("segments") == 7


@needs_symlinks
def test_a_folder_linking_to_its_parent_is_a_short_error(project: Path) -> None:
    """Before: the walk went round 40 times and failed on a 600-character path."""
    before = state_bytes(project)
    (project / "segments" / "marketing" / "up").symlink_to("..")
    (project / "segments" / "sales" / "self").symlink_to(".")
    loop = "a symbolic link loop: it leads back to segments/{}, a folder that holds it"
    code, out, err = validate()
    assert (code, err) == (1, "")
    assert out == (
        f"segments/marketing/up: {loop.format('')}\n"
        f"segments/sales/self: {loop.format('sales/')}\n"
        "6 specs, 2 errors\n"
    )
    assert state_bytes(project) == before


@needs_symlinks
def test_a_folder_is_followed_through_one_link_at_most(project: Path) -> None:
    """Links to one folder cannot multiply the walk; the first is followed (inside the folder),
    so its specs clash with the originals."""
    for name in ("copy", "copy2"):
        (project / "segments" / name).symlink_to("marketing")
    clash = "name: name '{}' is already used on model '{}' by segments/copy/{}.yaml"
    assert spec_errors("segments") == [
        "segments/copy2: a second symbolic link to segments/marketing/; a folder is followed "
        "through one link at most",
        "segments/marketing/decision-makers.yaml:2:7: "
        + clash.format("Decision makers (non-US)", "contacts", "decision-makers"),
        "segments/marketing/newsletter-engaged.yaml:2:7: "
        + clash.format("Newsletter - engaged subscribers", "contacts", "newsletter-engaged"),
    ]


def test_messages_show_at_most_20_characters_of_a_value(tmp_path: Path) -> None:
    """Before: 40 characters (37 and "...")."""
    write_spec(tmp_path, "a.yaml", SECRET + "\n")
    write_spec(tmp_path, "b.yaml", spec_text("B", extra=f"protect: {'y' * 60}\n"))
    write_spec(tmp_path, "c.yaml", spec_text("C").replace('"C"', "1" * 30))
    assert spec_errors(tmp_path) == [
        f"{tmp_path.as_posix()}/a.yaml:1:1: a spec must be a mapping of keys to values, not the "
        "string 'CARGO_API_TOKEN=sk_s\u2026'",
        f"{tmp_path.as_posix()}/b.yaml:9:10: protect: expected true or false, got the string "
        "'yyyyyyyyyyyyyyyyyyyy\u2026'",
        f"{tmp_path.as_posix()}/c.yaml:1:7: name: expected a string, got the number "
        "11111111111111111111\u2026 (quote it)",
    ]


# --- 3. resource exhaustion -------------------------------------------------------------------


@pytest.fixture(params=["c", "python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``segsync.yamlfile`` with libyaml's parser, or with the pure-Python fallback."""
    return without_libyaml(monkeypatch) if request.param == "python" else yamlfile


def laughs(width: int) -> str:
    """A spec of ``width`` groups of ``width`` conditions each, written with two aliases."""
    return (
        "name: Laughs\nmodel: companies\n"
        "x: &c {kind: string, columnSlug: country, operator: is, values: FR}\n"
        f"y: &g {{conjonction: and, conditions: [{', '.join(['*c'] * width)}]}}\n"
        f"filter: {{conjonction: and, groups: [{', '.join(['*g'] * width)}]}}\n"
    )


def test_aliases_expanding_past_100_000_values_are_refused_at_the_alias(
    loader: ModuleType,
) -> None:
    """Before: 2 KB of aliases took seconds and hundreds of MB (a million conditions: 18 s,
    1.5 GB), and 12 KB ended in a MemoryError traceback."""
    start = time.perf_counter()
    doc, errors = loader.load_document(laughs(1000).encode(), "f.yaml")
    assert doc is None
    assert [str(e) for e in errors] == [
        # each *g stands for 9,005 values (1,000 conditions of 9): the 11th passes 100,000
        "f.yaml:5:77: this alias expands the document to more than 100,000 values (an alias "
        "repeats everything its anchor holds); a spec needs far fewer"
    ]
    assert time.perf_counter() - start < 5
    doc, errors = loader.load_document(laughs(30).encode(), "f.yaml")  # 900 conditions: fine
    assert errors == [] and doc is not None


def test_aliases_nesting_past_50_levels_are_refused_at_the_alias(loader: ModuleType) -> None:
    ten = "[" * 10 + "{}" + "]" * 10
    text = f"a: &a {ten}\n" + "".join(
        f"{n}: &{n} {ten.replace('{}', '*' + p)}\n" for p, n in zip("abcd", "bcde", strict=True)
    )
    doc, errors = loader.load_document(text.encode(), "f.yaml")
    assert doc is None
    assert [str(e) for e in errors] == [
        "f.yaml:5:17: this alias nests the document more than 50 levels deep; a spec needs far "
        "fewer"
    ]


def test_a_document_nested_600_levels_says_so_with_its_place(loader: ModuleType) -> None:
    """Before: "recursive YAML alias" at 1:1 (a RecursionError, caught as something else)."""
    text = "".join(" " * i + "a:\n" for i in range(600)) + " " * 600 + "a: 1\n"
    doc, errors = loader.load_document(text.encode(), "f.yaml")
    assert doc is None
    assert [str(e) for e in errors] == [
        "f.yaml:51:51: nested more than 50 levels deep; a spec needs far fewer"
    ]
    flow = "a: " + "[" * 999 + "]" * 999 + "\n"
    assert [str(e) for e in loader.load_document(flow.encode(), "f.yaml")[1]] == [
        "f.yaml:1:53: nested more than 50 levels deep; a spec needs far fewer"
    ]
    fifty = "a: " + "[" * 49 + "]" * 49 + "\n"  # the mapping and 49 lists: 50 levels
    assert loader.load_document(fifty.encode(), "f.yaml")[1] == []


def test_a_number_too_long_for_python_is_an_error_not_a_traceback(loader: ModuleType) -> None:
    """Before: ValueError "Exceeds the limit (4300 digits) for integer string conversion"."""
    doc, errors = loader.load_document(b"limit: " + b"7" * 5000 + b"\n", "f.yaml")
    assert doc is None
    assert [str(e) for e in errors] == ["f.yaml:1:8: a number too long to read (5,000 digits)"]


def test_a_state_file_nested_1000_levels_is_a_one_line_error(project: Path) -> None:
    """Before: a RecursionError traceback from ``segsync state list``."""
    deep = '{"version": 1, "segments": ' + "[" * 1000 + "]" * 1000 + "}\n"
    (project / "segsync.state.json").write_text(deep)
    result = run_cli(["state", "list"])
    message = (
        "segsync.state.json: the state file is nested too deeply to be read (a segsync state "
        f"nests a few levels); {STATE_HINT}"
    )
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"error: {message}\n")
    with pytest.raises(StateError) as info:
        read_state("segsync.state.json")
    assert str(info.value) == message
    assert (project / "segsync.state.json").read_text() == deep


@needs_fifo
@needs_symlinks
@pytest.mark.timeout(60)  # reading the FIFO would wait for a writer
def test_a_state_file_that_is_a_fifo_or_a_dangling_link_is_an_error(project: Path) -> None:
    """Before: a FIFO made ``segsync state list`` wait forever, and a dangling link was read as
    "no state yet" (an apply would then create every segment a second time)."""
    where = "check the path given with --state or $SEGSYNC_STATE"
    (project / "segsync.state.json").unlink()
    os.mkfifo(project / "segsync.state.json")
    result = run_cli(["state", "list"])
    message = f"segsync.state.json: the state file is not a regular file (a FIFO); {where}"
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"error: {message}\n")
    (project / "segsync.state.json").unlink()
    (project / "segsync.state.json").symlink_to("elsewhere/segsync.state.json")
    result = run_cli(["state", "list"])
    message = f"segsync.state.json: the state file is a dangling symbolic link; {where}"
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"error: {message}\n")
    assert os.readlink(project / "segsync.state.json") == "elsewhere/segsync.state.json"


def test_a_plan_file_nested_1000_levels_is_a_one_line_error(
    project: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    """Before: a RecursionError traceback from ``segsync apply PLANFILE``."""
    (project / "plan.json").write_text('{"actions": ' + "[" * 1000 + "]" * 1000 + "}\n")
    message = (
        "plan.json: not a segsync plan file (nested too deeply to be read); run `segsync plan` "
        "again"
    )
    with pytest.raises(PlanFileError) as info:
        read_plan_file("plan.json")
    assert str(info.value) == message
    before = state_bytes(project)
    proc = _process(emulator_factory(token=TOKEN), "apply", "--auto-approve", "plan.json")
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", f"error: {message}\n")
    assert state_bytes(project) == before


# --- 4. indentation ---------------------------------------------------------------------------


INDENT_HINT = "check the indentation of this line and the one above"


@pytest.mark.parametrize(
    ("text", "c_problem", "python_problem", "place"),
    [
        (  # a key of a condition one column left of the others
            "filter:\n  groups:\n    - conditions:\n        - kind: string\n"
            "         operator: is\n",
            "did not find expected '-' indicator (while parsing a block collection)",
            "expected <block end>, but found '<block mapping start>' (while parsing a block "
            "collection)",
            "5:10",
        ),
        (  # a list item one column left of its siblings
            "filter:\n  groups:\n    - a: 1\n   - b: 2\n",
            "did not find expected key (while parsing a block mapping)",
            "expected <block end>, but found '<block sequence start>' (while parsing a block "
            "mapping)",
            "4:4",
        ),
        (  # a key indented below the one above it
            "name: x\n model: companies\n",
            "mapping values are not allowed in this context",
            "mapping values are not allowed here",
            "2:7",
        ),
    ],
)
def test_indentation_errors_say_where_to_look(
    loader: ModuleType, text: str, c_problem: str, python_problem: str, place: str
) -> None:
    """Before: libyaml's bare "did not find expected '-' indicator"."""
    problem = c_problem if loader is yamlfile else python_problem
    doc, errors = loader.load_document(text.encode(), "f.yaml")
    assert doc is None
    assert [str(e) for e in errors] == [f"f.yaml:{place}: invalid YAML: {problem}; {INDENT_HINT}"]


def test_a_colon_inside_a_value_asks_for_quotes(loader: ModuleType) -> None:
    problem = "in this context" if loader is yamlfile else "here"
    _, errors = loader.load_document(b"name: Sales: EU\n", "f.yaml")
    assert [str(e) for e in errors] == [
        f"f.yaml:1:12: invalid YAML: mapping values are not allowed {problem}; quote a value "
        "that contains ': '"
    ]


# --- helpers for the runs against the emulator -------------------------------------------------


def _env(emu: Emulator) -> Mapping[str, str | None]:
    return {"CARGO_API_URL": emu.url, "CARGO_API_TOKEN": TOKEN, "NO_COLOR": "1"}


def _process(emu: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    """``segsync ARGS`` as a child process in the current folder, against ``emu``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARGO_", "SEGSYNC_"))}
    env.update({k: v for k, v in _env(emu).items() if v is not None})
    return subprocess.run(
        [sys.executable, "-m", "segsync", *args], env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=240, check=False,
    )
