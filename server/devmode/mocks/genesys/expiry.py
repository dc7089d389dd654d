"""The expiry timer: closes channel sockets when their channel expires, or (with the
``tokenExpiry`` setting ``close``) their token.

The platform stops a channel when its token expires and drops a channel past
its ``expires``, whether or not anything is published. Checking only when
something happens (a publish, a heartbeat) would leave an idle socket open for
as long as nothing happens, so a task wakes at the next known expiry.

Expiries are measured on the config's clock, which tests replace with a fake one
they move by hand; the timer therefore never sleeps longer than
``expiry_check_s`` of real time, so a moved clock is noticed within that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.devmode.mocks.genesys.state import MockGenesysState

logger = logging.getLogger(__name__)

#: Shortest pause between two sweeps, so a clock in the past never makes it spin.
MIN_PAUSE_S = 0.01


class ExpiryTimer:
    """One background task per mock, started and stopped by the app's lifespan."""

    def __init__(self, state: MockGenesysState) -> None:
        """Watch this state's tokens and channels."""
        self.state = state
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="mock-genesys-expiry")

    async def stop(self) -> None:
        """Cancel the task and wait for it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def pause_s(self) -> float:
        """How long to wait before the next sweep, in real seconds."""
        longest = self.state.config.expiry_check_s
        deadline = self.state.next_expiry()
        if deadline is None:
            return longest
        return min(longest, max(MIN_PAUSE_S, deadline - self.state.now()))

    async def _run(self) -> None:
        changed = self.state.expiry_changed
        while True:
            changed.clear()
            try:
                self.state.sweep()
            except Exception:  # pragma: no cover - a bug must not stop the timer for good
                logger.exception("expiry sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=self.pause_s())
