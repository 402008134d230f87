"""The performance targets of docs/performance.md, one row each, as paired medians of CPU time.

Rows (``--rows``, comma-separated; default: all of them):

    validate        `segsync validate` / parsing the same files         target <= 1.3 x
    plan-cold       `segsync plan`, no state (all creates) / parsing    target <= 1.3 x
    plan-unchanged  `segsync plan`, state recorded at apply / parsing   target <= 0.3 x
    rss-cold        peak memory (max RSS) of `segsync plan`, no state
    rss-unchanged   peak memory (max RSS) of `segsync plan`, nothing changed
    pss-cold        peak memory of `segsync plan` and its worker processes together,
    pss-unchanged   sampled (see below), no state / nothing changed
                    targets: <= 150 MB up to 10,000 specs, <= 400 MB up to 50,000
                    (``plan-rss`` selects the four memory rows)
    examples        `segsync validate` of the example specs in segments/
                    / `python -c "import click"`                        target <= 2 x

How. Every command runs as its own process, started from the interpreter being measured:
segsync as ``PYTHON -m segsync ...``; the parse reference as ``PYTHON -c ...``, a script that
reads every spec file of the same folder and parses it with
``yaml.load(text, Loader=yaml.CSafeLoader)``. Both figures include the interpreter's start-up,
which is the same for both. The CPU time of a run is the child's user + system time (from
``os.wait4``); its peak memory is the child's ``ru_maxrss`` (a child starts as a copy of this
script, so no figure is below this script's own peak, printed at the end: about 20 MB). After
one untimed warm-up run of each command, the commands of a size (segsync's and the reference,
the same command of each interpreter next to each other) run one after the other, ``--repeat``
rounds, the order rotating by one each round; each figure is the median of its rounds, the
rss rows take the largest. The examples row has its own ``--examples-repeat`` rounds (its runs
are short). Ratios divide the medians of one interpreter by the median of its own reference;
the verdict is "ok" or "over" the target, "failed" when a command failed and "changes" when
the plan of unchanged specs planned something: those are noted under the tables. Wall-time
medians follow, in a second table. The script prints figures and asserts nothing.

Memory of several processes. ``ru_maxrss`` is the peak of one process: when segsync shares
its work among worker processes, it is the largest of them, not their sum. The pss rows sum
the proportional set size (``Pss`` of ``/proc/PID/smaps_rollup``: shared pages divided among
the processes sharing them) of the command and all its descendants every 10 ms during the
warm-up run, and show the largest sum seen (Linux only; a peak shorter than 10 ms can be
missed). The timed rounds are not sampled.

Specs. ``--sizes`` generated specs of several kinds (string, number, date, boolean, object,
objectProperty, vector, sql, segment references, occurrence, enrollment; sort, limit and
tracking columns), 100 files per sub-folder. The trees are generated once per run (or kept in
``--workdir`` and reused) and shared by every row and interpreter. For plan-unchanged each
interpreter writes its own state file, the state an apply of every spec leaves behind (see
``tests/helpers.py``: ``applied_state``, ``write_state``), with its own segsync, so that the
state is in the format that installation reads. The commands run in the tree's folder (those
of the examples row in an empty one), with CARGO_*, SEGSYNC_* and PYTHONPATH unset and NO_COLOR
set.

Parallel parsing. By default segsync parses many files in one process per core: less wall
time for a little more CPU (sending the results back). ``--jobs 1`` measures the one-process
cost (SEGSYNC_JOBS, which an installation without parallel parsing ignores).

Before and after. ``--python PATH`` selects the interpreter whose segsync is measured (default:
this one); ``--compare PATH2`` measures a second one in the same rounds, interleaved, and shows
both side by side (``--labels`` names them).

Usage:

    python benchmarks/bench_targets.py                       # 1k, 10k, 50k specs, all rows
    python benchmarks/bench_targets.py --sizes 200,1000 --repeat 3
    python benchmarks/bench_targets.py --rows validate,plan-unchanged --sizes 10000
    python benchmarks/bench_targets.py --python OLD/bin/python --compare NEW/bin/python \\
        --labels before,after
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "segments"
HELPERS = ROOT / "tests" / "helpers.py"

ROWS = (
    "validate", "plan-cold", "plan-unchanged", "rss-cold", "rss-unchanged", "pss-cold",
    "pss-unchanged", "examples",
)
MEMORY_ROWS = ("rss-cold", "rss-unchanged", "pss-cold", "pss-unchanged")
ALIASES = {"plan-rss": MEMORY_ROWS, "all": ROWS}
RATIO_TARGETS = {"validate": 1.3, "plan-cold": 1.3, "plan-unchanged": 0.3, "examples": 2.0}
#: (largest size, MB): the peak-memory target for sizes up to that size.
RSS_TARGETS = ((10_000, 150.0), (50_000, 400.0))
#: The measurement each row needs: (segsync command, reference).
ROW_JOBS = {
    "validate": ("validate", "parse"),
    "plan-cold": ("plan-cold", "parse"),
    "plan-unchanged": ("plan-unchanged", "parse"),
    "rss-cold": ("plan-cold", "parse"),
    "rss-unchanged": ("plan-unchanged", "parse"),
    "pss-cold": ("plan-cold", "parse"),
    "pss-unchanged": ("plan-unchanged", "parse"),
    "examples": ("validate-examples", "import-click"),
}
FILES_PER_FOLDER = 100
#: ru_maxrss is in kB on Linux, in bytes on macOS.
RSS_SCALE = 1024 * 1024 if sys.platform == "darwin" else 1024

# --- spec generation ---------------------------------------------------------------------------

# Four kinds of spec, in turn. The third refers to the first spec of its folder (a companies
# spec of the first kind), as `segment: <spec id>`.
TEMPLATES = (
    """\
