"""server/web/connections.py: slow and never-reading clients, on a real uvicorn server with
raw sockets, and the body deadline at the ASGI level."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import sys
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import anyio.lowlevel
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.app import create_app
from server.assist.machine import ndjson_stream
from server.assist.sse import event_source
from server.errors import BodyTimeout
from server.pipeline.events import Event
from server.web.connections import (
    MAX_HEADER_BYTES,
    BodyDeadline,
    _BoundedClose,
    guarded_protocol,
    writable,
)
from tests.checks import wait_until
from tests.factories import make_settings
from tests.servers import Running, running

# Bounds short enough that a test waits on them, not on the defaults.
SHORT = 0.5


class Records(logging.Handler):
    """Every record of the loggers it is attached to (uvicorn's do not reach the root)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]

    def tracebacks(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.exc_info]


@contextmanager
def recorded() -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "assist_panel")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def watched_protocol() -> tuple[type[asyncio.Protocol], threading.Event]:
    """The guarded protocol with short bounds, and an event set when a connection is lost."""
    lost = threading.Event()
    base = guarded_protocol(header_timeout_s=SHORT, close_linger_s=SHORT)

    class Watched(base):  # type: ignore[valid-type,misc]
        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            lost.set()

    return Watched, lost


def connect(server: Running, *, rcvbuf: int | None = None) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.socket()
    if rcvbuf is not None:  # before connecting: it sets the window the server sees
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30)  # a safety net only: every read below ends on the server's move
    sock.connect((host, int(port)))
    return sock


def read_to_end(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def split_response(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return status, headers, body


@pytest.fixture
def panel(sample_kb_path: Path) -> Starlette:
    return create_app(make_settings(kb_path=sample_kb_path, body_timeout_s=SHORT))


# ---------------------------------------------------------------- request headers


def exchange(panel: Starlette, sent: bytes) -> bytes:
    """All a server with short bounds answers ``sent`` with, once it has closed the
    connection (without a traceback)."""
    protocol, lost = watched_protocol()
    with running(panel, protocol=protocol) as server, recorded() as logs:
        with connect(server) as sock:
            sock.sendall(sent)
            raw = read_to_end(sock)
        assert lost.wait(30)
        assert server.connections() == 0
        assert not logs.tracebacks()
    return raw


def refused(panel: Starlette, sent: bytes) -> tuple[str, dict[str, str], bytes]:
    """The answer to ``sent``, an error with the connection closed."""
    status, headers, body = split_response(exchange(panel, sent))
    assert headers["connection"] == "close"
    assert headers["x-content-type-options"] == "nosniff"
    return status, headers, body


@pytest.mark.parametrize("sent", [b"", b"POST /auth/state HTTP/1.1\r\nHost: 127.0.0.1\r\n"],
                         ids=["nothing", "half the headers"])
def test_headers_not_complete_in_time_get_408_and_the_connection_closes(
        panel: Starlette, sent: bytes) -> None:
    # Broke: 250 connections trickling headers at a byte a second all stayed open.
    status, _, body = refused(panel, sent)
    assert status == "HTTP/1.1 408 Request Timeout"
    assert json.loads(body)["error"] == "header_timeout"


def test_a_trickle_that_keeps_sending_is_still_cut_at_the_deadline(panel: Starlette) -> None:
    # The deadline counts from the request's first byte, not from the latest one.
    protocol, lost = watched_protocol()
    with running(panel, protocol=protocol) as server, connect(server) as sock:
        sock.sendall(b"POST /auth/state HTTP/1.1\r\nX-Slow: ")

        def trickle() -> None:
            while not lost.wait(0.02):  # a byte every 20 ms until the server gives up
                try:
                    sock.sendall(b"a")
                except OSError:
                    return

        sender = threading.Thread(target=trickle)
        sender.start()
        try:
            status, _, body = split_response(read_to_end(sock))
        finally:
            lost.wait(30)
            sender.join(30)
    assert status == "HTTP/1.1 408 Request Timeout"
    assert json.loads(body)["error"] == "header_timeout"


def test_headers_in_time_are_served_as_usual(panel: Starlette) -> None:
    with running(panel, header_timeout_s=SHORT) as server, connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status, _, body = split_response(read_to_end(sock))
    assert status == "HTTP/1.1 200 OK"
    assert json.loads(body)["status"] == "ok"


def _sender(sock: socket.socket, parts: Iterator[bytes]) -> threading.Thread:
    """A thread sending ``parts`` until the server stops taking them."""
    def send() -> None:
        for part in parts:
            try:
                sock.sendall(part)
            except OSError:
                return

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def _endless_header() -> Iterator[bytes]:
    yield b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    for _ in range(400):  # 100 MB, were it all taken
        yield b"a" * 256 * 1024


@pytest.mark.parametrize("head", [
    b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 1000)
                                            for i in range(70)) + b"\r\n",
    b"GET /healthz?" + b"a" * MAX_HEADER_BYTES + b" HTTP/1.1\r\n\r\n",
], ids=["one header", "many headers", "the url"])
def test_headers_over_the_cap_are_a_431_and_the_connection_closes(
        panel: Starlette, head: bytes) -> None:
    # Broke: any size was taken; 90 MB of one header held the loop 8 s (httptools gathers
    # a value by concatenation), 150 MB of them grew the worker by 140 MB.
    status, _, body = refused(panel, head)
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"
    assert json.loads(body)["error"] == "headers_too_large"


