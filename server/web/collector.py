"""The garbage collector's full passes, kept out of the streams' way.

CPython finds reference cycles in three generations; a full pass (the oldest) walks
every object the process tracks, and the event loop waits for it. A worker's streams
hold their objects for seconds to minutes (a streaming stream about 200: its
connection, protocol, pipeline state), and free them by reference counting when the
stream ends: they make no cycles (a test checks that connections do not). Yet
CPython starts a full pass whenever the objects promoted to the oldest generation
since the last one reach a quarter of it, so a worker whose streams come and go runs
one every few seconds, each as long as the walk: 150 to 200 ms at 1,500 streaming
streams, 800 ms at 16,000 idle ones (2026-12-05, docs/performance.md), during which
every stream waits.

So, with an interval set (``ASSIST_GC_FULL_INTERVAL_S``, a minute by default), the
automatic full passes are off, the young generations keep theirs (a few hundred
objects, well under a millisecond), and one full pass runs every interval from the
loop, for the cycles that outlive the young generations (the streams make none;
httpx's requests, to Genesys or an embeddings API, do): the interval bounds how long
their memory is held. A pass that freed anything is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Iterator

log = logging.getLogger("assist_panel")

#: The oldest generation's threshold that no worker reaches: 2**31 - 1 young passes.
_NEVER = 2**31 - 1


_lock = threading.Lock()
_deferring = 0
_oldest = 0


@contextlib.contextmanager
def full_collections_deferred() -> Iterator[None]:
    """Within the block, no automatic full pass; CPython's threshold back after the
    last such block in the process ends (apps in one process may overlap)."""
    global _deferring, _oldest
    with _lock:
        young, middle, oldest = gc.get_threshold()
        if _deferring == 0:
            _oldest = oldest
        _deferring += 1
        gc.set_threshold(young, middle, _NEVER)
    try:
        yield
    finally:
        with _lock:
            _deferring -= 1
            if _deferring == 0:
                young, middle, _ = gc.get_threshold()
                gc.set_threshold(young, middle, _oldest)


async def collect_fully_every(interval_s: float) -> None:
    """A full pass every ``interval_s`` seconds, forever (cancel the task to stop)."""
    while True:
        await asyncio.sleep(interval_s)
        started = time.perf_counter()
        freed = gc.collect()
        if freed:
            log.info("a full garbage collection freed %d objects in %.0f ms", freed,
                     (time.perf_counter() - started) * 1000)
