"""The canonical form of a segment's managed fields, its digest, and the one rule for references.

The same canonicalisation runs on a spec and on a segment Cargo returns, so the two compare:
a single string in ``values`` becomes a list, absent and null optional keys are dropped,
``500.0`` is ``500``, key order is ignored and list order kept.

References: a spec names another spec with ``segment: <spec id>``; Cargo knows only
``segmentUuid``. :func:`conditions` is the one walk over a filter's conditions (nested
``propertyConditions`` and ``occurrence`` conditions included), and :func:`to_wire` /
:func:`from_wire` are the one place that turns spec ids into UUIDs and back, at every level.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, Final

from segsync.types import Path, Payload

#: The fields segsync manages: compared, digested and sent.
MANAGED_FIELDS: Final = ("name", "filter", "sort", "limit", "trackingColumnSlugs")


def _canon(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            if key == "values" and type(item) is str:
                out[key] = [item]
            elif type(item) in (dict, list, float):
                out[key] = _canon(item)
            else:
                out[key] = item
        return out
    if kind is list:
        return [_canon(item) if type(item) in (dict, list, float) else item for item in value]
    if kind is float and value.is_integer():
        return int(value)
    return value


def canonical_managed(fields: Mapping[str, Any]) -> Payload:
    """Canonical form of the managed fields of a spec or of a segment Cargo returned."""
    return {
        key: _canon(fields[key])
        for key in MANAGED_FIELDS
        if key in fields and fields[key] is not None
    }


def digest(managed: Mapping[str, Any]) -> str:
    """sha256 of the canonical managed fields as compact JSON with sorted keys."""
    return hashlib.sha256(dumps_compact(managed).encode()).hexdigest()


def dumps_compact(value: Any) -> str:
    """Compact JSON with sorted keys: equal canonical values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def conditions(flt: Any) -> Iterator[tuple[Path, dict[str, Any]]]:
    """``(path, condition)`` for every condition of a filter, nested ones included, in document
    order; the path starts at ``"filter"``. Malformed parts are skipped, not raised on."""

    def walk(items: Any, prefix: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
        if not isinstance(items, list):
            return
        for i, cond in enumerate(items):
            if not isinstance(cond, dict):
                continue
            path = (*prefix, i)
            yield path, cond
            yield from walk(cond.get("propertyConditions"), (*path, "propertyConditions"))
            if cond.get("kind") == "occurrence":
                yield from walk(cond.get("conditions"), (*path, "conditions"))

    groups = flt.get("groups") if isinstance(flt, Mapping) else None
    if isinstance(groups, list):
        for g, group in enumerate(groups):
            if isinstance(group, dict):
                yield from walk(group.get("conditions"), ("filter", "groups", g, "conditions"))


def refs_of(fields: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    """``(path of the 'segment' value, spec id)`` of each ``segment: <spec id>`` condition."""
    for path, cond in conditions(fields.get("filter")):
        if cond.get("kind") == "segment" and isinstance(cond.get("segment"), str):
            yield (*path, "segment"), cond["segment"]


def segment_uuids(fields: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    """``(path, uuid)`` of each condition that names a segment by ``segmentUuid``."""
    for path, cond in conditions(fields.get("filter")):
        if cond.get("kind") == "segment" and isinstance(cond.get("segmentUuid"), str):
            yield (*path, "segmentUuid"), cond["segmentUuid"]


def to_wire(managed: Mapping[str, Any], *, ref_uuids: Mapping[str, str]) -> Payload:
    """A copy of ``managed`` as Cargo takes it: each ``segment: <spec id>`` becomes
    ``segmentUuid: <uuid>`` (KeyError for a spec id missing from ``ref_uuids``)."""
    body: Payload = copy.deepcopy(dict(managed))
    for _, cond in conditions(body.get("filter")):
        if cond.get("kind") == "segment" and "segment" in cond:
            cond["segmentUuid"] = ref_uuids[cond.pop("segment")]
    return body


def from_wire(managed: Mapping[str, Any], *, uuid_to_id: Mapping[str, str]) -> Payload:
    """The reverse of :func:`to_wire`: a ``segmentUuid`` that segsync manages becomes
    ``segment: <spec id>`` again, so a live segment compares with what was applied."""
    fields: Payload = copy.deepcopy(dict(managed))
    for _, cond in conditions(fields.get("filter")):
        if cond.get("kind") == "segment" and cond.get("segmentUuid") in uuid_to_id:
            cond["segment"] = uuid_to_id[cond.pop("segmentUuid")]
    return fields
