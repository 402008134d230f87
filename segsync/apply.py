"""Apply: execute a plan through the Cargo API, crash-safely, many actions at a time.

The command-line layer calls these stages in turn (and prints between them):

1. :func:`target_workspace` — the workspace the token belongs to; a state of another one is refused.
2. :func:`prepare` — resolves every model, lists the live segments (one call per model), makes
   the plan against them and adds what only Cargo can tell: a model slug that now resolves to
   another model (a replace), unmanaged segments with a spec's name (a warning), play-owned
   segments and broken raw ``segmentUuid`` references (that action will fail).
3. :func:`check_safety` — refusals of the whole run before any change: replaces without
   ``--allow-replace``, replacing a protected segment, too many deletes without ``--force``.
4. :func:`execute` — runs the actions and returns an :class:`ApplyReport`.

Execution. Every action becomes a task; a task starts once the tasks of the specs it references
(``segment: <id>``) have succeeded, because it needs their UUIDs; up to ``parallelism`` tasks
run at once in a thread pool. Deletes (pruned entries, and the old segment of a replace) run
after everything else, a segment after those that referenced it. A failed task does not stop
the others; the tasks that depend on it are skipped.

State writes. One writer thread owns the :class:`~segsync.state.StateStore`: tasks hand it
their changes and it writes everything that is pending in one atomic write (at most one write
every 40 ms under load), so N workers cost a few writes a second instead of two per request.
A create's intent is handed over when the task is queued (at most 4 x parallelism tasks ahead),
so it is usually on disk by the time a worker starts the task; the worker still waits for it
before sending the request. A result is reported (and its dependents started) only after the
write that holds it returned. While a create is under way its entry has no ``uuid``, an
``intent`` and, in ``applied``, only the name (what a later run needs to find the segment). A
create that Cargo certainly refused gets its previous entry back.

Crash safety (design.md "Apply", cargo-api.md §7). A create is never repeated blindly: when its
outcome is unknown, or when the state holds an intent from an interrupted run, segsync lists the
model's segments and looks for one with the spec's name that is live, not play-owned, not in the
state and created at or after the intent's time minus 10 minutes. None: the create is sent
(with a fresh intent). One: it is adopted (and updated if its fields differ). Several: the
action fails naming them, and the intent stays for a human. Update and delete need no intent:
the next run re-plans them from the segments it lists.

Decisions: an update that finds its segment gone (404 / ``segmentNotFound``) fails with that
message instead of creating a segment nobody approved; the next apply plans it as a recreate.
``segmentLinkedToWorkflow`` fails the action and leaves its state entry as it was.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from segsync.client import GONE_REASONS, CreateOutcomeUnknown
from segsync.errors import ApiError, ConfigError, NetworkError, PlanFileError, StateError
from segsync.plan import CHANGE_KINDS, PREVIEW_KINDS, Action, Plan, Preview, make_plan
from segsync.spec import MANAGED_FIELDS, canonical_managed, iter_conditions, request_body
from segsync.state import Entry, Intent, State, StateStore, parse_time, utc_now

if TYPE_CHECKING:
    from segsync.client import CargoClient
    from segsync.planfile import SavedPlan
    from segsync.spec import LoadedSpec

Payload = dict[str, Any]

#: Clock-skew margin of the lost-create check: a segment created up to this long before the
#: intent's (client) time still counts as the one that create made.
RECONCILE_MARGIN: Final = timedelta(minutes=10)
#: How often one create is sent when each attempt's outcome stays unknown and no segment shows up.
MAX_CREATE_ATTEMPTS: Final = 5
#: Deletes plus replaces above this share of the managed segments need --force ...
SAFETY_SHARE: Final = 0.30
#: ... once at least this many segments are managed.
SAFETY_MIN_MANAGED: Final = 10

Status = Literal["done", "failed", "skipped"]


# ---------------------------------------------------------------------------------------------
# results


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


#: Counted verbs of the summary line, in its order; moved and recreated only when not zero.
_SUMMARY: Final = (
    ("create", "created"),
    ("update", "updated"),
    ("replace", "replaced"),
    ("delete", "deleted"),
    ("moved", "moved"),
    ("recreate", "recreated"),
)


@dataclass(frozen=True)
class ApplyReport:
    """Every task's result, in the order they finished."""

    results: tuple[ActionResult, ...]

    @property
    def counts(self) -> dict[str, int]:
        """Successful actions per past-tense verb (``created``, ``updated``, …)."""
        counts = {verb: 0 for _, verb in _SUMMARY}
        names = dict(_SUMMARY)
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

    def summary_line(self) -> str:
        """``Apply complete: 3 created, 1 updated, 0 replaced, 0 deleted.`` (or incomplete)."""
        counts = self.counts
        parts = [
            f"{counts[verb]} {verb}"
            for kind, verb in _SUMMARY
            if kind not in ("moved", "recreate") or counts[verb]
        ]
        failed = sum(1 for r in self.results if r.status == "failed")
        skipped = sum(1 for r in self.results if r.status == "skipped")
        if not failed and not skipped:
            return f"Apply complete: {', '.join(parts)}."
        tail = [f"{failed} failed"] + ([f"{skipped} skipped"] if skipped else [])
        return f"Apply incomplete: {', '.join(parts)}; {', '.join(tail)}."


# ---------------------------------------------------------------------------------------------
# preparing


@dataclass(frozen=True)
class Prepared:
    """What :func:`execute` needs: the plan to run and what Cargo looked like before it."""

    workspace_uuid: str
    plan: Plan
    state: State
    models: Mapping[str, Payload]  # model as written in a spec -> the model
    live: Mapping[str, Payload]  # uuid -> live segment (play-owned ones included)
    blocked: Mapping[str, str] = field(default_factory=dict)  # action id -> why it must fail
    notes: tuple[str, ...] = ()


