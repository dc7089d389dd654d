"""The model's protocol as its server agrees (``server.web.upstream_alpn``): HTTP/2 where
an ``https://`` server's TLS handshake picks it, HTTP/1.1 elsewhere, against hypercorn
over TLS, a raw TLS server without ALPN and uvicorn on cleartext, on loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import httpx
import pytest
import trustme

from bench.procs import Certificate
from server.web.upstream import StreamClient
from server.web.upstream_alpn import OFFERED, NegotiatedStreams
from server.web.upstream_body import Origin, UpstreamResponse
from server.web.upstream_h2 import H2StreamClient
from tests.servers import serve, serve_http2
from tests.web.rawhttp import answer, read_request, server

pytestmark = pytest.mark.anyio

HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream",
           "Host": "ignored"}


class Versions:
    """An ASGI app answering every request with the HTTP version it came over."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        version = scope["http_version"]
        self.seen.append(version)
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": version.encode()})


class CountingH2(H2StreamClient):
    """The HTTP/2 client, counting the requests handed to it."""

    def __init__(self, **options: Any) -> None:
        super().__init__(alpn=OFFERED, **options)
        self.asked = 0

    async def post(self, origin: Origin, body: bytes,
                   headers: Mapping[str, str]) -> UpstreamResponse:
        self.asked += 1
        return await super().post(origin, body, headers)


@contextlib.contextmanager
def negotiated(ca: trustme.CA) -> Iterator[tuple[NegotiatedStreams, list[str]]]:
    """Both clients trusting ``ca``, and what ``on_protocol`` was told."""
    contexts = [ssl.create_default_context(), ssl.create_default_context()]
    for context in contexts:
        ca.configure_trust(context)
    told: list[str] = []
    client = NegotiatedStreams(StreamClient(verify=contexts[0]), CountingH2(verify=contexts[1]),
                               on_protocol=lambda origin, protocol: told.append(protocol))
    yield client, told


async def ask(client: NegotiatedStreams, origin: Origin) -> bytes:
    """The body of one request's response."""
    response = await client.post(origin, b"{}", HEADERS)
    try:
        return await response.aread()
    finally:
        await response.aclose()


async def test_a_model_whose_handshake_picks_http2_gets_every_stream_over_it(
        certificate: Certificate) -> None:
    ca, chain, key = certificate.ca, certificate.chain, certificate.key
    app = Versions()
    with (serve_http2(app, certfile=str(chain), keyfile=str(key)) as url,
          negotiated(ca) as (client, told)):
        origin = Origin(url + "/v1/chat/completions")
        assert client.protocol(origin) is None  # not known before it is asked
        answers = await asyncio.gather(*(
            ask(client, origin) for _ in range(3)))
        assert answers == [b"2"] * 3 and app.seen == ["2"] * 3
        assert told == ["h2"] and client.protocol(origin) == "h2"
        assert client.http2.connections(origin) == 1  # the three shared it
        await client.aclose()


@pytest.mark.parametrize("offered", [("http/1.1",), ()], ids=["http1.1", "no-alpn"])
async def test_a_model_whose_handshake_does_not_pick_http2_gets_http1_from_the_first_request(
        certificate: Certificate, offered: tuple[str, ...]) -> None:
    ca = certificate.ca
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(served)
    if offered:
        served.set_alpn_protocols(list(offered))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            while True:  # keep-alive: one connection for every request over HTTP/1.1
                await read_request(reader)
                writer.write(answer(b"1.1"))
                await writer.drain()

    async with server(handler, tls=served) as (url, connections):
        with negotiated(ca) as (client, told):
            origin = Origin(url.replace("http:", "https:") + "/v1/chat/completions")
            assert await ask(client, origin) == b"1.1"
            assert told == ["http/1.1"] and client.protocol(origin) == "http/1.1"
            assert await ask(client, origin) == b"1.1"
            # The handshake that asked, then one HTTP/1.1 connection for both requests:
            # the second was not offered to HTTP/2 again.
            assert isinstance(client.http2, CountingH2) and client.http2.asked == 1
            assert len(connections) == 2 and told == ["http/1.1"]
            await client.aclose()


async def test_requests_waiting_on_the_first_handshake_all_go_over_http1(
        certificate: Certificate) -> None:
    ca = certificate.ca
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(served)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            await read_request(reader)
            writer.write(answer(b"1.1"))
            await writer.drain()

    async with server(handler, tls=served) as (url, _):
        with negotiated(ca) as (client, told):
            origin = Origin(url.replace("http:", "https:"))
            answers = await asyncio.gather(*(
                ask(client, origin) for _ in range(5)))
            assert answers == [b"1.1"] * 5 and told == ["http/1.1"]
            await client.aclose()


