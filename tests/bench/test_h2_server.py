"""The benchmarks' lean HTTP/2 server (``bench.h2_server``) on loopback ports, under
asyncio's own event loop and uvloop's, with httpx's HTTP/2 client, the panel's own
(``server.web.upstream_h2``) and raw h2 frames; and the mock model served by it in
a process of its own (``bench.mock_model --http2``), over TLS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest

from bench import h2_server
from bench.procs import Certificate, running, start_mock
from server.devmode.mocks.llm import (
    DEFAULT_MODEL,
    MockLLMConfig,
    create_mock_llm_app,
    grounded_answer,
)
from server.web.upstream_body import Origin
from server.web.upstream_h2 import H2StreamClient
from tests.asgi import request_body
from tests.web.rawhttp import anyio_backend  # noqa: F401  (both event loops)

pytestmark = pytest.mark.anyio

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
CHAT = {"model": DEFAULT_MODEL, "stream": True,
        "messages": [{"role": "user", "content": "How do I reset my password?"}]}


class App:
    """An ASGI app with a route a test; notes each request and each disconnect."""

    def __init__(self) -> None:
        self.scopes: list[MutableMapping[str, Any]] = []
        self.bodies: list[bytes] = []
        self.disconnected = asyncio.Event()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive,
                       send: Send) -> None:
        self.scopes.append(scope)
        body = await request_body(receive)
        self.bodies.append(body)
        path = scope["path"]
        if path == "/fail-first":
            raise RuntimeError("before the answer")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")]})
        if path == "/echo":
            await send({"type": "http.response.body", "body": body})
        elif path == "/big":  # 1 MiB: sixteen times the initial window
            await send({"type": "http.response.body", "body": b"x" * (1 << 20)})
        elif path == "/parts":  # 1 MiB again, in 64 parts of a frame's size
            for index in range(64):
                await send({"type": "http.response.body", "body": bytes([65 + index % 26]) * 16384,
                            "more_body": True})
            await send({"type": "http.response.body"})
        elif path == "/endless":
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
            assert (await receive())["type"] == "http.disconnect"
            self.disconnected.set()
        elif path == "/fail-after":
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
            raise RuntimeError("mid-answer")
        elif path == "/after-end":  # a receive() already waiting when the answer ends
            waiting = asyncio.ensure_future(receive())
            await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b"done"})
            assert (await waiting)["type"] == "http.disconnect"
            self.disconnected.set()


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """The app served by ``h2_server`` on a free loopback port: its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.ensure_future(h2_server.serve(app, "127.0.0.1", port, stop,
                                                 ready=ready.set))
    await ready.wait()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await task


def h2c() -> httpx.AsyncClient:
    return httpx.AsyncClient(http1=False, http2=True, timeout=30)


async def test_a_request_and_its_body_reach_the_app_and_the_answer_comes_back() -> None:
    app = App()
    async with serving(app) as url, h2c() as client:
        body = bytes(range(256)) * 800  # 200 KiB: more than the initial window
        response = await client.post(f"{url}/echo?a=1%202", content=body,
                                     headers={"x-one": "1"})
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200 and response.content == body
    assert "connection" not in response.headers  # hop-by-hop: not on HTTP/2
    scope = app.scopes[0]
    assert (scope["method"], scope["path"], scope["query_string"]) == ("POST", "/echo",
                                                                       b"a=1%202")
    assert scope["http_version"] == "2" and scope["scheme"] == "http"
    headers = dict(scope["headers"])
    assert headers[b"x-one"] == b"1" and headers[b"host"] == url.split("//")[1].encode()
    assert not any(name.startswith(b":") for name, _ in scope["headers"])


@pytest.mark.parametrize("path", ["/big", "/parts"])
async def test_an_answer_larger_than_the_window_waits_for_it_and_arrives_whole(path: str
                                                                             ) -> None:
    async with serving(App()) as url, h2c() as client:
        responses = await asyncio.gather(*(client.get(f"{url}{path}") for _ in range(3)))
    parts = b"".join(bytes([65 + index % 26]) * 16384 for index in range(64))
    assert [r.content for r in responses] == [b"x" * (1 << 20) if path == "/big" else parts] * 3


