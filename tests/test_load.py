"""YAML loading: plain values by the rules of docs/specs.md, places of keys and values, both
loaders."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

import pytest
import yaml

from segsync import yamlfile
from segsync.yamlfile import plain_scalar


def without_libyaml(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A second copy of ``segsync.yamlfile``, imported as on a PyYAML built without libyaml
    (``yaml.cyaml`` cannot be imported): it parses with the pure-Python loader."""
    name = "segsync_yamlfile_without_libyaml"
    spec = importlib.util.spec_from_file_location(name, yamlfile.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "yaml.cyaml", None)  # import yaml.cyaml: ImportError
        patch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
    assert not hasattr(module, "CLoader")  # only defined when libyaml is there
    return module


@pytest.fixture(params=["c", "python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``segsync.yamlfile`` parsing with libyaml's parser ("c", as installed here), or the
    pure-Python fallback ("python"). Tests use its ``load_document`` and ``Mark``."""
    if request.param == "python":
        return without_libyaml(monkeypatch)
    assert yaml.__with_libyaml__ and hasattr(yamlfile, "CLoader")
    return yamlfile


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2025-01-15", "2025-01-15"),
        ("yes", "yes"),
        ("no", "no"),
        ("NO", "NO"),
        ("on", "on"),
        ("off", "off"),
        ("True", "True"),
        ("true", True),
        ("false", False),
        ("null", None),
        ("~", None),
        ("", None),
        ("12", 12),
        ("-3", -3),
        ("0.5", 0.5),
        ("1e3", 1000.0),
        ("1_000", "1_000"),
        ("0755", "0755"),
        ("0x1F", "0x1F"),
        (".inf", ".inf"),
        ("12:30:00", "12:30:00"),
    ],
)
def test_plain_scalars(text: str, value: Any) -> None:
    assert plain_scalar(text) == value
    assert type(plain_scalar(text)) is type(value)


def test_values_and_marks(loader: ModuleType) -> None:
    Mark = loader.Mark
    doc, errors = loader.load_document(b"a: 2025-01-15\nb:\n  - 'yes'\n  - yes\n  - 3\n", "f.yaml")
    assert errors == []
    assert doc is not None
    assert doc.value == {"a": "2025-01-15", "b": ["yes", "yes", 3]}
    assert doc.mark_of(("b",), key=True) == Mark(2, 1)
    assert doc.mark_of(("a",)) == Mark(1, 4)
    assert doc.mark_of(("b", 2)) == Mark(5, 5)
    # an unknown path falls back to its nearest ancestor
    assert doc.mark_of(("b", 2, "x")) == Mark(5, 5)
    assert doc.mark_of(("b", 7)) == Mark(3, 3)
    doc.keep_marks([(("a",), False)])
    assert doc.root is None and doc.mark_of(("a",)) == Mark(1, 4)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a: 1\na: 2\n", "f.yaml:2:1: duplicate key 'a' (first at line 1, column 1)"),
        (b"a:\n\tb: 1\n", "f.yaml:2:1: a tab character cannot indent YAML; indent with spaces"),
        (b"", "f.yaml:1:1: the file is empty; a spec needs at least 'name', 'model' and 'filter'"),
        (b"- 1\n", "f.yaml:1:1: a spec must be a mapping of keys to values, not a list"),
        (b"a: 1\n---\na: 2\n",
         "f.yaml:2:1: several YAML documents in one file; keep one segment per file"),
        (b"a: \xff\n", "f.yaml:1:4: file is not valid UTF-8 (byte 0xff); save it as UTF-8"),
        (b"x: &a [*a]\n",
         "f.yaml:1:4: recursive YAML alias: an alias refers to a node that contains it"),
        (b"? [a]\n: 1\n", "f.yaml:1:3: a mapping key must be a plain string"),
    ],
)
def test_errors_have_places(loader: ModuleType, data: bytes, expected: str) -> None:
    doc, errors = loader.load_document(data, "f.yaml")
    assert doc is None
    assert [str(e) for e in errors] == [expected]


def test_byte_order_mark_is_accepted(loader: ModuleType) -> None:
    doc, errors = loader.load_document("\ufeffname: x\n".encode(), "f.yaml")
    assert errors == [] and doc is not None and doc.value == {"name": "x"}
