"""Live segments -> spec files in the repository's style, and the state entries that bind them.

``segsync import`` brings segments built in Cargo's UI under management: one spec file each,
``<specs folder>/<model>/<name as a slug>.yaml``, keys in the order the README uses, values in
their canonical form, ``segment:`` references by spec id where the referenced segment is
managed or imported in the same run. A file is written only when it parses back to exactly the
segment's fields, and never over an existing file.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from segsync.canonical import canonical_managed, from_wire
from segsync.types import Payload, is_uuid

if TYPE_CHECKING:
    from segsync.specs import LoadedSpec

#: Key order of a spec file and of each mapping in it (others follow, sorted).
_SPEC_KEYS: Final = ("id", "name", "model", "modelUuid", "filter", "sort", "limit",
                     "trackingColumnSlugs", "protect")
_KEY_ORDER: Final = (
    "conjonction", "groups", "kind", "columnSlug", "relatedModelUuid", "propertyName",
    "operator", "segment", "segmentUuid", "values", "value", "firstValue", "lastValue",
    "otherValue", "name", "clause", "workflowUuid", "activityKind", "nodeSlug", "frequency",
    "period", "unit", "propertyConditions", "conditions",
)
_RANK: Final = {key: i for i, key in enumerate(_KEY_ORDER)}
_PLAIN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_./@+-]*(?: [A-Za-z0-9_./@+()-]+)*")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}(?:T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?")
_SORT_KEYS: Final = ("columnSlug", "kind")
_RESERVED: Final = frozenset({
    "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~",
})


def slugify(name: str) -> str:
    """``Stale opportunities (EU)`` -> ``stale-opportunities-eu``; never empty."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:80].rstrip("-") or "segment"


def _scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    if (
        (_PLAIN.fullmatch(text) and text.lower() not in _RESERVED)
        or _DATE.fullmatch(text) or is_uuid(text)
    ):
        return text  # read back as the same string (segsync's loader has no other guesses)
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def _ordered(mapping: Mapping[str, Any], order: Sequence[str] = ()) -> list[str]:
    if not order and set(mapping) == set(_SORT_KEYS):
        order = _SORT_KEYS  # a sort entry: the column first
    ranks = {key: i for i, key in enumerate(order)} if order else _RANK
    return sorted(mapping, key=lambda k: (ranks.get(k, len(ranks)), k))


def _flow_list(items: list[Any]) -> str | None:
    """``[FR, DE]`` for a short list of scalars, else None (written as a block)."""
    if not all(isinstance(i, (str, int, float, bool)) for i in items):
        return None
    text = "[" + ", ".join(_scalar(i) for i in items) + "]"
    return text if len(text) <= 80 else None


def _emit(value: Any, indent: int, out: list[str], order: Sequence[str] = ()) -> None:
    pad = " " * indent
    for key in _ordered(value, order):
        item = value[key]
        if isinstance(item, dict) and item:
            out.append(f"{pad}{key}:")
            _emit(item, indent + 2, out)
        elif isinstance(item, list) and item:
            flow = _flow_list(item)
            if flow is not None:
                out.append(f"{pad}{key}: {flow}")
                continue
            out.append(f"{pad}{key}:")
            for element in item:
                if isinstance(element, dict) and element:
                    inner: list[str] = []
                    _emit(element, indent + 4, inner)
                    out.append(f"{pad}  - {inner[0].lstrip()}")
                    out.extend(inner[1:])
                else:
                    out.append(f"{pad}  - {_scalar(element)}")
        elif isinstance(item, (dict, list)):
            out.append(f"{pad}{key}: {'{}' if isinstance(item, dict) else '[]'}")
        else:
            out.append(f"{pad}{key}: {_scalar(item)}")


def spec_text(fields: Mapping[str, Any], model: str, *, comment: str = "") -> str:
    """A spec file for ``fields`` (canonical managed fields) on ``model``, as people write it."""
    doc = {**fields, "model": model}
    out = [f"# {line}".rstrip() for line in comment.splitlines()]
    _emit(doc, 0, out, _SPEC_KEYS)
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Candidate:
    """A live segment to import: where its spec goes and what it holds."""

    segment: Payload
    model: str  # as the spec names it
    model_uuid: str
    spec_id: str
    file: str


