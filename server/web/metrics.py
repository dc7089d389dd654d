"""Prometheus metrics of one app instance, served as ``GET /metrics``.

Every :class:`Metrics` holds its own ``CollectorRegistry`` (never prometheus_client's
global default), so several apps in one process (tests) never share or clash over
series.

The numbers are **per process**. With several uvicorn workers each worker has its own
``Metrics`` and answers ``/metrics`` with its own counts only, so a scrape through a
load balancer sees one worker at a time. We keep it per process and do not use
prometheus_client's multiprocess mode: run one worker per process you scrape (one per
container/pod) and let Prometheus scrape each instance; the ``instance`` label tells them
apart and ``sum()`` adds them up.

Label values are bounded: outcomes, triggers, reasons, generators and circuit states are
normalised to known sets (anything else becomes ``"other"``), upstream statuses to HTTP
status codes or ``"network"``. Never ids or free text.
"""

from __future__ import annotations

import hmac
from typing import Any, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.errors import MetricsTokenRequired
from server.pipeline.breaker import CircuitState
from server.pipeline.context import Trigger
from server.pipeline.events import FallbackReason, Outcome
from server.pipeline.stream import STAGES, StreamRecord

OTHER = "other"
"""The label value standing in for anything outside a known set."""

# The label sets are the types' own values: a new outcome or reason is a label at once.
OUTCOMES: tuple[str, ...] = get_args(Outcome)
TRIGGERS: tuple[str, ...] = get_args(Trigger)
FALLBACK_REASONS: tuple[str, ...] = get_args(FallbackReason)
REJECT_REASONS = ("rate_limited", "over_capacity", "shutting_down")
SHARED_LIMITS = ("streams", "signin", "signin_state", "supersede")
CIRCUIT_STATES: tuple[str, ...] = get_args(CircuitState)
# ``Generator.name`` of the shipped generators (server/pipeline/generators); others
# count as "other".
GENERATORS = ("extractive", "openai")

# Streams stop at a 15 s hard limit; the last finite bucket leaves room above it.
# The steps before the model: sub-millisecond to tens of milliseconds.
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 1.0)
# How late the loop woke a task: a millisecond is the timers' grain; a second is a stall.
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0)


def _known(value: str | None, known: tuple[str, ...]) -> str:
    return value if value in known else OTHER


def _status_label(status: int | None) -> str:
    if status is None:
        return "network"
    return str(status) if 100 <= status <= 599 else OTHER


