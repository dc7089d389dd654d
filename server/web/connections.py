"""Bounds on what one client connection may hold, so a slow or hostile client cannot
keep a socket, a task or buffered bytes for ever.

uvicorn bounds the idle time between requests (its keep-alive timeout) but not the
time a client takes to send a request, and a closing connection keeps its unsent
bytes, and so its socket, until the client reads them. Three guards fill the gaps:

- ``GuardedHttpProtocol`` (uvicorn's httptools protocol, subclassed): a request's
  headers must be complete within ``header_timeout_s`` of the connection opening or
  of the request's first byte (408 ``header_timeout``, then the connection closes);
  a request line and headers over ``MAX_HEADER_BYTES`` are a 431
  ``headers_too_large``, refused as they arrive (uvicorn has no such bound, and
  httptools gathers one header's value by concatenation: 90 MB of it held the loop
  8 s); a connection being closed with bytes still unsent is reset after
  ``close_linger_s`` instead of waiting for a client that never reads; bytes
  that are not HTTP get the JSON error body every other error has (400
  ``bad_request``), not uvicorn's plain text; and what a pipelined request that is
  not HTTP meets is the end of the answer before it, then the close.
- ``BodyDeadline`` (pure ASGI middleware): the whole body must arrive within
  ``body_timeout_s`` of the request's headers (408 ``body_timeout``, ``Connection:
  close``).
- ``drop_connection(scope)``: a response whose client stopped reading (its send
  timed out) resets the connection at once, so nothing stays queued for it.

``watch_disconnect(scope, receive, callback)`` tells a streamed response that its
client left without a task of its own waiting on ``receive()`` (the protocol calls
back when the connection is lost; ``server/web/streamed.py``), and
``writable(scope)`` whether its next send would go out without waiting.

See docs/configuration.md (``ASSIST_HEADER_TIMEOUT_S``, ``ASSIST_BODY_TIMEOUT_S``,
``ASSIST_SEND_TIMEOUT_S``) and ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import struct
import weakref
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.errors import AssistError, BadRequest, BodyTimeout, HeadersTooLarge, HeaderTimeout

log = logging.getLogger("assist_panel.connections")

# The scope extension through which a response drops its own connection.
DROP_EXTENSION = "assist.drop_connection"
# The scope extension through which a response learns that its client left.
DISCONNECT_EXTENSION = "assist.watch_disconnect"
# The scope extension that tells whether a send now would go out without waiting.
WRITABLE_EXTENSION = "assist.writable"
# A request's line and headers, at most: the panel's own are well under 1 KiB (a
# session is about 300 bytes); nginx's default allows 4 lines of 8 KiB each.
MAX_HEADER_BYTES = 64 * 1024


class _TooLarge(Exception):
    """Raised in the parser's callbacks to stop it at once."""


