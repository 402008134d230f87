"""Work shared among several processes when there is enough of it to repay them: spec files
to parse (see ``specs.load_specs``).

Parsing and validating is pure Python, so threads would not help: the items are shared among
worker processes in chunks, and the results come back in the items' order, so that a parallel
run gives the same specs and the same errors, in the same order, as a serial one.

Starting workers costs little with ``fork`` (the workers are copies of this process, modules
already imported) and a few hundred milliseconds with ``forkserver`` or ``spawn`` (each imports
segsync again). ``fork`` is used only while this process runs no other thread (a copy of a
process taken while another thread holds a lock can wait on it forever); otherwise, and where
there is no ``fork``, ``forkserver`` or ``spawn``, but only when ``jobs`` asks for workers: by
default the work is then done here (``apply`` and ``plan --refresh`` read Cargo in threads
while the specs load). When workers cannot be started (a system without process semaphores, a
sandbox), the work is done here, one item after the other.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

R = TypeVar("R")

#: Below this many items, ``jobs=None`` does the work here: starting workers and
#: sending the results back would cost more than it saves (measured by
#: ``benchmarks/bench_parallel.py``).
THRESHOLD = 600
#: Below this many items, even an explicit ``jobs`` does the work here.
MINIMUM = 2


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def workers_for(files: int, jobs: int | None) -> int:
    """How many processes parse ``files`` files: 1 means here, without workers."""
    if jobs is None:
        return min(cpu_count(), files // (THRESHOLD // 2)) if files >= THRESHOLD else 1
    return max(1, min(jobs, files)) if files >= MINIMUM else 1


def get_all_start_methods() -> list[str]:
    import multiprocessing  # only when workers are wanted

    return multiprocessing.get_all_start_methods()


def _start_method() -> str:
    methods = get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _run_chunk(fn: Callable[..., R], chunk: Sequence[tuple[Any, ...]]) -> list[R]:
    return [fn(*args) for args in chunk]


def run_all(
    fn: Callable[..., R], items: Sequence[tuple[Any, ...]], jobs: int | None, *, preload: str
) -> list[R]:
    """``[fn(*args) for args in items]``, in workers when :func:`workers_for` says so.

    ``fn`` must be a module-level function (workers find it by name); ``preload`` names its
    module, imported once by a ``forkserver`` before it starts workers.
    """
    workers = workers_for(len(items), jobs)
    if workers > 1:
        method = _start_method()
        if jobs is None and method != "fork":
            # Fresh workers start slowly (each imports segsync): measured, they did not repay
            # it on two cores up to 3,000 files. They are used when asked for (``jobs``).
            return _run_chunk(fn, items)
        results = _in_workers(fn, items, workers, preload, method)
        if results is not None:
            return results
    return _run_chunk(fn, items)


def _in_workers(
    fn: Callable[..., R], items: Sequence[tuple[Any, ...]], workers: int, preload: str,
    method: str,
) -> list[R] | None:
    """``items`` done by ``workers`` processes; None when they could not be started."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # A few chunks per worker: an even share of the work without a message per item.
    size = max(1, -(-len(items) // (workers * 4)))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload([preload])
    try:
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker
        )
    except (OSError, NotImplementedError):  # no process semaphores (a sandbox)
        return None
    try:
        done = pool.map(functools.partial(_run_chunk, fn), chunks)
        results = [result for chunk in done for result in chunk]
    except (OSError, BrokenProcessPool):  # a worker died or could not start: done here
        _stop(pool)
        return None
    except BaseException:  # Ctrl-C, SIGTERM, an error of ``fn``: no worker is left behind
        _stop(pool)
        raise
    pool.shutdown()
    return results


def _init_worker() -> None:
    """A worker leaves Ctrl-C to the parent, which stops it, and dies on SIGTERM: a forked
    worker inherits segsync's SIGTERM handler, which would make it outlive ``terminate``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    gc.disable()  # as in the parent while loading: many objects, no cycles to collect


def _stop(pool: Any) -> None:
    """Cancel what is left and kill the workers now (a shutdown would wait for them)."""
    # The executor lists its workers in no public attribute.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.kill()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(5)
