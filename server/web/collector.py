"""The garbage collector's full passes, kept from coming one after another.

CPython finds reference cycles in three generations; a full pass (the oldest) walks
every object the process tracks, and the event loop waits for it. A worker's streams
hold their objects for seconds to minutes (a streaming stream about 200: its
connection, protocol, pipeline state), and free them by reference counting when the
stream ends: they make no cycles (tests check that connections do not, and that no
stream, however it ends, leaves a cycle through the panel's code). CPython starts a
full pass whenever the objects promoted to the oldest generation since the
last one reach a quarter of it, counting those since freed, so a worker whose
streams come and go runs one every second or two, each as long as the walk: 150 to
200 ms at 1,500 streaming streams, 800 ms to over a second at 12,000 to 16,000 idle
ones (2026-12-05, docs/performance.md), during which every stream waits.

So after each full pass, the next is held off for ``ASSIST_GC_FULL_INTERVAL_S``
(a minute by default): CPython's own rule decides when one is due, at most once an
interval. A worker whose streams only come and stay (no churn) rarely meets the rule
at all; one with churn meets it at once when the interval ends. The young
generations keep their passes (a few hundred objects, well under a millisecond).
The cycles that do outlive the young passes (httpx's requests, to Genesys or an
embeddings API, make some) wait at most an interval longer.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import Any

#: The oldest generation's threshold that no worker reaches: 2**31 - 1 young passes.
_NEVER = 2**31 - 1


class FullPassSpacing:
    """After each full pass, none before ``interval_s`` has gone by (:meth:`run`)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.passes = 0
        self._lock = threading.Lock()
        self._last_pass = float("-inf")
        oldest = gc.get_threshold()[2]
        # Made while another app in this process holds passes off: CPython's default.
        self._oldest = oldest if oldest != _NEVER else 10

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        # Called inside the collector, on whichever thread allocated: only sets ints.
        if phase == "stop" and info["generation"] == 2:
            with self._lock:
                self.passes += 1
                self._last_pass = time.monotonic()
                young, middle, _ = gc.get_threshold()
                gc.set_threshold(young, middle, _NEVER)

    def _allow(self) -> None:
        with self._lock:
            young, middle, _ = gc.get_threshold()
            gc.set_threshold(young, middle, self._oldest)

    async def run(self) -> None:
        """Hold off full passes an interval after each one, until cancelled; then
        CPython's own rule again."""
        gc.callbacks.append(self._on_collection)
        try:
            while True:
                # Wake when the interval since the last pass ends (a pass meanwhile
                # moves that on), and let CPython's rule decide again.
                wait = self._last_pass + self.interval_s - time.monotonic()
                if wait <= 0:
                    self._allow()
                    wait = self.interval_s
                await asyncio.sleep(wait)
        finally:
            gc.callbacks.remove(self._on_collection)
            self._allow()
