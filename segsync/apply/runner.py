"""Apply's runner: the plan's actions as a task graph, run in parallel, each result on disk
before it is reported.

Every action becomes a task; a task starts once the tasks of the specs it references
(``segment: <id>``) have succeeded, because it needs their UUIDs; up to ``parallelism`` tasks
run at once in a thread pool. Deletes (pruned entries, and the old segment of a replace) run
after everything else, a segment after those that referenced it. A failed task does not stop
the others; the tasks that depend on it are skipped.

A create's intent is handed to the journal when the task is queued (at most 4 x parallelism
tasks ahead), so it is usually on disk by the time a worker starts the task; the worker still
waits for it before sending the request. A result is reported (and its dependents started)
only after the write that holds it returned. While a create is under way its entry has no
``uuid``, an ``intent`` and, in ``applied``, only the name (what a later run needs to find the
segment). A create that Cargo certainly refused gets its previous entry back.
"""

from __future__ import annotations

import contextlib
import heapq
import queue
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from segsync.apply.actions import Actions, Done, Failure, Task, prior_intent
from segsync.apply.journal import Journal, Store
from segsync.errors import ApiError, StateError
from segsync.plan import CHANGE_KINDS, Cargo, Plan
from segsync.state import Entry

if TYPE_CHECKING:
    from segsync.client import CargoClient

Status = Literal["done", "failed", "skipped"]


@dataclass(frozen=True)
class ActionResult:
    """How one task ended. ``step`` is ``"cleanup"`` for the delete of a replaced segment."""

    id: str
    kind: str
    status: Status
    seconds: float = 0.0
    uuid: str | None = None
    verb: str = ""
    detail: str = ""
    message: str = ""
    step: str = "main"
    warnings: tuple[str, ...] = ()
    traceback: str | None = None  # an internal error's traceback (shown with --debug)


#: Counted verbs of the summary line, in its order; the last ones only when not zero.
VERBS: Final = (
    ("create", "created"),
    ("update", "updated"),
    ("replace", "replaced"),
    ("delete", "deleted"),
    ("moved", "moved"),
    ("recreate", "recreated"),
    ("adopt", "adopted"),
    ("dedupe", "duplicates deleted"),
)


@dataclass(frozen=True)
class ApplyReport:
    """Every task's result, in the order they finished."""

    results: tuple[ActionResult, ...]

    @property
    def counts(self) -> dict[str, int]:
        """Successful actions per past-tense verb (``created``, ``updated``, …)."""
        counts = {verb: 0 for _, verb in VERBS}
        names = dict(VERBS)
        for r in self.results:
            if r.status == "done" and r.step == "main":
                counts[names[r.kind]] += 1
        return counts

    @property
    def failures(self) -> list[tuple[str, str]]:
        """``(id, reason)`` of every failed or skipped task, sorted by id."""
        out = [
            (r.id + (" (old segment)" if r.step == "cleanup" else ""), r.message)
            for r in self.results
            if r.status != "done"
        ]
        return sorted(out)

@dataclass(frozen=True)
class _Outcome:
    task: Task
    result: ActionResult


def _cleanup_key(spec_id: str) -> str:
    return f"{spec_id}\x00old"