# Generated segment {i}: companies in {country} with more than {size} employees.
name: Generated segment {i}
model: companies
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - kind: string
          columnSlug: country
          operator: is
          values: [{country}, DE, ES]
        - kind: number
          columnSlug: employee_count
          operator: greaterThan
          value: {size}
        - kind: date
          columnSlug: founded_at
          operator: between
          firstValue: "2020-01-01"
          lastValue: "2021-01-01"
    - conjonction: or
      conditions:
        - kind: boolean
          columnSlug: is_customer
          operator: isFalse
        - kind: string
          columnSlug: stage
          operator: isNotNull
sort:
  - columnSlug: arr
    kind: desc
limit: {limit}
trackingColumnSlugs: [stage, owner]
""",
    """\
# Generated segment {i}: senior contacts in {country}, seen lately, with a Paris address.
name: Generated contacts {i}
model: contacts
filter:
  conjonction: and
  groups:
    - conjonction: or
      conditions:
        - kind: string
          columnSlug: title
          operator: contains
          values: [Head of, Chief, VP]
        - kind: number
          columnSlug: lead_score
          operator: between
          firstValue: {size}
          lastValue: {limit}
    - conjonction: and
      conditions:
        - kind: date
          columnSlug: last_seen_at
          operator: greaterThan
          value: "2025-06-01"
        - kind: string
          columnSlug: email
          operator: doesNotContain
          values: ["@gmail.", "@yahoo."]
        - kind: object
          columnSlug: address
          operator: matchConditions
          conjonction: and
          propertyConditions:
            - kind: objectProperty
              columnSlug: address
              propertyName: city
              operator: is
              value: Paris
sort:
  - columnSlug: lead_score
    kind: desc
  - columnSlug: last_seen_at
    kind: desc
limit: {limit}
""",
    """\
