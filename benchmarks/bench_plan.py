"""Benchmark: `segsync plan` over N unchanged specs against parsing the same files with PyYAML.

Target: plan <= 1.3 x parsing the files with PyYAML's C loader, and <= 150 MB peak.

    python benchmarks/bench_plan.py            # 10,000 specs
    python benchmarks/bench_plan.py -n 2000 --repeat 5 --profile

Prints figures; asserts nothing. Timing is the best of ``--repeat`` runs, in process; peak
memory (max RSS) is measured for a separate `segsync plan` process.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from benchmarks.bench_targets import TEMPLATES
from segsync.plan import make_plan
from segsync.render import render_text
from segsync.specs import known_specs, load_specs
from segsync.state import read_state
from tests.helpers import applied_state, write_spec, write_state

SPEC = TEMPLATES[0]  # companies in a country, with five conditions in two groups


def generate(root: Path, n: int) -> Path:
    specs = root / "segments"
    for i in range(n):
        text = SPEC.format(i=i, country=("FR", "IT", "NL")[i % 3], size=10 + i, limit=100 + i)
        write_spec(specs, f"group-{i // 100:03d}/segment-{i:05d}.yaml", text)
    return specs


def write_applied_state(specs_dir: Path, state_path: Path) -> None:
    """The state of a project whose every spec was applied: plan has nothing to do."""
    specs = load_specs(specs_dir)
    numbers = {spec.id: i for i, spec in enumerate(specs)}
    state = applied_state(specs, uuid_for=lambda spec_id: f"00000000-0000-4000-8000-"
                          f"{numbers[spec_id]:012d}")
    write_state(state_path, state)


def parse_only(specs_dir: Path) -> int:
    n = 0
    for path in sorted(specs_dir.rglob("*.yaml")):
        yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader)
        n += 1
    return n


def plan_in_process(specs_dir: Path, state_path: Path) -> str:
    """What `segsync plan` does: files unchanged since the last apply are not parsed again."""
    state = read_state(state_path)
    specs = load_specs(specs_dir, known=known_specs(state, str(specs_dir)))
    plan = make_plan(specs, state)
    return render_text(plan)


def best_of(repeat: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


_PEAK_SNIPPET = """
import resource, runpy, sys
code = sys.argv[1]
sys.argv = sys.argv[1:]
try:
    exec(compile(code, "<bench>", "exec"), {"__name__": "__bench__"})
except SystemExit:
    pass
peak = None
try:
    with open("/proc/self/status") as fh:  # VmHWM: this process only, reset by exec
        peak = next(int(l.split()[1]) / 1024 for l in fh if l.startswith("VmHWM"))
except OSError:
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
print(f"PEAK {peak}", file=sys.stderr)
"""


def peak_rss_mb(code: str, args: list[str], cwd: Path) -> float:
    """Peak RSS (MB) of a fresh Python process running ``code`` with ``args``."""
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_SNIPPET, code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in proc.stderr.splitlines() if x.startswith("PEAK "))
    return float(line.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="number of spec files")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the plan run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        specs_dir = generate(root, args.n)
        state_path = root / "segsync.state.json"
        write_applied_state(specs_dir, state_path)
        out = plan_in_process(specs_dir, state_path)
        assert out == f"No changes. {args.n:,} segments up to date.\n".replace(",", ""), out

        parse = best_of(args.repeat, lambda: parse_only(specs_dir))
        plan = best_of(args.repeat, lambda: plan_in_process(specs_dir, state_path))
        load = best_of(args.repeat, lambda: load_specs(specs_dir))
        state_t = best_of(args.repeat, lambda: read_state(state_path))
        specs = load_specs(specs_dir)
        state = read_state(state_path)
        plan_t = best_of(args.repeat, lambda: make_plan(specs, state))
        the_plan = make_plan(specs, state)
        render_t = best_of(args.repeat, lambda: render_text(the_plan))
        print(f"specs:                         {args.n}")
        print(f"parse, yaml CSafeLoader:       {parse:7.3f} s")
        print(f"load_specs, every file parsed: {load:7.3f} s  ({load / parse:.2f} x parse)")
        print(f"plan (load+state+plan+render): {plan:7.3f} s  ({plan / parse:.2f} x parse)")
        print("target:                        <= 1.30 x parse")
        print(f"  of which read_state:         {state_t:7.3f} s")
        print(f"  of which make_plan:          {plan_t:7.3f} s")
        print(f"  of which render_text:        {render_t:7.3f} s")

        parse_rss = peak_rss_mb(_PARSE_SNIPPET, [str(specs_dir)], root)
        plan_rss = peak_rss_mb(
            "from segsync.cli import main; main()",
            ["plan", "--dir", str(specs_dir), "--state", str(state_path)],
            root,
        )
        print(f"peak RSS, parse process:       {parse_rss:7.1f} MB")
        print(f"peak RSS, `segsync plan`:      {plan_rss:7.1f} MB  (target <= 150 MB)")

        if args.profile:
            for label, fn in (
                ("load_specs", lambda: load_specs(specs_dir)),
                ("read_state", lambda: read_state(state_path)),
            ):
                print(f"--- profile: {label}")
                print(_profile(fn))
            specs, state = load_specs(specs_dir), read_state(state_path)
            print("--- profile: make_plan + render_text")
            print(_profile(lambda: render_text(make_plan(specs, state))))


def _profile(fn: Callable[[], Any]) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(15)
    return stream.getvalue()


_PARSE_SNIPPET = (
    "import sys, yaml\n"
    "from pathlib import Path\n"
    "for p in sorted(Path(sys.argv[1]).rglob('*.yaml')):\n"
    "    yaml.load(p.read_bytes(), Loader=yaml.CSafeLoader)\n"
)


if __name__ == "__main__":
    main()
