"""Every console example of the documentation is real output.

Each ```console block of the README and of ``docs/`` is replayed, page by page and in order,
in a temporary folder, and what each command prints is compared line by line with what the page
shows. A page's examples share one session (a folder, exported variables, the emulators
started), as they would in one reader's terminal.

What a block needs beforehand (the example specs, an applied state, a running emulator) is
registered in ``SETUPS``, one entry per block, and each entry quotes the words of the page,
before that block, that tell the reader about it: the test performs what the page states.

The commands replayed:

- ``segsync …`` runs in this process (what it prints on stdout and stderr, interleaved as on a
  terminal); when the shown output holds a ``[killed here with kill -9 …]`` line, it runs as a
  real process instead, which is killed once it has printed what the page shows before that
  line (and once the block's setup says the moment has come);
- ``segsync emulator …`` starts a real emulator process (``&`` or not) on a free port;
- ``export NAME=VALUE …`` sets variables; a URL of an emulator shown earlier on the page
  becomes that emulator's real URL;
- ``sed -i 's/OLD/NEW/' FILE`` edits the file.

Compared with everything else left as is: durations, dates and times, ports, pids and hosts,
and the state file's serial (how many writes a parallel apply makes depends on timing) are
masked, and UUIDs too, but those of the emulator's workspace and models and those written in
the spec files. A line ``…`` in the shown output stands for one or more lines left out. The
result lines of an apply (``+ sales/icp created (0.05s) uuid …``) are compared as a set within
each run of them, since parallel actions finish in any order.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from segsync.emulator.launcher import EmulatorProcess, launch_emulator
from segsync.emulator.server import Emulator
from tests.helpers import EXAMPLES, ROOT, process_env, run_cli, spec_text, write_spec

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ELLIPSIS = "…"
KILLED = re.compile(r"\[killed here with kill -9 .*\]")

_MASKS = [
    (re.compile(r"\(\d+\.\d\ds\)"), "(T)"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)"), "DATE"),
    (re.compile(r"\b(127\.0\.0\.1|localhost):\d+"), r"\1:PORT"),
    (re.compile(r"\bpid \d+ on host \S+"), "pid PID on host HOST"),
    (re.compile(r"\bserial \d+"), "serial N"),
]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_RESULT = re.compile(
    r"(?:[-+~>!]|-/\+|\+!) \S+(?: \(old segment\))? (?:[a-z]+(?: [a-z]+)* \(T\)|skipped: )"
)
_EMULATOR_URL = re.compile(r"http://127\.0\.0\.1:\d+/v1")


# --- the pages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    command: str
    shown: list[str]


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    steps: list[Step]
    before: str  # the page's text between the previous console block and this one

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def console_blocks(page: Path) -> list[Block]:
    """The ```console blocks of ``page``, each as (command, shown output) steps."""
    text = page.read_text(encoding="utf-8")
    blocks: list[Block] = []
    previous_end = 0
    for match in re.finditer(r"^```console\n(.*?)^```", text, flags=re.S | re.M):
        steps: list[Step] = []
        for line in match.group(1).splitlines():
            if line.startswith("$ "):
                steps.append(Step(line[2:], []))
            else:
                assert steps, f"{page.name}: a console block starts with '$ COMMAND'"
                steps[-1].shown.append(line)
        line_no = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(page, line_no, steps, text[previous_end : match.start()]))
        previous_end = match.end()
    return blocks


def page_file(page: Path, path: str) -> str:
    """The text of the ```yaml block of ``page`` that starts with the comment ``# PATH``."""
    found = re.findall(
        rf"^```yaml\n(# {re.escape(path)}\n.*?)^```", page.read_text(encoding="utf-8"),
        flags=re.S | re.M,
    )
    assert len(found) == 1, f"{page.name} shows no (or more than one) file {path}"
    return str(found[0])


# --- comparing --------------------------------------------------------------------------------


def mask(line: str, keep: set[str]) -> str:
    line = line.rstrip()
    for pattern, replacement in _MASKS:
        line = pattern.sub(replacement, line)
    return _UUID.sub(lambda m: m.group() if m.group() in keep else "UUID", line)


def _sorted_results(lines: list[str]) -> list[str]:
    out: list[str] = []
    run: list[str] = []
    for line in [*lines, ""]:
        if _RESULT.match(line):
            run.append(line)
            continue
        out.extend(sorted(run))
        run = []
        out.append(line)
    return out[:-1]


