"""The HTTP/2 stream client (``server.web.upstream_h2``, its connections
``server.web.upstream_h2_connection``) against hypercorn and against
raw HTTP/2 servers (``tests.web.rawh2``) on loopback ports, under asyncio's own event
loop and uvloop's (the server's)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import h2.errors
import h2.events
import h2.settings
import httpx
import pytest

from bench.procs import Certificate
from server.web.upstream_body import Origin, UpstreamResponse
from server.web.upstream_h2 import H2StreamClient
from tests.asgi import request_body
from tests.servers import serve, serve_http2
from tests.web.rawh2 import Peer
from tests.web.rawhttp import anyio_backend, server  # noqa: F401  (both event loops)

pytestmark = pytest.mark.anyio

HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream",
           "Connection": "keep-alive", "Host": "ignored"}
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def body_of(response: UpstreamResponse) -> bytes:
    try:
        return b"".join([part async for part in response.aiter_raw()])
    finally:
        await response.aclose()


async def _start(send: Send, status: int = 200,
                 headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/event-stream"), *headers]})


async def _part(send: Send, data: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


class Model:
    """An ASGI app with a route a test: what each does is in its branch."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes, dict[bytes, bytes]]] = []
        self.disconnected: asyncio.Event | None = None  # the server loop's

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive,
                       send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        body = await request_body(receive)
        self.requests.append((f"{scope['method']} {path}?{scope['query_string'].decode()} "
                              f"HTTP/{scope['http_version']}", body, dict(scope["headers"])))
        if path == "/parts":
            await _start(send, headers=((b"x-two", b"a"), (b"x-two", b"b")))
            for index in range(3):
                await _part(send, f"data: {index}\n\n".encode())
            await _part(send, b"", more=False)
        elif path == "/flood":  # 1 MiB, as fast as the window lets it go
            await _start(send)
            for index in range(64):
                await _part(send, bytes([65 + index % 26]) * 16384)
            await _part(send, b"", more=False)
        elif path == "/endless":  # a first part, then nothing until the client goes
            self.disconnected = self.disconnected or asyncio.Event()
            await _start(send)
            await _part(send, b"abc")
            while (await receive())["type"] != "http.disconnect":
                pass
            self.disconnected.set()
        elif path == "/disconnected":  # once an endless stream's client has gone
            self.disconnected = self.disconnected or asyncio.Event()
            await self.disconnected.wait()
            await _start(send)
            await _part(send, b"gone", more=False)
        elif path == "/busy":
            await _start(send, status=503, headers=((b"retry-after", b"2"),))
            await _part(send, b'{"error": "busy"}', more=False)


async def test_a_response_arrives_with_its_status_headers_and_every_part() -> None:
    model = Model()
    client = H2StreamClient()
    with serve_http2(model) as url:
        response = await client.post(Origin(url + "/parts?x=1"), b'{"a":1}', HEADERS)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["x-two"] == "a, b"
        assert await body_of(response) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        busy = await client.post(Origin(url + "/busy"), b"{}", HEADERS)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
        assert await busy.aread() == b'{"error": "busy"}'
        await busy.aclose()
    await client.aclose()
    line, body, headers = model.requests[0]
    assert line == "POST /parts?x=1 HTTP/2" and body == b'{"a":1}'
    assert headers[b"accept"] == b"text/event-stream"
    # Connection-specific headers are not sent over HTTP/2 (h2 would refuse them).
    assert b"connection" not in headers and headers.get(b"host", b"") != b"ignored"


async def test_streams_share_a_connection_up_to_the_servers_limit() -> None:
    client = H2StreamClient()
    with serve_http2(Model(), max_streams=4) as url:
        origin = Origin(url + "/endless")
        responses = await asyncio.gather(*[client.post(origin, b"{}", HEADERS)
                                           for _ in range(10)])
        for response in responses:
            assert await anext(response.aiter_raw()) == b"abc"
        assert client.connections(origin) == 3  # 4 + 4 + 2
        for response in responses:
            await response.aclose()
        # Let go of, the streams leave room: the next takes a connection already open.
        response = await client.post(Origin(url + "/parts"), b"{}", HEADERS)
        assert await body_of(response) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        assert client.connections(origin) == 3
    await client.aclose()


async def test_a_stream_nobody_reads_holds_up_only_itself() -> None:
    # Its 64 KiB window stops its sender; the connection's window (the largest) does
    # not, so the other streams on the connection go on.
    client = H2StreamClient()
    with serve_http2(Model()) as url:
        flood = await client.post(Origin(url + "/flood"), b"{}", HEADERS)
        other = await client.post(Origin(url + "/parts"), b"{}", HEADERS)
        assert client.connections(Origin(url)) == 1
        assert await body_of(other) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        reads = [part async for part in flood.aiter_raw()]
        await flood.aclose()
    await client.aclose()
    data = b"".join(reads)
    assert len(data) == 64 * 16384
    assert data == b"".join(bytes([65 + i % 26]) * 16384 for i in range(64))
    assert max(len(part) for part in reads) <= 64 * 1024  # as by one socket read


async def test_a_response_left_before_its_end_is_reset_and_its_connection_kept() -> None:
    client = H2StreamClient()
    with serve_http2(Model()) as url:
        response = await client.post(Origin(url + "/endless"), b"{}", HEADERS)
        assert await anext(response.aiter_raw()) == b"abc"
        await response.aclose()
        # Answered once the server has seen the first stream's client go.
        assert await body_of(await client.post(Origin(url + "/disconnected"), b"{}",
                                               HEADERS)) == b"gone"
        assert client.connections(Origin(url)) == 1
    await client.aclose()