# Generated segment {i}: a narrower cut of {ref}, with an embedding and a raw SQL clause.
name: Generated refined {i}
model: companies
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - kind: segment
          operator: in
          segment: {ref}
        - kind: objectProperty
          columnSlug: address
          propertyName: zip
          operator: between
          value: "75001"
          otherValue: "75020"
        - kind: vector
          columnSlug: embedding
          operator: isNotNull
        - kind: sql
          name: recent signups {i}
          clause: "signed_up_at > now() - interval '{size} days'"
sort:
  - columnSlug: employee_count
    kind: asc
trackingColumnSlugs: [stage]
""",
    """\
# Generated segment {i}: companies with meetings lately, not yet in the onboarding workflow.
name: Generated activity {i}
model: companies
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - kind: occurrence
          relatedModelUuid: 4f0a3c2e-8d1b-4c6a-9e2f-7a5b3c1d0e9f
          frequency: {{operator: moreThan, value: {freq}}}
          period: {{operator: lessThan, value: 90, unit: day}}
          conjonction: and
          conditions:
            - kind: string
              columnSlug: type
              operator: is
              values: [meeting, call]
        - kind: enrollment
          workflowUuid: 9b1c7c51-1f7e-4a35-9a51-2f0c9f1e5d20
          activityKind: workflowEntered
          frequency: {{operator: not}}
          period: {{operator: lessThan, value: 30, unit: day}}
        - kind: number
          columnSlug: arr
          operator: greaterThan
          value: {size}
limit: {limit}
""",
)
GENERATOR_VERSION = hashlib.sha256("".join(TEMPLATES).encode()).hexdigest()[:16]


def spec_rel(i: int) -> str:
    return f"group-{i // FILES_PER_FOLDER:03d}/segment-{i:05d}.yaml"


def spec_text(i: int) -> str:
    first = i - i % FILES_PER_FOLDER  # the folder's first spec, of the first kind
    return TEMPLATES[i % len(TEMPLATES)].format(
        i=i, country=("FR", "IT", "NL")[i % 3], size=10 + i, limit=100 + i, freq=1 + i % 5,
        ref=spec_rel(first).rsplit(".", 1)[0],
    )


def generate(tree: Path, n: int) -> None:
    """``tree/segments`` with ``n`` specs, unless ``tree`` already holds that very tree."""
    marker = tree / "complete"
    stamp = f"{n} {GENERATOR_VERSION}\n"
    if marker.is_file() and marker.read_text() == stamp:
        return
    shutil.rmtree(tree, ignore_errors=True)
    for i in range(n):
        path = tree / "segments" / spec_rel(i)
        if i % FILES_PER_FOLDER == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(spec_text(i), encoding="utf-8")
    marker.write_text(stamp)


# --- what runs in the measured interpreter -----------------------------------------------------

PARSE_SNIPPET = """\
import sys
from pathlib import Path
import yaml
for path in sorted(p for p in Path(sys.argv[1]).rglob("*") if p.suffix in (".yaml", ".yml")):
    yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
"""

# The installation's own tests/helpers.py when it has one on its path (an editable install),
# else this repository's, run against the installation's segsync.
STATE_SNIPPET = """\
import importlib.util, sys
try:
    from tests.helpers import applied_state, write_state
except ImportError:
    spec = importlib.util.spec_from_file_location("bench_helpers", sys.argv[3])
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    applied_state, write_state = helpers.applied_state, helpers.write_state
from segsync.specs import load_specs
specs = load_specs(sys.argv[1])
numbers = {s.id: i for i, s in enumerate(specs)}
state = applied_state(
    specs, uuid_for=lambda spec_id: f"00000000-0000-4000-8000-{numbers[spec_id]:012d}")
write_state(sys.argv[2], state)
"""

DESCRIBE_SNIPPET = """\
import sys, segsync, yaml
print(f"Python {sys.version.split()[0]}, segsync {segsync.__version__} from "
      f"{segsync.__file__}, PyYAML {yaml.__version__} "
      f"({'with' if yaml.__with_libyaml__ else 'WITHOUT'} libyaml)")
