"""Errors for people and for CI: the one place that turns segsync's errors into lines.

``cli.py`` prints what these functions return: ``error: …`` for any failure, every spec error
with its place (``file:line:col: field: message``), and the same errors as GitHub annotations
or as a JSON report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from segsync.errors import SegsyncError, SpecError, SpecWarning


def error_line(exc: SegsyncError | str) -> str:
    """``error: <message>`` (with its place, when the error has one)."""
    return f"error: {exc}"


def spec_error_lines(errors: Sequence[SpecError], fmt: str = "text") -> list[str]:
    """One line per spec error: ``file:line:col: field: message``, or with ``fmt="github"`` a
    workflow ``::error`` annotation on that line."""
    if fmt != "github":
        return [f"warning: {e}" if isinstance(e, SpecWarning) else str(e) for e in errors]
    from segsync.render.machine import github_annotation  # (it imports the plan's types)

    return [
        github_annotation(
            "warning" if isinstance(e, SpecWarning) else "error",
            f"{e.field}: {e.message}" if e.field else e.message,
            file=e.path, line=e.line, col=e.column,
        )
        for e in errors
    ]


def _spec_error_dicts(errors: Sequence[SpecError]) -> list[dict[str, Any]]:
    return [
        {"file": e.path, "line": e.line, "column": e.column, "field": e.field,
         "message": e.message}
        for e in errors
    ]


def validation_report(
    errors: Sequence[SpecError], total: int, fmt: str, warnings: Sequence[SpecError] = ()
) -> str:
    """``segsync validate``'s whole output: the errors and warnings, then ``N specs, M errors``
    (and ``, K warnings`` when there are some) in text and github, or one JSON object (json).
    Ends with a newline."""
    summary = f"{total} spec{'s' if total != 1 else ''}, {len(errors)} error" + (
        "s" if len(errors) != 1 else ""
    )
    if warnings:
        summary += f", {len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
    if fmt == "json":
        report = {"specs": total, "valid": not errors, "errors": _spec_error_dicts(errors),
                  "warnings": _spec_error_dicts(warnings)}
        return json.dumps(report, indent=2, sort_keys=True) + "\n"
    lines = spec_error_lines(sorted([*errors, *warnings], key=SpecError.sort_key), fmt)
    if fmt == "github":
        from segsync.render.machine import github_annotation

        lines.append(github_annotation("notice", summary, title="segsync validate"))
    else:
        lines.append(summary)
    return "\n".join(lines) + "\n"
