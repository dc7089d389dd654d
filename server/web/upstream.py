"""A lean HTTP/1.1 client for the model's event stream.

httpx serves every kind of request; a model stream is one kind: a POST whose answer
comes a few bytes at a time for up to a minute, thousands at once. Through httpx,
each read of it passes httpx's response iterators, httpcore's connection and h11's
parser, and each open stream holds their objects, about 15 KB. Here the response is
parsed as it arrives, in the connection's ``data_received``, by httptools (llhttp,
the parser uvicorn reads requests with), and its body waits in a list until the
generator takes all of it in one read.

What it keeps of httpx: connections kept alive and reused per origin (the last one
released first, at most ``max_idle`` idle per origin, closed once ``keepalive_expiry``
idle, by a timer: a spare nobody takes is not left open); a reused connection that
turns out closed before any of the response came is retried once on a new one; TLS
with httpx's default context; the socket paused while 64 KiB of body wait unread;
httpx's exception types and the response's ``status_code``, ``headers``,
``aiter_raw``, ``aiter_bytes``, ``aread`` and ``aclose``, so a caller handles both
clients alike. What it adds: a connection spent by a response left before its end
(a superseded or abandoned answer) is replaced by a new one connected in the
background, up to ``spares`` idle or connecting per origin, so that the next request
does not wait for a connect (and over TLS, a handshake). What it leaves out: proxies
(the app uses httpx when the environment names one), redirects, cookies, HTTP/2
(upstream_h2.py's) and compressions other than gzip and deflate.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping

import httptools
import httpx

from server.web.upstream_body import Origin, UpstreamResponse
from server.web.waking import WakingProtocol

__all__ = ["Origin", "StreamClient", "StreamResponse"]

# The socket is paused when this much body waits unread, and resumed once it is read.
_HIGH_WATER = 64 * 1024
# At most this much body is handed over at once, as by one socket read.
_READ = 64 * 1024


class _Connection(WakingProtocol):
    """One connection, and the response it is reading (httptools calls back here)."""

    # Thousands open at once: no per-instance dict.
    __slots__ = ("arrived", "body", "buffered", "clock", "closed", "complete", "error",
                 "expiry", "framed", "headers", "headers_done", "idle_since", "keep_alive",
                 "parser",
                 "paused", "received", "status")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.arrived = 0.0  # when the newest bytes came (clock)
        self.parser: httptools.HttpResponseParser | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.keep_alive = False  # the server keeps the connection open after this response
        self.framed = False  # the body's end is marked (a length, or chunked)
        self.body: list[bytes] = []
        self.buffered = 0
        self.complete = False
        self.received = False  # any byte of this response
        self.closed = False
        self.error: BaseException | None = None
        self.paused = False
        self.idle_since = 0.0
        self.expiry: asyncio.TimerHandle | None = None  # closes it once idle too long

    def begin(self) -> None:
        """Ready to read a new response."""
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers = []
        self.headers_done = self.keep_alive = self.framed = False
        self.complete = self.received = False

    # asyncio's side

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None or self.complete:
            # Bytes on an idle connection: the server is closing it, or is confused.
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            return
        self.received = True
        self.arrived = self.clock()
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = httpx.RemoteProtocolError(f"malformed response from the server: {exc}")
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            self.wake()

    def eof_received(self) -> bool | None:
        self.closed = True
        self.wake()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is not None and self.error is None:
            self.error = exc
        super().connection_lost(exc)

    # httptools' side

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in (b"content-length", b"transfer-encoding"):
            self.framed = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.status = self.parser.get_status_code()
        # Asked now: the parser forgets it once the message is complete.
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True
        self.wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self.wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.wake()

    # the client's side

    def take(self) -> bytes:
        """What has arrived, up to ``_READ`` bytes (the caller checked there is some).

        Bounded like a socket read: a model that floods a stream the client does not
        read hands the pipeline at most this much text at once.
        """
        body = self.body
        if len(body) == 1 and len(body[0]) <= _READ:
            data = body.pop()
        else:
            parts: list[bytes] = []
            size = 0
            while body and size < _READ:
                part = body.pop(0)
                if size + len(part) > _READ:
                    part, rest = part[:_READ - size], part[_READ - size:]
                    body.insert(0, rest)
                parts.append(part)
                size += len(part)
            data = b"".join(parts)
        self.buffered -= len(data)
        transport = self.transport
        if (self.paused and self.buffered <= _HIGH_WATER // 4 and transport is not None
                and not transport.is_closing()):
            self.paused = False
            transport.resume_reading()
        return data

    def reusable(self) -> bool:
        return (self.complete and self.keep_alive and not self.closed and self.error is None
                and self.transport is not None and not self.transport.is_closing())

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class StreamResponse(UpstreamResponse):
    """A response whose body is read as it arrives; ``aclose`` hands the connection back."""

    __slots__ = ("_client", "_conn", "_key")

    def __init__(self, client: StreamClient, key: tuple[str, str, int],
                 conn: _Connection) -> None:
        self._client = client
        self._key = key
        self._conn: _Connection | None = conn
        super().__init__(conn.status, conn.headers)
        conn.headers = []

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives, every read's worth at once, as sent (not decoded)."""
        conn = self._conn
        if conn is None:
            return
        while True:
            if conn.body:
                yield conn.take()
            elif conn.complete:
                return
            elif conn.closed:
                if conn.error is not None:
                    raise httpx.ReadError(str(conn.error) or "connection lost") from conn.error
                if conn.framed:
                    raise httpx.RemoteProtocolError(
                        "the server closed the connection before the response ended")
                return  # a body that ends when the connection does
            else:
                await conn.changed()

    def waited(self) -> float:
        """Seconds since the newest bytes of the body came (0 once closed): how long
        what the last read returned may have waited unread."""
        conn = self._conn
        return 0.0 if conn is None else max(0.0, conn.clock() - conn.arrived)

    async def aclose(self) -> None:
        """Done with the response: its connection goes back to the pool when the
        response was read to its end and the server keeps it open, else it is closed."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._release(self._key, conn)


class StreamClient:
    """POSTs whose responses are streamed; connections kept alive per origin, and up to
    ``spares`` made in the background for those that responses left early spent."""

    def __init__(self, *, verify: ssl.SSLContext | bool = True, max_idle: int = 100,
                 keepalive_expiry: float = 5.0, connect_timeout: float = 5.0,
                 write_timeout: float = 10.0, spares: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ssl: ssl.SSLContext | None = None
        self._verify = verify
        self.max_idle = max_idle
        self.keepalive_expiry = keepalive_expiry
        self.connect_timeout = connect_timeout
        self.write_timeout = write_timeout
        self.spares = min(spares, max_idle)
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._origins: dict[tuple[str, str, int], Origin] = {}
        self._connecting: dict[tuple[str, str, int], int] = {}
        self._spare_tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def post(self, origin: Origin, body: bytes,
                   headers: Mapping[str, str]) -> StreamResponse:
        """Sends ``body`` and returns once the response's headers have come. The caller
        must ``aclose`` the response. Errors are httpx's (``ConnectError``,
        ``ConnectTimeout``, ``WriteTimeout``, ``ReadError``, ``RemoteProtocolError``)."""
        if self._closed:
            raise RuntimeError("the client is closed")
        message = _message(origin, body, headers)
        del body
        self._origins[origin.key] = origin
        conn, reused = self._pooled(origin.key), True
        if conn is None:
            conn, reused = await self._connect(origin), False
        try:
            while True:
                conn.begin()
                await self._write(conn, message)
                while not conn.headers_done and not conn.closed:
                    await conn.changed()
                if conn.headers_done:
                    return StreamResponse(self, origin.key, conn)
                if reused and not conn.received:
                    # Kept alive, but the server had closed it: once more, on a new one.
                    conn, reused = await self._connect(origin), False
                    continue
                if conn.error is not None and not isinstance(conn.error, httpx.HTTPError):
                    raise httpx.ReadError(str(conn.error) or "connection lost") from conn.error
                raise conn.error or httpx.RemoteProtocolError(
                    "the server closed the connection without a response")
        except BaseException:
            conn.close()  # half a request or half a response: the connection is spent
            raise

    async def aclose(self) -> None:
        """Closes the idle connections; responses still open close theirs."""
        self._closed = True
        for task in self._spare_tasks:
            task.cancel()
        await self.spares_made()
        for connections in self._idle.values():
            for conn in connections:
                if conn.expiry is not None:
                    conn.expiry.cancel()
                conn.close()
        self._idle.clear()

    def idle(self, origin: Origin) -> int:
        """How many connections to ``origin`` are kept open, waiting for a request."""
        return sum(not c.closed for c in self._idle.get(origin.key, ()))

    async def spares_made(self) -> None:
        """Returns once the spare connections being made are made, or have failed."""
        while self._spare_tasks:
            await asyncio.gather(*self._spare_tasks, return_exceptions=True)

    def _pooled(self, key: tuple[str, str, int]) -> _Connection | None:
        connections = self._idle.get(key)
        now = self._clock()
        while connections:
            conn = connections.pop()
            if conn.expiry is not None:
                conn.expiry.cancel()
                conn.expiry = None
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if now - conn.idle_since > self.keepalive_expiry:
                conn.close()
                continue
            return conn
        return None

    def _release(self, key: tuple[str, str, int], conn: _Connection) -> None:
        reusable = conn.reusable()
        conn.parser = None
        conn.body.clear()
        conn.buffered = 0
        if conn.paused and conn.transport is not None and not conn.transport.is_closing():
            conn.paused = False
            conn.transport.resume_reading()
        idle = self._idle.setdefault(key, [])
        if not reusable or self._closed or len(idle) >= self.max_idle:
            conn.close()
            if not reusable:
                self._replace(key)
            return
        # Connections the server has since closed are dropped as the list is walked.
        idle[:] = [c for c in idle if not c.closed]
        self._keep(key, conn)

    def _keep(self, key: tuple[str, str, int], conn: _Connection) -> None:
        """``conn`` waits for a request, and is closed once idle ``keepalive_expiry``: a
        server need not close a connection that never carried a request (uvicorn
        does not), and a spare nobody took would otherwise stay open for good."""
        conn.idle_since = self._clock()
        conn.expiry = asyncio.get_running_loop().call_later(
            self.keepalive_expiry, self._expire, key, conn)
        self._idle.setdefault(key, []).append(conn)

    def _expire(self, key: tuple[str, str, int], conn: _Connection) -> None:
        conn.expiry = None
        idle = self._idle.get(key, [])
        if conn in idle:
            idle.remove(conn)
        conn.close()

    def _replace(self, key: tuple[str, str, int]) -> None:
        """A spare connection for one just spent, connected in the background."""
        origin = self._origins.get(key)
        connecting = self._connecting.get(key, 0)
        if origin is None or self._closed or self.idle(origin) + connecting >= self.spares:
            return
        self._connecting[key] = connecting + 1
        task = asyncio.get_running_loop().create_task(self._spare(origin))
        self._spare_tasks.add(task)
        task.add_done_callback(self._spare_tasks.discard)

    async def _spare(self, origin: Origin) -> None:
        try:
            conn = await self._connect(origin)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            return  # the next request connects itself, and its caller hears why not
        finally:
            self._connecting[origin.key] -= 1
        if self._closed:
            conn.close()
            return
        self._keep(origin.key, conn)

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        where = f"{origin.host}:{origin.port}"
        context = self._context() if origin.tls else None
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self._clock), origin.host, origin.port, ssl=context,
                    server_hostname=origin.host if context else None)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"timed out connecting to {where}") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"{where}: {exc}") from exc
        return conn

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            verify = self._verify
            self._ssl = verify if isinstance(verify, ssl.SSLContext) else (
                httpx.create_ssl_context(verify=verify))
        return self._ssl

    async def _write(self, conn: _Connection, message: bytes) -> None:
        transport = conn.transport
        if transport is None or transport.is_closing():
            conn.closed = True
            return  # read as a closed connection: retried when it was a kept-alive one
        transport.write(message)
        try:
            async with asyncio.timeout(self.write_timeout):
                await conn.drained()
        except TimeoutError as exc:
            raise httpx.WriteTimeout("timed out writing to the server") from exc


def _message(origin: Origin, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [origin.head]
    for name, value in headers.items():
        if any(c in name for c in ":\r\n") or "\r" in value or "\n" in value:
            raise httpx.LocalProtocolError(f"invalid header {name!r}")
        if name.lower() not in ("content-length", "host"):
            try:
                lines.append(f"{name}: {value}\r\n".encode("latin-1"))
            except UnicodeEncodeError as exc:
                raise httpx.LocalProtocolError(f"header {name!r} is not Latin-1") from exc
    lines.append(f"Content-Length: {len(body)}\r\n\r\n".encode("ascii"))
    lines.append(body)
    return b"".join(lines)
