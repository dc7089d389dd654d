"""The benchmark peer (bench/peers/flask_relay.py), over real loopback HTTP.

The peer runs on werkzeug's threaded server (bound before its thread starts, so
requests queue in the backlog: no readiness polling) against the mock model
server on uvicorn, wrapped in a small ASGI middleware that records what each
chat completion received (headers and body).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("flask", reason="the benchmark peer needs the `bench` extra")
pytest.importorskip("requests", reason="the benchmark peer needs the `bench` extra")

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from werkzeug.serving import make_server

from bench.peers.flask_relay import create_app
from server.devmode.mocks.llm import (
    NO_ANSWER,
    MockLLMConfig,
    create_mock_llm_app,
    grounded_answer,
    tokenize,
)
from server.kb.store import KnowledgeBase
from tests.servers import running

REPO = Path(__file__).resolve().parents[2]
QUESTION = "When is the AutoPay payment taken from my account?"


@dataclass(frozen=True)
class Seen:
    """One chat completion as the mock model received it."""

    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def user_message(self) -> str:
        return str(self.body["messages"][-1]["content"])


@dataclass
class Recorder:
    """ASGI middleware recording each ``POST /v1/chat/completions`` before the mock answers."""

    app: ASGIApp
    seen: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/chat/completions":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = bytearray()

        async def recording_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
                if not message.get("more_body"):
                    self.seen.append(Seen(headers, json.loads(body)))
            return message

        await self.app(scope, recording_receive, send)


@dataclass
class Model:
    url: str  # the OpenAI base URL, ending in /v1
    app: Any  # the mock's Starlette app (``app.state.fault_switch``)
    recorder: Recorder


@dataclass(frozen=True)
class Event:
    id: str
    name: str
    data: dict[str, Any]


@pytest.fixture(scope="module")
def served_model() -> Iterator[Model]:
    app = create_mock_llm_app(MockLLMConfig(tokens_per_second=0))
    recorder = Recorder(app)
    with running(recorder) as server:
        yield Model(server.url + "/v1", app, recorder)


@pytest.fixture
def model(served_model: Model) -> Model:
    """The module's mock model, with nothing recorded and no fault switched on."""
    served_model.recorder.seen.clear()
    served_model.app.state.fault_switch.clear()
    return served_model


@contextlib.contextmanager
def peer(kb_path: Path, model_url: str, **options: Any) -> Iterator[str]:
    """The peer on werkzeug's threaded server on a free loopback port; yields its URL."""
    app = create_app(kb_path, model_url, **options)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def peer_url(sample_kb_path: Path, served_model: Model) -> Iterator[str]:
    with peer(sample_kb_path, served_model.url) as url:
        yield url


def parse_sse(text: str) -> list[Event]:
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append(Event(fields["id"], fields["event"], json.loads(fields["data"])))
    return events


