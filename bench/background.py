"""The load's background streams, held open by a lean reader: the events noted in the
socket's callbacks, with no task woken per event.

Reading hundreds of streams through httpx and httpx-sse cost the harness about 90 us
of its core an event (its client read 600 streams at 20 tokens a second at 0.56 of a
core, beside the mock model at 0.40), so past about 600 streams the gaps a capacity
ramp measured were the harness's own. Here httptools (the parser uvicorn reads
requests with) parses each response as it arrives, the events are split and noted in
``data_received``, and the stream's coroutine waits on one future until the
response ends. The latency benchmark's probes read through it too (``until``: to
their first delta), theirs and the model-direct row's alike: through httpx the
harness's own share of each probe was about 2 ms of a figure whose target is 2.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from functools import partial
from urllib.parse import urlsplit

import httptools

from .load import Conversation, Target, Trace, next_stream, note_event


class _Reader(asyncio.Protocol):
    """One stream's response, its events noted in ``trace`` as they come."""

    def __init__(self, trace: Trace, request: bytes, finished: asyncio.Future[None],
                 started: asyncio.Event | None, ready: Callable[[Trace], bool] | None,
                 until: Callable[[Trace], bool] | None = None) -> None:
        self.trace = trace
        self.request = request
        self.finished = finished
        self.started = started
        self.ready = ready
        self.until = until
        self.parser = httptools.HttpResponseParser(self)
        self.pending = b""  # the start of an event whose end has not come
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # pragma: no cover - never asked for
            self._end(error="upgrade")
        except httptools.HttpParserError as exc:
            self._end(error=type(exc).__name__)

    def connection_lost(self, exc: Exception | None) -> None:
        # A response without a length ends with its connection.
        if self.trace.status == 200 and self.trace.done is None and exc is None:
            self._end(closed=True)
        else:
            self._end(error=type(exc).__name__ if exc is not None else "closed")

    # httptools' callbacks

    def on_headers_complete(self) -> None:
        self.trace.status = status = self.parser.get_status_code()
        if status != 200:
            self._end(error=f"HTTP {status}")

    def on_body(self, body: bytes) -> None:
        data = (self.pending + body).replace(b"\r\n", b"\n")
        if data.endswith(b"\r"):  # half of a CRLF: wait for the rest
            data, self.pending = data[:-1], b"\r"
        else:
            self.pending = b""
        *events, rest = data.split(b"\n\n")
        self.pending = rest + self.pending
        for raw in events:
            if self.finished.done():
                return
            self._event(raw)

    def on_message_complete(self) -> None:
        self._end(closed=self.trace.done is None)

    # ----

    def _event(self, raw: bytes) -> None:
        name, lines = "message", []
        for line in raw.split(b"\n"):
            field, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if field == b"event":
                name = value.decode()
            elif field == b"data":
                lines.append(value)
        if not lines and name == "message":
            return  # a comment (keep-alive) or an empty block
        trace = self.trace
        if note_event(trace, name, b"\n".join(lines).decode(), time.monotonic()):
            self._end()
            return
        if self.started is not None and (self.ready is None or self.ready(trace)):
            self.started.set()
        if self.until is not None and self.until(trace):
            self._end(closed=True)  # the client goes away, as ``load.stream`` does

    def _end(self, *, error: str | None = None, closed: bool = False) -> None:
        if self.finished.done():
            return
        if error is not None and self.trace.error is None and self.trace.done is None:
            self.trace.error = error
        elif closed:
            self.trace.closed = time.monotonic()
        self.finished.set_result(None)
        if self.transport is not None:
            self.transport.close()


