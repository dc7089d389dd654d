"""The app called in-process, at the ASGI level, with its lifespan run: for the tests
where nothing streams or disconnects (a real server is for those: tests/servers.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from httpx2 import Response
from starlette.testclient import TestClient
from starlette.types import ASGIApp

# Starlette's TestClient is built on httpx2: its responses are httpx2's.
__all__ = ["Response", "TestClient", "asgi_client", "request_body"]


@contextlib.contextmanager
def asgi_client(app: ASGIApp) -> Iterator[TestClient]:
    """An ``httpx.Client`` whose requests go straight into ``app`` (startup and shutdown
    run around it). An exception the app lets out fails the test instead of becoming a
    500: no input may cause one."""
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


async def request_body(receive: Callable[[], Awaitable[MutableMapping[str, Any]]]) -> bytes:
    """The whole body of the request an ASGI app is answering, for test servers' apps."""
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return bytes(body)
