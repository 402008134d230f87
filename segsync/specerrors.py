"""Pydantic's validation errors of a spec, as :class:`SpecError` values with their places.

Each error gets the file, line and column of the offending key or value, a message in the
project's words (with "did you mean" for a misspelt key or literal), and its field as a dotted
path. A misspelt key also makes the right one missing: only the misspelling is reported.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from segsync.errors import SpecError
from segsync.spec import (
    ERROR_TYPE,
    TAG_MODELS,
    TAGS,
    VALUE_KEYS,
    Filter,
    FrequencyCount,
    Group,
    Period,
    SortEntry,
    SpecModel,
    did_you_mean,
    quoted_list,
    shown_word,
)
from segsync.types import Path, dotted
from segsync.yamlfile import Document, describe

# Models found at a location by the name of the field that holds them (see _model_at).
_FIELD_MODELS: dict[str, type[BaseModel]] = {
    "filter": Filter, "groups": Group, "sort": SortEntry, "period": Period,
}

_KEY_HINTS = {
    "conditions@Filter": "conditions belong inside a group: filter.groups[].conditions",
    "columnSlugs@SpecModel": "segsync does not manage it; remove it",
    "field": "did you mean 'columnSlug'?",
    "column": "did you mean 'columnSlug'?",
}


def _model_at(raw_loc: Sequence[str | int], root: type[BaseModel]) -> type[BaseModel]:
    """The model that holds the last key of ``raw_loc`` (pydantic's loc, tags included)."""
    for part in reversed(raw_loc[:-1]):
        if isinstance(part, int):
            continue
        if part in TAG_MODELS:
            return TAG_MODELS[part]
        if part in _FIELD_MODELS:
            return _FIELD_MODELS[part]
        if part == "frequency":
            return FrequencyCount
        break
    return root if len(raw_loc) == 1 else BaseModel


def _value_at(value: Any, path: Path) -> Any:
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _unknown_key(key: str, model: type[BaseModel], parent: Any) -> str:
    allowed = list(model.model_fields)
    hint = _KEY_HINTS.get(f"{key}@{model.__name__}") or _KEY_HINTS.get(key)
    if hint:
        return f"unknown key '{key}' ({hint})"
    suggestion = did_you_mean(key, allowed)
    if suggestion:
        return f"unknown key '{key}'{suggestion}"
    if key in VALUE_KEYS and not VALUE_KEYS & set(allowed):
        op = parent.get("operator") if isinstance(parent, dict) else None
        return f"unknown key '{key}' (operator '{op}' takes no value)"
    return f"unknown key '{key}'; expected one of {', '.join(allowed)}"


def _message(err: Mapping[str, Any], model: type[BaseModel]) -> tuple[str, Path, bool]:
    """(message, extra path below loc, whether the place is the key rather than the value)."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == ERROR_TYPE:
        sub = tuple(int(p) if p.isdigit() else p for p in ctx["sub"].split(".") if p)
        return ctx["message"], sub, False
    if kind == "extra_forbidden":
        return "", (), True  # filled in by the caller, which knows the key
    if kind == "missing":
        return "", (), False
    if kind == "literal_error":
        expected = re.findall(r"'([^']*)'", ctx.get("expected", ""))
        shown = shown_word(value)
        return (
            f"{shown} is not one of {quoted_list(expected)}{did_you_mean(value, expected)}",
            (),
            False,
        )
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, got {describe(value)}", (), False
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {describe(value)}", (), False
    if kind in ("too_short",):
        return "must not be an empty list", (), False
    if kind == "string_type":
        hint = " (quote it)" if isinstance(value, (int, float, bool)) else ""
        return f"expected a string, got {describe(value)}{hint}", (), False
    if kind == "float_type":
        return f"expected a number, got {describe(value)}", (), False
    if kind == "finite_number":
        return f"expected a finite number, got {value!r}", (), False
    if kind in ("string_too_short", "string_pattern_mismatch"):
        return "must not be empty", (), False
    if kind in ("bool_type",):
        return f"expected true or false, got {describe(value)}", (), False
    return str(err.get("msg", kind)), (), False


def to_spec_errors(
    exc: ValidationError, doc: Document, file: str, root: type[BaseModel] = SpecModel
) -> list[SpecError]:
    """Every error of ``exc`` (raised validating ``doc`` of ``file`` as ``root``) with its place."""
    found: list[SpecError] = []
    errors = exc.errors(include_url=False)
    # A misspelt key also makes the right one missing: report the misspelling only.
    suggested = set()
    for err in errors:
        if err["type"] == "extra_forbidden":
            raw_loc = tuple(err["loc"])
            model = _model_at(raw_loc, root)
            close = difflib.get_close_matches(str(raw_loc[-1]), list(model.model_fields), 1, 0.6)
            if close:
                suggested.add((*raw_loc[:-1], close[0]))
    for err in errors:
        raw_loc = tuple(err["loc"])
        if err["type"] == "missing" and raw_loc in suggested:
            continue
        loc: Path = tuple(p for p in raw_loc if not (isinstance(p, str) and p in TAGS))
        message, sub, at_key = _message(err, _model_at(raw_loc, root))
        if err["type"] == "extra_forbidden":
            message = _unknown_key(
                str(loc[-1]), _model_at(raw_loc, root), _value_at(doc.value, loc[:-1])
            )
        if err["type"] == "missing":
            message = f"missing required key '{loc[-1]}'"
            loc, at_key = loc[:-1], False
        where = (*loc, *sub)
        mark = doc.mark_of(where, key=at_key)
        found.append(
            SpecError(message, path=file, line=mark.line, column=mark.column, field=dotted(where))
        )
    return found


