"""Building blocks of the emulator's request checks: value checks and the wording of problems.

A *check* takes a value and the path where it was found (``filter.groups[0].conditions[1]
.value``) and reports each problem to a :data:`Report` callback, so that every problem of a body
is found in one pass. The checks here know JSON types, not the Cargo filter schema, which is
tabulated from them in :mod:`segsync.emulator.filters`.

Written for the emulator alone: it imports nothing of segsync's own modules (the emulator is an
independent witness of segsync's payloads).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, TypeGuard

Report = Callable[[str, str], None]
"""Receives one problem: the path of the offending key or value, and the message."""

Check = Callable[[Any, str, Report], None]
"""Checks one value found at a path and reports each of its problems."""

# --------------------------------------------------------------------------- wording


def describe(value: Any) -> str:
    """A JSON value named in a message: ``the string 'x'``, ``the number 3``, ``an object``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def shown(value: Any) -> str:
    """A string quoted as it was given; any other value described."""
    return repr(value) if isinstance(value, str) else describe(value)


def closest(word: Any, choices: Sequence[str]) -> str | None:
    """The choice ``word`` most likely misspells (close spelling, or another letter case)."""
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if close:
        return close[0]
    return next((c for c in choices if c.lower() == word.lower()), None)


def did_you_mean(word: Any, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``word``, else ``""``."""
    close = closest(word, choices)
    return f" (did you mean '{close}'?)" if close else ""


# --------------------------------------------------------------------------- value checks

_UUID4 = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
)
# A date, or a date-time with an optional zone; fullmatch only, ASCII digits only.
_DATE = re.compile(
    r"(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})"
    r"(?:[T ](?P<H>[0-9]{2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:\.[0-9]{1,9})?)?"
    r"(?:Z|[+-](?P<zh>[0-9]{2})(?::?(?P<zm>[0-9]{2}))?)?)?"
)


def is_uuid4(value: Any) -> TypeGuard[str]:
    """Whether ``value`` is a version-4 UUID string, as Cargo issues them (nothing around it)."""
    return isinstance(value, str) and _UUID4.fullmatch(value) is not None


def uuid4_problem(value: Any) -> str | None:
    return None if is_uuid4(value) else f"expected a version-4 UUID, got {describe(value)}"


def _text_problem(value: Any) -> str | None:
    return None if isinstance(value, str) else f"expected a string, got {describe(value)}"


def _name_problem(value: Any) -> str | None:
    if isinstance(value, str) and not value.strip():
        return "must be a non-empty string"
    return _text_problem(value)


def _number_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number, got {describe(value)}"
    if not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    return None


def _date_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected an ISO-8601 date string, got {describe(value)}"
    match = _DATE.fullmatch(value)
    if match is None:
        return f"{value!r} is not an ISO-8601 date (YYYY-MM-DD, or a date-time)"
    part = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    try:
        date(part["y"], part["m"], part["d"])
    except ValueError:
        return f"{value!r} is not a real date (no such day in the calendar)"
    if (
        part.get("H", 0) > 23
        or part.get("M", 0) > 59
        or part.get("S", 0) > 59
        or part.get("zh", 0) > 23
        or part.get("zm", 0) > 59
    ):
        return f"{value!r} is not a real time of day"
    return None


def scalar(problem: Callable[[Any], str | None]) -> Check:
    """A check of one value on its own: ``problem`` says what is wrong with it, or None."""

    def check(value: Any, where: str, report: Report) -> None:
        message = problem(value)
        if message is not None:
            report(where, message)

    return check


def one_of(*choices: str) -> Check:
    """A value that must be one of ``choices`` (with a "did you mean" for a near miss)."""
    quoted = ", ".join(f"'{c}'" for c in choices)

    def problem(value: Any) -> str | None:
        if isinstance(value, str) and value in choices:
            return None
        return f"{shown(value)} is not one of {quoted}{did_you_mean(value, choices)}"

    return scalar(problem)


def list_of(item: Check, *, nonempty: bool = False) -> Check:
    """A list whose every item passes ``item`` (paths ``where[i]``)."""

    def check(value: Any, where: str, report: Report) -> None:
        if not isinstance(value, list):
            report(where, f"expected a list, got {describe(value)}")
            return
        if nonempty and not value:
            report(where, "must not be an empty list")
        for i, entry in enumerate(value):
            item(entry, f"{where}[{i}]", report)

    return check


TEXT = scalar(_text_problem)
NAME = scalar(_name_problem)  # a non-empty string: slugs, property names, SQL
NUMBER = scalar(_number_problem)  # a JSON number: never a boolean, never a quoted number
DATE = scalar(_date_problem)
UUID4 = scalar(uuid4_problem)
