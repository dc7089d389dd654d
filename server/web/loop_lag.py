"""How late the worker's event loop runs what is due: its stalls, measured.

Every stream of a worker shares one event loop, so a callback that holds it (a blocking
call, a long pass of the garbage collector, a machine that stops the process) delays
every stream by as much. The streams' own figures show only the effect, spread over
their chunks; this watch shows the cause: a task sleeps ``interval`` at a time and
reports by how much each wake-up came late (``assist_event_loop_lag_seconds``). A hold
of ``h`` seconds is seen as a lateness of at least ``h - interval``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: Ten wake-ups a second: a hold of more than 100 ms is never missed, at a few
#: microseconds of the core a second.
INTERVAL_S = 0.1


async def watch_loop_lag(observe: Callable[[float], None], interval_s: float = INTERVAL_S) -> None:
    """Sleep ``interval_s`` at a time, forever, and pass ``observe`` how late (in seconds,
    never below zero) each wake-up came. Cancel the task to stop it."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        observe(max(0.0, loop.time() - due))
