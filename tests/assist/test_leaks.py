"""Opening and dropping 2,500 streams leaves no task, socket, object or memory behind.

Each stream goes through the whole path: a real HTTP request to the panel, its
``suggestion`` event, a real model request to the mock model, whose first text
reaches the client as a ``delta`` before the model stalls (``stall_mid``); then
the client drops the connection mid-stream, with the model request open.
After a warm-up, the panel's event loop must hold no more tasks than before and
the process no more open sockets. Over the last 2,000 streams the interpreter's
allocated blocks (``sys.getallocatedblocks``: every live Python object, a float or
a short string included) may grow by at most ``BLOCK_TOLERANCE``, so anything a
stream leaves behind, down to a small tuple per stream, fails it; resident
memory may grow by at most ``MEMORY_TOLERANCE``, for what is allocated outside
Python's own allocator (5 KB a stream or more fails it).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from server.devmode.mocks.llm_timings import TimingLog
from tests.checks import metric_value, wait_until
from tests.factories import bearer, make_settings
from tests.servers import Running, running, serve

CONVERSATION = "5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
TOTAL = 2_500
WARM_UP = 500
CONCURRENCY = 25
MEMORY_TOLERANCE = 10 * 1024 * 1024
# One block a stream. Without a leak the count moves by about 1,000 either way over
# 2,000 streams (measured); keeping one tuple of a string and a float per stream
# (two blocks) added 4,400.
BLOCK_TOLERANCE = TOTAL - WARM_UP
TASK_TOLERANCE = 3  # uvicorn's own housekeeping may come and go
SOCKET_TOLERANCE = 5

pytestmark = pytest.mark.anyio


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_sockets() -> int:
    """Sockets this process holds (client, panel and mock model alike). Other descriptors
    are left out: the knowledge base opens a SQLite connection per worker thread, and
    anyio's idle worker threads come and go, so their count moves without any leak."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed since the listing
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def allocated_blocks(server: Running, model_timings: TimingLog) -> int:
    """Python's allocated blocks once garbage is collected, read on the server's loop so
    that nothing runs there meanwhile. The mock model shares this process and keeps a
    timing record per completion by design (its newest 100,000): those are let go first."""
    async def read() -> int:
        model_timings.clear()
        gc.collect()
        return sys.getallocatedblocks()
    return server.call(read())


async def count_tasks() -> int:
    return len(asyncio.all_tasks())


async def open_and_drop(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
    request = client.build_request(
        "POST", f"{url}/api/assist/stream", headers=headers,
        json={"conversationId": CONVERSATION, "trigger": "manual", "query": "refund timing"})
    response = await client.send(request, stream=True)
    try:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line == "event: delta":
                break  # the model is streaming: drop the connection mid-stream
    finally:
        await response.aclose()


async def run(count: int, server: Running, headers: dict[str, str]) -> None:
    # A fresh connection per stream, as browsers that drop a stream must open another.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        queue = iter(range(count))

        async def worker() -> None:
            for _ in queue:
                await open_and_drop(client, server.url, headers)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def settle(server: Running, app: object, tracker: object) -> None:
    """Until every dropped stream has given its slot back and its model request ended."""
    assert tracker.wait_idle(timeout=30)  # type: ignore[attr-defined]
    wait_until(lambda: not app.state.streams.active,  # type: ignore[attr-defined]
               timeout=30, message="a stream never gave its slot back")
    gc.collect()


def _drop_streams(sample_kb_path: Path) -> dict[str, Any]:
    """Open and drop ``TOTAL`` streams; what was left behind (run in a fresh process)."""
    llm = create_mock_llm_app(MockLLMConfig(fault="stall_mid", tokens_per_second=0))
    tracker = llm.state.streams
    with serve(llm) as model:
        settings = make_settings(kb_path=sample_kb_path, generator="openai",
                                 openai_base_url=f"{model}/v1", rate_limit_per_minute=0,
                                 first_token_timeout_s=60, stall_timeout_s=60,
                                 stream_limit_s=120,
                                 # This process also runs the test's own httpx client,
                                 # whose dropped responses leave reference cycles: with
                                 # full passes a minute apart, they would count here.
                                 gc_full_interval_s=0)
        app = create_app(settings)
        headers = bearer(CONVERSATION)
        with running(app) as server:
            asyncio.run(run(WARM_UP, server, headers))
            settle(server, app, tracker)
            tasks, sockets, memory = server.call(count_tasks()), open_sockets(), resident_bytes()
            blocks = allocated_blocks(server, llm.state.timings)

            asyncio.run(run(TOTAL - WARM_UP, server, headers))
            settle(server, app, tracker)
            grown = resident_bytes() - memory
            # Closed sockets and finished tasks go a moment after the streams end: a leak
            # never does, so wait (bounded) for the counts to come back.
            wait_until(lambda: server.call(count_tasks()) <= tasks + TASK_TOLERANCE)
            wait_until(lambda: open_sockets() <= sockets + SOCKET_TOLERANCE)
            more_blocks = allocated_blocks(server, llm.state.timings) - blocks
            metrics = httpx.get(f"{server.url}/metrics").text
    return {"more_blocks": more_blocks, "grown": grown, "model_calls": tracker.total,
            "metrics": metrics}


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
def test_dropped_streams_leave_nothing_behind(
        sample_kb_path: Path, anyio_backend: str) -> None:
    # Resident memory, sockets and allocated blocks are the whole process's. Measured in
    # this test worker, they also counted what threads left by earlier tests did
    # meanwhile (13.5 MB once, in CI): a fresh interpreter holds this test alone.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(_drop_streams, (sample_kb_path,))
    more_blocks, grown = result["more_blocks"], result["grown"]
    assert more_blocks <= BLOCK_TOLERANCE, f"{more_blocks} more blocks allocated"
    assert grown <= MEMORY_TOLERANCE, f"resident memory grew {grown / 1e6:.1f} MB"
    assert result["model_calls"] == TOTAL  # every stream really called the model
    metrics = result["metrics"]
    assert metric_value(metrics, "assist_active_streams") == 0
    assert metric_value(metrics, "assist_suggestions_total",
                        outcome="cancelled", trigger="manual") == TOTAL
