"""Everything segsync shows: a plan in four formats, apply's progress, the state, errors.

- ``common``: the action symbols, the summary line, filters and values in words
- ``text``, ``markdown``, ``machine`` (json and github): one renderer per plan format
- ``progress``: apply's result lines and summary
- ``state``: ``segsync state list`` / ``show``
- ``errors``: error lines, spec errors and the validate report
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # at run time each name is imported on first use (see __getattr__)
    from collections.abc import Callable

    from segsync.plan import Plan
    from segsync.render.common import describe_condition, describe_filter, summary_line
    from segsync.render.machine import (
        github_annotation,
        github_escape_data,
        github_escape_property,
        plan_to_json,
        render_github,
        render_json,
    )
    from segsync.render.markdown import md_escape, render_markdown
    from segsync.render.text import render_text

    RENDERERS: dict[str, Callable[..., str]]

#: Where each name lives: importing ``segsync.render.errors`` (every command's error lines)
#: then does not import the plan renderers.
_HOMES = {
    "describe_condition": "common", "describe_filter": "common", "summary_line": "common",
    "github_annotation": "machine", "github_escape_data": "machine",
    "github_escape_property": "machine", "plan_to_json": "machine", "render_github": "machine",
    "render_json": "machine", "md_escape": "markdown", "render_markdown": "markdown",
    "render_text": "text",
}


def __getattr__(name: str) -> Any:
    if name == "RENDERERS":
        return {"text": __getattr__("render_text"), "markdown": __getattr__("render_markdown"),
                "json": __getattr__("render_json"), "github": __getattr__("render_github")}
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def render(plan: Plan, fmt: str, *, color: bool = False) -> str:
    """``plan`` in ``fmt`` (text, markdown, json or github)."""
    renderer: Callable[..., str] = __getattr__("RENDERERS")[fmt]
    return renderer(plan, color=color)


__all__ = [
    "RENDERERS",
    "describe_condition",
    "describe_filter",
    "github_annotation",
    "github_escape_data",
    "github_escape_property",
    "md_escape",
    "plan_to_json",
    "render",
    "render_github",
    "render_json",
    "render_markdown",
    "render_text",
    "summary_line",
]
