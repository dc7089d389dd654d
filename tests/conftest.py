from __future__ import annotations

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
