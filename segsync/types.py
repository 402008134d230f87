"""Plain types and value rules every stage shares: one place, so no stage defines them again.

- ``Payload``: a JSON object as Cargo sends and receives it.
- ``Path``: where a value sits in a spec or a filter, as a tuple of keys and list indexes
  (``("filter", "groups", 0, "conditions", 1, "operator")``); :func:`dotted` shows it.
- :func:`is_uuid4`: the one UUID check of user-supplied UUIDs (Cargo's documented v4 pattern).
"""

from __future__ import annotations

import re
from typing import Any

Payload = dict[str, Any]
Path = tuple[str | int, ...]

#: Cargo documents ``string<uuid>`` fields with this v4-only pattern (no anchors: it is always
#: used with ``fullmatch``, so a trailing newline is never accepted).
UUID4_PATTERN = (
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
)
_UUID4 = re.compile(UUID4_PATTERN)


def is_uuid4(value: object) -> bool:
    """True when ``value`` is a string that is exactly a version-4 UUID, nothing before or after."""
    return isinstance(value, str) and _UUID4.fullmatch(value) is not None


def dotted(path: Path) -> str:
    """``filter.groups[0].conditions[1].operator`` for a path tuple."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
