"""What the generator's task hands the relay loop: items in order, taken all at once.

With an ``asyncio.Queue`` the relay woke once per model token and waited through
``asyncio.wait_for(queue.get(), timeout)``, which on Python 3.11 wraps every get in
a task of its own. Here the relay takes everything that has arrived in one wake,
and a wait costs one future and one timer handle. ``Room`` bounds what the
producer may put ahead of the relay, so a client that lags holds a bounded amount.
"""

from __future__ import annotations

import asyncio


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Inbox:
    """A one-consumer inbox: ``put`` never waits, ``take`` returns every item so far."""

    def __init__(self) -> None:
        # A list, not a deque: a deque's first block alone is 600 bytes, and thousands of
        # idle streams each keep an inbox.
        self._items: list[object] = []
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: object) -> None:
        """Add ``item`` and wake the consumer if it waits."""
        self._items.append(item)
        if self._waiter is not None:
            _release(self._waiter)

    async def take(self, within_s: float) -> list[object]:
        """Every item put so far, oldest first; when there is none yet, the ones put
        within ``within_s`` seconds (an empty list if none came)."""
        if not self._items:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiter = waiter
            timer = loop.call_later(max(0.0, within_s), _release, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        items, self._items = self._items, []
        return items


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
