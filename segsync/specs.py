"""The specs folder -> loaded specs: every file parsed and validated, then checked together.

Each ``*.yaml`` / ``*.yml`` below the folder is one segment. A file is read, parsed
(``yamlfile``), validated (``spec``) and reduced to a :class:`LoadedSpec` holding what the plan
needs: its id, model as written, canonical managed fields and their digest, and the spec ids it
references. The cross-file checks follow: duplicate ids, duplicate (model, name), unknown or
cross-model references, and reference cycles. All errors of a run are raised together.

A file whose bytes match what the state recorded at the last apply is not parsed again
(:func:`known_specs`): planning thousands of unchanged specs costs little more than reading them.

What counts as a spec file (:func:`_scan`), so that nothing is left out unseen and nothing from
elsewhere is let in:

- every entry whose name ends in ``.yaml`` / ``.yml``, folders aside, is a spec: it must be a
  readable regular file of at most 1 MiB (``MAX_SPEC_BYTES``). A FIFO, device, socket,
  dangling link, link loop or bigger file is an error naming it, counted among the specs, so
  that ``apply --prune`` never takes a spec it could not read for a deleted one. A FIFO or a
  device is never opened: the scan checks the kind first (``stat``), and the file is opened
  non-blocking, without following links, and checked again (``fstat``) before it is read;
- a symbolic link, to a file or to a folder, is followed only when its target (all links
  resolved) is inside the specs folder. A link leading outside is an error naming the link;
  nothing of its target is read or shown. A link to a folder that holds it (a loop, found by
  the real paths of the folders walked) is an error, and a folder is followed through one link
  at most, so links cannot multiply the walk. (A folder reached through a link is a second copy
  of specs the walk reads anyway: their names clash, which is reported.)
"""

from __future__ import annotations

import errno
import gc
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import ValidationError

from segsync.canonical import canonical_managed, digest, refs_of
from segsync.errors import ConfigError, SpecError, ValidationFailed
from segsync.spec import SpecModel, did_you_mean
from segsync.specerrors import to_spec_errors
from segsync.types import Path as FieldPath
from segsync.types import dotted, is_uuid4
from segsync.yamlfile import Document, Mark, load_document

if TYPE_CHECKING:
    from segsync.state import State


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
    #: ``(path of a segment value, spec id it references)`` in document order (parsed only)
    refs: tuple[tuple[FieldPath, str], ...] = ()


class _Outcome(NamedTuple):
    """What parsing one file gave: a spec with its places, or errors (and the id the file
    claims, so that references to it are not reported a second time)."""

    parsed: _Parsed | None
    errors: list[SpecError]
    invalid_id: str | None


#: A spec is a few kilobytes: a bigger file is an error, and is not read.
MAX_SPEC_BYTES = 1 << 20
_SUFFIXES = (".yaml", ".yml")
_NOT_REGULAR = "not a regular file ({}); a spec must be a regular file"
_OUTSIDE = (
    "a symbolic link leading outside the specs folder; segsync follows links only to files "
    "and folders inside it"
)
# Non-blocking: should a FIFO replace a checked file before it is opened, opening it does not
# wait for a writer (its kind is checked again on the open file). No link is followed at open.
_OPEN_FLAGS = (
    os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)


class _Entry(NamedTuple):
    """A spec file found by :func:`_scan`: the path to open, or why it cannot be a spec."""

    rel: str  # posix path below the specs folder
    path: str = ""
    problem: str | None = None


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return kind
    return "a special file"


def _too_big(size: int) -> str:
    return f"the file is larger than 1 MiB ({size:,} bytes); a spec needs a few kilobytes"


def _display_base(root: Path) -> str:
    """How paths below ``root`` are shown: ``segments/`` (nothing for ``.``)."""
    return root.as_posix().rstrip("/") + "/" if root.as_posix() != "." else ""


