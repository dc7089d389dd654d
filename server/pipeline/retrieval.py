"""Retrieval: the knowledge-base articles a suggestion is grounded in, found before
generation, and whether any of them is relevant enough to answer from.

Hybrid: the store's BM25 over passages and the cosine of passage vectors with the
query's vector (the weighted mean of its parts' vectors) are each mapped onto 0..1
and added with weights; an article scores as its best passage. Below ``threshold``
the retrieval is not ``confident``: the panel then says so instead of answering
from unrelated text. Weights and threshold are calibrated on the answer benchmark
(docs/quality.md).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from operator import itemgetter
from typing import Protocol

import anyio.to_thread
import numpy as np

from server.errors import EmbeddingError, RetrievalError
from server.kb.embedders.base import Embedder, Vectors
from server.kb.lexicon import common_words
from server.kb.store import KnowledgeBase, PassageHit
from server.pipeline.context import SearchQuery
from server.pipeline.terms import stem

log = logging.getLogger("assist_panel.retrieval")

# Candidates each search contributes before fusion.
_CANDIDATES = 40
# BM25 is unbounded: b / (b + K) maps it onto 0..1, a half at K.
_BM25_HALF = 6.0
# Passages of one article passed on to generation, best first.
_PASSAGES_PER_SOURCE = 3
_SECOND_PASSAGE = 0.3
# Passages the BM25 query's words may hold in all: see HybridSearch._selective.
_POSTINGS_BUDGET = 2000
# Worker threads searching at once. A search is CPU work that mostly holds the GIL,
# so more threads add no speed; each one keeps its own SQLite connection and page
# cache, which anyio's default 40 threads multiplied under a burst of streams.
_SEARCH_THREADS = 4
# Distinct texts (passages, snippets, titles, URLs) kept to be shared between streams.
_SHARED_TEXTS = 4096
# A search that usually takes less than this runs on the event loop: handing it to a
# worker thread and back costs about 0.3 ms, as much as a search of a small store, and
# under load far more (the thread waits for the GIL while the loop relays: request ->
# suggestion at 100 streams 4.9 -> 2.8 ms with 2 ms here instead of 0.5). Longer
# searches (a large store) go to a thread, so the loop is never held much longer.
_INLINE_BELOW_S = 0.002
# How fast the usual search time follows the latest ones.
_RECENT = 0.1


@dataclass(frozen=True)
class Tuning:
    """Fusion weights and the confidence threshold (see docs/quality.md)."""

    dense_weight: float = 0.5
    lexical_weight: float = 0.5
    threshold: float = 0.35


@dataclass(frozen=True)
class Source:
    """A retrieved article: its best ``passages`` (best first) for the generator; the rest
    goes to clients. ``text`` is those passages joined, for prompts."""

    id: str
    title: str
    url: str
    snippet: str
    score: float
    passages: tuple[str, ...] = ()
    lexical: float = 0.0
    dense: float = 0.0
    # The top source's other passages, in reading order: an extractive answer may quote
    # the sentence beside the one that matched. Never put in a model's prompt.
    rest: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "\n\n".join(self.passages)

    def public(self) -> dict[str, object]:
        return {"id": self.id, "title": self.title, "url": self.url,
                "snippet": self.snippet, "score": self.score}


@dataclass(frozen=True)
class Retrieval:
    """The sources of a query, best first, and whether the best is worth answering from."""

    sources: list[Source] = field(default_factory=list)
    confident: bool = False
    # The query as searched (misspelt words corrected): generation works from it too.
    query: SearchQuery | None = None


class Retriever(Protocol):
    async def retrieve(self, query: SearchQuery, limit: int) -> Retrieval:
        """The best ``limit`` sources for ``query``, best first."""
        ...


class HybridSearch:
    """BM25 and vector search over one store, fused (blocking: run it off the loop)."""

    def __init__(self, kb: KnowledgeBase, tuning: Tuning | None = None, *,
                 whole_top: bool = True) -> None:
        """``whole_top``: the top source also brings its article's other passages
        (``Source.rest``), which an extractive answer may quote. A model's prompt never
        gets them: with the ``openai`` generator they are left out, and no stream keeps
        a copy of them while it waits on the model."""
        self.kb = kb
        self.tuning = tuning or Tuning()
        self.whole_top = whole_top
        self._texts: dict[str, str] = {}

    def search(self, query: SearchQuery, limit: int, vector: Vectors | None = None
               ) -> Retrieval:
        """The fused ranking for ``query``; ``vector`` is its embedding, if there is one."""
        if query.small_talk or not query.terms:
            return Retrieval(query=query)
        # One store for the whole search: a published snapshot may replace ``self.kb``
        # meanwhile, and rowids mean nothing from one file to another.
        kb = self.kb
        with kb.reading():
            query = self.correct(query, kb)
            lexical = kb.lexical(self._selective(query.words, kb), _CANDIDATES)
            dense = kb.dense(vector, _CANDIDATES) if vector is not None else {}
            scores = {rowid: (lexical.get(rowid, 0.0), dense.get(rowid, 0.0))
                      for rowid in lexical.keys() | dense.keys()}
            hits = kb.hits(scores)
            found = rank(hits, limit, self.tuning, dense_used=vector is not None)
            sources = found.sources
            rest: tuple[str, ...] = ()
            if sources and self.whole_top:
                top = sources[0]
                rest = tuple(text for text in map(_passage_text, kb.passages(top.id))
                             if text not in top.passages)
        return Retrieval([self._shared(source, rest if index == 0 else source.rest)
                          for index, source in enumerate(sources)], found.confident, query)

    def _shared(self, source: Source, rest: tuple[str, ...]) -> Source:
        """``source`` with ``rest``, made of one copy of each text for every stream that
        holds it.

        Each search reads its texts afresh from SQLite, and every open stream keeps its
        sources to the end (a few KB); the streams open at once mostly hold the same
        popular passages, so one copy serves them all.
        """
        texts = self._texts
        if len(texts) > _SHARED_TEXTS:
            texts.clear()  # a bound, not a policy: the next searches fill it again
        one = texts.setdefault
        # Built whole, not by dataclasses.replace: a tenth of a search's time went there.
        return Source(source.id, one(source.title, source.title), one(source.url, source.url),
                      one(source.snippet, source.snippet), source.score,
                      tuple(one(text, text) for text in source.passages), source.lexical,
                      source.dense, tuple(one(text, text) for text in rest))

    def _selective(self, words: list[str], kb: KnowledgeBase) -> list[str]:
        """``words`` without those that would cost FTS5 the most and tell it the least.

        BM25 sums a score for every passage that holds any query word before it can sort
        them (and keeps each word's postings in memory), so its time grows with the
        passages the words are in, and a word in much of the index adds next to nothing
        to BM25 (its idf is near zero). Rarest first, words
        are kept while their passages add up to ``_POSTINGS_BUDGET``; a small store keeps
        every word. The vectors still see the whole query.
        """
        vocabulary = kb.vocabulary()
        frequency = {word: vocabulary.counts.get(stem(word), 0) for word in words}
        kept: list[str] = []
        total = 0
        for word in sorted(words, key=frequency.__getitem__):
            # The rarest word goes in over budget, unless it is in so many passages
            # that BM25 would only echo the vectors, slowly.
            limit = 2 * _POSTINGS_BUDGET if not kept else _POSTINGS_BUDGET
            if total + frequency[word] > limit:
                break
            kept.append(word)
            total += frequency[word]
        return [word for word in words if word in kept]

    def correct(self, query: SearchQuery, kb: KnowledgeBase | None = None) -> SearchQuery:
        """``query`` with words the index never uses replaced by its nearest ones."""
        vocabulary = (kb or self.kb).vocabulary()
        # A common word is not a typo: "train" must not become "drain".
        common = common_words()
        terms: dict[str, float] = {}
        for term, weight in query.terms:
            fixed = None if term in common else vocabulary.correct(stem(term))
            # A correction is a guess: it counts a little less than the word typed.
            key, value = (fixed, weight * 0.9) if fixed else (term, weight)
            terms[key] = max(terms.get(key, 0.0), value)
        if terms.keys() == {t for t, _ in query.terms}:
            return query
        ordered = tuple(sorted(terms.items(), key=lambda item: -item[1]))
        return replace(query, terms=ordered)

    def embed(self, query: SearchQuery) -> Vectors | None:
        """The query's vector, blocking (None without an embedder or on failure)."""
        embedder = self.kb.embedder
        if embedder is None or not query.parts:
            return None
        try:
            return combine(query, embedder.embed([p.text for p in query.parts]))
        except EmbeddingError as exc:
            log.warning("query embedding failed, searching by words alone: %s", exc)
            return None


def combine(query: SearchQuery, vectors: Vectors) -> Vectors:
    """The weighted mean of the parts' vectors, unit length."""
    parts = query.parts
    if len(vectors) == 1:
        # A typed question: one part, whose unit vector a positive weight only scales, so
        # it is the mean's direction as it is (six array operations fewer, each of them
        # tens of microseconds on a core whose caches went cold: docs/performance.md).
        if parts[0].weight > 0:
            one: Vectors = vectors[0]
            return one
        mean = vectors[0] * np.float32(parts[0].weight)
    else:
        weights = np.array([p.weight for p in parts], dtype=np.float32)
        mean = (vectors * weights[:, None]).sum(axis=0)
    norm = np.sqrt(mean.dot(mean))  # np.linalg.norm's, without its layers
    unit: Vectors = mean / norm if norm else mean
    return unit


def rank(hits: list[PassageHit], limit: int, tuning: Tuning, *, dense_used: bool
         ) -> Retrieval:
    """Articles by their best passage's fused score, each with its best passages."""
    dense_weight = tuning.dense_weight if dense_used else 0.0
    lexical_weight = tuning.lexical_weight if dense_used else 1.0

    by_article: dict[str, list[tuple[float, PassageHit]]] = {}
    for hit in hits:
        lexical, dense = hit.lexical, hit.dense
        fused = (lexical_weight * (lexical / (lexical + _BM25_HALF) if lexical > 0 else 0.0)
                 + dense_weight * (dense if dense > 0.0 else 0.0))
        scored = by_article.get(hit.article_id)
        if scored is None:
            by_article[hit.article_id] = [(fused, hit)]
        else:
            scored.append((fused, hit))
    for scored in by_article.values():
        if len(scored) > 1:
            scored.sort(key=_first, reverse=True)  # stable, as a sort on -score is
    ranked = sorted(((_article_score(scored), scored) for scored in by_article.values()),
                    key=lambda pair: -pair[0])
    sources = []
    for article_score, scored in ranked[:limit]:
        best = scored[0][1]
        sources.append(Source(
            id=best.article_id, title=best.title, url=best.url,
            # The score the articles are ordered by, so clients see them in its order.
            snippet=_snippet(best), score=round(min(1.0, article_score), 4),
            passages=tuple(_passage_text(h) for _, h in scored[:_PASSAGES_PER_SOURCE]),
            lexical=round(best.lexical, 4), dense=round(best.dense, 4),
        ))
    # Confidence is the best passage's alone: the threshold is calibrated on it.
    confident = bool(ranked) and ranked[0][1][0][0] >= tuning.threshold
    return Retrieval(sources, confident)


_first = itemgetter(0)


def _article_score(scored: list[tuple[float, PassageHit]]) -> float:
    # The best passage, and a little of the next: an article that matches in two
    # sections is more likely the one than a sibling matching in one.
    second = scored[1][0] if len(scored) > 1 else 0.0
    return scored[0][0] + _SECOND_PASSAGE * second


def _passage_text(hit: PassageHit) -> str:
    return f"## {hit.heading}\n\n{hit.text}" if hit.heading else hit.text


def _snippet(hit: PassageHit, words: int = 32) -> str:
    # Split no further than needed: a word past ``words`` is the rest, whole.
    cut = hit.text.replace("**", "").split(None, words)
    return " ".join(cut[:words]) + ("…" if len(cut) > words else "")


class KnowledgeBaseRetriever:
    """Hybrid retrieval over the SQLite store: the query embedded on the loop (or by the
    embedding service); the searches on the loop while they are short (a small store),
    in a worker thread once they usually take ``inline_below_s`` or more."""

    def __init__(self, kb: KnowledgeBase, tuning: Tuning | None = None, *,
                 whole_top: bool = True, inline_below_s: float = _INLINE_BELOW_S,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.search = HybridSearch(kb, tuning, whole_top=whole_top)
        self.inline_below_s = inline_below_s
        self._clock = clock
        # The usual search time: every search is timed, wherever it ran, so a store
        # that grows (or a snapshot that replaces it) moves its searches to a thread.
        self.recent_s = 0.0
        # Made at the first search, on the server's loop (a limiter belongs to one).
        self._lane: anyio.CapacityLimiter | None = None

    async def retrieve(self, query: SearchQuery, limit: int) -> Retrieval:
        """The best ``limit`` sources for ``query``; ``RetrievalError`` when the store
        cannot be read."""
        try:
            return await self._retrieve(query, limit)
        except (sqlite3.Error, OSError) as exc:
            raise RetrievalError(
                f"the knowledge base could not be read: {type(exc).__name__}: {exc}") from exc

    async def _retrieve(self, query: SearchQuery, limit: int) -> Retrieval:
        if query.small_talk or not query.terms:
            return Retrieval(query=query)
        vector = await self._embed(query)
        if self.recent_s < self.inline_below_s:
            kb = self.search.kb
            with kb.reading():  # one read of the store's generation for both
                if kb.loaded():
                    return self._timed(query, limit, vector)
        if self._lane is None:
            self._lane = anyio.CapacityLimiter(_SEARCH_THREADS)
        return await anyio.to_thread.run_sync(self._timed, query, limit, vector,
                                              limiter=self._lane)

    def _timed(self, query: SearchQuery, limit: int, vector: Vectors | None) -> Retrieval:
        start = self._clock()
        try:
            return self.search.search(query, limit, vector)
        finally:
            took = self._clock() - start
            self.recent_s += _RECENT * (took - self.recent_s)

    async def _embed(self, query: SearchQuery) -> Vectors | None:
        embedder: Embedder | None = self.search.kb.embedder
        if embedder is None or not query.parts:
            return None
        try:
            vectors = await embedder.aembed([p.text for p in query.parts])
        except EmbeddingError as exc:
            # What failed and where, never the service's message: it may quote the query.
            log.warning("query embedding failed, searching by words alone: %s", exc.summary)
            return None
        return combine(query, vectors)
