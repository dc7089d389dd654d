"""The lean stream client (``server.web.upstream``) against raw HTTP servers on loopback
ports, under asyncio's own event loop and uvloop's (the server's)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import httpx
import pytest
import trustme

from server.web.upstream import Origin, StreamClient, StreamResponse
from tests.web.rawhttp import (
    answer,
    anyio_backend,  # noqa: F401  (both event loops)
    read_request,
    server,
)

pytestmark = pytest.mark.anyio

HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}


async def ask(client: StreamClient, url: str) -> bytes:
    """The body of a POST to ``url``, read to its end."""
    return await body_of(await client.post(Origin(url), b"{}", HEADERS))


async def leave_early(client: StreamClient, url: str) -> None:
    """A POST whose response is left after its first part, ``abc``."""
    response = await client.post(Origin(url), b"{}", HEADERS)
    async for part in response.aiter_raw():
        assert part == b"abc"
        break
    await response.aclose()


# A response that has begun and may never end.
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


async def body_of(response: StreamResponse) -> bytes:
    try:
        return b"".join([part async for part in response.aiter_raw()])
    finally:
        await response.aclose()


async def test_a_chunked_body_arrives_read_by_read_as_the_server_sends_it() -> None:
    received = [asyncio.Event() for _ in range(3)]
    requests: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"X-Two: a\r\nX-Two: b\r\nTransfer-Encoding: chunked\r\n\r\n")
        for index in range(3):
            data = f"data: {index}\n\n".encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
            await received[index].wait()  # the next only once the client has this one
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    parts: list[bytes] = []
    client = StreamClient()
    async with server(handler) as (url, _):
        response = await client.post(Origin(url + "/v1/chat?x=1"), b'{"a":1}', HEADERS)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["x-two"] == "a, b"
        async for part in response.aiter_raw():
            parts.append(part)
            received[len(parts) - 1].set()
        await response.aclose()
    await client.aclose()
    assert parts == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]
    head = requests[0].decode()
    assert head.startswith("POST /v1/chat?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert "Content-Length: 7\r\n" in head and "Accept: text/event-stream\r\n" in head


async def test_a_response_says_how_long_what_it_read_had_waited_unread() -> None:
    now = [100.0]
    sent = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Content-Length: 18\r\n\r\ndata: 0\n\n")
        await writer.drain()
        await sent.wait()
        writer.write(b"data: 1\n\n")
        await writer.drain()

    client = StreamClient(clock=lambda: now[0])
    async with server(handler) as (url, _):
        response = await client.post(Origin(url), b"{}", HEADERS)
        parts = response.aiter_raw()
        assert await anext(parts) == b"data: 0\n\n"
        now[0] = 100.25  # read a quarter of a second after it came
        assert response.waited() == 0.25
        sent.set()
        assert await anext(parts) == b"data: 1\n\n"  # came at 100.25: read at once
        assert response.waited() == 0.0
        await response.aclose()
    assert response.waited() == 0.0  # closed: nothing waits
    await client.aclose()


async def test_a_connection_read_to_the_end_is_used_again() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(3):
            await read_request(reader)
            writer.write(answer(b"ok"))
            await writer.drain()

    client = StreamClient()
    async with server(handler) as (url, connections):
        for _ in range(3):
            assert await ask(client, url) == b"ok"
    await client.aclose()
    assert len(connections) == 1


async def test_a_response_left_before_its_end_closes_its_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(CHUNKED + b"3\r\nabc\r\n")
        await writer.drain()
        await reader.read()  # until the client goes

    client = StreamClient()
    async with server(handler) as (url, connections):
        for _ in range(2):
            await leave_early(client, url)
    await client.aclose()
    assert len(connections) == 2


async def test_a_connection_spent_by_a_response_left_before_its_end_is_replaced_by_a_spare(
) -> None:
    # Which connection each request came on, and how many there were by then.
    seen: list[tuple[int, int]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = len(connections)
        with contextlib.suppress(asyncio.IncompleteReadError):
            await read_request(reader)
            seen.append((number, len(connections)))
            writer.write(CHUNKED + b"3\r\nabc\r\n")
            await writer.drain()
            await reader.read()  # until the client goes

    client = StreamClient(spares=1)
    async with server(handler) as (url, connections):
        for _ in range(2):
            await leave_early(client, url)
            await client.spares_made()
            assert client.idle(Origin(url)) == 1
    await client.aclose()
    # The second request went on the spare made when the first was left, not on a new one.
    assert seen == [(1, 1), (2, 2)]


async def test_spares_are_bounded() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                await read_request(reader)
                writer.write(CHUNKED + b"3\r\nabc\r\n")
                await writer.drain()

    client = StreamClient(spares=1)
    async with server(handler) as (url, connections):
        # Two responses left at once spend two connections; one spare replaces them.
        responses = [await client.post(Origin(url), b"{}", HEADERS) for _ in range(2)]
        for response in responses:
            await response.aclose()
        await client.spares_made()
        assert client.idle(Origin(url)) == 1
        response = await client.post(Origin(url), b"{}", HEADERS)
        assert client.idle(Origin(url)) == 0
        await response.aclose()
        await client.aclose()
    assert len(connections) in (3, 4)  # the last spare may be cancelled before it connects


async def test_a_closed_client_closes_the_spare_it_was_making() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            await read_request(reader)
            writer.write(CHUNKED)
            await writer.drain()
            await reader.read()

    client = StreamClient(spares=1)
    async with server(handler) as (url, _):
        response = await client.post(Origin(url), b"{}", HEADERS)
        await response.aclose()  # a spare is being made
        await client.aclose()
        assert client.idle(Origin(url)) == 0


async def test_idle_connections_and_spares_nobody_takes_are_closed_once_expired() -> None:
    # uvicorn never closes a connection that has carried no request: the client must.
    ended: asyncio.Queue[int] = asyncio.Queue()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = len(connections)
        with contextlib.suppress(asyncio.IncompleteReadError):
            await read_request(reader)
            if number == 1:  # read to its end: kept alive
                writer.write(answer(b"ok"))
            else:  # left before its end: spent, and a spare made
                writer.write(CHUNKED)
            await writer.drain()
        await reader.read()  # until the client closes its side
        ended.put_nowait(number)

    client = StreamClient(spares=1, keepalive_expiry=0.01)
    # A bound on a hang (the failure), not a timing: each close is due in 10 ms.
    async with server(handler) as (url, connections), asyncio.timeout(30):
        assert await ask(client, url) == b"ok"
        assert await ended.get() == 1  # closed idle, with no request after it
        response = await client.post(Origin(url), b"{}", HEADERS)
        await response.aclose()
        assert await ended.get() == 2  # spent
        await client.spares_made()
        assert await ended.get() == 3  # the spare, never taken
        assert client.idle(Origin(url)) == 0
    await client.aclose()


async def test_a_kept_alive_connection_the_server_closed_is_retried_on_a_new_one() -> None:
    # The first connection answers once, then takes the next request and closes: the
    # client finds out only after sending, with nothing of a response come.
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"first"))
        await writer.drain()
        if len(connections) == 1:
            await read_request(reader)

    client = StreamClient()
    async with server(handler) as (url, connections):
        assert await ask(client, url) == b"first"
        assert await ask(client, url) == b"first"
    await client.aclose()
    assert len(connections) == 2


async def test_idle_connections_the_server_closed_are_not_used_again() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"ok"))
        await writer.drain()

    client = StreamClient()
    async with server(handler) as (url, connections):
        for _ in range(3):
            assert await ask(client, url) == b"ok"
    await client.aclose()
    assert len(connections) == 3


async def test_connection_close_and_expired_idle_connections_are_not_used_again() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                await read_request(reader)
                writer.write(answer(b"ok"))
                await writer.drain()

    async def close_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"ok", b"Connection: close\r\n"))
        await writer.drain()
        await reader.read()

    expiring = StreamClient(keepalive_expiry=0.0)
    async with server(handler) as (url, connections):
        for _ in range(2):
            assert await ask(expiring, url) == b"ok"
    await expiring.aclose()
    assert len(connections) == 2
    client = StreamClient()
    async with server(close_handler) as (url, connections):
        for _ in range(2):
            assert await ask(client, url) == b"ok"
    await client.aclose()
    assert len(connections) == 2


async def test_a_body_without_length_ends_when_the_connection_does() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()

    client = StreamClient()
    async with server(handler) as (url, _):
        assert await ask(client, url) == b"all of it"
    await client.aclose()


async def test_a_body_cut_short_is_a_remote_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()

    client = StreamClient()
    async with server(handler) as (url, _):
        response = await client.post(Origin(url), b"{}", HEADERS)
        with pytest.raises(httpx.RemoteProtocolError):
            await body_of(response)
    await client.aclose()


@pytest.mark.parametrize("garbage", [b"SPDY/9 nonsense\r\n\r\n", b"HTTP/1.1 200 OK\r\n\x00\r\n"])
async def test_a_malformed_response_is_a_remote_protocol_error(garbage: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(garbage)
        await writer.drain()
        await reader.read()

    client = StreamClient()
    async with server(handler) as (url, _):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(Origin(url), b"{}", HEADERS)
    await client.aclose()


async def test_a_server_that_closes_without_answering_is_a_remote_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    client = StreamClient()
    async with server(handler) as (url, _):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(Origin(url), b"{}", HEADERS)
    await client.aclose()


async def test_a_refused_connection_is_a_connect_error() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    client = StreamClient()
    with pytest.raises(httpx.ConnectError):
        await client.post(Origin(f"http://127.0.0.1:{port}"), b"{}", HEADERS)


async def test_a_tls_handshake_that_never_ends_is_a_connect_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, and never answers the handshake

    client = StreamClient(connect_timeout=0.2)
    async with server(handler) as (url, _):
        with pytest.raises(httpx.ConnectTimeout):
            await client.post(Origin(url.replace("http:", "https:")), b"{}", HEADERS)


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
        client = StreamClient(verify=trusted)
        assert await ask(client, url) == b"secret"
        await client.aclose()
        with pytest.raises(httpx.ConnectError):
            await StreamClient().post(Origin(url), b"{}", HEADERS)


async def test_an_unread_flood_pauses_the_socket_and_resumes_once_read() -> None:
    sent = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4000000\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):
                writer.write(b"x" * 4000)
                await writer.drain()
            sent.set()

    client = StreamClient()
    async with server(handler) as (url, _):
        response = await client.post(Origin(url), b"{}", HEADERS)
        conn = response._conn
        assert conn is not None
        while not conn.paused:  # the client reads nothing meanwhile
            await conn.changed()
        # What waits is bounded by the high-water mark and one read past it.
        assert conn.buffered <= 64 * 1024 + 256 * 1024
        sizes = [len(part) async for part in response.aiter_raw()]
        assert sum(sizes) == 4_000_000 and sent.is_set()
        # Handed over as socket reads would be: never more than 64 KiB at once.
        assert max(sizes) <= 64 * 1024
        await response.aclose()
    await client.aclose()


async def test_an_error_body_is_read_whole_and_its_status_kept() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\n"
                     b"Content-Length: 9\r\n\r\nslow down")
        await writer.drain()

    client = StreamClient()
    async with server(handler) as (url, _):
        response = await client.post(Origin(url), b"{}", HEADERS)
        assert (response.status_code, response.headers["retry-after"]) == (429, "2")
        assert await response.aread() == b"slow down"
        await response.aclose()
    await client.aclose()


@pytest.mark.parametrize("headers", [{"X-Evil": "a\r\nHost: b"}, {"Bad:Name": "x"},
                                     {"Authorization": "Bearer \u20ac"}])
async def test_a_header_that_would_break_the_request_is_refused_before_sending(
        headers: dict[str, str]) -> None:
    client = StreamClient()
    with pytest.raises(httpx.LocalProtocolError):
        await client.post(Origin("http://127.0.0.1:9"), b"{}", headers)


async def test_a_closed_client_closes_its_idle_connections_and_takes_no_more() -> None:
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"ok"))
        await writer.drain()
        await reader.read()  # until the client closes its side
        closed.set()

    client = StreamClient()
    async with server(handler) as (url, _):
        assert await ask(client, url) == b"ok"
        await client.aclose()
        await closed.wait()
        with pytest.raises(RuntimeError, match="closed"):
            await client.post(Origin(url), b"{}", HEADERS)