def _fits(shown: Sequence[str], real: Sequence[str]) -> bool:
    """``real`` is ``shown``, a line ``…`` in ``shown`` standing for one or more lines."""

    @functools.cache
    def fits(i: int, j: int) -> bool:
        if i == len(shown):
            return j == len(real)
        if shown[i] == ELLIPSIS:
            return any(fits(i + 1, k) for k in range(j + 1, len(real) + 1))
        return j < len(real) and shown[i] == real[j] and fits(i + 1, j + 1)

    return fits(0, 0)


def same(shown: list[str], real: list[str], keep: set[str]) -> bool:
    return _fits(
        _sorted_results([mask(x, keep) for x in shown]),
        _sorted_results([mask(x, keep) for x in real]),
    )


def _expanded(shown: Sequence[str], real: Sequence[str]) -> list[str]:
    """``shown`` with each ``…`` replaced by the real lines it stands for in the closest
    alignment of the two (a ``…`` that stands for nothing stays)."""

    @functools.cache
    def cost(i: int, j: int) -> tuple[int, tuple[str, ...]]:
        if i == len(shown):
            return len(real) - j, ()
        options: list[tuple[int, tuple[str, ...]]] = []
        if shown[i] == ELLIPSIS:
            for k in range(j + 1, len(real) + 1):
                c, rest = cost(i + 1, k)
                options.append((c, (*real[j:k], *rest)))
        elif j < len(real) and shown[i] == real[j]:
            c, rest = cost(i + 1, j + 1)
            options.append((c, (shown[i], *rest)))
        c, rest = cost(i + 1, j)  # a shown line missing from the real output
        options.append((c + 1, (shown[i], *rest)))
        if j < len(real):  # a real line missing from the page
            c, rest = cost(i, j + 1)
            options.append((c + 1, rest))
        return min(options, key=lambda o: o[0])

    return list(cost(0, 0)[1])


def difference(shown: list[str], real: list[str], keep: set[str]) -> str:
    """What differs, masked: a diff from the page's lines (each ``…`` filled in where it can
    be) to the real ones."""
    real_m = _sorted_results([mask(x, keep) for x in real])
    shown_m = _expanded(_sorted_results([mask(x, keep) for x in shown]), real_m)
    diff = difflib.unified_diff(
        shown_m, real_m, "shown in the page (masked)", "real output (masked)", lineterm="", n=2
    )
    return "\n".join(diff)


def test_comparing_masks_only_what_changes_from_run_to_run() -> None:
    keep = {"3df1d74a-f7c6-4a84-ac43-54242fc4ba70"}
    shown = [
        "Target workspace: demo (3df1d74a-f7c6-4a84-ac43-54242fc4ba70)",
        ELLIPSIS,
        "+ b created (0.04s) uuid 8c80d29a-ea00-4896-a223-fabdde1977e1",
        "+ a created (1.02s) uuid 394d78ce-c793-475e-b948-2b9fd6b3d1d7",
        "note: pid 4 on host vm since 2026-11-27T14:19:16.468Z, http://127.0.0.1:8787/v1",
    ]
    real = [
        "Target workspace: demo (3df1d74a-f7c6-4a84-ac43-54242fc4ba70)",
        "one line left out",
        "two lines left out",
        "+ a created (0.01s) uuid 07ed752e-f029-4296-847a-c6f4c0b5ba42",
        "+ b created (0.09s) uuid 3e8cafc2-9576-46f1-8043-9b91299e0835",
        "note: pid 77 on host ci since 2027-01-02T03:04:05.006Z, http://127.0.0.1:40411/v1",
    ]
    assert same(shown, real, keep)
    # a kept UUID, a name, a number and a missing line all count
    assert not same(shown, [real[0].replace("3df1", "3df2"), *real[1:]], keep)
    assert not same(shown, [*real[:3], real[3].replace("+ a", "+ c"), *real[4:]], keep)
    assert not same(shown, [*real[:4], real[4].replace("created", "updated"), real[5]], keep)
    assert not same(shown, [real[0], *real[3:]], keep)  # "…" stands for at least one line
    assert not same(shown[:-1], real, keep)
    assert difference(shown, real, keep) == ""
    # the diff fills in "…" and shows only what differs
    diff = difference(shown, [*real[:3], real[3].replace("+ a", "+ c"), *real[4:]], keep)
    assert [x for x in diff.splitlines() if x[:1] in "+-" and x[:3] not in ("---", "+++")] == [
        "-+ a created (T) uuid UUID", "++ c created (T) uuid UUID"
    ]


