"""Deterministic fault injection: latency, 429, 502 and writes that commit and then drop.

Every authenticated request (a request with an accepted token, whatever its path) takes the
next draw of one ``random.Random(seed)``, under a lock, and each draw consumes the same three
numbers, so a sequence of requests sees the same faults on every run with the same seed:

- ``u1`` picks the answer: ``u1 < fail_429`` → 429; ``u1 < fail_429 + fail_5xx`` → 502;
  otherwise the request is served. The two rates are per request and never overlap.
- ``u2`` picks the variant: a 429 lacks ``Retry-After`` when ``u2 < bare_429``; a 502 has an
  empty body when ``u2 < 1/3``, a JSON error body below 2/3, else an HTML body.
- ``u3`` drops the response when ``u3 < drop_after_commit`` and the request was a write
  (create, update or delete) that the store committed. Other requests ignore ``u3``, so the drop
  rate is measured over committed writes.

Requests rejected with 401 draw nothing and wait no latency.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class FaultConfig:
    """Rates are probabilities in [0, 1]; ``fail_429 + fail_5xx`` must not exceed 1."""

    seed: int = 0
    latency_ms: int = 0
    fail_5xx: float = 0.0
    fail_429: float = 0.0
    bare_429: float = 0.0
    retry_after: int = 1
    drop_after_commit: float = 0.0

    def problems(self) -> list[str]:
        found = [
            f"{name} must be between 0 and 1, got {value}"
            for name, value in (
                ("fail_5xx", self.fail_5xx),
                ("fail_429", self.fail_429),
                ("bare_429", self.bare_429),
                ("drop_after_commit", self.drop_after_commit),
            )
            if not 0.0 <= value <= 1.0
        ]
        if self.fail_5xx + self.fail_429 > 1.0:
            found.append("fail_5xx + fail_429 must not exceed 1")
        if self.latency_ms < 0:
            found.append("latency_ms must not be negative")
        if self.retry_after < 0:
            found.append("retry_after must not be negative")
        return found

    @property
    def active(self) -> bool:
        return bool(self.latency_ms or self.fail_5xx or self.fail_429 or self.drop_after_commit)


@dataclass(frozen=True)
class Draw:
    """The fate of one request: ``status`` 429/502 or None, the variant, and the drop decision."""

    status: int | None
    variant: str  # "" | "bare" (429 without Retry-After) | "empty" | "json" | "html" (502)
    drop: bool


class FaultInjector:
    """Draws faults for requests in arrival order and counts the faults actually applied."""

    def __init__(self, config: FaultConfig) -> None:
        problems = config.problems()
        if problems:
            raise ValueError("; ".join(problems))
        self.config = config
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def draw(self) -> Draw:
        config = self.config
        with self._lock:
            u1, u2, u3 = self._rng.random(), self._rng.random(), self._rng.random()
            self.counts["requests"] += 1
            if u1 < config.fail_429:
                variant = "bare" if u2 < config.bare_429 else ""
                self.counts["429_bare" if variant else "429"] += 1
                return Draw(429, variant, False)
            if u1 < config.fail_429 + config.fail_5xx:
                variant = "empty" if u2 < 1 / 3 else "json" if u2 < 2 / 3 else "html"
                self.counts[f"502_{variant}"] += 1
                return Draw(502, variant, False)
            return Draw(None, "", u3 < config.drop_after_commit)

    def record_drop(self) -> None:
        with self._lock:
            self.counts["dropped"] += 1

    def record_write(self) -> None:
        with self._lock:
            self.counts["writes"] += 1
