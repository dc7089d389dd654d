"""A raw HTTP/1.1 server on a loopback port, for clients' tests: each test writes the
server's side byte by byte, so it can answer the way real servers misbehave."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(params=[pytest.param(("asyncio", {}), id="asyncio"),
                        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Each test of a module that imports this runs under asyncio's own event loop and
    uvloop's (the server's)."""
    return request.param


@contextlib.asynccontextmanager
async def server(handler: Handler, *, tls: ssl.SSLContext | None = None
                 ) -> AsyncIterator[tuple[str, list[int]]]:
    """A raw HTTP server on a loopback port: its URL, and one entry per connection."""
    connections: list[int] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    listener = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    async with listener:
        yield f"{scheme}://localhost:{port}" if tls else f"{scheme}://127.0.0.1:{port}", connections


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head (its body read and dropped)."""
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


def answer(body: bytes, *extra: bytes) -> bytes:
    """A 200 response with ``body`` and its length, and ``extra`` header lines."""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + b"".join(extra) + b"\r\n" + body)
