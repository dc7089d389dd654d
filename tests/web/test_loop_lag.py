"""The event loop's lateness: the watch sees a hold of the loop, the app reports it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.web.loop_lag import watch_loop_lag
from server.web.metrics import LOOP_LAG_BUCKETS
from tests.asgi import asgi_client
from tests.checks import metric_value, until, wait_until
from tests.factories import make_settings


@pytest.mark.anyio
async def test_a_hold_of_the_loop_is_seen_as_lateness() -> None:
    seen: list[float] = []
    first = asyncio.Event()

    def observe(late: float) -> None:
        seen.append(late)
        first.set()

    watch = asyncio.create_task(watch_loop_lag(observe, interval_s=0.01))
    await first.wait()  # the watch has gone back to sleep
    held = len(seen)
    time.sleep(0.05)  # noqa: ASYNC251 - holds the loop, as a blocking call would
    await until(lambda: len(seen) > held, message="the watch never woke again")
    watch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watch
    assert min(seen) >= 0.0
    # The hold began at most one interval into the watch's sleep.
    assert seen[held] >= 0.05 - 0.01 - 1e-6
    assert watch.cancelled()


def test_the_app_reports_how_late_its_loop_runs(sample_kb_path: Path) -> None:
    lag = "assist_event_loop_lag_seconds_count"
    with asgi_client(create_app(make_settings(kb_path=sample_kb_path))) as client:
        wait_until(lambda: (metric_value(client.get("/metrics").text, lag) or 0) >= 2,
                   message="the loop's lateness was never observed")
        text = client.get("/metrics").text
    # Observed into the buckets the app chose, and an idle loop's lateness inside them
    # (the +Inf bucket always equals the count: it alone would prove nothing).
    bounds = {sample.labels["le"] for family in text_string_to_metric_families(text)
              for sample in family.samples
              if sample.name == "assist_event_loop_lag_seconds_bucket"}
    assert bounds == {*(str(bound) for bound in LOOP_LAG_BUCKETS), "+Inf"}
    assert (metric_value(text, "assist_event_loop_lag_seconds_bucket",
                         le=str(LOOP_LAG_BUCKETS[-1])) or 0) >= 1
