"""The orchestrator between the command line and the stages: load, plan, refresh, apply.

``cli.py`` parses options and prints; these functions decide what a command does with them:
which files are read, when Cargo is asked, what a saved plan allows, what is refused before
any change. They print nothing: what a person should see goes through :class:`ApplyUI`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from segsync.errors import ConfigError, SpecError

if TYPE_CHECKING:
    from segsync.apply import ActionResult, ApplyReport
    from segsync.client import CargoClient
    from segsync.plan import Cargo, Duplicate, Plan
    from segsync.planfile import SavedPlan
    from segsync.refresh import Catalog
    from segsync.specs import LoadedSpec
    from segsync.state import State
    from segsync.types import Payload

Log = Callable[[str], None]


@dataclass(frozen=True)
class Project:
    """The specs folder and the state file a command works on, and the Cargo API it talks to
    (``api_url``/``token`` None: ``CARGO_API_URL`` / ``CARGO_API_TOKEN``)."""

    directory: str
    state_path: str
    api_url: str | None = None
    token: str | None = None
    token_help: str | None = None  # the error when ``token`` is empty (an environment's)
    notify: Log | None = None  # lines while waiting for or retrying Cargo (stderr)
    jobs: int | None = None  # processes that parse spec files (None: automatic)


@dataclass(frozen=True)
class Planned:
    """A plan with what it was made from (``plan --out`` saves plan, state and specs), and
    the warnings of its specs."""

    plan: Plan
    state: State
    specs: Sequence[LoadedSpec]
    warnings: Sequence[SpecError] = ()


def spec_warnings(specs: Sequence[LoadedSpec]) -> list[SpecError]:
    """The warnings of ``specs`` (see ``specwarnings``), each at its place."""
    from segsync.errors import SpecWarning
    from segsync.specs import errors_at
    from segsync.specwarnings import spec_warnings as warnings_of

    found = [(w.spec, w.path, w.message) for s in specs for w in warnings_of(s)]
    return errors_at(found, cls=SpecWarning) if found else []


def load(project: Project) -> tuple[State, list[LoadedSpec]]:
    """The state, and the specs (files unchanged since the last apply are not parsed again);
    ValidationFailed with every spec error."""
    from segsync.specs import known_specs, load_specs
    from segsync.state import read_state

    state = read_state(project.state_path)
    specs = load_specs(
        project.directory, known=known_specs(state, project.directory), jobs=project.jobs
    )
    return state, specs


def validate_project(
    project: Project, *, remote: bool = False, log: Log | None = None
) -> tuple[list[LoadedSpec], int, list[SpecError]]:
    """Every spec of the folder (ValidationFailed with all errors), how many files, and the
    warnings. ``remote`` also checks every model, column, kind and property against the
    workspace (one read of the models, one list call per model)."""
    from segsync.specs import count_spec_files, load_specs

    specs = load_specs(project.directory, jobs=project.jobs)
    total = count_spec_files(project.directory)
    if remote:
        from segsync import refresh as refreshing
        from segsync.state import read_state

        with _cargo(project, log) as (client, catalog):
            state = read_state(project.state_path)
            cargo = refreshing.refresh(client, catalog, specs, state)
            refreshing.check_workspace(catalog, specs, cargo)
    return specs, total, spec_warnings(specs)


@contextmanager
def _cargo(project: Project, log: Log | None) -> Iterator[tuple[CargoClient, Catalog]]:
    """A client and its catalog (reading in the background); the catalog's reads end before
    the client closes, also when the command fails."""
    from segsync.refresh import Catalog

    with _client(project, log) as client, Catalog(client) as catalog:
        yield client, catalog


def _client(project: Project, log: Log | None) -> CargoClient:
    from segsync.client import CargoClient

    if project.token_help is not None and not project.token:
        raise ConfigError(project.token_help)
    return CargoClient(project.api_url, project.token, debug_log=log, notify=project.notify)


def plan_project(
    project: Project,
    *,
    prune: bool = False,
    refresh: bool = False,
    preview: bool = False,
    targets: Sequence[str] = (),
    log: Log | None = None,
) -> Planned:
    """The plan of ``segsync plan``: offline unless ``refresh`` (read Cargo first, as apply
    does) or ``preview`` (ask Cargo how many records each new filter matches); with
    ``targets``, of those specs and the ones they reference only."""
    from segsync import refresh as refreshing
    from segsync.plan import make_plan

    if not (refresh or preview):
        full, all_specs = load(project)
        specs, state = _targeted(all_specs, full, targets, prune)
        plan = _mark(make_plan(specs, state, prune=prune), targets, specs, all_specs)
        return Planned(plan, full, all_specs, spec_warnings(specs))
    with _cargo(project, log) as (client, catalog):
        # the workspace and the catalog are read while the specs load
        full, all_specs = load(project)
        specs, state = _targeted(all_specs, full, targets, prune)
        if refresh:
            refreshing.target_workspace(catalog, state)
            cargo = refreshing.refresh(client, catalog, specs, state)
            refreshing.check_workspace(catalog, specs, cargo)
            plan = make_plan(specs, state, prune=prune, cargo=cargo)
        else:
            plan = make_plan(specs, state, prune=prune)
        if preview:
            plan = refreshing.preview(client, catalog, plan, state)
    return Planned(_mark(plan, targets, specs, all_specs), full, all_specs, spec_warnings(specs))


def _targeted(
    specs: list[LoadedSpec], state: State, targets: Sequence[str], prune: bool
) -> tuple[list[LoadedSpec], State]:
    if not targets:
        return specs, state
    if prune:
        raise ConfigError(
            "--target plans part of the specs, and --prune needs all of them (a spec left out "
            "would look deleted); use one or the other"
        )
    from segsync.plan import select_targets

    return select_targets(specs, state, targets)


def _mark(
    plan: Plan, targets: Sequence[str], specs: Sequence[LoadedSpec], all_specs: Sequence[LoadedSpec]
) -> Plan:
    """The plan, marked partial when ``--target`` chose its specs."""
    if not targets:
        return plan
    from dataclasses import replace

    return replace(plan, targets=tuple(targets), covered=(len(specs), len(all_specs)))


@dataclass(frozen=True)
class Prepared:
    """What apply runs: the plan made against Cargo, and what Cargo held when it was made."""

    workspace: Payload
    plan: Plan
    cargo: Cargo
    state: State
    notes: tuple[str, ...] = ()


def prepare(
    client: CargoClient,
    catalog: Catalog,
    specs: Sequence[LoadedSpec],
    state: State,
    *,
    prune: bool = False,
    saved: SavedPlan | None = None,
    parallelism: int = 4,
    delete_duplicates: bool = False,
) -> Prepared:
    """Check the workspace, read Cargo, and plan against it; with ``saved`` (a plan file
    already checked with ``planfile.check_fresh``), keep exactly its actions."""
    from segsync import refresh as refreshing
    from segsync.plan import CHANGE_KINDS, make_plan, restrict

    workspace = refreshing.target_workspace(catalog, state)
    cargo = refreshing.refresh(client, catalog, specs, state, parallelism=parallelism)
    refreshing.check_workspace(catalog, specs, cargo)  # before anything is sent
    plan = make_plan(
        specs, state, prune=prune, cargo=cargo, delete_duplicates=delete_duplicates
    )
    notes: list[str] = []
    if saved is not None:
        wanted = {
            str(a.get("id")): str(a.get("action"))
            for a in saved.actions
            if a.get("action") in CHANGE_KINDS
        }
        plan, notes = restrict(plan, wanted, source=saved.path)
    return Prepared(workspace, plan, cargo, state, tuple(notes))


@dataclass(frozen=True)
class Applied:
    """What an apply did: the report of its actions (None when there was nothing to do), and
    the duplicates it left in Cargo (apply fails while any exist)."""

    report: ApplyReport | None
    duplicates: tuple[Duplicate, ...]


class ApplyUI(Protocol):
    """What apply tells a person, and the one question it asks."""

    def note(self, text: str) -> None:
        """Something the user should know that changes nothing (a stale lock taken over)."""

    def workspace(self, description: str) -> None:
        """The target workspace, named before anything else."""

    def plan(self, plan: Plan, notes: Sequence[str]) -> None:
        """The plan about to be applied."""

    def confirm(self) -> bool:
        """True to go ahead."""

    def result(self, result: ActionResult, done: int, total: int) -> None:
        """One action finished (its state write is on disk)."""


def apply_project(
    project: Project,
    ui: ApplyUI,
    *,
    planfile: str | None = None,
    prune: bool = False,
    allow_replace: bool = False,
    force: bool = False,
    parallelism: int = 4,
    delete_duplicates: bool = False,
    targets: Sequence[str] = (),
    log: Log | None = None,
) -> Applied:
    """``segsync apply``: lock the state, plan against Cargo, refuse what needs a flag, ask,
    then execute. Failures and duplicates left are the caller's to report."""
    from segsync import refresh as refreshing
    from segsync.apply import execute
    from segsync.lock import StateLock
    from segsync.plan import Duplicate, check_safety
    from segsync.planfile import check_fresh, read_plan_file
    from segsync.statelog import JournalStore

    if targets and planfile is not None:
        raise ConfigError("--target and a plan file: a saved plan is applied whole")
    # A plan file that cannot be read stops the run before Cargo is asked anything.
    saved = read_plan_file(planfile) if planfile is not None else None
    lock = StateLock(project.state_path, command="segsync apply")
    with lock, _cargo(project, log) as (client, catalog):
        if lock.note is not None:
            ui.note(lock.note)
        full, all_specs = load(project)
        # The whole state (--target plans a part). A killed run's journal, which ``full``
        # holds, is folded into the state file now, also when there is nothing to apply.
        store = JournalStore(project.state_path, full)
        store.open()
        specs, state = _targeted(all_specs, full, targets, prune)
        if saved is not None:
            check_fresh(saved, state, specs)
            if prune and not saved.prune:
                raise ConfigError(
                    f"{planfile} was planned without --prune; plan again with --prune"
                )
            prune = saved.prune
        ui.workspace(refreshing.describe_workspace(refreshing.target_workspace(catalog, state)))
        prepared = prepare(
            client, catalog, specs, state, prune=prune, saved=saved, parallelism=parallelism,
            delete_duplicates=delete_duplicates,
        )
        plan = _mark(prepared.plan, targets, specs, all_specs)
        ui.plan(plan, prepared.notes)
        check_safety(plan, full, allow_replace=allow_replace, force=force)
        if not plan.has_changes:
            return Applied(None, plan.duplicates)
        if not ui.confirm():
            raise ConfigError("apply cancelled; nothing was changed")
        with store:  # this run's journal is folded when it ends, also after an error
            report = execute(
                plan, prepared.cargo, client, store,
                workspace_uuid=str(prepared.workspace["uuid"]), parallelism=parallelism,
                on_result=ui.result,
            )
        deleted = {r.uuid for r in report.results if r.kind == "dedupe" and r.status == "done"}
        left = [
            Duplicate(a.id, str(a.uuid), a.name, str(a.model), None, True, "its delete failed")
            for a in plan.actions if a.kind == "dedupe" and a.uuid not in deleted
        ]
        return Applied(report, (*plan.duplicates, *left))


