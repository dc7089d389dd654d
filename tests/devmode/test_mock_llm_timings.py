"""The mock model's timing log (``GET /mock/timings``): what the benchmarks subtract."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from tests.servers import serve

BODY = {
    "model": "mock-assist-1",
    "stream": True,
    "messages": [{"role": "user", "content": (
        '<article index="1">Refunds reach your card within five business days.</article>\n'
        "Question: how long does a refund take")}],
}


@pytest.fixture(scope="module")
def model() -> Iterator[str]:
    with serve(create_mock_llm_app(MockLLMConfig(tokens_per_second=0,
                                                 first_token_delay_s=0.05))) as url:
        yield url


def timings(url: str, request_id: str) -> list[dict[str, object]]:
    answer = httpx.get(f"{url}/mock/timings", params={"requestId": request_id})
    assert answer.status_code == 200
    body = answer.json()
    assert body["clock"] == "monotonic"
    return list(body["timings"])


def test_a_completion_is_timed_under_its_request_id(model: str) -> None:
    before = time.monotonic()
    with httpx.stream("POST", f"{model}/v1/chat/completions", json=BODY,
                      headers={"X-Request-Id": "bench-1"}) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: {")]
    after = time.monotonic()
    content = [json.loads(line[6:])["choices"][0]["delta"].get("content") for line in lines]
    [record] = timings(model, "bench-1")
    assert record["tokens"] == len([c for c in content if c])
    received, first, last, ended = (float(record[k])  # type: ignore[arg-type]
                                    for k in ("received", "firstToken", "lastByte", "ended"))
    # One clock for every process on the host: the client's readings bracket the mock's,
    # up to its last byte. ``ended`` is noted once the server has sent that byte, which
    # may be after the client has read it: it follows ``last`` but not ``after``.
    assert before <= received <= first <= last <= after
    assert last <= ended
    # The configured delay is the mock's own time to first token, and it is counted.
    assert first - received >= 0.05
    assert record["clientLeft"] is False


def test_a_client_that_leaves_is_recorded(model: str) -> None:
    with httpx.stream("POST", f"{model}/v1/chat/completions", json=BODY,
                      headers={"X-Request-Id": "bench-2", "X-Mock-Fault": "stall_first"}
                      ) as response:
        assert response.status_code == 200
        next(response.iter_lines())  # the role chunk, then silence
    # The mock ends the record when it sees the disconnect; wait for that, bounded.
    deadline = time.monotonic() + 10
    while not (records := timings(model, "bench-2"))[0]["ended"]:
        assert time.monotonic() < deadline, "the mock never saw the client leave"
        time.sleep(0.01)
    assert records[0]["clientLeft"] is True
    assert records[0]["firstToken"] is None


def test_error_answers_are_timed_and_delete_forgets(model: str) -> None:
    response = httpx.post(f"{model}/v1/chat/completions", json=BODY,
                          headers={"X-Request-Id": "bench-3", "X-Mock-Fault": "http_500"})
    assert response.status_code == 500
    [record] = timings(model, "bench-3")
    assert record["ended"] is not None and record["tokens"] == 0
    assert httpx.delete(f"{model}/mock/timings").json()["timings"] == []
    assert timings(model, "bench-3") == []


def test_requests_without_an_id_are_kept_too(model: str) -> None:
    httpx.delete(f"{model}/mock/timings")
    httpx.post(f"{model}/v1/chat/completions", json={**BODY, "stream": False})
    records = httpx.get(f"{model}/mock/timings").json()["timings"]
    assert [r["requestId"] for r in records] == [None]
    assert records[0]["tokens"] == 1  # the whole answer in one body


@pytest.mark.anyio
async def test_a_token_is_timed_before_it_is_handed_to_the_server() -> None:
    """Regression: the time was read after the send returned, by which time the client
    could already have the bytes; the harness then measured less than nothing."""
    app = create_mock_llm_app(MockLLMConfig(tokens_per_second=0))
    handed: list[float] = []

    async def timed(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_timed(message: Message) -> None:
            body = message.get("body", b"").decode()
            if not handed and any(json.loads(line[6:])["choices"][0]["delta"].get("content")
                                  for line in body.splitlines()
                                  if line.startswith("data: {") and '"choices":[{' in line):
                handed.append(time.monotonic())
            await send(message)

        await app(scope, receive, send_timed)

    transport = httpx.ASGITransport(app=timed)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        answer = await client.post("/v1/chat/completions", json=BODY,
                                   headers={"X-Request-Id": "handed-1"})
        assert answer.status_code == 200
        record = (await client.get("/mock/timings",
                                   params={"requestId": "handed-1"})).json()["timings"][0]
    assert record["firstToken"] is not None and handed
    assert record["firstToken"] <= handed[0]


@pytest.mark.anyio
async def test_a_token_is_never_sent_before_it_is_due_on_the_monotonic_clock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the mock paced on the event loop's clock, which under uvloop is
    libuv's (whole milliseconds, read once a turn), and its timers may fire before the
    monotonic clock the timings are noted on reaches their time: a first token came
    49.8 ms after a 50 ms delay. A sleep that wakes 2 ms early stands in for that."""
    from server.devmode.mocks import llm_faults

    real_sleep = asyncio.sleep

    async def early(seconds: float) -> None:
        await real_sleep(max(0.0, seconds - 0.002))

    monkeypatch.setattr(asyncio, "sleep", early)  # what the mock paces with
    plan = llm_faults.CompletionPlan(
        completion_id="c", created=0, model="m", system_fingerprint="f", tokens=("a",),
        finish_reason="stop", prompt_tokens=1, include_usage=False, fault=None,
        token_interval_s=0.0, first_token_delay_s=0.05, fault_after_tokens=0)
    response = llm_faults.CompletionResponse(plan, llm_faults.StreamTracker(), stream=True,
                                             headers={})
    start = time.monotonic()
    await response._pace(start, 0)
    assert time.monotonic() - start >= 0.05
