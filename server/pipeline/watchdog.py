"""The stall watchdog: decides when a generation has taken too long.

Three limits: no first text by ``first_token_s``; no new text for ``idle_s``
(a stall); the whole stream past ``hard_s``. Pure logic with an explicit clock.
"""

from __future__ import annotations

from enum import Enum


class Expiry(Enum):
    FIRST_TOKEN = "first_token_timeout"
    STALLED = "stalled"
    HARD_LIMIT = "deadline"


class Watchdog:
    def __init__(self, started: float, *, first_token_s: float, idle_s: float,
                 hard_s: float) -> None:
        self.started = started
        self.first_token_s = first_token_s
        self.idle_s = idle_s
        self.hard_s = hard_s
        self.last_progress: float | None = None

    def progress(self, now: float) -> None:
        """Record new text from upstream."""
        self.last_progress = now

    def _limits(self) -> list[tuple[float, Expiry]]:
        hard = (self.started + self.hard_s, Expiry.HARD_LIMIT)
        if self.last_progress is None:
            return [(self.started + self.first_token_s, Expiry.FIRST_TOKEN), hard]
        return [(self.last_progress + self.idle_s, Expiry.STALLED), hard]

    def deadline(self) -> float:
        """The earliest moment at which ``check`` could expire."""
        return min(at for at, _ in self._limits())

    def check(self, now: float) -> Expiry | None:
        """The limit passed at ``now``, if any (the earliest one wins)."""
        passed = [(at, expiry) for at, expiry in self._limits() if now >= at]
        return min(passed, key=lambda item: item[0])[1] if passed else None
