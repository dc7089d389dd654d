"""The dev-mode mock model server, over real HTTP, read by the official `openai` client.

Each server runs uvicorn in a background thread on a loopback socket bound and
listening *before* the thread starts, so requests simply queue in the backlog
until uvicorn accepts them: no readiness polling or sleeps.
"""

from __future__ import annotations

import gc
import json
import socket
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
import openai
import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st

from server.devmode.mocks.llm import (
    FAULTS,
    NO_ANSWER,
    FaultSwitch,
    MockLLMConfig,
    StreamTracker,
    create_mock_llm_app,
    grounded_answer,
    tokenize,
)
from server.devmode.mocks.llm_control import format_retry_after
from server.devmode.mocks.llm_faults import FLOOD_CHUNK_CHARS, CompletionPlan, sse

API_KEY = "sk-mock-test-key-123456"
MODEL = "mock-assist-1"

PROMPT = """<articles>
<article index="1" id="billing-read-your-bill" title="How to read your monthly bill">
Your monthly bill shows charges for each line. The account summary lists the total amount
due and the due date. Taxes and fees appear at the bottom of the bill.
You can download a PDF copy from the app.
</article>
<article index="2" id="billing-autopay" title="Autopay">
Autopay charges your card on the due date. Turning on autopay gives a discount of five
dollars. You can pause autopay in settings.
</article>
</articles>

<transcript>
customer: "I got my bill and I'm confused"
agent: "Happy to help."
</transcript>

Question: Where do I see the total amount due and the due date on my bill?"""

# Scores: "total amount due ... due date" 4, "Autopay ... due date" 2, then the
# first one-word match ("bill") wins the tie for third; printed in article order.
EXPECTED = (
    "Your monthly bill shows charges for each line. [1] "
    "The account summary lists the total amount due and the due date. [1] "
    "Autopay charges your card on the due date. [2]"
)
MESSAGES: list[Any] = [
    {"role": "system", "content": "Answer only from the articles."},
    {"role": "user", "content": PROMPT},
]
BODY: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "stream": True}


class Served:
    """A running mock server: its base URL, its stream tracker and its fault switch."""

    def __init__(self, url: str, streams: StreamTracker, switch: FaultSwitch) -> None:
        self.url = url
        self.streams = streams
        self.switch = switch

    def client(self, **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("api_key", API_KEY)
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=f"{self.url}/v1", timeout=10, **kwargs)