async def test_a_cleartext_model_is_not_asked_for_http2(
        certificate: Certificate) -> None:
    app = Versions()
    with serve(app) as url, negotiated(certificate.ca) as (client, told):
        origin = Origin(url + "/v1/chat/completions")
        assert client.protocol(origin) == "http/1.1"
        assert await ask(client, origin) == b"1.1"
        assert isinstance(client.http2, CountingH2) and client.http2.asked == 0
        assert told == [] and app.seen == ["1.1"]
        await client.aclose()


class Scripted:
    """A stand-in for either client: each post answers with the next of ``script`` (a
    response, or an error to raise), and ``picked`` says what it is set to."""

    def __init__(self, *script: UpstreamResponse | Exception) -> None:
        self.script = list(script)
        self.picked_now: str | None = None

    def picked(self, origin: Origin) -> str | None:
        return self.picked_now

    async def post(self, origin: Origin, body: bytes,
                   headers: Mapping[str, str]) -> UpstreamResponse:
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    async def aclose(self) -> None:
        pass


async def test_a_server_that_stops_agreeing_to_http2_is_switched_to_http1() -> None:
    first, second = UpstreamResponse(200, ()), UpstreamResponse(200, ())
    http2 = Scripted(first, httpx.ConnectError("did not agree to HTTP/2 (ALPN)"),
                     httpx.ConnectError("connection refused"))
    http1 = Scripted(second)
    told: list[str] = []
    client = NegotiatedStreams(http1, http2,  # type: ignore[arg-type]
                               on_protocol=lambda origin, protocol: told.append(protocol))
    origin = Origin("https://model.test/v1/chat/completions")
    http2.picked_now = "h2"
    assert await client.post(origin, b"{}", HEADERS) is first and told == ["h2"]
    # The next connection's handshake picks HTTP/1.1: this request and the next go there.
    http2.picked_now = "http/1.1"
    assert await client.post(origin, b"{}", HEADERS) is second
    assert told == ["h2", "http/1.1"] and client.protocol(origin) == "http/1.1"
    # A connect that fails with no handshake, or after one that agreed, is the error.
    other = Origin("https://other.test/v1/chat/completions")
    http2.picked_now = None
    with pytest.raises(httpx.ConnectError, match="refused"):
        await client.post(other, b"{}", HEADERS)
    assert client.protocol(other) is None


def declining(now: list[float], *script: UpstreamResponse | Exception,
              http1: int = 3) -> tuple[NegotiatedStreams, Scripted, Scripted, list[str]]:
    """A client whose HTTP/2 side answers ``script`` (picking HTTP/1.1 until told
    otherwise), its HTTP/1.1 side ``http1`` responses, on the clock ``now[0]``."""
    http2 = Scripted(*script)
    http2.picked_now = "http/1.1"
    http1_side = Scripted(*(UpstreamResponse(200, ()) for _ in range(http1)))
    told: list[str] = []
    client = NegotiatedStreams(http1_side, http2,  # type: ignore[arg-type]
                               on_protocol=lambda origin, protocol: told.append(protocol),
                               recheck_s=600, clock=lambda: now[0])
    return client, http2, http1_side, told


MODEL = Origin("https://model.test/v1/chat/completions")


async def test_a_server_that_starts_agreeing_to_http2_is_switched_to_it_within_recheck_s(
        ) -> None:
    # Regression: an origin that declined HTTP/2 once kept HTTP/1.1 (a connection and a
    # TLS session a stream) until the worker restarted.
    now = [0.0]
    over_h2 = UpstreamResponse(200, ())
    client, http2, http1, told = declining(
        now, httpx.ConnectError("did not agree to HTTP/2 (ALPN)"), over_h2)
    await client.post(MODEL, b"{}", HEADERS)
    assert told == ["http/1.1"] and len(http2.script) == 1
    now[0] = 599.0
    await client.post(MODEL, b"{}", HEADERS)
    assert len(http2.script) == 1 and len(http1.script) == 1  # not offered yet
    now[0] = 600.0
    http2.picked_now = "h2"
    assert await client.post(MODEL, b"{}", HEADERS) is over_h2
    assert told == ["http/1.1", "h2"] and client.protocol(MODEL) == "h2"


async def test_an_offer_declined_again_keeps_http1_for_another_recheck_s() -> None:
    now = [0.0]
    declined = httpx.ConnectError("did not agree to HTTP/2 (ALPN)")
    client, http2, http1, told = declining(now, declined, declined, http1=4)
    await client.post(MODEL, b"{}", HEADERS)
    now[0] = 600.0
    await client.post(MODEL, b"{}", HEADERS)  # offered, declined: over HTTP/1.1
    assert http2.script == [] and len(http1.script) == 2
    now[0] = 1199.0
    await client.post(MODEL, b"{}", HEADERS)  # within recheck_s of that offer
    assert len(http1.script) == 1 and told == ["http/1.1"]
    assert client.protocol(MODEL) == "http/1.1"