async def test_the_connection_lost_mid_stream_is_a_read_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer)
        request = await peer.request()
        assert request is not None and request.stream_id is not None
        peer.respond(request.stream_id, headers=((b"content-type", b"text/event-stream"),))
        peer.h2.send_data(request.stream_id, b"data: 0\n\n")
        peer.flush()
        await writer.drain()  # then the connection closes

    client = H2StreamClient()
    async with server(handler) as (url, _):
        response = await client.post(Origin(url), b"{}", HEADERS)
        parts = response.aiter_raw()
        assert await anext(parts) == b"data: 0\n\n"
        with pytest.raises(httpx.ReadError):
            await anext(parts)
        await response.aclose()
    await client.aclose()


async def test_a_refused_stream_is_sent_once_more_and_a_going_away_connection_left() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer)
        request = await peer.request()
        assert request is not None and request.stream_id is not None
        if len(connections) == 1:
            # Not processed: GOAWAY before it, the client may send it again elsewhere.
            peer.h2.close_connection(last_stream_id=0)
            peer.flush()
            await peer.event()  # until the client closes
            return
        peer.respond(request.stream_id, body=b"second")
        await peer.event()

    client = H2StreamClient()
    async with server(handler) as (url, connections):
        assert await body_of(await client.post(Origin(url), b"{}", HEADERS)) == b"second"
        assert len(connections) == 2
    await client.aclose()


async def test_a_stream_reset_by_the_server_is_an_error_and_not_sent_again() -> None:
    settings: list[h2.settings.Settings] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer)
        while (request := await peer.request()) is not None:
            settings.append(peer.h2.remote_settings)
            assert request.stream_id is not None
            peer.h2.reset_stream(request.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            peer.flush()

    client = H2StreamClient()
    async with server(handler) as (url, connections):
        with pytest.raises(httpx.RemoteProtocolError, match="reset the stream"):
            await client.post(Origin(url), b"{}", HEADERS)
        assert len(connections) == 1
    await client.aclose()
    # The client's settings: no server push, a response's headers bounded.
    assert settings[0].enable_push == 0
    assert settings[0].max_header_list_size == 64 * 1024


async def test_a_connection_unused_for_its_expiry_is_closed() -> None:
    ended: asyncio.Queue[int] = asyncio.Queue()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer)
        request = await peer.request()
        assert request is not None and request.stream_id is not None
        peer.respond(request.stream_id, body=b"ok")
        while await peer.event() is not None:
            pass
        ended.put_nowait(len(connections))

    client = H2StreamClient(keepalive_expiry=0.01)
    # A bound on a hang (the failure), not a timing: the close is due in 10 ms.
    async with server(handler) as (url, connections), asyncio.timeout(30):
        assert await body_of(await client.post(Origin(url), b"{}", HEADERS)) == b"ok"
        assert await ended.get() == 1
        assert client.connections(Origin(url)) == 0
    await client.aclose()


async def test_a_server_that_does_not_speak_http2_is_a_connect_error() -> None:
    # uvicorn speaks HTTP/1.1 only: the connection preface is a bad request to it.
    client = H2StreamClient()
    with serve(Model()) as url, pytest.raises(httpx.ConnectError, match="HTTP/2"):
        await client.post(Origin(url), b"{}", HEADERS)
    with pytest.raises(httpx.ConnectError):
        await client.post(Origin(url), b"{}", HEADERS)  # nobody listens there now
    await client.aclose()


@pytest.mark.parametrize("alpn, agreed", [(("h2", "http/1.1"), True), (("http/1.1",), False)])
async def test_over_tls_the_server_must_agree_to_http2(
        certificate: Certificate, alpn: tuple[str, ...],
        agreed: bool) -> None:
    ca, chain, key = certificate.ca, certificate.chain, certificate.key
    context = ssl.create_default_context()
    ca.configure_trust(context)
    client = H2StreamClient(verify=context)
    with serve_http2(Model(), certfile=str(chain), keyfile=str(key), alpn=alpn) as url:
        if agreed:
            response = await client.post(Origin(url + "/parts"), b"{}", HEADERS)
            assert await body_of(response) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        else:
            with pytest.raises(httpx.ConnectError, match="did not agree to HTTP/2"):
                await client.post(Origin(url + "/parts"), b"{}", HEADERS)
        await client.aclose()


async def test_a_closed_client_refuses_and_its_open_streams_end() -> None:
    client = H2StreamClient()
    with serve_http2(Model()) as url:
        response = await client.post(Origin(url + "/endless"), b"{}", HEADERS)
        parts = response.aiter_raw()
        assert await anext(parts) == b"abc"
        await client.aclose()
        with contextlib.suppress(httpx.ReadError):
            async for _ in parts:
                pass
        await response.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await client.post(Origin(url), b"{}", HEADERS)


async def test_a_response_whose_headers_pass_the_bound_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer)
        request = await peer.request()
        assert request is not None and request.stream_id is not None
        peer.respond(request.stream_id, body=b"ok", headers=((b"x-big", b"a" * 100_000),))
        await peer.event()

    client = H2StreamClient()
    async with server(handler) as (url, _):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(Origin(url), b"{}", HEADERS)
    await client.aclose()
