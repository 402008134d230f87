"""Spec files parsed in worker processes: the same specs and the same errors, in the same
order, as one process gives; and a fallback when workers cannot start."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from segsync import parallel
from segsync.errors import ValidationFailed
from segsync.specs import LoadedSpec, load_specs
from tests.helpers import run_cli, spec_text, write_spec

ROOT = Path(__file__).parent.parent
INVALID = ROOT / "tests" / "cases" / "invalid"


def outcome(folder: Path, jobs: int | None) -> list[LoadedSpec] | list[str]:
    """The specs of ``folder``, or every error's full text in order."""
    try:
        return load_specs(folder, jobs=jobs)
    except ValidationFailed as exc:
        return [f"{type(e).__name__} {e} [{e.field}]" for e in exc.errors]


@pytest.fixture
def valid(tmp_path: Path) -> Path:
    """40 specs referencing one another, with the examples."""
    folder = tmp_path / "segments"
    shutil.copytree(ROOT / "segments", folder)
    for i in range(40):
        extra = f"id: chain/{i}\n" if i % 3 == 0 else ""
        write_spec(folder, f"chain/{i}.yaml", extra + spec_text(f"Chain {i}"))
    return folder


@pytest.fixture
def invalid(tmp_path: Path) -> Path:
    """Every invalid case of the corpus, side by side: errors of every kind, and the
    cross-file ones (duplicate ids and names, unknown references) between them."""
    folder = tmp_path / "invalid"
    shutil.copytree(INVALID, folder, ignore=shutil.ignore_patterns("*.expected"))
    write_spec(folder, "copy/one.yaml", spec_text("Same name"))
    write_spec(folder, "copy/two.yaml", spec_text("Same name"))
    return folder


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_workers_give_what_one_process_gives(
    valid: Path, invalid: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "_start_method", lambda: method)
    used: list[int] = []
    real = parallel._in_workers
    def counted(*args: Any) -> Any:
        used.append(args[2])
        return real(*args)

    monkeypatch.setattr(parallel, "_in_workers", counted)
    for folder in (valid, invalid):
        serial = outcome(folder, 1)
        assert serial and outcome(folder, 3) == serial
    assert used == [3, 3]  # the workers really ran
    assert isinstance(outcome(valid, 1)[0], LoadedSpec)
    assert all(isinstance(e, str) for e in outcome(invalid, 1))


def test_errors_keep_their_class_and_place_through_a_worker(invalid: Path) -> None:
    with pytest.raises(ValidationFailed) as serial:
        load_specs(invalid, jobs=1)
    with pytest.raises(ValidationFailed) as workers:
        load_specs(invalid, jobs=2)
    assert [(type(e), e.path, e.line, e.column, e.field, e.message)
            for e in workers.value.errors] == [
        (type(e), e.path, e.line, e.column, e.field, e.message) for e in serial.value.errors
    ]
    assert len(serial.value.errors) > 50


def test_workers_that_cannot_start_leave_the_work_to_this_process(
    valid: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import concurrent.futures

    class NoProcesses:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise OSError(38, "Function not implemented")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", NoProcesses)
    assert load_specs(valid, jobs=4) == load_specs(valid, jobs=1)


def test_fork_only_without_other_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "get_all_start_methods",
                        lambda: ["fork", "spawn", "forkserver"])
    assert parallel._start_method() == "fork" or threading.active_count() > 1
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert parallel._start_method() == "forkserver"
    finally:
        stop.set()
        thread.join()
    monkeypatch.setattr(parallel, "get_all_start_methods", lambda: ["spawn"])
    assert parallel._start_method() == "spawn"


