"""The outbound client's network layer (``server.web.outbound``) on real loopback
sockets, under asyncio's own event loop and uvloop's (the server's)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from pathlib import Path

import httpcore
import httpx
import pytest
import trustme

from server.web import outbound as network
from server.web.outbound import AsyncioBackend, AsyncioStream, Transport
from tests.web.rawhttp import (
    answer,
    anyio_backend,  # noqa: F401  (both event loops)
    read_request,
    server,
)

pytestmark = pytest.mark.anyio


async def test_a_streamed_body_arrives_read_by_read_as_the_server_sends_it() -> None:
    received = [asyncio.Event() for _ in range(3)]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for index in range(3):
            data = f"data: {index}\n\n".encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
            await received[index].wait()  # the next only once the client has this one
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    parts: list[bytes] = []
    async with server(handler) as (url, _), httpx.AsyncClient(transport=Transport()) as client, \
            client.stream("POST", url, content=b"{}") as response:
        assert response.status_code == 200
        async for part in response.aiter_bytes():
            parts.append(part)
            received[len(parts) - 1].set()
    assert parts == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]


async def test_a_kept_alive_connection_is_used_again() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(3):
            await read_request(reader)
            writer.write(answer(b"ok"))
            await writer.drain()

    async with server(handler) as (url, connections), \
            httpx.AsyncClient(transport=Transport()) as client:
        for _ in range(3):
            assert (await client.get(url)).text == "ok"
    assert len(connections) == 1


async def test_a_connection_the_server_closed_is_not_used_again() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"ok", b"Connection: close\r\n"))
        await writer.drain()

    async with server(handler) as (url, connections), \
            httpx.AsyncClient(transport=Transport()) as client:
        assert (await client.get(url)).text == "ok"
        assert (await client.get(url)).text == "ok"
    assert len(connections) == 2


async def test_an_idle_connection_reads_as_readable_once_the_server_closes_it() -> None:
    # The pool asks "is_readable" of an idle connection before using it again: a
    # server's close must show, or the next request goes to a dead socket.
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()
        await writer.wait_closed()
        closed.set()

    async with server(handler) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port)
        try:
            assert stream.get_extra_info("is_readable") is False
            assert stream.get_extra_info("server_addr")[1] == port
            await stream.write(b"x")
            await closed.wait()
            assert await stream.read(1024) == b""
            assert stream.get_extra_info("is_readable") is True
        finally:
            await stream.aclose()


async def test_a_silent_server_ends_the_read_with_a_read_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # never answers; the client gives up

    timeout = httpx.Timeout(5.0, read=0.05)
    async with server(handler) as (url, _), \
            httpx.AsyncClient(transport=Transport(), timeout=timeout) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url)


async def test_a_refused_connection_is_httpx_connect_error() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    async with httpx.AsyncClient(transport=Transport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")


async def test_a_unix_socket_serves_like_tcp(tmp_path: Path) -> None:
    path = str(tmp_path / "model.sock")

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"over a unix socket"))
        await writer.drain()
        writer.close()

    listener = await asyncio.start_unix_server(accept, path)
    async with listener:
        stream = await AsyncioBackend().connect_unix_socket(path)
        try:
            await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while b"over a unix socket" not in received:
                part = await stream.read(1024)
                assert part, "the server closed before answering"
                received += part
        finally:
            await stream.aclose()


async def test_connecting_to_a_missing_unix_socket_is_a_connect_error(tmp_path: Path) -> None:
    with pytest.raises(httpcore.ConnectError):
        await AsyncioBackend().connect_unix_socket(str(tmp_path / "nothing-here.sock"))


async def test_a_server_that_drops_the_connection_mid_body_is_a_transport_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()

    async with server(handler) as (url, _), httpx.AsyncClient(transport=Transport()) as client:
        with pytest.raises(httpx.TransportError):
            await client.get(url)


async def test_https_with_a_trusted_certificate_and_refused_without() -> None:
    authority = trustme.CA()
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(served)
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await read_request(reader)
            writer.write(answer(b"secret"))
            await writer.drain()

    async with server(handler, tls=served) as (url, _):
        async with httpx.AsyncClient(transport=Transport(verify=trusted)) as client:
            response = await client.get(url)
            assert response.text == "secret"  # the server speaks nothing but TLS
        async with httpx.AsyncClient(transport=Transport()) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(url)


class _Transport:
    """Enough of an asyncio transport to watch the protocol pause and resume it."""

    def __init__(self) -> None:
        self.paused = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return False


def test_reading_pauses_when_the_reader_falls_behind_and_resumes_when_it_catches_up() -> None:
    protocol = network._Reading()
    fake = _Transport()
    protocol.connection_made(fake)  # type: ignore[arg-type]
    block = b"x" * (network._HIGH_WATER // 4)
    for _ in range(4):
        protocol.data_received(block)
    assert not fake.paused  # exactly at the high-water mark
    protocol.data_received(b"y")
    assert fake.paused
    taken = b""
    for _ in range(5):  # a block a take: resumed within the five blocks it holds
        if not fake.paused:
            break
        taken += protocol.take(len(block))
    assert not fake.paused
    assert protocol.buffered <= network._HIGH_WATER // 4
    for _ in range(len(block)):  # bounded: a take that returned nothing would spin
        if not protocol.chunks:
            break
        taken += protocol.take(1000)
    assert taken == block * 4 + b"y"


async def test_httpcore_errors_come_out_as_httpx_errors() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()

    async with server(handler) as (url, _), httpx.AsyncClient(transport=Transport()) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(url)


async def test_a_request_waiting_past_the_pool_timeout_is_httpx_pool_timeout() -> None:
    held = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        held.set()
        await reader.read()  # the one connection stays busy until the client leaves

    one = Transport(limits=httpx.Limits(max_connections=1))
    timeout = httpx.Timeout(5.0, pool=0.05)
    async with server(handler) as (url, _), \
            httpx.AsyncClient(transport=one, timeout=timeout) as client, \
            client.stream("GET", url):
        await held.wait()
        with pytest.raises(httpx.PoolTimeout):
            await client.get(url)


async def test_responses_come_over_this_modules_sockets() -> None:
    # httpx builds its own pool first; this one must be the pool that serves.
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"ok"))
        await writer.drain()

    async with server(handler) as (url, _), httpx.AsyncClient(transport=Transport()) as client:
        response = await client.get(url)
    assert isinstance(response.extensions["network_stream"], AsyncioStream)


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY"])
def test_a_proxy_in_the_environment_leaves_the_client_to_httpx_own_transports(
        monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    # httpx reads the proxy variables only when it is given no transport.
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "internal.example")  # alone, no proxy to go through
    assert isinstance(network.transport(httpx.Limits()), Transport)
    assert not network.proxied()  # the model's streams take the lean client
    monkeypatch.setenv(variable, "http://127.0.0.1:3128")
    assert network.transport(httpx.Limits()) is None
    assert network.proxied()  # ...and go through httpx and its proxy
