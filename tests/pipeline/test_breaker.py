"""The circuit breaker's states, driven by a fake clock."""

from __future__ import annotations

from server.pipeline.breaker import CircuitBreaker, CircuitState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(failures: int = 3, reset_s: float = 10.0) -> tuple[CircuitBreaker, Clock,
                                                             list[CircuitState]]:
    clock = Clock()
    changes: list[CircuitState] = []
    return (CircuitBreaker(failures=failures, reset_s=reset_s, clock=clock,
                           on_change=changes.append), clock, changes)


def state(breaker: CircuitBreaker) -> CircuitState:
    """The state now (read through a call: mypy would keep it narrowed across calls)."""
    return breaker.state


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        permit = breaker.allow()
        assert permit is not None
        breaker.failure(permit)


def test_opens_after_consecutive_failures_only() -> None:
    breaker, _, changes = make(failures=3)
    fail(breaker, 2)
    permit = breaker.allow()
    assert permit is not None
    breaker.success(permit)  # a success in between resets the count
    fail(breaker, 2)
    assert breaker.state == "closed"
    fail(breaker, 1)
    assert state(breaker) == "open" and changes == ["open"]
    assert breaker.allow() is None


def test_half_open_lets_exactly_one_probe_through_after_the_reset_time() -> None:
    breaker, clock, _ = make()
    fail(breaker, 3)
    clock.now += 9.9
    assert breaker.allow() is None
    assert breaker.retry_in() > 0
    clock.now += 0.1
    probe = breaker.allow()
    assert probe is not None and probe.probe
    assert breaker.state == "half_open"
    assert breaker.allow() is None  # others still fall back while the probe runs
    breaker.success(probe)
    assert state(breaker) == "closed"
    assert breaker.allow() == breaker.allow()  # plain permits again


def test_failed_probe_opens_again_for_a_full_period() -> None:
    breaker, clock, changes = make()
    fail(breaker, 3)
    clock.now += 10
    probe = breaker.allow()
    assert probe is not None
    breaker.failure(probe)
    assert breaker.state == "open"
    assert breaker.retry_in() == 10
    assert changes == ["open", "half_open", "open"]


def test_released_probe_lets_the_next_stream_probe_at_once() -> None:
    breaker, clock, _ = make()
    fail(breaker, 3)
    clock.now += 10
    probe = breaker.allow()
    assert probe is not None
    breaker.release(probe)  # the client left: tells nothing about the model
    assert breaker.state == "open"
    again = breaker.allow()
    assert again is not None and again.probe
