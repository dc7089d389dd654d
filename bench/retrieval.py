"""Benchmark item 4 (issues 7 and 14): knowledge-base import rate and retrieval latency.

Generates a help-center knowledge base (:mod:`bench.kbgen`), imports it the way
``assist-panel kb import`` does (``find_files`` + ``import_files`` into a fresh
``KnowledgeBase`` with the default settings' embedder, so every passage is
embedded as it is stored), then times the retrieval the panel runs for every
suggestion.

The panel's ``KnowledgeBaseRetriever.retrieve`` embeds the query (the local
embedder does so on the loop: well under a millisecond) and hands
``HybridSearch.search`` (BM25 and vector search, fused) to a worker thread. The
reported percentiles are of that work itself, ``HybridSearch.embed`` plus
``HybridSearch.search``, the store's and the embedder's own cost; the whole
``retrieve`` await, thread hop included, is measured too and kept in the
section's data. ``bench/run`` pins this section to one core.

Run: ``bench/run --only retrieval [--quick]``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import anyio

from bench.kbgen import generate_articles, generate_queries
from bench.report import Row, Section
from bench.stats import summary
from server.app import tuning_from
from server.kb.embedders import Embedder, Vectors, build_embedder
from server.kb.importer import find_files, import_files
from server.kb.store import Article, KnowledgeBase, UpsertCounts
from server.pipeline.context import SearchQuery
from server.pipeline.retrieval import HybridSearch, KnowledgeBaseRetriever
from server.settings import Settings

ITEM = "4 retrieval"
FULL = (10_000, 1_000)  # (articles, timed queries)
QUICK = (2_000, 300)
WARMUP = 50
# The panel's default top_k (ASSIST_RETRIEVAL_TOP_K), read from the settings model so
# the benchmark follows it if it changes.
TOP_K = int(Settings.model_fields["retrieval_top_k"].default)


class _TimedEmbedder:
    """The settings' embedder; only adds up the time spent embedding passages."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds = 0.0

    def embed(self, texts: Sequence[str]) -> Vectors:
        started = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.seconds += time.perf_counter() - started

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        return await self.inner.aembed(texts)


class _TimedKnowledgeBase(KnowledgeBase):
    """The real store; only adds up the time spent in ``upsert`` (the "store" half of import,
    embedding included).

    ``import_files`` calls ``upsert`` once per file, so the rest of its time is
    reading and parsing. Two ``perf_counter`` calls per file cost well under 0.1%.
    """

    store_s = 0.0

    def upsert(self, articles: Iterable[Article]) -> UpsertCounts:
        started = time.perf_counter()
        try:
            return super().upsert(articles)
        finally:
            self.store_s += time.perf_counter() - started


def _db_bytes(path: Path) -> int:
    """Size of the store on disk: the file plus any WAL and shared-memory files."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
               if p.exists())


def _embedder() -> Embedder | None:
    """The default settings' embedder (``ASSIST_EMBEDDER``: WordLlama unless changed)."""
    return build_embedder(Settings())


def _import(articles_dir: Path, db: Path) -> dict[str, Any]:
    """Import every file under ``articles_dir`` into a new store at ``db``, as the CLI does:
    each file's passages embedded as it is stored (the embedder's load included)."""
    inner = _embedder()
    timed = _TimedEmbedder(inner) if inner is not None else None
    store = _TimedKnowledgeBase(db, timed)
    store.reindex()  # an empty store: only records the passage version and the embedder
    started = time.perf_counter()
    files = find_files([articles_dir])
    summary_ = import_files(store, files)
    seconds = time.perf_counter() - started
    passages = store.passage_count()
    # Closing the only connection checkpoints the WAL into the file (timed apart: the
    # CLI pays it at exit, after printing its summary).
    started = time.perf_counter()
    store.close()
    close_s = time.perf_counter() - started
    embed_s = timed.seconds if timed is not None else 0.0
    return {
        "seconds": seconds, "files": len(files), "added": summary_.added,
        "errors": summary_.errors, "passages": passages,
        "embedder": inner.name if inner is not None else "none",
        "store_s": store.store_s, "embed_s": embed_s, "sqlite_s": store.store_s - embed_s,
        "parse_s": seconds - store.store_s, "close_s": close_s,
        "articles_per_s": summary_.added / seconds if seconds > 0 else 0.0,
    }


def _should_search(query: SearchQuery) -> bool:
    # As KnowledgeBaseRetriever.retrieve: small talk and word-less text are not searched.
    return not query.small_talk and bool(query.terms)


