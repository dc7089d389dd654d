"""The model's protocol as its server agrees: HTTP/2 where the TLS handshake offers it.

``ASSIST_MODEL_HTTP2=auto``, the default. On an ``https://`` model the first connection
offers ``h2`` and ``http/1.1`` (ALPN), as browsers, curl and Go's client do. A server
that picks ``h2`` gets every stream over HTTP/2 (:mod:`server.web.upstream_h2`), many
to a connection; one that picks ``http/1.1``, or does not answer ALPN, gets them over
HTTP/1.1 (:mod:`server.web.upstream`), a connection each, from then on: that first
connection is let go before anything is sent on it, and the request goes over
HTTP/1.1. A cleartext ``http://`` model is not asked: HTTP/2 there needs prior
knowledge, which an HTTP/1.1 server would take for a broken request, so it gets
HTTP/1.1 (``ASSIST_MODEL_HTTP2=true`` asks for h2c).

What an origin agreed to is kept, and told to ``on_protocol`` when it is first known and
whenever it changes: an HTTP/1.1 stream holds an open file more than an HTTP/2 one, so
the worker's stream cap follows it (:mod:`server.web.open_files`). A server that stops
agreeing to HTTP/2 is found at its next connection and switched to HTTP/1.1 then. One
that starts (a new version, or a balancer in front of it that now passes ALPN on) is
found within :data:`RECHECK_S`: once an origin has been on HTTP/1.1 that long, one
request offers it HTTP/2 again, a TLS handshake more every ten minutes, while the
others go on over HTTP/1.1. If that offer fails before the answer (the handshake, or
the stream after a handshake that agreed), its request goes over HTTP/1.1 too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import httpx

from server.web.upstream import StreamClient
from server.web.upstream_body import Origin, UpstreamResponse
from server.web.upstream_h2 import H2StreamClient

log = logging.getLogger("assist_panel")

#: What a TLS handshake is offered, HTTP/2 first.
OFFERED = ("h2", "http/1.1")

HTTP2, HTTP1 = "h2", "http/1.1"

#: Seconds an ``https://`` origin stays on HTTP/1.1 before a request offers it HTTP/2 again.
RECHECK_S = 600.0


class NegotiatedStreams:
    """Model streams (``ModelStreams``) over HTTP/2 where the server agrees, HTTP/1.1 elsewhere."""

    def __init__(self, http1: StreamClient, http2: H2StreamClient, *,
                 on_protocol: Callable[[Origin, str], None] | None = None,
                 recheck_s: float = RECHECK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``http2`` must offer :data:`OFFERED`; ``on_protocol(origin, protocol)`` is
        called when what ``origin`` agreed to is first known, and when it changes
        (``"h2"`` or ``"http/1.1"``); an origin on HTTP/1.1 is offered HTTP/2 again
        once ``recheck_s`` have passed on ``clock`` since it last declined."""
        self.http1, self.http2 = http1, http2
        self.on_protocol = on_protocol
        self.recheck_s = recheck_s
        self._clock = clock
        self._agreed: dict[tuple[str, str, int], str] = {}
        # When each origin on HTTP/1.1 was last offered HTTP/2, on ``clock``.
        self._declined: dict[tuple[str, str, int], float] = {}

    def protocol(self, origin: Origin) -> str | None:
        """What ``origin``'s requests go over: ``"h2"``, ``"http/1.1"``, or None
        before its first connection tells."""
        if not origin.tls:
            return HTTP1
        return self._agreed.get(origin.key)

    def post(self, origin: Origin, body: bytes,
             headers: Mapping[str, str]) -> Coroutine[Any, Any, UpstreamResponse]:
        """Sends ``body`` over what ``origin`` agreed to; the first request to an
        ``https://`` origin asks. Errors are httpx's, as the two clients'."""
        if self.protocol(origin) == HTTP1:
            if not self._ask_again(origin):
                # The HTTP/1.1 client's own coroutine, with no frame of ours around it:
                # the frame cost a worker 3.5 KB a stream (docs/performance.md).
                return self.http1.post(origin, body, headers)
            return self._over_http2(origin, body, headers, again=True)
        return self._over_http2(origin, body, headers)

    def _ask_again(self, origin: Origin) -> bool:
        declined = self._declined.get(origin.key)
        return (origin.tls and declined is not None
                and self._clock() - declined >= self.recheck_s)

    async def _over_http2(self, origin: Origin, body: bytes, headers: Mapping[str, str],
                          *, again: bool = False) -> UpstreamResponse:
        """The request offered HTTP/2: the first to ``origin``, or, ``again``, one of an
        origin on HTTP/1.1 (the others meanwhile, and however it ends, are not offered it
        for ``recheck_s``)."""
        if again:
            self._declined[origin.key] = self._clock()
        try:
            response = await self.http2.post(origin, body, headers)
        except httpx.ConnectError:
            if not again and self.http2.picked(origin) in (None, HTTP2):
                raise  # no handshake ended, or it agreed: a failure of its own
            # The handshake picked another protocol, or none (or, offered again, the
            # connect failed), and nothing was sent: the request goes over HTTP/1.1, and
            # so will the next.
            self._agree(origin, HTTP1)
            return await self.http1.post(origin, body, headers)
        except httpx.TransportError as exc:
            if not again or isinstance(exc, httpx.ReadTimeout):
                raise  # the model slow to answer would be as slow over HTTP/1.1
            # Offered again, the server agreed to HTTP/2 and then failed the stream
            # before its answer: the origin stays on HTTP/1.1, which served it until
            # now, and the request goes there rather than failing for our offer.
            log.warning("the model at %s:%d agreed to HTTP/2 and failed the stream (%s): "
                        "staying on HTTP/1.1", origin.host, origin.port, type(exc).__name__)
            return await self.http1.post(origin, body, headers)
        self._agree(origin, HTTP2)
        return response

    async def aclose(self) -> None:
        """Closes both clients' connections."""
        try:
            await self.http2.aclose()
        finally:
            await self.http1.aclose()

    def _agree(self, origin: Origin, protocol: str) -> None:
        if protocol == HTTP1:
            self._declined[origin.key] = self._clock()
        if self._agreed.get(origin.key) == protocol:
            return
        self._agreed[origin.key] = protocol
        log.info("the model at %s:%d speaks %s", origin.host, origin.port,
                 "HTTP/2: its streams share connections" if protocol == HTTP2
                 else "HTTP/1.1 only: each stream holds a connection")
        if self.on_protocol is not None:
            self.on_protocol(origin, protocol)
