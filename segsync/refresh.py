"""What Cargo holds, read once per run: the workspace, the model catalog, the live segments.

``plan --refresh`` and ``apply`` call :func:`refresh` (after :meth:`Catalog.start` began reading
the workspace and the catalog while the specs load) and get a :class:`~segsync.plan.Cargo`
value for the plan. ``plan --preview`` asks the fetch endpoint what each new filter would match
(:func:`preview`). Everything here reads; nothing writes.
"""

from __future__ import annotations

import contextlib
import difflib
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from segsync.canonical import refs_of, to_wire
from segsync.errors import ApiError, ConfigError, NetworkError, StateError
from segsync.plan import PREVIEW_KINDS, Cargo, Plan, Preview
from segsync.types import Payload, is_uuid4

if TYPE_CHECKING:
    from segsync.client import CargoClient
    from segsync.specs import LoadedSpec
    from segsync.state import State


class Catalog:
    """The token's workspace and the workspace's datasets and models, each read once.

    :meth:`start` reads all three at once in the background (apply needs them before anything
    else, and they do not depend on each other); :meth:`workspace` and :meth:`resolve` then
    use those answers, or raise their errors.
    """

    def __init__(self, client: CargoClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._loaded: tuple[list[Payload], list[Payload]] | None = None
        self._workspace: Payload | None = None
        self._started: dict[str, Future[Any]] = {}

    def start(self) -> None:
        """Begin reading the workspace, datasets and models in the background."""
        pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="segsync-catalog")
        self._started = {
            "workspace": pool.submit(self._client.current_workspace),
            "datasets": pool.submit(self._client.list_datasets),
            "models": pool.submit(self._client.list_models),
        }
        pool.shutdown(wait=False)

    def __enter__(self) -> Catalog:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None and not issubclass(kind, Exception):
            self._started = {}  # interrupted (Ctrl-C, SIGTERM): do not wait for the reads
            return
        self.close()

    def close(self) -> None:
        """Wait for reads still under way (their answers no longer matter), so the client is
        never closed under them: a failed command ends without a stray request."""
        for future in self._started.values():
            with contextlib.suppress(Exception):  # the command failed already: unused answer
                future.result()
        self._started = {}

    def _take(self, name: str) -> Future[Any] | None:
        return self._started.pop(name, None)

    def workspace(self) -> Payload:
        """The current workspace (its uuid and name)."""
        with self._lock:
            if self._workspace is None:
                future = self._take("workspace")
                self._workspace = (
                    future.result() if future is not None else self._client.current_workspace()
                )
            return self._workspace

    def _load(self) -> tuple[list[Payload], list[Payload]]:
        with self._lock:
            if self._loaded is None:
                datasets, models = self._take("datasets"), self._take("models")
                self._loaded = (
                    datasets.result() if datasets is not None else self._client.list_datasets(),
                    models.result() if models is not None else self._client.list_models(),
                )
            return self._loaded

    def models_by_uuid(self) -> dict[str, Payload]:
        """Every model of the workspace (removed ones included, marked by ``deletedAt``)."""
        _, models = self._load()
        return {str(m["uuid"]): m for m in models if isinstance(m.get("uuid"), str)}

    def spec_names(self) -> dict[str, str]:
        """Model uuid -> how a spec names it: the bare slug, or ``dataset.slug`` when several
        datasets have a model with that slug (live models only)."""
        datasets, models = self._load()
        dataset_slugs = {
            d.get("uuid"): d.get("slug") for d in datasets if d.get("deletedAt") is None
        }
        live = [
            m for m in models
            if m.get("deletedAt") is None and isinstance(m.get("slug"), str)
            and isinstance(m.get("uuid"), str)
        ]
        counts: dict[str, int] = {}
        for m in live:
            counts[m["slug"]] = counts.get(m["slug"], 0) + 1
        names: dict[str, str] = {}
        for m in live:
            dataset = dataset_slugs.get(m.get("datasetUuid"))
            qualified = counts[m["slug"]] > 1 and isinstance(dataset, str)
            names[m["uuid"]] = f"{dataset}.{m['slug']}" if qualified else m["slug"]
        return names

    def _error(self, message: str) -> ConfigError:
        return ConfigError(self._client.scrub(message))

    def resolve(self, ref: str) -> Payload:
        """The live model named by ``ref``: its uuid, a bare slug, or ``datasetSlug.modelSlug``."""
        datasets, models = self._load()
        ref = ref.strip()
        live = [m for m in models if m.get("deletedAt") is None and isinstance(m.get("slug"), str)]
        if is_uuid4(ref):
            for model in models:
                if str(model.get("uuid", "")).lower() == ref.lower():
                    if model.get("deletedAt") is None:
                        return model
                    raise self._error(
                        f"model {ref} was deleted in Cargo; point the spec at a live model"
                    )
            raise self._error(
                f"model {ref} does not exist in this workspace; check the uuid or use the "
                "model's slug"
            )

        dataset_slugs = {
            d["uuid"]: d["slug"]
            for d in datasets
            if d.get("deletedAt") is None
            and isinstance(d.get("uuid"), str)
            and isinstance(d.get("slug"), str)
        }

        def qualified(model: Payload) -> str | None:
            dataset_uuid = model.get("datasetUuid")
            slug = dataset_slugs.get(dataset_uuid) if isinstance(dataset_uuid, str) else None
            return f"{slug}.{model['slug']}" if slug is not None else None

        if "." in ref:
            matches = [m for m in live if qualified(m) == ref]
        else:
            matches = [m for m in live if m["slug"] == ref]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            choices = sorted({q for q in map(qualified, matches) if q})
            if "." in ref or len(choices) < len(matches):
                uuids = ", ".join(sorted(str(m.get("uuid")) for m in matches))
                raise self._error(
                    f"model '{ref}' matches several models ({uuids}); use modelUuid instead"
                )
            raise self._error(
                f"model '{ref}' is ambiguous: several datasets have a model with this slug; "
                f"write one of {', '.join(choices)}"
            )

        counts: dict[str, int] = {}
        for m in live:
            counts[m["slug"]] = counts.get(m["slug"], 0) + 1
        available: set[str] = set()
        candidates: set[str] = set(counts)
        for m in live:
            q = qualified(m)
            if q:
                candidates.add(q)
            available.add(m["slug"] if counts[m["slug"]] == 1 or q is None else q)
        if not available:
            raise self._error(f"unknown model '{ref}': this workspace has no models")
        close = difflib.get_close_matches(ref, sorted(candidates), n=1, cutoff=0.6)
        hint = f": did you mean '{close[0]}'?" if close else "."
        names = sorted(available)
        shown = ", ".join(names[:50]) + (
            f", … and {len(names) - 50} more" if len(names) > 50 else ""
        )
        raise self._error(f"unknown model '{ref}'{hint} Available models: {shown}")



