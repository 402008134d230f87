"""Reading Cargo's answers for people: error bodies, ``Retry-After``, the missing permission,
and the token kept out of every message."""

from __future__ import annotations

import email.utils
import json
import math
import urllib.parse
from datetime import timezone

import httpx

#: Tokens shorter than this are not masked inside messages (see :func:`redact`).
MIN_SECRET = 6


def redact(text: str, token: str) -> str:
    """Replace each form of ``token`` in ``text`` (plain, repr-escaped, URL-quoted) by ``***``.

    A token of fewer than ``MIN_SECRET`` characters is no secret worth the garbling: masking
    every ``t`` of a message would make it unreadable and reveal the token besides.
    """
    if len(token) < MIN_SECRET:
        return text
    forms = {
        token,
        repr(token)[1:-1],
        repr(token.encode("utf-8", "backslashreplace"))[2:-1],
        urllib.parse.quote(token, safe=""),
    }
    for form in sorted((f for f in forms if f), key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait for a ``Retry-After`` value (delta-seconds or HTTP date); None if unusable.

    ``now`` is the wall-clock time (``time.time()``) an HTTP date is measured against.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_fields(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    """``(reason, errorMessage, excerpt of a body that is not the documented JSON)``."""
    raw = response.content
    if not raw.strip():
        return None, None, None
    try:
        data = json.loads(raw)
    except ValueError:
        return None, None, one_line(raw.decode("utf-8", "replace"))
    if not isinstance(data, dict):
        return None, None, one_line(raw.decode("utf-8", "replace"))
    reason = data.get("reason")
    message = data.get("errorMessage")
    return (
        one_line(reason, 100) if isinstance(reason, str) and reason.strip() else None,
        one_line(message, 500) if isinstance(message, str) and message.strip() else None,
        None,
    )


def scope_hint(method: str, path: str) -> str:
    if path.startswith("/storage/"):
        return "the 'storage:read' permission"
    if path == "/segmentation/segments/fetch":
        return (
            "the 'segmentation:read' permission (Cargo does not say whether previewing needs "
            "'segmentation:write' instead)"
        )
    if path.startswith("/segmentation/"):
        scope = "segmentation:read" if method == "GET" else "segmentation:write"
        return f"the '{scope}' permission"
    return "the permission to read this workspace"
