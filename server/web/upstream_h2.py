"""HTTP/2 to the model: thousands of streams over a few connections.

Over HTTP/1.1 (:mod:`server.web.upstream`) each open model stream holds a connection
of its own, so a worker holding N streams holds 2N open files: N of its clients' and
N to the model. Over HTTP/2 the streams to one origin share connections, up to the
server's ``SETTINGS_MAX_CONCURRENT_STREAMS`` each (and ``max_streams``), so N streams
hold N files and a few more. Used where an ``https://`` model's TLS handshake picks
``h2`` (:mod:`server.web.upstream_alpn`), or always (``ASSIST_MODEL_HTTP2=true``: h2c
on ``http://``; a server not agreeing is a connect error). The framing is the h2
library's (sans-IO); one connection and its streams are
:mod:`server.web.upstream_h2_connection`, its flow control said there.

Errors are httpx's, as the HTTP/1.1 client's: a stream the server refused
(``REFUSED_STREAM``, or past a ``GOAWAY``'s last stream) before any of its response
came is sent once more on another connection.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping

import h2.exceptions
import httpx

from server.web.upstream_body import Origin, UpstreamResponse
from server.web.upstream_h2_connection import Connection, Stream


class H2Response(UpstreamResponse):
    """A response on an HTTP/2 stream; ``aclose`` lets the stream go (reset if unread)."""

    __slots__ = ("_client", "_conn", "_key", "_stream")

    def __init__(self, client: H2StreamClient, key: tuple[str, str, int], conn: Connection,
                 stream: Stream) -> None:
        super().__init__(stream.status, stream.headers)
        stream.headers = []
        self._client = client
        self._key = key
        self._conn = conn
        self._stream: Stream | None = stream

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        stream = self._stream
        while stream is not None:
            if stream.body:
                yield self._conn.take(stream)
            elif stream.complete:
                return
            elif stream.error is not None:
                raise stream.error
            else:
                await stream.changed()

    def waited(self) -> float:
        stream = self._stream
        return 0.0 if stream is None else max(0.0, self._conn.clock() - stream.arrived)

    async def aclose(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            self._client._release(self._key, self._conn, stream)


class H2StreamClient:
    """POSTs whose responses are streamed over HTTP/2, many to a connection; ``alpn``:
    what a TLS handshake offers, ``h2`` first."""

    def __init__(self, *, verify: ssl.SSLContext | bool = True, max_streams: int = 1000,
                 keepalive_expiry: float = 5.0, connect_timeout: float = 5.0,
                 write_timeout: float = 10.0, alpn: tuple[str, ...] = ("h2",),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._verify = verify
        self._alpn = list(alpn)
        self._picked: dict[tuple[str, str, int], str] = {}
        self._ssl: ssl.SSLContext | None = None
        self.max_streams = max_streams
        self.keepalive_expiry = keepalive_expiry
        self.connect_timeout = connect_timeout
        self.write_timeout = write_timeout
        self._connections: dict[tuple[str, str, int], list[Connection]] = {}
        self._connecting: dict[tuple[str, str, int], asyncio.Future[None]] = {}
        self._closed = False

    async def post(self, origin: Origin, body: bytes,
                   headers: Mapping[str, str]) -> UpstreamResponse:
        """Sends ``body`` and returns once the response's headers have come. The caller
        must ``aclose`` the response. Errors are httpx's (``ConnectError``,
        ``ConnectTimeout``, ``WriteTimeout``, ``ReadError``, ``RemoteProtocolError``)."""
        for attempt in (1, 2):
            if self._closed:
                raise RuntimeError("the client is closed")
            conn = await self._checkout(origin)
            try:
                stream = conn.open(origin, headers, bool(body))
            except h2.exceptions.NoAvailableStreamIDError:
                continue  # that connection is spent; another is made
            try:
                if body:
                    async with asyncio.timeout(self.write_timeout):
                        await conn.send_body(stream, body)
                while not stream.headers_done and stream.error is None and not stream.complete:
                    await stream.changed()
            except TimeoutError as exc:
                self._release(origin.key, conn, stream)
                raise httpx.WriteTimeout("timed out writing to the server") from exc
            except BaseException:
                self._release(origin.key, conn, stream)
                raise
            if stream.headers_done:
                return H2Response(self, origin.key, conn, stream)
            self._release(origin.key, conn, stream)
            if stream.refused and attempt == 1:
                continue  # not processed by the server: once more
            raise stream.error or httpx.RemoteProtocolError(
                "the server ended the stream without a response")
        raise httpx.RemoteProtocolError("the server refused the stream twice")

    def picked(self, origin: Origin) -> str | None:
        """What ``origin``'s server picked in the latest TLS handshake with it (ALPN):
        ``"h2"``, another protocol, or ``""`` for none; None before one has ended."""
        return self._picked.get(origin.key)

    def connections(self, origin: Origin) -> int:
        """How many connections to ``origin`` are open."""
        return sum(not c.closed for c in self._connections.get(origin.key, ()))

    async def aclose(self) -> None:
        """Closes every connection; open responses' reads then fail."""
        self._closed = True
        for connections in self._connections.values():
            for conn in connections:
                conn.close()
        self._connections.clear()

    async def _checkout(self, origin: Origin) -> Connection:
        key = origin.key
        while True:
            connections = self._connections.setdefault(key, [])
            connections[:] = [c for c in connections if not c.closed]
            for conn in connections:
                if conn.room():
                    return conn
            pending = self._connecting.get(key)
            if pending is not None:
                # One connection is being made: it may have room for this stream too,
                # and when it fails, every stream waiting on it hears why.
                try:
                    await asyncio.shield(pending)
                except httpx.TransportError as exc:
                    raise type(exc)(str(exc)) from exc
                continue
            pending = asyncio.get_running_loop().create_future()
            self._connecting[key] = pending
            try:
                connections.append(await self._connect(origin))
            except BaseException as exc:
                pending.set_exception(exc if isinstance(exc, httpx.TransportError)
                                      else httpx.ConnectError("the connect was cancelled"))
                pending.exception()  # retrieved: nobody else may be waiting
                raise
            else:
                pending.set_result(None)
            finally:
                del self._connecting[key]

    def _release(self, key: tuple[str, str, int], conn: Connection, stream: Stream) -> None:
        """``stream`` is let go of; its connection closes once it has carried no stream
        for ``keepalive_expiry``."""
        conn.let_go(stream)
        if conn.streams or conn.closed or conn.expiry is not None:
            return
        conn.expiry = asyncio.get_running_loop().call_later(
            self.keepalive_expiry, self._expire, key, conn)

    def _expire(self, key: tuple[str, str, int], conn: Connection) -> None:
        conn.expiry = None
        if not conn.streams:
            conn.close()
            connections = self._connections.get(key, [])
            if conn in connections:
                connections.remove(conn)

    async def _connect(self, origin: Origin) -> Connection:
        loop = asyncio.get_running_loop()
        where = f"{origin.host}:{origin.port}"
        context = self._context() if origin.tls else None
        conn: Connection | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                transport, conn = await loop.create_connection(
                    lambda: Connection(self._clock, self.max_streams), origin.host,
                    origin.port, ssl=context, server_hostname=origin.host if context else None)
                if context is not None:
                    tls = transport.get_extra_info("ssl_object")
                    picked = (tls.selected_alpn_protocol() if tls else None) or ""
                    self._picked[origin.key] = picked
                    if picked != "h2":
                        conn.close()
                        raise httpx.ConnectError(f"{where} did not agree to HTTP/2 (ALPN)")
                # The server's SETTINGS: how many streams it takes on this connection.
                await conn.ready
        except TimeoutError as exc:
            if conn is not None:
                conn.close()
            raise httpx.ConnectTimeout(f"timed out connecting to {where}") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"{where}: {exc}") from exc
        except httpx.ConnectError:
            raise
        except httpx.TransportError as exc:  # before its SETTINGS
            raise httpx.ConnectError(
                f"{where} did not answer as an HTTP/2 server ({exc})") from exc
        return conn

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            verify = self._verify
            context = verify if isinstance(verify, ssl.SSLContext) else (
                httpx.create_ssl_context(verify=verify))
            context.set_alpn_protocols(self._alpn)
            self._ssl = context
        return self._ssl
