"""Spec files: strict pydantic models of a segment and of Cargo's whole filter schema.

The filter's conditions are a discriminated union with one class per (kind, operator family)
of cargo-api.md §4.3, so an invalid combination cannot be built. Before the union picks a class,
``_condition_head`` checks ``kind`` and ``operator`` and raises one clear error (with "did you
mean") instead of pydantic's list of every union member that failed.

Errors from pydantic are turned into :class:`SpecError` with the file, line and column of the
offending key or value (``_to_spec_errors``).
"""

from __future__ import annotations

import calendar
import difflib
import gc
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from segsync.errors import SpecError, ValidationFailed
from segsync.load import Document, Mark, Path_, describe, load_document

MANAGED_FIELDS = ("name", "filter", "sort", "limit", "trackingColumnSlugs")
RESERVED_NAMES = frozenset({"GENERATED_PLAY_SEGMENT"})
VALUE_KEYS = frozenset({"value", "values", "firstValue", "lastValue", "otherValue"})

UUID4_PATTERN = (
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12})$"
)
_UUID4 = re.compile(UUID4_PATTERN)
_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?\Z"
)
_SPEC_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*\Z")
_MODEL_SLUG = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)?\Z")
_SEGSYNC = "segsync"  # the type of every error raised by our own validators


def _fail(message: str, sub: str = "") -> PydanticCustomError:
    """Our own validation error; ``sub`` is a dotted path below the validated value."""
    return PydanticCustomError(_SEGSYNC, "{message}", {"message": message, "sub": sub})


def did_you_mean(word: object, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``word``, else ``""``."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    return f" (did you mean '{close[0]}'?)" if close else ""


def _quoted(choices: Sequence[str]) -> str:
    return ", ".join(f"'{c}'" for c in choices)


# --- scalar types ---------------------------------------------------------------------------


def _string(value: Any, _handler: Any) -> Any:
    if not isinstance(value, str):
        hint = " (quote it)" if isinstance(value, (int, float, bool)) else ""
        raise _fail(f"expected a string, got {describe(value)}{hint}")
    return value


def _nonempty_string(value: Any, handler: Any) -> Any:
    _string(value, handler)
    if not value.strip():
        raise _fail("must not be empty")
    return value


def _date(value: Any, handler: Any) -> Any:
    _string(value, handler)
    match = _DATE.match(value)
    if match is None:
        raise _fail(f"{value!r} is not an ISO-8601 date (expected YYYY-MM-DD or a datetime)")
    year, month, day = (int(match.group(i)) for i in (1, 2, 3))
    hour, minute, second = (int(match.group(i) or 0) for i in (4, 5, 6))
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]) or not (
        hour < 24 and minute < 60 and second < 60
    ):
        raise _fail(f"{value!r} is not a valid date")
    return value


def _uuid4(value: Any, handler: Any) -> Any:
    _string(value, handler)
    if not _UUID4.match(value):
        raise _fail(f"{value!r} is not a UUID (version 4, as Cargo issues them)")
    return value


def _spec_id(value: Any, handler: Any) -> Any:
    _string(value, handler)
    if not _SPEC_ID.match(value):
        raise _fail(
            f"{value!r} is not a valid spec id (letters, digits, '_', '-', '.', "
            "and '/' between parts)"
        )
    return value


def _model_slug(value: Any, handler: Any) -> Any:
    _string(value, handler)
    if not _MODEL_SLUG.match(value):
        raise _fail(f"{value!r} is not a model slug ('companies' or 'dataset.companies')")
    return value


def _name(value: Any, handler: Any) -> Any:
    _nonempty_string(value, handler)
    if value != value.strip():
        raise _fail("must not start or end with spaces")
    if value in RESERVED_NAMES:
        raise _fail(f"{value!r} is reserved for segments that plays own")
    return value


def _positive_int(value: Any, handler: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"expected a positive whole number, got {describe(value)}")
    if value < 1:
        raise _fail(f"must be a positive whole number, got {value}")
    return value


def _bool(value: Any, _handler: Any) -> Any:
    if not isinstance(value, bool):
        raise _fail(f"expected true or false, got {describe(value)}")
    return value


