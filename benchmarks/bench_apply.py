"""`segsync apply` of 500 creates against the emulator at 100 ms latency, parallelism 8.

Targets (docs/performance.md): at most 1.10 x the ideal at parallelism 8 and 1.20 x at 16,
the ideal being specs x latency / parallelism (500 x 0.1 s / 8 = 6.25 s). The emulator runs as its
own process (as a user runs it) and `segsync apply --auto-approve` as another; the figure is
the wall time of the whole command, start-up, workspace check, model lookup and listing
included. The time between the first and the last result line (the execution alone) is shown
too, and, for scale, the same creates sent by bare client threads with no state, plan or
checks (what this machine and the emulator allow at best).

The CPU time segsync itself spent (user + system, of the apply process alone: the emulator is
another process) shows how the cost of an apply grows with the number of specs, e.g.
``--latency-ms 0 --parallelism 16 --specs 10000 --no-bare``.

Usage: python benchmarks/bench_apply.py [--specs 500] [--latency-ms 100] [--parallelism 8]
       [--no-bare]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from segsync.client import CargoClient
from segsync.emulator.launcher import launch_emulator
from segsync.refresh import Catalog
from tests.helpers import spec_text, write_spec

TOKEN = "bench-apply-token"

SORT = "sort:\n  - {columnSlug: arr, kind: desc}\n"


def spec(i: int) -> str:
    condition = f"{{kind: number, columnSlug: employee_count, operator: greaterThan, value: {i}}}"
    return spec_text(
        f"Bench segment {i:04d}", countries=("FR", "DE"), conditions=[condition],
        limit=100 + i, extra=SORT,
    )


def bare_creates(specs: int, latency_ms: int, parallelism: int) -> float:
    """Wall time of ``specs`` creates sent by ``parallelism`` threads of one client."""
    emulator = launch_emulator("--no-fixtures", "--latency-ms", str(latency_ms), token=TOKEN)
    try:
        with CargoClient(emulator.url, TOKEN) as client:
            model = Catalog(client).resolve("companies")["uuid"]
            flt = {"conjonction": "and", "groups": [{"conjonction": "and", "conditions": [
                {"kind": "string", "columnSlug": "country", "operator": "is", "values": ["FR"]}
            ]}]}

            def create(i: int) -> None:
                client.create_segment({"name": f"Bare {i}", "modelUuid": model, "filter": flt})

            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=parallelism) as pool:
                list(pool.map(create, range(specs)))
            return time.perf_counter() - start
    finally:
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=500)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument(
        "--no-bare", action="store_true", help="skip the bare client threads' run (for scale)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="segsync-bench-apply-") as tmp:
        root = Path(tmp)
        for i in range(args.specs):
            write_spec(root / "segments" / "bench", f"s{i:04d}.yaml", spec(i))
        emulator = launch_emulator(
            "--no-fixtures", "--latency-ms", str(args.latency_ms), token=TOKEN
        )
        try:
            env = dict(os.environ, CARGO_API_URL=emulator.url, CARGO_API_TOKEN=TOKEN)
            command = [
                sys.executable,
                "-m",
                "segsync",
                "apply",
                "--auto-approve",
                "--parallelism",
                str(args.parallelism),
            ]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            first = last = None
            with subprocess.Popen(
                command,
                cwd=root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ) as proc:
                assert proc.stdout is not None
                for line in proc.stdout:
                    if line.startswith("+ bench/"):
                        last = time.perf_counter()
                        first = first or last
                stderr = proc.stderr.read() if proc.stderr else ""
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the apply process only
            user = after.ru_utime - before.ru_utime
            system = after.ru_stime - before.ru_stime
            if proc.returncode != 0:
                sys.exit(f"apply failed ({proc.returncode}): {stderr}")
        finally:
            emulator.stop()
        state = json.loads((root / "segsync.state.json").read_text())
        created = sum(1 for e in state["segments"].values() if e.get("uuid"))

    floor = None if args.no_bare else bare_creates(args.specs, args.latency_ms, args.parallelism)
    ideal = args.specs * args.latency_ms / 1000 / args.parallelism

    def ratio(seconds: float) -> str:
        return f"  (ratio {seconds / ideal:.3f})" if ideal else ""

    print(f"specs: {args.specs}, latency: {args.latency_ms} ms, parallelism: {args.parallelism}")
    print(f"segments recorded in the state: {created}")
    print(f"ideal (specs x latency / parallelism): {ideal:.2f} s")
    print(f"apply, whole command:                  {wall:.2f} s")
    if first is not None and last is not None:
        print(f"first to last result line:             {last - first:.2f} s{ratio(last - first)}")
    if floor is not None:
        print(f"bare client threads, same creates:     {floor:.2f} s{ratio(floor)}")
    print(f"segsync CPU time:                      {user + system:.2f} s"
          f"  (user {user:.2f} s, system {system:.2f} s)")
    if ideal:
        target = 1.10 if args.parallelism <= 8 else 1.20
        print(f"ratio: {wall / ideal:.3f} (target <= {target:.2f})")


if __name__ == "__main__":
    main()
