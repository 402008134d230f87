"""The one error the emulator raises to whoever runs it (not an HTTP answer: see ``HttpError``).

The emulator imports nothing of segsync's own modules, so it has its own error class rather than
segsync's ``SegsyncError``; ``command.py`` shows it as ``error: <message>`` like any other
segsync error.
"""

from __future__ import annotations


class EmulatorError(Exception):
    """The emulator cannot run as asked: an unusable data file, a bad option, a failed start.

    ``path``, when given, names the file at fault; ``str()`` is then ``<path>: <message>``.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message
