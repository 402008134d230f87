"""The flat builder against PyYAML's constructor: same values and same first error, on the
example specs, the invalid-spec corpus, hand-written odd documents and generated ones, with
libyaml's parser and with the pure-Python one."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segsync import yamlfile
from tests.test_load import without_libyaml

ROOT = Path(__file__).parent.parent
CORPUS = sorted([*(ROOT / "segments").rglob("*.yaml"), *(ROOT / "tests/cases").rglob("*.yaml")])

ODD = [
    "a: 1\nb: -2.5e3\nc: true\nd: ~\ne:\nf: null\ng: 1_000\nh: 0x10\ni: .5\nj: 2025-01-15\n",
    "a: '1'\nb: \"true\"\nc: !!str 5\nd: !!int '7'\ne: !!float 3\nf: !!bool 'true'\n",
    "a: !!binary aGVsbG8=\n",
    "a: !custom 5\n",
    "a: !!set {x, y}\n",
    "a: !!omap [x: 1]\n",
    "a: !!seq [1, 2]\nb: !!map {c: d}\n",
    "a: &x [1, {b: 2}]\nc: *x\nd: *x\n",
    "a: &x {b: &y [1]}\nc: *y\nd: *x\n",
    "a: &x [*x]\n",
    "&x a: *x\n",
    "a: *nothing\n",
    "a: 1\na: 2\n",
    "a: 1\nb: 2\nb: {a: 1, a: 2}\n",
    "{a: 1, b: {c: 1, c: 2}, d: 1, d: 2}\n",
    "? [a]\n: 1\n",
    "? {a: 1}\n: 1\n",
    "1: a\n'1': b\n",
    "true: a\nnull: b\n1.5: c\n",
    "<<: {a: 1}\nb: 2\n",
    "!!merge <<: {a: 1}\n",
    "a: 1" + "0" * 5000 + "\n",
    "a: [" * 60 + "]" * 60 + "\n",
    "a: " + "[" * 49 + "]" * 49 + "\n",
    "a: " + "[" * 50 + "]" * 50 + "\n",
    "a: " + "{b: " * 50 + "c" + "}" * 50 + "\n",
    "a: " + "[" * 40 + "!!int 3" + "]" * 40 + "\n",
    "a: !!str\n",
    "a: ! 12\n",
    "- 1\n- 2\n",
    "just a string\n",
    "",
    "# only a comment\n",
    "a: b: c\n",
    "a: 1\n---\nb: 2\n",
    "a:\n\t- 1\n",
    "!custom k:\n  a: 1\n  a: 2\n",
    "!!binary 'a': {a: 1, a: 2}\n",
    "? 1" + "0" * 5000 + "\n:\n  a: 1\n  a: 2\n",
    "{!!merge <<: {a: 1}, b: 1, b: 2}\n",
    "{!!merge <<: {a: 1}, [x]: 1}\n",
    "{b: 1, !!merge <<: {a: 1}, b: 2}\n",
    "{b: 1, b: 2, !!merge <<: {a: 1}}\n",
    "a: !!map [1, 2]\n",
    "a: !!set [x]\n",
    "a: !!map x\n",
    "name: x\nfilter: {groups: [{conditions: [{value: -0, values: [-1.0e+3, 1e3, 01]}]}]}\n",
]


def outcome(module: ModuleType, text: str) -> tuple[str, Any]:
    """What ``load_document`` makes of ``text``: the value (with its types) or the errors."""
    doc, errors = module.load_document(text.encode("utf-8"), "f.yaml")
    if doc is None:
        return "errors", [(e.message, e.line, e.column) for e in errors]
    return "value", typed(doc.value)


def typed(value: Any) -> Any:
    """``value`` with every scalar paired with its type (1, 1.0 and True compare equal)."""
    if isinstance(value, dict):
        return {(type(k).__name__, k): typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, float) and value != value:
        return ("float", "nan")
    return (type(value).__name__, value)


def both(module: ModuleType, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    flat = outcome(module, text)
    with monkeypatch.context() as patch:
        patch.setattr(module, "FLAT", False)
        reference = outcome(module, text)
    assert flat == reference, text[:200]


@pytest.fixture(params=["c", "python"])
def module(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return without_libyaml(monkeypatch) if request.param == "python" else yamlfile


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus(module: ModuleType, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    both(module, path.read_text(encoding="utf-8", errors="replace"), monkeypatch)


@pytest.mark.parametrize("text", ODD, ids=range(len(ODD)))
def test_odd_documents(module: ModuleType, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    both(module, text, monkeypatch)


def test_the_builder_is_used_and_shares_aliases() -> None:
    """Not only equal: the flat builder really builds the usual document, and an alias is
    the very value of its anchor, as PyYAML makes it."""
    text = "a: &x [1, {b: 2}]\nc: *x\n"
    node = yamlfile.CLoader(text).get_single_node()
    assert node is not None
    value = yamlfile.build(node, shared=True)
    assert value == {"a": [1, {"b": 2}], "c": [1, {"b": 2}]}
    assert value["a"] is value["c"]
    tagged = yamlfile.CLoader("a: !!int 5\n").get_single_node()
    assert tagged is not None
    with pytest.raises(yamlfile._Unusual):
        yamlfile.build(tagged, shared=False)


SCALAR_TEXT = st.sampled_from([
    "1", "-1", "0", "01", "1.5", "-0.0", "1e3", "1E+3", ".5", "true", "false", "True", "null",
    "~", "", "yes", "x", "'1'", '"true"', "!!str 1", "!!int 2", "!!float 1", "2025-01-15",
    "a b", "-", "--1", "tru", "nul", "1_0", "0x1", "9" * 30,
])
KEY_TEXT = st.sampled_from(["a", "b", "name", "1", "true", "null", "'a'", "[x]", "c", "<<",
                          "!!merge <<", "!t k", "!!int 1", "!!str a"])


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> str:
    """Flow-style YAML with anchors, aliases, tags, repeated keys and odd scalars."""
    kind = draw(st.sampled_from(["scalar", "scalar", "list", "map", "alias"] if depth < 4
                                else ["scalar"]))
    if kind == "scalar":
        return draw(SCALAR_TEXT)
    if kind == "alias":
        return draw(st.sampled_from(["*a", "*b"]))
    anchor = draw(st.sampled_from(["", "", "&a ", "&b "]))
    tag = draw(st.sampled_from(["", "", "", "!!seq " if kind == "list" else "!!map ", "!x "]))
    items = draw(st.lists(documents(depth + 1), max_size=4))
    if kind == "list":
        return f"{anchor}{tag}[{', '.join(items)}]"
    keys = draw(st.lists(KEY_TEXT, min_size=len(items), max_size=len(items)))
    return f"{anchor}{tag}{{{', '.join(f'{k}: {v}' for k, v in zip(keys, items, strict=True))}}}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=documents())
def test_generated_documents(text: str) -> None:
    flat = outcome(yamlfile, text)
    yamlfile.FLAT = False
    try:
        reference = outcome(yamlfile, text)
    finally:
        yamlfile.FLAT = True
    assert flat == reference, text


def test_values_match_pyyaml_for_specs() -> None:
    """On real spec files the values are PyYAML's safe loader's, dates aside."""
    for path in sorted((ROOT / "segments").rglob("*.yaml")):
        text = path.read_text()
        doc, errors = yamlfile.load_document(text.encode(), str(path))
        assert doc is not None and not errors
        assert doc.value == yaml.safe_load(text)
