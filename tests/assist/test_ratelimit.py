"""The per-user token bucket, driven by a fake clock."""

from __future__ import annotations

import pytest

from server.assist.ratelimit import RateLimiter
from server.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_up_to_the_limit_then_429_with_the_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(6, clock=clock)  # one request every 10 s on average
    for _ in range(6):
        limiter.check("u1")
    with pytest.raises(RateLimited) as caught:
        limiter.check("u1")
    assert caught.value.status_code == 429
    assert caught.value.headers["Retry-After"] == "10"
    limiter.check("u2")  # other users have their own bucket


def test_the_bucket_refills_with_time() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)
    for _ in range(60):
        limiter.check("u")
    assert limiter.retry_after("u") == pytest.approx(1.0)
    clock.now += 1.0
    assert limiter.retry_after("u") is None
    assert limiter.retry_after("u") is not None


def test_zero_turns_it_off() -> None:
    limiter = RateLimiter(0)
    for _ in range(10_000):
        limiter.check("u")


def test_memory_stays_bounded_by_forgetting_full_buckets() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    for n in range(25_000):
        limiter.check(f"user-{n}")
        clock.now += 0.01
    assert len(limiter._buckets) <= 10_001