"""


#: ``--jobs``: set as SEGSYNC_JOBS for every segsync command (an installation that has no
#: parallel parsing ignores it); None leaves segsync's default.
JOBS: list[int | None] = [None]


def child_env() -> dict[str, str]:
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith(("CARGO_", "SEGSYNC_")) and name != "PYTHONPATH"
    }
    env["NO_COLOR"] = "1"
    if JOBS[0] is not None:
        env["SEGSYNC_JOBS"] = str(JOBS[0])
    return env


@dataclass(frozen=True)
class Job:
    """One command to time: ``kind`` of ``interp`` (the index of its interpreter)."""

    kind: str
    interp: int
    argv: tuple[str, ...]
    cwd: Path


@dataclass
class Run:
    cpu: float
    wall: float
    rss_mb: float
    code: int
    #: Largest sum of the PSS of the process and its descendants seen (a sampled run only).
    tree_mb: float | None = None


@dataclass
class Series:
    runs: list[Run] = field(default_factory=list)
    #: Why the figures mean nothing: the command failed, or planned changes where none were.
    bad: str | None = None
    #: The sampled peak of the process tree's memory, from the warm-up run.
    tree_mb: float | None = None

    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    def rss(self) -> float:
        return max(r.rss_mb for r in self.runs)


def run_child(argv: Sequence[str], cwd: Path, out: Path, *, sample: bool = False) -> Run:
    """Run ``argv`` to its end, its output in ``out``; its CPU, wall time and peak memory.

    ``sample``: also sum the memory of the process and its descendants every 10 ms (Linux)."""
    tree_kb: int | None = None
    with out.open("wb") as fh:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL, stdout=fh,
            stderr=subprocess.STDOUT,
        )
        if sample and Path("/proc/self/smaps_rollup").exists():
            tree_kb = 0
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                tree_kb = max(tree_kb, sum(pss_kb(p) for p in process_tree(proc.pid)))
                time.sleep(0.01)
        else:
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    return Run(usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss / RSS_SCALE, code,
               None if tree_kb is None else tree_kb / 1024)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (those that are still there)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as fh:
                    todo.extend(int(x) for x in fh.read().split())
        except OSError:  # gone meanwhile
            continue
    return found


def pss_kb(pid: int) -> int:
    """The proportional set size of ``pid`` (its pages, shared ones divided among their
    users), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            return next((int(line.split()[1]) for line in fh if line.startswith("Pss:")), 0)
    except (OSError, ValueError):
        return 0


# --- one size ----------------------------------------------------------------------------------


def jobs_for(
    kinds: set[str], pythons: Sequence[str], tree: Path, examples_cwd: Path
) -> list[Job]:
    """The commands measuring ``kinds``, the same command of each interpreter side by side."""
    jobs = []
    for k, py in enumerate(pythons):
        segsync = (py, "-m", "segsync")
        argvs = {
            "parse": (py, "-c", PARSE_SNIPPET, "segments"),
            "validate": (*segsync, "validate", "--dir", "segments"),
            "plan-cold": (*segsync, "plan", "--dir", "segments", "--state", "absent.json"),
            "plan-unchanged": (*segsync, "plan", "--dir", "segments", "--state",
                               f"state-{k}.json"),
            "validate-examples": (*segsync, "validate", "--dir", str(EXAMPLES)),
            "import-click": (py, "-c", "import click"),
        }
        for kind in sorted(kinds):
            cwd = examples_cwd if kind in ("validate-examples", "import-click") else tree
            jobs.append(Job(kind, k, argvs[kind], cwd))
    return sorted(jobs, key=lambda job: (job.kind, job.interp))