def _values(value: Any, handler: Any) -> Any:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _fail(f"expected a string or a list of strings, got {describe(value)}")
    if not value:
        raise _fail("must not be an empty list")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _fail(f"expected a string, got {describe(item)} (quote it)", str(i))
    return value


def _list_of(item_check: Any, *, nonempty: bool = False) -> Any:
    def check(value: Any, handler: Any) -> Any:
        if not isinstance(value, list):
            raise _fail(f"expected a list, got {describe(value)}")
        if nonempty and not value:
            raise _fail("must not be an empty list")
        for i, item in enumerate(value):
            try:
                item_check(item, handler)
            except PydanticCustomError as exc:
                ctx = exc.context or {}
                raise _fail(str(ctx.get("message", exc)), str(i)) from None
        return value

    return check


# Native pydantic constraints where they suffice (no Python call per value: loading 10,000
# specs stays close to parsing them); their error types are worded in _message().
Number = Annotated[float, Field(allow_inf_nan=False)]
Str = str
NonEmptyStr = Annotated[str, Field(min_length=1, pattern=r"\S")]
IsoDate = Annotated[str, WrapValidator(_date)]
Uuid4 = Annotated[str, WrapValidator(_uuid4)]
SpecId = Annotated[str, WrapValidator(_spec_id)]
ModelSlug = Annotated[str, WrapValidator(_model_slug)]
Name = Annotated[str, WrapValidator(_name)]
PositiveInt = Annotated[int, WrapValidator(_positive_int)]
Bool = Annotated[bool, WrapValidator(_bool)]
Values = Annotated[str | list[str], WrapValidator(_values)]
SlugList = Annotated[list[str], WrapValidator(_list_of(_nonempty_string))]
Conjonction = Literal["and", "or"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- conditions -------------------------------------------------------------------------------

NULL_OPS = ("isNull", "isNotNull")
EMPTY_OPS = ("isEmpty", "isNotEmpty")
STRING_VALUE_OPS = ("is", "isNot", "contains", "doesNotContain", "startsWith", "endsWith")
COMPARE_OPS = ("is", "isNot", "greaterThan", "lowerThan")


class _Column(_Model):
    columnSlug: NonEmptyStr
    relatedModelUuid: Uuid4 | None = None


class StringValuesCondition(_Column):
    kind: Literal["string"]
    operator: Literal["is", "isNot", "contains", "doesNotContain", "startsWith", "endsWith"]
    values: Values


class StringNullCondition(_Column):
    kind: Literal["string"]
    operator: Literal["isNull", "isNotNull", "isEmpty", "isNotEmpty"]


class NumberValueCondition(_Column):
    kind: Literal["number"]
    operator: Literal["is", "isNot", "greaterThan", "lowerThan"]
    value: Number


class NumberBetweenCondition(_Column):
    kind: Literal["number"]
    operator: Literal["between"]
    firstValue: Number
    lastValue: Number


class NumberNullCondition(_Column):
    kind: Literal["number"]
    operator: Literal["isNull", "isNotNull"]


class DateValueCondition(_Column):
    kind: Literal["date"]
    operator: Literal["is", "isNot", "greaterThan", "lowerThan"]
    value: IsoDate


class DateBetweenCondition(_Column):
    kind: Literal["date"]
    operator: Literal["between"]
    firstValue: IsoDate
    lastValue: IsoDate


class DateNullCondition(_Column):
    kind: Literal["date"]
    operator: Literal["isNull", "isNotNull"]


class BooleanCondition(_Column):
    kind: Literal["boolean"]
    operator: Literal["isTrue", "isFalse", "isNull", "isNotNull"]


class ObjectNullCondition(_Column):
    kind: Literal["object", "array"]
    operator: Literal["isNull", "isNotNull"]


class VectorNullCondition(_Column):
    kind: Literal["vector", "any"]
    operator: Literal["isNull", "isNotNull"]


class ObjectPropertyCompareCondition(_Column):
    kind: Literal["objectProperty"]
    operator: Literal[
        "is", "isNot", "contains", "doesNotContain", "startsWith", "endsWith",
        "greaterThan", "lowerThan",
    ]
    propertyName: NonEmptyStr
    value: Str


class ObjectPropertyBetweenCondition(_Column):
    kind: Literal["objectProperty"]
    operator: Literal["between"]
    propertyName: NonEmptyStr
    value: Str
    otherValue: Str


class ObjectPropertyNullCondition(_Column):
    kind: Literal["objectProperty"]
    operator: Literal["isNull", "isNotNull", "isEmpty", "isNotEmpty"]
    propertyName: NonEmptyStr


class SegmentCondition(_Model):
    """``segmentUuid`` (a Cargo segment) or ``segment`` (the id of another spec), not both."""

    kind: Literal["segment"]
    operator: Literal["in", "notIn"]
    segmentUuid: Uuid4 | None = None
    segment: SpecId | None = None

    @model_validator(mode="after")
    def _one_target(self, info: ValidationInfo) -> SegmentCondition:
        wire = bool(info.context and info.context.get("wire"))
        if wire and self.segment is not None:
            raise _fail("'segment' (a spec id) is not wire format; send 'segmentUuid'", "segment")
        if self.segment is not None and self.segmentUuid is not None:
            raise _fail("give either 'segmentUuid' or 'segment', not both", "segment")
        if self.segment is None and self.segmentUuid is None:
            wanted = "'segmentUuid'" if wire else "'segmentUuid' (a UUID) or 'segment' (a spec id)"
            raise _fail(f"missing required key {wanted}")
        return self


class SqlCondition(_Model):
    kind: Literal["sql"]
    name: NonEmptyStr
    clause: NonEmptyStr


class FrequencyNot(_Model):
    operator: Literal["not"]


class FrequencyCount(_Model):
    operator: Literal["moreThan", "lessThan", "exactly"]
    value: Number


class Period(_Model):
    operator: Literal["lessThan", "moreThan", "exactly"]
    value: Number
    unit: Literal["day"]


class EnrollmentCondition(_Model):
    kind: Literal["enrollment"]
    workflowUuid: Uuid4
    activityKind: Literal["workflowEntered", "workflowNodeExecuted", "workflowLeft"]
    frequency: Frequency
    period: Period
    nodeSlug: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _node_slug(self) -> EnrollmentCondition:
        if self.nodeSlug is not None and self.activityKind != "workflowNodeExecuted":
            raise _fail("'nodeSlug' goes only with activityKind 'workflowNodeExecuted'", "nodeSlug")
        return self


class MatchConditionsCondition(_Column):
    kind: Literal["object", "array"]
    operator: Literal["matchConditions"]
    conjonction: Conjonction
    propertyConditions: list[PropertyCondition] = Field(min_length=1)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _same_column(self) -> MatchConditionsCondition:
        for i, cond in enumerate(self.propertyConditions):
            slug = cond.columnSlug  # type: ignore[attr-defined]
            if slug != self.columnSlug:
                raise _fail(
                    f"'{slug}' differs from the parent's columnSlug "
                    f"'{self.columnSlug}'; property conditions test the parent's column",
                    f"propertyConditions.{i}.columnSlug",
                )
        return self


class OccurrenceCondition(_Model):
    kind: Literal["occurrence"]
    relatedModelUuid: Uuid4
    frequency: Frequency
    period: Period
    conjonction: Conjonction
    conditions: list[OccurrenceInnerCondition]  # type: ignore[valid-type]


# kind -> operator -> class (operator None: the kind takes no operator)
_KINDS: dict[str, dict[str | None, type[_Model]]] = {}


def _register(*classes: type[_Model]) -> None:
    for cls in classes:
        kinds = cls.model_fields["kind"].annotation.__args__  # type: ignore[union-attr]
        op_field = cls.model_fields.get("operator")
        ops = op_field.annotation.__args__ if op_field else (None,)  # type: ignore[union-attr]
        for kind in kinds:
            for op in ops:
                _KINDS.setdefault(kind, {})[op] = cls


_register(
    StringValuesCondition, StringNullCondition, NumberValueCondition, NumberBetweenCondition,
    NumberNullCondition, DateValueCondition, DateBetweenCondition, DateNullCondition,
    BooleanCondition, ObjectNullCondition, MatchConditionsCondition, VectorNullCondition,
    ObjectPropertyCompareCondition, ObjectPropertyBetweenCondition, ObjectPropertyNullCondition,
    SegmentCondition, SqlCondition, EnrollmentCondition, OccurrenceCondition,
)
ALL_KINDS = tuple(_KINDS)
OCCURRENCE_KINDS = ("string", "number", "object", "array", "any", "vector", "date", "boolean")
CONDITION_CLASSES = {cls.__name__: cls for ops in _KINDS.values() for cls in ops.values()}


def _condition_head(allowed: Sequence[str], where: str) -> Any:
    """Check ``kind`` and ``operator`` once, with one clear message, before the union dispatches."""

    def check(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value
        if not isinstance(value, dict):
            raise _fail(f"expected a mapping (a condition), got {describe(value)}")
        if "kind" not in value:
            raise _fail(f"missing required key 'kind' (one of {', '.join(allowed)})")
        kind = value["kind"]
        if kind not in allowed:
            if isinstance(kind, str) and kind in _KINDS:
                message = f"kind '{kind}' is not allowed {where}"
            else:
                shown = f"'{kind}'" if isinstance(kind, str) else describe(kind)
                message = f"{shown} is not a condition kind{did_you_mean(kind, allowed)}"
            raise _fail(message + f"; expected one of {', '.join(allowed)}", "kind")
        ops = _KINDS[kind]
        if None in ops:
            if "operator" in value:
                raise _fail(f"kind '{kind}' takes no 'operator'", "operator")
            return value
        names = [op for op in ops if op is not None]
        if "operator" not in value:
            raise _fail(f"missing required key 'operator' (kind '{kind}': {', '.join(names)})")
        op = value["operator"]
        if not isinstance(op, str) or op not in ops:
            owners = [k for k, o in _KINDS.items() if op in o and k != kind] if isinstance(
                op, str
            ) else []
            hint = did_you_mean(op, names)
            if not hint and owners:
                hint = f" (it is an operator of kind {_quoted(owners)})"
            if not hint:
                hint = f"; expected one of {', '.join(names)}"
            shown = f"'{op}'" if isinstance(op, str) else describe(op)
            raise _fail(f"{shown} is not an operator of kind '{kind}'{hint}", "operator")
        return value

    return check


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return type(value).__name__
    if isinstance(value, dict) and isinstance(value.get("kind"), str):
        ops = _KINDS.get(value["kind"])
        op = value.get("operator")
        if ops is not None and (op is None or isinstance(op, str)):
            cls = ops.get(op)
            if cls is not None:
                return cls.__name__
    return None


def _union(classes: Sequence[type[_Model]], allowed: Sequence[str], where: str) -> Any:
    members = tuple(Annotated[cls, Tag(cls.__name__)] for cls in classes)
    return Annotated[
        Union[members],  # noqa: UP007 - a union of a tuple of members
        Discriminator(_condition_tag),
        BeforeValidator(_condition_head(allowed, where)),
    ]


def _classes(kinds: Sequence[str]) -> list[type[_Model]]:
    seen: dict[str, type[_Model]] = {}
    for kind in kinds:
        for cls in _KINDS[kind].values():
            seen.setdefault(cls.__name__, cls)
    return list(seen.values())


def _frequency_head(value: Any) -> Any:
    if isinstance(value, dict) and "operator" in value:
        op = value["operator"]
        names = ("not", "moreThan", "lessThan", "exactly")
        if not isinstance(op, str) or op not in names:
            shown = f"'{op}'" if isinstance(op, str) else describe(op)
            hint = did_you_mean(op, names) or f"; expected one of {', '.join(names)}"
            raise _fail(f"{shown} is not a frequency operator{hint}", "operator")
    elif isinstance(value, dict):
        raise _fail("missing required key 'operator'")
    elif not isinstance(value, BaseModel):
        raise _fail(f"expected a mapping, got {describe(value)}")
    return value


def _frequency_tag(value: Any) -> str | None:
    op = getattr(value, "operator", None) if isinstance(value, BaseModel) else value.get("operator")
    return "FrequencyNot" if op == "not" else "FrequencyCount"


Condition = _union(_classes(ALL_KINDS), ALL_KINDS, "here")
OccurrenceInnerCondition = _union(
    _classes(OCCURRENCE_KINDS), OCCURRENCE_KINDS, "inside an occurrence"
)
PropertyCondition = _union(
    _classes(["objectProperty"]), ("objectProperty",), "in propertyConditions"
)
Frequency = Annotated[
    Annotated[FrequencyNot, Tag("FrequencyNot")] | Annotated[FrequencyCount, Tag("FrequencyCount")],
    Discriminator(_frequency_tag),
    BeforeValidator(_frequency_head),
]

TAGS = frozenset(CONDITION_CLASSES) | {"FrequencyNot", "FrequencyCount"}
TAG_MODELS: dict[str, type[BaseModel]] = {
    **CONDITION_CLASSES, "FrequencyNot": FrequencyNot, "FrequencyCount": FrequencyCount
}


# --- filter, sort, spec -----------------------------------------------------------------------


class Group(_Model):
    conjonction: Conjonction
    conditions: list[Condition]  # type: ignore[valid-type]


class Filter(_Model):
    conjonction: Conjonction
    groups: list[Group]


class SortEntry(_Model):
    columnSlug: NonEmptyStr
    kind: Literal["asc", "desc"]


class SpecModel(_Model):
    """One segment spec file. Field names are the API's own."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [{"required": ["model"]}, {"required": ["modelUuid"]}],
            "title": "segsync segment spec",
        }
    )

    id: SpecId | None = Field(default=None, description="Stable identity across renames.")
    name: Name = Field(description="The segment's name in Cargo.")
    model: ModelSlug | None = Field(
        default=None, description="Model slug: 'companies' or 'dataset.companies'."
    )
    modelUuid: Uuid4 | None = Field(default=None, description="The model's UUID.")
    filter: Filter
    sort: list[SortEntry] | None = None
    limit: PositiveInt | None = Field(default=None, description="Caps the segment's size.")
    trackingColumnSlugs: SlugList | None = None
    protect: Bool = Field(
        default=False, description="true: segsync never deletes or replaces this segment."
    )


for _cls in CONDITION_CLASSES.values():
    _cls.model_rebuild()
Group.model_rebuild()
Filter.model_rebuild()
SpecModel.model_rebuild()

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


# --- errors -----------------------------------------------------------------------------------


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


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


def _value_at(value: Any, path: Path_) -> Any:
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


def _message(err: Mapping[str, Any], model: type[BaseModel]) -> tuple[str, Path_, bool]:
    """(message, extra path below loc, whether the place is the key rather than the value)."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == _SEGSYNC:
        sub = tuple(int(p) if p.isdigit() else p for p in ctx["sub"].split(".") if p)
        return ctx["message"], sub, False
    if kind == "extra_forbidden":
        return "", (), True  # filled in by the caller, which knows the key
    if kind == "missing":
        return "", (), False
    if kind == "literal_error":
        expected = re.findall(r"'([^']*)'", ctx.get("expected", ""))
        shown = f"'{value}'" if isinstance(value, str) else describe(value)
        return (
            f"{shown} is not one of {_quoted(expected)}{did_you_mean(value, expected)}",
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


def _to_spec_errors(
    exc: ValidationError, doc: Document, file: str, root: type[BaseModel] = SpecModel
) -> list[SpecError]:
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
        loc: Path_ = tuple(p for p in raw_loc if not (isinstance(p, str) and p in TAGS))
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
            SpecError(message, path=file, line=mark.line, column=mark.column, field=_dotted(where))
        )
    return found


# --- canonical form ---------------------------------------------------------------------------


def _canon(value: Any, refs: list[str] | None = None) -> Any:
    """Canonical copy of a JSON-like value; collects ``segment:`` spec ids into ``refs``."""
    kind = type(value)
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            if key == "values" and type(item) is str:
                out[key] = [item]
            elif type(item) in (dict, list, float):
                out[key] = _canon(item, refs)
            else:
                out[key] = item
        if refs is not None and out.get("kind") == "segment" and "segment" in out:
            refs.append(out["segment"])
        return out
    if kind is list:
        return [_canon(item, refs) if type(item) in (dict, list, float) else item
                for item in value]
    if kind is float and value.is_integer():
        return int(value)
    return value


def canonical_managed(
    fields: Mapping[str, Any], refs: list[str] | None = None
) -> dict[str, Any]:
    """Canonical form (cargo-api.md §4.7) of the managed fields of a spec or a remote segment.

    ``refs``, when given, receives the spec ids of ``segment:`` conditions.
    """
    return {
        key: _canon(fields[key], refs)
        for key in MANAGED_FIELDS
        if key in fields and fields[key] is not None
    }


def digest(managed: Mapping[str, Any]) -> str:
    """sha256 of the canonical managed fields as compact JSON with sorted keys."""
    text = json.dumps(managed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def iter_conditions(filter: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, condition) for every condition of a filter, nested ones included."""

    def walk(conditions: Any, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if not isinstance(conditions, list):
            return
        for i, cond in enumerate(conditions):
            if not isinstance(cond, dict):
                continue
            path = f"{prefix}[{i}]"
            yield path, cond
            yield from walk(cond.get("propertyConditions"), f"{path}.propertyConditions")
            if cond.get("kind") == "occurrence":
                yield from walk(cond.get("conditions"), f"{path}.conditions")

    groups = filter.get("groups") if isinstance(filter, Mapping) else None
    if isinstance(groups, list):
        for g, group in enumerate(groups):
            if isinstance(group, dict):
                yield from walk(group.get("conditions"), f"filter.groups[{g}].conditions")


def request_body(managed: Mapping[str, Any], *, ref_uuids: Mapping[str, str]) -> dict[str, Any]:
    """The wire body of managed fields: ``segment: <spec id>`` becomes ``segmentUuid``."""
    body: dict[str, Any] = json.loads(json.dumps(dict(managed)))
    for _, cond in iter_conditions(body.get("filter", {})):
        if cond.get("kind") == "segment" and "segment" in cond:
            cond["segmentUuid"] = ref_uuids[cond.pop("segment")]
    return body


def check_wire_filter(data: Any) -> list[str]:
    """Strict structural check of a filter as the API receives it; messages, empty when valid."""
    try:
        Filter.model_validate(data, context={"wire": True})
    except ValidationError as exc:
        doc = Document(data)
        return [
            f"filter{'.' if e.field and not e.field.startswith('[') else ''}{e.field}: {e.message}"
            if e.field else f"filter: {e.message}"
            for e in _to_spec_errors(exc, doc, "", Filter)
        ]
    return []


def json_schema() -> dict[str, Any]:
    """JSON Schema of a spec file, generated from the models."""
    schema = SpecModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


# --- loading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedSpec:
    """A valid spec with what the plan needs: identity, model as written, canonical fields."""

    id: str
    explicit_id: bool
    file: str
    model: str | None
    model_uuid: str | None
    managed: dict[str, Any]
    digest: str
    refs: tuple[str, ...]
    protect: bool
    file_sha256: str
    line: int = 1
    column: int = 1

    @property
    def model_ref(self) -> str:
        return self.model if self.model is not None else str(self.model_uuid)

    @property
    def name(self) -> str:
        return str(self.managed["name"])


@dataclass
class _Parsed:
    spec: LoadedSpec
    doc: Document | None  # None: a known spec, not parsed (see load_specs)


def _spec_files(directory: Path) -> list[str]:
    """Relative posix paths of every *.yaml / *.yml below ``directory``, sorted."""
    found: list[str] = []

    def walk(folder: str, prefix: str) -> None:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir():
                    walk(entry.path, f"{prefix}{entry.name}/")
                elif entry.name.endswith((".yaml", ".yml")) and entry.is_file():
                    found.append(prefix + entry.name)

    walk(str(directory), "")
    return sorted(found)


def parse_spec(
    data: bytes, file: str, default_id: str
) -> tuple[LoadedSpec | None, list[SpecError], Document | None]:
    """Parse and validate one spec file's bytes."""
    doc, errors = load_document(data, file)
    if doc is None:
        return None, errors, None
    raw = doc.value
    errors = []
    if "model" not in raw and "modelUuid" not in raw:
        mark = doc.mark_of(())
        errors.append(SpecError("missing required key 'model' (a slug) or 'modelUuid'",
                                path=file, line=mark.line, column=mark.column))
    elif "model" in raw and "modelUuid" in raw:
        mark = doc.mark_of(("modelUuid",), key=True)
        errors.append(SpecError("give either 'model' or 'modelUuid', not both", path=file,
                                line=mark.line, column=mark.column, field="modelUuid"))
    try:
        model = SpecModel.model_validate(raw)
    except ValidationError as exc:
        errors.extend(_to_spec_errors(exc, doc, file))
        return None, errors, doc
    if errors:
        return None, errors, doc
    # The model accepted the raw value, so its canonical form is taken from it directly.
    found: list[str] = []
    managed = canonical_managed(raw, found)
    refs = sorted(set(found))
    name_mark = doc.mark_of(("name",), key=True)
    spec = LoadedSpec(
        id=model.id or default_id,
        explicit_id=model.id is not None,
        file=file,
        model=model.model,
        model_uuid=model.modelUuid,
        managed=managed,
        digest=digest(managed),
        refs=tuple(refs),
        protect=model.protect,
        file_sha256=hashlib.sha256(data).hexdigest(),
        line=name_mark.line,
        column=name_mark.column,
    )
    return spec, [], doc


def _ref_marks(doc: Document | None, spec: LoadedSpec | None = None) -> Iterator[tuple[str, Path_]]:
    """(referenced spec id, path of its `segment` value) in document order."""
    if doc is None:  # a known spec: its references, without places
        yield from ((ref, ()) for ref in (spec.refs if spec else ()))
        return
    for dotted, cond in iter_conditions(doc.value.get("filter", {})):
        if cond.get("kind") == "segment" and isinstance(cond.get("segment"), str):
            path: list[str | int] = []
            for part in re.findall(r"([A-Za-z]+)|\[(\d+)\]", dotted):
                path.append(part[0] if part[0] else int(part[1]))
            yield cond["segment"], (*path, "segment")


def _cross_checks(parsed: list[_Parsed], invalid_ids: set[str]) -> list[SpecError]:
    errors: list[SpecError] = []

    def at(p: _Parsed, path: Path_, message: str, *, key: bool = False) -> None:
        mark = p.doc.mark_of(path, key=key) if p.doc else Mark(1, 1)
        errors.append(SpecError(message, path=p.spec.file, line=mark.line, column=mark.column,
                                field=_dotted(path)))

    by_id: dict[str, _Parsed] = {}
    by_name: dict[tuple[str, str], _Parsed] = {}
    for p in parsed:
        first = by_id.setdefault(p.spec.id, p)
        if first is not p:
            at(p, ("id",) if p.spec.explicit_id else (), f"id '{p.spec.id}' is already used by "
               f"{first.spec.file}", key=True)
        key = (p.spec.model_ref, p.spec.name)
        other = by_name.setdefault(key, p)
        if other is not p:
            at(p, ("name",), f"name {p.spec.name!r} is already used on model "
               f"'{p.spec.model_ref}' by {other.spec.file}")
    for p in parsed:
        for ref, path in _ref_marks(p.doc, p.spec):
            target = by_id.get(ref)
            if target is None and ref in invalid_ids:
                continue  # that spec has errors of its own, reported already
            if target is None:
                at(p, path, f"unknown spec id '{ref}'{did_you_mean(ref, sorted(by_id))}")
            elif target.spec.model_ref != p.spec.model_ref:
                at(p, path, f"spec '{ref}' is on model '{target.spec.model_ref}', not "
                   f"'{p.spec.model_ref}'; a segment condition must name a segment of the "
                   "same model")
    errors.extend(_cycles(parsed, by_id))
    return errors


def _cycles(parsed: list[_Parsed], by_id: Mapping[str, _Parsed]) -> list[SpecError]:
    """One error per reference cycle, at the first reference of its smallest id."""
    errors: list[SpecError] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    reported: set[frozenset[str]] = set()

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for ref in by_id[node].spec.refs:
            if ref not in by_id:
                continue
            if state.get(ref) == 1:
                cycle = stack[stack.index(ref):]
                members = frozenset(cycle)
                if members not in reported:
                    reported.add(members)
                    start = min(cycle)
                    i = cycle.index(start)
                    ordered = [*cycle[i:], *cycle[:i], start]
                    owner = by_id[start]
                    nxt = ordered[1]
                    path = next(pth for r, pth in _ref_marks(owner.doc, owner.spec) if r == nxt)
                    mark = owner.doc.mark_of(path) if owner.doc else Mark(1, 1)
                    errors.append(SpecError(
                        f"reference cycle: {' -> '.join(ordered)}", path=owner.spec.file,
                        line=mark.line, column=mark.column, field=_dotted(path)))
            elif ref not in state:
                visit(ref, stack)
        stack.pop()
        state[node] = 2

    for spec_id in sorted(by_id):
        if spec_id not in state:
            visit(spec_id, [])
    return errors


#: Specs already known by file: ``{file: (sha256 of its bytes, the spec they make)}``.
Known = Mapping[str, tuple[str, LoadedSpec]]


def load_specs(directory: str | Path, *, known: Known | None = None) -> list[LoadedSpec]:
    """Every spec below ``directory``, sorted by id; raises ValidationFailed with all errors.

    A file listed in ``known`` whose bytes have the sha256 given there is not parsed again:
    its spec is taken as known (``plan`` passes the specs the state recorded at the last apply,
    which makes planning many unchanged specs cost little more than reading them). Cross-file
    checks always run; when they fail, every file is parsed again to give exact places.
    """
    # Loading allocates many objects and frees none in cycles: the cyclic collector would only
    # rescan the growing heap again and again (a third of the time for 10,000 specs).
    enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            return _load_specs(Path(directory), known or {})
        except ValidationFailed:
            if not known:
                raise
            return _load_specs(Path(directory), {})
    finally:
        if enabled:
            gc.enable()


def _load_specs(root: Path, known: Known) -> list[LoadedSpec]:
    if not root.is_dir():
        from segsync.errors import ConfigError

        raise ConfigError(f"{root.as_posix()}: no such folder (give the specs folder with --dir)")
    errors: list[SpecError] = []
    parsed: list[_Parsed] = []
    invalid_ids: set[str] = set()
    base = root.as_posix().rstrip("/") + "/" if root.as_posix() != "." else ""
    for rel in _spec_files(root):
        display = base + rel
        default_id = rel.rsplit(".", 1)[0]
        try:
            with open(root / rel, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            errors.append(SpecError(f"cannot read the file: {exc.strerror}", path=display))
            continue
        cached = known.get(display)
        if cached is not None and cached[0] == hashlib.sha256(data).hexdigest():
            parsed.append(_Parsed(cached[1], None))
            continue
        spec, errs, doc = parse_spec(data, display, default_id)
        errors.extend(errs)
        if spec is not None and doc is not None:
            refs = list(_ref_marks(doc)) if spec.refs else []
            doc.keep_marks([(("id",), True), (("name",), False),
                            *((path, False) for _, path in refs)])
            parsed.append(_Parsed(spec, doc))
        elif doc is not None:
            raw_id = doc.value.get("id")
            invalid_ids.add(raw_id if isinstance(raw_id, str) else default_id)
        else:
            invalid_ids.add(default_id)
    errors.extend(_cross_checks(parsed, invalid_ids))
    if errors:
        raise ValidationFailed(errors)
    return sorted((p.spec for p in parsed), key=lambda s: s.id)


def count_spec_files(directory: str | Path) -> int:
    root = Path(directory)
    return len(_spec_files(root)) if root.is_dir() else 0