def target_workspace(
    client: CargoClient, state: State, *, specs: Sequence[LoadedSpec] = ()
) -> Payload:
    """The token's workspace; StateError when the state was recorded for another one.

    With ``specs``, the model catalog that :func:`prepare` needs is read at the same time (one
    round trip less); its errors are left for :func:`prepare` to report.
    """
    warm_up: threading.Thread | None = None
    if specs:
        ref = specs[0].model_ref

        def load_catalog() -> None:
            with contextlib.suppress(ApiError, ConfigError):
                client.resolve_model(ref)

        warm_up = threading.Thread(target=load_catalog, name="segsync-catalog", daemon=True)
        warm_up.start()
    try:
        workspace = client.current_workspace()
    finally:
        if warm_up is not None:
            warm_up.join()
    uuid = workspace.get("uuid")
    if not isinstance(uuid, str) or not uuid:
        raise ApiError("reading the current workspace failed: Cargo's answer has no uuid")
    if state.workspace_uuid is not None and state.workspace_uuid != uuid:
        raise StateError(
            f"the state belongs to workspace {state.workspace_uuid}, but the token is for "
            f"workspace {describe_workspace(workspace)}; use that workspace's token, or the "
            "state file of this workspace (--state)"
        )
    return workspace


def describe_workspace(workspace: Mapping[str, Any]) -> str:
    """``name (uuid)``, or the uuid alone."""
    name = workspace.get("name")
    uuid = workspace.get("uuid")
    return f"{name} ({uuid})" if isinstance(name, str) and name else str(uuid)


def resolve_models(client: CargoClient, specs: Sequence[LoadedSpec]) -> dict[str, Payload]:
    """Model as written -> live model, for every spec; one ConfigError naming every failure."""
    files: dict[str, list[str]] = {}
    for spec in specs:
        files.setdefault(spec.model_ref, []).append(spec.file)
    models: dict[str, Payload] = {}
    problems: list[str] = []
    for ref in sorted(files):
        try:
            models[ref] = client.resolve_model(ref)
        except ConfigError as exc:
            shown = ", ".join(files[ref][:3]) + (
                f" and {len(files[ref]) - 3} more" if len(files[ref]) > 3 else ""
            )
            problems.append(f"{shown}: {exc.message}")
    if problems:
        raise ConfigError("; ".join(problems) if len(problems) == 1 else "\n  ".join(
            [f"the models of {len(problems)} spec groups cannot be resolved:", *problems]
        ))
    return models


def list_live(
    client: CargoClient,
    model_uuids: Iterable[str],
    *,
    optional: Iterable[str] = (),
    parallelism: int = 4,
) -> dict[str, Payload]:
    """uuid -> live segment of the given models, play-owned ones included (one call per model).

    A model in ``optional`` (known only from the state, e.g. the old model of a replace) may
    be gone: a refusal to list it counts as "no segments" instead of stopping the run.
    """
    required = set(model_uuids)
    uuids = sorted(required | set(optional))
    live: dict[str, Payload] = {}
    if not uuids:
        return live

    def one(model_uuid: str) -> list[Payload]:
        try:
            return client.list_segments(model_uuid, include_play=True)
        except ApiError as exc:
            if model_uuid in required or isinstance(exc, NetworkError) or exc.status is None:
                raise
            if exc.status >= 500 or exc.status in (401, 403, 429):
                raise
            return []

    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(uuids)))) as pool:
        for segments in pool.map(one, uuids):
            for segment in segments:
                uuid = segment.get("uuid")
                if isinstance(uuid, str):
                    live[uuid] = segment
    return live


def prepare(
    client: CargoClient,
    specs: Sequence[LoadedSpec],
    state: State,
    *,
    workspace_uuid: str,
    prune: bool = False,
    saved: SavedPlan | None = None,
    parallelism: int = 4,
) -> Prepared:
    """Resolve models, refresh, plan and check against Cargo (see the module docstring).

    With ``saved`` (a plan file already checked with ``planfile.check_fresh``), only its
    actions are kept; PlanFileError when Cargo now needs another action for one of them.
    """
    models = resolve_models(client, specs)
    listed = {str(m["uuid"]) for m in models.values()}
    recorded = {e.model_uuid for e in state.segments.values() if e.model_uuid}
    live = list_live(client, listed, optional=recorded, parallelism=parallelism)
    # Entries recorded without a model uuid cannot be found by listing: read them one by one.
    for entry in state.segments.values():
        if entry.uuid and not entry.model_uuid and entry.uuid not in live:
            segment = client.get_segment(entry.uuid)
            if segment is not None:
                live[entry.uuid] = segment

    offline = make_plan(specs, state, prune=prune)
    remote: dict[str, Payload | None] = {}
    for sid, entry in state.segments.items():
        if entry.uuid is not None:
            remote[sid] = live.get(entry.uuid)
    for action in offline.actions:
        if action.moved_from is not None and action.entry is not None and action.entry.uuid:
            remote[action.id] = live.get(action.entry.uuid)
    plan = make_plan(specs, state, prune=prune, remote=remote)
    plan, blocked = _check_against_cargo(plan, state, models, live)
    notes: tuple[str, ...] = ()
    if saved is not None:
        plan, notes = _restrict_to_saved(plan, saved)
    return Prepared(
        workspace_uuid=workspace_uuid,
        plan=plan,
        state=state,
        models=models,
        live=live,
        blocked=blocked,
        notes=notes,
    )


def _needs_new_segment(action: Action, models: Mapping[str, Payload]) -> bool:
    """A replace that creates a segment (the model changed), not one only finishing a delete."""
    spec, entry = action.spec, action.entry
    if action.kind != "replace" or spec is None or entry is None:
        return False
    if entry.intent is not None and entry.intent.op == "replace":
        return True
    new_uuid = models[spec.model_ref].get("uuid") if spec.model_ref in models else None
    if entry.model_uuid is not None and new_uuid is not None:
        return bool(entry.model_uuid != new_uuid)
    return spec.model_ref != entry.model


