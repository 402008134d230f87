"""The errors segsync raises, rendered once by ``cli.py`` as ``error: …`` with exit code 1.

SegsyncError                 base: a message, an optional place (path, line, column)
├── SpecError                one problem in one spec file (always has a place)
│   └── SpecWarning          a likely mistake that fails a run only with --strict
├── ValidationFailed         a run found one or more SpecErrors (carries them all)
├── ConfigError              missing token, bad option value, unknown model slug
├── StateError               state file unreadable, corrupt, newer, unwritable
│   └── LockError            the state lock is held by someone else
├── PlanFileError            a saved plan is stale or altered
├── ApplyError               one or more apply actions failed
├── DuplicatesFound          Cargo holds unmanaged copies of managed segments
└── ApiError                 Cargo answered with an error (status, reason, error_message)
    └── NetworkError         no answer at all (timeout, connection reset)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class SegsyncError(Exception):
    """Base class: a user-facing message with an optional place and an exit code."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.column = column

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword arguments are not in ``args``: pickle (a parsing worker's errors) them too.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))

    @property
    def place(self) -> str:
        """``path:line:col`` (as much of it as is known), or ``""``."""
        if self.path is None:
            return ""
        parts = [self.path]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        return f"{self.place}: {self.message}" if self.place else self.message


def _rebuild(cls: type[SegsyncError], message: str, attributes: dict[str, Any]) -> SegsyncError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(attributes)
    return error


class SpecError(SegsyncError):
    """One problem in one spec file, at a place; ``field`` is its dotted path, if any."""

    def __init__(
        self,
        message: str,
        *,
        path: str,
        line: int | None = None,
        column: int | None = None,
        field: str = "",
    ) -> None:
        super().__init__(message, path=path, line=line, column=column)
        self.field = field

    def __str__(self) -> str:
        body = f"{self.field}: {self.message}" if self.field else self.message
        return f"{self.place}: {body}"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path or "", self.line or 0, self.column or 0, str(self))


class SpecWarning(SpecError):
    """A likely mistake in a spec (a comma inside one ``values`` string, an invisible character
    in a name, a repeated condition): shown, and fatal only with ``--strict``."""


class ValidationFailed(SegsyncError):
    """Specs did not validate; ``errors`` holds every problem found, sorted."""

    def __init__(self, errors: Sequence[SpecError]) -> None:
        self.errors = sorted(errors, key=SpecError.sort_key)
        n = len(self.errors)
        super().__init__(f"{n} validation error{'s' if n != 1 else ''}")


class ConfigError(SegsyncError):
    """Configuration or option problem: missing token, unknown model slug, bad value."""


class StateError(SegsyncError):
    """The state file cannot be read or written."""


class LockError(StateError):
    """The state lock is held by another run."""


class PlanFileError(SegsyncError):
    """A saved plan file is stale, altered or unreadable."""


class ApplyError(SegsyncError):
    """Some apply actions failed; ``failures`` lists ``(spec id, message)``."""

    def __init__(self, failures: Sequence[tuple[str, str]]) -> None:
        self.failures = list(failures)
        n = len(self.failures)
        super().__init__(f"{n} action{'s' if n != 1 else ''} failed")


class DuplicatesFound(SegsyncError):
    """Live segments that segsync does not manage have a managed segment's model and name."""

    def __init__(self, count: int) -> None:
        noun = "segment" if count == 1 else "segments"
        super().__init__(
            f"{count} duplicate {noun} in Cargo (listed above): segsync manages one segment of "
            "each name; delete the extra ones in Cargo, or run `segsync apply "
            "--delete-duplicates` to delete those with the managed segment's fields"
        )
        self.count = count


class ApiError(SegsyncError):
    """Cargo answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        error_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.error_message = error_message


class NetworkError(ApiError):
    """No answer from Cargo: timeout, refused or reset connection."""