def _scan(root: Path) -> tuple[list[_Entry], list[_Entry]]:
    """The spec files below ``root`` sorted by path (those that cannot be specs with their
    problem), and the problems of other entries (links to folders, unreadable folders).
    The rules are in the module's docstring."""
    files: list[_Entry] = []
    others: list[_Entry] = []
    base = _display_base(root)
    top = os.path.realpath(root)
    inside = top if top.endswith(os.sep) else top + os.sep
    followed: set[str] = set()  # real paths of the folders reached through a link

    def shown(real: str) -> str:
        rel = os.path.relpath(real, top).replace(os.sep, "/")
        return base + ("" if rel == "." else rel + "/") or "./"

    # Folders to list: (path, real path, shown prefix, real paths of it and its parents).
    # A stack, not recursion: no depth of folders ends in a RecursionError.
    todo: list[tuple[str, str, str, tuple[str, ...]]] = [(str(root), top, "", (top,))]
    while todo:
        folder, real, prefix, chain = todo.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            others.append(_Entry(prefix, problem=f"cannot read the folder: {exc.strerror}"))
            continue
        below: list[tuple[str, str, str, tuple[str, ...]]] = []
        for entry in entries:
            name = entry.name
            rel = prefix + name
            is_spec = name.endswith(_SUFFIXES)
            if not entry.is_symlink():  # the usual case: no system call (the kind is listed)
                if entry.is_dir(follow_symlinks=False):
                    sub = os.path.join(real, name)
                    below.append((entry.path, sub, rel + "/", (*chain, sub)))
                elif not is_spec:
                    pass
                elif entry.is_file(follow_symlinks=False):
                    files.append(_Entry(rel, entry.path))
                else:
                    kind = _kind(entry.stat(follow_symlinks=False).st_mode)
                    files.append(_Entry(rel, problem=_NOT_REGULAR.format(kind)))
                continue
            try:
                mode = os.stat(entry.path).st_mode
            except OSError as exc:
                if is_spec:
                    kind = ("a dangling symbolic link" if exc.errno == errno.ENOENT else
                            "a symbolic link loop" if exc.errno == errno.ELOOP else
                            f"a symbolic link that cannot be followed: {exc.strerror}")
                    files.append(_Entry(rel, problem=_NOT_REGULAR.format(kind)))
                continue
            is_dir = stat.S_ISDIR(mode)
            if not (is_dir or is_spec):
                continue
            target = os.path.realpath(entry.path)
            if not is_dir and not stat.S_ISREG(mode):
                kind = f"a symbolic link to {_kind(mode)}"
                files.append(_Entry(rel, problem=_NOT_REGULAR.format(kind)))
            elif target != top and not target.startswith(inside):
                (others if is_dir else files).append(_Entry(rel, problem=_OUTSIDE))
            elif not is_dir:
                files.append(_Entry(rel, target))
            elif target in chain:
                others.append(_Entry(rel, problem=(
                    f"a symbolic link loop: it leads back to {shown(target)}, a folder that "
                    "holds it")))
            elif target in followed:
                others.append(_Entry(rel, problem=(
                    f"a second symbolic link to {shown(target)}; a folder is followed through "
                    "one link at most")))
            else:
                followed.add(target)
                below.append((target, target, rel + "/", (*chain, target)))
        todo.extend(reversed(below))  # listed next, in name order
    files.sort(key=lambda e: e.rel)
    return files, others


class _NotASpec(Exception):
    """A file that turned out not to be a regular file of a sane size when opened."""