class _Runner:
    """One execution of a plan (see the module docstring)."""

    def __init__(
        self,
        plan: Plan,
        cargo: Cargo,
        client: CargoClient,
        store: Store,
        *,
        workspace_uuid: str,
        parallelism: int,
        on_result: Callable[[ActionResult, int, int], None] | None,
    ) -> None:
        self._plan = plan
        self._cargo = cargo
        self._client = client
        self._store = store
        self._workspace_uuid = workspace_uuid
        self._parallelism = max(1, parallelism)
        self._on_result = on_result
        self._events: queue.SimpleQueue[_Outcome] = queue.SimpleQueue()
        self._stop_reason: str | None = None
        self._journal: Journal | None = None
        self._actions: Actions | None = None
        self._tasks: dict[str, Task] = {}

    # -- building the task graph ---------------------------------------------------------------

    def _build(self) -> None:
        plan = self._plan
        entries = self._store.state.segments
        changes = [a for a in plan.actions if a.kind in CHANGE_KINDS]
        tasks: dict[str, Task] = {}
        for action in changes:
            if action.kind in ("delete", "dedupe"):
                tasks[action.key] = Task(action.key, len(tasks), action, phase=2)
                continue
            tasks[action.key] = Task(action.key, len(tasks), action)
        for action in changes:
            if action.kind == "replace":
                key = _cleanup_key(action.id)
                tasks[key] = Task(key, len(tasks), action, step="cleanup", phase=2)
        phase1 = {k for k, t in tasks.items() if t.phase == 1}
        referrers: dict[str, set[str]] = {}  # spec id -> phase-1 tasks of specs referencing it
        for task in tasks.values():
            spec = task.action.spec
            if task.phase == 1 and spec is not None:
                task.deps |= {ref for ref in spec.refs if ref in phase1}
                for ref in spec.refs:
                    referrers.setdefault(ref, set()).add(task.key)
        # Deletes in reverse dependency order: a segment goes after the ones referencing it.
        old_referrers: dict[str, set[str]] = {}
        for task in tasks.values():
            if task.phase == 2 and task.action.kind != "dedupe":
                entry = entries.get(task.action.id)
                for ref in entry.refs if entry is not None else {}:
                    old_referrers.setdefault(ref, set()).add(task.key)
        for task in tasks.values():
            if task.phase != 2 or task.action.kind == "dedupe":
                continue
            sid = task.action.id
            task.deps |= old_referrers.get(sid, set()) - {task.key}
            if task.step == "cleanup":
                task.deps |= {sid} | referrers.get(sid, set())
                task.deps.discard(task.key)
        for task in tasks.values():
            for dep in task.deps:
                tasks[dep].dependents.append(task.key)
        self._tasks = tasks

    # -- the main loop -----------------------------------------------------------------------

    def run(self) -> ApplyReport:
        self._build()
        tasks = self._tasks
        total = len(tasks)
        results: list[ActionResult] = []
        if not tasks:
            return ApplyReport(())
        remaining = {k: len(t.deps) for k, t in tasks.items()}
        finished: set[str] = set()
        phase1_left = sum(1 for t in tasks.values() if t.phase == 1)
        ready: list[tuple[int, str]] = []
        for key, task in tasks.items():
            if not task.deps and (task.phase == 1 or phase1_left == 0):
                heapq.heappush(ready, (task.index, key))
        queued: set[str] = {k for _, k in ready}
        window = 4 * self._parallelism
        in_flight = 0

        def record(task: Task, result: ActionResult) -> None:
            nonlocal phase1_left
            finished.add(task.key)
            results.append(result)
            if task.phase == 1:
                phase1_left -= 1
            if self._on_result is not None:
                self._on_result(result, len(finished), total)

        def skip_dependents(task: Task, cause: str) -> None:
            todo = list(task.dependents)
            while todo:
                key = todo.pop(0)
                if key in finished or key in queued:
                    continue
                dep = tasks[key]
                record(dep, self._result(dep, "skipped", message=f"skipped: {cause}"))
                todo.extend(dep.dependents)

        def release_phase2() -> None:
            for key, task in tasks.items():
                if (
                    task.phase == 2
                    and key not in finished
                    and key not in queued
                    and remaining[key] == 0
                ):
                    heapq.heappush(ready, (task.index, key))
                    queued.add(key)

        self._journal = Journal(self._store, self._workspace_uuid)
        self._actions = Actions(self._client, self._journal, self._plan, self._cargo)
        pool = ThreadPoolExecutor(max_workers=self._parallelism, thread_name_prefix="segsync")
        try:
            while len(finished) < total:
                while ready and in_flight < window and self._stop_reason is None:
                    _, key = heapq.heappop(ready)
                    self._dispatch(pool, tasks[key])
                    in_flight += 1
                if in_flight == 0:
                    if self._stop_reason is not None:
                        for key, task in tasks.items():
                            if key not in finished:
                                record(task, self._result(
                                    task, "skipped", message=f"not started: {self._stop_reason}"
                                ))
                        break
                    if phase1_left == 0:
                        release_phase2()
                    if not ready:
                        # Only a reference cycle among stale state entries can leave deletes
                        # waiting on each other: start the first one in plan order.
                        waiting = sorted(
                            (t.index, k) for k, t in tasks.items()
                            if k not in finished and k not in queued
                        )
                        if not waiting:
                            break
                        heapq.heappush(ready, waiting[0])
                        queued.add(waiting[0][1])
                    continue
                outcome = self._events.get()
                in_flight -= 1
                task = outcome.task
                record(task, outcome.result)
                if outcome.result.status == "done":
                    for key in task.dependents:
                        remaining[key] -= 1
                        dep = tasks[key]
                        if (
                            remaining[key] == 0
                            and key not in finished
                            and (dep.phase == 1 or phase1_left == 0)
                        ):
                            heapq.heappush(ready, (dep.index, key))
                            queued.add(key)
                else:
                    name = task.action.id + (" (old segment)" if task.step == "cleanup" else "")
                    skip_dependents(task, f"{name} {outcome.result.status}")
                if phase1_left == 0:
                    release_phase2()
        except BaseException:
            self._stop_reason = "apply was interrupted"
            raise
        finally:
            pool.shutdown(wait=True)
            self._journal.close()
        return ApplyReport(tuple(results))

    def _result(self, task: Task, status: Status, **kw: Any) -> ActionResult:
        return ActionResult(
            id=task.action.id, kind=task.action.kind, status=status, step=task.step, **kw
        )


    # -- dispatching and finishing -------------------------------------------------------------

    def _dispatch(self, pool: ThreadPoolExecutor, task: Task) -> None:
        """Queue a task; a create's intent goes to the journal now, so it is usually on disk by
        the time a worker takes the task."""
        action = task.action
        journal, actions = self._journal, self._actions
        assert journal is not None and actions is not None
        if (
            task.step == "main"
            and action.blocked is None
            and prior_intent(action) is None
            and action.spec is not None
            and action.creates_segment
        ):
            task.intent_at, intent_entry = actions.intent_entry(task)
            changes: dict[str, Entry | None] = {action.id: intent_entry}
            if action.moved_from is not None:
                changes[action.moved_from] = None  # a renamed spec's entry moves with its intent
            task.intent = journal.submit(changes)
            task.wrote_intent = True
        pool.submit(self._work, task)

    def _work(self, task: Task) -> None:
        started = time.perf_counter()
        actions = self._actions
        assert actions is not None
        try:
            if self._stop_reason is not None:
                raise Failure(f"not started: {self._stop_reason}")
            if task.action.blocked is not None and task.step == "main":
                raise Failure(task.action.blocked)
            done = actions.run(task)
        except Failure as exc:
            self._fail(task, started, str(exc))
        except ApiError as exc:
            self._fail(task, started, exc.message)
        except StateError as exc:
            self._stop_reason = "the state file could not be written"
            self._fail(task, started, str(exc))
        except Exception as exc:  # a bug must not hang the run: report it as this task's failure
            self._fail(task, started, f"internal error: {type(exc).__name__}: {exc}",
                       trace=traceback.format_exc())
        else:
            self._finish(task, started, done)

    def _undo_intent(self, task: Task) -> None:
        """After a failure that certainly created nothing, the state gets its entry back."""
        if not task.wrote_intent or task.maybe_created or self._stop_reason is not None:
            return
        journal = self._journal
        assert journal is not None
        # If this write fails, the intent stays: the next apply finds nothing and creates it.
        with contextlib.suppress(StateError):
            journal.write({task.action.id: task.action.entry})

    def _fail(self, task: Task, started: float, message: str, *, trace: str | None = None) -> None:
        self._undo_intent(task)
        seconds = time.perf_counter() - started
        result = self._result(task, "failed", seconds=seconds, message=message, traceback=trace)
        self._events.put(_Outcome(task, result))

    def _finish(self, task: Task, started: float, done: Done) -> None:
        """Hand the result to the journal; it is reported once that write is on disk."""
        journal = self._journal
        assert journal is not None

        def durable(error: StateError | None) -> None:
            seconds = time.perf_counter() - started
            if error is None:
                result = self._result(
                    task, "done", seconds=seconds, uuid=done.uuid, verb=done.verb,
                    detail=done.detail, warnings=tuple(done.warnings),
                )
            else:
                self._stop_reason = "the state file could not be written"
                result = self._result(
                    task, "failed", seconds=seconds, uuid=done.uuid,
                    message=f"{done.verb} {done.uuid or ''} but the state file could not be "
                    f"written ({error}){done.lost}",
                )
            self._events.put(_Outcome(task, result))

        if not done.changes:
            durable(None)
            return
        journal.submit(done.changes, durable)


def execute(
    plan: Plan,
    cargo: Cargo,
    client: CargoClient,
    store: Store,
    *,
    workspace_uuid: str,
    parallelism: int = 4,
    on_result: Callable[[ActionResult, int, int], None] | None = None,
) -> ApplyReport:
    """Run the plan's actions (see the module docstring); ``on_result(result, done, total)``
    is called in the calling thread as each task ends, after its state write."""
    runner = _Runner(
        plan, cargo, client, store, workspace_uuid=workspace_uuid, parallelism=parallelism,
        on_result=on_result,
    )
    return runner.run()
