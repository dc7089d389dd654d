from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.procs import Certificate
from server.kb.embedders import WordLlamaEmbedder
from server.kb.importer import find_files, import_files
from server.kb.store import KnowledgeBase
from server.paths import sample_kb_dir
from tests.redis_server import running_redis


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def playwrights_loop_put_aside(request: pytest.FixtureRequest) -> Iterator[None]:
    """Sync Playwright (the browser tests' session fixtures) marks its event loop as
    running in the main thread for as long as it lives, and neither an async test nor
    ``asyncio.run`` starts beside it ("Cannot run the event loop while another loop is
    running"). Browser tests run last (below), but ``--dist worksteal`` can still hand
    a worker that has run some of them a test of another folder: on 2026-12-06 sixteen
    tests of one worker failed so. Such a test runs with Playwright's loop put aside,
    and the loop is put back after it (Playwright's own calls need it). A test that
    leaves a loop of its own set as running fails, rather than the tests after it."""
    if "tests/browser/" in request.node.path.as_posix():
        yield
        return
    aside = asyncio._get_running_loop()
    asyncio._set_running_loop(None)
    try:
        yield
        left = asyncio._get_running_loop()
    finally:
        asyncio._set_running_loop(aside)
    if left is not None:
        pytest.fail(f"the test left {left!r} set as the running loop")


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A certificate authority made in memory and a certificate it issued for
    127.0.0.1, as the benchmarks make them."""
    return Certificate.make(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def embedder() -> WordLlamaEmbedder:
    """The embedded default embedder, loaded once."""
    return WordLlamaEmbedder()


@pytest.fixture(scope="session")
def sample_kb_path(tmp_path_factory: pytest.TempPathFactory, embedder: WordLlamaEmbedder
                   ) -> Path:
    """A knowledge-base file holding the shipped sample articles with their vectors
    (built once)."""
    path = tmp_path_factory.mktemp("kb") / "sample.db"
    kb = KnowledgeBase(path, embedder)
    summary = import_files(kb, find_files([sample_kb_dir()]))
    assert not summary.errors, summary.errors
    kb.close()
    return path


@pytest.fixture
def sample_kb(sample_kb_path: Path, embedder: WordLlamaEmbedder) -> Iterator[KnowledgeBase]:
    kb = KnowledgeBase(sample_kb_path, embedder)
    yield kb
    kb.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for this test process (each xdist worker has its own)."""
    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run browser tests last: sync Playwright keeps an event loop running in the main
    thread while its fixtures live, which async tests cannot share."""
    items.sort(key=lambda item: "tests/browser/" in item.path.as_posix())
