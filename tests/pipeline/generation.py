"""Requests for the generators, and what their streams said: shared by the generator tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

from server.kb.store import KnowledgeBase
from server.pipeline.context import SearchQuery, Utterance
from server.pipeline.generators import Chunk, GenerationRequest
from server.pipeline.retrieval import KnowledgeBaseRetriever, Source


async def collect(stream: AsyncIterator[Chunk]) -> tuple[str, str | None]:
    """The text a stream said, and its stop reason."""
    text, stop = "", None
    async for chunk in stream:
        text += chunk.text
        if chunk.stop_reason:
            stop = chunk.stop_reason
    return text, stop


async def request(kb: KnowledgeBase, query: str, max_tokens: int = 512) -> GenerationRequest:
    """A request for ``query`` with the sources retrieval finds for it in ``kb``."""
    search = SearchQuery.of(query)
    retrieval = await KnowledgeBaseRetriever(kb).retrieve(search, 3)
    return GenerationRequest(query, (Utterance("customer", query),), tuple(retrieval.sources),
                             max_tokens, search=search)


def source(i: int, *passages: str) -> Source:
    """Source number ``i``, made of ``passages``."""
    return Source(f"id-{i}", f"Title {i}", f"https://e.example/{i}", "", 1.0,
                  passages=passages)
