"""The garbage collector's full passes: after each, none for an interval; young passes
as before."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from pathlib import Path

import pytest

from server.app import create_app
from server.web.collector import FullPassSpacing
from tests.asgi import asgi_client
from tests.checks import until
from tests.factories import make_settings

NEVER = 2**31 - 1


@pytest.mark.anyio
async def test_a_full_pass_holds_off_the_next_for_the_interval() -> None:
    before = gc.get_threshold()
    spacing = FullPassSpacing(0.05)
    task = asyncio.create_task(spacing.run())
    await asyncio.sleep(0)  # it has registered its callback
    gc.collect(1)  # a young pass: nothing held off
    assert gc.get_threshold() == before and spacing.passes == 0
    gc.collect()
    assert gc.get_threshold() == (*before[:2], NEVER) and spacing.passes == 1
    await until(lambda: gc.get_threshold() == before,
                message="full passes were never allowed again")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    gc.collect()  # stopped: CPython's own rule again
    assert gc.get_threshold() == before and spacing.passes == 1


def test_the_app_spaces_full_passes_while_it_runs(sample_kb_path: Path) -> None:
    before = gc.get_threshold()
    with asgi_client(create_app(make_settings(kb_path=sample_kb_path))) as client:
        assert client.get("/healthz").status_code == 200
        gc.collect()  # from any thread, as an automatic pass may run
        assert gc.get_threshold()[2] == NEVER
    assert gc.get_threshold() == before


def test_an_interval_of_zero_leaves_the_collector_to_cpython(sample_kb_path: Path) -> None:
    before = gc.get_threshold()
    with asgi_client(create_app(make_settings(kb_path=sample_kb_path,
                                              gc_full_interval_s=0))) as client:
        assert client.get("/healthz").status_code == 200
        gc.collect()
        assert gc.get_threshold() == before
