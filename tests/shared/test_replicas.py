"""Two panel apps on one Redis, as two replicas would be, called at the ASGI level: one
rate limit between them; readiness and metrics say whether Redis answers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from server.app import create_app
from tests.asgi import TestClient, asgi_client
from tests.factories import bearer, make_settings
from tests.serve_process import free_port

CONVERSATION = "5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
SUGGESTION = "sg_AbCdEfGh-_12345x"


@pytest.fixture
def two_replicas(sample_kb_path: Path, redis_url: str) -> Iterator[tuple[TestClient, TestClient]]:
    redis.Redis.from_url(redis_url).flushdb()  # fresh buckets whatever ran before
    settings = make_settings(kb_path=sample_kb_path, redis_url=redis_url,
                             rate_limit_per_minute=3)
    with asgi_client(create_app(settings)) as a, asgi_client(create_app(settings)) as b:
        yield a, b


def feedback(panel: TestClient) -> int:
    response = panel.post("/api/feedback", content=json.dumps(
        {"suggestionId": SUGGESTION, "rating": "up"}).encode(),
        headers={"Content-Type": "application/json", **bearer(CONVERSATION)})
    return response.status_code


def metric(panel: TestClient, name: str, **labels: str) -> float | None:
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                     if labels else "")
    for line in panel.get("/metrics").text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return None


def test_one_rate_limit_across_replicas(two_replicas: tuple[TestClient, TestClient]) -> None:
    a, b = two_replicas
    assert [feedback(a), feedback(b), feedback(a)] == [204, 204, 204]
    assert [feedback(b), feedback(a)] == [429, 429]  # over 3 a minute, wherever asked
    assert metric(a, "assist_redis_up") == 1.0


def test_readiness_and_metrics_say_redis_is_up(sample_kb_path: Path, redis_url: str) -> None:
    with asgi_client(create_app(make_settings(kb_path=sample_kb_path,
                                              redis_url=redis_url))) as panel:
        ready = panel.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready" and ready.json()["redis"] == "up"


def test_with_redis_down_the_panel_serves_degraded(sample_kb_path: Path) -> None:
    nothing_there = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(kb_path=sample_kb_path, redis_url=nothing_there,
                             rate_limit_per_minute=2)
    with asgi_client(create_app(settings)) as panel:
        ready = panel.get("/readyz")
        assert ready.status_code == 200
        body: dict[str, Any] = ready.json()
        assert (body["status"], body["redis"]) == ("degraded", "down")
        assert metric(panel, "assist_redis_up") == 0.0
        # The limit holds per process: two a minute here, then 429.
        assert [feedback(panel) for _ in range(3)] == [204, 204, 429]
        assert metric(panel, "assist_redis_fallbacks_total", limit="streams") == 2.0


def test_without_redis_readiness_says_nothing_of_it(sample_kb_path: Path) -> None:
    with asgi_client(create_app(make_settings(kb_path=sample_kb_path))) as panel:
        ready = panel.get("/readyz").json()
        assert ready["status"] == "ready" and "redis" not in ready
        assert metric(panel, "assist_redis_up") is None


def test_the_redis_url_is_never_logged(sample_kb_path: Path, caplog: pytest.LogCaptureFixture
                                       ) -> None:
    # Every level: a line that named the URL at INFO or DEBUG must be caught too.
    caplog.set_level(logging.DEBUG)
    secret_url = f"redis://:s3cret-password@127.0.0.1:{free_port()}/0"
    with asgi_client(create_app(make_settings(kb_path=sample_kb_path,
                                              redis_url=secret_url))) as panel:
        panel.get("/readyz")
    assert "Redis unreachable" in caplog.text  # what was logged of it was captured
    assert "s3cret-password" not in caplog.text
