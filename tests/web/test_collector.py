"""The garbage collector's full passes: none automatic while deferred, one each interval."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import weakref
from pathlib import Path

import pytest

from server.app import create_app
from server.web.collector import collect_fully_every, full_collections_deferred
from tests.asgi import asgi_client
from tests.checks import until
from tests.factories import make_settings


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_deferring_turns_the_automatic_full_passes_off_and_back_on() -> None:
    before = gc.get_threshold()
    with full_collections_deferred():
        assert gc.get_threshold()[:2] == before[:2]
        assert gc.get_threshold()[2] > 10**9
    assert gc.get_threshold() == before


def test_overlapping_deferrals_restore_the_threshold_after_the_last() -> None:
    before = gc.get_threshold()
    first, second = full_collections_deferred(), full_collections_deferred()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first app stops while the second runs
    assert gc.get_threshold()[2] > 10**9
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before


@pytest.mark.anyio
async def test_a_cycle_the_young_passes_missed_is_freed_by_the_next_full_pass(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="assist_panel")
    freed = asyncio.Event()
    with full_collections_deferred():
        cycle = _Cycle()
        weakref.finalize(cycle, freed.set)
        gc.collect(1)  # it survives the young generations: now in the oldest
        del cycle
        gc.collect(1)
        assert not freed.is_set()  # the young passes never look at it
        passes = asyncio.create_task(collect_fully_every(0.01))
        await until(freed.is_set, message="the full pass never freed the cycle")
        passes.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await passes
    assert any("a full garbage collection freed" in r.getMessage() for r in caplog.records)


def test_the_app_defers_full_passes_while_it_runs(sample_kb_path: Path) -> None:
    before = gc.get_threshold()
    with asgi_client(create_app(make_settings(kb_path=sample_kb_path))) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_threshold()[2] > 10**9
    assert gc.get_threshold() == before


def test_an_interval_of_zero_leaves_the_collector_to_cpython(sample_kb_path: Path) -> None:
    before = gc.get_threshold()
    with asgi_client(create_app(make_settings(kb_path=sample_kb_path,
                                              gc_full_interval_s=0))) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_threshold() == before
