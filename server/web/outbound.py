"""The outbound HTTP client's network layer: httpcore over plain asyncio.

httpx sends requests through httpcore, and httpcore's default network backend goes
through anyio: every socket read enters a cancel scope (a deadline, even when there
is none), checks for cancellation with an extra turn of the event loop, and maps
exceptions through a generator-based context manager. A model relaying thousands
of tokens a second pays that on every read. This backend reads from an
``asyncio.Protocol`` instead: a read returns what has already arrived without
waiting, waits on one future when nothing has, and arms a timer only when a
timeout is given. TLS is the event loop's own (``loop.start_tls``).

``transport()`` is what the app's shared client is given: this module's transport,
unless the environment names a proxy (``HTTP_PROXY``, ``HTTPS_PROXY``,
``ALL_PROXY``). httpx ignores those variables when it is handed a transport, so
then it gets none and sets up its own, with the proxies and ``NO_PROXY``, as it
always did.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import httpcore
import httpx

from server.web.waking import WakingProtocol

# Read no more than this ahead of the reader: the socket is paused past it, so a
# model that floods a slow stream fills the kernel's buffers, not the worker's memory.
_HIGH_WATER = 64 * 1024


class _Reading(WakingProtocol):
    """Bytes received and not yet read; pauses the socket when too many wait."""

    # One per open connection: thousands at once.
    __slots__ = ("buffered", "chunks", "eof", "error", "paused")

    def __init__(self) -> None:
        super().__init__()
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.paused = False

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _HIGH_WATER and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self.wake()

    def eof_received(self) -> bool | None:
        self.eof = True
        self.wake()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        super().connection_lost(exc)

    def take(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of what has arrived (the caller checked there is some)."""
        first = self.chunks[0]
        if len(first) <= max_bytes:
            self.chunks.popleft()
        else:
            first, self.chunks[0] = first[:max_bytes], first[max_bytes:]
        self.buffered -= len(first)
        transport = self.transport
        if self.paused and self.buffered <= _HIGH_WATER // 4 and transport is not None:
            self.paused = False
            if not transport.is_closing():
                transport.resume_reading()
        return first


# httpcore's names for what a stream can tell, and the transport's.
_EXTRA = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername",
          "socket": "socket"}


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection, read and written through the event loop's transport."""

    __slots__ = ("_protocol", "_transport")

    def __init__(self, transport: asyncio.Transport, protocol: _Reading) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        protocol = self._protocol
        if not protocol.chunks:
            if protocol.eof:
                return self._ended()
            try:
                if timeout is None:
                    await protocol.changed()
                else:
                    async with asyncio.timeout(timeout):
                        await protocol.changed()
            except TimeoutError as exc:
                raise httpcore.ReadTimeout("timed out reading from the server") from exc
            if not protocol.chunks:
                return self._ended()
        return protocol.take(max_bytes)

    def _ended(self) -> bytes:
        if self._protocol.error is not None:
            raise httpcore.ReadError(str(self._protocol.error) or "connection lost")
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        try:
            if timeout is None:
                await self._protocol.drained()
            else:
                async with asyncio.timeout(timeout):
                    await self._protocol.drained()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("timed out writing to the server") from exc
        if self._protocol.error is not None:
            raise httpcore.WriteError(str(self._protocol.error))

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None,  # noqa: ASYNC109
                        ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                tls = await loop.start_tls(self._transport, self._protocol, ssl_context,
                                           server_hostname=server_hostname)
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from exc
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        if tls is None:  # pragma: no cover - only for a transport that cannot do TLS
            raise httpcore.ConnectError("the connection cannot start TLS")
        self._protocol.transport = tls
        return AsyncioStream(tls, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # An idle keep-alive connection with something to read was closed (or
            # broken) by the server: the pool then opens a new one.
            return bool(self._protocol.chunks) or self._protocol.eof
        name = _EXTRA.get(info)
        if name is None or self._transport.is_closing():
            return None  # asyncio's TLS transport has nothing to tell once closed
        return self._transport.get_extra_info(name)


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connections made by the running event loop (uvloop's, under the server)."""

    async def connect_tcp(self, host: str, port: int,
                          timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        return await _connect(
            f"{host}:{port}",
            lambda: loop.create_connection(_Reading, host, port, local_addr=local),
            timeout, socket_options)

    async def connect_unix_socket(self, path: str,
                                  timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        return await _connect(path, lambda: loop.create_unix_connection(_Reading, path),
                              timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connect(where: str,
                   connecting: Callable[[], Awaitable[tuple[asyncio.BaseTransport, _Reading]]],
                   within_s: float | None,
                   options: Iterable[httpcore.SOCKET_OPTION] | None) -> AsyncioStream:
    try:
        async with asyncio.timeout(within_s):
            transport, protocol = await connecting()
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"timed out connecting to {where}") from exc
    except OSError as exc:
        raise httpcore.ConnectError(str(exc)) from exc
    _apply(transport, options)
    return AsyncioStream(cast(asyncio.Transport, transport), protocol)


def _apply(transport: asyncio.BaseTransport,
           options: Iterable[httpcore.SOCKET_OPTION] | None) -> None:
    sock: socket.socket | None = transport.get_extra_info("socket")
    if sock is None:
        return
    for option in options or ():
        sock.setsockopt(*option)


class Transport(httpx.AsyncHTTPTransport):
    """httpx's own HTTP/1.1 transport, its httpcore pool on :class:`AsyncioBackend`.

    httpx takes no network backend, so the pool it builds is built again on this one;
    everything else (the request and response mapping, httpcore's errors as httpx's)
    stays httpx's. A test checks that responses come over :class:`AsyncioStream`.
    """

    def __init__(self, *, limits: httpx.Limits | None = None,
                 verify: ssl.SSLContext | bool = True) -> None:
        limits = limits or httpx.Limits()
        super().__init__(verify=verify, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=AsyncioBackend(),
        )


def proxied() -> bool:
    """Whether the environment names a proxy (``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``ALL_PROXY``), which only httpx's own transports go through."""
    proxies = urllib.request.getproxies()  # what httpx reads, too
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """The shared client's transport: :class:`Transport`, or None (httpx's own) when
    :func:`proxied`."""
    return None if proxied() else Transport(limits=limits)
