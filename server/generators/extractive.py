"""The embedded ``extractive`` generator: the retrieved articles' best-matching sentences, cited.

No model needed. Sentences are ranked by BM25 against the query with the same
FTS5 tokenizer as the store (an in-memory index per request), then streamed
word by word in article order, each followed by ``[n]`` for its source.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio.to_thread

from ..knowledge import fts_query
from .base import Chunk, GenerationRequest

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_MIN_WORDS = 5


@dataclass(frozen=True)
class _Sentence:
    source: int  # 1-based index into the request's sources
    position: int
    text: str


def split_sentences(text: str) -> list[str]:
    """Sentences of a plain-text body; list items and short headings stand alone."""
    sentences: list[str] = []
    for block in re.split(r"\n\s*\n|\n(?=- )", text):
        block = " ".join(block.split())
        if block.startswith("- "):
            block = block[2:]
        sentences.extend(s for s in _SENTENCE_END.split(block) if s)
    return sentences


def best_sentences(request: GenerationRequest, count: int) -> list[_Sentence]:
    """The ``count`` sentences of the sources that best match the query, in reading order."""
    match = fts_query(request.query)
    if match is None or not request.sources:
        return []
    candidates = [
        _Sentence(index, position, sentence)
        for index, source in enumerate(request.sources, start=1)
        for position, sentence in enumerate(split_sentences(source.text))
        if len(sentence.split()) >= _MIN_WORDS
    ]
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE s USING fts5(text, tokenize='porter unicode61')")
        conn.executemany("INSERT INTO s(rowid, text) VALUES (?, ?)",
                         [(i, c.text) for i, c in enumerate(candidates)])
        rows = conn.execute(
            "SELECT rowid FROM s WHERE s MATCH ? ORDER BY bm25(s) LIMIT ?", (match, count)
        ).fetchall()
    finally:
        conn.close()
    chosen = [candidates[row[0]] for row in rows]
    return sorted(chosen, key=lambda s: (s.source, s.position))


class ExtractiveGenerator:
    """Streams the best-matching retrieved sentences, each cited as ``[n]``."""

    name = "extractive"
    model = "extractive-bm25"

    def __init__(self, *, sentences: int = 3, token_delay_s: float = 0.015) -> None:
        self.sentences = sentences
        self.token_delay_s = token_delay_s

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        chosen = await anyio.to_thread.run_sync(best_sentences, request, self.sentences)
        answer = " ".join(f"{s.text} [{s.source}]" for s in chosen)
        tokens = re.findall(r"\s*\S+", answer)
        for count, token in enumerate(tokens, start=1):
            if count > request.max_tokens:
                yield Chunk(stop_reason="max_tokens")
                return
            yield Chunk(text=token)
            # Paces the stream like a model would, so the page shows it growing.
            if self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
        yield Chunk(stop_reason="stop")