def target_workspace(catalog: Catalog, state: State) -> Payload:
    """The token's workspace; StateError when the state was recorded for another one."""
    workspace = catalog.workspace()
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


def resolve_models(catalog: Catalog, specs: Sequence[LoadedSpec]) -> dict[str, Payload]:
    """Model as written -> live model, for every spec; one ConfigError naming every failure."""
    files: dict[str, list[str]] = {}
    for spec in specs:
        files.setdefault(spec.model_ref, []).append(spec.file)
    models: dict[str, Payload] = {}
    problems: list[str] = []
    for ref in sorted(files):
        try:
            models[ref] = catalog.resolve(ref)
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


def refresh(
    client: CargoClient,
    catalog: Catalog,
    specs: Sequence[LoadedSpec],
    state: State,
    *,
    parallelism: int = 4,
) -> Cargo:
    """Resolve every spec's model and list the live segments of those models (and of the
    models the state recorded), one call per model."""
    models = resolve_models(catalog, specs)
    listed = {str(m["uuid"]) for m in models.values()}
    recorded = {e.model_uuid for e in state.segments.values() if e.model_uuid}
    live = list_live(client, listed, optional=recorded, parallelism=parallelism)
    # Entries recorded without a model uuid cannot be found by listing: read them one by one.
    for entry in state.segments.values():
        if entry.uuid and not entry.model_uuid and entry.uuid not in live:
            segment = client.get_segment(entry.uuid)
            if segment is not None:
                live[entry.uuid] = segment
    return Cargo(models=models, live=live)


def check_workspace(catalog: Catalog, specs: Sequence[LoadedSpec], cargo: Cargo) -> None:
    """ValidationFailed, every error at its place, when a spec names a column its model does
    not have, with another type, a property the column lacks, or a missing segment."""
    from segsync.columns import check_columns
    from segsync.errors import ValidationFailed
    from segsync.specs import errors_at

    found = [
        (p.spec, p.path, p.message)
        for p in check_columns(specs, cargo.models, catalog.models_by_uuid(), cargo.live)
    ]
    # A segment: reference names a spec on the same model, once both models are resolved.
    by_id = {s.id: s for s in specs}
    for spec in specs:
        mine = cargo.models.get(spec.model_ref, {}).get("uuid")
        for path, ref in refs_of(spec.managed):
            target = by_id.get(ref)
            theirs = cargo.models.get(target.model_ref, {}).get("uuid") if target else None
            if target is not None and mine is not None and theirs != mine:
                found.append((spec, path, f"spec '{ref}' is on model '{target.model_ref}' "
                              f"({theirs}), not on '{spec.model_ref}' ({mine}); a segment "
                              "condition must name a segment of the same model"))
    if found:
        raise ValidationFailed(errors_at(found))


def preview(client: CargoClient, catalog: Catalog, plan: Plan, state: State) -> Plan:
    """The plan with each created or updated segment's record count from Cargo's fetch
    endpoint (``fetchingLimit: 1``, no sync or enrichment).

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
        body = to_wire(spec.managed, ref_uuids=uuids)
        body.pop("name", None)
        body.pop("trackingColumnSlugs", None)
        body["modelUuid"] = catalog.resolve(spec.model_ref)["uuid"]
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
