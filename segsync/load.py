"""Read one YAML file into plain values, remembering the line and column of every key and value.

Parsing uses PyYAML's C loader when available, but only to *compose* nodes: values are built here,
with the rules of design.md instead of YAML 1.1's guesses. Dates stay strings, only ``true`` and
``false`` are booleans, and a plain scalar is a number only when its text is a JSON number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from segsync.errors import SpecError

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

Path_ = tuple[str | int, ...]

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?\Z")
_NULLS = frozenset({"null", "~", ""})


@dataclass(frozen=True)
class Mark:
    """1-based line and column."""

    line: int
    column: int


@dataclass
class Document:
    """A parsed file: its plain value and the marks of every key and value, by path."""

    value: Any
    value_marks: dict[Path_, Mark] = field(default_factory=dict)
    key_marks: dict[Path_, Mark] = field(default_factory=dict)

    def mark_of(self, path: Path_, *, key: bool = False) -> Mark:
        """The mark of the value at ``path`` (or of its key), else of its nearest known ancestor."""
        marks = self.key_marks if key else self.value_marks
        if path in marks:
            return marks[path]
        while path:
            path = path[:-1]
            if path in self.value_marks:
                return self.value_marks[path]
        return self.value_marks.get((), Mark(1, 1))


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def plain_scalar(text: str) -> Any:
    """The value of an unquoted scalar: YAML 1.2-like, but stricter (design.md)."""
    if text in _NULLS:
        return None
    if text == "true":
        return True
    if text == "false":
        return False
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


class _Builder:
    def __init__(self, path: str) -> None:
        self.path = path
        self.doc = Document(None)
        self.errors: list[SpecError] = []
        self._active: set[int] = set()

    def error(self, message: str, mark: Mark) -> None:
        self.errors.append(SpecError(message, path=self.path, line=mark.line, column=mark.column))

    def build(self, node: yaml.Node, where: Path_) -> Any:
        self.doc.value_marks[where] = _mark(node)
        if isinstance(node, yaml.ScalarNode):
            if not node.style:  # None (pure-Python loader) or "" (C loader): a plain scalar
                return plain_scalar(node.value)
            return node.value
        if id(node) in self._active:
            self.error("recursive YAML alias", _mark(node))
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*where, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.error("a mapping key must be a plain string", _mark(key_node))
                    continue
                key = key_node.value
                here = (*where, key)
                if key in result:
                    first = self.doc.key_marks[here]
                    self.error(
                        f"duplicate key '{key}' (first at line {first.line}, "
                        f"column {first.column})",
                        _mark(key_node),
                    )
                    continue
                self.doc.key_marks[here] = _mark(key_node)
                result[key] = self.build(value_node, here)
            return result
        finally:
            self._active.discard(id(node))


def _utf8_error(data: bytes, exc: UnicodeDecodeError, path: str) -> SpecError:
    before = data[: exc.start]
    line = before.count(b"\n") + 1
    column = exc.start - (before.rfind(b"\n") + 1) + 1
    return SpecError(
        f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x}); save it as UTF-8",
        path=path,
        line=line,
        column=column,
    )


def _yaml_error(exc: yaml.YAMLError, text: str, path: str) -> SpecError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if context == "expected a single document in the stream":
        problem = "several YAML documents in one file; keep one segment per file"
    elif mark is not None and text[mark.index : mark.index + 1] == "\t":
        problem = "a tab character cannot indent YAML; indent with spaces"
    else:
        problem = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    if mark is None:
        return SpecError(problem, path=path, line=1, column=1)
    return SpecError(problem, path=path, line=mark.line + 1, column=mark.column + 1)


def load_document(data: bytes, path: str) -> tuple[Document | None, list[SpecError]]:
    """Parse ``data`` (the bytes of ``path``); on failure return None and the errors with places."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [_utf8_error(data, exc, path)]
    text = text.removeprefix("\ufeff")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        return None, [_yaml_error(exc, text, path)]
    finally:
        loader.dispose()
    if node is None:
        return None, [SpecError("the file is empty; a spec needs at least 'name', 'model' and "
                                "'filter'", path=path, line=1, column=1)]
    builder = _Builder(path)
    value = builder.build(node, ())
    builder.doc.value = value
    if not builder.errors and not isinstance(value, dict):
        mark = builder.doc.mark_of(())
        builder.error(
            f"a spec must be a mapping of keys to values, not {describe(value)}", mark
        )
    if builder.errors:
        return None, builder.errors
    return builder.doc, []


def describe(value: Any) -> str:
    """Short human description of a parsed value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
