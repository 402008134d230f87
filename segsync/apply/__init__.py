"""Apply: execute a plan through the Cargo API, crash-safely, many actions at a time.

- ``runner``: the task graph and its parallel run (:func:`execute`, :class:`ApplyReport`)
- ``actions``: what each kind of action does, and the lost-create search
- ``journal``: the group-commit writer that puts every change on disk before it counts
"""

from __future__ import annotations

from segsync.apply.runner import ActionResult, ApplyReport, execute

__all__ = ["ActionResult", "ApplyReport", "execute"]