def _time_search(search: HybridSearch, queries: Sequence[str], warmup: Sequence[str]
                 ) -> tuple[list[float], list[float], list[int], int]:
    """Per-query milliseconds of ``search.embed(q)`` + ``search.search(q, TOP_K, vector)``
    (and of the embedding alone), each query's source count, and how many were confident.
    """
    for text in warmup:
        query = SearchQuery.of(text)
        search.search(query, TOP_K, search.embed(query) if _should_search(query) else None)
    samples: list[float] = []
    embed_samples: list[float] = []
    hits: list[int] = []
    confident = 0
    for text in queries:
        query = SearchQuery.of(text)
        started = time.perf_counter()
        vector = search.embed(query) if _should_search(query) else None
        embedded = time.perf_counter()
        found = search.search(query, TOP_K, vector)
        ended = time.perf_counter()
        samples.append((ended - started) * 1000)
        embed_samples.append((embedded - started) * 1000)
        hits.append(len(found.sources))
        confident += found.confident
    return samples, embed_samples, hits, confident


async def _time_retrieve(kb: KnowledgeBase, queries: Sequence[str],
                         warmup: Sequence[str]) -> list[float]:
    """Per-query milliseconds of the panel's whole ``retrieve`` await (thread hop included)."""
    retriever = KnowledgeBaseRetriever(kb, tuning_from(Settings()))
    for text in warmup:
        await retriever.retrieve(SearchQuery.of(text), TOP_K)
    samples: list[float] = []
    for text in queries:
        query = SearchQuery.of(text)
        started = time.perf_counter()
        await retriever.retrieve(query, TOP_K)
        samples.append((time.perf_counter() - started) * 1000)
    # Sequential awaits reuse anyio's one idle worker, so this closes the connection it
    # opened rather than leaving it to the thread's end.
    await anyio.to_thread.run_sync(kb.close)
    return samples


def measure(n_articles: int, n_queries: int, workdir: Path, *, warmup: int = WARMUP,
            seed: int = 7) -> Section:
    """Generate ``n_articles``, import them, time ``n_queries`` retrievals; the two rows.

    Works in ``workdir/retrieval`` (emptied first) and leaves the articles and the
    store there for inspection.
    """
    root = workdir / "retrieval"
    if root.exists():
        shutil.rmtree(root)
    articles_dir, db = root / "articles", root / "kb.sqlite3"

    started = time.perf_counter()
    paths = generate_articles(n_articles, articles_dir, seed=seed)
    generate_s = time.perf_counter() - started
    imported = _import(articles_dir, db)

    all_queries = generate_queries(warmup + n_queries, seed=seed)
    warm, queries = all_queries[:warmup], all_queries[warmup:]
    # A fresh store object, as the server opens its own: no connection left over from
    # import, the vector matrix loaded by the warm-up.
    kb = KnowledgeBase(db, _embedder())
    try:
        count, passages = kb.count(), kb.passage_count()
        search = HybridSearch(kb, tuning_from(Settings()))
        samples, embed_samples, hits, confident = _time_search(search, queries, warm)
    finally:
        kb.close()
    retrieve_samples = anyio.run(_time_retrieve, KnowledgeBase(db, _embedder()), queries, warm)

    timed = summary(samples)
    size = f"{n_articles:,} articles"
    seconds = imported["seconds"]
    rows = [
        Row(item=ITEM, case=f"retrieval, {size}", unit="ms",
            p50=_round(timed["p50"]), p_tail=_round(timed["p99"]),
            note=f"HybridSearch.embed + .search (BM25 + vectors over {passages:,} passages; "
                 f"the server searches in a worker thread); top_k={TOP_K}, "
                 f"{len(queries):,} queries, one core"),
        Row(item=ITEM, case=f"import, {size}", unit="articles/s",
            value=round(imported["articles_per_s"], 1),
            note=f"find_files + import_files as `kb import`, {imported['embedder']}: "
                 f"{seconds:.1f} s, {passages:,} passages; "
                 f"{imported['parse_s'] / seconds:.0%} read+parse, "
                 f"{imported['embed_s'] / seconds:.0%} embed, "
                 f"{imported['sqlite_s'] / seconds:.0%} store"),
    ]
    data: dict[str, Any] = {
        "articles": n_articles, "articles_in_kb": count, "passages": passages, "seed": seed,
        "top_k": TOP_K, "embedder": imported["embedder"],
        "corpus_bytes": sum(p.stat().st_size for p in paths), "db_bytes": _db_bytes(db),
        "generate_s": round(generate_s, 3),
        "import": {k: round(v, 3) if isinstance(v, float) else v for k, v in imported.items()},
        "queries": len(queries), "warmup": warmup,
        "hit_rate": sum(1 for h in hits if h) / len(hits) if hits else None,
        "mean_hits": sum(hits) / len(hits) if hits else None,
        "confident_rate": confident / len(hits) if hits else None,
        "search_ms": timed,
        "embed_ms": summary(embed_samples),
        "retrieve_ms": summary(retrieve_samples),
        "search_samples_ms": [round(s, 3) for s in samples],
    }
    return Section(name="retrieval", rows=rows, data=data)


def _round(value: float | int | None) -> float | None:
    return None if value is None else round(value, 3)


def run(quick: bool, workdir: Path) -> Section:
    """Benchmark item 4: 10,000 articles and 1,000 queries (quick: 2,000 and 300)."""
    n_articles, n_queries = QUICK if quick else FULL
    return measure(n_articles, n_queries, workdir)
