"""Workspace-aware checks of specs against the models' columns .

A spec can be valid on its own and still be wrong for the workspace: a misspelt ``columnSlug``,
a ``kind`` that differs from the column's type, a property the object column does not have.
Cargo accepts such a filter silently and then matches no records (§4.2), so segsync checks
every column a spec names against the live models before anything is sent.

Rules, for each spec whose model is known (a spec whose model did not resolve is skipped: model
resolution reports that):

- The column set of a model is ``columns`` plus ``additionalColumns``.
- Every ``columnSlug`` of a filter condition (nested ``propertyConditions`` and ``occurrence``
  conditions included) exists on its model: the ``relatedModelUuid``'s model when the condition
  has one, the occurrence's related model for an occurrence's inner conditions, the parent's
  model for ``propertyConditions`` (they test the parent's column). An unknown or removed related
  model is a problem, and the conditions that depend on it are not checked further.
- A column-based condition's ``kind`` equals the column's ``type``, except ``objectProperty``:
  it targets an ``object`` column, or an ``array`` column inside ``matchConditions``; its
  ``propertyName`` must be one of the column's ``properties`` when the column lists them.
- ``sort[].columnSlug`` and each ``trackingColumnSlugs`` entry exist on the spec's own model.
- With ``live_segments``, a raw ``segmentUuid`` names a live segment (not removed, not owned by
  a play) of the spec's model. ``segment: <spec id>`` references are checked
  by ``specs`` and are not looked at here.

Every problem is reported at once, in the order of the specs given, then filter, sort and
``trackingColumnSlugs``, each in document order. A path points at the offending value, so the
caller can show the file's line. Pure: no I/O; the caller reads the models from Cargo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from segsync.canonical import conditions
from segsync.spec import did_you_mean
from segsync.types import Path, Payload

if TYPE_CHECKING:
    from segsync.specs import LoadedSpec

#: Condition kinds that test a column (``columnSlug`` required, ``relatedModelUuid`` optional).
COLUMN_KINDS: Final = frozenset(
    {"string", "number", "date", "boolean", "object", "array", "vector", "any", "objectProperty"}
)
#: Where a condition path's parent ends: a top-level condition is
#: ``("filter", "groups", g, "conditions", c)``; nested ones add ``(key, index)`` pairs.
_TOP_LEVEL_LENGTH: Final = 5


@dataclass(frozen=True)
class ColumnProblem:
    """A column a spec names that its model does not have, or has with another type.

    ``path`` points at the offending value in the spec file (``("sort", 0, "columnSlug")``);
    ``message`` is one line that names the model and, when one is close, the column meant.
    """

    spec: LoadedSpec
    path: Path
    message: str


class _Model:
    """A model's slug and column set (columns + additionalColumns, first of a slug wins)."""

    def __init__(self, model: Mapping[str, Any]) -> None:
        self.uuid = model.get("uuid")
        self.slug = str(model.get("slug") or model.get("uuid"))
        self.columns: dict[str, Mapping[str, Any]] = {}
        for entry in _column_entries(model):
            slug = entry.get("slug")
            if isinstance(slug, str):
                self.columns.setdefault(slug, entry)

    def unknown(self, slug: str) -> str:
        return (
            f"unknown column {_q(slug)} on model {_q(self.slug)}"
            f"{did_you_mean(slug, list(self.columns))}"
        )