# --- replaying --------------------------------------------------------------------------------


class Session:
    """One reader's terminal for a page: a folder, variables, emulators."""

    def __init__(
        self,
        page: Path,
        tmp_path: Path,
        start_emulator: Callable[..., Emulator],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.page = page
        self._tmp = tmp_path
        self._start = start_emulator
        self._monkeypatch = monkeypatch
        self.folder = tmp_path
        self.env: dict[str, str | None] = {}
        self.keep: set[str] = set()
        self.emulators: list[Emulator] = []
        self.launched: list[EmulatorProcess] = []
        self._urls: dict[str, str] = {}  # an emulator URL the page shows -> its real URL
        self.fresh()

    # what setups use

    def fresh(self) -> None:
        """An empty folder and no CARGO_*/SEGSYNC_* variable but NO_COLOR."""
        n = len(list(self._tmp.glob("session-*")))
        self.folder = self._tmp / f"session-{n}"
        self.folder.mkdir()
        self._monkeypatch.chdir(self.folder)
        self.env = {name: None for name in os.environ if name.startswith(("CARGO_", "SEGSYNC_"))}
        self.env["NO_COLOR"] = "1"

    def examples(self, *, without: Sequence[str] = (), only: str = "") -> None:
        """The repository's example specs in ``segments/`` (``only`` a sub-folder of them)."""
        shutil.copytree(EXAMPLES / only, self.folder / "segments" / only)
        for spec_id in without:
            (self.folder / "segments" / f"{spec_id}.yaml").unlink()

    def write(self, rel: str, text: str) -> None:
        write_spec(self.folder, rel, text)

    def write_shown(self, path: str) -> None:
        """Write the file the page shows (a ```yaml block starting with ``# PATH``)."""
        self.write(path, page_file(self.page, path))

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.folder / rel
        text = path.read_text(encoding="utf-8")
        assert old in text, (rel, old)
        path.write_text(text.replace(old, new), encoding="utf-8")

    def emulator(self, **options: Any) -> Emulator:
        """An emulator in this process, which the variables point at (token ``demo``)."""
        emu = self._start(token="demo", **options)
        self.emulators.append(emu)
        self.keep |= {emu.catalog.workspace_uuid, *(m["uuid"] for m in emu.catalog.models)}
        self.env.update({"CARGO_API_URL": emu.url, "CARGO_API_TOKEN": "demo"})
        return emu

    def apply(self) -> None:
        """``segsync apply --auto-approve``, which must succeed (what it prints is not shown)."""
        result = run_cli(["apply", "--auto-approve"], env=self.env)
        assert result.exit_code == 0, result.output

    # replaying

    def replay(self, block: Block, setup: Setup) -> None:
        for step in block.steps:
            where = f"{block.where}: $ {step.command}"
            real = self._run(step, setup, where)
            if real is None:
                continue
            shown = [x for x in step.shown if not KILLED.fullmatch(x)]
            keep = self._keep()
            if not same(shown, real, keep):
                pytest.fail(
                    f"{where}\nThe example's output is not what the command prints:\n"
                    + difference(shown, real, keep),
                    pytrace=False,
                )

    def _run(self, step: Step, setup: Setup, where: str) -> list[str] | None:
        words = shlex.split(step.command)
        if words[0] == "export":
            assert step.shown == [], f"{where}: export prints nothing"
            for word in words[1:]:
                name, _, value = word.partition("=")
                for url in _EMULATOR_URL.findall(value):
                    assert url in self._urls, f"{where}: no emulator of the page listens on {url}"
                    value = value.replace(url, self._urls[url])
                self.env[name] = value
            return None
        if words[0] == "sed":
            self._sed(words, where)
            assert step.shown == [], f"{where}: sed -i prints nothing"
            return None
        assert words[0] == "segsync", f"{where}: only segsync, export and sed are replayed"
        if words[-1] == "&":
            words = words[:-1]
        if words[1:2] == ["emulator"]:
            return self._launch(words[2:], step.shown)
        marks = [i for i, x in enumerate(step.shown) if KILLED.fullmatch(x)]
        if marks:
            assert marks == [len(step.shown) - 1], f"{where}: the kill ends the output"
            return self._killed(words[1:], step.shown[:-1], setup, where)
        return run_cli(words[1:], env=self.env).output.splitlines()

    def _sed(self, words: list[str], where: str) -> None:
        match = re.fullmatch(r"s/([^/]*)/([^/]*)/(g?)", words[2]) if len(words) > 3 else None
        assert words[1] == "-i" and match, f"{where}: only sed -i 's/OLD/NEW/' FILE is replayed"
        old, new, every = match.groups()
        for name in words[3:]:
            path = self.folder / name
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            count = 0 if every else 1
            edited = "".join(re.sub(old, new, x, count=count) for x in lines)
            path.write_text(edited, encoding="utf-8")

    def _launch(self, args: list[str], shown: list[str]) -> list[str]:
        if "--port" in args:  # a free port instead (ports are masked)
            i = args.index("--port")
            args = [*args[:i], "--port", "0", *args[i + 2 :]]
        proc = launch_emulator(*args, token=None, cwd=self.folder, env=process_env(self.env))
        self.launched.append(proc)
        real = [*proc.output, *proc.errors]  # what it printed up to its ready line
        for line in real:
            self.keep |= set(_UUID.findall(line))
        for line in shown:
            self._urls |= dict.fromkeys(_EMULATOR_URL.findall(line), proc.url)
        return real

    def _killed(self, args: list[str], shown: list[str], setup: Setup, where: str) -> list[str]:
        """``segsync ARGS`` as a real process, killed (SIGKILL) once it printed ``shown`` and
        the setup's moment has come."""
        exe = shutil.which("segsync", path=str(Path(sys.executable).parent))
        assert exe is not None, "the segsync command is installed beside this Python"
        assert setup.kill_when is not None, f"{where}: the setup says when to kill"
        proc = subprocess.Popen(
            [exe, *args], cwd=self.folder, text=True, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=process_env({**self.env, "PYTHONUNBUFFERED": "1"}),
        )
        lines: list[str] = []

        def drain() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        give_up = time.monotonic() + 120
        try:
            while not (same(shown, list(lines), self._keep()) and setup.kill_when(self)):
                if proc.poll() is not None or time.monotonic() > give_up:
                    pytest.fail(
                        f"{where}\nThe moment to kill never came:\n"
                        + difference(shown, list(lines), self._keep()),
                        pytrace=False,
                    )
                time.sleep(0.005)
        finally:
            proc.kill()
            proc.wait()
            reader.join()
            assert proc.stdout is not None
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL, "killed, not ended by itself"
        return lines

    def _keep(self) -> set[str]:
        """The UUIDs compared as they are: the emulators' and those of the spec files."""
        found = set(self.keep)
        for path in (self.folder / "segments").rglob("*.y*ml"):
            found |= set(_UUID.findall(path.read_text(encoding="utf-8")))
        return found

    def close(self) -> None:
        for proc in self.launched:
            proc.stop()


# --- what each block needs --------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """Before a block: ``says`` is what the page says about it (word for word, before the
    block; empty when there is nothing to do), ``prepare`` does it. ``kill_when`` tells when a
    command shown killed may be killed (after it printed what the page shows)."""

    says: str = ""
    prepare: Callable[[Session], None] | None = None
    kill_when: Callable[[Session], bool] | None = None


def _examples(s: Session) -> None:
    s.examples()


def _edited_after_an_apply(s: Session) -> None:
    s.fresh()
    s.examples(without=["sales/young-startups"])
    s.emulator()
    s.apply()
    shutil.copy(EXAMPLES / "sales" / "young-startups.yaml", s.folder / "segments" / "sales")
    s.edit("segments/sales/enterprise-eu.yaml", "value: 100000", "value: 250000")
    s.edit("segments/sales/enterprise-eu.yaml", "limit: 250", "limit: 300")


PARTNERS = """\
name: Partner accounts
model: companies
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - {kind: string, columnSlug: stage, operator: is, values: [partner]}
"""
PARTNERS_EU = """\
name: Partner accounts EU
model: companies
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - {kind: segment, operator: in, segment: sales/partners}
        - {kind: string, columnSlug: country, operator: is, values: [FR, DE]}
