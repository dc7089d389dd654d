"""Prometheus metrics: values after a few streams, bounded labels, GET /metrics."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from server.pipeline.stream import StreamRecord
from server.web import metrics as metrics_module
from server.web.metrics import Metrics
from tests.asgi import asgi_client
from tests.factories import make_settings


def _record(**overrides: Any) -> StreamRecord:
    fields: dict[str, Any] = {
        "suggestion_id": "sg_1", "request_id": "rq-1", "conversation_id": "conv-1",
        "user_id": "user-1", "trigger": "utterance", "generator": "extractive",
        "model": "extractive", "source_ids": ["a1"], "ttft_ms": None, "duration_ms": 0,
        "outcome": "completed", "stop_reason": "stop",
    }
    fields.update(overrides)
    return StreamRecord(**fields)


def _samples(m: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``m.render()``: (name, labels) -> value."""
    body, _ = m.render()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _value(m: Metrics, name: str, **labels: str) -> float | None:
    return _samples(m).get((name, frozenset(labels.items())))


def _three_streams(m: Metrics) -> None:
    for _ in range(3):
        m.stream_started()
    m.stream_finished(_record(outcome="completed", ttft_ms=400, duration_ms=1200))
    m.stream_finished(_record(outcome="fallback", stop_reason="stalled",
                              fallback_reason="stalled", ttft_ms=300, duration_ms=6000,
                              trigger="manual"))
    m.stream_finished(_record(outcome="cancelled", ttft_ms=None, duration_ms=50))


def test_streams_are_counted_by_outcome_and_trigger() -> None:
    m = Metrics()
    _three_streams(m)
    assert _value(m, "assist_suggestions_total", outcome="completed", trigger="utterance") == 1
    assert _value(m, "assist_suggestions_total", outcome="fallback", trigger="manual") == 1
    assert _value(m, "assist_suggestions_total", outcome="cancelled", trigger="utterance") == 1
    # Known series exist from the start, at zero.
    assert _value(m, "assist_suggestions_total", outcome="truncated", trigger="manual") == 0
    assert _value(m, "assist_fallbacks_total", reason="stalled") == 1
    assert _value(m, "assist_fallbacks_total", reason="timeout") == 0


def test_active_streams_go_up_and_down() -> None:
    m = Metrics()
    assert _value(m, "assist_active_streams") == 0
    m.stream_started()
    m.stream_started()
    assert _value(m, "assist_active_streams") == 2
    m.stream_finished(_record())
    assert _value(m, "assist_active_streams") == 1


def test_latencies_observed_in_seconds_ttft_only_with_text() -> None:
    m = Metrics()
    _three_streams(m)
    ttft = "assist_time_to_first_token_seconds"
    duration = "assist_stream_duration_seconds"
    # Two streams had text, the cancelled one had none.
    assert _value(m, f"{ttft}_count", generator="extractive") == 2
    assert _value(m, f"{ttft}_sum", generator="extractive") == 0.7
    assert _value(m, f"{ttft}_bucket", generator="extractive", le="0.25") == 0
    assert _value(m, f"{ttft}_bucket", generator="extractive", le="0.5") == 2
    assert _value(m, f"{duration}_count", generator="extractive") == 3
    assert _value(m, f"{duration}_sum", generator="extractive") == 7.25
    assert _value(m, f"{duration}_bucket", generator="extractive", le="0.05") == 1
    assert _value(m, f"{duration}_bucket", generator="extractive", le="5.0") == 2
    assert _value(m, f"{duration}_bucket", generator="extractive", le="15.0") == 3
    assert _value(m, f"{duration}_bucket", generator="extractive", le="20.0") == 3


def test_each_step_before_the_model_is_observed_by_stage() -> None:
    m = Metrics()
    m.stream_started()
    m.stream_finished(_record(stages={"redaction": 0.0002, "context": 0.00005,
                                      "retrieval": 0.004, "suggestion": 0.0045}))
    m.stream_started()
    m.stream_finished(_record(stages={}))  # ended before its suggestion: nothing timed
    stage = "assist_stage_seconds"
    assert _value(m, f"{stage}_count", stage="retrieval") == 1
    assert _value(m, f"{stage}_sum", stage="retrieval") == 0.004
    assert _value(m, f"{stage}_bucket", stage="retrieval", le="0.003") == 0
    assert _value(m, f"{stage}_bucket", stage="retrieval", le="0.005") == 1
    assert _value(m, f"{stage}_bucket", stage="context", le="0.0001") == 1
    assert _value(m, f"{stage}_bucket", stage="redaction", le="0.00025") == 1
    assert _value(m, f"{stage}_count", stage="suggestion") == 1


