"""The emulator's own costs: durable writes with --data, and listing one model among many.

Prints, with the emulator as its own process (as a user runs it):

- the emulator's CPU seconds for N sequential creates with ``--data`` (read from
  /proc/<pid>/stat before and after the creates), and the wall time of its clean stop;
- the latency of ``GET /segmentation/segments/list?modelUuid=`` for a model holding a few
  segments, first while the store holds only those, then once another model holds many more;
  and of ``GET /storage/models/list`` (which counts each model's segments) at both moments.

Figures only: it asserts nothing. ``--python`` runs the emulator with another interpreter
(another checkout's virtual environment, say) while this script drives it; the emulator is then
started from a temporary directory, so that interpreter imports its own segsync.

Usage: python benchmarks/bench_emulator.py [--creates 1000 5000] [--held 5000] [--few 5]
       [--lists 200] [--python PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from segsync.emulator.launcher import EmulatorProcess, launch_emulator

TOKEN = "bench-emulator-token"
MATCH_ALL = {"conjonction": "and", "groups": []}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a running process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client(emulator: EmulatorProcess) -> httpx.Client:
    return httpx.Client(
        base_url=emulator.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=600
    )


def model_uuids(api: httpx.Client) -> dict[str, str]:
    models = api.get("/storage/models/list").json()["models"]
    return {m["slug"]: m["uuid"] for m in models if m["deletedAt"] is None}


def create(api: httpx.Client, model: str, name: str) -> None:
    body = {"name": name, "modelUuid": model, "filter": MATCH_ALL}
    response = api.post("/segmentation/segments", json=body)
    if response.status_code != 200:
        sys.exit(f"create failed ({response.status_code}): {response.text}")


def durable_creates(python: str, creates: int) -> tuple[float, float, int]:
    """(emulator CPU seconds for the creates, clean stop wall seconds, data file bytes)."""
    with tempfile.TemporaryDirectory(prefix="segsync-bench-emulator-") as tmp:
        data = Path(tmp) / "emulator.json"
        emulator = launch_emulator(
            "--no-fixtures", "--data", str(data), token=TOKEN, python=python, cwd=tmp
        )
        try:
            with client(emulator) as api:
                model = model_uuids(api)["companies"]
                before = cpu_seconds(emulator.pid)
                for i in range(creates):
                    create(api, model, f"Bench {i:05d}")
                spent = cpu_seconds(emulator.pid) - before
        finally:
            start = time.perf_counter()
            emulator.stop(timeout=600)
            stop = time.perf_counter() - start
        return spent, stop, data.stat().st_size


def latency_ms(api: httpx.Client, path: str, runs: int) -> tuple[float, float]:
    """(median, mean) milliseconds of ``runs`` GETs of ``path``, after one warm-up."""
    api.get(path).raise_for_status()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        api.get(path).raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), statistics.fmean(times)


def list_latency(python: str, held: int, few: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="segsync-bench-emulator-") as tmp:
        emulator = launch_emulator("--no-fixtures", token=TOKEN, python=python, cwd=tmp)
        try:
            with client(emulator) as api:
                models = model_uuids(api)
                for i in range(few):
                    create(api, models["contacts"], f"Few {i}")
                path = f"/segmentation/segments/list?modelUuid={models['contacts']}"
                rows = [("list contacts", path), ("models list", "/storage/models/list")]
                alone = {label: latency_ms(api, p, runs) for label, p in rows}
                start = time.perf_counter()
                for i in range(held):
                    create(api, models["companies"], f"Held {i:05d}")
                filled = time.perf_counter() - start
                crowded = {label: latency_ms(api, p, runs) for label, p in rows}
                listed = api.get(path).json()["segments"]
        finally:
            emulator.stop(timeout=600)
    print(f"list latency, {few} segments on contacts ({len(listed)} listed), {runs} GETs each:")
    print(f"  ({held} creates on companies took {filled:.2f} s of wall time)")
    for label, _ in rows:
        a_median, a_mean = alone[label]
        c_median, c_mean = crowded[label]
        print(
            f"  {label:<14} store holds {few:>6}: median {a_median:7.2f} ms, mean {a_mean:7.2f} ms"
        )
        print(
            f"  {label:<14} store holds {few + held:>6}: "
            f"median {c_median:7.2f} ms, mean {c_mean:7.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--held", type=int, default=5000)
    parser.add_argument("--few", type=int, default=5)
    parser.add_argument("--lists", type=int, default=200)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()

    print(f"emulator interpreter: {args.python}")
    for n in args.creates:
        spent, stop, size = durable_creates(args.python, n)
        print(
            f"--data, {n} creates: emulator CPU {spent:.2f} s ({spent / n * 1000:.2f} ms each), "
            f"clean stop {stop:.2f} s, data file {size / 1024:.0f} KiB"
        )
    list_latency(args.python, args.held, args.few, args.lists)


if __name__ == "__main__":
    main()