def _check_against_cargo(
    plan: Plan, state: State, models: Mapping[str, Payload], live: Mapping[str, Payload]
) -> tuple[Plan, dict[str, str]]:
    """Add what only the live segments tell: replaces by model resolution, warnings, blocks."""
    managed = {e.uuid for e in state.segments.values() if e.uuid}
    managed |= {e.pending_delete for e in state.segments.values() if e.pending_delete}
    by_name: dict[tuple[str, str], list[Payload]] = {}
    for segment in live.values():
        key = (str(segment.get("modelUuid")), str(segment.get("name")))
        by_name.setdefault(key, []).append(segment)

    actions: list[Action] = []
    blocked: dict[str, str] = {}
    for action in plan.actions:
        spec, entry = action.spec, action.entry
        moving = action.kind in ("update", "moved", "unchanged")
        if spec is not None and entry is not None and moving:
            new_uuid = str(models[spec.model_ref]["uuid"])
            if entry.model_uuid is not None and entry.model_uuid != new_uuid:
                action = replace(
                    action,
                    kind="replace",
                    reason=f"model {spec.model_ref} now resolves to {new_uuid}; the segment is "
                    f"on model {entry.model_uuid}",
                    warnings=(
                        *action.warnings,
                        "the API cannot move a segment to another model: apply deletes it and "
                        "creates a new one (needs --allow-replace)",
                    ),
                )
        if (
            action.kind == "replace"
            and spec is not None
            and entry is not None
            and entry.pending_delete is None
            and not _needs_new_segment(action, models)
        ):
            # Another way of writing the same model (slug, dataset.slug, uuid): no replace.
            action = replace(
                action,
                kind="update",
                reason=f"model {entry.model} -> {spec.model_ref} names the same model "
                f"({entry.model_uuid}): no replace needed",
                warnings=tuple(w for w in action.warnings if "--allow-replace" not in w
                               and "refuses to replace" not in w),
            )
        warnings = list(action.warnings)
        problem: str | None = None
        own = live.get(entry.uuid) if entry is not None and entry.uuid else None
        if own is not None and own.get("fromPlay") is True and action.kind in CHANGE_KINDS:
            problem = (
                f"segment {own.get('uuid')} is owned by a play (fromPlay); segsync never "
                "changes or deletes play segments"
            )
        creates = action.kind in ("create", "recreate") or _needs_new_segment(action, models)
        sends = creates or action.kind in ("update", "moved", "replace")
        if spec is not None and sends:
            model_uuid = str(models[spec.model_ref]["uuid"])
            namesakes = [
                s for s in by_name.get((model_uuid, spec.name), [])
                if s.get("uuid") not in managed and s.get("uuid") != (entry.uuid if entry else None)
            ]
            play = [s for s in namesakes if s.get("fromPlay") is True]
            others = [s for s in namesakes if s.get("fromPlay") is not True]
            if play:
                problem = (
                    f"a segment owned by a play has the name {spec.name!r} on model "
                    f"{spec.model_ref} ({play[0].get('uuid')}); segsync never touches play "
                    "segments: give the spec another name"
                )
            interrupted = entry is not None and entry.intent is not None
            if others and creates and not interrupted:
                uuids = ", ".join(sorted(str(s.get("uuid")) for s in others))
                warnings.append(
                    f"Cargo already has an unmanaged segment with this name on this model "
                    f"({uuids}); apply creates another one (segsync does not adopt it)"
                )
            for path, cond in iter_conditions(spec.managed.get("filter", {})):
                raw = cond.get("segmentUuid") if cond.get("kind") == "segment" else None
                if not isinstance(raw, str):
                    continue
                target = live.get(raw)
                if target is None or target.get("modelUuid") != model_uuid:
                    problem = problem or (
                        f"{path}: segment {raw} does not exist on model {spec.model_ref} in "
                        "Cargo (deleted, or on another model)"
                    )
                elif target.get("fromPlay") is True:
                    problem = problem or (
                        f"{path}: segment {raw} is owned by a play; reference a segment that "
                        "segsync or a person manages"
                    )
        if problem is not None:
            blocked[action.id] = problem
            warnings.append(f"apply fails this action: {problem}")
        if tuple(warnings) != action.warnings:
            action = replace(action, warnings=tuple(warnings))
        actions.append(action)
    return Plan(actions=tuple(actions), prune=plan.prune, refreshed=True), blocked


def _restrict_to_saved(plan: Plan, saved: SavedPlan) -> tuple[Plan, tuple[str, ...]]:
    """Keep exactly the saved plan's actions; refuse when one of them changed kind."""
    wanted = {
        str(a.get("id")): str(a.get("action"))
        for a in saved.actions
        if a.get("action") in CHANGE_KINDS
    }
    now = {a.id: a.kind for a in plan.actions}
    mismatches = [
        f"{sid}: the plan says {kind}, Cargo now needs {now.get(sid, 'nothing')}"
        for sid, kind in sorted(wanted.items())
        if now.get(sid) != kind
    ]
    if mismatches:
        raise PlanFileError(
            "the saved plan no longer matches Cargo: " + "; ".join(mismatches)
            + "; run `segsync plan --out FILE` again, or apply without a plan file",
            path=saved.path,
        )
    extra = [a for a in plan.actions if a.kind in CHANGE_KINDS and a.id not in wanted]
    notes: tuple[str, ...] = ()
    if extra:
        shown = ", ".join(f"{a.id} ({a.kind})" for a in extra)
        notes = (
            f"not in the saved plan, left for a later apply: {shown}",
        )
    kept = tuple(a for a in plan.actions if a.kind not in CHANGE_KINDS or a.id in wanted)
    return Plan(actions=kept, prune=plan.prune, refreshed=plan.refreshed), notes


