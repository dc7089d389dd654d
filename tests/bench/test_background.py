"""The load's lean stream reader against raw servers on loopback: what it notes of each
event, however the bytes are cut, and how a stream ends."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

import bench.background
import bench.load
from bench.background import Background, read_stream
from bench.load import Target, Trace
from tests.web.rawhttp import read_request, server

pytestmark = pytest.mark.anyio

EVENTS = (b": ping\r\n\r\n"
          b"event: suggestion\r\ndata: {\"sources\": []}\r\nid: 1\r\n\r\n"
          b"event: delta\r\ndata: {\"text\": \"Refunds take five\"}\r\n\r\n"
          b"event: delta\r\ndata: {\"text\": \" days.\"}\r\n\r\n"
          b"event: done\r\ndata: {\"outcome\": \"completed\"}\r\n\r\n")


def _chunked(body: bytes, size: int) -> bytes:
    """``body`` in chunks of ``size`` bytes: events and CRLFs cut anywhere."""
    out = b""
    for start in range(0, len(body), size):
        piece = body[start:start + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


async def answer_events(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server's handler: one request answered with ``EVENTS``, to its ``done``."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(EVENTS, 4096))
    await writer.drain()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("size", [1, 7, 4096])
async def test_every_event_is_noted_however_the_bytes_are_cut(size: int) -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(body := _chunked(EVENTS, size)), 5):
            writer.write(body[start:start + 5])  # the chunks' own heads cut too
            await writer.drain()

    async with server(handler) as (url, _):
        trace = await read_stream(Target("peer", url))
    assert trace.status == 200 and trace.error is None and trace.closed is None
    assert trace.suggestion is not None and trace.first_delta == trace.deltas[0]
    assert trace.words == [3, 1]
    assert trace.done == {"outcome": "completed"}
    assert seen[0].startswith(b"POST /api/assist/stream HTTP/1.1\r\n")
    assert b"Content-Type: application/json" in seen[0]


async def test_the_request_carries_the_targets_body_and_headers() -> None:
    bodies: list[dict[str, object]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        bodies.append(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with server(handler) as (url, _):
        trace = await read_stream(Target("peer", url))
    assert trace.status == 503 and trace.error == "HTTP 503" and not trace.open
    assert bodies[0]["trigger"] == "manual" and bodies[0]["requestId"] == trace.request_id


async def test_a_response_that_ends_without_done_is_closed_not_failed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        # HTTP/1.0 style: no length, the body ends with the connection.
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Connection: close\r\n\r\nevent: delta\ndata: {\"text\": \"Hi\"}\n\n")
        await writer.drain()

    async with server(handler) as (url, _):
        trace = await read_stream(Target("peer", url))
    assert trace.deltas and trace.done is None and trace.error is None
    assert trace.closed is not None


async def test_closing_the_background_closes_each_connection() -> None:
    gone = asyncio.Event()
    closed_by_client = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal closed_by_client
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n"
                     + _chunked(b"event: delta\ndata: {\"text\": \"a b\"}\n\n", 4096)[:-5])
        await writer.drain()
        if await reader.read() == b"":  # end of file: the client went away
            closed_by_client += 1
            if closed_by_client == 3:
                gone.set()

    async with server(handler) as (url, _):
        background = Background(Target("peer", url))
        await background.grow(3, batch=3)
        assert background.open_count() == 3 and not background.failed()
        await background.close()
        await gone.wait()
    assert all(t.closed is not None and t.error is None for t in background.traces)


async def test_until_ends_the_read_at_that_event_and_closes_the_connection() -> None:
    gone = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n"
                     + _chunked(EVENTS, 4096)[:-5])  # every event but no end
        await writer.drain()
        if await reader.read() == b"":  # end of file: the client went away
            gone.set()

    async with server(handler) as (url, _):
        trace = await read_stream(Target("peer", url),
                                  until=lambda t: t.first_delta is not None)
        await gone.wait()
    assert trace.first_delta is not None and len(trace.deltas) == 1
    assert trace.done is None and trace.error is None and trace.closed is not None


async def test_a_cancel_that_lands_after_the_stream_ended_is_raised_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a cancel that came after the stream's ``done`` (before the reader's
    task woke) was swallowed. A looped background slot then opened its next stream
    instead of ending, and ``Background.close`` waited for it forever: a latency run
    hung at its extractive levels, whose streams end every few seconds."""
    task: asyncio.Task[object] | None = None
    noted = bench.load.note_event  # what bench.background calls

    def note_then_cancel(trace: Trace, name: str, data: str, now: float) -> bool:
        if name == "done" and task is not None:
            task.cancel()  # as Background.close does, while the done is being noted
        return noted(trace, name, data, now)

    monkeypatch.setattr(bench.background, "note_event", note_then_cancel)

    traces: list[Trace] = []
    async with server(answer_events) as (url, _):
        task = asyncio.create_task(read_stream(Target("peer", url), traces=traces))
        with pytest.raises(asyncio.CancelledError):
            await task
    [trace] = traces
    assert trace.done == {"outcome": "completed"} and trace.closed is None


async def test_a_refused_connection_is_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass

    async with server(handler) as (url, _):
        pass  # closed: nothing listens there now
    trace = await read_stream(Target("peer", url))
    assert trace.error == "ConnectionRefusedError" and not trace.open


async def test_looped_streams_start_again_once_spread_then_as_they_end() -> None:
    """Regression: looped streams opened together started again together, a wave of
    new requests each time (the extractive 500-stream level's p99); each slot now waits
    once, a part of its first stream's length, before its second."""
    requests = 0
    enough = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            requests += 1
            if requests == 9:
                enough.set()
            body = _chunked(EVENTS, 4096)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n" + body)
            await writer.drain()

    lengths: list[float] = []

    def spread(length: float) -> float:
        lengths.append(length)
        return 0.0

    async with server(handler) as (url, _):
        background = Background(Target("peer", url), loop=True, spread=spread)
        await background.grow(3, batch=3)
        await enough.wait()  # three streams a slot at least
        await background.close()
    assert len(lengths) == 3 and all(length > 0 for length in lengths)  # once a slot, timed


async def test_staggered_streams_each_open_after_their_own_delay() -> None:
    """Regression: the latency level's background streams opened at once, so the model
    paced them in step and their tokens came in bursts; with ``stagger_s`` each opens
    after its own random part of it, and without it none waits."""
    asked: list[float] = []
    delays = iter([0.2, 0.0, 0.1])

    def stagger(within: float) -> float:
        asked.append(within)
        return next(delays)

    async with server(answer_events) as (url, _):
        background = Background(Target("peer", url), stagger=stagger)
        begun = time.monotonic()
        await background.grow(3, batch=3, stagger_s=0.5)
        await background.close()
        plain = Background(Target("peer", url), stagger=stagger)
        await plain.grow(2, batch=2)
        await plain.close()
    assert asked == [0.5, 0.5, 0.5]  # drawn for the staggered streams only
    offsets = sorted(t.sent - begun for t in background.traces)
    # asyncio never wakes a sleep early: each opened no sooner than its delay.
    assert offsets[1] >= 0.1 and offsets[2] >= 0.2
