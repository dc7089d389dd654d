"""The model circuit breaker: stop calling a failing model, answer fallbacks, probe to recover.

Closed: every stream calls the model; ``failures`` failed calls in a row open it.
Open: streams get a ``circuit_open`` fallback at once, without calling the model,
until ``reset_s`` has passed. Then it is half-open: exactly one stream is let
through as the probe (the others still get fallbacks); its success closes the
circuit, its failure opens it again for another ``reset_s``. A probe whose
client left is neither: the next stream probes instead.

Pure logic with an explicit clock, per process (each worker learns on its own).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

CircuitState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class Permit:
    """Leave to call the model once; ``probe`` when it decides whether the circuit closes."""

    probe: bool = False


class CircuitBreaker:
    def __init__(self, *, failures: int = 5, reset_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[CircuitState], None] | None = None) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self.clock = clock
        self.on_change = on_change
        self.state: CircuitState = "closed"
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self._probing = False

    def _set(self, state: CircuitState) -> None:
        if state != self.state:
            self.state = state
            if self.on_change is not None:
                self.on_change(state)

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when not open)."""
        if self.state != "open" or self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.reset_s - self.clock())

    def allow(self) -> Permit | None:
        """A permit to call the model, or None: answer with a fallback instead."""
        if self.state == "closed":
            return Permit()
        if self.state == "open" and self.retry_in() > 0:
            return None
        if self._probing:
            return None
        self._probing = True
        self._set("half_open")
        return Permit(probe=True)

    def success(self, permit: Permit) -> None:
        """The model answered."""
        self.consecutive_failures = 0
        if permit.probe:
            self._probing = False
            self.opened_at = None
            self._set("closed")

    def failure(self, permit: Permit) -> None:
        """The model failed (error status, broken connection, no text in time, stall)."""
        if permit.probe:
            self._probing = False
            self._open()
            return
        self.consecutive_failures += 1
        if self.state == "closed" and self.consecutive_failures >= self.failures:
            self._open()

    def release(self, permit: Permit) -> None:
        """The call ended without telling anything (the client left, or superseded)."""
        if permit.probe:
            self._probing = False
            self._set("open")  # opened_at is unchanged: the next stream probes at once

    def _open(self) -> None:
        self.opened_at = self.clock()
        self.consecutive_failures = 0
        self._set("open")