def _read_spec_file(path: str) -> bytes:
    """The bytes of the regular file ``path`` (no link followed), read whole; _NotASpec when
    it is not a regular file or is larger than ``MAX_SPEC_BYTES``, OSError when unreadable."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _NotASpec(_NOT_REGULAR.format(_kind(info.st_mode)))
        if info.st_size > MAX_SPEC_BYTES:
            raise _NotASpec(_too_big(info.st_size))
        chunks: list[bytes] = []
        size, want = 0, info.st_size + 1  # one read, and one more to see the end
        while chunk := os.read(fd, want):
            size += len(chunk)
            if size > MAX_SPEC_BYTES:  # it grew since fstat
                raise _NotASpec(_too_big(size))
            chunks.append(chunk)
            want = min(MAX_SPEC_BYTES + 1 - size, 1 << 16)
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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
        errors.extend(to_spec_errors(exc, doc, file))
        return None, errors, doc
    if errors:
        return None, errors, doc
    # The model accepted the raw value, so its canonical form is taken from it directly.
    managed = canonical_managed(raw)
    refs = sorted({ref for _, ref in refs_of(managed)})
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


def _ref_marks(p: _Parsed) -> Iterator[tuple[str, FieldPath]]:
    """(referenced spec id, path of its ``segment`` value) in document order; a known spec
    (not parsed) gives its references without places."""
    if p.doc is None:
        yield from ((ref, ()) for ref in p.spec.refs)
        return
    for path, ref in p.refs:
        yield ref, path


def _cross_checks(parsed: list[_Parsed], invalid_ids: set[str]) -> list[SpecError]:
    errors: list[SpecError] = []

    def at(p: _Parsed, path: FieldPath, message: str, *, key: bool = False) -> None:
        mark = p.doc.mark_of(path, key=key) if p.doc else Mark(1, 1)
        errors.append(SpecError(message, path=p.spec.file, line=mark.line, column=mark.column,
                                field=dotted(path)))

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
        for ref, path in _ref_marks(p):
            target = by_id.get(ref)
            if target is None and ref in invalid_ids:
                continue  # that spec has errors of its own, reported already
            if target is None:
                at(p, path, f"unknown spec id '{ref}'{did_you_mean(ref, sorted(by_id))}")
            elif not may_be_same_model(target.spec.model_ref, p.spec.model_ref):
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
                    path = next(pth for r, pth in _ref_marks(owner) if r == nxt)
                    mark = owner.doc.mark_of(path) if owner.doc else Mark(1, 1)
                    errors.append(SpecError(
                        f"reference cycle: {' -> '.join(ordered)}", path=owner.spec.file,
                        line=mark.line, column=mark.column, field=dotted(path)))
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


def load_specs(
    directory: str | Path, *, known: Known | None = None, jobs: int | None = None
) -> list[LoadedSpec]:
    """Every spec below ``directory``, sorted by id; raises ValidationFailed with all errors.

    A file listed in ``known`` whose bytes have the sha256 given there is not parsed again:
    its spec is taken as known (``plan`` passes the specs the state recorded at the last apply,
    which makes planning many unchanged specs cost little more than reading them). Cross-file
    checks always run; when they fail, every file is parsed again to give exact places.

    The files to parse are shared among ``jobs`` processes (see ``segsync.parallel``;
    None: as many as there are cores, when there are enough files to repay starting them;
    1: none). Results and errors are the same, in the same order, either way.
    """
    # Loading allocates many objects and frees none in cycles: the cyclic collector would only
    # rescan the growing heap again and again (a third of the time for 10,000 specs).
    enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            return _load_specs(Path(directory), known or {}, jobs)
        except ValidationFailed:
            if not known:
                raise
            return _load_specs(Path(directory), {}, jobs)
    finally:
        if enabled:
            gc.enable()


def parse_file(data: bytes, display: str, default_id: str) -> _Outcome:
    """Parse one spec file's bytes and keep the places later checks may ask for (the node
    tree is dropped: thousands of them would make loading slow)."""
    spec, errors, doc = parse_spec(data, display, default_id)
    if spec is not None and doc is not None:
        refs = tuple(refs_of(doc.value)) if spec.refs else ()
        doc.keep_marks([(("id",), True), (("name",), False),
                        *((path, False) for path, _ in refs)])
        doc.value = None  # not needed any more; not sent back by a worker
        return _Outcome(_Parsed(spec, doc, refs), errors, None)
    if doc is not None:
        raw_id = doc.value.get("id")
        return _Outcome(None, errors, raw_id if isinstance(raw_id, str) else default_id)
    return _Outcome(None, errors, default_id)


def _load_specs(root: Path, known: Known, jobs: int | None) -> list[LoadedSpec]:
    from segsync.parallel import run_all

    if not root.is_dir():
        raise ConfigError(f"{root.as_posix()}: no such folder (give the specs folder with --dir)")
    errors: list[SpecError] = []
    invalid_ids: set[str] = set()
    base = _display_base(root)
    files, others = _scan(root)
    errors.extend(SpecError(e.problem or "", path=(base + e.rel) or ".") for e in others)
    # Every file in order: its outcome, or (for those to parse) its place in ``todo``.
    slots: list[_Outcome | int] = []
    todo: list[tuple[bytes, str, str]] = []
    for entry in files:
        display = base + entry.rel
        default_id = entry.rel.rsplit(".", 1)[0]
        problem = entry.problem
        if problem is None:
            try:
                data = _read_spec_file(entry.path)
            except _NotASpec as exc:
                problem = str(exc)
            except OSError as exc:
                problem = f"cannot read the file: {exc.strerror}"
        if problem is not None:
            slots.append(_Outcome(None, [SpecError(problem, path=display)], default_id))
            continue
        cached = known.get(display)
        if cached is not None and cached[0] == hashlib.sha256(data).hexdigest():
            slots.append(_Outcome(_Parsed(cached[1], None), [], None))
            continue
        slots.append(len(todo))
        todo.append((data, display, default_id))
    outcomes = run_all(parse_file, todo, jobs, preload=__name__)
    parsed: list[_Parsed] = []
    for slot in slots:
        outcome = outcomes[slot] if isinstance(slot, int) else slot
        errors.extend(outcome.errors)
        if outcome.parsed is not None:
            parsed.append(outcome.parsed)
        if outcome.invalid_id is not None:
            invalid_ids.add(outcome.invalid_id)
    errors.extend(_cross_checks(parsed, invalid_ids))
    if errors:
        raise ValidationFailed(errors)
    return sorted((p.spec for p in parsed), key=lambda s: s.id)


def count_spec_files(directory: str | Path) -> int:
    """How many spec files ``directory`` holds, those that cannot be read included."""
    root = Path(directory)
    return len(_scan(root)[0]) if root.is_dir() else 0


def may_be_same_model(a: str, b: str) -> bool:
    """Whether two models as written may name the same model, offline: equal, or one a UUID
    (only Cargo knows), or the same slug with and without its dataset (``crm.companies`` and
    ``companies``). ``plan --refresh`` and apply compare the resolved models."""
    if a == b or is_uuid4(a) or is_uuid4(b):
        return True
    if "." in a and "." in b:
        return False
    return a.rsplit(".", 1)[-1] == b.rsplit(".", 1)[-1]


def known_specs(state: State, directory: str) -> dict[str, tuple[str, LoadedSpec]]:
    """The specs the state recorded at the last apply, by file, for ``load_specs(known=...)``.

    An entry knows its spec fully when it holds the file's sha256 and what was applied from
    it, with nothing under way (no intent, no pending delete). A file with those bytes makes
    that same spec again, so it need not be parsed to be planned. (``explicit_id`` is taken
    as "the id differs from the file's default id"; it only matters to the rename guess,
    which never concerns a spec that has its entry.)
    """
    base = Path(directory).as_posix()
    prefix = "" if base == "." else base + "/"
    known: dict[str, tuple[str, LoadedSpec]] = {}
    for spec_id, entry in state.segments.items():
        if (
            entry.uuid is None or entry.file is None or entry.file_sha256 is None
            or entry.applied is None or entry.digest is None or entry.intent is not None
            or entry.pending_delete is not None or not entry.file.startswith(prefix)
        ):
            continue
        default_id = entry.file[len(prefix):].rsplit(".", 1)[0]
        is_uuid = is_uuid4(entry.model)
        known[entry.file] = (entry.file_sha256, LoadedSpec(
            id=spec_id,
            explicit_id=spec_id != default_id,
            file=entry.file,
            model=None if is_uuid else entry.model,
            model_uuid=entry.model if is_uuid else None,
            managed=entry.applied,
            digest=entry.digest,
            refs=tuple(sorted(entry.refs)),
            protect=entry.protect,
            file_sha256=entry.file_sha256,
        ))
    return known


def errors_at(
    items: Iterable[tuple[LoadedSpec, FieldPath, str]], *, cls: type[SpecError] = SpecError
) -> list[SpecError]:
    """SpecErrors for problems found after loading (by the workspace checks, or warnings):
    each spec file is read again, once, to give every problem its line and column."""
    docs: dict[str, Document | None] = {}
    found: list[SpecError] = []
    for spec, path, message in items:
        if spec.file not in docs:
            try:
                data = _read_spec_file(os.path.realpath(spec.file))
                docs[spec.file], _ = load_document(data, spec.file)
            except (OSError, _NotASpec):
                docs[spec.file] = None
        doc = docs[spec.file]
        mark = doc.mark_of(path) if doc is not None else Mark(spec.line, spec.column)
        found.append(cls(message, path=spec.file, line=mark.line, column=mark.column,
                         field=dotted(path)))
    return sorted(found, key=SpecError.sort_key)
