"""Cold start of `segsync --version` against `python -c "import click"` (target: 1.5x).

Runs each command N times in fresh interpreters (after one warm-up) and prints the medians.
Usage: python benchmarks/bench_version.py [N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def median_seconds(argv: list[str], runs: int) -> float:
    subprocess.run(argv, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    click_only = median_seconds([sys.executable, "-c", "import click"], runs)
    version = median_seconds([sys.executable, "-m", "segsync", "--version"], runs)
    print(f"python -c 'import click': {click_only * 1000:.1f} ms (median of {runs})")
    print(f"segsync --version:        {version * 1000:.1f} ms (median of {runs})")
    print(f"ratio: {version / click_only:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
