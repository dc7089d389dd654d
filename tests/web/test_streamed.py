"""The one-task streamed response (server/web/streamed.py), at the ASGI level."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable

import pytest
from starlette.types import Message

from server.web.streamed import OneTaskStream

pytestmark = pytest.mark.anyio


Body = Callable[[list[Message]], AsyncGenerator[bytes, None]]


async def _respond(body: Body) -> tuple[list[Message], int]:
    """The response whose body ``body`` makes (given the list of the messages sent so
    far); the messages sent and how often ``on_close`` ran."""
    sent: list[Message] = []
    closed = 0
    never = asyncio.Event()  # the client stays: receive() waits until the end

    async def receive() -> Message:
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    def on_close() -> None:
        nonlocal closed
        closed += 1

    response = OneTaskStream(body(sent), media_type="text/event-stream", headers={},
                             on_close=on_close, send_timeout_s=5.0)
    await response({"type": "http", "method": "POST", "path": "/", "headers": []},
                   receive, send)
    return sent, closed


async def test_the_headers_go_before_the_body_starts() -> None:
    # A suggestion's first step is its retrieval: the client reads the headers meanwhile,
    # not after the suggestion event (sent with it, they saved the client a wake and the
    # server nothing: docs/performance-history.md).
    seen_at_first_step: list[str] = []

    async def body(sent: list[Message]) -> AsyncGenerator[bytes, None]:
        seen_at_first_step.extend(m["type"] for m in sent)
        yield b"event: suggestion\n\n"
        yield b"event: done\n\n"

    messages, closed = await _respond(body)
    assert seen_at_first_step == ["http.response.start"]
    assert [m["type"] for m in messages] == ["http.response.start", "http.response.body",
                                             "http.response.body", "http.response.body"]
    assert messages[0]["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in messages[0]["headers"]
    assert [m.get("body") for m in messages[1:]] == [
        b"event: suggestion\n\n", b"event: done\n\n", b""]
    assert messages[-1].get("more_body", False) is False and closed == 1


async def test_a_body_that_yields_nothing_still_gets_its_headers_and_its_end() -> None:
    async def body(sent: list[Message]) -> AsyncGenerator[bytes, None]:
        return
        yield b""  # pragma: no cover - makes this an async generator

    messages, closed = await _respond(body)
    assert [m["type"] for m in messages] == ["http.response.start", "http.response.body"]
    assert messages[1]["body"] == b"" and closed == 1
