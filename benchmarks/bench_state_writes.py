"""The cost of apply's durable writes as the state grows: K updates against a state of N entries.

``StateStore`` rewrites the whole state file on every update (temporary file, fsync, rename),
so an update costs more the more entries the state holds; ``JournalStore`` (what apply uses)
appends one fsynced line to the state's journal, and folds it into the state file once, when
the run ends. Each update changes two entries, as a group commit of an intent and a result
does. Figures are CPU time (user + system) and wall time; nothing is asserted.

Usage: python benchmarks/bench_state_writes.py [--sizes 1000,10000,50000] [--updates 100]
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from segsync.state import Entry, Intent, State, StateStore, dump_state, read_state
from segsync.statelog import JournalStore

T0 = "2026-11-27T13:00:00.000Z"


def entry(i: int, *, created: bool = True) -> Entry:
    """An entry the size of a typical one (a filter of two conditions, a sort, a limit)."""
    applied = {
        "name": f"Bench segment {i:05d}",
        "filter": {"conjonction": "and", "groups": [{"conjonction": "and", "conditions": [
            {"kind": "string", "columnSlug": "country", "operator": "is", "values": ["FR", "DE"]},
            {"kind": "number", "columnSlug": "employee_count", "operator": "greaterThan",
             "value": i},
        ]}]},
        "sort": [{"columnSlug": "arr", "kind": "desc"}],
        "limit": 100 + i,
    }
    if not created:
        return Entry(model="companies", applied={"name": applied["name"]},
                     intent=Intent(op="create", at=T0))
    return Entry(
        uuid=f"00000000-0000-4000-8000-{i:012d}", model="companies",
        model_uuid="0b6f6c8e-1d2a-4d4e-9a51-2c0f3c6a7b10", applied=applied, digest="ab" * 32,
        file=f"segments/bench/s{i:05d}.yaml", file_sha256="cd" * 32, applied_at=T0,
    )


def timed(work: Callable[..., object], *args: object) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of ``work(*args)``."""
    cpu, wall = time.process_time(), time.perf_counter()
    work(*args)
    return time.process_time() - cpu, time.perf_counter() - wall


def updates(store: StateStore | JournalStore, changes: list[dict[str, Entry | None]]) -> None:
    for change in changes:
        store.update(change, workspace_uuid="ws-1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--updates", type=int, default=100)
    args = parser.parse_args()
    k = args.updates
    print(f"{k} updates of 2 entries each; CPU / wall seconds")
    print(f"{'entries':>8} {'MB':>6}  {'StateStore':>15}  {'JournalStore':>15}  {'its fold':>13}"
          "  (both end with the same state)")
    for n in (int(size) for size in args.sizes.split(",")):
        state = State(serial=1, lineage="6f1c2b3a-0000-4000-8000-000000000001",
                      workspace_uuid="ws-1", segments={f"bench/s{i:05d}": entry(i)
                                                       for i in range(n)})
        data = dump_state(state)
        changes: list[dict[str, Entry | None]] = [
            {f"bench/n{j:05d}": entry(n + j, created=False), f"bench/s{j % n:05d}": entry(j)}
            for j in range(k)
        ]
        with tempfile.TemporaryDirectory(prefix="segsync-bench-state-") as tmp:
            path = Path(tmp) / "segsync.state.json"
            path.write_bytes(data)
            gc.collect()
            old = StateStore(path, read_state(path))
            whole = timed(updates, old, changes)

            path.write_bytes(data)
            new = JournalStore(path, read_state(path))
            new.open()
            gc.collect()
            appended = timed(updates, new, changes)
            fold = timed(new.close)
            same = read_state(path) == new.state == old.state
            same = same and not os.path.exists(f"{path}.journal")
        print(f"{n:>8} {len(data) / 1e6:>6.1f}  {whole[0]:>7.2f} / {whole[1]:>5.2f}  "
              f"{appended[0]:>7.2f} / {appended[1]:>5.2f}  {fold[0]:>5.2f} / {fold[1]:>5.2f}"
              f"  {'same state' if same else 'THE STATES DIFFER'}")


if __name__ == "__main__":
    main()
