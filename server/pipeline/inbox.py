"""What the generator's task hands the relay loop: items in order, taken all at once.

With an ``asyncio.Queue`` the relay woke once per model token and waited through
``asyncio.wait_for(queue.get(), timeout)``, which on Python 3.11 wraps every get in
a task of its own. Here the relay takes everything that has arrived in one wake,
and a wait costs one future and one timer handle. ``Room`` bounds what the
producer may put ahead of the relay, so a client that lags holds a bounded amount.

The relay cannot send text before its aggregation window ends, so while the window
runs an ordinary item (``urgent=False``) does not wake it: the first one sets a
wake for the window's end. At 20 tokens a second and a 100 ms window that halves
the relay's wakes; the time the last such item came is kept (``last_at``) so the
watchdog counts progress from when text arrived, not from when it was looked at.

The producer waits too (``held``): once its item waits for the window's end it reads
the model no further until the relay has taken it, so the tokens that come meanwhile
stay in the connection's buffer and the next read takes them all, one wake of the
producer a window instead of one a token. The text it then puts says how long it had
waited unread (``waited_s``), so ``last_at`` is still when it came.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Inbox:
    """A one-consumer inbox: ``put`` never waits, ``take`` returns every item so far."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        # A list, not a deque: a deque's first block alone is 600 bytes, and thousands of
        # idle streams each keep an inbox.
        self._items: list[object] = []
        self._waiter: asyncio.Future[None] | None = None
        self._clock = clock
        self._hold_until: float | None = None  # loop time; set by a waiting take
        self._held: asyncio.TimerHandle | None = None
        self.last_at: float | None = None  # when the last ordinary item came (clock)
        self._taken: asyncio.Future[None] | None = None  # the producer waits for a take

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: object, *, urgent: bool = True, waited_s: float = 0.0) -> None:
        """Add ``item`` and wake the consumer if it waits; an item that is not
        ``urgent`` wakes it no earlier than the ``hold_s`` its take gave. ``waited_s``:
        how long before now the item came (``last_at`` is then)."""
        self._items.append(item)
        if not urgent:
            self.last_at = self._clock() - waited_s
        waiter = self._waiter
        if waiter is None:
            return
        if not urgent and self._hold_until is not None:
            if self._held is None:
                self._held = asyncio.get_running_loop().call_at(
                    self._hold_until, _release, waiter)
            return
        _release(waiter)

    async def take(self, within_s: float, *, hold_s: float = 0.0) -> list[object]:
        """Every item put so far, oldest first; when there is none yet, the ones put
        within ``within_s`` seconds (an empty list if none came). Ordinary items put in
        the first ``hold_s`` seconds are returned at its end, with what came since."""
        if not self._items:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiter = waiter
            if hold_s > 0:
                self._hold_until = loop.time() + hold_s
            timer = loop.call_later(max(0.0, within_s), _release, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                if self._held is not None:
                    self._held.cancel()
                    self._held = None
                self._waiter = self._hold_until = None
        items, self._items = self._items, []
        if (taken := self._taken) is not None:
            self._taken = None
            _release(taken)
        return items

    async def held(self) -> None:
        """Returns once the consumer has taken what waits for its window's end, at once
        when nothing does: a producer that then reads takes all that came meanwhile."""
        if self._held is None:
            return
        if self._taken is None:
            self._taken = asyncio.get_running_loop().create_future()
        await self._taken


class Room:
    """How much the producer may hold ahead of the consumer: at most ``items`` items
    and ``chars`` characters (a single item larger than that still goes, alone)."""

    def __init__(self, *, items: int, chars: int) -> None:
        self.free_items = items
        self.free_chars = chars
        self._freed: asyncio.Event | None = None  # made when the producer first waits

    async def take(self, chars: int) -> None:
        """Wait until there is room, then hold one item of ``chars`` characters."""
        while self.free_items <= 0 or self.free_chars <= 0:
            if self._freed is None:
                self._freed = asyncio.Event()
            self._freed.clear()
            await self._freed.wait()
        self.free_items -= 1
        self.free_chars -= chars

    def give(self, chars: int) -> None:
        """The consumer took one item of ``chars`` characters."""
        self.free_items += 1
        self.free_chars += chars
        if self._freed is not None:
            self._freed.set()
