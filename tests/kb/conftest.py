"""Fixtures shared by the knowledge-base tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.kb.store import KnowledgeBase


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KnowledgeBase]:
    """An empty store in a file of its own, closed after the test."""
    kb = KnowledgeBase(tmp_path / "kb.db")
    yield kb
    kb.close()