async def read_stream(target: Target, *, started: asyncio.Event | None = None,
                      ready: Callable[[Trace], bool] | None = None,
                      until: Callable[[Trace], bool] | None = None,
                      traces: list[Trace] | None = None,
                      conversation: Conversation | None = None) -> Trace:
    """One stream read to ``done``, as ``load.stream`` reads it (the same ``Trace``),
    on a connection of its own, or until ``until(trace)`` is true after an event; then,
    or when cancelled, it closes the connection: ``closed`` (cancelled, the cancellation
    is raised on, the trace noted in ``traces``). With ``conversation``, the stream is
    a turn of it (its session's), else the first of a conversation of its own."""
    headers, body, request_id = target.request(next_stream(), conversation)
    trace = Trace(request_id, time.monotonic())
    if traces is not None:
        traces.append(trace)
    url = urlsplit(f"{target.url}{target.path}")
    payload = json.dumps(body).encode()
    head = [f"POST {url.path} HTTP/1.1", f"Host: {url.netloc}",
            "Content-Type: application/json", "Accept: text/event-stream",
            f"Content-Length: {len(payload)}", *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    transport: asyncio.BaseTransport | None = None
    try:
        transport, _ = await loop.create_connection(
            lambda: _Reader(trace, request, finished, started, ready, until),
            url.hostname or "127.0.0.1", url.port or 80)
        await finished
    except asyncio.CancelledError:
        # Our own harness cancelled it (see Background.close): the client went away. The
        # cancel goes on up even when the stream had ended first: swallowed, it once let a
        # looped slot open its next stream, and close() waited for it forever.
        if trace.done is None and trace.error is None:
            trace.closed = time.monotonic()
        raise
    except OSError as exc:
        trace.error = type(exc).__name__
    finally:
        if transport is not None:
            transport.close()
        if started is not None:
            started.set()
    return trace


#: How long a batch of new streams waits for their first events before the ramp goes on.
START_WITHIN_S = 60.0
# Streams paced alike (the mock's 20 tokens/s) open at random moments over this long,
# two of their token intervals: opened all at once, the mock received the 98 requests
# of the latency section's 100-stream level within a few milliseconds, and their
# tokens came in step, about 80% of them within the same 15 ms of every 50, where
# independent agents' streams keep no step.
STAGGER_S = 0.1


class Background:
    """Streams kept open until ``close``; with ``loop``, each re-opened when it ends."""

    def __init__(self, target: Target, *, loop: bool = False,
                 spread: Callable[[float], float] | None = None,
                 stagger: Callable[[float], float] | None = None) -> None:
        """``spread``: given a slot's first stream's length, how long it waits before
        its second (default: a random part of it, the same every run); ``stagger``:
        given ``grow``'s ``stagger_s``, how long a new stream waits before it opens (the
        same way)."""
        self.target, self.loop = target, loop
        self.traces: list[Trace] = []
        self.tasks: list[asyncio.Task[None]] = []
        self._spread = spread or partial(random.Random(19).uniform, 0.0)
        self._stagger = stagger or partial(random.Random(23).uniform, 0.0)

    async def grow(self, n: int, *, batch: int = 100,
                   ready: Callable[[Trace], bool] | None = None,
                   start_within_s: float = START_WITHIN_S, stagger_s: float = 0.0) -> None:
        """Open streams until ``n`` are running, ``batch`` at a time, each batch waiting
        for its streams' first event (the first after which ``ready(trace)`` is true),
        at most ``start_within_s``: a server out of files can take a connection and
        never answer it (the stream is then not counted open). Growth stops at the first
        batch with a stream that did not start: fewer than ``n`` can then be open, and
        the batches after it would each wait the whole ``start_within_s`` for nothing.
        With ``stagger_s``, each stream of a batch opens after a random part of it (the
        same every run), so that streams paced alike are not in step."""
        while len(self.tasks) < n:
            waits: list[asyncio.Task[bool]] = []
            for _ in range(min(batch, n - len(self.tasks))):
                started = asyncio.Event()
                waits.append(asyncio.create_task(started.wait()))
                delay = self._stagger(stagger_s) if stagger_s > 0 else 0.0
                self.tasks.append(asyncio.create_task(self._slot(started, ready, delay)))
            _, late = await asyncio.wait(waits, timeout=start_within_s)
            for wait in late:
                wait.cancel()
            if late:
                return

    async def _slot(self, started: asyncio.Event,
                    ready: Callable[[Trace], bool] | None, delay: float = 0.0) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        trace = await read_stream(self.target, started=started, ready=ready,
                                  traces=self.traces)
        if self.loop and trace.error is None and trace.closed is None:
            # Streams opened together end together, and would start again together, a
            # wave of new requests each time: once, each waits a random part of its
            # first stream's length, and after that they start again spread out, as
            # independent agents' questions come.
            await asyncio.sleep(self._spread(time.monotonic() - trace.sent))
        while self.loop and trace.error is None and trace.closed is None:
            trace = await read_stream(self.target, traces=self.traces)

    def open_count(self) -> int:
        """Streams open now (answered, not ended)."""
        return sum(1 for trace in self.traces if trace.open)

    def failed(self) -> list[Trace]:
        """Streams that ended other than by a ``done`` or our own close."""
        return [t for t in self.traces if t.error is not None or t.status not in (None, 200)]

    async def close(self) -> None:
        """Close every stream (the client goes away) and wait until they are closed."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
