"""Retrieval: the knowledge-base articles a suggestion is grounded in, found before generation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import anyio.to_thread

from .knowledge import KnowledgeBase


@dataclass(frozen=True)
class Source:
    """A retrieved article. ``text`` is the full body for the generator; clients get the rest."""

    id: str
    title: str
    url: str
    snippet: str
    score: float
    text: str

    def public(self) -> dict[str, object]:
        return {"id": self.id, "title": self.title, "url": self.url,
                "snippet": self.snippet, "score": self.score}


class Retriever(Protocol):
    async def retrieve(self, text: str, limit: int) -> list[Source]:
        """The best ``limit`` sources for ``text``, best first."""
        ...


class KnowledgeBaseRetriever:
    """BM25 retrieval over the SQLite FTS5 store, run in a worker thread."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb

    async def retrieve(self, text: str, limit: int) -> list[Source]:
        hits = await anyio.to_thread.run_sync(self.kb.search, text, limit)
        return [Source(h.id, h.title, h.url, h.snippet, h.score, h.body) for h in hits]
