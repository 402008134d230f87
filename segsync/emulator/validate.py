"""Request-body checks of the emulator: what Cargo should reject, as the emulator's conventions ask.

The emulator is an independent witness of segsync's payloads: its checks are its own, written
from the API reference, and share no code with segsync's validator. The filter's and the sort's
structure are checked by :mod:`segsync.emulator.filters` (the §4 tables); this module checks the
body's own keys and what only the server knows: the model, its columns and their types, related
models, and the segments a ``segment`` condition names.

Every problem of a body is reported. A body whose model is unknown is a ``modelNotFound``
problem; everything else is ``invalidFilter``, the only reason Cargo declares for create, update
and fetch bodies. With ``lax``, only what Cargo reportedly rejects is refused
(:func:`lax_filter_problems`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from segsync.emulator.checks import describe, did_you_mean, is_uuid4
from segsync.emulator.data import DEFAULT_WORKSPACE, Catalog, ModelInfo, build_catalog
from segsync.emulator.filters import COLUMN_KINDS, check_filter, check_sort

Op = Literal["create", "update", "fetch"]

INVALID_FILTER = "invalidFilter"
MODEL_NOT_FOUND = "modelNotFound"

CREATE_KEYS = ("name", "modelUuid", "filter", "sort", "limit", "trackingColumnSlugs", "columnSlugs")
UPDATE_KEYS = ("name", "filter", "sort", "limit", "trackingColumnSlugs", "columnSlugs")
FETCH_KEYS = (
    "modelUuid",
    "filter",
    "sort",
    "limit",
    "fetchingLimit",
    "fetchingOffset",
    "enrich",
    "sync",
)
# Every key of a Segment object, in the order the API reference gives them.
SEGMENT_KEYS = (
    "uuid",
    "workspaceUuid",
    "userUuid",
    "modelUuid",
    "slug",
    "name",
    "filter",
    "sort",
    "limit",
    "trackingColumnSlugs",
    "columnSlugs",
    "recordsCount",
    "fromPlay",
    "syncedAt",
    "lastChange",
    "createdAt",
    "updatedAt",
    "deletedAt",
)
# What the server computes: never accepted in a body.
READ_ONLY_KEYS = frozenset(SEGMENT_KEYS) - {
    "modelUuid", "name", "filter", "sort", "limit", "trackingColumnSlugs", "columnSlugs"
}

SegmentModel = Callable[[str], "str | None"]
"""uuid -> the model UUID of that live segment of the workspace, or None (unknown or removed)."""


@dataclass(frozen=True)
class Problem:
    reason: str
    message: str


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value.is_integer()


class BodyChecker:
    """Checks create, update and fetch bodies against one workspace's catalog."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        segment_model: SegmentModel | None = None,
        lax: bool = False,
    ) -> None:
        self.catalog = catalog
        self.segment_model = segment_model
        self.lax = lax

    def check(
        self,
        body: Any,
        *,
        op: Op = "create",
        model_uuid: str | None = None,
        self_uuid: str | None = None,
    ) -> list[Problem]:
        """Problems of ``body`` for ``op``; ``model_uuid`` is the segment's model on update."""
        if not isinstance(body, dict):
            return [Problem(INVALID_FILTER, f"body: expected a JSON object, got {describe(body)}")]
        found: list[Problem] = []

        def bad(message: str, reason: str = INVALID_FILTER) -> None:
            found.append(Problem(reason, message))

        allowed = {"create": CREATE_KEYS, "update": UPDATE_KEYS, "fetch": FETCH_KEYS}[op]
        for key in body:
            if key in allowed:
                continue
            if op == "update" and key == "modelUuid":
                bad("modelUuid: a segment's model cannot be changed (delete it and create another)")
            elif key in READ_ONLY_KEYS:
                bad(f"{key}: read-only, computed by the server; do not send it")
            elif not self.lax:
                bad(f"{key}: unknown key{did_you_mean(key, allowed)}")

        if op == "update":
            for key in ("name", "filter"):
                if key in body and body[key] is None:
                    bad(f"{key}: cannot be null")
        else:
            required = (
                ("name", "modelUuid", "filter") if op == "create" else ("modelUuid", "filter")
            )
            for key in required:
                if key not in body:
                    bad(f"{key}: missing required key")
                elif body[key] is None:
                    bad(f"{key}: cannot be null")
            if not self.lax:
                for key in allowed:
                    if key not in required and key in body and body[key] is None:
                        bad(f"{key}: null is accepted only on update; leave the key out")

        name = body.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            bad(
                "name: must be a non-empty string"
                if isinstance(name, str)
                else f"name: expected a string, got {describe(name)}"
            )

        model: ModelInfo | None = None
        if op == "update":
            model = self.catalog.model_info.get(model_uuid or "")
        else:
            raw_model = body.get("modelUuid")
            if is_uuid4(raw_model):
                model = self.catalog.model_info.get(raw_model)
                if model is None or model.deleted:
                    model = None
                    bad(f"modelUuid: no model '{raw_model}' in this workspace", MODEL_NOT_FOUND)
            elif raw_model is not None:
                bad(f"modelUuid: expected a version-4 UUID, got {describe(raw_model)}")

        if body.get("filter") is not None:
            found.extend(self._filter(body["filter"], model, self_uuid))

        self._sort(body.get("sort"), model, bad)
        limit = body.get("limit")
        if limit is not None and (not _is_integer(limit) or limit <= 0):
            bad(f"limit: expected a positive integer, got {limit!r}")
        for key in ("trackingColumnSlugs", "columnSlugs"):
            if key in body and body[key] is not None:
                self._slugs(key, body[key], model, bad)
        if op == "fetch":
            fetching_limit = body.get("fetchingLimit")
            if fetching_limit is not None and (
                not _is_integer(fetching_limit) or fetching_limit <= 0
            ):
                bad(f"fetchingLimit: expected a positive integer, got {fetching_limit!r}")
            offset = body.get("fetchingOffset")
            if offset is not None and (not _is_integer(offset) or offset < 0):
                bad(f"fetchingOffset: expected a non-negative integer, got {offset!r}")
            for key in ("enrich", "sync"):
                if key in body and body[key] is not None and not isinstance(body[key], bool):
                    bad(f"{key}: expected a boolean, got {describe(body[key])}")
        return found

    # ------------------------------------------------------------------ pieces

    def _sort(self, sort: Any, model: ModelInfo | None, bad: Callable[[str], None]) -> None:
        """Structure (§4.4), then, unless lax, that each column exists on the model."""
        if sort is None:
            return
        if self.lax:
            for message in lax_sort_problems(sort):
                bad(message)
            return
        for message in check_sort(sort):
            bad(message)
        if model is None or not isinstance(sort, list):
            return
        for i, entry in enumerate(sort):
            slug = entry.get("columnSlug") if isinstance(entry, dict) else None
            if isinstance(slug, str):
                self._column_exists(f"sort[{i}].columnSlug", slug, model, bad)

    def _slugs(
        self, key: str, value: Any, model: ModelInfo | None, bad: Callable[[str], None]
    ) -> None:
        if not isinstance(value, list):
            bad(f"{key}: expected a list of column slugs, got {describe(value)}")
            return
        for i, slug in enumerate(value):
            if not isinstance(slug, str):
                bad(f"{key}[{i}]: expected a string, got {describe(slug)}")
            elif model is not None and not self.lax:
                self._column_exists(f"{key}[{i}]", slug, model, bad)

    @staticmethod
    def _column_exists(where: str, slug: str, model: ModelInfo, bad: Callable[[str], None]) -> bool:
        if slug in model.column_types:
            return True
        bad(
            f"{where}: unknown column '{slug}' on model '{model.slug}'"
            f"{did_you_mean(slug, model.column_order)}"
        )
        return False

    def _filter(self, flt: Any, model: ModelInfo | None, self_uuid: str | None) -> list[Problem]:
        if self.lax:
            return [Problem(INVALID_FILTER, m) for m in lax_filter_problems(flt)]
        found = [Problem(INVALID_FILTER, m) for m in check_filter(flt)]
        if model is not None and isinstance(flt, dict):
            messages: list[str] = []
            groups = flt.get("groups")
            for g, group in enumerate(groups if isinstance(groups, list) else []):
                conditions = group.get("conditions") if isinstance(group, dict) else None
                for c, cond in enumerate(conditions if isinstance(conditions, list) else []):
                    where = f"filter.groups[{g}].conditions[{c}]"
                    self._condition(cond, where, model, self_uuid, messages.append)
            found.extend(Problem(INVALID_FILTER, m) for m in messages)
        return found

    def _related(
        self, cond: Mapping[str, Any], where: str, model: ModelInfo, bad: Callable[[str], None]
    ) -> ModelInfo | None:
        related = cond.get("relatedModelUuid")
        if related is None:
            return model
        info = self.catalog.model_info.get(related) if isinstance(related, str) else None
        if info is None or info.deleted:
            bad(f"{where}.relatedModelUuid: no model '{related}' in this workspace")
            return None
        return info

    def _condition(
        self,
        cond: Any,
        where: str,
        model: ModelInfo,
        self_uuid: str | None,
        bad: Callable[[str], None],
    ) -> None:
        if not isinstance(cond, dict):
            return
        kind = cond.get("kind")
        if kind in COLUMN_KINDS:
            target = self._related(cond, where, model, bad)
            if target is None:
                return
            column_type = self._column(cond, where, target, bad, inside_match=False)
            if cond.get("operator") == "matchConditions" and column_type in ("object", "array"):
                inner = cond.get("propertyConditions")
                for i, prop in enumerate(inner if isinstance(inner, list) else []):
                    if isinstance(prop, dict):
                        self._column(
                            prop, f"{where}.propertyConditions[{i}]", target, bad, inside_match=True
                        )
        elif kind == "segment":
            self._segment(cond, where, model, self_uuid, bad)
        elif kind == "occurrence":
            related = self._related(cond, where, model, bad)
            inner = cond.get("conditions")
            if related is None or not isinstance(inner, list):
                return
            for i, sub in enumerate(inner):
                if isinstance(sub, dict) and sub.get("kind") in COLUMN_KINDS:
                    self._condition(sub, f"{where}.conditions[{i}]", related, self_uuid, bad)

    def _column(
        self,
        cond: Mapping[str, Any],
        where: str,
        model: ModelInfo,
        bad: Callable[[str], None],
        *,
        inside_match: bool,
    ) -> str | None:
        """Check columnSlug, kind against the column type and propertyName; the column type."""
        slug = cond.get("columnSlug")
        if not isinstance(slug, str) or not self._column_exists(
            f"{where}.columnSlug", slug, model, bad
        ):
            return None
        column_type = model.column_types[slug]
        kind = cond.get("kind")
        if kind == "objectProperty":
            targets = ("object", "array") if inside_match else ("object",)
            if column_type not in targets:
                extra = "" if inside_match else " (array columns only inside matchConditions)"
                bad(
                    f"{where}.kind: 'objectProperty' tests an object column{extra}; column "
                    f"'{slug}' of model '{model.slug}' is of type '{column_type}'"
                )
                return column_type
            properties = model.properties.get(slug)
            name = cond.get("propertyName")
            if properties is not None and isinstance(name, str) and name not in properties:
                known = ", ".join(f"'{p}'" for p in properties)
                bad(
                    f"{where}.propertyName: column '{slug}' has no property '{name}'"
                    f"{did_you_mean(name, properties)}; its properties are {known}"
                )
        elif kind != column_type:
            bad(
                f"{where}.kind: '{kind}' does not match column '{slug}' of model '{model.slug}', "
                f"which is of type '{column_type}' (Cargo would match no records)"
            )
        return column_type

    def _segment(
        self,
        cond: Mapping[str, Any],
        where: str,
        model: ModelInfo,
        self_uuid: str | None,
        bad: Callable[[str], None],
    ) -> None:
        target = cond.get("segmentUuid")
        if not isinstance(target, str) or self.segment_model is None:
            return
        if target == self_uuid:
            bad(f"{where}.segmentUuid: a segment cannot contain itself")
            return
        target_model = self.segment_model(target)
        if target_model is None:
            bad(f"{where}.segmentUuid: no live segment '{target}' in this workspace")
        elif target_model != model.uuid:
            other = self.catalog.model_info.get(target_model)
            bad(
                f"{where}.segmentUuid: segment '{target}' is on model "
                f"'{other.slug if other else target_model}', not on '{model.slug}'"
            )