def ask(url: str, **body: Any) -> list[Event]:
    body = {"conversationId": "conv-1", "trigger": "manual", **body}
    response = httpx.post(url + "/api/assist/stream", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_sse(response.text)


def check_ids(events: list[Event]) -> None:
    """Every event carries the suggestion id, and its SSE id is ``<id>.<sequence>``."""
    sid = events[0].data["id"]
    assert sid.startswith("sg_")
    assert [e.data["id"] for e in events] == [sid] * len(events)
    assert [e.id for e in events] == [f"{sid}.{n}" for n in range(1, len(events) + 1)]


def test_manual_question_streams_a_grounded_answer_token_by_token(
        peer_url: str, model: Model, sample_kb: KnowledgeBase) -> None:
    events = ask(peer_url, query=QUESTION)
    check_ids(events)
    first, *deltas, last = events
    assert first.name == "suggestion"
    assert (first.data["trigger"], first.data["query"]) == ("manual", QUESTION)
    sources = first.data["sources"]
    assert 1 <= len(sources) <= 3
    assert sources[0]["id"] == "billing-autopay"
    for source in sources:
        assert set(source) == {"id", "title", "url", "snippet", "score"}
        article = sample_kb.get(source["id"])
        assert article is not None
        assert (source["title"], source["url"]) == (article.title, article.url)
    assert [s["score"] for s in sources] == sorted((s["score"] for s in sources), reverse=True)

    [seen] = model.recorder.seen
    assert seen.body["stream"] is True
    assert seen.body["model"] == "mock-assist-1"
    prompt = seen.user_message
    assert f'<article index="1" title="{sources[0]["title"]}">' in prompt
    assert prompt.rstrip().endswith(f"Question: {QUESTION}")

    answer = grounded_answer(prompt)
    assert answer != NO_ANSWER
    assert "[1]" in answer
    # No aggregation: one delta per token the model streamed.
    assert all(d.name == "delta" for d in deltas)
    assert [d.data["text"] for d in deltas] == list(tokenize(answer))
    assert "".join(d.data["text"] for d in deltas) == answer

    assert last.name == "done"
    assert last.data == {"id": first.data["id"], "complete": True, "outcome": "completed",
                         "stop_reason": "stop", "metrics": {}}


def test_request_id_reaches_the_model(peer_url: str, model: Model) -> None:
    ask(peer_url, query=QUESTION, requestId="req-bench-42")
    ask(peer_url, query=QUESTION)
    with_id, without_id = model.recorder.seen
    assert with_id.headers["x-request-id"] == "req-bench-42"
    assert with_id.headers["accept"] == "text/event-stream"
    assert "x-request-id" not in without_id.headers
    assert "authorization" not in without_id.headers


def test_api_key_is_sent_as_bearer(sample_kb_path: Path) -> None:
    app = create_mock_llm_app(MockLLMConfig(tokens_per_second=0, api_key="sk-peer-test"))
    with running(app) as server:
        with peer(sample_kb_path, server.url + "/v1", api_key="sk-peer-test") as url:
            assert ask(url, query=QUESTION)[-1].data["outcome"] == "completed"
        # Without the key the mock answers 401, which the peer turns into a fallback.
        with peer(sample_kb_path, server.url + "/v1") as url:
            done = ask(url, query=QUESTION)[-1]
        assert (done.data["outcome"], done.data["stop_reason"]) == ("fallback", "upstream_401")


def test_model_error_gives_fallback_then_done(peer_url: str, model: Model) -> None:
    model.app.state.fault_switch.set("http_500", 1)
    events = ask(peer_url, query=QUESTION)
    check_ids(events)
    assert [e.name for e in events] == ["suggestion", "fallback", "done"]
    suggestion, fallback, done = events
    top = suggestion.data["sources"][0]
    assert fallback.data["reason"] == "upstream_error"
    assert fallback.data["article"] == {"id": top["id"], "title": top["title"],
                                        "url": top["url"], "excerpt": top["snippet"]}
    assert done.data["outcome"] == "fallback"
    assert done.data["stop_reason"] == "upstream_500"
    assert done.data["complete"] is True
    # The switch was for one completion only: the next question is answered.
    assert ask(peer_url, query=QUESTION)[-1].data["outcome"] == "completed"


def test_unreachable_model_gives_fallback(sample_kb_path: Path) -> None:
    # A bound socket that never listens: connecting to it is refused at once.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
        with peer(sample_kb_path, url) as peer_at:
            events = ask(peer_at, query=QUESTION)
    assert [e.name for e in events] == ["suggestion", "fallback", "done"]
    assert events[-1].data["outcome"] == "fallback"
    assert events[-1].data["stop_reason"] == "upstream_network"


@pytest.mark.parametrize("content, body", [
    ("{not json", None),
    (None, ["a", "list"]),
    (None, {"trigger": "manual", "query": "bill"}),
    (None, {"conversationId": "c", "trigger": "shout", "query": "bill"}),
    (None, {"conversationId": "c", "trigger": "manual"}),
    (None, {"conversationId": "c", "trigger": "manual", "query": "   "}),
    (None, {"conversationId": "c", "trigger": "utterance", "utterances": "text"}),
    (None, {"conversationId": "c", "trigger": "utterance",
            "utterances": [{"speaker": "agent", "text": "Hello"}]}),
    (None, {"conversationId": "c", "trigger": "manual", "query": "bill", "requestId": 7}),
])
def test_bad_input_is_a_400(peer_url: str, model: Model, content: str | None,
                            body: Any) -> None:
    if content is not None:
        response = httpx.post(peer_url + "/api/assist/stream", content=content,
                              headers={"Content-Type": "application/json"})
    else:
        response = httpx.post(peer_url + "/api/assist/stream", json=body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "bad_request"
    assert response.json()["message"]
    assert model.recorder.seen == []


def test_utterance_trigger_asks_the_last_customer_utterance(
        peer_url: str, model: Model) -> None:
    utterances = [
        {"speaker": "customer", "text": "Hi, I have a question about my bill."},
        {"speaker": "agent", "text": "Sure, what would you like to know?"},
        {"speaker": "customer", "text": QUESTION},
        {"speaker": "agent", "text": "Let me check how refunds and returns work."},
    ]
    events = ask(peer_url, trigger="utterance", utterances=utterances)
    suggestion, done = events[0], events[-1]
    assert (suggestion.data["trigger"], suggestion.data["query"]) == ("utterance", QUESTION)
    assert suggestion.data["sources"][0]["id"] == "billing-autopay"
    [seen] = model.recorder.seen
    assert seen.user_message.rstrip().endswith(f"Question: {QUESTION}")
    assert done.data["outcome"] == "completed"


def test_cli_prints_its_address_once_listening(sample_kb_path: Path, model: Model) -> None:
    command = [sys.executable, "-m", "bench.peers.flask_relay", "--port", "0",
               "--kb", str(sample_kb_path), "--model-url", model.url]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            assert line.startswith("peer listening on http://127.0.0.1:")
            url = line.removeprefix("peer listening on ")
            assert int(url.rsplit(":", 1)[1]) > 0
            events = ask(url, query=QUESTION, requestId="req-cli")
            assert events[-1].data["outcome"] == "completed"
            assert model.recorder.seen[-1].headers["x-request-id"] == "req-cli"
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_client_leaving_closes_the_model_stream(sample_kb_path: Path) -> None:
    # One token a second: the answer (75 tokens) would take over a minute to stream.
    app = create_mock_llm_app(MockLLMConfig(tokens_per_second=1))
    body = {"conversationId": "c", "trigger": "manual", "query": QUESTION}
    with running(app) as server, peer(sample_kb_path, server.url + "/v1") as url:
        with httpx.Client(timeout=30) as client, client.stream(
                "POST", url + "/api/assist/stream", json=body) as response:
            for line in response.iter_lines():
                if line == "event: delta":
                    break
        assert app.state.streams.total == 1
        # werkzeug notices on its next write, and closing the generator closes the model's.
        assert app.state.streams.wait_idle(timeout=15)