def test_upstream_errors_by_status_network_and_retries() -> None:
    m = Metrics()
    m.upstream_error(429)
    m.upstream_error(429)
    m.upstream_error(503)
    m.upstream_error(None)
    m.upstream_retry()
    m.upstream_retry()
    assert _value(m, "assist_upstream_errors_total", status="429") == 2
    assert _value(m, "assist_upstream_errors_total", status="503") == 1
    assert _value(m, "assist_upstream_errors_total", status="network") == 1
    assert _value(m, "assist_upstream_retries_total") == 2


def test_rejected_requests_by_reason() -> None:
    m = Metrics()
    m.rejected("rate_limited")
    m.rejected("rate_limited")
    m.rejected("over_capacity")
    assert _value(m, "assist_requests_rejected_total", reason="rate_limited") == 2
    assert _value(m, "assist_requests_rejected_total", reason="over_capacity") == 1


def test_circuit_state_has_one_current_state() -> None:
    m = Metrics()

    def states() -> dict[str, float]:
        return {state: _value(m, "assist_model_circuit_state", state=state) or 0.0
                for state in ("closed", "open", "half_open")}

    assert states() == {"closed": 1, "open": 0, "half_open": 0}
    m.set_circuit_state("open")
    assert states() == {"closed": 0, "open": 1, "half_open": 0}
    m.set_circuit_state("half_open")
    assert states() == {"closed": 0, "open": 0, "half_open": 1}
    m.set_circuit_state("closed")
    assert states() == {"closed": 1, "open": 0, "half_open": 0}


def test_unknown_label_values_become_other() -> None:
    m = Metrics()
    m.stream_started()
    m.stream_finished(_record(outcome="exploded", trigger="conv-1234", generator="my-fake",
                              fallback_reason="user typed something", ttft_ms=10,
                              duration_ms=20))
    m.rejected("sg_secret-id")
    m.upstream_error(12345)
    m.set_circuit_state("weird")
    assert _value(m, "assist_suggestions_total", outcome="other", trigger="other") == 1
    assert _value(m, "assist_fallbacks_total", reason="other") == 1
    assert _value(m, "assist_stream_duration_seconds_count", generator="other") == 1
    assert _value(m, "assist_requests_rejected_total", reason="other") == 1
    assert _value(m, "assist_upstream_errors_total", status="other") == 1
    assert _value(m, "assist_model_circuit_state", state="other") == 1
    assert _value(m, "assist_model_circuit_state", state="closed") == 0
    m.set_circuit_state("open")
    assert _value(m, "assist_model_circuit_state", state="other") == 0
    body, _ = m.render()
    for leaked in (b"exploded", b"conv-1234", b"my-fake", b"typed", b"sg_secret", b"weird"):
        assert leaked not in body


def test_two_instances_are_independent() -> None:
    first, second = Metrics(), Metrics()
    first.rejected("rate_limited")
    first.stream_started()
    assert _value(first, "assist_requests_rejected_total", reason="rate_limited") == 1
    assert _value(second, "assist_requests_rejected_total", reason="rate_limited") == 0
    assert _value(second, "assist_active_streams") == 0
    # Neither touches the global default registry.
    from prometheus_client import REGISTRY
    assert REGISTRY.get_sample_value("assist_active_streams") is None


def test_metrics_endpoint_answers_the_prometheus_text_format() -> None:
    m = Metrics()
    m.upstream_error(503)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {"metrics": m, "settings": make_settings()}

    app = Starlette(routes=metrics_module.routes, lifespan=lifespan)
    with asgi_client(app) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert 'assist_upstream_errors_total{status="503"} 1.0' in response.text.splitlines()


def test_the_interpreters_collector_is_counted_by_generation() -> None:
    m = Metrics()
    before = _value(m, "python_gc_collections_total", generation="2")
    assert before is not None
    gc.collect()
    assert (_value(m, "python_gc_collections_total", generation="2") or 0) >= before + 1
    for generation in ("0", "1", "2"):
        assert _value(m, "python_gc_objects_collected_total", generation=generation) is not None
        assert _value(m, "python_gc_objects_uncollectable_total",
                      generation=generation) is not None


def test_the_loop_lateness_is_observed_in_seconds() -> None:
    m = Metrics()
    m.loop_lag(0.0004)
    m.loop_lag(0.3)
    lag = "assist_event_loop_lag_seconds"
    assert _value(m, f"{lag}_count") == 2
    assert _value(m, f"{lag}_bucket", le="0.001") == 1
    assert _value(m, f"{lag}_bucket", le="0.25") == 1
    assert _value(m, f"{lag}_bucket", le="0.5") == 2
