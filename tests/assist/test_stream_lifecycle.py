"""Who else ends a stream, over real HTTP: supersede, the client leaving, the stream cap and
the per-user rate limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from server.app import create_app
from server.assist.streams import StreamRegistry
from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from tests.checks import metric_value, until
from tests.factories import USER, bearer, make_settings
from tests.servers import Running, running, serve

CONVERSATION = "5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
# Long limits: nothing but the behaviour under test can end these streams.
PATIENT = {"first_token_timeout_s": 60, "stall_timeout_s": 60, "stream_limit_s": 120}

pytestmark = pytest.mark.anyio


@pytest.fixture
def model() -> Iterator[tuple[str, Starlette]]:
    app = create_mock_llm_app(MockLLMConfig(tokens_per_second=0))
    with serve(app) as url:
        yield url, app


def panel_app(kb: Path, model_url: str, **overrides: Any) -> Starlette:
    return create_app(make_settings(kb_path=kb, generator="openai",
                                    openai_base_url=f"{model_url}/v1", **{**PATIENT, **overrides}))


def body(trigger: str, text: str = "how long does a refund take") -> dict[str, Any]:
    if trigger == "manual":
        return {"conversationId": CONVERSATION, "trigger": "manual", "query": text}
    return {"conversationId": CONVERSATION, "trigger": "utterance",
            "utterances": [{"speaker": "customer", "text": text}]}


class Stream:
    """One open SSE response, read event by event."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()

    async def next_event(self) -> tuple[str, dict[str, Any]]:
        name = ""
        async for line in self.lines:
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and name:
                return name, json.loads(line.split(":", 1)[1])
        raise AssertionError("the stream ended without another event")

    async def rest(self) -> list[tuple[str, dict[str, Any]]]:
        events: list[tuple[str, dict[str, Any]]] = []
        while not events or events[-1][0] != "done":
            events.append(await self.next_event())
        return events


@asynccontextmanager
async def open_stream(client: httpx.AsyncClient, base: str, payload: dict[str, Any],
                      **session: Any) -> AsyncIterator[Stream]:
    request = client.build_request("POST", f"{base}/api/assist/stream", json=payload,
                                   headers=bearer(CONVERSATION, **session))
    response = await client.send(request, stream=True)
    try:
        assert response.status_code == 200, (await response.aread())
        yield Stream(response)
    finally:
        await response.aclose()


def registry(server: Running, app: Starlette) -> StreamRegistry:
    streams: StreamRegistry = app.state.streams
    return streams


async def test_a_newer_utterance_supersedes_the_older_automatic_suggestion(
        sample_kb_path: Path, model: tuple[str, Starlette]) -> None:
    url, llm = model
    llm.state.fault_switch.set("stall_first", remaining=1)  # the first one hangs
    app = panel_app(sample_kb_path, url)
    with running(app) as server:
        async with httpx.AsyncClient(timeout=30) as client, \
                open_stream(client, server.url, body("utterance")) as first:
            assert (await first.next_event())[0] == "suggestion"
            await model_called(llm, times=1)  # so the stall is the first one's
            follow_up = body("utterance", "and the restocking fee?")
            async with open_stream(client, server.url, follow_up) as second:
                newer = await second.rest()
                older = await first.rest()
    assert older[-1][1]["outcome"] == "cancelled"
    assert older[-1][1]["stop_reason"] == "superseded"
    assert [name for name, _ in older].count("done") == 1
    assert newer[-1][1]["outcome"] == "completed"


async def test_manual_questions_and_other_agents_are_never_superseded(
        sample_kb_path: Path, model: tuple[str, Starlette]) -> None:
    url, llm = model
    llm.state.fault_switch.set("stall_first", remaining=2)
    app = panel_app(sample_kb_path, url)
    other_agent = "7d1e9c3b-2a4f-4b6d-8e0c-1f2a3b4c5d6e"
    with running(app) as server:
        async with httpx.AsyncClient(timeout=30) as client, \
                open_stream(client, server.url, body("manual")) as manual:
            await manual.next_event()
            await model_called(llm, times=1)
            async with open_stream(client, server.url, body("utterance"),
                                   user_id=other_agent) as colleague:
                await colleague.next_event()
                await model_called(llm, times=2)
                async with open_stream(client, server.url, body("utterance")) as newer:
                    assert (await newer.rest())[-1][1]["outcome"] == "completed"
                streams = registry(server, app)
                assert streams.active >= 2  # the manual one and the colleague's
                assert all(c.reason is None for c in streams._open)


async def model_called(llm: Starlette, *, times: int) -> None:
    """Until the mock model has received ``times`` chat completions (its request counter);
    a stream's model request starts just after its ``suggestion`` event."""
    await until(lambda: llm.state.fault_switch.requests >= times,
                message=f"the model never got {times} requests")


async def test_a_client_that_leaves_cancels_its_model_request(
        sample_kb_path: Path, model: tuple[str, Starlette]) -> None:
    """Only the disconnect can end this stream (its limits are a minute away), so the model
    request ending proves the cancel; the mock counts its open completions."""
    url, llm = model
    llm.state.fault_switch.set("stall_first")
    tracker = llm.state.streams
    app = panel_app(sample_kb_path, url, audit_log="")
    with running(app) as server:
        async with httpx.AsyncClient(timeout=30) as client, \
                open_stream(client, server.url, body("manual")) as stream:
            assert (await stream.next_event())[0] == "suggestion"
            await model_called(llm, times=1)
        # The response is closed: the panel must cancel the upstream request.
        assert tracker.wait_idle(timeout=10)
        await until(lambda: not registry(server, app).active,  # and gives its slot back
                    message="the stream never gave its slot back")


