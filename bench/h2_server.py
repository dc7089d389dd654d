"""A lean HTTP/2 server for an ASGI app: the benchmarks' mock model over HTTP/2.

hypercorn (the dev mode's HTTP/2 server) spent most of the harness's core on its own
machinery when it streamed tokens to 800 streams: a priority tree walked each frame,
a task and a buffer a stream, a socket write a frame. The harness shares that core
with the client reading the panel's streams, so past 600 to 800 streams over HTTP/2
the capacity benchmark measured hypercorn, not the panel. This server speaks h2
directly (the `h2` package): each app's send goes into the connection's frames at
once and everything a turn of the event loop wrote leaves in one socket write.

What it serves is what the mock model needs: ``http`` scopes over HTTP/2 only (h2c
with prior knowledge, or TLS offering ``h2`` by ALPN), flow control both ways, a
client's reset or a lost connection told to the app as ``http.disconnect``. No
lifespan, no HTTP/1.1, no server push. An app's exception answers 500 if nothing
was sent yet, and resets the stream otherwise. A frame h2 refuses ends the whole
connection with a GOAWAY, a client opening more streams than it was allowed
included (RFC 9113 lets a server refuse just that stream; the panel's client keeps
to the limit).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote

from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings
from h2.stream import StreamState
from starlette.types import ASGIApp, Message

log = logging.getLogger("bench.h2_server")

#: Streams a connection may have open at once: hypercorn's default, and of the order
#: hosted models allow.
MAX_CONCURRENT_STREAMS = 100
#: Headers a connection must not carry over HTTP/2 (RFC 9113, 8.2.2).
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                         b"transfer-encoding", b"upgrade"})
#: A DATA frame's header without flags: length (24 bits), type 0, flags, stream id.
_DATA_HEADER = struct.Struct(">BHBBI")
_SENDING = (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE)


def tls_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """A server TLS context offering only ``h2`` by ALPN."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(["h2"])
    return context


class _Stream:
    """One request: its scope, the body not yet received, and how it ended."""

    __slots__ = ("body", "closed", "ended", "finished", "scope", "sid", "started",
                 "taken", "wake", "window")

    def __init__(self, sid: int, scope: dict[str, Any]) -> None:
        self.sid = sid
        self.scope = scope
        self.body: list[bytes] = []
        self.ended = False  # the client sent all of its body
        self.taken = False  # the app received the body's last message
        self.started = False  # the response's headers are sent
        self.finished = False  # the response's end is sent
        self.closed = False  # reset, or the connection is gone
        self.wake: asyncio.Future[None] | None = None  # receive() waiting for news
        self.window: asyncio.Future[None] | None = None  # send() waiting for window

    def notify(self) -> None:
        for waiter in (self.wake, self.window):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)


