"""The virtual clock the timer-driven tests run on (tests/clock.py)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.clock import STEP, anyio_backend  # noqa: F401  (these tests run on it)

pytestmark = pytest.mark.anyio


async def test_an_hour_of_sleep_moves_the_clock_an_hour() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.sleep(3600)
    assert 3600 <= loop.time() - start <= 3600 + STEP


async def test_timers_fire_in_the_order_of_their_deadlines() -> None:
    fired: list[str] = []

    async def after(delay: float, name: str) -> None:
        await asyncio.sleep(delay)
        fired.append(name)

    await asyncio.gather(after(8, "first token"), after(15, "hard limit"), after(5, "stall"))
    assert fired == ["stall", "first token", "hard limit"]


async def test_a_deadline_computed_from_now_is_reached() -> None:
    """Regression: with the clock moved by exactly the timeout, ``now + (due - now)`` fell
    a rounding error short of ``due``, and a loop waiting "until due" waited zero
    seconds forever (the pipeline's relay loop did, with its 0.05 s flush interval)."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.3)  # a clock reading that is not round in binary
    due = loop.time() + 0.05
    waits = 0
    while loop.time() < due:
        waits += 1
        assert waits <= 2, "the clock does not reach the deadline"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), due - loop.time())


async def test_work_in_a_thread_is_waited_for_when_no_timer_is_due() -> None:
    # No timer pending: the loop blocks until the thread's result wakes it.
    assert await asyncio.to_thread(sum, [1, 2, 3]) == 6