async def test_a_quiet_stream_sends_keep_alive_comments_and_still_ends_with_one_done(
        sample_kb_path: Path, model: tuple[str, Starlette]) -> None:
    """The response runs no ping task of its own: the pipeline yields keep-alives while it
    waits on the model, and the SSE layer writes them as comments (no id, no event)."""
    url, llm = model
    llm.state.fault_switch.set("stall_first")
    app = panel_app(sample_kb_path, url, sse_ping_s=0.05)
    with running(app) as server:
        async with httpx.AsyncClient(timeout=30) as client, \
                open_stream(client, server.url, body("manual")) as stream:
            assert (await stream.next_event())[0] == "suggestion"
            pings = 0
            async for line in stream.lines:
                assert not line.startswith(("event:", "data:")), line  # nothing else came
                if line == ": ping":
                    pings += 1
                    if pings == 3:
                        break

            async def shut_down() -> None:  # on the server's loop, as SIGTERM would
                registry(server, app).shutdown()

            server.call(shut_down())
            events = await stream.rest()
    names = [name for name, _ in events]
    assert names.count("done") == 1 and names[-1] == "done"
    assert events[-1][1]["stop_reason"] == "shutdown"
    assert all(name in {"suggestion", "delta", "fallback", "done"} for name in names)


async def test_an_open_stream_runs_one_task_beside_its_model_request(
        sample_kb_path: Path, model: tuple[str, Starlette]) -> None:
    """Regression: each open stream ran six tasks (sse-starlette's task group: the body,
    pings, the disconnect and shutdown listeners), thousands of idle streams' worth of
    memory. Now: the request's own task, and the one reading the model."""
    url, llm = model
    llm.state.fault_switch.set("stall_first")
    app = panel_app(sample_kb_path, url, audit_log="")

    async def tasks() -> int:
        return len(asyncio.all_tasks())

    with running(app) as server:
        async with httpx.AsyncClient(timeout=30) as client:
            before = server.call(tasks())
            async with open_stream(client, server.url, body("manual")) as first, \
                    open_stream(client, server.url, body("manual", "restocking fee")) as second:
                for stream in (first, second):
                    assert (await stream.next_event())[0] == "suggestion"
                await model_called(llm, times=2)
                assert server.call(tasks()) - before == 2 * 2
            await until(lambda: not registry(server, app).active,
                        message="the streams never gave their slots back")
            assert server.call(tasks()) == before


async def test_the_stream_cap_answers_503_with_retry_after(
        sample_kb_path: Path, model: tuple[str, Starlette]) -> None:
    url, llm = model
    llm.state.fault_switch.set("stall_first", remaining=1)
    app = panel_app(sample_kb_path, url, max_streams=1)
    with running(app) as server:
        async with httpx.AsyncClient(timeout=30) as client:
            async with open_stream(client, server.url, body("manual")) as first:
                await first.next_event()
                await model_called(llm, times=1)
                refused = await client.post(f"{server.url}/api/assist/stream",
                                            json=body("manual"), headers=bearer(CONVERSATION))
                assert refused.status_code == 503
                assert refused.json()["error"] == "over_capacity"
                assert int(refused.headers["retry-after"]) >= 1
            # The slot comes back when the response ends.
            await until(lambda: not registry(server, app).active,
                        message="the stream never gave its slot back")
            async with open_stream(client, server.url, body("manual")) as again:
                assert (await again.rest())[-1][1]["outcome"] == "completed"
            metrics = (await client.get(f"{server.url}/metrics")).text
    assert metric_value(metrics, "assist_requests_rejected_total", reason="over_capacity") == 1
    # The two admitted streams timed their pre-model path from the route, not the stream.
    for stage in ("request", "suggestion"):
        assert metric_value(metrics, "assist_stage_seconds_count", stage=stage) == 2


def test_the_per_user_rate_limit_answers_429_with_retry_after(sample_kb_path: Path) -> None:
    settings = make_settings(kb_path=sample_kb_path, extractive_token_delay_ms=0,
                             rate_limit_per_minute=2)
    with serve(create_app(settings)) as base:
        def ask(**session: Any) -> httpx.Response:
            return httpx.post(f"{base}/api/assist/stream", json=body("manual"),
                              headers=bearer(CONVERSATION, **session), timeout=30)

        assert [ask().status_code for _ in range(2)] == [200, 200]
        limited = ask()
        assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert ask(user_id="0c9d8e7f-6a5b-4c3d-8e1f-0a9b8c7d6e5f").status_code == 200
        assert USER  # the limited one is the default test agent


def test_a_rate_limit_of_zero_is_off(sample_kb_path: Path) -> None:
    settings = make_settings(kb_path=sample_kb_path, extractive_token_delay_ms=0,
                             rate_limit_per_minute=0)
    with serve(create_app(settings)) as base:
        statuses = {httpx.post(f"{base}/api/assist/stream", json=body("manual"),
                               headers=bearer(CONVERSATION), timeout=30).status_code
                    for _ in range(8)}
    assert statuses == {200}
