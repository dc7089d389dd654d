"""Running the production server: uvicorn, with a shutdown that ends streams cleanly.

On SIGTERM (or SIGINT) uvicorn stops accepting connections and waits up to its
graceful timeout for open responses to finish. Suggestion streams would only
finish at their own limits, so ``GracefulServer`` first stops every open stream
(each sends its last events and ``done``, ``cancelled``/``shutdown``) and new
streams are refused with 503. The process exits as soon as they are sent, or
after ``ASSIST_SHUTDOWN_GRACE_S`` at the latest.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from server.assist.streams import StreamRegistry
from server.errors import ShuttingDown
from server.settings import Settings
from server.web.connections import GuardedHttpProtocol, guarded_protocol


def uvicorn_config(app: ASGIApp, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for the panel: its HTTP protocol bounds the time a client
    may take to send request headers and the time a closing connection may hold
    unsent bytes (``server/web/connections.py``). ``options`` go to ``uvicorn.Config``."""
    protocol = guarded_protocol(header_timeout_s=settings.header_timeout_s,
                                close_linger_s=settings.send_timeout_s)
    # No WebSocket: an upgrade request is plain HTTP to the app (connections.py).
    return uvicorn.Config(app, http=protocol, ws="none", **options)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, stopping every open stream first on SIGTERM or SIGINT.

    ``on_ready`` is called once it accepts connections (a worker of ``--workers``
    tells its supervisor so).
    """

    def __init__(self, config: uvicorn.Config, streams: StreamRegistry, *,
                 on_ready: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.streams = streams
        self.on_ready = on_ready
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started and self.on_ready is not None:
            self.on_ready()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler runs between bytecodes: hand the work to the loop.
        if self._loop is not None and not self.streams.closing:
            self._loop.call_soon_threadsafe(self._stop)
        super().handle_exit(sig, frame)

    def _stop(self) -> None:
        """End every open stream, and answer each request whose body is still coming
        503 ``shutting_down`` at once: waiting for it held the worker to the end of its
        grace period, which then cancelled the request (a 500 and a traceback)."""
        self.streams.shutdown()
        for connection in list(self.server_state.connections):
            if isinstance(connection, GuardedHttpProtocol):
                connection.refuse_unread_body(ShuttingDown(
                    "The server is shutting down; try again.",
                    retry_after=self.streams.retry_after_s), b"503 Service Unavailable")