async def test_an_offer_that_cannot_connect_sends_its_request_over_http1() -> None:
    now = [0.0]
    client, http2, http1, told = declining(
        now, httpx.ConnectError("did not agree to HTTP/2 (ALPN)"),
        httpx.ConnectError("connection refused"))
    await client.post(MODEL, b"{}", HEADERS)
    now[0] = 600.0
    http2.picked_now = None  # no handshake ended
    assert await client.post(MODEL, b"{}", HEADERS) is not None
    assert http2.script == [] and len(http1.script) == 1
    assert told == ["http/1.1"] and client.protocol(MODEL) == "http/1.1"


async def offered_again(now: list[float], failure: Exception
                        ) -> tuple[NegotiatedStreams, Scripted, Scripted, list[str]]:
    """A client whose origin declined HTTP/2 at its first request, at ``recheck_s`` on,
    its next handshake to agree and the stream offered it then to fail with ``failure``."""
    client, http2, http1, told = declining(
        now, httpx.ConnectError("did not agree to HTTP/2 (ALPN)"), failure)
    await client.post(MODEL, b"{}", HEADERS)
    now[0] = 600.0
    http2.picked_now = "h2"
    return client, http2, http1, told


@pytest.mark.parametrize("failure", [httpx.RemoteProtocolError("stream reset"),
                                     httpx.ReadError("connection closed"),
                                     httpx.ConnectTimeout("handshake timed out")])
async def test_an_offer_whose_stream_fails_sends_its_request_over_http1(
        failure: Exception, caplog: pytest.LogCaptureFixture) -> None:
    # Regression: a server that agreed to HTTP/2 when offered it again and then failed
    # the stream (not the connect) failed that request, where HTTP/1.1 served it.
    now = [0.0]
    client, http2, http1, told = await offered_again(now, failure)
    assert await client.post(MODEL, b"{}", HEADERS) is not None
    assert http2.script == [] and len(http1.script) == 1
    assert told == ["http/1.1"] and client.protocol(MODEL) == "http/1.1"
    assert f"failed the stream ({type(failure).__name__})" in caplog.text
    now[0] = 1199.0  # not offered again within recheck_s of that offer
    await client.post(MODEL, b"{}", HEADERS)
    assert http1.script == []


async def test_an_offer_the_model_is_slow_to_answer_is_not_sent_twice() -> None:
    client, _, http1, _ = await offered_again([0.0], httpx.ReadTimeout("no answer"))
    with pytest.raises(httpx.ReadTimeout):
        await client.post(MODEL, b"{}", HEADERS)
    assert len(http1.script) == 2 and client.protocol(MODEL) == "http/1.1"


async def test_requests_while_http2_is_offered_again_go_over_http1() -> None:
    now = [0.0]
    gate = asyncio.Event()
    over_h2 = UpstreamResponse(200, ())

    class Slow(Scripted):
        async def post(self, origin: Origin, body: bytes,
                       headers: Mapping[str, str]) -> UpstreamResponse:
            if not self.script or self.script[0] is over_h2:
                await gate.wait()
            return await super().post(origin, body, headers)

    http2 = Slow(httpx.ConnectError("did not agree to HTTP/2 (ALPN)"), over_h2)
    http2.picked_now = "http/1.1"
    http1 = Scripted(*(UpstreamResponse(200, ()) for _ in range(3)))
    client = NegotiatedStreams(http1, http2, recheck_s=600,  # type: ignore[arg-type]
                               clock=lambda: now[0])
    await client.post(MODEL, b"{}", HEADERS)
    now[0] = 600.0
    http2.picked_now = "h2"
    offer = asyncio.ensure_future(client.post(MODEL, b"{}", HEADERS))
    await asyncio.sleep(0)  # the offer waits on its handshake
    for _ in range(2):
        await client.post(MODEL, b"{}", HEADERS)
    assert http1.script == [] and not offer.done()
    gate.set()
    assert await offer is over_h2 and client.protocol(MODEL) == "h2"


def test_an_origin_on_http1_gets_the_http1_clients_own_coroutine() -> None:
    """Regression: a coroutine of the negotiating client's around every HTTP/1.1 request
    cost a worker 3.5 KB a stream (docs/performance.md, "Open files")."""
    client = NegotiatedStreams(StreamClient(), H2StreamClient(alpn=OFFERED))
    request = client.post(Origin("http://127.0.0.1:9/v1"), b"{}", HEADERS)
    try:
        assert request.cr_code is StreamClient.post.__code__  # type: ignore[attr-defined]
    finally:
        request.close()