def measure(
    jobs: list[Job], rounds: int, outdir: Path, notes: list[str], what: str,
    labels: Sequence[str], sample: bool = False,
) -> dict[tuple[str, int], Series]:
    """Warm up each job once (sampling its memory if ``sample``), then ``rounds`` rounds of all
    of them, the order rotating."""
    series = {(job.kind, job.interp): Series() for job in jobs}
    for job in jobs:
        out = outdir / f"{job.kind}-{job.interp}.out"
        run = run_child(job.argv, job.cwd, out, sample=sample)
        series[(job.kind, job.interp)].tree_mb = run.tree_mb
        if run.code != 0:
            series[(job.kind, job.interp)].bad = "failed"
            notes.append(f"{what}: {job.kind} of {labels[job.interp]} exited {run.code}: "
                         f"{last_line(out)}")
        elif job.kind == "plan-unchanged" and not first_line(out).startswith("No changes"):
            series[(job.kind, job.interp)].bad = "changes"
            notes.append(f"{what}: plan-unchanged of {labels[job.interp]} did not report "
                         f"'No changes': {first_line(out)}")
    for r in range(rounds):
        progress(f"  {what}: round {r + 1}/{rounds}")
        shift = r % len(jobs)
        for job in jobs[shift:] + jobs[:shift]:
            out = outdir / f"{job.kind}-{job.interp}.out"
            run = run_child(job.argv, job.cwd, out)
            series[(job.kind, job.interp)].runs.append(run)
            if run.code != 0 and series[(job.kind, job.interp)].bad is None:
                series[(job.kind, job.interp)].bad = "failed"
                notes.append(f"{what}: {job.kind} of {labels[job.interp]} exited {run.code}: "
                             f"{last_line(out)}")
    return series


def write_states(pythons: Sequence[str], tree: Path, outdir: Path, notes: list[str],
                 labels: Sequence[str]) -> None:
    for k, py in enumerate(pythons):
        out = outdir / f"state-{k}.out"
        argv = (py, "-c", STATE_SNIPPET, "segments", f"state-{k}.json", str(HELPERS))
        run = run_child(argv, tree, out)
        if run.code != 0:
            notes.append(f"writing the state of {labels[k]} failed: "
                         f"{last_line(out)}")


# The output of a plan of many creates is large: only its ends are read, so that this script
# stays small (its peak memory is the floor of every child's).


def first_line(out: Path) -> str:
    with out.open("rb") as fh:
        lines = fh.read(4096).decode("utf-8", "replace").strip().splitlines()
    return lines[0][:160] if lines else "(no output)"


def last_line(out: Path) -> str:
    with out.open("rb") as fh:
        fh.seek(max(0, out.stat().st_size - 4096))
        lines = fh.read().decode("utf-8", "replace").strip().splitlines()
    return lines[-1][:160] if lines else "(no output)"


# --- the tables --------------------------------------------------------------------------------


@dataclass
class Cell:
    segsync: float
    reference: float
    ratio: float | None
    verdict: str


@dataclass
class Line:
    row: str
    size: str
    target: str
    unit: str  # "s" or "MB"
    cpu: list[Cell]
    wall: list[Cell]


def rss_target(n: int) -> float | None:
    return next((mb for top, mb in RSS_TARGETS if n <= top), None)