def check_safety(prepared: Prepared, *, allow_replace: bool, force: bool) -> None:
    """Refuse the whole run (ConfigError), before any change, for what needs a flag."""
    plan, models = prepared.plan, prepared.models
    replaces = [a for a in plan.actions if _needs_new_segment(a, models)]
    # The spec says whether its segment is protected (the state's flag guards deletes, whose
    # spec is gone).
    protected = [a.id for a in replaces if a.spec is not None and a.spec.protect]
    if protected:
        raise ConfigError(
            f"refusing to replace protected segments: {', '.join(protected)}; segsync never "
            "deletes a segment with `protect: true` (remove it from the spec to allow this)"
        )
    if replaces and not allow_replace:
        raise ConfigError(
            f"{len(replaces)} segment{'s' if len(replaces) != 1 else ''} would be replaced "
            f"(deleted and created again, with a new UUID): {', '.join(a.id for a in replaces)};"
            " run again with --allow-replace to do that"
        )
    deletes = sum(1 for a in plan.actions if a.kind == "delete")
    managed = sum(1 for e in prepared.state.segments.values() if e.uuid)
    destructive = deletes + len(replaces)
    if managed >= SAFETY_MIN_MANAGED and destructive > SAFETY_SHARE * managed and not force:
        raise ConfigError(
            f"refusing to delete or replace {destructive} of {managed} managed segments "
            f"(more than {SAFETY_SHARE:.0%}); check the plan, then run again with --force"
        )


# ---------------------------------------------------------------------------------------------
# the state writer


class _Ticket:
    """A change handed to the writer; ``wait`` returns once it is on disk (or raises)."""

    def __init__(
        self, changes: Mapping[str, Entry | None], callback: Callable[[StateError | None], None]
    ) -> None:
        self.changes = changes
        self.callback = callback
        self.error: StateError | None = None
        self._event = threading.Event()

    def done(self, error: StateError | None) -> None:
        self.error = error
        self._event.set()
        self.callback(error)

    def wait(self) -> None:
        self._event.wait()
        if self.error is not None:
            raise self.error


def _ignore(error: StateError | None) -> None:
    pass


class _StateWriter:
    """Group commit: every change pending when a write starts goes into that one write.

    Writes start at least ``min_interval`` seconds apart, so that under load (many results a
    second) each write carries several changes instead of paying an fsync for every one; a
    change that arrives after a quiet moment is written at once.
    """

    def __init__(
        self, store: StateStore, workspace_uuid: str, *, min_interval: float = 0.04
    ) -> None:
        self._store = store
        self._workspace_uuid = workspace_uuid
        self._min_interval = min_interval
        self._queue: queue.SimpleQueue[_Ticket | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="segsync-state", daemon=True)
        self._thread.start()

    def submit(
        self,
        changes: Mapping[str, Entry | None],
        callback: Callable[[StateError | None], None] = _ignore,
    ) -> _Ticket:
        ticket = _Ticket(changes, callback)
        self._queue.put(ticket)
        return ticket

    def write(self, changes: Mapping[str, Entry | None]) -> None:
        self.submit(changes).wait()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        stop = False
        last = -float("inf")
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            pause = last + self._min_interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            batch = [first]
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            merged: dict[str, Entry | None] = {}
            for ticket in batch:
                merged.update(ticket.changes)
            error: StateError | None = None
            last = time.monotonic()
            try:
                self._store.update(merged, workspace_uuid=self._workspace_uuid)
            except StateError as exc:
                error = exc
            except Exception as exc:  # never leave a waiting task without an answer
                error = StateError(f"cannot write the state file: {type(exc).__name__}: {exc}")
            for ticket in batch:
                ticket.done(error)


# ---------------------------------------------------------------------------------------------
# tasks


class _Failure(Exception):
    """A task failed with a message for the user."""


@dataclass(eq=False)
class _Task:
    key: str
    index: int
    action: Action
    step: Literal["main", "cleanup"] = "main"
    phase: int = 1
    deps: set[str] = field(default_factory=set)
    dependents: list[str] = field(default_factory=list)
    intent: _Ticket | None = None
    intent_at: str | None = None
    wrote_intent: bool = False  # this run wrote an intent for the task
    maybe_created: bool = False  # a create was sent and its outcome is still unknown


@dataclass(frozen=True)
class _Outcome:
    task: _Task
    result: ActionResult


def _transient(exc: ApiError) -> bool:
    """An error worth another try later in the same run (no answer, 429, 5xx)."""
    return isinstance(exc, NetworkError) or exc.status in (429, None) or (exc.status or 0) >= 500


def _prior_intent(action: Action) -> Intent | None:
    """The intent an interrupted run left for this action's create, as planned (not the one
    this run writes)."""
    entry = action.entry
    if entry is None:
        return None
    if action.kind == "create" and entry.uuid is None:
        # No intent at all (an entry edited by hand): any namesake may be the one.
        return entry.intent or Intent(op="create", at="1970-01-01T00:00:00.000Z")
    if action.kind == "replace" and entry.intent is not None and entry.intent.op == "replace":
        return entry.intent
    return None


