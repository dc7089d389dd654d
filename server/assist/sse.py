"""Serialising pipeline events as Server-Sent Events (sse-starlette), each with an ``id``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from server.pipeline.events import Event
from server.web.connections import drop_slow_reader

# Proxies (nginx) buffer responses unless told not to; caches must never keep a stream.
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


async def as_sse(stream: AsyncIterator[Event]) -> AsyncIterator[ServerSentEvent]:
    """Each event as an SSE message whose id is ``<suggestion id>.<sequence>``."""
    sequence = 0
    try:
        async for event in stream:
            sequence += 1
            yield ServerSentEvent(
                data=json.dumps(event.data, ensure_ascii=False, separators=(",", ":")),
                event=event.name,
                id=f"{event.data['id']}.{sequence}",
            )
    finally:
        # Closing here (not at garbage collection) runs the pipeline's cleanup at once.
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


class SuggestionStream(EventSourceResponse):
    """An ``EventSourceResponse`` that calls ``on_close`` however the response ends.

    The stream's slot must be given back even when its body never ran (the
    client left before the first byte), which the body's own ``finally``
    cannot promise: an async generator that never started never finishes.
    """

    def __init__(self, content: AsyncIterator[ServerSentEvent], *, on_close: Callable[[], None],
                 ping_s: float, send_timeout_s: float, shutdown_grace_s: float) -> None:
        super().__init__(content, ping=ping_s, headers=STREAM_HEADERS, send_timeout=send_timeout_s,
                         shutdown_grace_period=shutdown_grace_s)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            drop_slow_reader(scope, self.send_timeout or 0.0)
        finally:
            self.on_close()


def event_source(stream: AsyncIterator[Event], *, ping_s: float, send_timeout_s: float,
                 shutdown_grace_s: float, on_close: Callable[[], None]) -> SuggestionStream:
    """A ``text/event-stream`` response of ``stream`` with keep-alive pings.

    A client that stops reading is dropped after ``send_timeout_s``. On shutdown
    sse-starlette would cancel streams at once; the grace period lets our own
    shutdown (``serving.GracefulServer``) send each stream its final event first.
    """
    return SuggestionStream(as_sse(stream), on_close=on_close, ping_s=ping_s,
                            send_timeout_s=send_timeout_s, shutdown_grace_s=shutdown_grace_s)