@pytest.mark.parametrize(
    ("files", "jobs", "cores", "workers"),
    [
        (10, None, 8, 1),  # too few to repay workers
        (parallel.THRESHOLD - 1, None, 8, 1),
        (parallel.THRESHOLD, None, 8, 2),
        (parallel.THRESHOLD * 10, None, 8, 8),
        (parallel.THRESHOLD * 10, None, 1, 1),
        (10, 4, 1, 4),  # asked for: even with one core, even for few files
        (3, 4, 8, 3),
        (1, 4, 8, 1),
        (parallel.THRESHOLD * 10, 1, 8, 1),
    ],
)
def test_how_many_workers(
    files: int, jobs: int | None, cores: int, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "cpu_count", lambda: cores)
    assert parallel.workers_for(files, jobs) == workers


def test_jobs_option_and_variable(valid: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int | None] = []
    real = parallel.run_all

    def counted(fn: Any, items: Any, jobs: int | None, **kwargs: Any) -> Any:
        seen.append(jobs)
        return real(fn, items, jobs, **kwargs)

    monkeypatch.setattr(parallel, "run_all", counted)
    for args, env in (
        (["validate", "--dir", str(valid), "--jobs", "2"], {}),
        (["-j", "3", "validate", "--dir", str(valid)], {}),
        (["validate", "--dir", str(valid)], {"SEGSYNC_JOBS": "1"}),
        (["validate", "--dir", str(valid)], {"SEGSYNC_JOBS": None}),
    ):
        result = run_cli(args, env=env)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == "46 specs, 0 errors\n"
    assert seen == [2, 3, 1, None]
    bad = run_cli(["validate", "--dir", str(valid), "--jobs", "0"])
    assert bad.exit_code == 1
    assert "--jobs" in bad.stderr and "0 is not in the range x>=1" in bad.stderr


def test_by_default_fresh_workers_are_not_started(
    valid: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --jobs, workers are copies of this process or none: a process that runs other
    threads (apply reads Cargo while the specs load) parses alone; asked for, they start."""
    monkeypatch.setattr(parallel, "THRESHOLD", 10)
    monkeypatch.setattr(parallel, "cpu_count", lambda: 2)
    used: list[str] = []
    real = parallel._in_workers

    def counted(*args: Any) -> Any:
        used.append(args[4])
        return real(*args)

    monkeypatch.setattr(parallel, "_in_workers", counted)
    monkeypatch.setattr(parallel, "_start_method", lambda: "forkserver")
    serial = load_specs(valid, jobs=1)
    assert load_specs(valid) == serial and used == []
    assert load_specs(valid, jobs=2) == serial and used == ["forkserver"]
    monkeypatch.setattr(parallel, "_start_method", lambda: "fork")
    assert load_specs(valid) == serial and used == ["forkserver", "fork"]


PARENT = os.getpid()


def _dies_in_a_worker(i: int) -> int:
    if i == 5 and os.getpid() != PARENT:
        os.kill(os.getpid(), signal.SIGKILL)
    return i * 2


def _fails(i: int) -> int:
    if i == 5:
        raise ValueError("a bug")
    time.sleep(0.01)
    return i


def _my_workers() -> set[int]:
    """Processes whose parent is this one, alive (not zombies)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == os.getpid() and fields[0] != "Z":
                    found.add(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_worker_that_dies_leaves_the_work_to_this_process() -> None:
    """A killed worker breaks the pool: the others are stopped (a forked worker does not
    keep segsync's SIGTERM handler) and the work is done here, with the same result."""
    def stop(signum: int, frame: object) -> None:  # segsync's own handler (see cli.py)
        raise KeyboardInterrupt

    before = _my_workers()
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        items = [(i,) for i in range(40)]
        assert parallel.run_all(_dies_in_a_worker, items, 2, preload=__name__) == [
            i * 2 for i in range(40)
        ]
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert _my_workers() <= before


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_an_error_in_a_worker_is_raised_and_no_worker_is_left() -> None:
    before = _my_workers()
    with pytest.raises(ValueError, match="a bug"):
        parallel.run_all(_fails, [(i,) for i in range(200)], 2, preload=__name__)
    assert _my_workers() <= before
