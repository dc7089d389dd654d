"""Retries of 429/503 before any text, inside the deadline; nothing else retried, nor a
used-up quota's 429."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.errors import UpstreamError
from server.pipeline.generators import Chunk, GenerationRequest, RetryingGenerator

pytestmark = pytest.mark.anyio


class Failing:
    """Fails with the given errors in turn, then streams "ok"."""

    name, model = "failing", "failing-1"

    def __init__(self, errors: list[UpstreamError], fail_after_text: bool = False) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.fail_after_text = fail_after_text

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self.calls += 1
        if self.fail_after_text:
            yield Chunk(text="partial")
        if self.errors:
            raise self.errors.pop(0)
        yield Chunk(text="ok")
        yield Chunk(stop_reason="stop")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def request(deadline: float | None = 10.0) -> GenerationRequest:
    return GenerationRequest("q", (), (), 64, deadline=deadline)


async def run(generator: RetryingGenerator, req: GenerationRequest) -> list[Chunk]:
    return [chunk async for chunk in generator.stream(req)]


def wrap(inner: Failing, clock: Clock, errors: list[int | None],
         retries: list[bool] | None = None) -> RetryingGenerator:
    return RetryingGenerator(inner, max_attempts=3, clock=clock, sleep=clock.sleep,
                             on_error=errors.append,
                             on_retry=(lambda: retries.append(True)) if retries is not None
                             else None)


@pytest.mark.parametrize("status", [429, 503])
async def test_429_and_503_are_retried_after_retry_after(status: int) -> None:
    clock, errors, retries = Clock(), list[int | None](), list[bool]()
    inner = Failing([UpstreamError("busy", status=status, retry_after=1.5)])
    counted: list[bool] = []
    req = GenerationRequest("q", (), (), 64, deadline=10.0,
                            on_retry=lambda: counted.append(True))
    chunks = await run(wrap(inner, clock, errors, retries), req)
    assert [c.text for c in chunks if c.text] == ["ok"]
    assert inner.calls == 2 and clock.slept == [1.5]
    assert errors == [status] and retries == [True] and counted == [True]


@pytest.mark.parametrize("status", [400, 401, 403, 500, None])
async def test_other_errors_are_never_retried(status: int | None) -> None:
    clock, errors = Clock(), list[int | None]()
    inner = Failing([UpstreamError("no", status=status)])
    with pytest.raises(UpstreamError):
        await run(wrap(inner, clock, errors), request())
    assert inner.calls == 1 and clock.slept == [] and errors == [status]


async def test_a_429_for_a_used_up_quota_is_not_retried() -> None:
    """OpenAI's ``insufficient_quota``: a 429 that no wait cures (and with no Retry-After)."""
    clock, errors = Clock(), list[int | None]()
    inner = Failing([UpstreamError("quota", status=429, code="insufficient_quota")])
    with pytest.raises(UpstreamError):
        await run(wrap(inner, clock, errors), request())
    assert inner.calls == 1 and clock.slept == [] and errors == [429]


async def test_a_retry_after_past_the_deadline_fails_at_once() -> None:
    clock, errors = Clock(), list[int | None]()
    inner = Failing([UpstreamError("busy", status=429, retry_after=30)])
    with pytest.raises(UpstreamError):
        await run(wrap(inner, clock, errors), request(deadline=8.0))
    assert inner.calls == 1 and clock.slept == []


async def test_attempts_are_bounded_and_backoff_grows_without_retry_after() -> None:
    clock, errors = Clock(), list[int | None]()
    inner = Failing([UpstreamError("busy", status=503) for _ in range(5)])
    with pytest.raises(UpstreamError):
        await run(wrap(inner, clock, errors), request(deadline=None))
    assert inner.calls == 3 and len(clock.slept) == 2
    assert 0.125 <= clock.slept[0] <= 0.25 and 0.25 <= clock.slept[1] <= 0.5


async def test_nothing_is_retried_once_text_has_streamed() -> None:
    clock, errors = Clock(), list[int | None]()
    inner = Failing([UpstreamError("busy", status=503)], fail_after_text=True)
    generator = wrap(inner, clock, errors)
    seen: list[str] = []
    with pytest.raises(UpstreamError):
        async for chunk in generator.stream(request()):
            seen.append(chunk.text)
    assert seen == ["partial"] and inner.calls == 1
