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
from sys import intern
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


_TAG = "tag:yaml.org,2002:"
_STR, _SEQ, _MAP = _TAG + "str", _TAG + "seq", _TAG + "map"
#: The tag our resolver gives every untagged plain scalar: its value is :func:`plain_scalar`'s,
#: decided when it is built (one dictionary lookup instead of a regular expression per type).
_PLAIN = "tag:segsync,2026:plain"


class _Resolver(BaseResolver):
    """Only the implicit types segsync allows; everything else plain is a string."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        # Called by the parser for every node without an explicit tag; BaseResolver's version
        # tries a list of regular expressions for each plain scalar.
        if kind is yaml.ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        """No path resolvers: nothing to track."""

    def ascend_resolver(self) -> None:
        """No path resolvers: nothing to track."""


def _scalar(node: yaml.ScalarNode) -> Any:
    """The value of a plain scalar (or one tagged ``!!int``)."""
    try:
        return plain_scalar(node.value)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        message = f"a number too long to read ({len(node.value):,} digits)"
        raise _NodeError(message, node.start_mark) from None


class _Constructor(SafeConstructor):
    """PyYAML's constructor with our rules: every tag PyYAML's safe loader knows."""

    _depth = 0

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        return _scalar(node)

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
        if not isinstance(node, yaml.MappingNode):  # ``!!map`` or ``!!set`` on a list or text
            return super().construct_mapping(node, deep=deep)  # PyYAML's error, at its place
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


_Constructor.add_constructor(_PLAIN, _Constructor.construct_yaml_int)  # type: ignore[type-var]
for _tag, _method in (
    ("int", _Constructor.construct_yaml_int),
    ("float", _Constructor.construct_yaml_float),
    ("bool", _Constructor.construct_yaml_bool),
    ("seq", _Constructor.construct_yaml_seq),
    ("map", _Constructor.construct_yaml_map),
    ("timestamp", SafeConstructor.construct_yaml_str),
):
    _Constructor.add_constructor(f"tag:yaml.org,2002:{_tag}", _method)  # type: ignore[type-var]


class _Unusual(Exception):
    """A node the flat builder leaves to PyYAML's constructor: an explicit tag other than
    ``!!str``/``!!seq``/``!!map``, or an alias that contains itself."""


def build(root: yaml.Node, *, shared: bool) -> Any:
    """The plain value of the node tree ``root``: what ``_Constructor`` makes of it, with the
    same checks in the same order (so the same first error), built directly.

    PyYAML's constructor dispatches every node through several Python calls and a cache; a
    spec file is only mappings, lists and scalars, so this builds them in one recursive
    function (about ten times faster). ``shared`` (the text has anchors) makes an alias give
    the very value of its anchor, as PyYAML does. Raises ``_Unusual`` where the caller must
    fall back to PyYAML's constructor.
    """
    built: dict[int, Any] = {}
    building: set[int] = set()
    plain, scalar_node, mapping_node = _PLAIN, yaml.ScalarNode, yaml.MappingNode

    def value(node: yaml.Node, depth: int) -> Any:
        if node.__class__ is scalar_node:
            tag = node.tag
            if tag == plain:
                text = node.value
                # Most plain scalars are words: only these first characters can make a
                # number, a boolean or null.
                if not text or text[0] in _SPECIAL:
                    return plain_scalar(text)
            elif tag == _STR:
                text = node.value
            else:
                raise _Unusual
            # Keys, kinds, operators and column slugs repeat in every spec: one copy of each
            # short string instead of one per file (a third of a loaded spec's memory).
            return intern(text) if len(text) <= _INTERNED else text
        if shared:
            key = id(node)
            if key in built:
                return built[key]
            if key in building:
                raise _Unusual
            building.add(key)
        if node.tag != (_MAP if node.__class__ is mapping_node else _SEQ):
            raise _Unusual
        if depth >= MAX_DEPTH:
            raise _too_deep(node.start_mark)
        if node.__class__ is mapping_node:
            pairs = node.value
            seen: dict[str, yaml.Node] = {}
            merge = None  # a ``!!merge`` key: refused with the first problem after it, if any
            for key_node, _ in pairs:
                if key_node.__class__ is not scalar_node:
                    at = (merge or key_node).start_mark
                    raise _NodeError("a mapping key must be a plain string", at)
                if merge is None and key_node.tag.endswith(":merge"):
                    merge = key_node
                first = seen.setdefault(key_node.value, key_node)
                if first is not key_node and merge is not None:
                    raise _NodeError("a mapping key must be a plain string", merge.start_mark)
                if first is not key_node:
                    mark = _mark(first)
                    raise _NodeError(
                        f"duplicate key '{excerpt(key_node.value)}' (first at line {mark.line}, "
                        f"column {mark.column})",
                        key_node.start_mark,
                    )
            if merge is not None:
                raise _Unusual
            result: Any = {}
            for key_node, value_node in pairs:
                key = value(key_node, depth)  # the key first, as PyYAML builds them
                result[key] = value(value_node, depth + 1)
        else:
            result = [value(item, depth + 1) for item in node.value]
        if shared:
            built[id(node)] = result
            building.discard(id(node))
        return result

    try:
        return value(root, 0)
    except ValueError:  # a number too long to read: PyYAML's path says so at its place
        raise _Unusual from None


#: Strings up to this long are interned by :func:`build`.
_INTERNED = 40
#: First characters of the plain scalars that are not strings (see :func:`plain_scalar`).
_SPECIAL = frozenset("-0123456789tfn~")


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


#: Build values with :func:`build` (False: always with PyYAML's constructor, as a reference).
FLAT = True


def _construct(loader: Any, root: yaml.Node, *, shared: bool) -> Any:
    if FLAT:
        try:
            return build(root, shared=shared)
        except _Unusual:
            pass
    return loader.construct_document(root)


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
        value = _construct(loader, root, shared="&" in text)
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
