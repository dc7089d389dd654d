from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from server.app import KEEPALIVE_EXPIRY_S, build_model_streams, create_app
from server.assist.streams import StreamRegistry
from server.web import open_files
from server.web.upstream import StreamClient
from server.web.upstream_alpn import NegotiatedStreams
from server.web.upstream_body import Origin
from server.web.upstream_h2 import H2StreamClient
from tests.asgi import asgi_client
from tests.factories import make_settings


def test_what_start_up_made_is_kept_out_of_full_collections_until_shutdown(
        sample_kb_path: Path) -> None:
    """A full collection walked every object start-up made (modules, the store's
    vocabulary, the embedder's tables) and paused all streams for 70-95 ms at 400-600
    open ones; they are frozen once the app has started, and unfrozen at shutdown."""
    with asgi_client(create_app(make_settings(kb_path=sample_kb_path))) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0


def test_idle_outbound_connections_are_let_go_before_a_servers_5_s_keep_alive(
        sample_kb_path: Path) -> None:
    """Regression: the shared client kept idle connections 5 s, uvicorn's keep-alive
    (the dev mocks') too; a sign-in's token exchange written at that moment on the
    connection the mock Genesys was closing was reset (ReadError), and the panel
    showed "offline" in a browser test."""
    assert uvicorn.Config(app="server.app:create_app").timeout_keep_alive > KEEPALIVE_EXPIRY_S
    with asgi_client(create_app(make_settings(kb_path=sample_kb_path))) as client:
        http = client.app_state["http"]
        assert isinstance(http, httpx.AsyncClient)
        pool = http._transport._pool  # type: ignore[attr-defined]
        assert pool._keepalive_expiry == KEEPALIVE_EXPIRY_S


@pytest.mark.parametrize("http2, url, client", [
    ("auto", "http://127.0.0.1:9/v1", StreamClient),
    ("auto", "HTTPS://model.test/v1", NegotiatedStreams),
    (False, "https://model.test/v1", StreamClient),
    (True, "http://127.0.0.1:9/v1", H2StreamClient),
])
def test_the_model_streams_client_is_what_the_setting_and_the_url_pick(
        http2: bool | str, url: str, client: type) -> None:
    """Regression: under auto a model at http:// went through the negotiating client,
    whose frame around each request cost a worker 3.5 KB a stream; it gets the
    HTTP/1.1 client itself."""
    settings = make_settings(generator="openai", openai_base_url=url, openai_api_key="k",
                             model_http2=http2)
    assert type(build_model_streams(settings, StreamRegistry(10))) is client


class WatchedCap(StreamRegistry):
    """A registry that says when its cap changes."""

    def __init__(self, max_streams: int) -> None:
        self.changed = asyncio.Event()
        self._cap = max_streams
        super().__init__(max_streams)

    @property
    def max_streams(self) -> int:
        return self._cap

    @max_streams.setter
    def max_streams(self, value: int) -> None:
        self._cap = value
        self.changed.set()


@pytest.mark.anyio
async def test_after_http1_the_cap_rises_for_http2_once_the_streams_over_http1_have_ended(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An https:// model that starts agreeing to HTTP/2 (offered again every ten minutes)
    may leave streams over HTTP/1.1 open, two files each: the cap rises for HTTP/2 only
    after the hard limit, by when every one of them has ended."""
    monkeypatch.setattr(open_files, "open_file_limit", lambda: open_files.RESERVED + 20)
    settings = make_settings(generator="openai", openai_base_url="https://model.test/v1",
                             openai_api_key="k", stream_limit_s=0.05)
    streams = WatchedCap(1000)
    client = build_model_streams(settings, streams)
    assert isinstance(client, NegotiatedStreams) and client.on_protocol is not None
    origin = Origin("https://model.test/v1/chat/completions")
    client.on_protocol(origin, "http/1.1")
    assert streams.max_streams == 10  # two files a stream
    streams.changed.clear()
    client.on_protocol(origin, "h2")
    assert streams.max_streams == 10  # not yet: a timer of stream_limit_s
    await streams.changed.wait()
    assert streams.max_streams == 20
    # The first agreement, nothing over HTTP/1.1 before it, raises it at once.
    fresh = WatchedCap(1000)
    other = build_model_streams(settings, fresh)
    assert isinstance(other, NegotiatedStreams) and other.on_protocol is not None
    other.on_protocol(origin, "h2")
    assert fresh.max_streams == 20


def test_a_bug_is_answered_500_internal_error_in_the_json_shape_with_the_headers(
        sample_kb_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A route that raised got Starlette's text/plain "Internal Server Error", without
    the error shape every client reads, nor nosniff and no-store. The log names the
    exception's type and shows its traceback, never its message (which may quote what
    the client sent)."""
    async def broken(request: Request) -> Response:
        raise KeyError((await request.json())["query"])  # a message quoting the request

    app = create_app(make_settings(kb_path=sample_kb_path))
    app.add_route("/api/broken", broken, methods=["POST"])
    with asgi_client(app) as client:
        response = client.post("/api/broken",
                               json={"query": "customer said: card 4111 1111 1111 1111"})
        assert client.get("/healthz").status_code == 200  # and the app goes on
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error",
                               "message": "The panel failed unexpectedly; try again."}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    [line] = [r.getMessage() for r in caplog.records if r.name == "assist_panel.errors"]
    assert line.startswith("unexpected KeyError, answered 500:\nTraceback")
    assert "in broken\n" in line and line.endswith("builtins.KeyError (message not logged)")
    assert "customer" not in line and "4111" not in line


def test_a_bug_after_a_response_started_is_logged_and_the_response_left_unfinished(
        sample_kb_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def parts(words: list[str]) -> AsyncIterator[bytes]:
        yield b"first part"
        try:
            raise ValueError(words[0])
        except ValueError as exc:
            raise RuntimeError(words[1]) from exc

    async def broken(request: Request) -> Response:
        words = [request.query_params["a"], request.query_params["b"]]
        return StreamingResponse(parts(words), media_type="text/plain")

    app = create_app(make_settings(kb_path=sample_kb_path))
    app.add_route("/api/broken", broken)
    with asgi_client(app) as client:
        response = client.get("/api/broken", params={"a": "the customer's words",
                                                      "b": "more of them"})
    assert (response.status_code, response.content) == (200, b"first part")
    [line] = [r.getMessage() for r in caplog.records if r.name == "assist_panel.errors"]
    assert line.startswith("unexpected RuntimeError after the response started:\n")
    assert "builtins.ValueError (message not logged)\n\nwhich was followed by" in line
    assert "customer" not in line and "more of them" not in line
