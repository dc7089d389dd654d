"""Real uvicorn servers on loopback ports for tests, started in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
from starlette.types import ASGIApp

from server.devmode.http2 import Http2Server
from server.web.connections import guarded_protocol

T = TypeVar("T")


class _Server(uvicorn.Server):
    """A uvicorn server that tells when it is listening (an event, not a poll)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)
        self.ready.set()


@dataclass
class Running:
    """A server running in its own thread: its URL, and a way into its event loop."""

    url: str
    loop: asyncio.AbstractEventLoop
    server: uvicorn.Server

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``coro`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def connections(self) -> int:
        """The connections the server holds open now."""
        async def count() -> int:
            return len(self.server.server_state.connections)
        return self.call(count())


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a free loopback port, for apps that must know their URL first.

    Pass it to :func:`serve`; its port is ``sock.getsockname()[1]``.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@contextlib.contextmanager
def running(app: ASGIApp, host: str = "127.0.0.1", sock: socket.socket | None = None,
            *, header_timeout_s: float = 10.0, close_linger_s: float = 10.0,
            keep_alive_s: int = 5, protocol: type[asyncio.Protocol] | None = None,
            ws: str = "auto") -> Iterator[Running]:
    """Run ``app`` on a free loopback port (or on ``sock``) and stop it afterwards.

    The server speaks HTTP with the panel's own connection bounds
    (``server.web.connections.GuardedHttpProtocol``), as ``assist-panel serve`` does, unless
    ``protocol`` names another class. ``ws="none"``: no WebSocket layer, as ``serve``
    has (the mocks need theirs).
    """
    protocol = protocol or guarded_protocol(header_timeout_s=header_timeout_s,
                                            close_linger_s=close_linger_s)
    server = _Server(uvicorn.Config(app, host=host, port=0, log_level="warning",
                                    lifespan="on", timeout_graceful_shutdown=5,
                                    http=protocol, timeout_keep_alive=keep_alive_s,
                                    ws=ws))
    sockets = [sock] if sock is not None else None
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    try:
        while not server.ready.wait(timeout=0.5):
            if not thread.is_alive():
                raise RuntimeError("test server failed to start")
        port = server.servers[0].sockets[0].getsockname()[1]
        assert server.loop is not None
        yield Running(f"http://{host}:{port}", server.loop, server)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextlib.contextmanager
def serve(app: ASGIApp, host: str = "127.0.0.1",
          sock: socket.socket | None = None) -> Iterator[str]:
    """Run ``app`` on a free loopback port (or on ``sock``); yields its base URL and stops it
    afterwards."""
    with running(app, host, sock) as server:
        yield server.url


@contextlib.contextmanager
def serve_http2(app: ASGIApp, *, max_streams: int = 100, certfile: str | None = None,
                keyfile: str | None = None, alpn: tuple[str, ...] = ("h2", "http/1.1"),
                ) -> Iterator[str]:
    """Run ``app`` with hypercorn on a free loopback port: HTTP/2 (h2c with prior
    knowledge, or over TLS with ``certfile`` and ``keyfile``, ALPN offering ``alpn``) and
    HTTP/1.1. Yields its base URL; stops it afterwards."""
    sock = listening_socket()
    sock.listen(128)  # listening before the server starts: connections wait, not fail
    port = sock.getsockname()[1]
    server = Http2Server(app, f"fd://{sock.detach()}")  # hypercorn's to close
    server.config.h2_max_concurrent_streams = max_streams
    if certfile is not None:
        server.config.certfile, server.config.keyfile = certfile, keyfile
        server.config.alpn_protocols = list(alpn)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),),
                              daemon=True)
    thread.start()
    try:
        yield f"{'https' if certfile else 'http'}://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(setattr, server, "should_exit", True)
        thread.join(timeout=30)
        loop.close()
