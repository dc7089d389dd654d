"""Serialising pipeline events as Server-Sent Events, each with an ``id``.

The wire format is sse-starlette's (``ServerSentEvent.encode``, written out for the
pipeline's events in ``encode``); the response that sends it is ours
(``server/web/streamed.py``): one task per stream, not the task group of
``EventSourceResponse`` (see docs/performance.md, "Per-stream memory").
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable

import orjson
from sse_starlette import ServerSentEvent

from server.pipeline.events import KEEPALIVE, Event
from server.web.streamed import OneTaskStream

# Proxies (nginx) buffer responses unless told not to; caches must never keep a stream.
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
MEDIA_TYPE = "text/event-stream"

# A comment line: EventSource ignores it, and it keeps proxies and the page's stall
# timer from taking a quiet stream for a dead one.
PING = ServerSentEvent(comment="ping").encode()


def encode(name: str, event_id: str, data: str) -> bytes:
    """One SSE message: the bytes ``ServerSentEvent(data, event=name, id=event_id)``
    encodes, without its per-line regular expressions and buffer (a few microseconds,
    ten thousand events a second). That holds because none of the three has a line
    break: the name and id are the pipeline's own, and JSON escapes CR and LF."""
    return f"id: {event_id}\r\nevent: {name}\r\ndata: {data}\r\n\r\n".encode()


async def as_sse(stream: AsyncIterator[Event]) -> AsyncGenerator[bytes, None]:
    """Each event as an encoded SSE message whose id is ``<suggestion id>.<sequence>``;
    a keep-alive as a comment."""
    sequence = 0
    try:
        async for event in stream:
            if event.name == KEEPALIVE:
                yield PING
                continue
            sequence += 1
            # orjson writes what json.dumps(ensure_ascii=False, separators=(",", ":"))
            # does, in a fifth of the time (one event a window a stream).
            yield encode(event.name, f"{event.data['id']}.{sequence}",
                         orjson.dumps(event.data).decode())
    finally:
        # Closing here (not at garbage collection) runs the pipeline's cleanup at once.
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def event_source(stream: AsyncIterator[Event], *, send_timeout_s: float,
                 on_close: Callable[[], None]) -> OneTaskStream:
    """A ``text/event-stream`` response of ``stream`` (which yields its own keep-alives).

    A client that stops reading is dropped after ``send_timeout_s``; on shutdown the
    pipeline itself ends each stream with its final events (``StreamRegistry``).
    """
    return OneTaskStream(as_sse(stream), media_type=MEDIA_TYPE, headers=STREAM_HEADERS,
                         on_close=on_close, send_timeout_s=send_timeout_s)
