"""What both model-stream clients share: where a request goes, and what comes back.

The model's streams go through :mod:`server.web.upstream` (HTTP/1.1, a connection a
stream) or :mod:`server.web.upstream_h2` (HTTP/2, many streams a connection), or
either as the server's TLS handshake agrees (:mod:`server.web.upstream_alpn`). Both
take an :class:`Origin` and hand back an :class:`UpstreamResponse`: the body as it
arrives (``aiter_raw``), decoded (``aiter_bytes``), or whole (``aread``, for an
error's), and how long what the last read returned may have waited unread
(``waited``).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Protocol
from urllib.parse import urlsplit

import httpx

# An error body (a 4xx or 5xx) is read up to this much.
_ERROR_BODY = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Origin:
    """Where requests to one URL go, and the first lines of an HTTP/1.1 request to it."""

    __slots__ = ("authority", "head", "host", "key", "port", "target", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http or https URL: {url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self.key = (parts.scheme, self.host, self.port)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.authority = parts.netloc.rpartition("@")[2]
        self.head = f"POST {self.target} HTTP/1.1\r\nHost: {self.authority}\r\n".encode(
            "ascii")


class UpstreamResponse:
    """A response whose body is read as it arrives; ``aclose`` ends the caller's use."""

    __slots__ = ("headers", "status_code")

    def __init__(self, status_code: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        self.status_code = status_code
        joined: dict[str, str] = {}
        for name, value in headers:
            text = name.decode("latin-1").lower()
            joined[text] = (f"{joined[text]}, " if text in joined else "") + value.decode(
                "latin-1")
        self.headers: Mapping[str, str] = joined  # names lowercased; repeats joined by ", "

    def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives, every read's worth at once, as sent (not decoded)."""
        raise NotImplementedError

    def waited(self) -> float:
        """Seconds since the newest bytes of the body came (0 once closed): how long
        what the last read returned may have waited unread."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Done with the response (read to its end or not)."""
        raise NotImplementedError

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body decoded from its ``Content-Encoding`` (gzip or deflate)."""
        encoding = self.headers.get("content-encoding", "").strip().lower()
        if encoding in ("", "identity"):
            async for data in self.aiter_raw():
                yield data
            return
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise httpx.DecodingError(f"unsupported content encoding {encoding!r}")
        # gzip's header, or zlib's for deflate (which some servers send raw: wbits < 0).
        decoder = zlib.decompressobj(31 if "gzip" in encoding else 15)
        first = True
        try:
            async for data in self.aiter_raw():
                if first and encoding == "deflate" and data[:1] != b"\x78":
                    decoder = zlib.decompressobj(-15)
                first = False
                if out := decoder.decompress(data):
                    yield out
            if out := decoder.flush():
                yield out
        except zlib.error as exc:
            raise httpx.DecodingError(f"the {encoding} body does not decode: {exc}") from exc

    async def aread(self) -> bytes:
        """The whole body (an error's, usually), up to 64 KiB of it."""
        parts: list[bytes] = []
        size = 0
        async for data in self.aiter_bytes():
            parts.append(data)
            size += len(data)
            if size >= _ERROR_BODY:
                break
        return b"".join(parts)[:_ERROR_BODY]


class ModelStreams(Protocol):
    """A client for the model's streams: HTTP/1.1 or HTTP/2."""

    async def post(self, origin: Origin, body: bytes,
                   headers: Mapping[str, str]) -> UpstreamResponse:
        """Sends ``body`` and returns once the response's headers have come. The caller
        must ``aclose`` the response. Errors are httpx's."""
        ...

    async def aclose(self) -> None:
        """Closes the client's connections."""
        ...
