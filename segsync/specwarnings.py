"""Warnings about a valid spec that probably does not say what its author meant.

They never fail a run (unless ``--strict`` turns warnings into errors): each of them can be
intended, but each is far more often a slip that Cargo would take silently.

- ``values`` given as ONE string that holds a comma (``values: FR, DE``): YAML reads that as
  the single value ``"FR, DE"``, which matches only that exact text, where the list
  ``[FR, DE]`` was probably meant. The check runs on the canonical form (``spec.managed``),
  where a single string has already become a one-element list, so it cannot tell
  ``values: "FR, DE"`` from ``values: ["FR, DE"]``: both warn. A value that really holds a
  comma (``"Acme, Inc."``) warns too; that is the price of catching the common slip.
- A ``name`` with leading or trailing white space, control characters, bidirectional
  override or isolate characters (U+202A-U+202E, U+2066-U+2069, which make a name display
  differently from what it is) or zero-width characters (U+200B-U+200D, U+2060, U+FEFF, which
  make two names that look alike differ).
- A condition that repeats, word for word in canonical form, an earlier condition of the same
  group: under ``and`` and ``or`` alike it adds nothing, and is usually a copy that was meant
  to be edited.

Messages are one line, say why the finding matters and how to fix it, and show every
non-printable character as ``\\uXXXX``, never raw. Pure: no I/O, no printing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from segsync.canonical import conditions, dumps_compact
from segsync.types import Path, dotted

if TYPE_CHECKING:
    from segsync.specs import LoadedSpec

#: Characters that reorder how text is displayed: embeddings/overrides and isolates.
BIDI_CONTROLS: Final = frozenset(
    chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
)
#: Characters that take no room: zero-width space, non-joiner, joiner, word joiner, BOM.
ZERO_WIDTH: Final = frozenset({"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"})
#: A top-level condition's path: ``("filter", "groups", g, "conditions", c)``.
_GROUP_CONDITION_LENGTH: Final = 5
#: A list item that YAML keeps a string when written bare in a flow list.
_BARE = re.compile(r"[A-Za-z][A-Za-z0-9 _.@/&+-]*")
_YAML_WORDS: Final = frozenset({"true", "false", "null", "yes", "no", "on", "off"})


@dataclass(frozen=True)
class SpecWarning:
    """A finding about ``spec`` at ``path`` (a value in the spec file) that never fails a run."""

    spec: LoadedSpec
    path: Path
    message: str


def shown(text: str) -> str:
    """``text`` quoted for a one-line message: each non-printable character as ``\\uXXXX``."""
    return "'" + "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text) + "'"


def _codes(chars: set[str]) -> str:
    return ", ".join(f"\\u{ord(ch):04x}" for ch in sorted(chars))


def _name_warnings(name: str) -> list[str]:
    if name.isprintable() and name == name.strip():
        return []  # control, bidirectional and zero-width characters are all unprintable
    found: list[str] = []
    if name != name.strip():
        found.append(
            f"name {shown(name)} starts or ends with white space: Cargo shows and compares "
            "names exactly, so it looks like a name it is not; remove the spaces"
        )
    control = {ch for ch in name if unicodedata.category(ch) == "Cc"}
    if control:
        found.append(
            f"name {shown(name)} contains the control character(s) {_codes(control)}: they are "
            "invisible or break the line where the name is shown; remove them"
        )
    bidi = {ch for ch in name if ch in BIDI_CONTROLS}
    if bidi:
        found.append(
            f"name {shown(name)} contains the bidirectional control character(s) "
            f"{_codes(bidi)}: they make the name display in another order than it is written, "
            "which can disguise it; remove them"
        )
    zero = {ch for ch in name if ch in ZERO_WIDTH}
    if zero:
        found.append(
            f"name {shown(name)} contains the zero-width character(s) {_codes(zero)}: they are "
            "invisible, so the name differs from one that looks the same; remove them"
        )
    return found


def _as_list(parts: list[str]) -> str:
    """``[FR, DE]``: a YAML flow list, an item bare only when YAML keeps it a plain string."""
    items = [
        p if _BARE.fullmatch(p) and p.lower() not in _YAML_WORDS else
        '"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for p in parts
    ]
    return "[" + ", ".join(shown(i)[1:-1] for i in items) + "]"


def _comma_warning(cond: dict[str, Any]) -> str | None:
    values = cond.get("values")
    if not (isinstance(values, list) and len(values) == 1 and isinstance(values[0], str)):
        return None
    text = values[0]
    if "," not in text:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    fix = (
        f"to match any of them, write a list: values: {_as_list(parts)}" if len(parts) > 1 else
        "remove the comma if it is a typo"
    )
    return (
        f"values is the one string {shown(text)}, which matches only that exact text; a comma "
        f"does not separate values: {fix} (a value that really holds a comma can stay)"
    )


def spec_warnings(spec: LoadedSpec) -> list[SpecWarning]:
    """The warnings of one spec: its name first, then its filter in document order."""
    found: list[SpecWarning] = []
    name = spec.managed.get("name")
    if isinstance(name, str):
        found.extend(SpecWarning(spec, ("name",), m) for m in _name_warnings(name))
    # Conditions that could be equal (same group, kind, column and operator), in document
    # order: whole conditions are compared only among those (most have none).
    alike: dict[tuple[Any, ...], list[tuple[Path, dict[str, Any]]]] = {}
    for path, cond in conditions(spec.managed.get("filter")):
        if len(path) == _GROUP_CONDITION_LENGTH:
            rough = (path[:-1], cond.get("kind"), cond.get("columnSlug"), cond.get("operator"))
            try:
                earlier = alike.setdefault(rough, [])
            except TypeError:  # a list where a name belongs (an entry from a state file)
                earlier = alike.setdefault(tuple(map(repr, rough)), [])
            first: Path = path
            if earlier:
                text = dumps_compact(cond)
                first = next((p for p, c in earlier if dumps_compact(c) == text), path)
            earlier.append((path, cond))
            if first != path:
                found.append(SpecWarning(spec, path, (
                    f"this condition repeats {dotted(first)} of the same group: it changes "
                    "nothing (under 'and' or 'or'), and is often a copy meant to be edited; "
                    "change it or delete it"
                )))
        if cond.get("kind") == "string":
            message = _comma_warning(cond)
            if message is not None:
                found.append(SpecWarning(spec, (*path, "values"), message))
    return found