@contextmanager
def serve(config: MockLLMConfig, http: str = "auto") -> Iterator[Served]:
    """Run the mock on an ephemeral loopback port for the duration of the block."""
    app = create_mock_llm_app(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", lifespan="off", http=http, timeout_graceful_shutdown=2
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", app.state.streams, app.state.fault_switch)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not shut down"


FAST = MockLLMConfig(api_key=API_KEY, tokens_per_second=2000.0, drip_interval_s=0.05)


@pytest.fixture(scope="module")
def mock() -> Iterator[Served]:
    with serve(FAST) as served:
        yield served


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sse_lines(served: Served, *, fault: str | None = None, **body: Any) -> list[str]:
    """POST a streamed completion and return every line of the body."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    if fault:
        headers["X-Mock-Fault"] = fault
    with httpx.Client(timeout=5) as http:
        response = http.post(
            f"{served.url}/v1/chat/completions", json={**BODY, **body}, headers=headers
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return response.text.split("\n")


def contents(lines: list[str]) -> list[str]:
    """The `delta.content` of every well-formed chunk line."""
    out = []
    for line in lines:
        if not line.startswith("data: {"):
            continue
        try:
            chunk = json.loads(line[len("data: ") :])
        except ValueError:
            continue
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            out.append(chunk["choices"][0]["delta"]["content"])
    return out


@contextmanager
def open_stream(
    served: Served, fault: str, *, read_timeout: float = 0.5, body: dict[str, Any] | None = None
) -> Iterator[Iterator[str]]:
    """Stream a completion with a fault; yields an iterator over the body's lines."""
    timeout = httpx.Timeout(5.0, read=read_timeout)
    headers = {"Authorization": f"Bearer {API_KEY}", "X-Mock-Fault": fault}
    with (
        httpx.Client(timeout=timeout) as http,
        http.stream(
            "POST", f"{served.url}/v1/chat/completions", json=body or BODY, headers=headers
        ) as response,
    ):
        assert response.status_code == 200
        yield response.iter_lines()


def next_data(lines: Iterator[str]) -> str:
    """The next `data:` line (skipping the blank separators)."""
    for line in lines:
        if line:
            return line
    raise AssertionError("stream ended")


def assert_no_streams_left(served: Served) -> None:
    assert served.streams.wait_idle(timeout=5), f"{served.streams.active} streams still active"


# ---------------------------------------------------------------- grounding


def test_grounded_answer_picks_best_sentences_in_article_order() -> None:
    assert grounded_answer(PROMPT) == EXPECTED
    assert "".join(tokenize(EXPECTED)) == EXPECTED
    assert tokenize("Hi there, you. [1]") == ("Hi", " there,", " you.", " [1]")


def test_no_articles_or_no_overlap_says_so() -> None:
    assert grounded_answer("Question: where is my bill?") == NO_ANSWER
    no_overlap = PROMPT.rsplit("Question:", 1)[0] + "Question: zebra giraffe?"
    assert grounded_answer(no_overlap) == NO_ANSWER


def test_config_rejects_unknown_fault() -> None:
    assert "drop_mid" in FAULTS
    assert {"http_400", "http_403", "http_429", "http_429_quota", "http_500",
            "http_503"} <= set(FAULTS)
    with pytest.raises(ValueError, match="unknown mock LLM fault"):
        MockLLMConfig(fault="explode")


@pytest.mark.parametrize(("context", "output"), [(8192, 0), (100, 101)])
def test_config_rejects_limits_that_cannot_serve(context: int, output: int) -> None:
    with pytest.raises(ValueError, match="max_output_tokens"):
        MockLLMConfig(context_tokens=context, max_output_tokens=output)


@pytest.mark.parametrize("value", [-0.5, float("nan"), float("inf")])
def test_config_rejects_bad_retry_after(value: float) -> None:
    with pytest.raises(ValueError, match="retry_after_s"):
        MockLLMConfig(retry_after_s=value)


@pytest.mark.parametrize(
    ("seconds", "header"),
    [(1.0, "1"), (0.0, "0"), (30.0, "30"), (0.2, "0.2"), (2.5, "2.5"), (1e-05, "0.00001")],
)
def test_retry_after_is_an_integer_when_whole_else_the_decimal(seconds: float, header: str) -> None:
    assert format_retry_after(seconds) == header


# ---------------------------------------------------------------- protocol, via the openai client


def test_openai_client_streams_grounded_answer(mock: Served) -> None:
    with mock.client() as client:
        chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == EXPECTED
    assert len(chunks) == len(tokenize(EXPECTED)) + 2  # role chunk, tokens, finish chunk
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0].model == MODEL and (chunks[0].system_fingerprint or "").startswith("fp_")


@pytest.mark.anyio
async def test_async_openai_client_streams_grounded_answer(mock: Served) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{mock.url}/v1", api_key=API_KEY, max_retries=0, timeout=10
    ) as client:
        stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        text, finish = "", None
        async for chunk in stream:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    assert (text, finish) == (EXPECTED, "stop")


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_token_limit_finishes_with_length(mock: Served, param: str) -> None:
    limit: Any = {param: 5}  # max_tokens or max_completion_tokens
    with mock.client() as client:
        chunks = list(
            client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, **limit)
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "".join(tokenize(EXPECTED)[:5])
    assert chunks[-1].choices[0].finish_reason == "length"


