"""Benchmark item 4 (issue 7): knowledge-base import rate and search latency.

Generates a help-center knowledge base (:mod:`bench.kbgen`), imports it the way
``assist-panel kb import`` does (``find_files`` + ``import_files`` into a fresh
``KnowledgeBase``), then times the search the panel runs for every suggestion.

The panel's ``KnowledgeBaseRetriever.retrieve`` hands ``KnowledgeBase.search``
to a worker thread (``anyio.to_thread.run_sync``). The reported percentiles are
of that sync call itself, the store's own cost; the whole ``retrieve`` await,
thread hop included, is measured too and kept in the section's data.

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
from server.kb_import import find_files, import_files
from server.knowledge import Article, KnowledgeBase, UpsertCounts
from server.retrieval import KnowledgeBaseRetriever
from server.settings import Settings

ITEM = "4 retrieval"
FULL = (10_000, 1_000)  # (articles, timed queries)
QUICK = (2_000, 300)
WARMUP = 50
# The panel's default top_k (ASSIST_RETRIEVAL_TOP_K), read from the settings model so
# the benchmark follows it if it changes.
TOP_K = int(Settings.model_fields["retrieval_top_k"].default)


class _TimedKnowledgeBase(KnowledgeBase):
    """The real store; only adds up the time spent in ``upsert`` (the "store" half of import).

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


def _import(articles_dir: Path, db: Path) -> dict[str, Any]:
    """Import every file under ``articles_dir`` into a new store at ``db``, as the CLI does."""
    store = _TimedKnowledgeBase(db)
    started = time.perf_counter()
    files = find_files([articles_dir])
    summary_ = import_files(store, files)
    seconds = time.perf_counter() - started
    # Closing the only connection checkpoints the WAL into the file (timed apart: the
    # CLI pays it at exit, after printing its summary).
    started = time.perf_counter()
    store.close()
    close_s = time.perf_counter() - started
    return {
        "seconds": seconds, "files": len(files), "added": summary_.added,
        "errors": summary_.errors, "store_s": store.store_s,
        "parse_s": seconds - store.store_s, "close_s": close_s,
        "articles_per_s": summary_.added / seconds if seconds > 0 else 0.0,
    }


def _time_search(kb: KnowledgeBase, queries: Sequence[str],
                 warmup: Sequence[str]) -> tuple[list[float], list[int]]:
    """Per-query milliseconds of ``kb.search(q, TOP_K)``, and each query's hit count."""
    for text in warmup:
        kb.search(text, TOP_K)
    samples: list[float] = []
    hits: list[int] = []
    for text in queries:
        started = time.perf_counter()
        found = kb.search(text, TOP_K)
        samples.append((time.perf_counter() - started) * 1000)
        hits.append(len(found))
    return samples, hits


async def _time_retrieve(kb: KnowledgeBase, queries: Sequence[str],
                         warmup: Sequence[str]) -> list[float]:
    """Per-query milliseconds of the panel's whole ``retrieve`` await (thread hop included)."""
    retriever = KnowledgeBaseRetriever(kb)
    for text in warmup:
        await retriever.retrieve(text, TOP_K)
    samples: list[float] = []
    for text in queries:
        started = time.perf_counter()
        await retriever.retrieve(text, TOP_K)
        samples.append((time.perf_counter() - started) * 1000)
    # Sequential awaits reuse anyio's one idle worker, so this closes the connection it
    # opened rather than leaving it to the thread's end.
    await anyio.to_thread.run_sync(kb.close)
    return samples


def measure(n_articles: int, n_queries: int, workdir: Path, *, warmup: int = WARMUP,
            seed: int = 7) -> Section:
    """Generate ``n_articles``, import them, time ``n_queries`` searches; the two rows.

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
    # A fresh store object, as the server opens its own: no connection left over from import.
    kb = KnowledgeBase(db)
    try:
        count = kb.count()
        samples, hits = _time_search(kb, queries, warm)
    finally:
        kb.close()
    retrieve_samples = anyio.run(_time_retrieve, KnowledgeBase(db), queries, warm)

    search = summary(samples)
    size = f"{n_articles:,} articles"
    rows = [
        Row(item=ITEM, case=f"search, {size}", unit="ms",
            p50=_round(search["p50"]), p_tail=_round(search["p99"]),
            note=f"sync KnowledgeBase.search (the server runs it in a worker thread); "
                 f"top_k={TOP_K}, {len(queries):,} queries"),
        Row(item=ITEM, case=f"import, {size}", unit="articles/s",
            value=round(imported["articles_per_s"], 1),
            note=f"find_files + import_files as `kb import`; "
                 f"{imported['parse_s'] / imported['seconds']:.0%} read+parse, "
                 f"{imported['store_s'] / imported['seconds']:.0%} store"),
    ]
    data: dict[str, Any] = {
        "articles": n_articles, "articles_in_kb": count, "seed": seed, "top_k": TOP_K,
        "corpus_bytes": sum(p.stat().st_size for p in paths), "db_bytes": _db_bytes(db),
        "generate_s": round(generate_s, 3),
        "import": {k: round(v, 3) if isinstance(v, float) else v for k, v in imported.items()},
        "queries": len(queries), "warmup": warmup,
        "hit_rate": sum(1 for h in hits if h) / len(hits) if hits else None,
        "mean_hits": sum(hits) / len(hits) if hits else None,
        "search_ms": search,
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
