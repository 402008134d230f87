"""The emulator's workspace state: segments over a demo catalog, behind one lock.

Every public method takes the lock, so concurrent requests see and leave a consistent store.
Methods return JSON-able payloads (without the response wrapper) or raise :class:`HttpError`.
With a data file, the segments are written atomically after every change.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import tempfile
import threading
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from segsync.emulator.data import FIXTURE_TIME, Catalog
from segsync.emulator.errors import EmulatorError
from segsync.emulator.evaluate import select
from segsync.emulator.validate import MODEL_NOT_FOUND, SEGMENT_KEYS, BodyChecker, Op

DATA_FORMAT = "segsync-emulator-data"
DATA_VERSION = 1
DEFAULT_FETCHING_LIMIT = 100

PLAY_SEGMENT_NAME = "GENERATED_PLAY_SEGMENT"
WORKFLOW_SEGMENT_NAME = "[fixture] Churn-risk customers (linked to a workflow)"



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
        self._slugs: set[str] = set()
        self._cache: dict[str, frozenset[str]] = {}
        self.checker = BodyChecker(catalog, segment_model=self._live_model, lax=self.options.lax)
        path = self.options.data_path
        if path is not None and path.exists():
            self._load(path)
        else:
            if self.options.fixtures:
                self._add_fixtures()
            if path is not None:
                self._save()

    # ------------------------------------------------------------------ persistence

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EmulatorError(f"cannot read emulator data file: {exc}", path=str(path)) from exc
        if not isinstance(raw, dict) or raw.get("format") != DATA_FORMAT:
            raise EmulatorError("not a segsync emulator data file", path=str(path))
        if raw.get("version") != DATA_VERSION:
            raise EmulatorError(
                f"unsupported emulator data version {raw.get('version')!r}", path=str(path)
            )
        if raw.get("workspace") != self.catalog.workspace_name:
            raise EmulatorError(
                f"this data file belongs to workspace {raw.get('workspace')!r}, "
                f"not {self.catalog.workspace_name!r} (use --workspace to match it)",
                path=str(path),
            )
        entries = raw.get("segments")
        if not isinstance(entries, list):
            raise EmulatorError("emulator data file has no segment list", path=str(path))
        for entry in entries:
            data = entry.get("segment") if isinstance(entry, dict) else None
            if not isinstance(data, dict) or not all(
                k in data for k in SEGMENT_KEYS if k != "recordsCount"
            ):
                raise EmulatorError("emulator data file holds a malformed segment", path=str(path))
            self._segments[data["uuid"]] = StoredSegment(data, bool(entry.get("linkedToWorkflow")))
            self._slugs.add(data["slug"])

    def _save(self) -> None:
        path = self.options.data_path
        if path is None:
            return
        payload = {
            "format": DATA_FORMAT,
            "version": DATA_VERSION,
            "workspace": self.catalog.workspace_name,
            "segments": [
                {"segment": s.data, "linkedToWorkflow": s.linked_to_workflow}
                for s in self._segments.values()
            ],
        }
        text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
        directory = path.parent if str(path.parent) else Path(".")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------------ fixtures

    def _add_fixtures(self) -> None:
        companies = next(m for m in self.catalog.model_info.values() if m.slug == "companies")
        play_uuid = self.catalog.fixture_segment_uuid("play")
        workflow_uuid = self.catalog.fixture_segment_uuid("workflow")

        def change(key: str, total: int) -> dict[str, Any]:
            return {
                "uuid": self.catalog.fixture_segment_uuid(f"change-{key}"),
                "slug": f"change_{key}_1",
                "totalRecordsCount": total,
                "updatedRecordsCount": 0,
                "removedRecordsCount": 0,
                "addedRecordsCount": total,
                "unchangedRecordsCount": 0,
                "createdAt": FIXTURE_TIME,
            }

        fixtures = (
            (
                play_uuid,
                PLAY_SEGMENT_NAME,
                True,
                {
                    "conjonction": "and",
                    "groups": [
                        {
                            "conjonction": "and",
                            "conditions": [
                                {
                                    "kind": "string",
                                    "columnSlug": "stage",
                                    "operator": "is",
                                    "values": ["opportunity"],
                                }
                            ],
                        }
                    ],
                },
                None,
                "play",
            ),
            (
                workflow_uuid,
                WORKFLOW_SEGMENT_NAME,
                False,
                {
                    "conjonction": "and",
                    "groups": [
                        {
                            "conjonction": "and",
                            "conditions": [
                                {
                                    "kind": "boolean",
                                    "columnSlug": "is_customer",
                                    "operator": "isTrue",
                                },
                                {
                                    "kind": "date",
                                    "columnSlug": "last_activity_at",
                                    "operator": "lowerThan",
                                    "value": "2024-06-01",
                                },
                            ],
                        }
                    ],
                },
                ["stage"],
                "workflow",
            ),
        )
        for seg_uuid, name, from_play, flt, tracking, key in fixtures:
            data = self._new_data(
                seg_uuid, companies.uuid, name, flt, None, None, tracking, None, FIXTURE_TIME
            )
            data["fromPlay"] = from_play
            data["syncedAt"] = FIXTURE_TIME
            self._segments[seg_uuid] = StoredSegment(data, linked_to_workflow=True)
            data["lastChange"] = change(key, len(self._members(seg_uuid)))

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
        slug, n = base, 2
        while slug in self._slugs:
            slug, n = f"{base}_{n}", n + 1
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
            self._segments[data["uuid"]] = seg
            self._save()
            return self._view(seg, fresh=True)

    def list_segments(self, model_uuid: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                self._view(seg)
                for seg in self._segments.values()
                if (seg.live or self.options.list_removed)
                and (model_uuid is None or seg.data["modelUuid"] == model_uuid)
            ]

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
            seg.data = data
            self._save()
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
            seg.data = {**seg.data, "deletedAt": stamp, "updatedAt": stamp}
            self._save()
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
        out["segmentsCount"] = sum(
            1 for s in self._segments.values() if s.live and s.data["modelUuid"] == model["uuid"]
        )
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
            self._segments[seg_uuid].linked_to_workflow = linked
            self._save()

    def raw_segments(self) -> list[dict[str, Any]]:
        """Every stored segment, removed ones included, as the list endpoint would show it."""
        with self._lock:
            return [self._view(s) for s in self._segments.values()]
