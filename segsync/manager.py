"""The orchestrator between the command line and the stages: load, plan, refresh, apply.

``cli.py`` parses options and prints; these functions decide what a command does with them:
which files are read, when Cargo is asked, what a saved plan allows, what is refused before
any change. They print nothing: what a person should see goes through :class:`ApplyUI`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from segsync.errors import ConfigError

if TYPE_CHECKING:
    from segsync.apply import ActionResult, ApplyReport
    from segsync.client import CargoClient
    from segsync.plan import Cargo, Plan
    from segsync.planfile import SavedPlan
    from segsync.refresh import Catalog
    from segsync.specs import LoadedSpec
    from segsync.state import State
    from segsync.types import Payload

Log = Callable[[str], None]


@dataclass(frozen=True)
class Project:
    """The specs folder and the state file a command works on."""

    directory: str
    state_path: str


@dataclass(frozen=True)
class Planned:
    """A plan with what it was made from (``plan --out`` saves all three)."""

    plan: Plan
    state: State
    specs: Sequence[LoadedSpec]


def load(project: Project) -> tuple[State, list[LoadedSpec]]:
    """The state, and the specs (files unchanged since the last apply are not parsed again);
    ValidationFailed with every spec error."""
    from segsync.specs import known_specs, load_specs
    from segsync.state import read_state

    state = read_state(project.state_path)
    specs = load_specs(project.directory, known=known_specs(state, project.directory))
    return state, specs


def validate_project(directory: str) -> tuple[list[LoadedSpec], int]:
    """Every spec of ``directory`` (ValidationFailed with all errors), and how many files."""
    from segsync.specs import count_spec_files, load_specs

    return load_specs(directory), count_spec_files(directory)


def _client(log: Log | None) -> CargoClient:
    from segsync.client import CargoClient

    return CargoClient(debug_log=log)


def plan_project(
    project: Project,
    *,
    prune: bool = False,
    refresh: bool = False,
    preview: bool = False,
    log: Log | None = None,
) -> Planned:
    """The plan of ``segsync plan``: offline unless ``refresh`` (read Cargo first, as apply
    does) or ``preview`` (ask Cargo how many records each new filter matches)."""
    from segsync import refresh as refreshing
    from segsync.plan import make_plan

    if not (refresh or preview):
        state, specs = load(project)
        return Planned(make_plan(specs, state, prune=prune), state, specs)
    with _client(log) as client:
        catalog = refreshing.Catalog(client)
        catalog.start()  # the workspace and the catalog are read while the specs load
        state, specs = load(project)
        if refresh:
            refreshing.target_workspace(catalog, state)
            cargo = refreshing.refresh(client, catalog, specs, state)
            plan = make_plan(specs, state, prune=prune, cargo=cargo)
        else:
            plan = make_plan(specs, state, prune=prune)
        if preview:
            plan = refreshing.preview(client, catalog, plan, state)
    return Planned(plan, state, specs)


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
) -> Prepared:
    """Check the workspace, read Cargo, and plan against it; with ``saved`` (a plan file
    already checked with ``planfile.check_fresh``), keep exactly its actions."""
    from segsync import refresh as refreshing
    from segsync.plan import CHANGE_KINDS, make_plan, restrict

    workspace = refreshing.target_workspace(catalog, state)
    cargo = refreshing.refresh(client, catalog, specs, state, parallelism=parallelism)
    plan = make_plan(specs, state, prune=prune, cargo=cargo)
    notes: list[str] = []
    if saved is not None:
        wanted = {
            str(a.get("id")): str(a.get("action"))
            for a in saved.actions
            if a.get("action") in CHANGE_KINDS
        }
        plan, notes = restrict(plan, wanted, source=saved.path)
    return Prepared(workspace, plan, cargo, state, tuple(notes))


class ApplyUI(Protocol):
    """What apply tells a person, and the one question it asks."""

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
    log: Log | None = None,
) -> ApplyReport | None:
    """``segsync apply``: lock the state, plan against Cargo, refuse what needs a flag, ask,
    then execute. None when there was nothing to do; the report otherwise (its failures are
    the caller's to report)."""
    from segsync import refresh as refreshing
    from segsync.apply import execute
    from segsync.lock import StateLock
    from segsync.plan import check_safety
    from segsync.planfile import check_fresh, read_plan_file
    from segsync.state import StateStore

    with StateLock(project.state_path, command="segsync apply"), _client(log) as client:
        catalog = refreshing.Catalog(client)
        catalog.start()
        state, specs = load(project)
        saved = None
        if planfile is not None:
            saved = read_plan_file(planfile)
            check_fresh(saved, state, specs)
            if prune and not saved.prune:
                raise ConfigError(
                    f"{planfile} was planned without --prune; plan again with --prune"
                )
            prune = saved.prune
        ui.workspace(refreshing.describe_workspace(refreshing.target_workspace(catalog, state)))
        prepared = prepare(
            client, catalog, specs, state, prune=prune, saved=saved, parallelism=parallelism
        )
        plan = prepared.plan
        ui.plan(plan, prepared.notes)
        check_safety(plan, state, allow_replace=allow_replace, force=force)
        if not plan.has_changes:
            return None
        if not ui.confirm():
            raise ConfigError("apply cancelled; nothing was changed")
        store = StateStore(project.state_path, state)
        return execute(
            plan, prepared.cargo, client, store, workspace_uuid=str(prepared.workspace["uuid"]),
            parallelism=parallelism, on_result=ui.result,
        )
