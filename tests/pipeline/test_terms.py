from __future__ import annotations

import sqlite3

import pytest

from server.pipeline.terms import FILLER, STOPWORDS, is_small_talk, query_terms, stem, stems, words


def test_words_are_lowercased_with_apostrophes_dropped() -> None:
    assert words("Don't STOP now, it's 5G!") == ["dont", "stop", "now", "its", "5g"]


def test_words_split_on_punctuation_and_underscores_and_keep_letters_of_any_script() -> None:
    assert words("e-mail_address: café, naïve; 1-800-555") == [
        "e", "mail", "address", "café", "naïve", "1", "800", "555"]
    assert words("  ?! ... ") == []


def test_query_terms_keep_content_words_in_order_without_repeats() -> None:
    text = "Hi, I was told my refund, the refund for my phone, takes 5 days"
    assert query_terms(text) == ["refund", "phone", "takes", "5", "days"]


def test_query_terms_drop_stopwords_and_filler() -> None:
    text = "Well, basically I just wanted to know, like, about the eSIM thing, you know?"
    assert query_terms(text) == ["esim"]
    assert not set(query_terms(text)) & (STOPWORDS | FILLER)


def test_query_terms_drop_single_letters_but_keep_single_digits() -> None:
    assert query_terms("plan b costs x 5 dollars") == ["plan", "costs", "5", "dollars"]


def test_query_terms_of_pure_filler_are_empty() -> None:
    assert query_terms("okay yeah sure, hold on, let me see") == []


@pytest.mark.parametrize("family", [
    ["refund", "refunds", "refunded", "refunding"],
    ["activate", "activated", "activating", "activation"],
    ["charge", "charges", "charged", "charging"],
])
def test_stem_gives_one_stem_for_a_word_family(family: list[str]) -> None:
    assert len({stem(word) for word in family}) == 1


def test_stem_keeps_different_words_apart() -> None:
    assert stem("refund") != stem("fund")
    assert stem("phone") != stem("plan")


def test_stem_is_porter() -> None:
    # FTS5's porter tokenizer makes these stems: a stem here must be a term there.
    assert [stem(w) for w in ["refunds", "activation", "charges", "happily"]] == [
        "refund", "activ", "charg", "happili"]


def test_stems_cover_every_word_stopwords_included() -> None:
    assert stems("The refunds were refunded") == {"the", "refund", "were"}
    assert stems("") == set()


@pytest.mark.parametrize("text", [
    "okay, thanks",
    "can you hear me?",
    "hold on a sec",
    "perfect, thank you so much",
    "what?",
    "Sorry, what?",
    "thanks so much, have a nice day",
    "",
    "   ",
])
def test_small_talk(text: str) -> None:
    assert is_small_talk(text)


@pytest.mark.parametrize("text", [
    "Yeah, so what now?",
    "how long does that take?",
    "my phone was stolen",
    "teacher discount?",
    "why?",
    "okay, and the restocking fee?",
])
def test_not_small_talk(text: str) -> None:
    assert not is_small_talk(text)


def test_stems_are_the_terms_fts5s_porter_tokenizer_indexes() -> None:
    """Regression: Snowball stems two-letter words ("us" -> "u", "as" -> "a") where
    FTS5's porter tokenizer leaves words under 3 characters (and over 64) alone, so a
    query's "us" looked for a term the index never holds."""
    words = ["us", "as", "is", "tv", "id", "ok", "was", "gas", "ties", "eyes", "refunds",
             "charging", "x" * 64 + "ing", "activation"]
    with sqlite3.connect(":memory:") as conn:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61')")
        conn.executemany("INSERT INTO t VALUES (?)", [(w,) for w in words])
        conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'row')")
        indexed = {row[0] for row in conn.execute("SELECT term FROM v")}
    assert {stem(w) for w in words} == indexed