def test_a_header_without_end_is_refused_as_it_grows_not_at_the_deadline(
        panel: Starlette) -> None:
    # The header timeout (10 s here) would answer 408: a 431 means the size stopped it.
    with running(panel) as server, connect(server) as sock:
        sender = _sender(sock, _endless_header())
        try:
            status, _, body = split_response(read_to_end(sock))
        finally:
            sock.close()
            sender.join(30)
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"
    assert json.loads(body)["error"] == "headers_too_large"


def test_headers_under_the_cap_are_served(panel: Starlette) -> None:
    head = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 1000) for i in range(60)) + b"\r\n")
    with running(panel) as server, connect(server) as sock:
        sock.sendall(head)
        status, _, body = split_response(read_to_end(sock))
    assert status == "HTTP/1.1 200 OK"
    assert json.loads(body)["status"] == "ok"


def test_bytes_that_are_not_http_behind_a_request_let_its_answer_finish_then_close(
        panel: Starlette) -> None:
    # Broke: the 400 for the garbage was written and the connection closed while the
    # request before it was still being answered; its client never got its response.
    raw = exchange(panel, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGARBAGE\x00\r\n\r\n")
    status, headers, body = split_response(raw)
    assert status == "HTTP/1.1 200 OK"
    assert json.loads(body[:int(headers["content-length"])])["status"] == "ok"
    assert raw.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize("path, status, code", [
    ("/api/assist/stream", "405 Method Not Allowed", "method_not_allowed"),
    ("/nowhere", "404 Not Found", "not_found"),
])
def test_a_websocket_upgrade_is_answered_as_plain_http_in_json(
        panel: Starlette, path: str, status: str, code: str) -> None:
    # Broke: uvicorn's WebSocket layer refused it, a 403 with an empty text body and
    # without the headers every other answer has. serve's configuration has no
    # WebSocket layer (test_serving.py), nor has this server's.
    with running(panel, ws="none") as server, connect(server) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
                     "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
        answer, headers, body = split_response(read_to_end(sock))
    assert answer == f"HTTP/1.1 {status}"
    assert headers["x-content-type-options"] == "nosniff"
    assert json.loads(body)["error"] == code


def test_a_connections_own_fields_leave_uvicorns_their_small_dictionary(
        panel: Starlette) -> None:
    """Regression (memory): the protocol's own fields, set after uvicorn's, made each
    connection's instance dictionary a table of its own, 1,584 bytes, rather than one
    of keys shared by every connection, 296: they are slots now."""
    async def sizes() -> list[int]:
        return [sys.getsizeof(vars(protocol))
                for protocol in server.server.server_state.connections]

    with running(panel, keep_alive_s=60) as server, connect(server) as first, \
            connect(server) as second:
        for sock in (first, second):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        guarded_sizes = server.call(sizes())
    with running(panel, keep_alive_s=60, protocol=HttpToolsProtocol) as server, \
            connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        uvicorn_size, = server.call(sizes())
    assert len(guarded_sizes) == 2
    assert all(size <= uvicorn_size for size in guarded_sizes), (guarded_sizes, uvicorn_size)


# ---------------------------------------------------------------- request body


def test_a_body_not_complete_in_time_gets_408_and_the_connection_closes(
        panel: Starlette) -> None:
    status, headers, body = refused(panel, b"POST /auth/state HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    b"Content-Type: application/json\r\n"
                                    b'Content-Length: 100\r\n\r\n{"returnTo": ')
    assert status == "HTTP/1.1 408 Request Timeout"
    assert headers["cache-control"] == "no-store"
    assert json.loads(body)["error"] == "body_timeout"


@pytest.mark.anyio
async def test_the_body_deadline_raises_body_timeout_while_the_body_is_incomplete() -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        assert callable(receive)
        first = await receive()
        assert first["more_body"] is True
        await receive()  # the rest never comes

    async def receive() -> Message:
        if not sent:
            sent.append(1)
            return {"type": "http.request", "body": b"{", "more_body": True}
        await anyio.sleep_forever()
        raise AssertionError

    sent: list[int] = []
    with pytest.raises(BodyTimeout):
        await BodyDeadline(app, timeout_s=0.05)({"type": "http"}, receive, _no_send)


@pytest.mark.anyio
async def test_after_the_body_the_deadline_no_longer_applies() -> None:
    # A stream's disconnect listener waits on receive for the whole stream. The
    # deadline here has passed before the request starts: only the body may be cut.
    messages: list[Message] = [{"type": "http.request", "body": b"{}", "more_body": False}]
    disconnect = anyio.Event()
    disconnect.set()

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await disconnect.wait()
        return {"type": "http.disconnect"}

    got: list[str] = []

    async def app(scope: object, receive: object, send: object) -> None:
        assert callable(receive)
        got.append((await receive())["type"])
        got.append((await receive())["type"])

    await BodyDeadline(app, timeout_s=1e-9)({"type": "http"}, receive, _no_send)
    assert got == ["http.request", "http.disconnect"]


async def _no_send(message: Message) -> None:
    raise AssertionError("nothing is sent")


# ---------------------------------------------------------------- clients that never read


async def _endless_events() -> AsyncIterator[Event]:
    text = "x" * 65536
    sequence = 0
    while True:
        sequence += 1
        yield Event("delta", {"id": "sg_test", "text": text, "n": sequence})
        await anyio.lowlevel.checkpoint()


def _sse_app(closed: threading.Event) -> Starlette:
    async def stream(request: Request) -> Response:
        return event_source(_endless_events(), send_timeout_s=SHORT, on_close=closed.set)
    return Starlette(routes=[Route("/stream", stream)])


def _ndjson_app(closed: threading.Event) -> Starlette:
    async def lines() -> AsyncGenerator[bytes, None]:
        while True:
            yield b'{"text": "' + b"x" * 65536 + b'"}\n'
            await anyio.lowlevel.checkpoint()

    async def stream(request: Request) -> Response:
        return ndjson_stream(lines(), on_close=closed.set, send_timeout_s=SHORT)
    return Starlette(routes=[Route("/stream", stream)])


@pytest.mark.parametrize("make_app", [_sse_app, _ndjson_app], ids=["sse", "ndjson"])
def test_a_client_that_never_reads_is_reset_with_one_log_line(make_app: object) -> None:
    # Broke: after the send timeout the connection stayed ESTABLISHED with megabytes
    # queued until the client left, and each drop logged a SendTimeoutError traceback.
    assert callable(make_app)
    closed = threading.Event()
    protocol, lost = watched_protocol()
    with running(make_app(closed), protocol=protocol) as server, recorded() as logs:
        with connect(server, rcvbuf=4096) as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert closed.wait(30)  # the response gave up on the client...
            assert lost.wait(30)  # ...and the connection went with it
            assert server.connections() == 0
            with pytest.raises(ConnectionResetError):
                read_to_end(sock)
        assert [m for m in logs.at(logging.WARNING)] == [
            f"client stopped reading for {SHORT:g}s: stream ended, connection reset"]
        assert not logs.tracebacks()


def test_a_response_learns_whether_a_send_would_wait_only_from_our_protocol() -> None:
    # Streamed responses arm their send timeout only when a send could wait.
    seen: list[bool | None] = []

    async def probe(request: Request) -> Response:
        check = writable(request.scope)
        seen.append(None if check is None else check())
        return Response("ok")

    app = Starlette(routes=[Route("/probe", probe)])
    with running(app) as server:
        assert httpx.get(f"{server.url}/probe").status_code == 200
    with running(app, protocol=HttpToolsProtocol) as server:  # uvicorn's own
        assert httpx.get(f"{server.url}/probe").status_code == 200
    assert seen == [True, None]


def test_a_finished_response_the_client_never_reads_is_reset_after_the_linger() -> None:
    # The whole answer was handed over, but a client that never reads never takes it:
    # the keep-alive close would wait for it for ever.
    async def big(request: Request) -> Response:
        return Response(b"x" * (16 * 1024 * 1024))

    protocol, lost = watched_protocol()
    app = Starlette(routes=[Route("/big", big)])
    with running(app, protocol=protocol, keep_alive_s=1) as server, recorded() as logs:
        with connect(server, rcvbuf=4096) as sock:
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert lost.wait(30)
            assert server.connections() == 0
            with pytest.raises(ConnectionResetError):
                read_to_end(sock)
        assert not logs.at(logging.WARNING)


class _Transport:
    """Just enough of a transport for _BoundedClose: bytes always left to send."""

    def __init__(self) -> None:
        self.closed = self.aborted = 0

    def close(self) -> None:
        self.closed += 1

    def abort(self) -> None:
        self.aborted += 1

    def get_write_buffer_size(self) -> int:
        return 1024

    def get_extra_info(self, name: str) -> None:
        return None


class _Timer:
    def cancel(self) -> None:
        pass


class _Loop:
    def __init__(self) -> None:
        self.timers: list[float] = []

    def call_later(self, delay: float, callback: object) -> _Timer:
        self.timers.append(delay)
        return _Timer()


@pytest.mark.parametrize("gone", ["reset", "lost"])
def test_a_connection_already_gone_is_never_reset_again(gone: str) -> None:
    # Broke: after a drop, uvicorn's own close() of the lost connection armed the linger,
    # whose reset then failed on the closed socket (an asyncio error in the log, uvloop).
    transport, loop = _Transport(), _Loop()
    bounded = _BoundedClose(transport, loop, 0.5)  # type: ignore[arg-type]
    getattr(bounded, gone)()
    bounded.close()
    bounded.reset()
    assert loop.timers == []
    assert transport.aborted == (1 if gone == "reset" else 0)


def test_a_close_with_bytes_unsent_arms_one_reset() -> None:
    transport, loop = _Transport(), _Loop()
    bounded = _BoundedClose(transport, loop, 0.5)  # type: ignore[arg-type]
    bounded.close()
    bounded.close()
    assert (transport.closed, loop.timers) == (2, [0.5])


def test_a_closed_connection_is_freed_without_the_garbage_collector() -> None:
    """The scope's extensions were the protocol's bound methods: protocol -> scope ->
    method -> protocol, a cycle per connection that only the collector freed (a pass of
    about a millisecond every half second on a busy worker)."""
    freed: list[int] = []
    lost = threading.Semaphore(0)
    base = guarded_protocol(header_timeout_s=SHORT, close_linger_s=SHORT)

    class Counted(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            weakref.finalize(self, freed.append, 1)
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            lost.release()

    async def hello(request: Request) -> Response:
        return Response("ok")

    app = Starlette(routes=[Route("/hello", hello)])
    gc.collect()
    gc.disable()  # only reference counting frees what follows
    try:
        with running(app, protocol=Counted) as server:
            for _ in range(5):
                with httpx.Client() as client:  # a connection of its own each time
                    assert client.get(f"{server.url}/hello").text == "ok"
            for _ in range(5):
                assert lost.acquire(timeout=20)
            wait_until(lambda: len(freed) == 5, message="a connection's protocol was kept")
    finally:
        gc.enable()
