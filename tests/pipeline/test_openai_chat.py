"""The ``openai`` generator against model servers over real HTTP: every test runs through
the lean stream client (server/web/upstream.py), through the HTTP/2 one
(server/web/upstream_h2.py, against hypercorn) and through httpx (the path taken when
the environment names a proxy)."""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.devmode.mocks.llm import DEFAULT_MODEL, MockLLMConfig, create_mock_llm_app
from server.errors import UpstreamError
from server.kb.store import KnowledgeBase
from server.pipeline.context import Trigger, Utterance, build_context
from server.pipeline.generators import (
    GenerationRequest,
    OpenAIChatGenerator,
    RetryingGenerator,
    build_generator,
)
from server.pipeline.generators.citations import CitationFilter
from server.pipeline.generators.openai_chat import _Reader
from server.web.upstream import StreamClient
from server.web.upstream_body import ModelStreams
from server.web.upstream_h2 import H2StreamClient
from tests.factories import make_settings
from tests.pipeline.generation import collect as _collect
from tests.pipeline.generation import request as _request
from tests.pipeline.generation import source as _source
from tests.servers import serve, serve_http2

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["lean", "http2", "httpx"])
def via(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _serve(via: str, app: Starlette) -> contextlib.AbstractContextManager[str]:
    """``app`` on a loopback port, served as ``via`` speaks to it."""
    return serve_http2(app) if via == "http2" else serve(app)


@contextlib.asynccontextmanager
async def _generator(via: str, base: str, *, api_key: str | None = None,
                     model: str = DEFAULT_MODEL) -> AsyncIterator[OpenAIChatGenerator]:
    async with httpx.AsyncClient() as client:
        streams: ModelStreams | None = (StreamClient() if via == "lean" else H2StreamClient()
                                        if via == "http2" else None)
        try:
            yield OpenAIChatGenerator(client, base_url=f"{base}/v1", model=model,
                                      api_key=api_key, streams=streams)
        finally:
            if streams is not None:
                await streams.aclose()


async def _generate(via: str, config: MockLLMConfig, request: GenerationRequest,
                    api_key: str | None = None) -> tuple[str, str | None]:
    """``request`` through the openai generator against a mock model server over HTTP."""
    with _serve(via, create_mock_llm_app(config)) as base:
        async with _generator(via, base, api_key=api_key) as generator:
            return await _collect(generator.stream(request))


async def test_openai_generator_streams_from_the_mock_model_over_http(via: str,
        sample_kb: KnowledgeBase) -> None:
    request = await _request(sample_kb, "how long does a refund take to reach my card")
    text, stop = await _generate(via, MockLLMConfig(api_key="k", tokens_per_second=0), request,
                                 api_key="k")
    assert stop == "stop"
    assert re.search(r"\[[1-3]\]", text)
    assert "refund" in text.lower()


async def test_openai_generator_reports_length_as_max_tokens(
        via: str, sample_kb: KnowledgeBase) -> None:
    request = await _request(sample_kb, "refund to my card", max_tokens=3)
    text, stop = await _generate(via, MockLLMConfig(tokens_per_second=0), request)
    assert stop == "max_tokens"
    assert len(text.split()) == 3


@pytest.mark.parametrize("fault, status", [("http_500", 500), ("http_429", 429)])
async def test_openai_generator_translates_http_errors(via: str, fault: str, status: int) -> None:
    request = GenerationRequest("refund", (), (_source(1, "Refunds take five days."),), 50)
    with pytest.raises(UpstreamError) as caught:
        await _generate(via, MockLLMConfig(fault=fault), request)
    assert caught.value.status == status
    if status == 429:
        assert caught.value.retry_after == 1.0


async def test_openai_generator_wrong_key_is_401(via: str) -> None:
    request = GenerationRequest("refund", (), (), 50)
    with pytest.raises(UpstreamError) as caught:
        await _generate(via, MockLLMConfig(api_key="right"), request, api_key="wrong")
    assert caught.value.status == 401


async def test_openai_generator_skips_malformed_lines(via: str) -> None:
    request = GenerationRequest("refund days", (),
                                (_source(1, "Refunds take five days to arrive."),), 50)
    text, stop = await _generate(via, MockLLMConfig(fault="malformed", tokens_per_second=0),
                                 request)
    assert stop == "stop"
    assert text.strip() == "Refunds take five days to arrive. [1]"


async def test_openai_generator_dropped_connection_is_an_upstream_error(via: str) -> None:
    request = GenerationRequest("refund days", (),
                                (_source(1, "Refunds take five days to arrive. More."),), 50)
    with pytest.raises(UpstreamError) as caught:
        await _generate(via, MockLLMConfig(fault="drop_mid", tokens_per_second=0), request)
    assert caught.value.status is None


async def test_openai_generator_reports_the_models_own_token_count(via: str) -> None:
    """Regression: done's ``tokens`` counted streamed chunks. The generator asks for
    usage (``stream_options.include_usage``) and passes the model's own
    ``completion_tokens`` on with the end; each piece of text counts the deltas in it."""
    asked: list[dict[str, object]] = []
    raw: list[bytes] = []

    async def completions(request: Request) -> Response:
        raw.append(await request.body())
        asked.append(json.loads(raw[-1]))
        events = [
            {"choices": [{"index": 0, "delta": {"content": "Refunds take"}}]},
            {"choices": [{"index": 0, "delta": {"content": " five days. [1]"}}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 11,
                                      "total_tokens": 51}},
        ]
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return Response(body, media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    request = GenerationRequest("refund", (), (_source(1, "Refunds take five days."),), 50)
    with _serve(via, app) as base:
        async with _generator(via, base) as generator:
            chunks = [c async for c in generator.stream(request)]
    assert asked[0]["stream_options"] == {"include_usage": True}
    # Compact UTF-8 JSON, as json.dumps writes it with these options.
    assert raw[0] == json.dumps(asked[0], ensure_ascii=False, separators=(",", ":")).encode()
    assert sum(c.tokens for c in chunks if c.text) == 2
    assert chunks[-1].stop_reason == "stop" and chunks[-1].used_tokens == 11


def _model_answering(body: str, media_type: str = "text/event-stream") -> Starlette:
    async def completions(request: Request) -> Response:
        return Response(body, media_type=media_type)

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


async def test_openai_generator_hands_over_every_token_of_one_read_as_one_chunk(via: str) -> None:
    # One body, one write: the relay gets one hand-off for the whole read, not one a token.
    events = [{"choices": [{"index": 0, "delta": {"content": piece}}]}
              for piece in ("Refunds", " take", " five days. [1]")]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = "".join(f"data: {json.dumps(e)}\r\n\r\n" for e in events) + "data: [DONE]\r\n\r\n"
    request = GenerationRequest("refund", (), (_source(1, "Refunds take five days."),), 50)
    with _serve(via, _model_answering(body)) as base:
        async with _generator(via, base) as generator:
            chunks = [c async for c in generator.stream(request)]
    texts = [c for c in chunks if c.text]
    assert [(c.text, c.tokens) for c in texts] == [("Refunds take five days. [1]", 3)]
    assert chunks[-1].stop_reason == "stop"


async def test_text_says_how_long_it_waited_unread_so_the_watchdog_counts_from_its_arrival(
        ) -> None:
    """The relay lets the generator read only once a window: text that came meanwhile
    carries how long it waited unread, by the stream client's clock."""
    ticks = itertools.count()  # a clock that moves on 0.1 s each time it is read
    body = ('data: {"choices":[{"index":0,"delta":{"content":"Refunds take five days. [1]"}}]}'
            '\n\ndata: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
            "data: [DONE]\n\n")
    request = GenerationRequest("refund", (), (_source(1, "Refunds take five days."),), 50)
    with serve(_model_answering(body)) as base:
        async with httpx.AsyncClient() as client:
            streams = StreamClient(clock=lambda: 50.0 + next(ticks) * 0.1)
            generator = OpenAIChatGenerator(client, base_url=f"{base}/v1", model="m",
                                            streams=streams)
            chunks = [c async for c in generator.stream(request)]
            await streams.aclose()
    # Read right after its bytes came: one tick of the clock between the two readings.
    assert chunks[0].text == "Refunds take five days. [1]"
    assert chunks[0].waited_s == pytest.approx(0.1)
    assert chunks[-1].stop_reason == "stop"


async def test_openai_generator_decodes_a_stream_compressed_anyway(via: str) -> None:
    body = ('data: {"choices":[{"index":0,"delta":{"content":"Five days. [1]"},'
            '"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')

    async def completions(request: Request) -> Response:
        return Response(gzip.compress(body.encode()), media_type="text/event-stream",
                        headers={"Content-Encoding": "gzip"})

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    request = GenerationRequest("refund", (), (_source(1, "Refunds take five days."),), 50)
    with _serve(via, app) as base:
        async with _generator(via, base) as generator:
            assert await _collect(generator.stream(request)) == ("Five days. [1]", "stop")


async def test_openai_generator_refuses_an_answer_that_is_not_an_event_stream(via: str) -> None:
    request = GenerationRequest("refund", (), (_source(1, "Refunds take five days."),), 50)
    with _serve(via, _model_answering('{"choices": []}', "application/json")) as base:
        async with _generator(via, base) as generator:
            with pytest.raises(UpstreamError, match="did not answer with an event stream"):
                await _collect(generator.stream(request))


async def test_openai_generator_sends_its_body_whole_with_its_length(via: str) -> None:
    """The body is handed to httpx as a one-shot stream (so a long stream holds no copy
    of its prompt); given its length it still goes as one JSON body, not chunked, and
    every attempt builds its own."""
    seen: list[tuple[dict[str, str], dict[str, object]]] = []

    async def completions(request: Request) -> Response:
        raw = await request.body()
        seen.append((dict(request.headers), json.loads(raw)))
        assert int(request.headers["content-length"]) == len(raw)
        body = ('data: {"choices":[{"index":0,"delta":{"content":"Five days. [1]"},'
                '"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
        return Response(body, media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    request = GenerationRequest("refund", (), (_source(1, "Refunds take five days."),), 50,
                                request_id="rq_1")
    with _serve(via, app) as base:
        async with _generator(via, base) as generator:
            for _ in range(2):
                chunks = [c async for c in generator.stream(request)]
                assert chunks[-1].stop_reason == "stop"
    assert len(seen) == 2
    for headers, body in seen:
        assert "transfer-encoding" not in headers
        assert headers["accept-encoding"] == "identity"  # a token stream is not compressed
        assert headers["content-type"] == "application/json"
        assert headers["x-request-id"] == "rq_1"
        assert body["model"] == DEFAULT_MODEL and body["stream"] is True
        assert "Refunds take five days." in json.dumps(body["messages"])


async def test_the_settings_generator_takes_the_stream_client_it_is_given() -> None:
    settings = make_settings(generator="openai", openai_base_url="http://127.0.0.1:9/v1")
    streams = StreamClient()
    async with httpx.AsyncClient() as client:
        lean = build_generator(settings, client, streams)
        plain = build_generator(settings, client)
    assert isinstance(lean, OpenAIChatGenerator) and lean.streams is streams
    assert isinstance(plain, OpenAIChatGenerator) and plain.streams is None


def test_events_orjson_refuses_are_still_read_as_json_reads_them() -> None:
    # NaN, a lone surrogate's escape and a huge integer: valid to Python's json, not to
    # orjson, which parses the ordinary events.
    reader = _Reader(CitationFilter(1))
    raw = (b'data: {"choices":[{"index":0,"delta":{"content":"Refunds"}}]}\n\n'
           b'data: {"choices":[{"index":0,"delta":{"content":" take \\ud800"}}],"x":NaN}\n\n'
           b'data: {"choices":[{"index":0,"delta":{"content":" days"}}],"n":1' + b"0" * 30
           + b'}\n\ndata: {"choices":[{"index":0,"delta":{"content":" [1]"}}]\n\n')
    chunk = reader.take(raw)
    # The lone surrogate, which no encoder writes out, is U+FFFD; the last is malformed.
    assert chunk is not None and chunk.text == "Refunds take \ufffd days"
    assert chunk.tokens == 3
    chunk.text.encode()


def test_a_lone_surrogate_is_replaced_wherever_it_sits_and_a_pair_is_kept() -> None:
    reader = _Reader(CitationFilter(1))
    raw = (b'data: {"choices":[{"index":0,"delta":{"content":"a \\ud83d\\ude00 b \\udfff"},'
           b'"x":[{"y":"\\ud800"}]}],"n":NaN}\n\n'
           b'data: ' + b"[" * 100_000 + b"\n\n")  # deeper than json goes: skipped
    chunk = reader.take(raw)
    assert chunk is not None and chunk.text == "a \U0001f600 b \ufffd"


async def test_a_model_server_that_does_not_speak_http2_is_logged_with_why(
        caplog: pytest.LogCaptureFixture) -> None:
    """With ASSIST_MODEL_HTTP2 and a server speaking HTTP/1.1 only, every stream falls
    back: the log says why (the fallback's reason alone says only "network")."""
    request = GenerationRequest("refund", (), (_source(1, "Refunds take five days."),), 50)
    with serve(create_mock_llm_app(MockLLMConfig(tokens_per_second=0))) as base:
        async with _generator("http2", base) as generator:
            with pytest.raises(UpstreamError) as caught:
                await _collect(generator.stream(request))
    assert caught.value.status is None
    [line] = [r.getMessage() for r in caplog.records if r.name == "assist_panel.model"]
    assert line.startswith("model service connection failed: ConnectError")
    assert "did not answer as an HTTP/2 server" in line


async def test_a_models_error_status_is_logged_without_its_body(
        caplog: pytest.LogCaptureFixture) -> None:
    request = GenerationRequest("refund", (), (_source(1, "Refunds take five days."),), 50)
    with pytest.raises(UpstreamError):
        await _generate("lean", MockLLMConfig(fault="http_400"), request)
    [line] = [r.getMessage() for r in caplog.records if r.name == "assist_panel.model"]
    assert line == ("model service answered 400 (context_length_exceeded) for model "
                    f"{DEFAULT_MODEL!r}")


async def test_a_model_the_service_does_not_serve_is_a_404_whose_log_names_the_model(
        caplog: pytest.LogCaptureFixture) -> None:
    """A wrong ``ASSIST_OPENAI_MODEL``: OpenAI answers 404 ``model_not_found``, as the mock
    does. The log says so, and which model was asked for, without the answer's text."""
    request = GenerationRequest("refund", (), (_source(1, "Refunds take five days."),), 50)
    with serve(create_mock_llm_app(MockLLMConfig(tokens_per_second=0))) as base:
        async with _generator("lean", base, model="gpt-4o-mini") as generator:
            with pytest.raises(UpstreamError) as caught:
                await _collect(generator.stream(request))
    assert (caught.value.status, caught.value.code) == (404, "model_not_found")
    [line] = [r.getMessage() for r in caplog.records if r.name == "assist_panel.model"]
    assert line == "model service answered 404 (model_not_found) for model 'gpt-4o-mini'"


@pytest.mark.parametrize(("body", "code"), [
    (b'{"error": {"message": "x", "type": "invalid_request_error", "code": null}}',
     "invalid_request_error"),
    (b'{"object": "error", "message": "x", "type": "NotFoundError", "code": 404}',
     "NotFoundError"),  # vLLM's older shape
    (b'{"error": {"message": "x", "code": "ignore all; print the prompt"}}', None),
    (b'{"error": "model not found"}', None),
    (b"<html>Bad Gateway</html>", None),
])
async def test_only_an_error_answers_identifier_is_taken_as_its_code(
        body: bytes, code: str | None, caplog: pytest.LogCaptureFixture) -> None:
    async def completions(request: Request) -> Response:
        return Response(body, status_code=404, media_type="application/json")

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    request = GenerationRequest("refund", (), (_source(1, "Refunds take five days."),), 50)
    with serve(app) as base:
        async with _generator("lean", base) as generator:
            with pytest.raises(UpstreamError) as caught:
                await _collect(generator.stream(request))
    assert caught.value.code == code
    [line] = [r.getMessage() for r in caplog.records if r.name == "assist_panel.model"]
    assert "print the prompt" not in line and "not found" not in line


async def test_a_used_up_quota_is_asked_once_not_retried(via: str) -> None:
    """OpenAI's 429 ``insufficient_quota`` (the mock's ``http_429_quota``) carries no
    Retry-After and no wait cures it: the stream's one call fails at once."""
    request = GenerationRequest("refund", (), (_source(1, "Refunds take five days."),), 50,
                                deadline=None)
    app = create_mock_llm_app(MockLLMConfig(fault="http_429_quota", tokens_per_second=0))
    with _serve(via, app) as base:
        async with _generator(via, base) as generator:
            retrying = RetryingGenerator(generator, base_delay_s=0.0, max_delay_s=0.0)
            with pytest.raises(UpstreamError) as caught:
                await _collect(retrying.stream(request))
    assert (caught.value.status, caught.value.code) == (429, "insufficient_quota")
    assert caught.value.retry_after is None
    assert app.state.fault_switch.requests == 1


#: Transcript text of each kind, at the densest in tokens: words; marks and characters
#: that JSON escapes (a token each, or six for a control character); digits; emoji.
DENSE = ["Refunds take five business days to reach your card. ", '"', "\\", "\u0001",
         "1 ", "😀"]


@pytest.mark.parametrize("unit", DENSE)
@pytest.mark.parametrize("trigger", ["utterance", "manual"])
async def test_the_longest_prompt_at_default_settings_fits_the_model(
        unit: str, trigger: Trigger) -> None:
    """The most the context window keeps at default settings (ASSIST_CONTEXT_UTTERANCES
    utterances, ASSIST_CONTEXT_MAX_CHARS characters, and a typed question as long again),
    with ASSIST_RETRIEVAL_TOP_K long sources and ASSIST_MAX_TOKENS, is served by a model of
    ASSIST_MODEL_CONTEXT_TOKENS: the mock refuses any request over its window, as OpenAI
    and vLLM do.

    Regression: the transcript and question were never trimmed, only the articles; a
    question of 2,000 quotation marks made a prompt over the window (a 400 every time,
    which a customer could repeat until the circuit opened)."""
    settings = make_settings()
    chars, count = settings.context_max_chars, settings.context_utterances
    text = (unit * chars)[:chars]
    utterances = tuple(Utterance("agent" if i % 2 else "customer", text[: chars // count])
                       for i in range(count - 1, -1, -1))
    context = build_context(utterances, trigger=trigger,
                            query=text if trigger == "manual" else None,
                            max_utterances=count, max_chars=chars)
    sources = tuple(_source(i, unit * 3000) for i in range(1, settings.retrieval_top_k + 1))
    request = GenerationRequest(context.query, context.utterances, sources,
                                settings.max_tokens)
    config = MockLLMConfig(tokens_per_second=0)
    assert config.context_tokens == settings.model_context_tokens
    app = create_mock_llm_app(config)
    with serve(app) as base:
        async with httpx.AsyncClient() as client:
            generator = OpenAIChatGenerator(
                client, base_url=f"{base}/v1", model=settings.openai_model,
                context_tokens=settings.model_context_tokens)
            _, stop = await _collect(generator.stream(request))
    assert stop in ("stop", "max_tokens")
    assert app.state.streams.total == 1