class _BoundedClose:
    """The connection's transport, except that ``close()`` gives unsent bytes
    ``linger_s`` to go out and then resets the connection (asyncio's own close waits
    for them for ever, and a client that never reads never takes them)."""

    # One per connection, thousands at once: no instance dictionary.
    __slots__ = ("_gone", "_linger_s", "_loop", "_timer", "_transport", "_watcher")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
                 linger_s: float) -> None:
        self._transport = transport
        self._loop = loop
        self._linger_s = linger_s
        self._timer: asyncio.TimerHandle | None = None
        self._gone = False  # reset, or the connection is lost: nothing left to bound
        self._watcher: Callable[[], None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        self._transport.close()
        if not self._gone and self._timer is None and self._transport.get_write_buffer_size():
            self._timer = self._loop.call_later(self._linger_s, self.reset)

    def reset(self) -> None:
        """Drop the connection now: a TCP reset, so the kernel keeps no unsent bytes."""
        if self._gone:
            return
        self.lost()
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            # OSError: closed already; ValueError: uvloop's stand-in socket, closed.
            with contextlib.suppress(OSError, ValueError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._transport.abort()

    def lost(self) -> None:
        """The connection is gone: no reset is due any more, and its watcher is told."""
        self._gone = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if (watcher := self._watcher) is not None:
            self._watcher = None
            watcher()

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` once when the connection is gone (soon, if it is already);
        returns the function that stops watching. One watcher at a time."""
        if self._gone:
            self._loop.call_soon(callback)
            return _nothing
        self._watcher = callback

        def unwatch() -> None:
            if self._watcher is callback:
                self._watcher = None

        return unwatch


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on request headers and a bounded
    close. Use ``guarded_protocol()`` for a class with the settings' figures."""

    # Ours in slots: uvicorn's own attributes then fit the instance dictionary's shared
    # keys, 296 bytes rather than 1,584 a connection.
    __slots__ = ("_began", "_bounded", "_headers_timer", "_in_headers", "_linger",
                 "_refused", "_too_large", "_unparsed")

    header_timeout_s: float = 10.0
    close_linger_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._headers_timer: asyncio.TimerHandle | None = None
        self._in_headers = False  # between a request's first byte and its headers' end
        self._unparsed = 0  # fed while in headers, in reads after the request's first one
        self._began = False  # a request began in the read being fed
        self._too_large = False
        self._refused = False  # answered below the app: what comes is read and dropped
        self._linger: asyncio.TimerHandle | None = None
        self._bounded = _BoundedClose(transport, self.loop, self.close_linger_s)
        super().connection_made(self._bounded)  # type: ignore[arg-type]
        self._arm_headers()  # a connection that never sends a byte is bounded too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_headers()
        if self._linger is not None:
            self._linger.cancel()
        self._bounded.lost()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._began = False
        super().data_received(data)
        if not self._in_headers or self._began or self.transport.is_closing():
            return
        # Headers that never end: httptools holds a header until its end, so what it
        # was fed is counted as it comes. The read in which the request began may hold
        # the end of the one before (pipelined), so it is left out; complete headers are
        # measured whole in ``on_headers_complete``.
        self._unparsed += len(data)
        if self._unparsed > MAX_HEADER_BYTES:
            self._too_large = True
            self._malformed(HeadersTooLarge(_too_large_message()),
                            b"431 Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = self._began = True
        self._unparsed = 0
        self._arm_headers()
        # What the scope offers holds the protocol weakly: bound methods would make
        # protocol -> scope -> method -> protocol a cycle, each connection's objects
        # left for the garbage collector, whose passes then took a millisecond of the
        # loop every half second (docs/performance.md, "Garbage").
        me = weakref.ref(self)
        self.scope["extensions"] = {
            DROP_EXTENSION: functools.partial(_drop, me),  # type: ignore[dict-item]
            DISCONNECT_EXTENSION: self._bounded.watch,  # type: ignore[dict-item]
            WRITABLE_EXTENSION: functools.partial(_writable, me)}  # type: ignore[dict-item]

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm_headers()
        # ": " and CRLF a header; the request line's method and version left out.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > MAX_HEADER_BYTES:
            self._too_large = True
            raise _TooLarge  # the parser stops; uvicorn calls send_400_response
        super().on_headers_complete()

    def writable(self) -> bool:
        """Whether a send now goes straight to the socket's buffer: uvicorn's send
        waits only while writing is paused (the client has that much unread)."""
        return not self.flow.write_paused

    def refuse_unread_body(self, error: AssistError, status: bytes) -> None:
        """Answer ``error`` now to a request whose body is still coming (the app, waiting
        for it, sees the client leave); nothing for any other connection."""
        cycle = self.cycle
        if (cycle is None or cycle.response_started or cycle.response_complete
                or not cycle.more_body or self.transport.is_closing()):
            return
        cycle.disconnected = True  # the app's next send is dropped, not logged
        cycle.message_event.set()
        self._refuse(error, status)

    def drop(self) -> None:
        """Reset the connection at once; the request in progress sees a disconnect."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's next send is dropped, not logged
            cycle.message_event.set()
        self._bounded.reset()

    def _arm_headers(self) -> None:
        if self._headers_timer is None and self.header_timeout_s > 0:
            self._headers_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm_headers(self) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None

    def _headers_late(self) -> None:
        self._headers_timer = None
        if self.transport.is_closing():
            return
        log.info("closed a connection: request headers not complete in %gs",
                 self.header_timeout_s)
        # Trickling in behind a request being answered (pipelined), it lets that answer
        # finish, then the connection closes: a 408 now would land in its middle.
        self._malformed(HeaderTimeout(
            f"request headers not complete in {self.header_timeout_s:g}s"), b"408 Request Timeout")

    def send_400_response(self, msg: str) -> None:
        """Bytes that are not HTTP (a bad header name or value, a bad length): uvicorn
        answers in plain text; ours is the JSON every other error has."""
        if self._too_large:
            self._malformed(HeadersTooLarge(_too_large_message()),
                            b"431 Request Header Fields Too Large")
        else:
            self._malformed(BadRequest(msg), b"400 Bad Request")

    def _unsupported_upgrade_warning(self) -> None:
        # The panel serves no WebSocket (uvicorn's ws="none"): an upgrade request is
        # answered as plain HTTP by the app (a JSON 404 or 405), then the connection
        # closes, since what follows such a request need not be HTTP.
        log.info("answered an upgrade request as plain HTTP")
        self._close_after_answer()

    def _malformed(self, error: AssistError, status: bytes) -> None:
        """Refuse what the parser could not take; behind a request whose body has come
        and whose answer is still being sent (a pipelined one), finish that answer and
        close instead: an error written now would land in the middle of it."""
        cycle = self.cycle
        if (cycle is not None and not cycle.response_complete
                and (cycle.response_started or not cycle.more_body)):
            self._close_after_answer()
            return
        self._refuse(error, status)

    def _close_after_answer(self) -> None:
        """Read no more; close once the answer in progress is sent."""
        if self.cycle is not None:
            self.cycle.keep_alive = False
        self.flow.pause_reading()

    def _refuse(self, error: AssistError, status: bytes) -> None:
        """Answer ``error`` below the app, and close the connection: our side at once,
        the whole of it once the client has closed its own or after ``close_linger_s``.
        ``error``'s own headers (``Retry-After``) go with it.

        Closed at once, a socket with unread bytes sends a reset, and a client still
        sending (a header without end, a body) lost the answer to it; what it sends
        meanwhile is read and dropped."""
        body = json.dumps({"error": error.code, "message": error.message}).encode()
        extra = b"".join(f"{name.lower()}: {value}\r\n".encode()
                         for name, value in error.headers.items()
                         if name.lower() != "connection")  # written below, always
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n" + extra
            + b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"x-content-type-options: nosniff\r\ncache-control: no-store\r\n"
            b"connection: close\r\n\r\n" + body)
        self._refused = True
        self._disarm_headers()
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self._linger = self.loop.call_later(self.close_linger_s, self.transport.close)


def _too_large_message() -> str:
    return f"request line and headers over {MAX_HEADER_BYTES} bytes"


def guarded_protocol(*, header_timeout_s: float, close_linger_s: float
                     ) -> type[GuardedHttpProtocol]:
    """A ``GuardedHttpProtocol`` class with these bounds, for ``uvicorn.Config(http=...)``."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,),
                {"header_timeout_s": header_timeout_s, "close_linger_s": close_linger_s})


def _drop(protocol: weakref.ref[GuardedHttpProtocol]) -> None:
    if (alive := protocol()) is not None:
        alive.drop()


def _writable(protocol: weakref.ref[GuardedHttpProtocol]) -> bool:
    alive = protocol()
    return alive is None or alive.writable()  # gone: a send is dropped, it never waits


def drop_connection(scope: Scope) -> bool:
    """Reset the connection of ``scope`` at once, when the server offers it (ours does).

    For a response whose client stopped reading: whatever it still had queued is
    discarded with the connection. False when the server has no such extension.
    """
    drop = scope.get("extensions", {}).get(DROP_EXTENSION)
    if drop is None:
        return False
    drop()
    return True


def watch_disconnect(scope: Scope, receive: Receive, callback: Callable[[], None]
                     ) -> Callable[[], None]:
    """Call ``callback`` once when the client of ``scope`` leaves; returns the function
    that stops watching (call it when the response ends).

    Our protocol calls back when the connection is lost, at no cost while it is open.
    Elsewhere (another server, an in-process test transport) a task waits on
    ``receive()`` for ``http.disconnect``, as Starlette's streaming response does.
    """
    watch = scope.get("extensions", {}).get(DISCONNECT_EXTENSION)
    if watch is not None:
        stop: Callable[[], None] = watch(callback)
        return stop

    async def listen() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        callback()

    listener = asyncio.get_running_loop().create_task(listen())

    def unwatch() -> None:
        listener.cancel()

    return unwatch


def _nothing() -> None:
    pass


def writable(scope: Scope) -> Callable[[], bool] | None:
    """The function telling whether a send on ``scope`` would go out now without
    waiting (our protocol offers it: true unless writing is paused); None elsewhere."""
    check: Callable[[], bool] | None = scope.get("extensions", {}).get(WRITABLE_EXTENSION)
    return check


def drop_slow_reader(scope: Scope, waited_s: float) -> None:
    """A streamed response gave up on a client that took no bytes for ``waited_s``: its
    connection goes (and with it what was queued), and the log gets one line, not a
    traceback (the stream itself has ended by then)."""
    drop_connection(scope)
    log.warning("client stopped reading for %gs: stream ended, connection reset", waited_s)


class BodyDeadline:
    """Pure ASGI middleware: the request body must be complete within ``timeout_s`` of
    the request reaching the app, or the read fails with ``BodyTimeout`` (408)."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.timeout_s <= 0:
            await self.app(scope, receive, send)
            return
        # asyncio's own timeout, not anyio's cancel scope: the server runs on asyncio, and
        # the scope's bookkeeping cost every request tens of microseconds on a cold core
        # for a body that had nearly always come whole with the headers.
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        complete = False

        async def receive_in_time() -> Message:
            nonlocal complete
            if complete:  # after the body: disconnect listeners wait as long as they like
                return await receive()
            timeout = asyncio.timeout_at(deadline)
            try:
                async with timeout:
                    message = await receive()
            except TimeoutError:
                if not timeout.expired():
                    raise  # not ours
                raise BodyTimeout(
                    f"request body not complete in {self.timeout_s:g}s") from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, receive_in_time, send)
