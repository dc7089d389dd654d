"""One HTTP/2 connection to the model and the streams open on it, for
:mod:`server.web.upstream_h2`'s client: the h2 library's framing (sans-IO), fed from the
connection's ``data_received`` through :mod:`server.web.upstream_h2_frames`, which
reads the plain DATA frames itself.

Flow control: the connection's receive window is the largest allowed, and each
stream's (64 KiB, the default) is handed back as the pipeline reads the stream, a
quarter of it at a time. A stream nobody reads stops its sender after 64 KiB, and the
connection's other streams go on. A stream let go of before its end is reset
(``CANCEL``) and what it had not read is handed back to the connection's window.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import httpx

from server.web.upstream_body import Origin
from server.web.upstream_h2_frames import FrameReader
from server.web.waking import Waitable, WakingProtocol

_LARGEST_WINDOW = 2**31 - 1
_DEFAULT_WINDOW = 65_535
# What a stream has read is handed back to the server once it is this much.
_ACK_AT = _DEFAULT_WINDOW // 4
# A response's headers, decoded, at most.
_MAX_HEADERS = 64 * 1024
# At most this much body is handed over at once, as by one socket read.
_READ = 64 * 1024
# Request headers HTTP/2 forbids (connection-specific) or sets itself.
_DROPPED = frozenset({"host", "connection", "keep-alive", "proxy-connection",
                      "transfer-encoding", "upgrade", "te"})


class Stream(Waitable):
    """One request and its response on a shared connection."""

    __slots__ = ("arrived", "body", "complete", "error", "headers", "headers_done", "id",
                 "refused", "sending", "status", "unacked")

    def __init__(self, stream_id: int) -> None:
        super().__init__()
        self.id = stream_id
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.body: list[bytes] = []
        self.unacked = 0  # flow-controlled bytes received, not yet handed back
        self.complete = False
        self.error: httpx.HTTPError | None = None
        self.refused = False  # the server did not process it: safe to send again
        self.sending = False  # its request body waits for window
        self.arrived = 0.0


class Connection(WakingProtocol):
    """One HTTP/2 connection and the streams open on it."""

    __slots__ = ("clock", "closed", "error", "expiry", "frames", "going_away", "h2",
                 "max_streams", "ready", "streams")

    def __init__(self, clock: Callable[[], float], max_streams: int) -> None:
        super().__init__()
        self.clock = clock
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.frames = FrameReader(self.h2)
        self.streams: dict[int, Stream] = {}
        self.max_streams = max_streams
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.going_away = False  # no new streams: GOAWAY came, or its ids ran out
        self.error: httpx.HTTPError | None = None
        self.expiry: asyncio.TimerHandle | None = None  # closes it once unused too long

    # asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # No server push (nothing here would read it), and the bound h2's decoder puts
        # on a response's headers told to the server.
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: _MAX_HEADERS})
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(_LARGEST_WINDOW - _DEFAULT_WINDOW)
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.frames.feed(data)
        except h2.exceptions.ProtocolError as exc:
            self.flush()  # the GOAWAY h2 wrote for it
            self._fail(httpx.RemoteProtocolError(f"HTTP/2 protocol error from the server: {exc}"))
            return
        for event in events:
            self._event(event)
        self.flush()

    def eof_received(self) -> bool | None:
        self._fail(httpx.ReadError("the server closed the connection"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(httpx.ReadError(str(exc) if exc else "the server closed the connection"))
        super().connection_lost(exc)

    # h2's side

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id or 0)
            size = event.flow_controlled_length or 0
            if stream is None:
                if event.stream_id:  # let go of already: its bytes go back to the connection
                    self.h2.acknowledge_received_data(size, event.stream_id)
                return
            if event.data:
                stream.body.append(event.data)
            stream.unacked += size
            stream.arrived = self.clock()
            stream.wake()
        elif isinstance(event, h2.events.ResponseReceived):
            if (stream := self.streams.get(event.stream_id or 0)) is not None:
                for name, value in event.headers or ():
                    if name == b":status":
                        stream.status = int(value)
                    elif not name.startswith(b":"):
                        stream.headers.append((bytes(name), bytes(value)))
                stream.headers_done = True
                stream.wake()
        elif isinstance(event, h2.events.StreamEnded):
            if (stream := self.streams.get(event.stream_id or 0)) is not None:
                stream.complete = True
                stream.wake()
        elif isinstance(event, h2.events.StreamReset):
            if (stream := self.streams.get(event.stream_id or 0)) is not None:
                code = event.error_code
                stream.refused = (code == h2.errors.ErrorCodes.REFUSED_STREAM
                                  and not stream.headers_done)
                stream.error = httpx.RemoteProtocolError(f"the server reset the stream ({code!r})")
                stream.wake()
        elif isinstance(event, h2.events.WindowUpdated):
            # A request body waiting for window may go on.
            if event.stream_id:
                if (stream := self.streams.get(event.stream_id)) is not None and stream.sending:
                    stream.wake()
            else:
                for stream in self.streams.values():
                    if stream.sending:
                        stream.wake()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            if not self.ready.done():
                self.ready.set_result(None)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.going_away = True
            last = event.last_stream_id or 0
            for stream in self.streams.values():
                if stream.id > last and not stream.headers_done:
                    stream.refused = True
                    stream.error = httpx.RemoteProtocolError("the server went away")
                    stream.wake()
            if not self.streams:
                self.close()

    def _fail(self, error: httpx.HTTPError) -> None:
        self.closed = True
        if self.error is None:
            self.error = error
        if not self.ready.done():
            self.ready.set_exception(error)
            self.ready.exception()  # retrieved by whoever awaits it, or by nobody
        for stream in self.streams.values():
            if not stream.complete and stream.error is None:
                stream.error = error
            stream.wake()
        if self.transport is not None:
            self.transport.close()

    # the client's side

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def room(self) -> bool:
        """Whether another stream may open on it now."""
        if self.closed or self.going_away or not self.ready.done():
            return False
        allowed = min(self.max_streams, self.h2.remote_settings.max_concurrent_streams)
        return len(self.streams) < allowed

    def open(self, origin: Origin, headers: Mapping[str, str], has_body: bool) -> Stream:
        """A new stream, its request's headers written."""
        try:
            stream_id = self.h2.get_next_available_stream_id()
        except h2.exceptions.NoAvailableStreamIDError:
            self.going_away = True
            raise
        fields = [(b":method", b"POST"), (b":scheme", b"https" if origin.tls else b"http"),
                  (b":authority", origin.authority.encode("ascii")),
                  (b":path", origin.target.encode("ascii"))]
        for name, value in headers.items():
            lowered = name.lower()
            if lowered in _DROPPED:
                continue
            try:
                fields.append((lowered.encode("latin-1"), value.encode("latin-1")))
            except UnicodeEncodeError as exc:
                raise httpx.LocalProtocolError(f"header {name!r} is not Latin-1") from exc
        try:
            self.h2.send_headers(stream_id, fields, end_stream=not has_body)
        except h2.exceptions.ProtocolError as exc:
            raise httpx.LocalProtocolError(f"invalid request headers: {exc}") from exc
        stream = Stream(stream_id)
        self.streams[stream_id] = stream
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        return stream

    async def send_body(self, stream: Stream, body: bytes) -> None:
        """Writes ``body`` within the flow-control windows the server grants."""
        view = memoryview(body)
        while view:
            if stream.error is not None:
                raise stream.error
            if self.closed:
                raise self.error or httpx.WriteError("the connection closed")
            size = min(len(view), self.h2.local_flow_control_window(stream.id),
                       self.h2.max_outbound_frame_size)
            if size <= 0:
                stream.sending = True
                try:
                    await stream.changed()  # WINDOW_UPDATE, or the stream's end
                finally:
                    stream.sending = False
                continue
            self.h2.send_data(stream.id, bytes(view[:size]), end_stream=size == len(view))
            view = view[size:]
            self.flush()
            await self.drained()

    def take(self, stream: Stream) -> bytes:
        """What has arrived on ``stream``, up to ``_READ`` bytes; its window is handed
        back to the server a quarter of the default at a time."""
        body = stream.body
        if len(body) == 1 and len(body[0]) <= _READ:
            data = body.pop()
        else:
            joined = b"".join(body)
            data, rest = joined[:_READ], joined[_READ:]
            body[:] = [rest] if rest else []
        if stream.unacked >= _ACK_AT:
            # All of it, though some may still wait: at most one window more is held.
            # Not at every read: h2 writes no WINDOW_UPDATE for less than half a
            # window, and a call a token was a tenth of the connection's work.
            self.h2.acknowledge_received_data(stream.unacked, stream.id)
            stream.unacked = 0
            self.flush()
        return data

    def let_go(self, stream: Stream) -> None:
        """The caller is done with ``stream``: reset when unfinished, its window handed
        back, and the connection closed when it is going away and now unused."""
        if self.streams.pop(stream.id, None) is None:
            return
        if not self.closed:
            if not stream.complete and stream.error is None:
                # A StreamClosedError: the server had ended it already.
                with contextlib.suppress(h2.exceptions.StreamClosedError):
                    self.h2.reset_stream(stream.id, h2.errors.ErrorCodes.CANCEL)
            if stream.unacked:
                self.h2.acknowledge_received_data(stream.unacked, stream.id)
            self.flush()
        stream.body.clear()
        if not self.streams and (self.going_away or self.closed):
            self.close()

    def close(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        if not self.closed and self.transport is not None and not self.transport.is_closing():
            try:
                self.h2.close_connection()
                self.flush()
            except h2.exceptions.ProtocolError:
                pass
        self.closed = True
        if self.transport is not None:
            self.transport.close()
