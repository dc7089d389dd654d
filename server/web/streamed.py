"""A streamed response run by the request's own task alone: the panel's SSE and NDJSON
streams.

Starlette's ``StreamingResponse`` and sse-starlette's ``EventSourceResponse`` each run
a task group per response: one task sends the body, another waits on ``receive()``
for the client to leave, sse-starlette's add keep-alive pings and a shutdown watcher.
Thousands of idle streams each kept those tasks, their frames and cancel scopes (27
KB of a stream's memory, measured: docs/performance.md). Here nothing runs beside the
sending task:

- **Disconnect.** Our HTTP protocol (``GuardedHttpProtocol``) calls back when the
  connection is lost, and the callback cancels the sending task, as a task group's
  cancel scope would: the body's generator ends at the point where it waited, its
  cleanup runs (the model request is closed), and the cancellation ends here. On a
  server without that extension a small task waits on ``receive()`` instead.
- **Slow readers.** Each send must complete within ``send_timeout_s`` (a timer
  handle, no task); then the connection is reset (``drop_slow_reader``). A send
  that cannot wait (writing is not paused) goes without the timer: most of them.
- **Keep-alive and shutdown** are the body's own: the suggestion pipeline yields
  pings while it waits (``Pipeline.stream(keepalive_s=...)``), and stops on SIGTERM
  through ``StreamRegistry``, sending its last events itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from server.web.connections import drop_slow_reader, watch_disconnect, writable


class OneTaskStream(Response):
    """A ``200`` response whose body is the bytes ``body`` yields, sent as they come.

    ``on_close`` is called however the response ends, even when the body never ran
    (the client left before the first byte): the stream's slot must be given back, and
    an async generator that never started never runs its own ``finally``.
    """

    def __init__(self, body: AsyncGenerator[bytes, None], *, media_type: str,
                 headers: Mapping[str, str], on_close: Callable[[], None],
                 send_timeout_s: float) -> None:
        self.body_iterator = body
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)
        self.on_close = on_close
        self.send_timeout_s = send_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None  # an ASGI app always runs in a task
        left = False

        def client_left() -> None:
            nonlocal left
            if not left:
                left = True
                task.cancel()

        unwatch = watch_disconnect(scope, receive, client_left)
        self._writable = writable(scope)
        try:
            await self._send(send, {"type": "http.response.start", "status": self.status_code,
                                    "headers": self.raw_headers})
            async for chunk in self.body_iterator:
                await self._send(send, {"type": "http.response.body", "body": chunk,
                                        "more_body": True})
            await self._send(send, {"type": "http.response.body", "body": b""})
        except _SlowReader:
            unwatch()  # the reset below must not cancel this task's cleanup
            drop_slow_reader(scope, self.send_timeout_s)
        except asyncio.CancelledError:
            # Our own cancellation (the client left) ends the response quietly; any
            # other (a server shutting down past its grace) goes on up.
            if not left or task.uncancel() > 0:
                raise
        finally:
            unwatch()
            try:
                await self.body_iterator.aclose()
            finally:
                self.on_close()

    async def _send(self, send: Send, message: dict[str, object]) -> None:
        if self._writable is not None and self._writable():
            await send(message)  # into the socket's buffer at once: nothing to bound
            return
        try:
            async with asyncio.timeout(self.send_timeout_s):
                await send(message)
        except TimeoutError as exc:
            raise _SlowReader from exc


class _SlowReader(Exception):
    """A send outlasted the timeout: the client stopped reading."""

