"""The SSE contract of POST /api/assist/stream, over a real uvicorn server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse
from starlette.types import Receive, Scope, Send

from bench.procs import Certificate
from server.app import create_app
from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from server.settings import Settings
from tests.checks import check_stream_contract
from tests.factories import bearer, make_settings
from tests.servers import serve, serve_http2

CONVERSATION = "5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"


def _settings(kb: Path, **overrides: Any) -> Settings:
    return make_settings(kb_path=kb, extractive_token_delay_ms=0, **overrides)


@pytest.fixture
def panel(sample_kb_path: Path) -> Iterator[str]:
    with serve(create_app(_settings(sample_kb_path))) as base:
        yield base


def _stream(base: str, body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    with httpx.Client(timeout=30) as client, connect_sse(
            client, "POST", f"{base}/api/assist/stream", json=body,
            headers=bearer(body.get("conversationId", CONVERSATION))) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        assert source.response.headers["cache-control"] == "no-store"
        return [(e.event, e.id, json.loads(e.data)) for e in source.iter_sse()]


def _check_contract(events: list[tuple[str, str, dict[str, Any]]]) -> None:
    check_stream_contract([name for name, _, _ in events])
    suggestion_id = events[0][2]["id"]
    ids = [event_id for _, event_id, _ in events]
    assert all(i.startswith(suggestion_id + ".") for i in ids)
    assert len(set(ids)) == len(ids)
    assert all(data["id"] == suggestion_id for _, _, data in events)


def test_utterance_stream_sends_sources_first_then_text_then_done(panel: str) -> None:
    events = _stream(panel, {
        "conversationId": CONVERSATION, "trigger": "utterance", "requestId": "rq-1",
        "utterances": [
            {"speaker": "customer", "text": "Hi, my new phone arrived with a cracked screen."},
            {"speaker": "agent", "text": "Sorry to hear that."},
            {"speaker": "customer", "text": "Can I return the damaged phone for a refund?"},
        ]})
    _check_contract(events)
    suggestion = events[0][2]
    assert suggestion["trigger"] == "utterance"
    assert suggestion["query"] == "Can I return the damaged phone for a refund?"
    assert 1 <= len(suggestion["sources"]) <= 3
    top = suggestion["sources"][0]
    assert set(top) == {"id", "title", "url", "snippet", "score"}
    assert top["url"].startswith("https://help.brightwave.example/")
    assert [s["score"] for s in suggestion["sources"]] == sorted(
        (s["score"] for s in suggestion["sources"]), reverse=True)
    text = "".join(d["text"] for n, _, d in events if n == "delta")
    assert "[1]" in text or "[2]" in text or "[3]" in text
    done = events[-1][2]
    assert done["complete"] is True and done["outcome"] == "completed"
    assert set(done["metrics"]) == {"ttft_ms", "duration_ms", "chunks", "tokens"}


def test_manual_question_answers_the_agents_query(panel: str) -> None:
    events = _stream(panel, {"conversationId": CONVERSATION, "trigger": "manual",
                             "query": "How do I reset my password?"})
    _check_contract(events)
    assert events[0][2]["query"] == "How do I reset my password?"
    assert events[0][2]["sources"][0]["id"] == "accounts-passwords-reset-password"


def test_an_unanswerable_question_gets_no_confident_answer_and_no_text(panel: str) -> None:
    events = _stream(panel, {"conversationId": CONVERSATION, "trigger": "manual",
                             "query": "zzyzx qwertyuiop"})
    _check_contract(events)
    assert [n for n, _, _ in events] == ["suggestion", "done"]
    assert events[0][2]["confident"] is False
    assert (events[1][2]["outcome"], events[1][2]["stop_reason"]) == (
        "abstained", "low_confidence")


def test_small_talk_triggers_no_answer(panel: str) -> None:
    events = _stream(panel, {"conversationId": CONVERSATION, "trigger": "utterance",
                             "utterances": [{"speaker": "customer", "text": "okay, thanks!"}]})
    _check_contract(events)
    assert [n for n, _, _ in events] == ["suggestion", "done"]
    assert events[0][2]["sources"] == [] and events[0][2]["confident"] is False
    assert (events[1][2]["outcome"], events[1][2]["stop_reason"]) == ("abstained", "small_talk")


def test_a_confident_answer_is_marked_confident(panel: str) -> None:
    events = _stream(panel, {"conversationId": CONVERSATION, "trigger": "manual",
                             "query": "how much is the restocking fee for a phone?"})
    _check_contract(events)
    assert events[0][2]["confident"] is True
    assert events[-1][2]["outcome"] == "completed"
    answer = "".join(d["text"] for n, _, d in events if n == "delta")
    assert "$35" in answer


def test_stalled_model_ends_with_fallback_carrying_the_top_article(
        sample_kb_path: Path) -> None:
    """The openai generator against the mock model's stall_mid fault, both over real HTTP."""
    with serve(create_mock_llm_app(MockLLMConfig(fault="stall_mid", tokens_per_second=0))) as llm:
        settings = _settings(sample_kb_path, generator="openai", openai_base_url=f"{llm}/v1",
                             stall_timeout_s=0.3, first_token_timeout_s=5)
        with serve(create_app(settings)) as base:
            events = _stream(base, {"conversationId": CONVERSATION, "trigger": "manual",
                                    "query": "restocking fee for a returned phone"})
    _check_contract(events)
    names = [n for n, _, _ in events]
    assert names[-2:] == ["fallback", "done"] and "delta" in names
    fallback = events[-2][2]
    top = events[0][2]["sources"][0]
    assert fallback["reason"] == "stalled"
    assert fallback["article"]["id"] == top["id"] and fallback["article"]["url"] == top["url"]
    assert events[-1][2]["outcome"] == "fallback"