def _column_entries(model: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The column objects of a model, ``columns`` first, in the order the model lists them."""
    entries: list[Mapping[str, Any]] = []
    for key in ("columns", "additionalColumns"):
        items = model.get(key)
        if isinstance(items, list):
            entries.extend(item for item in items if isinstance(item, Mapping))
    return entries


def _q(word: object) -> str:
    """``'word'`` for a message: quoted, every non-printable character shown as ``\\uXXXX``."""
    text = str(word)
    return "'" + "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text) + "'"


def _named(segment: Mapping[str, Any]) -> str:
    """`` ('Name')`` of a live segment, for a message; empty when it has no name."""
    name = segment.get("name")
    return f" ({_q(name)})" if isinstance(name, str) else ""


class _Checker:
    """The checks of one call: each model's column set built once, problems found in order."""

    def __init__(
        self,
        catalog: Mapping[str, Payload],
        live_segments: Mapping[str, Payload] | None,
    ) -> None:
        self.catalog = catalog
        self.live_segments = live_segments
        self.seen: dict[int, _Model] = {}
        self.found: list[tuple[Path, str]] = []

    def model(self, payload: Mapping[str, Any]) -> _Model:
        found = self.seen.get(id(payload))
        if found is None:
            found = self.seen[id(payload)] = _Model(payload)
        return found

    def spec(self, spec: LoadedSpec, payload: Mapping[str, Any]) -> list[tuple[Path, str]]:
        """``(path, message)`` of each problem of one spec on its model ``payload``."""
        self.found = []
        model = self.model(payload)
        self.filter(spec.managed.get("filter"), model)
        sort = spec.managed.get("sort")
        for i, entry in enumerate(sort if isinstance(sort, list) else []):
            slug = entry.get("columnSlug") if isinstance(entry, Mapping) else None
            if isinstance(slug, str) and slug not in model.columns:
                self.add(("sort", i, "columnSlug"), model.unknown(slug))
        tracking = spec.managed.get("trackingColumnSlugs")
        for i, slug in enumerate(tracking if isinstance(tracking, list) else []):
            if isinstance(slug, str) and slug not in model.columns:
                self.add(("trackingColumnSlugs", i), model.unknown(slug))
        return self.found

    def add(self, path: Path, message: str) -> None:
        self.found.append((path, message))

    def filter(self, flt: Any, own: _Model) -> None:
        # The model each condition's column (or an occurrence's inner conditions) is on, by
        # path; None when it is unknown. Parents come before their children in the walk.
        scopes: dict[Path, _Model | None] = {}
        for path, cond in conditions(flt):
            inside_match = False
            base: _Model | None = own
            if len(path) > _TOP_LEVEL_LENGTH:
                base = scopes.get(path[:-2])
                inside_match = path[-2] == "propertyConditions"
            kind = cond.get("kind")
            if kind == "segment":
                self.segment(path, cond, own)
                continue
            if base is None or (kind not in COLUMN_KINDS and kind != "occurrence"):
                scopes[path] = None
                continue
            target = self.related(path, cond, base)
            scopes[path] = target
            if target is not None and kind in COLUMN_KINDS:
                self.column(path, cond, target, inside_match=inside_match)

    def related(self, path: Path, cond: Mapping[str, Any], base: _Model) -> _Model | None:
        """The model a condition tests: its ``relatedModelUuid``'s, else ``base``."""
        uuid = cond.get("relatedModelUuid")
        if uuid is None:
            return base
        where = (*path, "relatedModelUuid")
        payload = self.catalog.get(uuid) if isinstance(uuid, str) else None
        if payload is None:
            self.add(where, f"relatedModelUuid {_q(uuid)} is not a model of this workspace; "
                     "give the uuid of the related model whose column the condition tests")
            return None
        model = self.model(payload)
        if payload.get("deletedAt") is not None:
            self.add(where, f"related model {_q(model.slug)} ({uuid}) was removed from Cargo")
            return None
        return model

    def column(
        self, path: Path, cond: Mapping[str, Any], model: _Model, *, inside_match: bool
    ) -> None:
        slug = cond.get("columnSlug")
        if not isinstance(slug, str):
            return
        column = model.columns.get(slug)
        if column is None:
            self.add((*path, "columnSlug"), model.unknown(slug))
            return
        kind = cond.get("kind")
        column_type = column.get("type")
        if not isinstance(column_type, str):
            return  # a column without a type: nothing to compare the kind with
        where = f"column {_q(slug)} of model {_q(model.slug)}"
        if kind != "objectProperty":
            if kind != column_type:
                self.add((*path, "kind"), f"kind {_q(kind)} does not match {where}, which is "
                         f"of type {_q(column_type)} (Cargo would match no records)")
            return
        targets = ("object", "array") if inside_match else ("object",)
        if column_type not in targets:
            tested = "an object or array column" if inside_match else (
                "an object column (an array column only inside matchConditions)")
            self.add((*path, "kind"), f"kind 'objectProperty' tests {tested}; {where} is of "
                     f"type {_q(column_type)} (Cargo would match no records)")
            return
        properties = column.get("properties")
        name = cond.get("propertyName")
        if isinstance(properties, list) and isinstance(name, str) and name not in properties:
            known = [str(p) for p in properties]
            listed = ", ".join(_q(p) for p in known) if known else "none"
            self.add((*path, "propertyName"), f"{where} has no property {_q(name)}"
                     f"{did_you_mean(name, known)}; its properties are {listed}")

    def segment(self, path: Path, cond: Mapping[str, Any], own: _Model) -> None:
        uuid = cond.get("segmentUuid")
        if self.live_segments is None or not isinstance(uuid, str):
            return
        where = (*path, "segmentUuid")
        found = self.live_segments.get(uuid)
        if found is None:
            self.add(where, f"no segment {uuid} in Cargo; a segment condition must name a live "
                     f"segment of model {_q(own.slug)}")
        elif found.get("deletedAt") is not None:
            self.add(where, f"segment {uuid}{_named(found)} was removed from Cargo; "
                     "reference a live segment or remove the condition")
        elif found.get("modelUuid") != own.uuid:
            other = self.catalog.get(str(found.get("modelUuid")))
            shown = self.model(other).slug if other is not None else found.get("modelUuid")
            self.add(where, f"segment {uuid}{_named(found)} is on model {_q(shown)}, "
                     f"not {_q(own.slug)}; a segment condition must name a segment of the "
                     "same model")
        elif found.get("fromPlay") is True:
            self.add(where, f"segment {uuid}{_named(found)} is owned by a play; "
                     "reference a segment that segsync or a person manages")


def check_columns(
    specs: Sequence[LoadedSpec],
    models: Mapping[str, Payload],
    catalog: Mapping[str, Payload],
    live_segments: Mapping[str, Payload] | None = None,
) -> list[ColumnProblem]:
    """Every column problem of ``specs``, in spec order, then filter, sort, tracking order.

    ``models`` maps a spec's model as written (``spec.model_ref``) to its live model object,
    as ``GET /storage/models/list`` gives it; a spec whose model is missing there is skipped
    (model resolution reports it), and so is a model that lists neither ``columns`` nor
    ``additionalColumns`` (an older shape: nothing to check against). ``catalog`` maps a model
    uuid to its model object, for ``relatedModelUuid``. ``live_segments`` maps a segment uuid to
    the segment, for raw ``segmentUuid`` references; ``None`` skips that check (a plain plan
    stays offline).
    """
    checker = _Checker(catalog, live_segments)
    problems: list[ColumnProblem] = []
    for spec in specs:
        payload = models.get(spec.model_ref)
        if payload is None or not any(
            isinstance(payload.get(key), list) for key in ("columns", "additionalColumns")
        ):
            continue
        problems.extend(ColumnProblem(spec, path, message)
                        for path, message in checker.spec(spec, payload))
    return problems


def describe_columns(model: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(slug, type, kind, properties)`` per column, as the model lists them (``columns``
    first): ``kind`` is the column's kind, ``'original'`` when it gives none; ``properties``
    are joined by ``', '`` (empty when the column lists none). For a command that shows what a
    spec may name, so nobody has to guess a column's slug or type."""
    rows: list[tuple[str, str, str, str]] = []
    for entry in _column_entries(model):
        properties = entry.get("properties")
        rows.append((
            str(entry.get("slug", "")),
            str(entry.get("type", "")),
            str(entry.get("kind") or "original"),
            ", ".join(str(p) for p in properties) if isinstance(properties, list) else "",
        ))
    return rows
