from __future__ import annotations

import asyncio
import contextvars

import pytest

from server.pipeline.eager import start_task

pytestmark = pytest.mark.anyio

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def test_the_first_step_runs_before_start_task_returns() -> None:
    steps: list[str] = []

    async def job() -> str:
        steps.append("first")
        await asyncio.sleep(0)
        steps.append("second")
        return "done"

    loop = asyncio.get_running_loop()
    loop.call_soon(steps.append, "queued before")
    task = start_task(job())
    assert steps == ["first"]  # create_task would have run nothing yet
    assert await task == "done"
    assert steps == ["first", "queued before", "second"]


async def test_the_first_step_runs_as_the_new_task_and_the_caller_stays_current() -> None:
    me = asyncio.current_task()
    seen: list[asyncio.Task[object] | None] = []

    async def job() -> None:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        seen.append(asyncio.current_task())

    task = start_task(job())
    assert asyncio.current_task() is me
    await task
    assert seen == [task, task]


async def test_the_task_has_a_context_of_its_own() -> None:
    VAR.set("caller")

    async def job() -> str:
        seen = VAR.get()
        VAR.set("task")
        await asyncio.sleep(0)
        return seen + "/" + VAR.get()

    task = start_task(job())
    assert VAR.get() == "caller"  # what the first step set stays in the task
    assert await task == "caller/task"


async def test_a_timeout_in_the_first_step_cancels_the_task_not_the_caller() -> None:
    async def job() -> str:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.Event().wait()
        except TimeoutError:
            return "timed out"
        return "not reached"

    task = start_task(job())
    assert await task == "timed out"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_task_done_in_its_first_step_has_its_result_or_its_error() -> None:
    async def result() -> int:
        return 7

    async def error() -> int:
        raise ValueError("broken")

    assert await start_task(result()) == 7
    with pytest.raises(ValueError, match="broken"):
        await start_task(error())


async def test_cancelled_before_its_next_step_the_coroutine_is_cancelled_where_it_waits(
) -> None:
    cleaned: list[str] = []

    async def job() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("finally")

    task = start_task(job())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]


async def test_cancelled_after_ending_in_its_first_step_it_is_not_stepped_again() -> None:
    # Regression: the cancellation was thrown into the finished coroutine (RuntimeError:
    # cannot reuse already awaited coroutine) instead of ending the task.
    async def fails() -> int:
        raise ValueError("ended early")

    async def returns() -> int:
        return 7

    failed = start_task(fails())
    failed.cancel()  # before the loop ran the task's own step
    with pytest.raises(ValueError, match="ended early"):
        await failed
    returned = start_task(returns())
    returned.cancel()  # too late, as for an eager task done already
    assert await returned == 7