class Metrics:
    """The Prometheus metrics of one app instance, on a registry of its own (``registry``).

    Thread-safe (prometheus_client locks its values); create one per app, in its lifespan.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        # The interpreter's collector, by generation: passes, objects freed, objects it
        # could not free (``python_gc_*``). A worker's full passes (generation 2) come at
        # most once per ASSIST_GC_FULL_INTERVAL_S and should free about nothing.
        GCCollector(registry=registry)
        self._active = Gauge(
            "assist_active_streams", "Suggestion streams currently open.",
            registry=registry)
        self._suggestions = Counter(
            "assist_suggestions", "Suggestion streams finished, by outcome and trigger.",
            ["outcome", "trigger"], registry=registry)
        self._fallbacks = Counter(
            "assist_fallbacks", "Suggestions that ended with the static fallback, by reason.",
            ["reason"], registry=registry)
        self._ttft = Histogram(
            "assist_time_to_first_token_seconds",
            "Time from the request to the first text of a suggestion (streams with text).",
            ["generator"], buckets=LATENCY_BUCKETS, registry=registry)
        self._duration = Histogram(
            "assist_stream_duration_seconds", "Duration of suggestion streams.",
            ["generator"], buckets=LATENCY_BUCKETS, registry=registry)
        self._stages = Histogram(
            "assist_stage_seconds",
            "Time each step before the model took: redaction, context, retrieval, and "
            "suggestion (from the request to the suggestion event).",
            ["stage"], buckets=STAGE_BUCKETS, registry=registry)
        self._loop_lag = Histogram(
            "assist_event_loop_lag_seconds",
            "How late the event loop woke a task due now, sampled ten times a second: "
            "a callback that holds the loop delays every stream by as much.",
            buckets=LOOP_LAG_BUCKETS, registry=registry)
        self._upstream_errors = Counter(
            "assist_upstream_errors",
            "Failed model calls (retried ones included), by HTTP status or 'network'.",
            ["status"], registry=registry)
        self._upstream_retries = Counter(
            "assist_upstream_retries", "Model calls retried after a failure.",
            registry=registry)
        self._rejected = Counter(
            "assist_requests_rejected", "Stream requests refused before starting, by reason.",
            ["reason"], registry=registry)
        self._circuit = Gauge(
            "assist_model_circuit_state",
            "State of the model circuit breaker: 1 for the current state, 0 for the others.",
            ["state"], registry=registry)
        self._circuit_states = list(CIRCUIT_STATES)
        self._redis_up: Gauge | None = None  # made by the first set_redis_state
        self._redis_fallbacks = Counter(
            "assist_redis_fallbacks",
            "Limit checks made by this process alone because Redis did not answer, by limit.",
            ["limit"], registry=registry)

        # Each stream's end counts in up to nine labelled series: their children are kept
        # here rather than looked up through labels() (a lock, a tuple, checks) each time.
        self._children: dict[tuple[object, ...], Any] = {}
        # Known series start at 0 so rate() and absence alerts work from the first scrape.
        for outcome in OUTCOMES:
            for trigger in TRIGGERS:
                self._suggestions.labels(outcome=outcome, trigger=trigger)
        for reason in FALLBACK_REASONS:
            self._fallbacks.labels(reason=reason)
        for reason in REJECT_REASONS:
            self._rejected.labels(reason=reason)
        self.set_circuit_state("closed")

    def stream_started(self) -> None:
        """A suggestion stream opened (pair with :meth:`stream_finished`)."""
        self._active.inc()

    def stream_finished(self, record: StreamRecord) -> None:
        """A suggestion stream ended, whatever the outcome: count it and its latencies."""
        self._active.dec()
        child = self._child
        child(self._suggestions, _known(record.outcome, OUTCOMES),
              _known(record.trigger, TRIGGERS)).inc()
        if record.fallback_reason:
            child(self._fallbacks, _known(record.fallback_reason, FALLBACK_REASONS)).inc()
        generator = _known(record.generator, GENERATORS)
        if record.ttft_ms is not None:
            child(self._ttft, generator).observe(max(record.ttft_ms, 0) / 1000)
        child(self._duration, generator).observe(max(record.duration_ms, 0) / 1000)
        for stage, seconds in record.stages.items():
            child(self._stages, _known(stage, STAGES)).observe(max(seconds, 0.0))

    def _child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, made once (label values here are bounded sets)."""
        key = (metric, *values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def loop_lag(self, seconds: float) -> None:
        """The event loop woke a task ``seconds`` after it was due
        (:func:`server.web.loop_lag.watch_loop_lag`)."""
        self._loop_lag.observe(seconds)

    def upstream_error(self, status: int | None) -> None:
        """A model call failed: ``status`` is its HTTP status, None for a network error.

        Counts every failure, including the ones that are then retried.
        """
        self._upstream_errors.labels(status=_status_label(status)).inc()

    def upstream_retry(self) -> None:
        """A failed model call is being retried."""
        self._upstream_retries.inc()

    def rejected(self, reason: str) -> None:
        """A stream request was refused: ``"rate_limited"``, ``"over_capacity"`` or
        ``"shutting_down"``."""
        self._rejected.labels(reason=_known(reason, REJECT_REASONS)).inc()

    def set_circuit_state(self, state: str) -> None:
        """The model circuit breaker is now ``"closed"``, ``"open"`` or ``"half_open"``."""
        current = _known(state, CIRCUIT_STATES)
        if current not in self._circuit_states:
            self._circuit_states.append(current)
        for name in self._circuit_states:
            self._circuit.labels(state=name).set(1 if name == current else 0)

    def set_redis_state(self, state: str) -> None:
        """Redis is now ``"up"`` or ``"down"`` (the gauge exists only with Redis set)."""
        if self._redis_up is None:
            self._redis_up = Gauge(
                "assist_redis_up",
                "1 while Redis (ASSIST_REDIS_URL) answers, 0 while the limits fall back to "
                "this process's own.", registry=self.registry)
        self._redis_up.set(1 if state == "up" else 0)

    def redis_fallback(self, limit: str) -> None:
        """A limit (``"streams"``, ``"signin"``, ``"signin_state"``, ``"supersede"``) was
        checked by this process alone: Redis did not answer."""
        self._redis_fallbacks.labels(limit=_known(limit, SHARED_LIMITS)).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition of this registry: (body, content type)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: this process's metrics (``request.state.metrics``) in text format;
    with ``ASSIST_METRICS_TOKEN`` set, only for ``Authorization: Bearer <token>``."""
    token = request.state.settings.metrics_token
    if token is not None:
        # The scheme in any case, as for sessions (RFC 9110: it is case-insensitive).
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token.get_secret_value().encode()):
            raise MetricsTokenRequired("GET /metrics needs its token as a Bearer token")
    metrics: Metrics = request.state.metrics
    body, content_type = metrics.render()
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


routes = [Route("/metrics", metrics_endpoint)]
