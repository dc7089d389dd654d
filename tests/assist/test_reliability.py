"""Every mock model fault, end to end over real HTTP: one ``done`` in time, the right
outcome, a fallback with the top article where due, retries, the circuit breaker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.app import create_app
from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from tests.checks import check_stream_contract, metric_value
from tests.factories import bearer, make_settings
from tests.servers import serve

CONVERSATION = "5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
QUESTION = "how long does a refund take"
# Scaled-down limits (the defaults are 8 s, 5 s, 15 s): same logic, quicker tests. Real
# time, as these streams cross real sockets; the exact timing of each limit is tested on
# a virtual clock in test_pipeline.
LIMITS = {"first_token_timeout_s": 2.0, "stall_timeout_s": 1.0, "stream_limit_s": 3.0}

Events = list[tuple[str, dict[str, Any]]]


@dataclass
class Model:
    url: str

    def fault(self, name: str | None, remaining: int | None = None) -> None:
        response = httpx.put(f"{self.url}/mock/fault",
                             json={"fault": name, "remaining": remaining})
        assert response.status_code == 200, response.text

    @property
    def requests(self) -> int:
        return int(httpx.get(f"{self.url}/mock/fault").json()["requests"])


@pytest.fixture(scope="module")
def model() -> Iterator[Model]:
    # A drip every 0.05 s keeps a stream alive under the 1 s stall timeout until the
    # 3 s hard limit: a twentieth of the timeout, so a loaded machine's pauses do not make
    # a drip look like a stall (with 0.2 s against 0.5 s it did, once in a full run).
    config = MockLLMConfig(tokens_per_second=200, drip_interval_s=0.05, retry_after_s=0.1)
    with serve(create_mock_llm_app(config)) as url:
        yield Model(url)


@pytest.fixture
def model_ok(model: Model) -> Iterator[Model]:
    model.fault(None)
    yield model
    httpx.delete(f"{model.url}/mock/fault")


def panel_settings(kb: Path, model: Model, **overrides: Any) -> Any:
    values: dict[str, Any] = {"kb_path": kb, "generator": "openai",
                              "openai_base_url": f"{model.url}/v1", **LIMITS}
    values.update(overrides)
    return make_settings(**values)


@pytest.fixture(scope="module")
def panel(sample_kb_path: Path, model: Model, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[str, Path]]:
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    with serve(create_app(panel_settings(sample_kb_path, model, audit_log=str(audit),
                                         circuit_failures=1000))) as url:
        yield url, audit


def stream(base: str, query: str = QUESTION) -> Events:
    with httpx.Client(timeout=30) as client, connect_sse(
            client, "POST", f"{base}/api/assist/stream", headers=bearer(CONVERSATION),
            json={"conversationId": CONVERSATION, "trigger": "manual", "query": query}) as source:
        assert source.response.status_code == 200
        return [(e.event, json.loads(e.data)) for e in source.iter_sse()]


def names(events: Events) -> list[str]:
    return [name for name, _ in events]


def check_one_done(events: Events) -> dict[str, Any]:
    """The contract every stream keeps, whatever failed: the last event is its one done.

    In time, too, with no clock read here: a stream still open at the hard limit would
    end with ``deadline``, which each test tells from the stop reason it expects."""
    check_stream_contract(names(events))
    return events[-1][1]


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# fault -> (outcome, stop_reason, fallback reason or None, partial text expected, model calls)
CASES: dict[str, tuple[str, str, str | None, bool, int]] = {
    "stall_first": ("fallback", "first_token_timeout", "timeout", False, 1),
    "stall_mid": ("fallback", "stalled", "stalled", True, 1),
    "drip": ("truncated", "deadline", None, True, 1),
    "http_429": ("fallback", "upstream_429", "upstream_error", False, 3),
    "http_429_quota": ("fallback", "upstream_429", "upstream_error", False, 1),
    "http_503": ("fallback", "upstream_503", "upstream_error", False, 3),
    "http_500": ("fallback", "upstream_500", "upstream_error", False, 1),
    "http_400": ("fallback", "upstream_400", "upstream_error", False, 1),
    "http_403": ("fallback", "upstream_403", "upstream_error", False, 1),
    "drop_mid": ("fallback", "upstream_network", "upstream_error", True, 1),
    "malformed": ("completed", "stop", None, True, 1),
    "endless": ("truncated", "deadline", None, True, 1),
}


def test_the_request_id_travels_to_the_model_on_every_attempt(
        panel: tuple[str, Path], model_ok: Model) -> None:
    # Retries included: one id from the panel's audit line to the model's logs.
    base, _ = panel
    model_ok.fault("http_429", 1)
    with httpx.Client(timeout=30) as client, connect_sse(
            client, "POST", f"{base}/api/assist/stream", headers=bearer(CONVERSATION),
            json={"conversationId": CONVERSATION, "trigger": "manual", "query": QUESTION,
                  "requestId": "trace-42"}) as source:
        events = [(e.event, json.loads(e.data)) for e in source.iter_sse()]
    assert check_one_done(events)["outcome"] == "completed"
    records = httpx.get(f"{model_ok.url}/mock/timings",
                        params={"requestId": "trace-42"}).json()["timings"]
    assert len(records) == 2  # the 429, then the answer
    assert records[1]["tokens"] > 0


@pytest.mark.parametrize("fault", list(CASES))
def test_each_fault_ends_with_one_done_and_the_right_outcome(
        panel: tuple[str, Path], model_ok: Model, fault: str) -> None:
    outcome, stop_reason, fallback, partial, calls = CASES[fault]
    base, audit = panel
    model_ok.fault(fault)
    before = model_ok.requests
    events = stream(base)
    done = check_one_done(events)
    assert (done["outcome"], done["stop_reason"]) == (outcome, stop_reason)
    assert ("delta" in names(events)) is partial
    if fallback is None:
        assert "fallback" not in names(events)
    else:
        article = events[-2][1]
        top = events[0][1]["sources"][0]
        assert names(events)[-2] == "fallback" and article["reason"] == fallback
        assert article["article"]["id"] == top["id"]  # the top retrieved article
    assert model_ok.requests - before == calls  # 429/503 retried, nothing else
    record = next(r for r in audit_lines(audit) if r["suggestionId"] == events[0][1]["id"])
    assert (record["outcome"], record["stopReason"], record["fallbackReason"]) == (
        outcome, stop_reason, fallback)
    assert record["retries"] == calls - 1


def test_a_429_then_success_is_retried_into_a_full_answer(
        panel: tuple[str, Path], model_ok: Model) -> None:
    base, audit = panel
    model_ok.fault("http_429", remaining=1)
    before = model_ok.requests
    events = stream(base)
    assert check_one_done(events)["outcome"] == "completed"
    assert model_ok.requests - before == 2
    record = next(r for r in audit_lines(audit) if r["suggestionId"] == events[0][1]["id"])
    assert record["retries"] == 1


def test_a_retry_that_would_pass_the_deadline_is_not_made(sample_kb_path: Path) -> None:
    """Retry-After is 30 s, past the 10 s first-token deadline: no retry, the 503 ends it.

    Regression: with 0.1 s and 0.05 s, a loaded machine let the deadline pass before
    the 503 came back (``first_token_timeout``): the margins are now far apart."""
    config = MockLLMConfig(tokens_per_second=0, retry_after_s=30.0)
    with serve(create_mock_llm_app(config)) as url:
        model = Model(url)
        settings = panel_settings(sample_kb_path, model, first_token_timeout_s=10,
                                  stream_limit_s=20)
        with serve(create_app(settings)) as base:
            model.fault("http_503")
            done = check_one_done(stream(base))
        assert done["stop_reason"] == "upstream_503" and model.requests == 1


def test_a_wrong_model_key_is_a_401_never_retried(sample_kb_path: Path) -> None:
    config = MockLLMConfig(api_key="sk-right", tokens_per_second=0)
    app = create_mock_llm_app(config)
    with serve(app) as url:
        settings = panel_settings(sample_kb_path, Model(url), openai_api_key="sk-wrong")
        with serve(create_app(settings)) as base:
            events = stream(base)
    done = check_one_done(events)
    assert done["stop_reason"] == "upstream_401" and events[-2][1]["reason"] == "upstream_error"
    assert app.state.fault_switch.requests == 1


def test_the_circuit_opens_answers_at_once_and_closes_after_a_good_probe(
        sample_kb_path: Path, model_ok: Model) -> None:
    # The breaker's wait is read on a clock the test moves: a slow machine cannot let
    # the 60 s pass between the failures and the stream that must find the circuit open.
    now = [0.0]
    settings = panel_settings(sample_kb_path, model_ok, circuit_failures=2, circuit_reset_s=60)
    with serve(create_app(settings, clock=lambda: now[0])) as base:
        assert httpx.get(f"{base}/readyz").json()["model"]["circuit"] == "closed"
        model_ok.fault("http_500")
        for _ in range(2):
            assert check_one_done(stream(base))["stop_reason"] == "upstream_500"
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded" and ready.json()["model"]["circuit"] == "open"

        before = model_ok.requests
        events = stream(base)
        assert names(events) == ["suggestion", "fallback", "done"]
        assert events[1][1]["reason"] == "circuit_open"
        assert events[1][1]["article"]["id"] == events[0][1]["sources"][0]["id"]
        assert model_ok.requests == before  # the model was not called

        model_ok.fault(None)  # the model recovers; the next stream after the wait probes it
        assert httpx.get(f"{base}/readyz").json()["model"]["retryInS"] == 60
        now[0] += 60
        assert httpx.get(f"{base}/readyz").json()["model"]["retryInS"] == 0
        assert check_one_done(stream(base))["outcome"] == "completed"
        assert model_ok.requests == before + 1
        assert httpx.get(f"{base}/readyz").json()["model"]["circuit"] == "closed"
        metrics = httpx.get(f"{base}/metrics").text
    assert metric_value(metrics, "assist_fallbacks_total", reason="circuit_open") == 1
    assert metric_value(metrics, "assist_upstream_errors_total", status="500") == 2


@pytest.mark.parametrize("used", [10**20, 2**63, -1, 2**31])
def test_a_models_token_count_past_any_bound_still_ends_with_one_done(
        sample_kb_path: Path, used: int) -> None:
    """The usage event's completion_tokens, 10**20 (read by json, since orjson refuses the
    event's NaN), went into ``done``, which orjson could not write: the stream ended
    without ``done``, with a traceback. Such a count is not taken: the deltas are."""
    events = (
        '{"choices":[{"index":0,"delta":{"content":"Refunds take"}}]}',
        '{"choices":[{"index":0,"delta":{"content":" five days."}}]}',
        '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
        '{"choices":[],"usage":{"completion_tokens":' + str(used) + '},"x":NaN}',
    )
    body = "".join(f"data: {event}\n\n" for event in events) + "data: [DONE]\n\n"

    async def completions(request: Request) -> Response:
        return Response(body, media_type="text/event-stream")

    model = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    with serve(model) as url, serve(create_app(panel_settings(sample_kb_path, Model(url)))
                                    ) as base:
        events_seen = stream(base)
    done = check_one_done(events_seen)
    assert (done["outcome"], done["stop_reason"]) == ("completed", "stop")
    assert done["metrics"]["tokens"] == 2