@dataclass(frozen=True)
class ImportedSegment:
    """One segment ``segsync import`` wrote a spec for (or would, in a dry run)."""

    uuid: str
    name: str
    file: str
    spec_id: str


@dataclass(frozen=True)
class Imported:
    """What an import did: the specs written (in file order) and the segments skipped, why."""

    written: tuple[ImportedSegment, ...]
    skipped: tuple[tuple[str, str, str], ...]  # (uuid, name, reason)
    dry_run: bool


def import_project(
    project: Project,
    *,
    model: str | None = None,
    match: str | None = None,
    dry_run: bool = False,
    log: Log | None = None,
) -> Imported:
    """``segsync import``: one spec file per live segment segsync does not manage, recorded in
    the state so that the next plan shows no changes. Files are created exclusively."""
    import contextlib

    from segsync.lock import StateLock

    lock = contextlib.nullcontext() if dry_run else StateLock(
        project.state_path, command="segsync import"
    )
    with lock, _cargo(project, log) as (client, catalog):
        return _import(client, catalog, project, model=model, match=match, dry_run=dry_run)


def _import(
    client: CargoClient, catalog: Catalog, project: Project, *, model: str | None,
    match: str | None, dry_run: bool,
) -> Imported:
    import os

    from segsync import importer
    from segsync import refresh as refreshing
    from segsync.state import Entry, StateStore, read_state, utc_now

    if os.path.isdir(project.directory):
        state, specs = load(project)
    else:  # a new repository: the folder is made for the first spec
        state, specs = read_state(project.state_path), []
    workspace = refreshing.target_workspace(catalog, state)
    names = catalog.spec_names()
    if model is not None:
        wanted = str(catalog.resolve(model)["uuid"])
        names = {wanted: names[wanted]} if wanted in names else {}
    live = refreshing.list_live(client, sorted(names))
    managed = {e.uuid for e in state.segments.values() if e.uuid}
    managed |= {e.pending_delete for e in state.segments.values() if e.pending_delete}
    chosen, skipped_raw = importer.choose(
        live.values(), managed=managed, model_names=names, match=match
    )
    skipped = [(str(s.get("uuid")), str(s.get("name")), why) for s, why in skipped_raw]
    # A spec already holding that model and name: apply adopts the segment, or says why not.
    spec_models = refreshing.resolve_models(catalog, specs) if specs else {}
    by_name = {(str(spec_models[s.model_ref]["uuid"]), s.name): s for s in specs}
    first_of: dict[tuple[str, str], str] = {}
    kept = []
    for segment in sorted(chosen, key=lambda s: (str(s.get("createdAt")), str(s.get("uuid")))):
        key = (str(segment.get("modelUuid")), str(segment.get("name")))
        uuid, name = str(segment.get("uuid")), str(segment.get("name"))
        if key in by_name:
            skipped.append((uuid, name, f"{by_name[key].file} already names a segment "
                            "with this name on this model; `segsync apply` adopts it when its "
                            f"fields are the same, or run `segsync import --uuid {uuid} --id "
                            f"{by_name[key].id}`"))
        elif key in first_of:
            skipped.append((uuid, name, f"a duplicate of {first_of[key]} (same model and "
                            "name), which is imported; delete this one in Cargo"))
        else:
            first_of[key] = uuid
            kept.append(segment)
    base = project.directory.rstrip("/") or "."
    existing = {s.file for s in specs}
    placed = importer.place(
        sorted(kept, key=lambda s: (str(s.get("name")), str(s.get("uuid")))),
        model_names=names, directory=base,
        taken_ids={s.id for s in specs} | set(state.segments), taken_files=existing,
    )
    uuid_to_id = {e.uuid: sid for sid, e in state.segments.items() if e.uuid}
    uuid_to_id |= {str(c.segment["uuid"]): c.spec_id for c in placed}
    rendered, dropped = importer.render_specs(placed, uuid_to_id)
    for c, why in dropped:
        skipped.append((str(c.segment["uuid"]), str(c.segment.get("name")), why))
    written: list[ImportedSegment] = []
    entries: dict[str, Entry | None] = {}
    id_to_uuid = {sid: uuid for uuid, sid in uuid_to_id.items()}
    for spec_id in sorted(rendered):
        c, data, spec = rendered[spec_id]
        uuid = str(c.segment["uuid"])
        item = ImportedSegment(uuid, spec.name, c.file, spec_id)
        if dry_run:
            written.append(item)
            continue
        os.makedirs(os.path.dirname(c.file) or ".", exist_ok=True)
        try:
            with open(c.file, "xb") as handle:
                handle.write(data)
        except FileExistsError:
            skipped.append((uuid, spec.name, f"{c.file} exists; segsync never overwrites a file"))
            continue
        entries[spec_id] = Entry(
            uuid=uuid, model=c.model, model_uuid=c.model_uuid, applied=spec.managed,
            digest=spec.digest, refs={ref: id_to_uuid[ref] for ref in spec.refs},
            protect=False, file=c.file, file_sha256=spec.file_sha256, applied_at=utc_now(),
        )
        written.append(item)
    if entries:
        StateStore(project.state_path, state).update(
            entries, workspace_uuid=str(workspace["uuid"])
        )
    return Imported(tuple(written), tuple(sorted(skipped, key=lambda s: (s[1], s[0]))), dry_run)


