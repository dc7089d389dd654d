"""What both model-stream clients share (``server.web.upstream_body``): the request's
target, and reading a response's body, decoded or whole."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest

from server.web.upstream_body import Origin, UpstreamResponse

pytestmark = pytest.mark.anyio


class Canned(UpstreamResponse):
    """A response whose body is ``parts``, as they would have arrived."""

    def __init__(self, parts: list[bytes], headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(200, headers)
        self.parts = parts

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_headers_are_lowercased_and_repeats_joined() -> None:
    response = Canned([], [(b"Content-Type", b"text/event-stream"), (b"X-Two", b"a"),
                           (b"x-two", b"b")])
    assert dict(response.headers) == {"content-type": "text/event-stream", "x-two": "a, b"}


@pytest.mark.parametrize("encoding, packed", [
    ("gzip", gzip.compress(b"data: tokens\n\n", mtime=0)),
    ("deflate", zlib.compress(b"data: tokens\n\n")),
    ("deflate", zlib.compress(b"data: tokens\n\n")[2:-4]),  # raw deflate, as some send it
], ids=["gzip", "zlib-deflate", "raw-deflate"])
async def test_a_compressed_body_is_decoded_by_aiter_bytes(encoding: str, packed: bytes) -> None:
    # Cut in two: the decoder carries its state from one read to the next.
    response = Canned([packed[:5], packed[5:]], [(b"content-encoding", encoding.encode())])
    assert b"".join([p async for p in response.aiter_bytes()]) == b"data: tokens\n\n"


@pytest.mark.parametrize("encoding", [b"br", b"gzip"])
async def test_an_unknown_or_broken_encoding_is_a_decoding_error(encoding: bytes) -> None:
    response = Canned([b"not packed"], [(b"content-encoding", encoding)])
    with pytest.raises(httpx.DecodingError):
        [p async for p in response.aiter_bytes()]


async def test_an_error_body_is_read_whole_up_to_64_kib() -> None:
    assert await Canned([b"slow ", b"down"], []).aread() == b"slow down"
    flood = Canned([b"x" * 40_000] * 4, [])
    assert await flood.aread() == b"x" * 65_536


@pytest.mark.parametrize("url", ["ftp://example.test/x", "http:///nohost", "not a url"])
def test_an_origin_must_be_an_http_url(url: str) -> None:
    with pytest.raises(ValueError, match="not an http or https URL"):
        Origin(url)


def test_an_origin_keeps_its_path_query_and_authority() -> None:
    origin = Origin("https://user@[::1]:8443/v1/chat/completions?api-version=2")
    assert (origin.host, origin.port, origin.tls) == ("::1", 8443, True)
    assert (origin.authority, origin.target) == ("[::1]:8443",
                                                 "/v1/chat/completions?api-version=2")
    assert origin.head == (b"POST /v1/chat/completions?api-version=2 HTTP/1.1\r\n"
                           b"Host: [::1]:8443\r\n")
    assert Origin("http://model.test").head.startswith(b"POST / HTTP/1.1\r\nHost: model.test")
