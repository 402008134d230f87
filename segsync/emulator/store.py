"""The emulator's workspace state: segments over a demo catalog, behind one lock.

Every public method takes the lock, so concurrent requests see and leave a consistent store.
Methods return JSON-able payloads (without the response wrapper) or raise :class:`HttpError`.
With a data file, every change is on disk before it is answered (see :mod:`.persist`).

Segments are indexed by model, live or not, so that listing a model's segments and counting them
take time in proportion to the answer, not to every segment held. Index orders are creation
orders, the order of the list endpoint.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
import threading
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from segsync.emulator import persist
from segsync.emulator.data import FIXTURE_TIME, Catalog
from segsync.emulator.evaluate import select
from segsync.emulator.fixtures import FIXTURES, last_change
from segsync.emulator.fixtures import PLAY_SEGMENT_NAME as PLAY_SEGMENT_NAME
from segsync.emulator.fixtures import WORKFLOW_SEGMENT_NAME as WORKFLOW_SEGMENT_NAME
from segsync.emulator.validate import MODEL_NOT_FOUND, SEGMENT_KEYS, BodyChecker, Op

DEFAULT_FETCHING_LIMIT = 100
# The change log is folded into the data file once it holds more lines than this, and more than
# twice the segments held: the fold's cost, in proportion to the segments, is spread over as many
# changes.
FOLD_MIN_LINES = 1000


class HttpError(Exception):
    """An error answer: status, ``errorMessage`` and optional ``reason``."""

    def __init__(self, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"errorMessage": self.message}
        if self.reason is not None:
            data["reason"] = self.reason
        return data


def now_iso() -> str:
    """The current UTC time as ISO-8601 with milliseconds and ``Z``."""
    moment = datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def slug_base(name: str) -> str:
    """Slug of a segment name: runs of other characters become ``_``; only [a-z0-9_] remain."""
    return re.sub(r"[^a-zA-Z0-9]+", "_", name).strip("_").lower() or "segment"


def normalize_filter(flt: Any) -> Any:
    """Cargo-style normalisation: string ``values`` become lists, missing ``conjonction`` "or"."""
    if not isinstance(flt, dict):
        return flt
    out = copy.deepcopy(flt)
    out.setdefault("conjonction", "or")
    out.setdefault("groups", [])

    def fix(cond: Any) -> None:
        if not isinstance(cond, dict):
            return
        if isinstance(cond.get("values"), str):
            cond["values"] = [cond["values"]]
        if cond.get("operator") == "matchConditions" or cond.get("kind") == "occurrence":
            cond.setdefault("conjonction", "or")
        for key in ("propertyConditions", "conditions"):
            if isinstance(cond.get(key), list):
                for inner in cond[key]:
                    fix(inner)

    for group in out["groups"] if isinstance(out["groups"], list) else []:
        if isinstance(group, dict):
            group.setdefault("conjonction", "or")
            for cond in (
                group.get("conditions", []) if isinstance(group.get("conditions"), list) else []
            ):
                fix(cond)
    return out


def _segment_refs(flt: Any) -> list[str]:
    refs: list[str] = []
    groups = flt.get("groups") if isinstance(flt, dict) else None
    for group in groups if isinstance(groups, list) else []:
        conditions = group.get("conditions") if isinstance(group, dict) else None
        for cond in conditions if isinstance(conditions, list) else []:
            if isinstance(cond, dict) and cond.get("kind") == "segment":
                target = cond.get("segmentUuid")
                if isinstance(target, str):
                    refs.append(target)
    return refs


@dataclass
class StoredSegment:
    """A segment as stored: its wire fields (without recordsCount) and the workflow link."""

    data: dict[str, Any]
    linked_to_workflow: bool = False

    @property
    def live(self) -> bool:
        return self.data["deletedAt"] is None


@dataclass(frozen=True)
class StoreOptions:
    fixtures: bool = True
    lax: bool = False
    normalize: bool = False
    list_removed: bool = False
    data_path: Path | None = None


class Store:
    """Segments of one workspace, the catalog around them, and the API operations on them."""

    def __init__(self, catalog: Catalog, options: StoreOptions | None = None) -> None:
        self.catalog = catalog
        self.options = options or StoreOptions()
        self._lock = threading.RLock()
        self._segments: dict[str, StoredSegment] = {}
        # uuid -> None dicts, in creation order: the live segments, and by model all or live
        self._live: dict[str, None] = {}
        self._by_model: dict[str, dict[str, None]] = {}
        self._live_by_model: dict[str, dict[str, None]] = {}
        self._slugs: set[str] = set()
        self._slug_next: dict[str, int] = {}  # base -> n: base_2 .. base_{n-1} are all taken
        self._cache: dict[str, frozenset[str]] = {}
        self.checker = BodyChecker(catalog, segment_model=self._live_model, lax=self.options.lax)
        path = self.options.data_path
        self._log = persist.ChangeLog(path) if path is not None else None
        if path is not None and path.exists():
            self._load(path)
        else:
            if self.options.fixtures:
                self._add_fixtures()
            if path is not None:
                # a log without its data file belongs to a workspace that was thrown away
                persist.log_path(path).unlink(missing_ok=True)
                self._write_data()
        self._reindex()

    # ------------------------------------------------------------------ persistence

    def _load(self, path: Path) -> None:
        for data, linked in persist.read_data(path, self.catalog.workspace_name):
            self._put(data, linked)
        changes = persist.read_log(persist.log_path(path))
        if changes is None or self._log is None:
            return
        # the log of an emulator that did not stop cleanly: fold it in
        for data, linked in changes:
            self._put(data, linked)
        if changes:
            self._write_data()
        self._log.remove()

    def _put(self, data: dict[str, Any], linked: bool) -> None:
        seg = self._segments.get(data["uuid"])
        if seg is None:
            self._segments[data["uuid"]] = StoredSegment(data, linked)
        else:
            seg.data, seg.linked_to_workflow = data, linked
        self._slugs.add(data["slug"])

    def _reindex(self) -> None:
        self._live.clear()
        self._by_model.clear()
        self._live_by_model.clear()
        for seg in self._segments.values():
            self._index(seg)

    def _index(self, seg: StoredSegment) -> None:
        seg_uuid, model_uuid = seg.data["uuid"], seg.data["modelUuid"]
        self._by_model.setdefault(model_uuid, {})[seg_uuid] = None
        if seg.live:
            self._live[seg_uuid] = None
            self._live_by_model.setdefault(model_uuid, {})[seg_uuid] = None

    def _write_data(self) -> None:
        """Write every segment to the data file at once."""
        if self.options.data_path is None:
            return
        text = persist.encode(self.catalog.workspace_name, self.entries())
        persist.write_atomic(self.options.data_path, text)

    def _record(self, data: dict[str, Any], linked: bool) -> None:
        """Put a change on disk, before it is made in memory (a failed write changes nothing).

        Once it is made, :meth:`_after_change` folds a log grown long enough.
        """
        if self._log is not None:
            self._log.append(persist.entry(data, linked))

    def _after_change(self) -> None:
        if self._log is not None and self._log.lines > max(FOLD_MIN_LINES, 2 * len(self._segments)):
            # the change is on disk already: a fold that fails is tried again on the next one
            with contextlib.suppress(OSError):
                self._fold()

    def _fold(self) -> None:
        if self._log is not None:
            self._write_data()
            self._log.remove()

    def close(self) -> None:
        """Fold the change log into the data file (a clean stop); the store stays usable."""
        with self._lock:
            if self._log is not None and self._log.lines:
                self._fold()

    # ------------------------------------------------------------------ fixtures

    def _add_fixtures(self) -> None:
        companies = next(m for m in self.catalog.model_info.values() if m.slug == "companies")
        for fixture in FIXTURES:
            seg_uuid = self.catalog.fixture_segment_uuid(fixture.key)
            data = self._new_data(
                seg_uuid,
                companies.uuid,
                fixture.name,
                fixture.filter,
                None,
                None,
                fixture.tracking,
                None,
                FIXTURE_TIME,
            )
            data["fromPlay"] = fixture.from_play
            data["syncedAt"] = FIXTURE_TIME
            self._segments[seg_uuid] = StoredSegment(data, linked_to_workflow=True)
            data["lastChange"] = last_change(
                self.catalog, fixture.key, len(self._members(seg_uuid))
            )

    # ------------------------------------------------------------------ helpers

    def _new_data(
        self,
        seg_uuid: str,
        model_uuid: str,
        name: str,
        flt: Any,
        sort: Any,
        limit: Any,
        tracking: Any,
        column_slugs: Any,
        created_at: str,
    ) -> dict[str, Any]:
        base = slug_base(name)
        slug = base
        if slug in self._slugs:
            n = self._slug_next.get(base, 2)
            while f"{base}_{n}" in self._slugs:
                n += 1
            slug = f"{base}_{n}"
            self._slug_next[base] = n + 1
        self._slugs.add(slug)
        return {
            "uuid": seg_uuid,
            "workspaceUuid": self.catalog.workspace_uuid,
            "userUuid": self.catalog.user_uuid,
            "modelUuid": model_uuid,
            "slug": slug,
            "name": name,
            "filter": self._stored_filter(flt),
            "sort": copy.deepcopy(sort),
            "limit": limit,
            "trackingColumnSlugs": copy.deepcopy(tracking),
            "columnSlugs": copy.deepcopy(column_slugs),
            "fromPlay": False,
            "syncedAt": None,
            "lastChange": None,
            "createdAt": created_at,
            "updatedAt": created_at,
            "deletedAt": None,
        }

    def _stored_filter(self, flt: Any) -> Any:
        return normalize_filter(flt) if self.options.normalize else copy.deepcopy(flt)

    def _live_model(self, seg_uuid: str) -> str | None:
        seg = self._segments.get(seg_uuid)
        return seg.data["modelUuid"] if seg is not None and seg.live else None

    def _check(
        self, body: Any, op: Op, *, model_uuid: str | None = None, self_uuid: str | None = None
    ) -> None:
        problems = self.checker.check(body, op=op, model_uuid=model_uuid, self_uuid=self_uuid)
        if not problems:
            return
        reason = (
            MODEL_NOT_FOUND
            if any(p.reason == MODEL_NOT_FOUND for p in problems)
            else "invalidFilter"
        )
        raise HttpError(400, "; ".join(p.message for p in problems), reason)

    def _eval_key(self, seg_uuid: str, visiting: frozenset[str]) -> str | None:
        """Content key of a segment's membership (None inside a reference cycle)."""
        seg = self._segments.get(seg_uuid)
        if seg is None or not seg.live:
            return "-"
        if seg_uuid in visiting:
            return None
        refs: list[Any] = []
        for ref in _segment_refs(seg.data["filter"]):
            key = self._eval_key(ref, visiting | {seg_uuid})
            if key is None:
                return None
            refs.append([ref, key])
        d = seg.data
        text = json.dumps(
            [d["modelUuid"], d["filter"], d["sort"], d["limit"], refs], sort_keys=True, default=str
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def _members(self, seg_uuid: str, stack: frozenset[str] = frozenset()) -> frozenset[str]:
        seg = self._segments.get(seg_uuid)
        if seg is None or not seg.live or seg_uuid in stack:
            return frozenset()
        key = self._eval_key(seg_uuid, frozenset())
        if key is not None and key in self._cache:
            return self._cache[key]
        d = seg.data
        rows = self._select(d["modelUuid"], d["filter"], d["sort"], d["limit"], stack | {seg_uuid})
        members = frozenset(str(r["_id"]) for r in rows)
        if key is not None:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = members
        return members

    def _select(
        self, model_uuid: str, flt: Any, sort: Any, limit: Any, stack: frozenset[str]
    ) -> list[Mapping[str, Any]]:
        info = self.catalog.model_info[model_uuid]
        return select(
            self.catalog.records.get(model_uuid, ()),
            flt,
            sort,
            limit,
            column_types=info.column_types,
            in_segment=lambda ref: self._members(ref, stack),
        )

    def _view(self, seg: StoredSegment, *, fresh: bool = False) -> dict[str, Any]:
        d = seg.data
        out = {key: copy.deepcopy(d.get(key)) for key in SEGMENT_KEYS}
        out["recordsCount"] = 0 if fresh else len(self._members(d["uuid"]))
        if not fresh and out["syncedAt"] is None and seg.live:
            out["syncedAt"] = d["updatedAt"]
        return out

    def _visible(self, seg_uuid: str) -> StoredSegment:
        seg = self._segments.get(seg_uuid)
        if seg is None or not seg.live:
            raise HttpError(404, f"segment '{seg_uuid}' not found", "segmentNotFound")
        return seg

    def _reaches(self, start: str, target: str) -> bool:
        seen: set[str] = set()
        todo = [start]
        while todo:
            current = todo.pop()
            if current == target:
                return True
            if current in seen:
                continue
            seen.add(current)
            seg = self._segments.get(current)
            if seg is not None and seg.live:
                todo.extend(_segment_refs(seg.data["filter"]))
        return False

    def _model_or_404(self, model_uuid: str) -> dict[str, Any]:
        for model in self.catalog.models:
            if model["uuid"] == model_uuid:
                return model
        raise HttpError(404, f"model '{model_uuid}' not found", "modelNotFound")

    # ------------------------------------------------------------------ segment API

    def create(self, body: Any) -> dict[str, Any]:
        with self._lock:
            self._check(body, "create")
            data = self._new_data(
                str(uuidlib.uuid4()),
                body["modelUuid"],
                body["name"],
                body["filter"],
                body.get("sort"),
                body.get("limit"),
                body.get("trackingColumnSlugs"),
                body.get("columnSlugs"),
                now_iso(),
            )
            seg = StoredSegment(data)
            self._record(data, seg.linked_to_workflow)
            self._segments[data["uuid"]] = seg
            self._index(seg)
            self._after_change()
            return self._view(seg, fresh=True)

    def list_segments(self, model_uuid: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            uuids: Mapping[str, Any]
            if model_uuid is None:
                uuids = self._segments if self.options.list_removed else self._live
            else:
                index = self._by_model if self.options.list_removed else self._live_by_model
                uuids = index.get(model_uuid, {})
            return [self._view(self._segments[seg_uuid]) for seg_uuid in uuids]

    def get(self, seg_uuid: str) -> dict[str, Any]:
        with self._lock:
            seg = self._segments.get(seg_uuid)
            if seg is not None and not seg.live and self.options.list_removed:
                return self._view(seg)
            return self._view(self._visible(seg_uuid))

    def update(self, seg_uuid: str, body: Any) -> dict[str, Any]:
        with self._lock:
            seg = self._visible(seg_uuid)
            if seg.linked_to_workflow:
                raise HttpError(
                    409,
                    f"segment '{seg_uuid}' is linked to a workflow and cannot be updated",
                    "segmentLinkedToWorkflow",
                )
            self._check(body, "update", model_uuid=seg.data["modelUuid"], self_uuid=seg_uuid)
            if "filter" in body and not self.options.lax:
                for ref in _segment_refs(body["filter"]):
                    if self._reaches(ref, seg_uuid):
                        raise HttpError(
                            400,
                            f"filter: segment '{ref}' already contains segment '{seg_uuid}' "
                            "(a segment cannot contain itself, directly or not)",
                            "invalidFilter",
                        )
            data = dict(seg.data)
            for key in ("name", "sort", "limit", "trackingColumnSlugs", "columnSlugs"):
                if key in body:
                    data[key] = copy.deepcopy(body[key])
            if "filter" in body:
                data["filter"] = self._stored_filter(body["filter"])
            data["updatedAt"] = now_iso()
            self._record(data, seg.linked_to_workflow)
            seg.data = data
            self._after_change()
            return self._view(seg)

    def delete(self, seg_uuid: str) -> dict[str, Any]:
        with self._lock:
            seg = self._segments.get(seg_uuid)
            if seg is None:
                raise HttpError(404, f"segment '{seg_uuid}' not found", "segmentNotFound")
            if not seg.live:
                raise HttpError(
                    409, f"segment '{seg_uuid}' is already removed", "segmentAlreadyRemoved"
                )
            if seg.linked_to_workflow:
                raise HttpError(
                    409,
                    f"segment '{seg_uuid}' is linked to a workflow and cannot be removed",
                    "segmentLinkedToWorkflow",
                )
            stamp = now_iso()
            data = {**seg.data, "deletedAt": stamp, "updatedAt": stamp}
            self._record(data, seg.linked_to_workflow)
            seg.data = data
            del self._live[seg_uuid]
            del self._live_by_model[data["modelUuid"]][seg_uuid]
            self._after_change()
            return {}

    def fetch(self, body: Any) -> dict[str, Any]:
        with self._lock:
            self._check(body, "fetch")
            model_uuid = body["modelUuid"]
            flt = self._stored_filter(body["filter"])
            rows = self._select(model_uuid, flt, body.get("sort"), body.get("limit"), frozenset())
            offset = int(body.get("fetchingOffset") or 0)
            size = int(body.get("fetchingLimit") or DEFAULT_FETCHING_LIMIT)
            info = self.catalog.model_info[model_uuid]
            return {
                "records": [copy.deepcopy(dict(r)) for r in rows[offset : offset + size]],
                "count": len(rows),
                "columns": [dict(c) for c in info.columns_json],
                "isRefreshing": False,
            }

    def changes(self, segment_uuid: str) -> list[dict[str, Any]]:
        with self._lock:
            seg = self._visible(segment_uuid)
            last = seg.data["lastChange"]
            if last is None:
                return []
            return [
                {
                    **copy.deepcopy(last),
                    "workspaceUuid": seg.data["workspaceUuid"],
                    "segmentUuid": segment_uuid,
                }
            ]

    # ------------------------------------------------------------------ storage API

    def datasets(self) -> list[dict[str, Any]]:
        return [dict(d) for d in self.catalog.datasets]

    def models(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._model_view(m) for m in self.catalog.models]

    def model(self, model_uuid: str) -> dict[str, Any]:
        with self._lock:
            return self._model_view(self._model_or_404(model_uuid))

    def _model_view(self, model: Mapping[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(dict(model))
        out["segmentsCount"] = len(self._live_by_model.get(model["uuid"], ()))
        return out

    def columns(self, model_uuid: str) -> list[str]:
        self._model_or_404(model_uuid)
        return list(self.catalog.model_info[model_uuid].column_order)

    def model_exists(self, slug: str, dataset_uuid: str) -> bool:
        return any(
            m["slug"] == slug and m["datasetUuid"] == dataset_uuid and m["deletedAt"] is None
            for m in self.catalog.models
        )

    def column_exists(self, slug: str, model_uuid: str) -> bool:
        info = self.catalog.model_info.get(model_uuid)
        return info is not None and slug in info.column_types

    def workspace(self) -> dict[str, Any]:
        return {
            "uuid": self.catalog.workspace_uuid,
            "name": self.catalog.workspace_name,
            "slug": re.sub(r"[^a-z0-9]+", "-", self.catalog.workspace_name.lower()).strip("-")
            or "workspace",
            "createdAt": FIXTURE_TIME,
            "updatedAt": FIXTURE_TIME,
            "deletedAt": None,
        }

    # ------------------------------------------------------------------ for tests

    def set_linked_to_workflow(self, seg_uuid: str, linked: bool = True) -> None:
        """Mark a segment as used by a workflow (update and delete then answer 409)."""
        with self._lock:
            seg = self._segments[seg_uuid]
            self._record(seg.data, linked)
            seg.linked_to_workflow = linked
            self._after_change()

    def raw_segments(self) -> list[dict[str, Any]]:
        """Every stored segment, removed ones included, as the list endpoint would show it."""
        with self._lock:
            return [self._view(s) for s in self._segments.values()]

    def entries(self) -> list[persist.Entry]:
        """Every stored segment as the data file holds it, in the data file's order."""
        with self._lock:
            return [persist.entry(s.data, s.linked_to_workflow) for s in self._segments.values()]