"""


def _a_name_taken_in_cargo(s: Session) -> None:
    s.fresh()
    s.examples(only="sales")
    s.write("segments/sales/partners.yaml", PARTNERS)
    s.write("segments/sales/partners-eu.yaml", PARTNERS_EU)
    emu = s.emulator()
    (companies,) = [m["uuid"] for m in emu.catalog.models if m["slug"] == "companies"]
    stage = {"kind": "string", "columnSlug": "stage", "operator": "is"}
    emu.store.create({  # made in Cargo's UI: the same name, other conditions
        "name": "Partner accounts", "modelUuid": companies,
        "filter": {"conjonction": "and", "groups": [{"conjonction": "and", "conditions": [
            {**stage, "values": ["partner", "reseller"]},
        ]}]},
    })


def _renewals_after_an_apply(s: Session) -> None:
    s.fresh()
    s.examples()
    data = s.folder / "emulator.json"
    s.emulator(data_path=data)
    s.apply()
    for n in range(1, 7):
        arr = f"{{kind: number, columnSlug: arr, operator: greaterThan, value: {n}0000}}"
        s.write(
            f"segments/renewals/q{n}.yaml",
            spec_text(f"Renewals wave {n}", countries=(), conditions=[arr]),
        )
    # the same workspace restarted, slow (the first emulator is left alone from now on)
    s.emulator(data_path=data, latency_ms=1000)


def _two_more_creates_on_their_way(s: Session) -> bool:
    names = {x["name"] for x in s.emulators[-1].store.raw_segments()}
    return {"Renewals wave 3", "Renewals wave 4"} <= names


def _misspelled_spec(s: Session) -> None:
    s.examples()
    s.write_shown("segments/sales/eu.yaml")


def _typo_against_the_emulator(s: Session) -> None:
    s.fresh()
    s.write_shown("segments/typo.yaml")
    s.emulator()


SETUPS: dict[str, list[Setup]] = {
    "README.md": [
        Setup("run it on the example specs", _examples),
        Setup(),
    ],
    "docs/emulator.md": [
        Setup(),
        Setup("in a folder holding the example specs", _examples),
        Setup(),
    ],
    "docs/plan-and-apply.md": [
        Setup(
            "The example specs were applied without `sales/young-startups`; then that spec was "
            "added, and the ARR threshold and the limit of `sales/enterprise-eu` were changed",
            _edited_after_an_apply,
        ),
        Setup(
            "the sales specs of the examples and two more, `sales/partners` and "
            "`sales/partners-eu` (which references it), while someone had already made a "
            "segment named Partner accounts in Cargo's UI, with other conditions",
            _a_name_taken_in_cargo,
        ),
        Setup(
            "the example specs applied before, six new ones `renewals/q1` to `renewals/q6` "
            "(`arr > 10000` to `arr > 60000`), and the emulator restarted with "
            "`--latency-ms 1000`; two more creates were on their way",
            _renewals_after_an_apply,
            kill_when=_two_more_creates_on_their_way,
        ),
    ],
    "docs/specs.md": [
        Setup("With the example specs and this misspelled `segments/sales/eu.yaml`",
              _misspelled_spec),
        Setup("against the emulator, with a specs folder holding only this "
              "`segments/typo.yaml`", _typo_against_the_emulator),
    ],
}


def _paged() -> Iterator[Path]:
    for page in PAGES:
        if console_blocks(page):
            yield page


def _words(text: str) -> str:
    return " ".join(text.split())


def test_every_console_block_has_its_setup() -> None:
    found = {str(p.relative_to(ROOT)): len(console_blocks(p)) for p in _paged()}
    assert found == {page: len(setups) for page, setups in SETUPS.items()}
    for page, setups in SETUPS.items():
        for block, setup in zip(console_blocks(ROOT / page), setups, strict=True):
            assert block.steps, f"{block.where}: not a command with its output; use ```sh"
            assert (setup.prepare is None) == (setup.says == ""), block.where
            assert _words(setup.says) in _words(block.before), (
                f"{block.where}: the page does not say before the block: {setup.says!r}"
            )


@pytest.mark.parametrize("page", list(SETUPS), ids=str)
def test_console_examples_are_real_output(
    page: str,
    tmp_path: Path,
    emulator_factory: Callable[..., Emulator],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = Session(ROOT / page, tmp_path, emulator_factory, monkeypatch)
    try:
        for block, setup in zip(console_blocks(ROOT / page), SETUPS[page], strict=True):
            if setup.prepare is not None:
                setup.prepare(session)
            session.replay(block, setup)
    finally:
        session.close()