def make_line(row: str, size: int | None, label: str, series: dict[tuple[str, int], Series],
              interps: int) -> Line:
    kind, ref = ROW_JOBS[row]
    cpu, wall = [], []
    if row in MEMORY_ROWS:
        limit = rss_target(size or 0)
        for k in range(interps):
            a, b = series[(kind, k)], series[(ref, k)]
            if row.startswith("rss-"):
                mine, theirs = a.rss(), b.rss()
            elif a.tree_mb is None or b.tree_mb is None:  # not on Linux
                cpu.append(Cell(math.nan, math.nan, None, "-"))
                continue
            else:
                mine, theirs = a.tree_mb, b.tree_mb
            verdict = "-" if limit is None else ("ok" if mine <= limit else "over")
            verdict = a.bad or b.bad or verdict
            cpu.append(Cell(mine, theirs, None, verdict))
        target = "-" if limit is None else f"<= {limit:.0f} MB"
        return Line(row, label, target, "MB", cpu, [])
    limit = RATIO_TARGETS[row]
    for k in range(interps):
        a, b = series[(kind, k)], series[(ref, k)]
        ratio = a.cpu() / b.cpu()
        verdict = a.bad or b.bad or ("ok" if ratio <= limit else "over")
        cpu.append(Cell(a.cpu(), b.cpu(), ratio, verdict))
        wall.append(Cell(a.wall(), b.wall(), a.wall() / b.wall(), ""))
    return Line(row, label, f"<= {limit:.1f} x", "s", cpu, wall)


def print_table(title: str, lines: list[Line], labels: Sequence[str], wall: bool) -> None:
    group = ["segsync", "reference", "ratio"] + ([] if wall else ["verdict"])
    head = ["row", "size", "target"] + group * len(labels)
    rows = []
    for line in lines:
        cells = line.wall if wall else line.cpu
        if not cells:
            continue
        row = [line.row, line.size, line.target]
        for cell in cells:
            if line.unit == "MB":
                row += [f"{cell.segsync:.1f} MB", f"{cell.reference:.1f} MB"]
            else:
                row += [f"{cell.segsync:.3f} s", f"{cell.reference:.3f} s"]
            row.append("-" if cell.ratio is None else f"{cell.ratio:.2f} x")
            if not wall:
                row.append(cell.verdict)
        rows.append(row)
    if not rows:
        return
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def show(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    print(title)
    if len(labels) > 1:  # each interpreter's name over its columns
        spans = []
        for k, label in enumerate(labels):
            start = 3 + k * len(group)
            width = sum(widths[start:start + len(group)]) + 2 * (len(group) - 1)
            spans.append(f" {label} ".center(width, "-"))
        print(" " * (sum(widths[:3]) + 2 * 3) + "  ".join(spans))
    for r in [head, *rows]:
        print(show(r))
    print()


# --- main --------------------------------------------------------------------------------------


def parse_rows(text: str) -> list[str]:
    rows: list[str] = []
    for name in (x.strip() for x in text.split(",") if x.strip()):
        for row in ALIASES.get(name, (name,)):
            if row not in ROWS:
                raise argparse.ArgumentTypeError(
                    f"unknown row {row!r}: choose among {', '.join((*ROWS, *ALIASES))}")
            if row not in rows:
                rows.append(row)
    return sorted(rows, key=ROWS.index)


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return value


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(x.replace("_", "").lower().replace("k", "000")) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of sizes: {text!r}") from None
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", type=parse_sizes, default=[1_000, 10_000, 50_000],
                        help="spec counts, comma-separated (default: 1000,10000,50000)")
    parser.add_argument("--rows", type=parse_rows, default=list(ROWS),
                        help=f"rows, comma-separated, among {', '.join((*ROWS, *ALIASES))}")
    parser.add_argument("--repeat", type=positive, default=5,
                        help="rounds per size (default: 5)")
    parser.add_argument("--examples-repeat", type=positive, default=20,
                        help="rounds of the examples row, whose runs are short (default: 20)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter whose segsync is measured (default: this one)")
    parser.add_argument("--compare", metavar="PYTHON2",
                        help="a second interpreter, measured in the same rounds")
    parser.add_argument("--labels", default=None,
                        help="names of the interpreters, comma-separated (default: A,B)")
    parser.add_argument("--workdir", type=Path,
                        help="keep the generated specs here and reuse them in later runs")
    parser.add_argument("--jobs", type=positive, default=None,
                        help="SEGSYNC_JOBS for segsync's commands (1: parse in one process, "
                        "the CPU cost alone; default: segsync's own choice)")
    args = parser.parse_args()
    JOBS[0] = args.jobs

    pythons = [args.python] + ([args.compare] if args.compare else [])
    labels = (args.labels.split(",") if args.labels else ["A", "B"])[: len(pythons)]
    if len(labels) < len(pythons):
        parser.error("--labels needs one name per interpreter")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="segsync-bench-") as tmp:
        # Commands that need no specs folder run in an empty one: the folder a command
        # starts in comes first on its sys.path, and may hold a segsync.toml.
        empty = Path(tmp) / "empty"
        empty.mkdir()
        for label, py in zip(labels, pythons, strict=True):
            describe(parser, label, py, empty)
        print(f"rounds: {args.repeat} (examples: {args.examples_repeat}); CPU: user + sys of "
              "each child, median of the rounds;\n"
              "rss: largest max RSS of the rounds; pss: largest sum over the process tree, "
              "sampled in the warm-up run")
        print(flush=True)
        outdir = Path(tmp) / "out"
        outdir.mkdir()
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        lines, notes = run_all(args, pythons, labels, work, outdir, empty)

    print_table("CPU time (user + sys), medians; peak memory", lines, labels, wall=False)
    print_table("wall time, medians (for information)", lines, labels, wall=True)
    for note in notes:
        print(f"note: {note}")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / RSS_SCALE
    print(f"this script's own max RSS: {own:.1f} MB (a child starts as a copy of it: no rss figure "
          "above can be lower)")
    print(f"total time: {time.perf_counter() - started:.0f} s")


