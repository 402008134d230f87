"""One YAML file -> plain values, and the line and column of any key or value in it.

PyYAML's C parser (pure-Python fallback) does the parsing, but with our own resolver instead of
YAML 1.1's guesses: dates stay strings, only ``true`` and ``false`` are booleans,
``null``/``~``/nothing is null, and a plain scalar is a number only when its text is a JSON
number. Duplicate keys are errors, not "last one wins". Places are looked up in the node tree
only when an error needs one, so loading costs no more than ``yaml.load``.

Hostile documents are refused before they are built: one nested more than ``MAX_DEPTH`` levels
deep, and one whose aliases expand it past ``MAX_VALUES`` values (an alias repeats everything
its anchor holds, so a 2 KB file can stand for millions of values). Messages never echo more
than a short excerpt of a value (:func:`excerpt`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from segsync.errors import SpecError
from segsync.types import Path

#: How many levels of mappings and lists a document may nest (a spec needs about 12).
MAX_DEPTH = 50
#: How many values (mappings, lists, scalars, keys included) a document may expand to, each
#: alias counted as everything it repeats (a spec needs a few hundred).
MAX_VALUES = 100_000
#: How many characters of a user's value a message shows.
EXCERPT = 20


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """``text`` cut to its first ``limit`` characters, with ``…`` when it was longer."""
    return text if len(text) <= limit else text[:limit] + "\u2026"


class _NodeError(Exception):
    """A problem found while composing or constructing, at a place."""

    def __init__(self, message: str, mark: Any) -> None:  # yaml.Mark, or libyaml's
        super().__init__(message)
        self.message = message
        self.mark = mark


def _too_deep(mark: Any) -> _NodeError:
    return _NodeError(f"nested more than {MAX_DEPTH} levels deep; a spec needs far fewer", mark)


class PythonParser(Reader, Scanner, Parser, Composer):
    """PyYAML's pure-Python parser, for installs without libyaml."""

    _compose_depth = 0

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # PyYAML's composer recurses without limit (libyaml's parser stops at 1,000 levels).
        if self._compose_depth >= MAX_DEPTH and self.check_event(
            yaml.SequenceStartEvent, yaml.MappingStartEvent
        ):
            raise _too_deep(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        self._compose_depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._compose_depth -= 1


_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?\Z")
_NULLS = frozenset({"null", "~", ""})


def plain_scalar(text: str) -> Any:
    """The value of an unquoted scalar, by the rules above (used by the resolver too)."""
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


class _Resolver(BaseResolver):
    """Only the implicit types segsync allows; everything else plain is a string."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 - PyYAML's own class table


_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
)
_Resolver.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:null|~|)$"),
                                ["n", "~", ""])
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^-?(?:0|[1-9][0-9]*)$"), list("-0123456789")
)
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$"),
    list("-0123456789"),
)


class _Constructor(SafeConstructor):
    _depth = 0

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        try:
            return plain_scalar(str(self.construct_scalar(node)))
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            message = f"a number too long to read ({len(node.value):,} digits)"
            raise _NodeError(message, node.start_mark) from None

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:
        value = plain_scalar(str(self.construct_scalar(node)))
        return float(value) if isinstance(value, int) else value

    def construct_yaml_bool(self, node: yaml.ScalarNode) -> Any:
        return self.construct_scalar(node) == "true"

    def construct_yaml_seq(self, node: yaml.SequenceNode) -> Any:
        # Not a generator, unlike PyYAML's: a recursive alias is then an error, not a loop.
        # The depth is counted here and below, long before Python's recursion limit. (No
        # try/finally: an exception ends the document, and this loader with it.)
        depth = self._depth = self._depth + 1
        if depth > MAX_DEPTH:
            raise _too_deep(node.start_mark)
        value = self.construct_sequence(node, deep=True)
        self._depth = depth - 1
        return value

    def construct_yaml_map(self, node: yaml.MappingNode) -> Any:
        depth = self._depth = self._depth + 1
        if depth > MAX_DEPTH:
            raise _too_deep(node.start_mark)
        value = self.construct_mapping(node, deep=True)
        self._depth = depth - 1
        return value

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [k.value for k, _ in node.value]
        if all(type(k) is str for k in keys) and len(set(keys)) == len(keys):
            return super().construct_mapping(node, deep=deep)  # the usual case, checked fast
        seen: dict[str, yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                raise _NodeError("a mapping key must be a plain string", key_node.start_mark)
            first = seen.setdefault(key_node.value, key_node)
            if first is not key_node:
                mark = _mark(first)
                raise _NodeError(
                    f"duplicate key '{excerpt(key_node.value)}' (first at line {mark.line}, "
                    f"column {mark.column})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


for _tag, _method in (
    ("int", _Constructor.construct_yaml_int),
    ("float", _Constructor.construct_yaml_float),
    ("bool", _Constructor.construct_yaml_bool),
    ("seq", _Constructor.construct_yaml_seq),
    ("map", _Constructor.construct_yaml_map),
    ("timestamp", SafeConstructor.construct_yaml_str),
):
    _Constructor.add_constructor(f"tag:yaml.org,2002:{_tag}", _method)  # type: ignore[type-var]


class PythonLoader(PythonParser, _Constructor, _Resolver):
    """Pure-Python loader with our rules."""

    def __init__(self, stream: str) -> None:
        PythonParser.__init__(self, stream)
        _Constructor.__init__(self)
        _Resolver.__init__(self)


try:
    from yaml.cyaml import CParser  # type: ignore[attr-defined]

    class CLoader(CParser, _Constructor, _Resolver):
        """libyaml's parser with our rules."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _Constructor.__init__(self)
            _Resolver.__init__(self)

    _Loader: Any = CLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = PythonLoader


@dataclass(frozen=True)
class Mark:
    """1-based line and column."""

    line: int
    column: int


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


@dataclass
class Document:
    """A parsed file: its plain value, and its node tree to find places in.

    ``keep_marks`` remembers the places a later check may ask for and drops the node tree:
    thousands of live node trees would make loading many files slow (garbage collection).
    """

    value: Any
    root: yaml.Node | None = None
    kept: dict[tuple[Path, bool], Mark] | None = None

    def keep_marks(self, wanted: list[tuple[Path, bool]]) -> None:
        self.kept = {(path, key): self.mark_of(path, key=key) for path, key in wanted}
        self.root = None

    def _node(self, path: Path) -> tuple[yaml.Node | None, yaml.Node | None, int]:
        """(key node, value node) at ``path``, or the deepest ancestor found and its depth."""
        node, key_node = self.root, None
        for depth, part in enumerate(path):
            child = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == part:
                        key_node, child = k, v
                        break
            elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
                  and 0 <= part < len(node.value)):
                key_node, child = None, node.value[part]
            if child is None:
                return None, node, depth
            node = child
        return key_node, node, len(path)

    def mark_of(self, path: Path, *, key: bool = False) -> Mark:
        """The place of the value at ``path`` (or of its key); else of its nearest ancestor."""
        if self.kept is not None:
            return self.kept.get((path, key), Mark(1, 1))
        key_node, node, depth = self._node(path)
        if depth == len(path) and key and key_node is not None:
            return _mark(key_node)
        return _mark(node) if node is not None else Mark(1, 1)


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


