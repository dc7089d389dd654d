"""The retrieval benchmark's generator and measurement logic, on tiny sizes (no timing limits)."""

from __future__ import annotations

from pathlib import Path

from bench.kbgen import generate_articles, generate_queries
from bench.retrieval import ITEM, TOP_K, measure
from server.kb.embedders import WordLlamaEmbedder
from server.kb.importer import read_file
from server.kb.store import KnowledgeBase
from server.pipeline.context import SearchQuery
from server.pipeline.retrieval import HybridSearch
from server.pipeline.terms import query_terms


def _contents(paths: list[Path], root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in paths}


def test_same_seed_same_bytes_other_seed_other_articles(tmp_path: Path) -> None:
    first = generate_articles(40, tmp_path / "a", seed=3)
    second = generate_articles(40, tmp_path / "b", seed=3)
    other = generate_articles(40, tmp_path / "c", seed=4)
    assert _contents(first, tmp_path / "a") == _contents(second, tmp_path / "b")
    assert _contents(first, tmp_path / "a") != _contents(other, tmp_path / "c")


def test_articles_parse_with_unique_ids_and_titles(tmp_path: Path) -> None:
    paths = generate_articles(60, tmp_path)
    assert len(paths) == 60
    articles = [article for path in paths for article in read_file(path).articles]
    assert len(articles) == 60
    assert len({a.id for a in articles}) == 60
    assert len({a.title for a in articles}) == 60
    for article in articles:
        assert article.url.startswith("https://")
        assert article.category
        blocks = article.body.split("\n\n")
        assert len(blocks) >= 4  # the heading, then 3-8 paragraphs or lists
        assert blocks[0] == f"## {article.title}"  # headings keep their mark in bodies


def test_queries_are_deterministic_and_mixed() -> None:
    queries = generate_queries(200, seed=5)
    assert queries == generate_queries(200, seed=5)
    assert queries != generate_queries(200, seed=6)
    without_terms = [q for q in queries if not query_terms(q)]
    assert 0 < len(without_terms) < len(queries) // 2


def test_measure_imports_and_embeds_every_article_and_reports_both_rows(
        tmp_path: Path) -> None:
    section = measure(50, 20, tmp_path, warmup=5)

    assert section.name == "retrieval"
    search, imported = section.rows
    assert (search.item, search.case, search.unit) == (ITEM, "retrieval, 50 articles", "ms")
    assert search.p50 is not None and search.p_tail is not None
    assert 0 < search.p50 <= search.p_tail
    assert f"top_k={TOP_K}" in search.note and "HybridSearch" in search.note
    assert (imported.case, imported.unit) == ("import, 50 articles", "articles/s")
    assert imported.value is not None and imported.value > 0
    assert "wordllama" in imported.note and "embed" in imported.note

    data = section.data
    assert data["articles_in_kb"] == 50
    assert data["embedder"] == WordLlamaEmbedder().name
    assert data["passages"] >= 50 and data["import"]["passages"] == data["passages"]
    assert data["import"]["added"] == 50 and not data["import"]["errors"]
    assert 0 < data["import"]["embed_s"] < data["import"]["store_s"] < data["import"]["seconds"]
    assert data["queries"] == 20 and len(data["search_samples_ms"]) == 20
    assert data["embed_ms"]["n"] == 20
    assert data["db_bytes"] > 0
    assert data["retrieve_ms"]["n"] == 20
    assert 0 < data["hit_rate"] <= 1

    # The store is left in the workdir, embedded: a generated title finds its article,
    # and by its vector alone too.
    first = read_file(sorted((tmp_path / "retrieval" / "articles").rglob("*.md"))[0])
    article = first.articles[0]
    kb = KnowledgeBase(tmp_path / "retrieval" / "kb.sqlite3", WordLlamaEmbedder())
    try:
        assert kb.count() == 50
        assert not kb.needs_reindex()
        search_ = HybridSearch(kb)
        query = SearchQuery.of(article.title)
        vector = search_.embed(query)
        assert vector is not None
        assert article.id in [s.id for s in search_.search(query, TOP_K, vector).sources]
        nearest = kb.hits({rowid: (0.0, 0.0) for rowid in kb.dense(vector, 3)})
        assert article.id in {hit.article_id for hit in nearest}
    finally:
        kb.close()


def test_measure_starts_from_a_fresh_store(tmp_path: Path) -> None:
    measure(30, 5, tmp_path, warmup=2)
    section = measure(20, 5, tmp_path, warmup=2)
    assert section.data["articles_in_kb"] == 20
