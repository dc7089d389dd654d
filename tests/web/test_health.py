"""The probes: /readyz reads the store without holding up the event loop."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from server.kb.store import KnowledgeBase
from tests.factories import make_settings
from tests.servers import serve

#: Only a bound for the case the test exists to catch (a blocked loop answers
#: /healthz only once the store is released): never reached when all is well.
RELEASE_AFTER_S = 20


def test_readyz_reads_the_store_off_the_event_loop(
        sample_kb_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release = threading.Event(), threading.Event()
    count = KnowledgeBase.count

    def slow_count(kb: KnowledgeBase) -> int:
        entered.set()
        release.wait()
        return count(kb)

    with serve(create_app(make_settings(kb_path=sample_kb_path))) as base:
        monkeypatch.setattr(KnowledgeBase, "count", slow_count)
        safety = threading.Timer(RELEASE_AFTER_S, release.set)
        safety.start()
        try:
            with ThreadPoolExecutor(1) as pool:
                ready = pool.submit(httpx.get, f"{base}/readyz", timeout=60)
                assert entered.wait(30), "/readyz never read the store"
                health = httpx.get(f"{base}/healthz", timeout=60)
                store_still_busy = not release.is_set()
                release.set()
                assert health.status_code == 200
                assert store_still_busy, "/healthz waited for the store: the loop was blocked"
                assert ready.result().status_code == 200
        finally:
            safety.cancel()
            release.set()
