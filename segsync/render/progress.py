"""Apply's own lines: one per finished action while it runs, and the summary at the end."""

from __future__ import annotations

from segsync.apply.runner import VERBS, ActionResult, ApplyReport
from segsync.render.common import SYMBOLS, plural


def describe_result(result: ActionResult) -> str:
    """One progress line: ``+ sales/icp created (0.21s) uuid …``, ``! x failed (…): why``."""
    name = result.id + (" (old segment)" if result.step == "cleanup" else "")
    if result.status == "done":
        symbol = "-" if result.step == "cleanup" else SYMBOLS.get(result.kind, "~")
        line = f"{symbol} {name} {result.verb} ({result.seconds:.2f}s)"
        if result.uuid:
            line += f" uuid {result.uuid}"
        return line + (f"; {result.detail}" if result.detail else "")
    if result.status == "skipped":
        return f"! {name} {result.message}"
    return f"! {name} failed ({result.seconds:.2f}s): {result.message}"


def apply_summary(report: ApplyReport) -> str:
    """``Apply complete: 3 created, 1 updated, 0 replaced, 0 deleted.`` (or incomplete)."""
    counts = report.counts
    parts = [
        f"{counts[verb]} {verb}" if kind != "dedupe" else
        f"{plural(counts[verb], 'duplicate')} deleted"
        for kind, verb in VERBS
        if kind in ("create", "update", "replace", "delete") or counts[verb]
    ]
    failed = sum(1 for r in report.results if r.status == "failed")
    skipped = sum(1 for r in report.results if r.status == "skipped")
    if not failed and not skipped:
        return f"Apply complete: {', '.join(parts)}."
    tail = [f"{failed} failed"] + ([f"{skipped} skipped"] if skipped else [])
    return f"Apply incomplete: {', '.join(parts)}; {', '.join(tail)}."
