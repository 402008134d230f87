"""Property: any mutation of a valid spec ends in a valid spec or in errors with a place."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segsync.specs import parse_spec
from segsync.yamlfile import load_document

EXAMPLES = sorted((Path(__file__).parent.parent / "segments").rglob("*.yaml"))
VALID = [yaml.safe_load(p.read_text()) for p in EXAMPLES]
KEYS = ["kind", "operator", "values", "value", "conjonction", "conjunction", "groups",
        "conditions", "columnSlug", "firstValue", "lastValue", "segment", "segmentUuid",
        "name", "model", "filter", "sort", "limit", "x", ""]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["2025-01-15", "yes", "between", "isNull", "string", "number", "1_000",
                     "0x10", ".nan", "is", "in", "and", "or"]),
)


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*here, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*here, i))
    return out


def _mutate(doc: Any, data: st.DataObject) -> Any:
    for _ in range(data.draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            return doc
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        action = data.draw(st.sampled_from(["delete", "rename", "scalar", "list", "dict"]))
        if action == "delete":
            del parent[last]
        elif action == "rename" and isinstance(parent, dict):
            parent[data.draw(st.sampled_from(KEYS))] = parent.pop(last)
        elif action == "scalar":
            parent[last] = data.draw(SCALARS)
        elif action == "list":
            parent[last] = [parent[last]]
        else:
            parent[last] = {data.draw(st.sampled_from(KEYS)): parent[last]}
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutations_give_a_spec_or_placed_errors(data: st.DataObject) -> None:
    original = data.draw(st.sampled_from(VALID))
    doc = _mutate(copy.deepcopy(original), data)
    text = yaml.safe_dump(doc, allow_unicode=True)
    spec, errors, _ = parse_spec(text.encode(), "segments/x.yaml", "x")
    assert (spec is None) == bool(errors)
    n_lines = text.count("\n") + 1
    for err in errors:
        assert err.path == "segments/x.yaml"
        assert err.line is not None and 1 <= err.line <= n_lines
        assert err.column is not None and err.column >= 1
        assert err.message and "\n" not in err.message


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    doc, errors = load_document(text.encode(), "f.yaml")
    assert (doc is None) == bool(errors)
    _, errors, _ = parse_spec(text.encode(), "f.yaml", "f")
    assert all(e.line is not None for e in errors)
