"""Waiting on callbacks: the reader's half of an outbound connection's protocol, shared
by the shared httpx client's network layer (outbound.py) and the model streams'
clients (upstream.py, and upstream_h2.py's streams).

asyncio calls a protocol back (``data_received``, ``pause_writing``...); the reader
awaits. One future at a time bridges them: ``changed`` waits until the callback side
calls ``wake`` (something arrived, the connection ended), ``drained`` until the
transport's write buffer is under its high-water mark again. No per-connection task,
no lock.
"""

from __future__ import annotations

import asyncio
from typing import cast


class Waitable:
    """Something a reader waits on for a change, and the callback side wakes."""

    # Thousands at once: no per-instance dict (subclasses add their own slots).
    __slots__ = ("_waiter",)

    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        """The reader waiting in ``changed``, if any, goes on."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def changed(self) -> None:
        """Until ``wake``: data, the end of the stream, an error."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


class WakingProtocol(Waitable, asyncio.Protocol):
    """A protocol a reader can wait on: for a change, or for writes to drain."""

    __slots__ = ("_drained", "_writing_paused", "transport")

    def __init__(self) -> None:
        super().__init__()
        self.transport: asyncio.Transport | None = None
        self._drained: asyncio.Future[None] | None = None
        self._writing_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.wake()
        self._release_writer()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._release_writer()

    def _release_writer(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def drained(self) -> None:
        """Until the transport's write buffer is below its high-water mark again."""
        if not self._writing_paused or self.transport is None or self.transport.is_closing():
            return
        self._drained = asyncio.get_running_loop().create_future()
        try:
            await self._drained
        finally:
            self._drained = None
