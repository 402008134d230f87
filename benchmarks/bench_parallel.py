"""Where parsing in several processes starts to pay: `segsync validate` over N specs with
`--jobs 1` against `--jobs <cores>`, for several N.

The threshold of ``segsync.parallel.THRESHOLD`` (the default `--jobs` parses in workers from
that many files on) comes from this: the smallest N where the workers' wall time is clearly
below one process's. Each figure is the median of ``--repeat`` runs of a fresh
`python -m segsync validate` process, alternating the two settings; CPU is user + system of
the process and its workers.

    python benchmarks/bench_parallel.py
    python benchmarks/bench_parallel.py --sizes 200,400,800,1600 --repeat 7 --jobs 2

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_plan import generate  # noqa: E402
from segsync.parallel import THRESHOLD, cpu_count  # noqa: E402


def run(folder: Path, jobs: int) -> tuple[float, float]:
    """(wall, cpu) seconds of one `segsync validate --jobs N` process."""
    before = os.times()
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "segsync", "validate", "--dir", str(folder), "--jobs", str(jobs)],
        check=True, capture_output=True, cwd=ROOT,
    )
    wall = time.perf_counter() - start
    after = os.times()
    return wall, (after.children_user - before.children_user) + (
        after.children_system - before.children_system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,200,400,600,800,1600,3200")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=max(2, cpu_count()))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{cpu_count()} cores; workers: {args.jobs}; default threshold: {THRESHOLD} files")
    print(f"{'files':>6}  {'wall 1':>8}  {'wall N':>8}  {'N / 1':>6}  {'cpu 1':>7}  "
          f"{'cpu N':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = generate(Path(tmp) / str(n), n)
            one: list[tuple[float, float]] = []
            many: list[tuple[float, float]] = []
            for _ in range(args.repeat):
                one.append(run(folder, 1))
                many.append(run(folder, args.jobs))
            w1 = statistics.median(w for w, _ in one)
            wn = statistics.median(w for w, _ in many)
            c1 = statistics.median(c for _, c in one)
            cn = statistics.median(c for _, c in many)
            print(f"{n:>6}  {w1:>7.3f}s  {wn:>7.3f}s  {wn / w1:>6.2f}  {c1:>6.3f}s  {cn:>6.3f}s")


if __name__ == "__main__":
    main()
