"""Everything segsync shows: a plan in four formats, apply's progress, the state, errors.

- ``common``: the action symbols, the summary line, filters and values in words
- ``text``, ``markdown``, ``machine`` (json and github): one renderer per plan format
- ``progress``: apply's result lines and summary
- ``state``: ``segsync state list`` / ``show``
- ``errors``: error lines, spec errors and the validate report
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

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

RENDERERS: Final[dict[str, Callable[..., str]]] = {
    "text": render_text,
    "markdown": render_markdown,
    "json": render_json,
    "github": render_github,
}


def render(plan: Plan, fmt: str, *, color: bool = False) -> str:
    """``plan`` in ``fmt`` (text, markdown, json or github)."""
    return RENDERERS[fmt](plan, color=color)


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