def describe(parser: argparse.ArgumentParser, label: str, py: str, cwd: Path) -> None:
    """Print which segsync ``py`` runs; stop when it cannot run it."""
    described = subprocess.run(
        [py, "-c", DESCRIBE_SNIPPET], cwd=cwd, env=child_env(), capture_output=True,
        text=True, check=False,
    )
    version = subprocess.run(
        [py, "-m", "segsync", "--version"], cwd=cwd, env=child_env(), capture_output=True,
        text=True, check=False,
    )
    if described.returncode or version.returncode:
        parser.error(f"{py}: cannot run segsync: {(described.stderr or version.stderr)[-300:]}")
    print(f"{label}: {py}")
    print(f"   {described.stdout.strip()}; `-m segsync --version`: {version.stdout.strip()}")


def run_all(
    args: argparse.Namespace, pythons: Sequence[str], labels: Sequence[str], work: Path,
    outdir: Path, empty: Path,
) -> tuple[list[Line], list[str]]:
    notes: list[str] = []
    lines: list[Line] = []
    sized = [row for row in args.rows if row != "examples"]
    for n in args.sizes if sized else []:
        clock = time.perf_counter()
        tree = work / f"specs-{n}"
        progress(f"{n} specs: generating in {tree}")
        generate(tree, n)
        (tree / "absent.json").unlink(missing_ok=True)  # plan-cold's state: none
        kinds = {kind for row in sized for kind in ROW_JOBS[row]}
        if "plan-unchanged" in kinds:
            progress(f"{n} specs: writing the applied state")
            write_states(pythons, tree, outdir, notes, labels)
        series = measure(jobs_for(kinds, pythons, tree, empty), args.repeat, outdir, notes,
                         f"{n} specs", labels, sample=any(r.startswith("pss-") for r in sized))
        lines += [make_line(row, n, f"{n:,}", series, len(pythons)) for row in sized]
        progress(f"{n} specs: done in {time.perf_counter() - clock:.0f} s")
    if "examples" in args.rows:
        count = sum(1 for p in EXAMPLES.rglob("*") if p.suffix in (".yaml", ".yml"))
        series = measure(jobs_for(set(ROW_JOBS["examples"]), pythons, empty, empty),
                         args.examples_repeat, outdir, notes, "examples", labels)
        lines.append(make_line("examples", None, str(count), series, len(pythons)))
    return lines, notes


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
