"""Spec files: strict pydantic models of a segment and of Cargo's whole filter schema.

The filter's conditions are a discriminated union with one class per (kind, operator family)
of Cargo's filter schema, so an invalid combination cannot be built. Before the union picks a class,
``_condition_head`` checks ``kind`` and ``operator`` and raises one clear error (with "did you
mean") instead of pydantic's list of every union member that failed.

``specerrors.py`` turns pydantic's errors into :class:`~segsync.errors.SpecError` with the
file, line and column of the offending key or value.
"""

from __future__ import annotations

import calendar
import difflib
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from segsync.types import is_uuid4
from segsync.yamlfile import describe

RESERVED_NAMES = frozenset({"GENERATED_PLAY_SEGMENT"})
VALUE_KEYS = frozenset({"value", "values", "firstValue", "lastValue", "otherValue"})

_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?\Z"
)
_SPEC_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*\Z")
_MODEL_SLUG = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)?\Z")
ERROR_TYPE = "segsync"  # the type of every error raised by our own validators


def _fail(message: str, sub: str = "") -> PydanticCustomError:
    """Our own validation error; ``sub`` is a dotted path below the validated value."""
    return PydanticCustomError(ERROR_TYPE, "{message}", {"message": message, "sub": sub})


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


def shown_word(value: object) -> str:
    """A user's word in a message: ``'greaterThen'`` (escaped, so a message stays one line),
    or a description of a value that is not a string."""
    if isinstance(value, str):
        return repr(value) if value.isprintable() else ascii(value)
    return describe(value)


def quoted_list(choices: Sequence[str]) -> str:
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
    if not is_uuid4(value):
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
    def _one_target(self) -> SegmentCondition:
        if self.segment is not None and self.segmentUuid is not None:
            raise _fail("give either 'segmentUuid' or 'segment', not both", "segment")
        if self.segment is None and self.segmentUuid is None:
            raise _fail("missing required key 'segmentUuid' (a UUID) or 'segment' (a spec id)")
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
                shown = shown_word(kind)
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
                hint = f" (it is an operator of kind {quoted_list(owners)})"
            if not hint:
                hint = f"; expected one of {', '.join(names)}"
            shown = shown_word(op)
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
            shown = shown_word(op)
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

def json_schema() -> dict[str, Any]:
    """JSON Schema of a spec file, generated from the models."""
    schema = SpecModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema

