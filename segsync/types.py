"""Plain types and value rules every stage shares: one place, so no stage defines them again.

- ``Payload``: a JSON object as Cargo sends and receives it.
- ``Path``: where a value sits in a spec or a filter, as a tuple of keys and list indexes
  (``("filter", "groups", 0, "conditions", 1, "operator")``); :func:`dotted` shows it.
- :func:`is_uuid4`: the check of user-supplied UUIDs (Cargo's documented v4 pattern), and
  :func:`is_uuid`, for UUIDs Cargo issued (any version); one pattern serves both.
"""

from __future__ import annotations

import re
from typing import Any

Payload = dict[str, Any]
Path = tuple[str | int, ...]

#: A UUID; the groups are its version digit and its variant digit. No anchors: it is always used
#: with ``fullmatch``, so a trailing newline is never accepted.
UUID_PATTERN = (
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-([0-9a-fA-F])[0-9a-fA-F]{3}-([0-9a-fA-F])[0-9a-fA-F]{3}"
    r"-[0-9a-fA-F]{12}"
)
_UUID = re.compile(UUID_PATTERN)


def is_uuid(value: object) -> bool:
    """True when ``value`` is a string that is exactly a UUID (any version), nothing around it."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def is_uuid4(value: object) -> bool:
    """True when ``value`` is exactly a version-4 UUID, as Cargo documents its ``string<uuid>``
    fields (version digit 4, variant 8, 9, a or b)."""
    match = _UUID.fullmatch(value) if isinstance(value, str) else None
    return match is not None and match.group(1) == "4" and match.group(2) in "89abAB"


def dotted(path: Path) -> str:
    """``filter.groups[0].conditions[1].operator`` for a path tuple."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
