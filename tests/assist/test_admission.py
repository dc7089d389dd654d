"""Admission: which refusals are counted, and under which reason."""

from __future__ import annotations

import pytest

from server.assist.admission import Admission
from server.assist.ratelimit import RateLimiter
from server.assist.streams import StreamRegistry
from server.errors import OverCapacity, RateLimited, ShuttingDown
from server.shared.limits import SharedRateLimiter
from server.web.metrics import Metrics
from tests.web.test_metrics import _value

REJECTED = "assist_requests_rejected_total"


def _admission(*, per_minute: int = 1, max_streams: int = 1) -> tuple[Admission, Metrics]:
    metrics = Metrics()
    limiter = SharedRateLimiter(RateLimiter(per_minute, clock=lambda: 0.0), None, "streams")
    return Admission(limiter, StreamRegistry(max_streams), metrics), metrics


async def _open(admission: Admission, owner: str = "u1") -> None:
    await admission.admit(owner=owner, conversation_id="c1", automatic=False)


@pytest.mark.anyio
async def test_shutdown_refusals_are_counted_as_shutting_down_not_over_capacity() -> None:
    admission, metrics = _admission(max_streams=5)
    admission.streams.shutdown()
    with pytest.raises(ShuttingDown):
        await _open(admission)
    assert _value(metrics, REJECTED, reason="shutting_down") == 1
    assert _value(metrics, REJECTED, reason="over_capacity") == 0


@pytest.mark.anyio
async def test_over_capacity_refusals_are_counted_as_over_capacity() -> None:
    admission, metrics = _admission(max_streams=1)
    await _open(admission)
    with pytest.raises(OverCapacity):
        await _open(admission, owner="u2")
    assert _value(metrics, REJECTED, reason="over_capacity") == 1
    assert _value(metrics, REJECTED, reason="shutting_down") == 0


@pytest.mark.anyio
async def test_stream_rate_limit_refusals_are_counted() -> None:
    admission, metrics = _admission(per_minute=1)
    await admission.check_rate("u1")
    with pytest.raises(RateLimited):
        await admission.check_rate("u1")
    assert _value(metrics, REJECTED, reason="rate_limited") == 1


@pytest.mark.anyio
async def test_feedback_rate_limit_refusals_are_not_counted_as_stream_rejections() -> None:
    admission, metrics = _admission(per_minute=1)
    await admission.check_other_rate("feedback:u1")
    with pytest.raises(RateLimited):
        await admission.check_other_rate("feedback:u1")
    assert _value(metrics, REJECTED, reason="rate_limited") == 0
    await admission.check_rate("u1")  # its own bucket: the agent's streams are untouched