@pytest.mark.parametrize("small", ["stream", "connection"])
async def test_the_server_sends_no_more_than_the_clients_windows_allow(small: str) -> None:
    """A client that gives a window of 65,535 bytes back only once it is spent, the
    other window a mebibyte and more: h2 raises on a frame past either."""
    async with serving(App()) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        if small == "stream":
            conn.increment_flow_control_window(1 << 21)
        else:
            conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 21})
        conn.send_headers(1, [(":method", "GET"), (":path", "/parts"), (":scheme", "http"),
                              (":authority", "x")], end_stream=True)
        writer.write(conn.data_to_send())
        received, unacked, ended = 0, 0, False
        while not ended:
            for event in conn.receive_data(await reader.read(65536)):
                if isinstance(event, h2.events.DataReceived):
                    received += len(event.data)
                    unacked += event.flow_controlled_length
                ended = ended or isinstance(event, h2.events.StreamEnded)
            if unacked >= 65535:
                conn.acknowledge_received_data(unacked, 1)
                unacked = 0
            writer.write(conn.data_to_send())
        writer.close()
    assert received == 1 << 20


async def test_a_client_that_resets_its_stream_is_told_to_the_app_as_a_disconnect() -> None:
    app = App()
    async with serving(app) as url:
        client = H2StreamClient()
        try:
            response = await client.post(Origin(f"{url}/endless"), b"",
                                         {"content-type": "text/plain"})
            parts = response.aiter_raw()
            assert await anext(parts) == b"first"
            await response.aclose()
            await app.disconnected.wait()
        finally:
            await client.aclose()


async def test_after_its_answer_the_app_is_told_the_exchange_is_over() -> None:
    app = App()
    async with serving(app) as url, h2c() as client:
        assert (await client.get(f"{url}/after-end")).content == b"done"
        await app.disconnected.wait()


async def test_an_app_that_fails_answers_500_or_resets_and_the_connection_serves_on() -> None:
    async with serving(App()) as url, h2c() as client:
        assert (await client.get(f"{url}/fail-first")).status_code == 500
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"{url}/fail-after")
        assert (await client.post(f"{url}/echo", content=b"again")).content == b"again"


async def test_a_client_that_breaks_the_protocol_gets_a_goaway_and_others_are_served() -> None:
    async with serving(App()) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not the HTTP/2 preface
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        events: list[h2.events.Event] = []
        while data := await reader.read(65536):
            events += conn.receive_data(data)
        writer.close()
        assert any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
        async with h2c() as client:
            assert (await client.post(f"{url}/echo", content=b"ok")).content == b"ok"


async def test_the_server_allows_a_hundred_streams_a_connection() -> None:
    async with serving(App()) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        changed: list[h2.events.RemoteSettingsChanged] = []
        while not changed:
            events = conn.receive_data(await reader.read(65536))
            changed = [e for e in events if isinstance(e, h2.events.RemoteSettingsChanged)]
        writer.close()
        setting = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
        assert changed[0].changed_settings[setting].new_value == 100


async def test_the_mock_model_streams_a_completion_over_it() -> None:
    app = create_mock_llm_app(MockLLMConfig(tokens_per_second=0))
    async with serving(app) as url, h2c() as client:
        text = (await client.post(f"{url}/v1/chat/completions", json=CHAT)).text
    events = [line.removeprefix("data: ") for line in text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    words = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                    for e in events[:-1] if json.loads(e)["choices"])
    assert words == grounded_answer(CHAT["messages"][0]["content"])  # type: ignore[index]
    assert app.state.streams.active == 0 and app.state.streams.total == 1


@pytest.mark.parametrize("anyio_backend", [("asyncio", {})], ids=["asyncio"])
async def test_the_mock_model_process_serves_http2_over_tls_by_alpn(tmp_path: Path) -> None:
    from bench.procs import Cpus

    tls = Certificate.make(tmp_path)
    model = start_mock(tmp_path, Cpus.split().harness, tokens_per_second=0, http2=True,
                       tls=tls)
    with running(model):
        async with httpx.AsyncClient(http2=True, verify=tls.trusted()) as client:
            response = await client.post(f"{model.url}/v1/chat/completions", json=CHAT)
            assert response.http_version == "HTTP/2" and response.status_code == 200
            assert response.text.endswith("data: [DONE]\n\n")
        # Only h2 is offered: a client speaking HTTP/1.1 alone is not answered in it.
        async with httpx.AsyncClient(verify=tls.trusted()) as client:
            with pytest.raises(httpx.HTTPError):
                await client.get(f"{model.url}/mock/fault")
    assert model.popen.returncode == 0  # SIGTERM: a clean stop