def _cleanup_key(spec_id: str) -> str:
    return f"{spec_id}\x00old"


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def changed_fields(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The update body turning canonical wire fields ``current`` into ``desired``: changed
    fields only (``filter`` whole), ``None`` to clear an optional field the spec dropped."""
    body: dict[str, Any] = {}
    for key in MANAGED_FIELDS:
        if key in desired:
            if key not in current or _dumps(current[key]) != _dumps(desired[key]):
                body[key] = desired[key]
        elif key in current:
            body[key] = None
    return body


def _differences(sent: Mapping[str, Any], stored: Mapping[str, Any]) -> list[str]:
    """Managed fields whose canonical form Cargo stored differently from what was sent."""
    canon_sent, canon_stored = canonical_managed(sent), canonical_managed(stored)
    return [
        key
        for key in MANAGED_FIELDS
        if _dumps(canon_sent.get(key)) != _dumps(canon_stored.get(key))
    ]


def _perpetual(fields: list[str]) -> tuple[str, ...]:
    if not fields:
        return ()
    return (
        f"Cargo stored {', '.join(fields)} differently from what was sent; plan --refresh will "
        "keep showing a difference (a perpetual diff, cargo-api.md §4.7), so segsync does not "
        "send it again in this run",
    )


class _Runner:
    """One execution of a prepared plan (see the module docstring)."""

    def __init__(
        self,
        prepared: Prepared,
        client: CargoClient,
        store: StateStore,
        *,
        parallelism: int,
        on_result: Callable[[ActionResult, int, int], None] | None,
    ) -> None:
        self._prepared = prepared
        self._client = client
        self._store = store
        self._parallelism = max(1, parallelism)
        self._on_result = on_result
        self._events: queue.SimpleQueue[_Outcome] = queue.SimpleQueue()
        self._claimed: set[str] = set()  # uuids created or adopted by this run
        self._claimed_lock = threading.Lock()
        self._stop_reason: str | None = None
        self._writer: _StateWriter | None = None
        self._tasks: dict[str, _Task] = {}

    # -- building the task graph ---------------------------------------------------------------

    def _build(self) -> None:
        plan = self._prepared.plan
        entries = self._prepared.state.segments
        changes = [a for a in plan.actions if a.kind in CHANGE_KINDS]
        tasks: dict[str, _Task] = {}
        for action in changes:
            if action.kind == "delete":
                tasks[action.id] = _Task(action.id, len(tasks), action, phase=2)
                continue
            tasks[action.id] = _Task(action.id, len(tasks), action)
        for action in changes:
            if action.kind == "replace":
                key = _cleanup_key(action.id)
                tasks[key] = _Task(key, len(tasks), action, step="cleanup", phase=2)
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
            if task.phase == 2:
                entry = entries.get(task.action.id)
                for ref in entry.refs if entry is not None else {}:
                    old_referrers.setdefault(ref, set()).add(task.key)
        for task in tasks.values():
            if task.phase != 2:
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

        def record(task: _Task, result: ActionResult) -> None:
            nonlocal phase1_left
            finished.add(task.key)
            results.append(result)
            if task.phase == 1:
                phase1_left -= 1
            if self._on_result is not None:
                self._on_result(result, len(finished), total)

        def skip_dependents(task: _Task, cause: str) -> None:
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

        self._writer = _StateWriter(self._store, self._prepared.workspace_uuid)
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
            self._writer.close()
        return ApplyReport(tuple(results))

    def _result(self, task: _Task, status: Status, **kw: Any) -> ActionResult:
        return ActionResult(
            id=task.action.id, kind=task.action.kind, status=status, step=task.step, **kw
        )

    # -- dispatching and finishing -------------------------------------------------------------

    def _dispatch(self, pool: ThreadPoolExecutor, task: _Task) -> None:
        """Queue a task; a create's intent goes to the writer now, so it is usually on disk by
        the time a worker takes the task."""
        action = task.action
        writer = self._writer
        assert writer is not None
        if (
            task.step == "main"
            and action.id not in self._prepared.blocked
            and _prior_intent(action) is None
            and action.spec is not None
            and (
                action.kind in ("create", "recreate")
                or _needs_new_segment(action, self._prepared.models)
            )
        ):
            task.intent_at, intent_entry = self._intent_entry(task)
            changes: dict[str, Entry | None] = {action.id: intent_entry}
            if action.moved_from is not None:
                changes[action.moved_from] = None  # a renamed spec's entry moves with its intent
            task.intent = writer.submit(changes)
            task.wrote_intent = True
        pool.submit(self._work, task)

    def _intent_entry(self, task: _Task) -> tuple[str, Entry]:
        action = task.action
        spec = action.spec
        assert spec is not None
        at = utc_now()
        if action.kind == "replace":
            current = self._entry(action.moved_from or action.id)
            assert current is not None
            return at, current.model_copy(update={"intent": Intent(op="replace", at=at)})
        # Only the name: what a later run needs to find the segment if this one stops.
        return at, Entry(
            uuid=None,
            model=spec.model_ref,
            model_uuid=self._model_uuid(spec),
            applied={"name": spec.name},
            protect=spec.protect,
            file=spec.file,
            file_sha256=spec.file_sha256,
            intent=Intent(op="create", at=at),
        )

    def _work(self, task: _Task) -> None:
        started = time.perf_counter()
        try:
            if self._stop_reason is not None:
                raise _Failure(f"not started: {self._stop_reason}")
            blocked = self._prepared.blocked.get(task.action.id)
            if blocked is not None and task.step == "main":
                raise _Failure(blocked)
            handler = {
                ("create", "main"): self._do_create,
                ("recreate", "main"): self._do_create,
                ("update", "main"): self._do_update,
                ("moved", "main"): self._do_update,
                ("replace", "main"): self._do_replace,
                ("replace", "cleanup"): self._do_cleanup,
                ("delete", "main"): self._do_delete,
            }[(task.action.kind, task.step)]
            handler(task, started)
        except _Failure as exc:
            self._fail(task, started, str(exc))
        except ApiError as exc:
            self._fail(task, started, exc.message)
        except StateError as exc:
            self._stop_reason = "the state file could not be written"
            self._fail(task, started, str(exc))
        except Exception as exc:  # a bug must not hang the run: report it as this task's failure
            self._fail(task, started, f"internal error: {type(exc).__name__}: {exc}")

    def _undo_intent(self, task: _Task) -> None:
        """After a failure that certainly created nothing, the state gets its entry back."""
        if not task.wrote_intent or task.maybe_created or self._stop_reason is not None:
            return
        writer = self._writer
        assert writer is not None
        # If this write fails, the intent stays: the next apply finds nothing and creates it.
        with contextlib.suppress(StateError):
            writer.write({task.action.id: task.action.entry})

    def _fail(self, task: _Task, started: float, message: str) -> None:
        self._undo_intent(task)
        seconds = time.perf_counter() - started
        self._events.put(
            _Outcome(task, self._result(task, "failed", seconds=seconds, message=message))
        )

    def _finish(
        self,
        task: _Task,
        started: float,
        changes: Mapping[str, Entry | None],
        *,
        verb: str,
        uuid: str | None,
        detail: str = "",
        warnings: Sequence[str] = (),
        lost: str = "",
    ) -> None:
        """Hand the result to the writer; it is reported once that write is on disk."""
        writer = self._writer
        assert writer is not None

        def durable(error: StateError | None) -> None:
            seconds = time.perf_counter() - started
            if error is None:
                result = self._result(
                    task, "done", seconds=seconds, uuid=uuid, verb=verb, detail=detail,
                    warnings=tuple(warnings),
                )
            else:
                self._stop_reason = "the state file could not be written"
                result = self._result(
                    task, "failed", seconds=seconds, uuid=uuid,
                    message=f"{verb} {uuid or ''} but the state file could not be written "
                    f"({error}){lost}",
                )
            self._events.put(_Outcome(task, result))

        writer.submit(changes, durable)

    # -- helpers --------------------------------------------------------------------------------

    def _entry(self, spec_id: str) -> Entry | None:
        return self._store.state.segments.get(spec_id)

    def _model_uuid(self, spec: LoadedSpec) -> str:
        return str(self._prepared.models[spec.model_ref]["uuid"])

    def _ref_uuids(self, spec: LoadedSpec) -> dict[str, str]:
        refs: dict[str, str] = {}
        for ref in spec.refs:
            entry = self._entry(ref)
            if entry is None or entry.uuid is None:
                raise _Failure(f"the segment of {ref}, which this spec references, does not exist")
            refs[ref] = entry.uuid
        return refs

    def _applied_entry(
        self, spec: LoadedSpec, uuid: str, refs: Mapping[str, str], **extra: Any
    ) -> Entry:
        return Entry(
            uuid=uuid,
            model=spec.model_ref,
            model_uuid=self._model_uuid(spec),
            applied=spec.managed,
            digest=spec.digest,
            refs=dict(refs),
            protect=spec.protect,
            file=spec.file,
            file_sha256=spec.file_sha256,
            applied_at=utc_now(),
            **extra,
        )

    def _claim(self, uuid: str) -> None:
        with self._claimed_lock:
            self._claimed.add(uuid)

    def _known_uuids(self) -> set[str]:
        state = self._store.state
        known = {e.uuid for e in state.segments.values() if e.uuid}
        known |= {e.pending_delete for e in state.segments.values() if e.pending_delete}
        with self._claimed_lock:
            known |= self._claimed
        return known

    # -- the lost-create check -------------------------------------------------------------------

    def _reconcile(
        self, name: str, model_uuid: str, since: str | None, *, fresh: bool
    ) -> Payload | None:
        """The segment an earlier create of ``name`` made, None when there is none; _Failure
        when several could be it. ``fresh``: list now, else use the listing made at start."""
        if fresh:
            segments = self._client.list_segments(model_uuid)
        else:
            segments = [
                s for s in self._prepared.live.values() if s.get("modelUuid") == model_uuid
            ]
        threshold = None
        if since is not None:
            try:
                threshold = parse_time(since) - RECONCILE_MARGIN
            except ValueError:
                threshold = None
        known = self._known_uuids()
        found = []
        for segment in segments:
            if (
                segment.get("name") != name
                or segment.get("fromPlay") is True
                or segment.get("deletedAt") is not None
                or segment.get("uuid") in known
            ):
                continue
            created = segment.get("createdAt")
            if threshold is not None and isinstance(created, str):
                try:
                    if parse_time(created) < threshold:
                        continue
                except ValueError:
                    pass  # an unreadable time cannot rule it out
            found.append(segment)
        if len(found) > 1:
            uuids = ", ".join(sorted(str(s.get("uuid")) for s in found))
            raise _Failure(
                f"{len(found)} segments named {name!r} on model {model_uuid} may come from an "
                f"interrupted create ({uuids}); delete the extra ones in Cargo and run apply "
                "again, which adopts the one left; the intent stays in the state file"
            )
        if found:
            self._claim(str(found[0]["uuid"]))
            return found[0]
        return None

    def _create(
        self,
        task: _Task,
        spec: LoadedSpec,
        body: Payload,
        prior: Intent | None,
        intent_entry: Entry,
    ) -> tuple[Payload, bool]:
        """Create the segment for ``spec`` (or find the one an interrupted run created).

        ``prior``: the intent of an interrupted run, reconciled first with the listing made at
        start. ``intent_entry``: the entry to write (with a fresh intent time) before each send
        that is not covered by the intent written at dispatch.
        """
        model_uuid = body["modelUuid"]
        if prior is not None:
            found = self._reconcile(spec.name, model_uuid, prior.at, fresh=False)
            if found is not None:
                return found, True
        writer = self._writer
        assert writer is not None
        last: ApiError | None = None
        unsettled: str | None = None  # intent time of a create whose outcome is unknown
        sent = 0
        for _ in range(2 * MAX_CREATE_ATTEMPTS):
            if unsettled is not None:
                # Never send again before a listing said the last attempt made nothing.
                try:
                    found = self._reconcile(spec.name, model_uuid, unsettled, fresh=True)
                except ApiError as exc:
                    if not _transient(exc):
                        raise
                    last = exc
                    continue
                if found is not None:
                    return found, True
                unsettled = None
                task.maybe_created = False
                if sent >= MAX_CREATE_ATTEMPTS:
                    break
            if sent == 0 and task.intent is not None:
                task.intent.wait()
                at = task.intent_at
            else:
                at = utc_now()
                assert intent_entry.intent is not None
                entry = intent_entry.model_copy(
                    update={"intent": Intent(op=intent_entry.intent.op, at=at)}
                )
                task.wrote_intent = True
                writer.write({spec.id: entry})
            task.maybe_created = True
            sent += 1
            try:
                segment = self._client.create_segment(body)
            except CreateOutcomeUnknown as exc:
                last, unsettled = exc, at
                continue
            except ApiError as exc:
                task.maybe_created = False  # refused (4xx, 429), or never reached Cargo
                if not _transient(exc):
                    raise
                last = exc
                if sent >= MAX_CREATE_ATTEMPTS:
                    break
                continue
            self._claim(str(segment["uuid"]))
            return segment, False
        assert last is not None
        if unsettled is not None:
            raise _Failure(
                f"{last.message}; whether the segment was created is still unknown: the intent "
                "stays in the state file and the next apply looks for it again"
            )
        raise _Failure(
            f"{last.message}; gave up after {sent} attempts (listing the segments showed that "
            "none of them created it)"
        )

    def _settle(self, segment: Payload, body: Payload, adopted: bool) -> tuple[Payload, list[str]]:
        """After a create: bring an adopted segment up to date; warn of a perpetual diff."""
        desired = canonical_managed(body)
        current = canonical_managed(segment)
        if adopted:
            fields = changed_fields(current, desired)
            if fields:
                segment = self._client.update_segment(str(segment["uuid"]), fields)
        return segment, list(_perpetual(_differences(body, segment)))

    # -- handlers ------------------------------------------------------------------------------

    def _do_create(self, task: _Task, started: float) -> None:
        action = task.action
        spec = action.spec
        assert spec is not None
        prior = _prior_intent(action)
        refs = self._ref_uuids(spec)
        body = request_body(spec.managed, ref_uuids=refs)
        body["modelUuid"] = self._model_uuid(spec)
        _, intent_entry = self._intent_entry(task)
        segment, adopted = self._create(task, spec, body, prior, intent_entry)
        segment, warnings = self._settle(segment, body, adopted)
        uuid = str(segment["uuid"])
        verb = "recreated" if action.kind == "recreate" else "created"
        detail = "adopted: found in Cargo after an interrupted create" if adopted else ""
        changes: dict[str, Entry | None] = {spec.id: self._applied_entry(spec, uuid, refs)}
        if action.moved_from is not None:
            changes[action.moved_from] = None  # the interrupted create of a renamed file
        self._finish(
            task, started, changes,
            verb=verb, uuid=uuid, detail=detail, warnings=warnings,
            lost="; the intent stays in the state file and the next apply adopts the segment",
        )

    def _do_update(self, task: _Task, started: float) -> None:
        action = task.action
        spec = action.spec
        assert spec is not None
        source = action.moved_from or action.id
        entry = self._entry(source)
        if entry is None or entry.uuid is None:
            raise _Failure(f"the state has no segment for {source}")
        uuid = entry.uuid
        refs = self._ref_uuids(spec)
        fields, warnings = self._bring_up_to_date(uuid, spec, refs)
        changes: dict[str, Entry | None] = {
            spec.id: self._applied_entry(
                spec, uuid, refs, pending_delete=entry.pending_delete
            )
        }
        if action.moved_from is not None:
            changes[action.moved_from] = None
        verb = "moved" if action.kind == "moved" else "updated"
        detail = f"sent {', '.join(fields)}" if fields else "no request needed"
        if action.moved_from is not None:
            detail = f"from {action.moved_from}; {detail}"
        self._finish(task, started, changes, verb=verb, uuid=uuid, detail=detail,
                     warnings=warnings)

    def _bring_up_to_date(
        self, uuid: str, spec: LoadedSpec, refs: Mapping[str, str]
    ) -> tuple[list[str], list[str]]:
        """PUT the fields of ``spec`` that differ from the live segment; (fields, warnings)."""
        body = request_body(spec.managed, ref_uuids=refs)
        live = self._prepared.live.get(uuid)
        if live is None:
            live = self._client.get_segment(uuid)
            if live is None:
                raise _Failure(
                    f"segment {uuid} was deleted outside segsync; run apply again to "
                    "recreate it"
                )
        fields = changed_fields(canonical_managed(live), canonical_managed(body))
        if not fields:
            return [], []
        try:
            segment = self._client.update_segment(uuid, fields)
        except ApiError as exc:
            if not isinstance(exc, NetworkError) and (
                exc.status == 404 or exc.reason == "segmentNotFound"
            ):
                raise _Failure(
                    f"segment {uuid} was deleted outside segsync while apply ran; run apply "
                    "again to recreate it"
                ) from None
            raise
        return sorted(fields), list(_perpetual(_differences(body, segment)))

    def _do_replace(self, task: _Task, started: float) -> None:
        action = task.action
        spec = action.spec
        if task.intent is not None:
            # The entry is read after its intent is on disk, so writing it back below keeps the
            # intent: a create must never be sent without one.
            task.intent.wait()
        old_id = action.moved_from if action.moved_from is not None else action.id
        entry = self._entry(action.id) or self._entry(old_id)
        assert spec is not None and entry is not None
        gone: dict[str, Entry | None] = (
            {old_id: None} if old_id != action.id and self._entry(old_id) is not None else {}
        )
        refs = self._ref_uuids(spec)
        if not _needs_new_segment(action, self._prepared.models):
            # An unfinished replace: the new segment exists; its old one goes in the cleanup.
            assert entry.uuid is not None
            fields, warnings = self._bring_up_to_date(entry.uuid, spec, refs)
            self._finish(
                task, started,
                {**gone, spec.id: self._applied_entry(
                    spec, entry.uuid, refs, pending_delete=entry.pending_delete
                )},
                verb="replaced", uuid=entry.uuid,
                detail="finishing an earlier replace"
                + (f"; sent {', '.join(fields)}" if fields else ""),
                warnings=warnings,
            )
            return
        if entry.pending_delete is not None:
            # A second model change before the first replace finished: its old segment goes now.
            self._delete_segment(entry.pending_delete)
            entry = entry.model_copy(update={"pending_delete": None})
            self._writer_write({**gone, spec.id: entry})
            gone = {}
        prior = _prior_intent(action)
        body = request_body(spec.managed, ref_uuids=refs)
        body["modelUuid"] = self._model_uuid(spec)
        intent_entry = entry.model_copy(update={"intent": Intent(op="replace", at=utc_now())})
        segment, adopted = self._create(task, spec, body, prior, intent_entry)
        segment, warnings = self._settle(segment, body, adopted)
        uuid = str(segment["uuid"])
        self._finish(
            task, started,
            {**gone, spec.id: self._applied_entry(spec, uuid, refs, pending_delete=entry.uuid)},
            verb="replaced", uuid=uuid,
            detail=f"new segment; old segment {entry.uuid} is deleted last"
            + ("; adopted after an interrupted replace" if adopted else ""),
            warnings=warnings,
            lost="; the intent stays in the state file and the next apply adopts the segment",
        )

    def _writer_write(self, changes: Mapping[str, Entry | None]) -> None:
        writer = self._writer
        assert writer is not None
        writer.write(changes)

    def _do_cleanup(self, task: _Task, started: float) -> None:
        sid = task.action.id
        entry = self._entry(sid)
        if entry is None or entry.pending_delete is None:
            self._events.put(_Outcome(task, self._result(
                task, "done", seconds=time.perf_counter() - started, verb="deleted",
                detail="nothing left to delete",
            )))
            return
        old = entry.pending_delete
        self._refuse_if_referenced(old, sid)
        self._delete_segment(old)
        self._finish(
            task, started, {sid: entry.model_copy(update={"pending_delete": None})},
            verb="deleted", uuid=old,
        )

    def _do_delete(self, task: _Task, started: float) -> None:
        sid = task.action.id
        entry = self._entry(sid)
        if entry is None:
            raise _Failure(f"the state has no entry {sid}")
        uuids: list[str] = []
        if entry.uuid is not None:
            uuids.append(entry.uuid)
        elif entry.model_uuid is not None and entry.applied and entry.applied.get("name"):
            # Never recorded: an interrupted create may still have made it.
            since = entry.intent.at if entry.intent is not None else None
            found = self._reconcile(str(entry.applied["name"]), entry.model_uuid, since,
                                    fresh=False)
            if found is not None:
                uuids.append(str(found["uuid"]))
        if entry.pending_delete is not None:
            uuids.append(entry.pending_delete)
        for uuid in uuids:
            self._refuse_if_referenced(uuid, sid)
            live = self._prepared.live.get(uuid)
            if live is not None and live.get("fromPlay") is True:
                raise _Failure(f"segment {uuid} is owned by a play; segsync never deletes it")
        for uuid in uuids:
            self._delete_segment(uuid)
        self._finish(task, started, {sid: None}, verb="deleted",
                     uuid=uuids[0] if uuids else None,
                     detail="" if uuids else "it was never created; entry removed")

    def _refuse_if_referenced(self, uuid: str, owner: str) -> None:
        """A segment still referenced by a kept spec (or its recorded segment) stays."""
        for spec_id, entry in self._store.state.segments.items():
            if spec_id == owner:
                continue
            if uuid in entry.refs.values():
                raise _Failure(
                    f"segment {uuid} is still referenced by {spec_id}; it is not deleted"
                )
        for action in self._prepared.plan.actions:
            spec = action.spec
            if spec is None or spec.id == owner:
                continue
            for _, cond in iter_conditions(spec.managed.get("filter", {})):
                if cond.get("kind") == "segment" and cond.get("segmentUuid") == uuid:
                    raise _Failure(
                        f"segment {uuid} is still referenced by {spec.id} ({spec.file}); "
                        "it is not deleted"
                    )

    def _delete_segment(self, uuid: str) -> None:
        try:
            self._client.delete_segment(uuid)
        except ApiError as exc:
            if isinstance(exc, NetworkError):
                raise
            if exc.status == 404 or exc.reason in GONE_REASONS:
                return  # already gone: what the delete wanted
            raise


def execute(
    prepared: Prepared,
    client: CargoClient,
    store: StateStore,
    *,
    parallelism: int = 4,
    on_result: Callable[[ActionResult, int, int], None] | None = None,
) -> ApplyReport:
    """Run the prepared plan's actions (see the module docstring); ``on_result(result, done,
    total)`` is called in the calling thread as each task ends, after its state write."""
    runner = _Runner(prepared, client, store, parallelism=parallelism, on_result=on_result)
    return runner.run()


_SYMBOLS: Final = {
    "create": "+",
    "recreate": "+!",
    "update": "~",
    "moved": ">",
    "replace": "-/+",
    "delete": "-",
}


def describe_result(result: ActionResult) -> str:
    """One progress line: ``+ sales/icp created (0.21s) uuid …``, ``! x failed (…): why``."""
    name = result.id + (" (old segment)" if result.step == "cleanup" else "")
    if result.status == "done":
        symbol = "-" if result.step == "cleanup" else _SYMBOLS.get(result.kind, "~")
        line = f"{symbol} {name} {result.verb} ({result.seconds:.2f}s)"
        if result.uuid:
            line += f" uuid {result.uuid}"
        return line + (f"; {result.detail}" if result.detail else "")
    if result.status == "skipped":
        return f"! {name} {result.message}"
    return f"! {name} failed ({result.seconds:.2f}s): {result.message}"


def preview(client: CargoClient, plan: Plan, state: State) -> Plan:
    """The plan with each created or updated segment's record count from Cargo's fetch
    endpoint (``fetchingLimit: 1``, no sync or enrichment: cargo-api.md §2.6).

    A filter that names a spec not created yet cannot be sent: its count is unknown.
    """
    uuids = {sid: e.uuid for sid, e in state.segments.items() if e.uuid}
    actions = []
    for action in plan.actions:
        spec = action.spec
        if spec is None or action.kind not in PREVIEW_KINDS:
            actions.append(action)
            continue
        missing = [ref for ref in spec.refs if ref not in uuids]
        if missing:
            note = f"references {', '.join(missing)}, not created yet"
            actions.append(replace(action, preview=Preview(None, note=note)))
            continue
        body = request_body(spec.managed, ref_uuids=uuids)
        body.pop("name", None)
        body.pop("trackingColumnSlugs", None)
        body["modelUuid"] = client.resolve_model(spec.model_ref)["uuid"]
        body["fetchingLimit"] = 1
        answer = client.fetch_segment(body)
        count = answer.get("count")
        result = Preview(
            count if isinstance(count, int) else None,
            approximate=bool(answer.get("isRefreshing")),
            note=None if isinstance(count, int) else "Cargo's answer has no count",
        )
        actions.append(replace(action, preview=result))
    return replace(plan, actions=tuple(actions))