def lax_filter_problems(flt: Any) -> list[str]:
    """What Cargo reportedly rejects: a non-object filter or group, non-list groups/conditions."""
    if not isinstance(flt, dict):
        return [f"filter: expected an object, got {describe(flt)}"]
    groups = flt.get("groups", [])
    if not isinstance(groups, list):
        return [f"filter.groups: expected a list, got {describe(groups)}"]
    found: list[str] = []
    for g, group in enumerate(groups):
        if not isinstance(group, dict):
            found.append(f"filter.groups[{g}]: expected an object, got {describe(group)}")
            continue
        conditions = group.get("conditions", [])
        if not isinstance(conditions, list):
            found.append(
                f"filter.groups[{g}].conditions: expected a list, got {describe(conditions)}"
            )
    return found


def lax_sort_problems(sort: Any) -> list[str]:
    """What a lax emulator refuses in a sort: not a list of objects with ``kind`` asc/desc and a
    string ``columnSlug`` (unknown keys and unknown columns pass)."""
    if not isinstance(sort, list):
        return [f"sort: expected a list, got {describe(sort)}"]
    found: list[str] = []
    for i, entry in enumerate(sort):
        where = f"sort[{i}]"
        if not isinstance(entry, dict):
            found.append(f"{where}: expected an object, got {describe(entry)}")
            continue
        if entry.get("kind") not in ("asc", "desc"):
            found.append(f"{where}.kind: expected 'asc' or 'desc', got {entry.get('kind')!r}")
        slug = entry.get("columnSlug")
        if not isinstance(slug, str):
            found.append(f"{where}.columnSlug: expected a string, got {describe(slug)}")
    return found


def validate_segment_body(
    body: Any,
    *,
    op: Op = "create",
    workspace: str = DEFAULT_WORKSPACE,
    model_uuid: str | None = None,
    segments: Mapping[str, str] | None = None,
    lax: bool = False,
) -> list[str]:
    """Every problem the emulator would report for ``body`` (empty: it would be accepted).

    ``op`` is "create", "update" (then ``model_uuid`` names the segment's model) or "fetch".
    ``segments`` maps the UUIDs of live segments to their model UUIDs; when it is None,
    ``segment`` conditions are checked for structure only.
    """
    catalog = build_catalog(workspace)
    checker = BodyChecker(
        catalog, segment_model=None if segments is None else segments.get, lax=lax
    )
    return [p.message for p in checker.check(body, op=op, model_uuid=model_uuid)]