def bind_segment(
    project: Project, uuid: str, spec_id: str, *, log: Log | None = None
) -> tuple[str, Payload]:
    """``segsync import --uuid UUID --id SPEC_ID``: record that an existing spec manages an
    existing live segment; the next plan shows their differences as an update. Returns the
    spec's file and the segment."""
    from segsync import importer
    from segsync import refresh as refreshing
    from segsync.canonical import digest, refs_of
    from segsync.lock import StateLock
    from segsync.spec import did_you_mean
    from segsync.state import Entry, StateStore, utc_now

    with (
        StateLock(project.state_path, command="segsync import"),
        _cargo(project, log) as (client, catalog),
    ):
        state, specs = load(project)
        by_id = {s.id: s for s in specs}
        spec = by_id.get(spec_id)
        if spec is None:
            raise ConfigError(
                f"no spec has the id {spec_id!r} in {project.directory}"
                f"{did_you_mean(spec_id, sorted(by_id))}; write the spec first, then import"
            )
        if spec_id in state.segments and state.segments[spec_id].uuid is not None:
            raise ConfigError(
                f"{spec_id} already manages segment {state.segments[spec_id].uuid}; a spec "
                "manages one segment"
            )
        for other, entry in state.segments.items():
            if uuid in (entry.uuid, entry.pending_delete):
                raise ConfigError(f"segment {uuid} is already managed by {other}")
        workspace = refreshing.target_workspace(catalog, state)
        segment = client.get_segment(uuid)
        if segment is None:
            raise ConfigError(f"segment {uuid} does not exist in this workspace (or is deleted)")
        if segment.get("fromPlay") is True:
            raise ConfigError(f"segment {uuid} is owned by a play; segsync never manages it")
        model = catalog.resolve(spec.model_ref)
        if segment.get("modelUuid") != model.get("uuid"):
            raise ConfigError(
                f"segment {uuid} is on model {segment.get('modelUuid')}, but {spec.file} names "
                f"model {spec.model_ref} ({model.get('uuid')}); a segment cannot change model"
            )
        uuid_to_id = {e.uuid: sid for sid, e in state.segments.items() if e.uuid}
        applied = importer.fields_of(segment, uuid_to_id)
        id_to_uuid = {sid: u for u, sid in uuid_to_id.items()}
        entry = Entry(
            uuid=uuid, model=spec.model_ref, model_uuid=str(model["uuid"]), applied=applied,
            digest=digest(applied), refs={ref: id_to_uuid[ref] for _, ref in refs_of(applied)},
            protect=spec.protect, file=spec.file, applied_at=utc_now(),
        )
        StateStore(project.state_path, state).update(
            {spec_id: entry}, workspace_uuid=str(workspace["uuid"])
        )
        return spec.file, segment


def list_columns(
    project: Project, model: str | None = None, *, log: Log | None = None
) -> list[tuple[str, Payload]]:
    """``(name in a spec, model)`` of every live model (or of ``model`` alone), by name."""
    from segsync import refresh as refreshing

    with _client(project, log) as client:
        catalog = refreshing.Catalog(client)
        names = catalog.spec_names()
        models = catalog.models_by_uuid()
        if model is not None:
            wanted = str(catalog.resolve(model)["uuid"])
            names = {wanted: names[wanted]}
        return sorted(((name, models[uuid]) for uuid, name in names.items()),
                      key=lambda item: item[0])
