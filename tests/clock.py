"""An asyncio event loop on a virtual clock, for tests of code that waits on timers.

Whenever no callback is ready and no socket has anything to read, the loop moves its
clock straight to its next timer instead of sleeping: a test of a 30 s timeout takes
no real time, and the order of events is decided by the timers alone, never by how
busy the machine is. Pass ``asyncio.get_running_loop().time`` as the clock of the code
under test so that its deadlines are read on the same clock.

Only for code that waits on timers and on other tasks: a loop that waits for a worker
thread or a socket would see its timers fire before the thread or the peer answered.
"""

from __future__ import annotations

import asyncio
import math
import selectors
from typing import Any

import pytest

# The clock moves in steps of 2**-20 s (about a microsecond), exact in binary: a deadline
# computed as ``now + (due - now)`` lands on ``due`` instead of a rounding error short of
# it, which would leave the code under test waiting zero seconds forever.
STEP = 2.0 ** -20


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """A selector loop whose ``time()`` jumps to the next timer when nothing is ready."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        selector = self._selector  # type: ignore[attr-defined]
        real_select = selector.select

        def select(timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            ready: list[tuple[selectors.SelectorKey, int]] = real_select(0)
            if ready or timeout == 0:
                return ready
            if timeout is None:  # no timer at all: only another thread can wake the loop
                blocked: list[tuple[selectors.SelectorKey, int]] = real_select(None)
                return blocked
            self._now = max(math.ceil((self._now + timeout) / STEP) * STEP, self._now + STEP)
            return []

        selector.select = select

    def time(self) -> float:
        return self._now


def virtual_clock_backend() -> tuple[str, dict[str, Any]]:
    """The ``anyio_backend`` value that runs a test on a :class:`VirtualClockLoop`."""
    return "asyncio", {"loop_factory": VirtualClockLoop}


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Import into a test module to run its async tests on the virtual clock."""
    return virtual_clock_backend()
