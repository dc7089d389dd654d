"""Per-user rate limit: a token bucket per key, refilled continuously.

``per_minute`` requests a minute on average, with bursts up to ``per_minute``
(a full bucket). Buckets live in this process's memory: alone, with several
workers each enforces its own share; with Redis, ``server/shared/limits.py`` checks
this bucket first and the shared one after. Pure logic with an explicit clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from server.errors import RateLimited

# Full buckets are forgotten (they equal a fresh one) once this many keys exist.
_PRUNE_AT = 10_000


class RateLimiter:
    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        """``per_minute`` 0 turns the limit off."""
        self.per_minute = per_minute
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated at)

    def retry_after(self, key: str) -> float | None:
        """Take one request from ``key``'s bucket; seconds to wait if it is empty, else None."""
        if self.per_minute <= 0:
            return None
        now = self.clock()
        rate = self.per_minute / 60.0
        tokens, updated = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - updated) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > _PRUNE_AT:
            self._prune(now, rate)
        return None

    def refund(self, key: str) -> None:
        """Give back the request ``retry_after`` just took (another limit refused it)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            self._buckets[key] = (min(float(self.per_minute), bucket[0] + 1.0), bucket[1])

    def check(self, key: str) -> None:
        """Raise ``RateLimited`` (429 with ``Retry-After``) when ``key`` is over its limit."""
        wait = self.retry_after(key)
        if wait is not None:
            raise RateLimited("Too many requests; slow down.", retry_after=max(1, math.ceil(wait)))

    def _prune(self, now: float, rate: float) -> None:
        full = float(self.per_minute)
        self._buckets = {key: (tokens, updated) for key, (tokens, updated) in self._buckets.items()
                         if tokens + (now - updated) * rate < full}
