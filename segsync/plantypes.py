"""The plan as a value: what each action is, and the whole plan with its counts.

``plan.py`` makes these values; renderers print them; apply executes them. Nothing here does
I/O or decides anything.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Final, Literal

from segsync.diff import FieldChange
from segsync.types import Payload

if TYPE_CHECKING:
    from segsync.specs import LoadedSpec
    from segsync.state import Entry

ActionKind = Literal[
    "create", "adopt", "update", "replace", "delete", "moved", "recreate", "orphan",
    "unchanged", "dedupe",
]

#: Every kind, in the order used to sort actions of the same dependency rank and by the summaries.
KINDS: Final[tuple[ActionKind, ...]] = (
    "create", "adopt", "recreate", "replace", "moved", "update", "unchanged", "delete",
    "dedupe", "orphan",
)
KIND_ORDER: Final[dict[str, int]] = {kind: i for i, kind in enumerate(KINDS)}

#: The keys of ``Plan.summary`` (and of the JSON ``summary`` object), in this order.
SUMMARY_KEYS: Final[tuple[ActionKind, ...]] = (
    "create", "update", "replace", "delete", "moved", "recreate", "unchanged", "orphan",
    "adopt", "dedupe",
)

#: Kinds that change something in Cargo or in the state; ``unchanged`` and ``orphan`` do not.
CHANGE_KINDS: Final[frozenset[str]] = frozenset(
    {"create", "adopt", "update", "replace", "delete", "moved", "recreate", "dedupe"}
)

#: Kinds whose spec filter is sent to Cargo, so a preview can tell what it would match.
PREVIEW_KINDS: Final[frozenset[str]] = frozenset({"create", "update", "replace", "recreate"})

class WarnCode(enum.Enum):
    """What a plan warning is about; the text shown with it is for people."""

    INTERRUPTED = "interrupted"  # an action of an earlier run is under way
    MODEL_CHANGE = "model-change"  # the segment must be replaced (needs --allow-replace)
    PROTECTED_REPLACE = "protected-replace"  # a replace that apply refuses
    DELETED_OUTSIDE = "deleted-outside"  # Cargo no longer has the segment
    NEVER_CREATED = "never-created"  # an entry whose create never finished
    PROTECTED_KEPT = "protected-kept"  # a delete that --prune would do, but protect forbids
    BLOCKED = "blocked"  # apply fails this action (see Action.blocked)


@dataclass(frozen=True)
class Warn:
    """One warning of an action: its code, and the sentence every renderer shows."""

    code: WarnCode
    text: str

    def __str__(self) -> str:
        return self.text


MODEL_CHANGE_TEXT: Final = (
    "the API cannot move a segment to another model: apply deletes it and creates a new one "
    "(needs --allow-replace)"
)


@dataclass(frozen=True)
class Preview:
    """How many records a created or updated segment would hold, from Cargo's fetch endpoint.

    ``count`` is None when it cannot be asked yet (a referenced segment is not created);
    ``approximate`` when Cargo said it was still refreshing its data.
    """

    count: int | None
    approximate: bool = False
    note: str | None = None


@dataclass(frozen=True)
class Action:
    """What happens to one spec id.

    ``changes`` holds field-level old -> new for update, moved and replace; ``spec`` is None
    for delete/orphan/dedupe, ``entry`` is None for create and adopt. ``creates_segment``:
    apply sends a create (create, recreate, and a replace whose model changed). ``blocked``:
    why apply must fail this action without sending anything (known only against Cargo).
    ``adopt`` records ``uuid``, a live segment with the spec's name and fields, without a
    request; ``dedupe`` deletes ``uuid``, a duplicate of the managed segment ``id``.
    """

    kind: ActionKind
    id: str
    name: str
    file: str | None
    uuid: str | None
    model: str | None
    changes: tuple[FieldChange, ...] = ()
    moved_from: str | None = None
    spec: LoadedSpec | None = None
    entry: Entry | None = None
    reason: str | None = None
    warnings: tuple[Warn, ...] = ()
    preview: Preview | None = None  # with `plan --preview`: what the new filter would match
    creates_segment: bool = False
    blocked: str | None = None

    @property
    def key(self) -> str:
        """Unique among a plan's actions (a spec may have an update and a dedupe)."""
        return f"{self.id}\x00duplicate\x00{self.uuid}" if self.kind == "dedupe" else self.id


@dataclass(frozen=True)
class Duplicate:
    """A live segment that segsync does not manage, with a managed segment's model and name
    (a lost or stale state, a create Cargo committed late). ``same_fields``: its managed
    fields equal the managed segment's, so ``apply --delete-duplicates`` may delete it."""

    of: str  # the managed spec id
    uuid: str
    name: str
    model: str
    created_at: str | None
    same_fields: bool
    note: str | None = None  # why --delete-duplicates leaves it, when it does


@dataclass(frozen=True)
class Plan:
    """The actions, ordered for execution (see ``make_plan``), with their counts."""

    actions: tuple[Action, ...]
    prune: bool = False
    refreshed: bool = False
    duplicates: tuple[Duplicate, ...] = ()  # left in Cargo by this plan (see Duplicate)
    #: ``--target`` patterns: a partial plan of those specs and the specs they reference.
    targets: tuple[str, ...] = ()
    #: How many specs the partial plan covers, of how many.
    covered: tuple[int, int] = (0, 0)

    @cached_property
    def _counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        for action in self.actions:
            counts[action.kind] += 1
        return counts

    def count(self, kind: ActionKind) -> int:
        return self._counts[kind]

    @property
    def summary(self) -> dict[str, int]:
        """Counts per kind: create, update, replace, delete, moved, recreate, unchanged, orphan."""
        return {kind: self._counts[kind] for kind in SUMMARY_KEYS}

    @property
    def has_changes(self) -> bool:
        """True when apply would do anything (every kind but ``unchanged`` and ``orphan``)."""
        return any(self._counts[kind] for kind in CHANGE_KINDS)

    def changes(self) -> tuple[Action, ...]:
        """The actions that are neither ``unchanged`` nor ``orphan``, in plan order."""
        return tuple(a for a in self.actions if a.kind in CHANGE_KINDS)


@dataclass(frozen=True)
class Cargo:
    """What Cargo holds, as refresh read it: ``models`` maps a model as written in a spec to
    the live model; ``live`` maps a UUID to its live segment (play-owned ones included)."""

    models: Mapping[str, Payload]
    live: Mapping[str, Payload]
