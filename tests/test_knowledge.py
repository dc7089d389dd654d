from __future__ import annotations

from pathlib import Path

import pytest

from server.knowledge import Article, KnowledgeBase, fts_query, query_terms


def _kb(tmp_path: Path) -> KnowledgeBase:
    kb = KnowledgeBase(tmp_path / "kb.db")
    kb.upsert([
        Article("a-refund", "Refund timing", "https://x.example/a",
                "Refunds reach your card in 5 to 7 business days after we receive the return."),
        Article("b-outage", "Network outages", "https://x.example/b",
                "During an outage you may see no signal. Check the outage map first."),
        Article("c-password", "Reset your password", "https://x.example/c",
                "Use the forgot password link to reset your password by email."),
    ])
    return kb


def test_upsert_counts_added_updated_unchanged(tmp_path: Path) -> None:
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
    assert kb.search("refund", 1)[0].body == "Refunds reach your card in 3 business days."


def test_search_ranks_by_bm25_with_stemming(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    hits = kb.search("when will my refunded money arrive?", 3)
    assert hits[0].id == "a-refund"
    assert hits[0].score > 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # "passwords" stems to the same term as "password"
    assert kb.search("passwords", 1)[0].id == "c-password"


def test_title_match_outranks_body_match(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    kb.upsert([Article("e-map", "Outage map", "", "A page about the map.")])
    assert kb.search("outage", 1)[0].id in {"e-map", "b-outage"}
    assert kb.search("map", 1)[0].id == "e-map"


@pytest.mark.parametrize("hostile", ['"', "AND OR NOT", "NEAR(a b)", "refund*", "title:x",
                                     "^refund", "(((", "'; DROP TABLE articles; --"])
def test_query_syntax_in_user_text_is_inert(tmp_path: Path, hostile: str) -> None:
    kb = _kb(tmp_path)
    kb.search(hostile, 3)  # must not raise
    assert kb.count() == 3


def test_empty_or_stopword_query_finds_nothing(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    assert kb.search("", 3) == []
    assert kb.search("what is the", 3) == []
    assert fts_query("and the of") is None


def test_query_terms_are_distinct_content_words() -> None:
    assert query_terms("My bill, my BILL and the refund!") == ["bill", "refund"]


def test_delete_and_get(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    assert kb.delete(["a-refund", "missing"]) == 1
    assert kb.get("a-refund") is None
    assert kb.search("refund", 3) == []
    got = kb.get("b-outage")
    assert got is not None and got.title == "Network outages"
    assert kb.ids() == {"b-outage", "c-password"}