def choose(
    live: Iterable[Payload],
    *,
    managed: set[str],
    model_names: Mapping[str, str],
    match: str | None,
) -> tuple[list[Payload], list[tuple[Payload, str]]]:
    """(segments to import, (segment, why skipped)) among ``live``: never play-owned, deleted
    or managed ones; only models in ``model_names`` (model uuid -> name in a spec) and names
    matching the ``match`` glob."""
    chosen: list[Payload] = []
    skipped: list[tuple[Payload, str]] = []
    for segment in sorted(live, key=lambda s: (str(s.get("name")), str(s.get("uuid")))):
        uuid = segment.get("uuid")
        if segment.get("deletedAt") or uuid in managed:
            continue
        if str(segment.get("modelUuid")) not in model_names:
            continue
        name = segment.get("name")
        if not isinstance(name, str):
            continue
        if match is not None and not fnmatch.fnmatchcase(name, match):
            continue
        if segment.get("fromPlay") is True:
            skipped.append((segment, "owned by a play (fromPlay): segsync never manages it"))
            continue
        chosen.append(segment)
    return chosen, skipped


def place(
    chosen: Sequence[Payload],
    *,
    model_names: Mapping[str, str],
    directory: str,
    taken_ids: set[str],
    taken_files: set[str],
) -> list[Candidate]:
    """A spec id and file for each segment: ``<dir>/<model>/<slug>.yaml``, numbered when two
    would share a path in this run or a spec already has that id."""
    base = directory.rstrip("/")
    out: list[Candidate] = []
    for segment in chosen:
        model_uuid = str(segment.get("modelUuid"))
        model = model_names[model_uuid]
        folder = model.replace(".", "-")
        stem = f"{folder}/{slugify(str(segment.get('name')))}"
        spec_id, n = stem, 1
        while spec_id in taken_ids or f"{base}/{spec_id}.yaml" in taken_files:
            n += 1
            spec_id = f"{stem}-{n}"
        taken_ids.add(spec_id)
        out.append(Candidate(segment, model, model_uuid, spec_id, f"{base}/{spec_id}.yaml"))
    return out


def fields_of(segment: Mapping[str, Any], uuid_to_id: Mapping[str, str]) -> Payload:
    """A live segment's managed fields as its spec holds them (references by spec id)."""
    return from_wire(canonical_managed(segment), uuid_to_id=uuid_to_id)


def render_specs(
    placed: Sequence[Candidate], uuid_to_id: dict[str, str]
) -> tuple[dict[str, tuple[Candidate, bytes, LoadedSpec]], list[tuple[Candidate, str]]]:
    """Each candidate's spec file, parsed back: ``(spec id -> (candidate, bytes, spec),
    [(candidate, why it is skipped)])``. A spec that does not validate, does not read back the
    same or would overwrite a file drops out, and so do references to it: they are written
    again as raw UUIDs (``uuid_to_id`` loses the dropped ones)."""
    from segsync.specs import parse_spec

    dropped: list[tuple[Candidate, str]] = []
    todo = list(placed)
    while True:
        rendered: dict[str, tuple[Candidate, bytes, LoadedSpec]] = {}
        round_dropped: list[tuple[Candidate, str]] = []
        for c in todo:
            fields = fields_of(c.segment, uuid_to_id)
            data = spec_text(fields, c.model).encode("utf-8")
            spec, errors, _ = parse_spec(data, c.file, c.spec_id)
            if spec is None or errors:
                reason = errors[0].message if errors else "it does not read back"
                round_dropped.append((c, f"its fields do not pass segsync's validation: {reason}"))
            elif spec.managed != fields:
                round_dropped.append((c, "its fields do not read back the same from a spec file"))
            elif os.path.exists(c.file):
                round_dropped.append((c, f"{c.file} exists; segsync never overwrites a file"))
            else:
                rendered[c.spec_id] = (c, data, spec)
        if not round_dropped:
            return rendered, dropped
        dropped += round_dropped
        for c, _ in round_dropped:
            uuid_to_id.pop(str(c.segment["uuid"]), None)
        gone = {c.spec_id for c, _ in round_dropped}
        todo = [c for c in todo if c.spec_id not in gone]
