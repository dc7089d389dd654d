"""Whether Redis answers, as /readyz, ``assist_redis_up`` and the log say it, on a replica
that checks no limits (no traffic): its supersede subscription and a ping of a stale
state tell it, on a real redis-server started and stopped under it."""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from redis.asyncio.client import PubSub

from server.app import create_app
from server.assist.streams import StreamRegistry
from server.shared import supersede
from server.shared.link import STALE_S, RedisLink
from server.shared.supersede import SharedSupersede
from tests.asgi import TestClient, asgi_client
from tests.checks import metric_value, until, wait_until
from tests.factories import make_settings
from tests.redis_server import running_redis
from tests.serve_process import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def said(caplog: pytest.LogCaptureFixture, text: str, level: int = logging.INFO) -> int:
    return sum(text in record.getMessage() for record in caplog.records
               if record.levelno >= level)


def counted_subscriptions(link: RedisLink) -> Callable[[], int]:
    """Count the listener's tries at subscribing (each makes a PubSub)."""
    made = 0
    real = link.subscriber.pubsub

    def pubsub(**kwargs: Any) -> PubSub:
        nonlocal made
        made += 1
        return real(**kwargs)

    link.subscriber.pubsub = pubsub  # type: ignore[method-assign]
    return lambda: made


@pytest.mark.anyio
async def test_the_subscription_marks_redis_up_and_down_and_the_log_says_it_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Regression: the link's state changed only with a limit check, so a replica with no
    traffic said "down" for ever once Redis was back (and "up" while it was down); and
    the listener logged a warning every 5 s a worker while Redis was down, though the
    docs say the log says it once."""
    caplog.set_level(logging.DEBUG, "assist_panel.shared")
    monkeypatch.setattr(supersede, "RETRY_S", 0.02)
    port = free_port()
    states: list[str] = []
    link = RedisLink(f"redis://127.0.0.1:{port}/0", on_change=states.append, timeout_s=5.0)
    tries = counted_subscriptions(link)
    subscribed = anyio.Event()
    listener = SharedSupersede(link, StreamRegistry(10), on_subscribed=subscribed.set)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(listener.listen)
        await until(lambda: tries() >= 5, message="the listener did not try again")
        assert states == ["down"] and link.state == "down"
        assert said(caplog, "Redis unreachable", logging.WARNING) == 1
        assert said(caplog, "supersede announcements", logging.WARNING) == 0
        with running_redis(tmp_path, port):
            with anyio.fail_after(20):
                await subscribed.wait()
            assert states == ["down", "up"]
            assert said(caplog, "Redis reachable again") == 1
        # Stopped: the subscription's connection ends, and that is the news.
        await until(lambda: states == ["down", "up", "down"], message="still up")
        before = tries()
        await until(lambda: tries() >= before + 5, message="the listener did not try again")
        tasks.cancel_scope.cancel()
    assert said(caplog, "Redis unreachable", logging.WARNING) == 2  # once an outage
    assert said(caplog, "supersede announcements", logging.WARNING) == 0
    await link.close()


@pytest.mark.anyio
async def test_a_stale_state_is_asked_of_redis_once_every_few_seconds(tmp_path: Path) -> None:
    """/readyz reads ``current()``: with nothing else telling, one ping when the state is
    older than STALE_S, none in between."""
    clock = Clock()
    port = free_port()
    link = RedisLink(f"redis://127.0.0.1:{port}/0", clock=clock, timeout_s=5.0)
    pings = 0
    real_ping = link.client.ping

    def ping(**kwargs: Any) -> Awaitable[Any]:
        nonlocal pings
        pings += 1
        return real_ping(**kwargs)

    link.client.ping = ping  # type: ignore[method-assign]
    assert await link.current() == "down" and pings == 1  # nothing said yet: asked
    with running_redis(tmp_path, port):
        assert await link.current() == "down" and pings == 1  # fresh: not asked
        clock.now += STALE_S
        assert await link.current() == "up" and pings == 2
        assert await link.current() == "up" and pings == 2
    clock.now += STALE_S
    assert await link.current() == "down" and pings == 3
    await link.close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections (the kernel does) and never answers a byte."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.mark.anyio
async def test_asking_a_redis_that_never_answers_holds_a_reader_a_moment_only(
        silent_server: int) -> None:
    link = RedisLink(f"redis://127.0.0.1:{silent_server}/0", timeout_s=0.2)
    with anyio.fail_after(3):  # the bound: at most three of the link's timeouts
        assert await link.current() == "down"
    await link.close()


def redis_up(panel: TestClient) -> float | None:
    return metric_value(panel.get("/metrics").text, "assist_redis_up")


def test_an_idle_replica_reports_redis_as_it_comes_and_goes(
        sample_kb_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: with no limit checked, /readyz and assist_redis_up kept what the
    start-up ping saw: "down" for ever after Redis came back."""
    monkeypatch.setattr(supersede, "RETRY_S", 0.05)
    port = free_port()
    settings = make_settings(kb_path=sample_kb_path, redis_url=f"redis://127.0.0.1:{port}/0")
    with asgi_client(create_app(settings)) as panel:
        assert panel.get("/readyz").json()["redis"] == "down"
        assert redis_up(panel) == 0.0
        with running_redis(tmp_path, port):
            # /metrics asks Redis nothing: the subscription made is what tells.
            wait_until(lambda: redis_up(panel) == 1.0, message="still down")
            ready = panel.get("/readyz").json()
            assert (ready["status"], ready["redis"]) == ("ready", "up")
        wait_until(lambda: redis_up(panel) == 0.0, message="still up")
        ready = panel.get("/readyz").json()
        assert (ready["status"], ready["redis"]) == ("degraded", "down")
