"""A stream leaves no reference cycle through the panel's own code, however it ends.

A worker's full garbage-collector passes are held a minute apart
(``server/web/collector.py``) because its streams free what they hold by reference
counting when they end: a cycle through a stream's objects would wait up to that
minute, with everything it holds. Here the collector is off while streams complete,
fall back (the model silent, the model failing), are dropped by their client
mid-stream and are refused, so no cycle they make can be freed meanwhile; the one
collection after them keeps what it finds (``DEBUG_SAVEALL``), and none of it may be
the panel's: an object of a class from its packages, or a frame, coroutine or function
of their code. The mock model and the test's own HTTP client share the process, so
their objects are left out, dev mode's package (the mocks) with them.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import types
from pathlib import Path
from typing import Any

import httpx
import pytest

import server
from server.app import create_app
from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from tests.checks import wait_until
from tests.factories import bearer, make_settings
from tests.servers import Running, running, serve

CONVERSATION = "5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
EACH = 20  # streams of each kind
PANEL = Path(server.__file__).parent
MOCKS = PANEL / "devmode"


def _code_file(obj: Any) -> str | None:
    """The file of the code a frame, coroutine, generator or function runs, if any."""
    code = None
    if isinstance(obj, types.FrameType):
        code = obj.f_code
    elif isinstance(obj, types.CoroutineType):
        code = obj.cr_code
    elif isinstance(obj, (types.GeneratorType, types.AsyncGeneratorType)):
        code = obj.gi_code if isinstance(obj, types.GeneratorType) else obj.ag_code
    elif isinstance(obj, types.FunctionType):
        code = obj.__code__
    return code.co_filename if code is not None else None


def _ours(obj: Any) -> str | None:
    """What names ``obj`` as the panel's (not dev mode's), or None."""
    path = _code_file(obj)
    if path is not None:
        where = Path(path)
        if where.is_relative_to(PANEL) and not where.is_relative_to(MOCKS):
            return f"{type(obj).__name__} of {where.relative_to(PANEL)}"
        return None
    module = getattr(type(obj), "__module__", "") or ""
    if module.startswith("server.") and not module.startswith("server.devmode"):
        return f"{module}.{type(obj).__qualname__}"
    return None


async def _stream(client: httpx.AsyncClient, url: str, *, drop: bool = False) -> int:
    body = {"conversationId": CONVERSATION, "trigger": "manual", "query": "refund timing"}
    async with client.stream("POST", f"{url}/api/assist/stream", json=body,
                             headers=bearer(CONVERSATION)) as response:
        async for line in response.aiter_lines():
            if drop and line == "event: delta":
                break  # the client goes away mid-stream, the model request open
        return response.status_code


async def _streams(server: Running, *, drop: bool = False, bad: bool = False) -> list[int]:
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        if bad:
            return [(await client.post(f"{server.url}/api/assist/stream", content=b"{",
                                       headers=bearer(CONVERSATION))).status_code
                    for _ in range(EACH)]
        return list(await asyncio.gather(*(_stream(client, server.url, drop=drop)
                                           for _ in range(EACH))))


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
def test_streams_however_they_end_make_no_cycle_through_the_panel(
        sample_kb_path: Path, anyio_backend: str) -> None:
    llm = create_mock_llm_app(MockLLMConfig(tokens_per_second=0))
    switch, tracker = llm.state.fault_switch, llm.state.streams
    with serve(llm) as model:
        settings = make_settings(kb_path=sample_kb_path, generator="openai",
                                 openai_base_url=f"{model}/v1", rate_limit_per_minute=0,
                                 first_token_timeout_s=30, stall_timeout_s=0.3,
                                 stream_limit_s=60, gc_full_interval_s=0)
        app = create_app(settings)
        with running(app) as panel:
            asyncio.run(_streams(panel))  # warm: first-use caches are not cycles
            gc.collect()
            gc.disable()
            try:
                statuses = asyncio.run(_streams(panel))
                switch.set("stall_mid")
                statuses += asyncio.run(_streams(panel))  # the watchdog's fallback
                statuses += asyncio.run(_streams(panel, drop=True))
                switch.set("http_500")
                statuses += asyncio.run(_streams(panel))  # the model failing
                switch.clear()
                refused = asyncio.run(_streams(panel, bad=True))
                assert tracker.wait_idle(timeout=30)
                wait_until(lambda: not app.state.streams.active,
                           message="a stream never gave its slot back")
                gc.set_debug(gc.DEBUG_SAVEALL)
                gc.collect()
                found = collections.Counter(
                    what for obj in gc.garbage if (what := _ours(obj)) is not None)
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()
    assert statuses == [200] * (4 * EACH)
    assert refused == [400] * EACH
    assert not found, f"cycles through the panel's code: {found.most_common(10)}"