def test_include_usage_adds_usage_chunk(mock: Served) -> None:
    with mock.client() as client:
        chunks = list(
            client.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == len(tokenize(EXPECTED))
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_non_streaming_completion(mock: Served) -> None:
    with mock.client() as client:
        completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == EXPECTED
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(tokenize(EXPECTED))


def test_models_list(mock: Served) -> None:
    with mock.client() as client:
        assert [m.id for m in client.models.list()] == [MODEL]
        assert client.models.retrieve(MODEL).id == MODEL


def test_sse_wire_format(mock: Served) -> None:
    lines = sse_lines(mock, stream_options={"include_usage": True})
    assert lines[-3:] == ["data: [DONE]", "", ""]
    events = [line for line in lines if line]
    # Every event is exactly one `data: ` line followed by a blank line.
    assert all(line.startswith("data: ") for line in events)
    assert lines[1::2] == [""] * len(lines[1::2])
    chunks = [json.loads(line[len("data: ") :]) for line in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert chunks[-1]["choices"] == [] and set(chunks[-1]["usage"]) >= {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
    }
    assert "".join(contents(lines)) == EXPECTED


def test_no_articles_answer_streams(mock: Served) -> None:
    lines = sse_lines(mock, messages=[{"role": "user", "content": "Question: hello?"}])
    assert "".join(contents(lines)) == NO_ANSWER


# ---------------------------------------------------------------- errors


def test_wrong_or_missing_key_is_401(mock: Served) -> None:
    with (
        mock.client(api_key="sk-wrong-key-000000") as client,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.code == "invalid_api_key"
    assert caught.value.type == "invalid_request_error"
    response = httpx.post(f"{mock.url}/v1/chat/completions", json=BODY)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"{not json", None),
        (json.dumps({"model": MODEL}).encode(), "messages"),
        (json.dumps({"model": MODEL, "messages": []}).encode(), "messages"),
        (
            json.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": 0}).encode(),
            "max_tokens",
        ),
    ],
)
def test_bad_request_is_400_in_openai_shape(
    mock: Served, content: bytes, param: str | None
) -> None:
    response = httpx.post(
        f"{mock.url}/v1/chat/completions",
        content=content,
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


def post_completion(served: Served, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{served.url}/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)


@pytest.mark.parametrize("body", [{"messages": MESSAGES}, {"model": "", "messages": MESSAGES}])
def test_a_missing_or_empty_model_is_400_as_openai_answers_it(
        mock: Served, body: dict[str, Any]) -> None:
    response = post_completion(mock, body)
    assert response.status_code == 400
    assert response.json() == {"error": {"message": "you must provide a model parameter",
                                         "type": "invalid_request_error", "param": None,
                                         "code": None}}
    assert_no_streams_left(mock)


@pytest.mark.parametrize("model", ["gpt-4o-mini", "m", "MOCK-ASSIST-1", "mock-assist-1 "])
def test_a_model_it_does_not_serve_is_404_model_not_found(mock: Served, model: str) -> None:
    with mock.client() as client, pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    assert caught.value.body == {
        "message": f"The model `{model}` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "param": None, "code": "model_not_found"}
    # The same check answers GET /v1/models/{model}.
    with mock.client() as client, pytest.raises(openai.NotFoundError):
        client.models.retrieve(model)


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_a_token_limit_over_the_models_output_limit_is_400(param: str) -> None:
    with serve(MockLLMConfig(api_key=API_KEY, max_output_tokens=100)) as served:
        fits = post_completion(served, {**BODY, param: 100})
        over = post_completion(served, {**BODY, param: 101})
    assert fits.status_code == 200, fits.text
    assert over.status_code == 400
    assert over.json()["error"] == {
        "message": f"{param} is too large: 101. This model supports at most 100 completion "
                   "tokens, whereas you provided 101.",
        "type": "invalid_request_error", "param": param, "code": "invalid_value"}


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_a_prompt_and_token_limit_over_the_context_window_is_400(param: str) -> None:
    with serve(MockLLMConfig(api_key=API_KEY, tokens_per_second=0)) as served:
        usage = post_completion(served, {**BODY, "stream": False}).json()["usage"]
    prompt = usage["prompt_tokens"]  # the mock's own count, as usage reports it
    config = MockLLMConfig(api_key=API_KEY, tokens_per_second=0, context_tokens=prompt + 10,
                           max_output_tokens=10)
    with serve(config) as served:
        fits = post_completion(served, {**BODY, param: 10})
        unlimited = post_completion(served, BODY)  # the prompt alone fits
        over = post_completion(served, {**BODY, param: 10, "messages": [
            *MESSAGES, {"role": "user", "content": "one more"}]})
    assert (fits.status_code, unlimited.status_code) == (200, 200)
    assert over.status_code == 400
    error = over.json()["error"]
    assert (error["param"], error["code"]) == ("messages", "context_length_exceeded")
    assert error["message"] == (
        f"This model's maximum context length is {prompt + 10} tokens. However, you requested "
        f"{prompt + 16} tokens ({prompt + 6} in the messages, 10 in the completion). Please "
        "reduce the length of the messages or completion.")


def test_a_prompt_alone_over_the_context_window_is_400() -> None:
    config = MockLLMConfig(api_key=API_KEY, context_tokens=50, max_output_tokens=10)
    with serve(config) as served, served.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        assert served.streams.total == 0
    assert (caught.value.param, caught.value.code) == ("messages", "context_length_exceeded")
    assert "maximum context length is 50 tokens. However, your messages resulted in" in (
        caught.value.message)


#: A value for each field of the public chat-completions API the mock takes.
EVERY_FIELD: dict[str, Any] = {
    **BODY, "stream_options": {"include_usage": True}, "max_tokens": 50,
    "max_completion_tokens": 50, "temperature": 0.2, "top_p": 1, "n": 1, "stop": ["\n\n"],
    "presence_penalty": 0, "frequency_penalty": 0, "logit_bias": {"50256": -100},
    "user": "agent-7", "seed": 7, "response_format": {"type": "text"},
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "tool_choice": "none", "parallel_tool_calls": False, "logprobs": False,
    "top_logprobs": None, "metadata": {"k": "v"}, "store": False, "service_tier": "auto",
    "functions": None, "function_call": None, "modalities": ["text"], "audio": None,
    "prediction": None, "web_search_options": None, "prompt_cache_key": "k",
    "safety_identifier": "s",
}


def test_every_field_of_the_public_api_is_taken(mock: Served) -> None:
    assert post_completion(mock, EVERY_FIELD).status_code == 200


@pytest.mark.parametrize(("extra", "named"), [
    ({"reasoning_effort": "low"}, "argument supplied: reasoning_effort"),
    ({"temprature": 0.2}, "argument supplied: temprature"),
    ({"thinking": {}, "enable_thinking": True}, "arguments supplied: thinking, enable_thinking"),
])
def test_an_unknown_request_argument_is_400(
        mock: Served, extra: dict[str, Any], named: str) -> None:
    before = mock.switch.to_json()["remaining"]
    response = post_completion(mock, {**BODY, **extra})
    assert response.status_code == 400
    assert response.json()["error"] == {"message": f"Unrecognized request {named}",
                                        "type": "invalid_request_error", "param": None,
                                        "code": None}
    assert mock.switch.to_json()["remaining"] == before


def test_unknown_fault_header_is_400(mock: Served) -> None:
    response = httpx.post(
        f"{mock.url}/v1/chat/completions",
        json=BODY,
        headers={"Authorization": f"Bearer {API_KEY}", "X-Mock-Fault": "explode"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_mock_fault"


def test_unknown_route_is_404_in_openai_shape(mock: Served) -> None:
    response = httpx.get(f"{mock.url}/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"


# ---------------------------------------------------------------- faults


def test_http_429_fault(mock: Served) -> None:
    with (
        mock.client(default_headers={"X-Mock-Fault": "http_429"}) as client,
        pytest.raises(openai.RateLimitError) as caught,
    ):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"


def test_http_429_quota_fault_is_insufficient_quota_without_retry_after(mock: Served) -> None:
    with (
        mock.client(default_headers={"X-Mock-Fault": "http_429_quota"}) as client,
        pytest.raises(openai.RateLimitError) as caught,
    ):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert (caught.value.type, caught.value.code) == ("insufficient_quota", "insufficient_quota")
    body: Any = caught.value.body
    assert body["message"].startswith("You exceeded your current quota, please check your "
                                      "plan and billing details.")
    headers = caught.value.response.headers
    assert "retry-after" not in headers and "x-ratelimit-remaining-requests" not in headers


def test_http_500_fault(mock: Served) -> None:
    with (
        mock.client(default_headers={"X-Mock-Fault": "http_500"}) as client,
        pytest.raises(openai.InternalServerError) as caught,
    ):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert caught.value.type == "server_error"


def test_http_503_fault(mock: Served) -> None:
    with (
        mock.client(default_headers={"X-Mock-Fault": "http_503"}) as client,
        pytest.raises(openai.InternalServerError) as caught,
    ):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.body == {
        "message": "The engine is currently overloaded, please try again later",
        "type": "server_error",
        "param": None,
        "code": None,
    }


def test_http_400_fault(mock: Served) -> None:
    with (
        mock.client(default_headers={"X-Mock-Fault": "http_400"}) as client,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert (caught.value.type, caught.value.param) == ("invalid_request_error", "messages")
    assert caught.value.code == "context_length_exceeded"
    assert "retry-after" not in caught.value.response.headers


def test_http_403_fault(mock: Served) -> None:
    with (
        mock.client(default_headers={"X-Mock-Fault": "http_403"}) as client,
        pytest.raises(openai.PermissionDeniedError) as caught,
    ):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 403
    assert caught.value.body == {
        "message": "You are not allowed to sample from this model",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_retry_after_follows_the_config() -> None:
    with serve(MockLLMConfig(api_key=API_KEY, retry_after_s=0.2)) as served:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        url = f"{served.url}/v1/chat/completions"
        rate_limited = httpx.post(url, json=BODY, headers={**headers, "X-Mock-Fault": "http_429"})
        overloaded = httpx.post(url, json=BODY, headers={**headers, "X-Mock-Fault": "http_503"})
    assert (rate_limited.status_code, overloaded.status_code) == (429, 503)
    assert rate_limited.headers["retry-after"] == overloaded.headers["retry-after"] == "0.2"
    assert rate_limited.headers["x-ratelimit-reset-requests"] == "0.2s"
    assert "try again in 0.2s" in rate_limited.json()["error"]["message"]


def test_stall_first_sends_role_chunk_then_nothing(mock: Served) -> None:
    with open_stream(mock, "stall_first") as lines:
        assert '"role":"assistant"' in next_data(lines)
        with pytest.raises(httpx.ReadTimeout):
            next_data(lines)
    assert_no_streams_left(mock)


def test_stall_mid_sends_three_tokens_then_nothing(mock: Served) -> None:
    with open_stream(mock, "stall_mid") as lines:
        received = [next_data(lines) for _ in range(4)]
        with pytest.raises(httpx.ReadTimeout):
            next_data(lines)
    assert "".join(contents(received)) == "".join(tokenize(EXPECTED)[:3])
    assert_no_streams_left(mock)


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_drop_mid_breaks_the_connection(http: str) -> None:
    with serve(FAST, http=http) as served:
        received: list[str] = []
        with pytest.raises(httpx.RemoteProtocolError), open_stream(served, "drop_mid") as lines:
            received.extend(lines)
        assert "".join(contents(received)) == "".join(tokenize(EXPECTED)[:3])
        assert "data: [DONE]" not in received
        # The official client reports it as a connection error, not a clean end.
        with (
            served.client(default_headers={"X-Mock-Fault": "drop_mid"}) as client,
            pytest.raises(openai.APIConnectionError),
        ):
            list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
        assert_no_streams_left(served)


def test_malformed_interleaves_broken_lines(mock: Served) -> None:
    lines = sse_lines(mock, fault="malformed")
    assert "data: {not json" in lines
    assert "this line has no data field" in lines
    truncated = [line for line in lines if line.startswith('data: {"id"') and line[-1] != "}"]
    assert truncated
    assert "".join(contents(lines)) == EXPECTED  # every good chunk is still there
    assert [line for line in lines if line][-1] == "data: [DONE]"


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_endless_stops_when_client_leaves(http: str) -> None:
    with serve(FAST, http=http) as served:
        wanted = 3 * len(tokenize(EXPECTED))  # well past where a normal answer ends
        with open_stream(served, "endless", read_timeout=5) as lines:
            received = [next_data(lines) for _ in range(wanted + 1)]
            assert served.streams.active == 1
        text = "".join(contents(received))
        assert text.startswith(f"{EXPECTED} {EXPECTED} ")
        assert "[DONE]" not in text
        assert_no_streams_left(served)


def test_drip_sends_tokens_one_by_one(mock: Served) -> None:
    with open_stream(mock, "drip", read_timeout=5) as lines:
        received = [next_data(lines) for _ in range(3)]
    assert contents(received) == list(tokenize(EXPECTED)[:2])
    assert_no_streams_left(mock)


@pytest.mark.parametrize("fault", ["stall_first", "endless"])
def test_non_streaming_stall_never_answers(mock: Served, fault: str) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{mock.url}/v1/chat/completions",
            json={**BODY, "stream": False},
            headers={"Authorization": f"Bearer {API_KEY}", "X-Mock-Fault": fault},
            timeout=httpx.Timeout(5.0, read=0.3),
        )
    assert_no_streams_left(mock)


def test_run_wide_fault_and_header_override() -> None:
    with serve(MockLLMConfig(fault="http_500", tokens_per_second=0)) as served:
        with served.client() as client, pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=MODEL, messages=MESSAGES)
        with served.client(default_headers={"X-Mock-Fault": "none"}) as client:
            completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert completion.choices[0].message.content == EXPECTED


# ---------------------------------------------------------------- runtime fault switch


def control(served: Served, method: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    """Call `/mock/fault` (no API key: it is the mock's own control API)."""
    if body is not None:
        kwargs["json"] = body
    return httpx.request(method, f"{served.url}/mock/fault", timeout=5, **kwargs)


def switch_state(served: Served) -> dict[str, Any]:
    response = control(served, "GET")
    assert response.status_code == 200
    state: dict[str, Any] = response.json()
    return state


def complete(served: Served, **headers: str) -> httpx.Response:
    """One streamed completion, read to the end (status-code faults answer at once)."""
    return httpx.post(
        f"{served.url}/v1/chat/completions",
        json=BODY,
        headers={"Authorization": f"Bearer {API_KEY}", **headers},
        timeout=5,
    )


def test_switch_applies_to_the_next_n_completions_then_none() -> None:
    with serve(FAST) as served:
        assert switch_state(served) == {
            "fault": None,
            "remaining": None,
            "requests": 0,
            "next": None,
        }
        response = control(served, "PUT", {"fault": "http_429", "remaining": 2})
        assert response.status_code == 200
        assert response.json() == {
            "fault": "http_429",
            "remaining": 2,
            "requests": 0,
            "next": "http_429",
        }
        with served.client() as client:
            with pytest.raises(openai.RateLimitError) as caught:
                client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
            assert caught.value.response.headers["retry-after"] == "1"
            assert switch_state(served)["remaining"] == 1
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
            assert switch_state(served) == {
                "fault": "http_429",
                "remaining": 0,
                "requests": 2,
                "next": None,
            }
            chunks = list(
                client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
            )
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == EXPECTED
        assert switch_state(served)["requests"] == 3
        # `requests` counts the 429 answers too; the stream tracker only the 200 one.
        assert served.switch.requests == 3 and served.streams.total == 1

        cleared = control(served, "DELETE")
        assert cleared.status_code == 200
        assert cleared.json() == {"fault": None, "remaining": None, "requests": 3, "next": None}


def test_switch_lets_a_retrying_client_succeed() -> None:
    """What the panel's retry tests rely on: N failures, then an answer."""
    with serve(MockLLMConfig(api_key=API_KEY, tokens_per_second=0, retry_after_s=0.01)) as served:
        served.switch.set("http_503", 2)
        with served.client(max_retries=2) as client:
            completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert completion.choices[0].message.content == EXPECTED
        assert switch_state(served)["requests"] == 3


def test_switch_without_remaining_lasts_until_changed() -> None:
    with serve(FAST) as served:
        assert control(served, "PUT", {"fault": "http_500"}).json()["remaining"] is None
        assert [complete(served).status_code for _ in range(3)] == [500, 500, 500]
        assert switch_state(served)["remaining"] is None
        control(served, "PUT", {"fault": None, "remaining": None})
        assert complete(served).status_code == 200


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"fault": "explode"}, "fault", "unknown_mock_fault"),
        ({"fault": "HTTP_429"}, "fault", "unknown_mock_fault"),
        ({"fault": 429}, "fault", "invalid_type"),
        ({"remaining": 1}, "fault", "missing_required_parameter"),
        ({"fault": "http_429", "remaining": -1}, "remaining", "invalid_value"),
        ({"fault": "http_429", "remaining": "2"}, "remaining", "invalid_value"),
        ({"fault": "http_429", "remaining": True}, "remaining", "invalid_value"),
        ({"fault": "http_429", "count": 2}, "count", "unknown_parameter"),
        (["http_429"], None, "invalid_body"),
    ],
)
def test_switch_rejects_bad_bodies(mock: Served, body: Any, param: str | None, code: str) -> None:
    before = switch_state(mock)
    response = control(mock, "PUT", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert switch_state(mock) == before  # nothing changed


def test_switch_rejects_a_body_that_is_not_json(mock: Served) -> None:
    response = control(mock, "PUT", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_body"
    assert control(mock, "POST").status_code == 405


def test_header_wins_over_the_switch_and_does_not_use_it_up() -> None:
    with serve(FAST) as served:
        control(served, "PUT", {"fault": "http_500", "remaining": 1})
        assert complete(served, **{"X-Mock-Fault": "none"}).status_code == 200
        assert complete(served, **{"X-Mock-Fault": "http_429"}).status_code == 429
        assert switch_state(served)["remaining"] == 1
        assert complete(served).status_code == 500
        assert complete(served).status_code == 200
        assert switch_state(served)["requests"] == 4


def test_rejected_requests_are_counted_but_do_not_use_up_the_switch() -> None:
    with serve(FAST) as served:
        served.switch.set("http_429", 1)
        unauthorized = httpx.post(f"{served.url}/v1/chat/completions", json=BODY, timeout=5)
        assert unauthorized.status_code == 401
        bad = httpx.post(
            f"{served.url}/v1/chat/completions",
            json={"model": MODEL},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=5,
        )
        assert bad.status_code == 400
        assert switch_state(served) == {
            "fault": "http_429",
            "remaining": 1,
            "requests": 2,
            "next": "http_429",
        }
        assert complete(served).status_code == 429


def test_switch_overrides_the_config_fault_until_cleared() -> None:
    with serve(MockLLMConfig(api_key=API_KEY, fault="http_500", tokens_per_second=0)) as served:
        assert switch_state(served)["next"] == "http_500"
        assert complete(served).status_code == 500
        control(served, "PUT", {"fault": "http_429", "remaining": 1})
        assert complete(served).status_code == 429
        # Exhausted: no fault at all; the config's http_500 does not come back...
        assert switch_state(served)["next"] is None
        assert [complete(served).status_code for _ in range(2)] == [200, 200]
        # ...until the switch is cleared.
        assert control(served, "DELETE").json()["next"] == "http_500"
        assert complete(served).status_code == 500


def test_switch_python_api() -> None:
    switch = FaultSwitch("drip")
    with pytest.raises(ValueError, match="unknown mock LLM fault"):
        switch.set("explode")
    with pytest.raises(ValueError, match="remaining"):
        switch.set("http_429", -1)
    assert switch.pick(None) == "drip"
    switch.set("stall_mid", 1)
    assert switch.pick("http_403") == "http_403"  # the header wins and leaves the count
    assert [switch.pick(None), switch.pick(None)] == ["stall_mid", None]
    switch.set(None, 0)
    assert switch.pick(None) is None
    switch.clear()
    assert switch.pick(None) == "drip"


@pytest.mark.anyio
async def test_switch_counts_each_concurrent_completion_once() -> None:
    with serve(FAST) as served:
        served.switch.set("http_429", 3)
        statuses: list[int] = []

        async def one(http: httpx.AsyncClient) -> None:
            response = await http.post(
                f"{served.url}/v1/chat/completions",
                json=BODY,
                headers={"Authorization": f"Bearer {API_KEY}"},
            )
            statuses.append(response.status_code)

        async with httpx.AsyncClient(timeout=5) as http, anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(one, http)
        assert sorted(statuses) == [200] * 7 + [429] * 3
        assert served.switch.requests == 10 and served.streams.total == 7
        assert_no_streams_left(served)


def test_flood_sends_large_chunks_without_end_until_the_client_leaves() -> None:
    with serve(FAST) as served:
        with open_stream(served, "flood", read_timeout=5) as lines:
            received = [next_data(lines) for _ in range(5)]
            assert served.streams.active == 1
        chunks = contents(received)
        assert [len(c) for c in chunks] == [FLOOD_CHUNK_CHARS] * len(chunks)
        assert len(chunks) >= 4
        assert chunks[0].startswith(EXPECTED)
        assert_no_streams_left(served)


@settings(max_examples=300, deadline=None)
@given(token=st.text(), include_usage=st.booleans(), model=st.text(min_size=1, max_size=20))
def test_a_content_event_is_the_bytes_of_its_chunk_encoded_whole(
        token: str, include_usage: bool, model: str) -> None:
    # The mock frames a token's chunk once and fills the token in; what goes on the
    # wire must be what encoding the whole chunk gives, whatever the token holds.
    plan = CompletionPlan(
        completion_id="chatcmpl-x", created=1, model=model, system_fingerprint="fp_1",
        tokens=("a",), finish_reason="stop", prompt_tokens=1, include_usage=include_usage,
        fault=None, token_interval_s=0.0, first_token_delay_s=0.0, fault_after_tokens=3)
    assert plan.content_event(token) == sse(plan.chunk({"content": token}))


def test_a_stream_its_client_leaves_makes_no_cycle_through_the_mock() -> None:
    # Regression: with the answer in a task of anyio's task group, a cancelled answer's
    # exception stayed in a cycle with the frame that noted it, and with it the
    # connection, until a full collection: one a benchmark probe.
    with serve(FAST) as served:
        with open_stream(served, "endless") as lines:  # warm: first-use caches
            next_data(lines)
        assert_no_streams_left(served)
        gc.collect()
        gc.disable()
        try:
            for fault in ("stall_first", "stall_mid", "endless", "drip"):
                with open_stream(served, fault) as lines:
                    next_data(lines)
            assert_no_streams_left(served)
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            mocks = [obj for obj in gc.garbage if isinstance(obj, types.FrameType)
                     and obj.f_code.co_filename.endswith("llm_faults.py")]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    assert not mocks, [frame.f_code.co_name for frame in mocks]
