from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from server.kb.bm25 import fts_query
from server.kb.embedders import Vectors, WordLlamaEmbedder, normalize
from server.kb.store import PASSAGES_VERSION, Article, KnowledgeBase

BODY = ("Refunds reach your card in 5 to 7 business days after we receive the return.\n\n"
        "## Refunds to a bank account\n\nBank transfers take up to 10 business days.")


def _kb(tmp_path: Path, embedder: WordLlamaEmbedder | None = None) -> KnowledgeBase:
    kb = KnowledgeBase(tmp_path / "kb.db", embedder)
    kb.upsert([
        Article("a-refund", "Refund timing", "https://x.example/a", BODY),
        Article("b-outage", "Network outages", "https://x.example/b",
                "During an outage you may see no signal. Check the outage map first."),
        Article("c-password", "Reset your password", "https://x.example/c",
                "Use the forgot password link to reset your password by email."),
    ])
    return kb


def _top(kb: KnowledgeBase, *terms: str) -> str:
    scores = kb.lexical(terms, 5)
    best = max(scores, key=scores.__getitem__)
    return next(h.article_id for h in kb.hits({best: (scores[best], 0.0)}))


def test_articles_are_stored_as_passages_with_their_headings(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    passages = kb.passages("a-refund")
    assert [(p.heading, p.position) for p in passages] == [
        ("", 0), ("Refunds to a bank account", 1)]
    assert passages[1].text == "Bank transfers take up to 10 business days."
    assert kb.passage_count() == 4


def test_upsert_counts_and_replaces_an_updated_articles_passages(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    counts = kb.upsert([
        Article("a-refund", "Refund timing", "https://x.example/a",
                "Refunds reach your card in 3 business days."),
        Article("b-outage", "Network outages", "https://x.example/b",
                "During an outage you may see no signal. Check the outage map first."),
        Article("d-new", "New", "https://x.example/d", "Something new."),
    ])
    assert (counts.added, counts.updated, counts.unchanged) == (1, 1, 1)
    assert kb.count() == 4
    assert [p.text for p in kb.passages("a-refund")] == [
        "Refunds reach your card in 3 business days."]
    assert kb.lexical(["bank"], 5) == {}  # the old section is gone from the index too


def test_bm25_over_passages_stems_and_weights_titles(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    assert _top(kb, "refunded") == "a-refund"
    assert _top(kb, "passwords") == "c-password"
    kb.upsert([Article("e-map", "Outage map", "", "A page about the map.")])
    assert _top(kb, "map") == "e-map"


@pytest.mark.parametrize("hostile", ['"', "AND OR NOT", "NEAR(a b)", "refund*", "title:x",
                                     "^refund", "(((", "'; DROP TABLE articles; --"])
def test_query_syntax_in_user_text_is_inert(tmp_path: Path, hostile: str) -> None:
    kb = _kb(tmp_path)
    kb.lexical(hostile.split(), 3)  # must not raise
    assert kb.count() == 3


def test_no_terms_find_nothing(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    assert kb.lexical([], 3) == {}
    assert fts_query([]) is None


def test_delete_removes_articles_and_their_passages(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    assert kb.delete(["a-refund", "missing"]) == 1
    assert kb.get("a-refund") is None
    assert kb.lexical(["refund"], 3) == {}
    assert kb.passages("a-refund") == []
    got = kb.get("b-outage")
    assert got is not None and got.title == "Network outages"
    assert kb.ids() == {"b-outage", "c-password"}


def test_vectors_are_stored_and_searched_by_cosine(tmp_path: Path,
                                                   embedder: WordLlamaEmbedder) -> None:
    kb = _kb(tmp_path, embedder)
    kb.reindex()
    query = embedder.embed(["my refund has not arrived on my card"])[0]
    nearest = kb.dense(query, 2)
    assert len(nearest) == 2
    hits = kb.hits({rowid: (0.0, score) for rowid, score in nearest.items()})
    assert max(hits, key=lambda h: h.dense).article_id == "a-refund"
    assert all(-1.0 <= h.dense <= 1.0001 for h in hits)


def test_a_write_from_another_store_object_is_seen_by_vector_search(
        tmp_path: Path, embedder: WordLlamaEmbedder) -> None:
    reader = _kb(tmp_path, embedder)
    query = embedder.embed(["dentist appointment reminder"])[0]
    before = reader.dense(query, 10)
    writer = KnowledgeBase(tmp_path / "kb.db", embedder)
    writer.upsert([Article("z-dentist", "Dentist appointment reminders", "",
                           "We text a reminder the day before a dentist appointment.")])
    after = reader.dense(query, 10)
    assert len(after) == len(before) + 1


class _Fake:
    """An embedder of another name: a change of model must re-embed the store."""

    def __init__(self, name: str, dim: int) -> None:
        self.name, self.dim, self.calls = name, dim, 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        rng = np.random.default_rng(len(texts))
        return normalize(rng.normal(size=(len(texts), self.dim)))

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        return self.embed(texts)


def test_the_store_records_its_embedder_and_reembeds_when_it_changes(tmp_path: Path) -> None:
    first = _Fake("fake/one", 8)
    kb = _kb(tmp_path, first)  # type: ignore[arg-type]
    kb.reindex()
    assert kb.index_state() == {"passages": PASSAGES_VERSION, "embedder": "fake/one"}
    assert not kb.needs_reindex()
    second = _Fake("fake/two", 16)
    reopened = KnowledgeBase(tmp_path / "kb.db", second)
    assert reopened.needs_reindex()
    progress: list[int] = []
    assert reopened.reindex(progress.append) == 3
    assert sum(progress) == 3 and second.calls >= 1
    assert reopened.index_state()["embedder"] == "fake/two"
    assert reopened.dense((np.ones(16) / 4).astype(np.float32), 10)  # 16-dim vectors now
    assert reopened.reindex() == 0  # up to date: nothing redone


def test_a_store_of_the_article_level_version_is_recut_on_reindex(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE articles (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL, url TEXT NOT NULL, category TEXT NOT NULL DEFAULT '',
            body TEXT NOT NULL, content_hash TEXT NOT NULL, updated_at REAL NOT NULL);
        CREATE VIRTUAL TABLE articles_fts USING fts5(title, body, content='articles',
            content_rowid='rowid');
        INSERT INTO articles VALUES (1, 'old', 'Old article', '', '', 'Old body text.', 'x', 0);
    """)
    conn.commit()
    conn.close()
    kb = KnowledgeBase(path)
    assert kb.needs_reindex()
    assert kb.reindex() == 1
    assert [p.text for p in kb.passages("old")] == ["Old body text."]
    assert kb.lexical(["body"], 3)