@pytest.mark.parametrize("http2, tls, version", [
    (False, False, "1.1"), ("auto", False, "1.1"), (True, False, "2"), ("auto", True, "2"),
    (False, True, "1.1")], ids=["http1.1", "auto-http", "http2", "auto-https", "https1.1"])
def test_openai_generator_streams_through_the_endpoint(
        sample_kb_path: Path, http2: bool | str, tls: bool, version: str,
        certificate: Certificate, monkeypatch: pytest.MonkeyPatch) -> None:
    # ASSIST_MODEL_HTTP2: the model's streams over HTTP/2, to a server that speaks it;
    # auto, the default: over HTTP/2 when an https:// model's TLS handshake picks it.
    mock = create_mock_llm_app(MockLLMConfig(tokens_per_second=0))
    versions: list[str] = []

    async def model(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            versions.append(scope["http_version"])
        await mock(scope, receive, send)

    # As an operator trusts a private CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.authority))
    served = (serve_http2(model, certfile=str(certificate.chain),
                          keyfile=str(certificate.key)) if tls
              else serve_http2(model) if http2 is True else serve(model))
    with served as llm:
        settings = _settings(sample_kb_path, generator="openai", openai_base_url=f"{llm}/v1",
                             model_http2=http2)
        with serve(create_app(settings)) as base:
            events = _stream(base, {"conversationId": CONVERSATION, "trigger": "manual",
                                    "query": "how long does a refund take"})
    assert set(versions) == {version}
    _check_contract(events)
    assert events[-1][2]["outcome"] == "completed"
    assert "refund" in "".join(d["text"] for n, _, d in events if n == "delta").lower()


@pytest.mark.parametrize("body, code", [
    (b"{not json", "invalid_json"),
    (json.dumps({"conversationId": "nope", "trigger": "manual", "query": "x"}).encode(),
     "invalid_request"),
    (json.dumps({"conversationId": CONVERSATION, "trigger": "manual"}).encode(),
     "invalid_request"),
    (json.dumps({"conversationId": CONVERSATION, "trigger": "utterance",
                 "utterances": [{"speaker": "agent", "text": "hi"}]}).encode(),
     "invalid_request"),
    (json.dumps({"conversationId": CONVERSATION, "trigger": "shout", "query": "x"}).encode(),
     "invalid_request"),
    (json.dumps({"conversationId": CONVERSATION, "trigger": "manual", "query": "x",
                 "extra": 1}).encode(), "invalid_request"),
    (json.dumps({"conversationId": CONVERSATION, "trigger": "manual", "query": "x",
                 "requestId": "has spaces"}).encode(), "invalid_request"),
    (json.dumps([1, 2]).encode(), "invalid_request"),
])
def test_bad_input_is_a_plain_400_with_a_json_body(panel: str, body: bytes, code: str) -> None:
    response = httpx.post(f"{panel}/api/assist/stream", content=body,
                          headers={"Content-Type": "application/json", **bearer(CONVERSATION)})
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert response.json()["message"]


def test_oversized_body_is_413(panel: str) -> None:
    body = json.dumps({"conversationId": CONVERSATION, "trigger": "manual",
                       "query": "x" * 300_000})
    response = httpx.post(f"{panel}/api/assist/stream", content=body,
                          headers={"Content-Type": "application/json", **bearer(CONVERSATION)})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_two_hundred_utterances_and_a_query_are_a_stream_and_201_a_413(panel: str) -> None:
    """Regression: the query counted as an utterance, so 200 utterances with a typed
    question (or none) were refused as over the 200 allowed."""
    utterances = [{"speaker": "customer", "text": "my bill"}] * 200
    body = {"conversationId": CONVERSATION, "trigger": "manual", "query": "refund",
            "utterances": utterances}
    _check_contract(_stream(panel, body))
    response = httpx.post(f"{panel}/api/assist/stream", json={**body, "utterances": [
        *utterances, utterances[0]]}, headers=bearer(CONVERSATION))
    assert response.status_code == 413
    assert response.json()["error"] == "transcript_too_large"
    # The query's characters count towards the transcript's (ASSIST_MAX_TRANSCRIPT_CHARS).
    response = httpx.post(f"{panel}/api/assist/stream", json={
        "conversationId": CONVERSATION, "trigger": "manual", "query": "x" * 19_999,
        "utterances": [{"speaker": "customer", "text": "ab"}]}, headers=bearer(CONVERSATION))
    assert response.status_code == 413
    assert response.json()["error"] == "transcript_too_large"


def test_wrong_content_type_and_method(panel: str) -> None:
    response = httpx.post(f"{panel}/api/assist/stream", content=b"x",
                          headers={"Content-Type": "text/plain", **bearer(CONVERSATION)})
    assert response.status_code == 400
    assert httpx.get(f"{panel}/api/assist/stream").json()["error"] == "method_not_allowed"
    assert httpx.get(f"{panel}/nowhere").json()["error"] == "not_found"


def test_health_and_readiness(panel: str, tmp_path: Path) -> None:
    assert httpx.get(f"{panel}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{panel}/readyz")
    assert ready.status_code == 200 and ready.json()["articles"] >= 40
    with serve(create_app(_settings(tmp_path / "empty.db"))) as empty:
        assert httpx.get(f"{empty}/readyz").status_code == 503


def test_pings_keep_a_quiet_stream_alive(sample_kb_path: Path) -> None:
    """A model that says nothing for a while: the client still sees bytes (SSE comments)."""
    with serve(create_mock_llm_app(MockLLMConfig(fault="stall_first"))) as llm:
        settings = _settings(sample_kb_path, generator="openai", openai_base_url=f"{llm}/v1",
                             sse_ping_s=0.1, first_token_timeout_s=0.6)
        with serve(create_app(settings)) as base, httpx.stream(
                "POST", f"{base}/api/assist/stream", timeout=30, headers=bearer(CONVERSATION),
                json={"conversationId": CONVERSATION, "trigger": "manual",
                      "query": "refund"}) as response:
            raw = "".join(response.iter_text())
    assert ": ping" in raw
    assert "event: fallback" in raw and raw.count("event: done") == 1