#: libyaml's (and PyYAML's) words for a line that is not where its block expects it.
_INDENTATION_PROBLEMS = (
    "did not find expected '-' indicator",
    "did not find expected key",
    "block sequence entries are not allowed",
    "expected <block end>",
)
_INDENTATION_HINT = "check the indentation of this line and the one above"
_QUOTED = re.compile(rf"'([^'<\n][^'\n]{{{EXCERPT},}})'")  # not PyYAML's '<block end>'s


def _hint(problem: str, text: str, mark: yaml.Mark | None) -> str:
    """What to look at for a parser error that names no cause a user would recognise."""
    if problem.startswith(_INDENTATION_PROBLEMS):
        return _INDENTATION_HINT
    if problem.startswith("mapping values are not allowed") and mark is not None:
        # ``key: a: b`` on one line wants quotes; a ``key:`` alone on its line is misplaced.
        line = text[text.rfind("\n", 0, mark.index) + 1 : mark.index]
        return "quote a value that contains ': '" if ": " in line else _INDENTATION_HINT
    return ""


def _yaml_error(exc: yaml.YAMLError, text: str, path: str) -> SpecError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if context == "expected a single document in the stream":
        problem = "several YAML documents in one file; keep one segment per file"
    elif problem == "found unconstructable recursive node":
        problem = "recursive YAML alias: an alias refers to a node that contains it"
    elif mark is not None and text[mark.index : mark.index + 1] == "\t":
        problem = "a tab character cannot indent YAML; indent with spaces"
    else:
        hint = _hint(problem, text, mark)
        # A tag or anchor is quoted whole by the parser: cut it like a value.
        problem = _QUOTED.sub(lambda m: repr(excerpt(m[1])), problem)
        problem = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
        problem += f"; {hint}" if hint else ""
    if mark is None:
        return SpecError(problem, path=path, line=1, column=1)
    return SpecError(problem, path=path, line=mark.line + 1, column=mark.column + 1)


