"""Serialising pipeline events as Server-Sent Events (sse-starlette), each with an ``id``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent

from .events import Event

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


def event_source(stream: AsyncIterator[Event], *, ping_s: float) -> EventSourceResponse:
    """A ``text/event-stream`` response of ``stream`` with keep-alive pings."""
    return EventSourceResponse(as_sse(stream), ping=ping_s, headers=STREAM_HEADERS)