class H2Protocol(asyncio.Protocol):
    """One HTTP/2 connection: an ASGI task a request, frames written once a turn."""

    def __init__(self, app: ASGIApp, scheme: str, connections: set[H2Protocol]) -> None:
        self.app = app
        self.scheme = scheme
        self.connections = connections
        self.loop = asyncio.get_running_loop()
        config = H2Configuration(client_side=False, header_encoding=None)
        self.h2 = H2Connection(config=config)
        self.h2.local_settings = Settings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS})
        self.streams: dict[int, _Stream] = {}
        self._out: list[bytes] = []  # frames written by hand, after h2's before them
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self._flushing = False
        self._paused: asyncio.Future[None] | None = None

    # -- the connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport's subclasses, but are ones.
        self.transport = cast(asyncio.Transport, transport)
        self.client = _address(self.transport.get_extra_info("peername"))
        self.server = _address(self.transport.get_extra_info("sockname"))
        self.connections.add(self)
        self.h2.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.transport = None
        for stream in self.streams.values():
            stream.closed = True
            stream.notify()
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)

    def pause_writing(self) -> None:
        if self._paused is None or self._paused.done():
            self._paused = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as error:
            log.info("h2 protocol error, closing the connection: %s", type(error).__name__)
            self.h2.close_connection(error_code=ErrorCodes.PROTOCOL_ERROR)
            self._flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                self._request(event.stream_id, event.headers)
            elif isinstance(event, DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length,
                                                  event.stream_id)
                if (stream := self.streams.get(event.stream_id)) is not None:
                    stream.body.append(event.data)
                    stream.notify()
            elif isinstance(event, StreamEnded):
                if (stream := self.streams.get(event.stream_id)) is not None:
                    stream.ended = True
                    stream.notify()
            elif isinstance(event, StreamReset):
                if (stream := self.streams.get(event.stream_id)) is not None:
                    stream.closed = True
                    stream.notify()
            elif isinstance(event, WindowUpdated | RemoteSettingsChanged):
                sid = getattr(event, "stream_id", 0)
                if sid:
                    if (stream := self.streams.get(sid)) is not None:
                        stream.notify()
                else:  # the connection's window, or every stream's initial one
                    for stream in self.streams.values():
                        stream.notify()
            elif isinstance(event, ConnectionTerminated) and self.transport is not None:
                self.transport.close()
        self._dirty()

    def goodbye(self) -> None:
        """GOAWAY, then close: the server is stopping."""
        if self.transport is not None:
            self.h2.close_connection()
            self._flush()
            self.transport.close()

    def _dirty(self) -> None:
        """Frames are waiting: write them at the end of this turn of the loop, with
        whatever else this turn adds."""
        if not self._flushing:
            self._flushing = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        data = self.h2.data_to_send()
        if self._out:
            self._out.append(data)
            data = b"".join(self._out)
            self._out.clear()
        if data and self.transport is not None:
            self.transport.write(data)

    def _data_frame(self, sid: int, data: bytes) -> bool:
        """``data`` as one DATA frame without END_STREAM, framed here rather than by
        h2 when the stream and the connection are open and their windows and the frame
        size allow it (h2's bookkeeping kept: both windows lowered); False otherwise.

        h2 spent most of this server's CPU a token on its frame objects and checks;
        what a frame in the middle of a stream changes in h2 is only the windows."""
        conn = self.h2
        stream = conn.streams.get(sid)
        size = len(data)
        if (stream is None or stream.state_machine.state not in _SENDING
                or conn.state_machine.state is not ConnectionState.SERVER_OPEN
                or not 0 < size <= conn.max_outbound_frame_size
                or size > stream.outbound_flow_control_window
                or size > conn.outbound_flow_control_window):
            return False
        stream.outbound_flow_control_window -= size
        conn.outbound_flow_control_window -= size
        if earlier := conn.data_to_send():  # h2's frames so far go first
            self._out.append(earlier)
        self._out.append(_DATA_HEADER.pack(size >> 16, size & 0xFFFF, 0, 0, sid))
        self._out.append(data)
        self._dirty()
        return True

    # -- a request

    def _request(self, sid: int, headers: list[tuple[bytes, bytes]]) -> None:
        method = path = b""
        authority: bytes | None = None
        plain: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
            elif not name.startswith(b":"):
                plain.append((name, value))
        if authority is not None and not any(name == b"host" for name, _ in plain):
            plain.insert(0, (b"host", authority))
        raw_path, _, query = path.partition(b"?")
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "2", "method": method.decode("ascii"), "scheme": self.scheme,
            "path": unquote(raw_path.decode("latin-1")), "raw_path": raw_path,
            "query_string": query, "root_path": "", "headers": plain,
            "client": self.client, "server": self.server, "extensions": {},
        }
        stream = self.streams[sid] = _Stream(sid, scope)
        task = self.loop.create_task(self._run(stream))
        task.add_done_callback(lambda _: self.streams.pop(sid, None))

    async def _run(self, stream: _Stream) -> None:
        async def receive() -> Message:
            return await self._receive(stream)

        async def send(message: Message) -> None:
            await self._send(stream, message)

        try:
            await self.app(stream.scope, receive, send)
        except Exception as error:  # the app's failure answers for it, as servers do
            log.info("the app failed: %s", type(error).__name__)
            if not stream.started:
                await self._send(stream, {"type": "http.response.start", "status": 500,
                                          "headers": [(b"content-type", b"text/plain")]})
                await self._send(stream, {"type": "http.response.body",
                                          "body": b"Internal Server Error"})
            elif not stream.finished:
                self._reset(stream)
            return
        if not stream.closed and not stream.finished:
            if not stream.started:
                await self._send(stream, {"type": "http.response.start", "status": 500})
            await self._send(stream, {"type": "http.response.body"})

    async def _receive(self, stream: _Stream) -> Message:
        while True:
            if stream.body:
                body = b"".join(stream.body)
                stream.body.clear()
                stream.taken = stream.ended
                return {"type": "http.request", "body": body, "more_body": not stream.ended}
            if stream.ended and not stream.taken:
                stream.taken = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if stream.closed or stream.finished:
                return {"type": "http.disconnect"}
            stream.wake = self.loop.create_future()
            await stream.wake
            stream.wake = None

    async def _send(self, stream: _Stream, message: Message) -> None:
        if stream.closed or stream.finished:
            return  # the client is gone: the app learns it from receive()
        kind = message["type"]
        if kind == "http.response.start":
            if stream.started:
                raise RuntimeError("http.response.start sent twice")
            headers = [(b":status", str(message["status"]).encode("ascii"))]
            headers += [(bytes(name).lower(), bytes(value))
                        for name, value in message.get("headers", ())
                        if bytes(name).lower() not in _HOP_BY_HOP]
            self.h2.send_headers(stream.sid, headers)
            stream.started = True
            self._dirty()
        elif kind == "http.response.body":
            if not stream.started:
                raise RuntimeError("http.response.body before http.response.start")
            end = not message.get("more_body", False)
            await self._send_body(stream, bytes(message.get("body", b"")), end)
            if end:
                stream.finished = True
                stream.notify()  # a receive() waiting is told the exchange is over
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    async def _send_body(self, stream: _Stream, data: bytes, end: bool) -> None:
        if self._paused is not None and not self._paused.done():
            await self._paused  # the socket's buffer is full: wait for the client
        if not end and self._data_frame(stream.sid, data):
            return
        view = memoryview(data)
        if not view and not end:
            return
        while True:
            if stream.closed:
                return
            window = min(self.h2.local_flow_control_window(stream.sid),
                         self.h2.max_outbound_frame_size)
            if window <= 0 and view:
                stream.window = self.loop.create_future()
                await stream.window
                stream.window = None
                continue
            chunk, view = view[:window], view[window:]
            try:
                self.h2.send_data(stream.sid, chunk.tobytes(), end_stream=end and not view)
            except StreamClosedError:
                stream.closed = True
                return
            self._dirty()
            if not view:
                return

    def _reset(self, stream: _Stream) -> None:
        stream.closed = True
        try:
            self.h2.reset_stream(stream.sid, ErrorCodes.INTERNAL_ERROR)
        except StreamClosedError:
            return
        self._dirty()


def _address(value: Any) -> tuple[str, int] | None:
    return (str(value[0]), int(value[1])) if isinstance(value, tuple) else None


async def serve(app: ASGIApp, host: str, port: int, stop: asyncio.Event, *,
                context: ssl.SSLContext | None = None,
                ready: Callable[[], None] | None = None) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set, then send each
    connection a GOAWAY and close it."""
    connections: set[H2Protocol] = set()
    scheme = "https" if context is not None else "http"
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: H2Protocol(app, scheme, connections),
                                      host, port, ssl=context, backlog=4096)
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        server.close()
        for connection in list(connections):
            connection.goodbye()
        await server.wait_closed()