def _expansion_error(text: str) -> _NodeError | None:
    """The first alias that makes the document expand past ``MAX_VALUES`` values or nest more
    than ``MAX_DEPTH`` levels deep, found from parser events before anything is built.

    PyYAML builds an alias as the very object of its anchor, so building is cheap; everything
    after it (validation, canonical form, digest) walks the expanded tree. Called only when
    the text has an anchor and an alias: without them a document is as big as its text.
    """
    values: dict[str, tuple[int, int]] = {}  # anchor: (values it expands to, levels it nests)
    stack: list[list[Any]] = []  # open collections: [anchor, values so far, deepest child]
    total = 0
    loader = _Loader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.AliasEvent):
                # An undefined alias counts as one value: the composer reports it.
                size, depth = values.get(event.anchor or "", (1, 0))
                total += size
                if total > MAX_VALUES:
                    return _NodeError(
                        f"this alias expands the document to more than {MAX_VALUES:,} values "
                        "(an alias repeats everything its anchor holds); a spec needs far fewer",
                        event.start_mark,
                    )
                if len(stack) + depth > MAX_DEPTH:
                    return _NodeError(
                        f"this alias nests the document more than {MAX_DEPTH} levels deep; "
                        "a spec needs far fewer",
                        event.start_mark,
                    )
            elif isinstance(event, yaml.ScalarEvent):
                size, depth = 1, 0
                total += 1
                if event.anchor is not None:
                    values[event.anchor] = (1, 0)
            elif isinstance(event, yaml.CollectionStartEvent):
                total += 1
                stack.append([event.anchor, 1, 0])
                continue
            elif isinstance(event, yaml.CollectionEndEvent) and stack:
                anchor, size, deepest = stack.pop()
                depth = deepest + 1
                if anchor is not None:
                    values[anchor] = (size, depth)
            else:
                continue
            if stack:
                parent = stack[-1]
                parent[1] += size
                parent[2] = max(parent[2], depth)
    finally:
        loader.dispose()
    return None


def load_document(data: bytes, path: str) -> tuple[Document | None, list[SpecError]]:
    """Parse ``data`` (the bytes of ``path``); on failure return None and the errors with places."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [_utf8_error(data, exc, path)]
    text = text.removeprefix("\ufeff")
    loader = _Loader(text)
    try:
        if "&" in text and "*" in text:  # perhaps aliases: count what they expand to first
            problem = _expansion_error(text)
            if problem is not None:
                raise problem
        root = loader.get_single_node()
        if root is None:
            message = "the file is empty; a spec needs at least 'name', 'model' and 'filter'"
            return None, [SpecError(message, path=path, line=1, column=1)]
        value = loader.construct_document(root)
    except _NodeError as exc:
        line, column = exc.mark.line + 1, exc.mark.column + 1
        return None, [SpecError(exc.message, path=path, line=line, column=column)]
    except yaml.YAMLError as exc:
        return None, [_yaml_error(exc, text, path)]
    except RecursionError:  # not expected below MAX_DEPTH, unless the caller is deep already
        message = "nested too deeply to be read; a spec needs far fewer levels"
        return None, [SpecError(message, path=path, line=1, column=1)]
    finally:
        loader.dispose()
    if not isinstance(value, dict):
        mark = _mark(root)
        message = f"a spec must be a mapping of keys to values, not {describe(value)}"
        return None, [SpecError(message, path=path, line=mark.line, column=mark.column)]
    return Document(value, root), []


def describe(value: Any) -> str:
    """Short human description of a parsed value, for error messages: at most
    :data:`EXCERPT` characters of a string or number, cut with ``…``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {excerpt(repr(value))}"
    if isinstance(value, str):
        return f"the string {excerpt(value)!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
