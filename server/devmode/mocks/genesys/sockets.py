"""Socket plumbing: one outbox and one writer per WebSocket.

Publishers never touch a socket: they push frames to its :class:`Outbox`
(synchronously, on the loop), and :func:`serve_outbox` is the socket's only
writer. A socket that falls too far behind is closed instead of buffering
without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected


@dataclass(frozen=True)
class CloseFrame:
    """Tells a socket's writer to close (``send=False``: the peer already left)."""

    code: int = 1000
    reason: str = ""
    send: bool = True


class Outbox:
    """The queue of frames for one socket; its writer is :func:`serve_outbox`."""

    def __init__(self, limit: int = 1000) -> None:
        """Create an open outbox; a socket more than ``limit`` frames behind is closed."""
        self._queue: asyncio.Queue[str | CloseFrame] = asyncio.Queue()
        self._limit = limit
        self.closed = False

    def push(self, text: str) -> bool:
        """Queue a text frame; False if the outbox is closed (or just got closed)."""
        if self.closed:
            return False
        if self._queue.qsize() >= self._limit:
            self.close(1008, "Too many undelivered messages")
            return False
        self._queue.put_nowait(text)
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Queue a close frame after what is already queued; later pushes are dropped."""
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(CloseFrame(code, reason))

    def peer_gone(self) -> None:
        """The client disconnected: stop the writer without sending a close frame."""
        self.closed = True
        self._queue.put_nowait(CloseFrame(1006, "", send=False))

    async def get(self) -> str | CloseFrame:
        """Wait for the next frame."""
        return await self._queue.get()


async def _read_socket(
    websocket: WebSocket, outbox: Outbox, on_text: Callable[[str], None] | None
) -> None:
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None and on_text is not None:
                on_text(text)
    except (WebSocketDisconnect, WebSocketDisconnected):
        return
    finally:
        outbox.peer_gone()


async def serve_outbox(
    websocket: WebSocket, outbox: Outbox, on_text: Callable[[str], None] | None = None
) -> None:
    """Be the single writer of an accepted socket until its outbox closes or the peer leaves.

    Text frames from the client are handed to ``on_text`` (called on the loop,
    so it may push to the outbox).
    """
    reader = asyncio.create_task(_read_socket(websocket, outbox, on_text))
    try:
        while True:
            item = await outbox.get()
            if isinstance(item, CloseFrame):
                if item.send:
                    await websocket.close(item.code, item.reason)
                return
            await websocket.send_text(item)
    except (WebSocketDisconnect, WebSocketDisconnected):
        return
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
