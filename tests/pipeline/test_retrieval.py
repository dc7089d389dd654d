from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.errors import EmbeddingError, RetrievalError
from server.kb.embedders import Vectors
from server.kb.embedders.openai_embeddings import OpenAIEmbedder
from server.kb.store import Article, KnowledgeBase, PassageHit
from server.pipeline.context import SearchQuery, Utterance, build_context
from server.pipeline.retrieval import (
    HybridSearch,
    KnowledgeBaseRetriever,
    Tuning,
    _snippet,
    rank,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("question, expected", [
    ("How do I reset my password?", "accounts-passwords-reset-password"),
    ("how much is the restocking fee", "refunds-returns-restocking-fee"),
    ("my phone has no signal since this morning", "outages-no-signal-troubleshooting"),
    ("how do I set up esim on my new phone", "devices-activate-esim"),
    ("please delete my personal data", "privacy-request-delete-data"),
])
async def test_sample_questions_find_their_article_first(
        sample_kb: KnowledgeBase, question: str, expected: str) -> None:
    found = await KnowledgeBaseRetriever(sample_kb).retrieve(SearchQuery.of(question), 3)
    assert found.sources[0].id == expected
    assert found.confident


async def test_sources_carry_public_fields_and_their_best_passages(
        sample_kb: KnowledgeBase) -> None:
    found = await KnowledgeBaseRetriever(sample_kb).retrieve(
        SearchQuery.of("how much is the restocking fee for a phone"), 2)
    assert len(found.sources) == 2
    top = found.sources[0]
    assert set(top.public()) == {"id", "title", "url", "snippet", "score"}
    assert 1 <= len(top.passages) <= 3
    # Sections, not the whole article: the one that answers among them, with its heading.
    answering = [p for p in top.passages if "$35" in p]
    assert answering and answering[0].startswith("## How much")
    # The article's other sections ride along for the extractive answer, not for prompts.
    assert top.rest and not set(top.rest) & set(top.passages)
    assert top.lexical > 0 and top.dense > 0


async def test_without_whole_top_the_sources_are_the_same_and_carry_no_rest(
        sample_kb: KnowledgeBase) -> None:
    # For a server whose model gets only the best passages: a stream holds no more.
    query = SearchQuery.of("how much is the restocking fee for a phone")
    whole = await KnowledgeBaseRetriever(sample_kb).retrieve(query, 3)
    lean = await KnowledgeBaseRetriever(sample_kb, whole_top=False).retrieve(query, 3)
    assert [replace(s, rest=()) for s in whole.sources] == lean.sources
    assert whole.sources[0].rest and all(not s.rest for s in lean.sources)


async def test_an_earlier_turn_finds_the_topic_of_a_vague_question(
        sample_kb: KnowledgeBase) -> None:
    context = build_context(
        (Utterance("agent", "I can see the eSIM download failed three times on your phone"),
         Utterance("customer", "Yeah, so what now?")),
        trigger="utterance", query=None, max_utterances=6, max_chars=2000)
    found = await KnowledgeBaseRetriever(sample_kb).retrieve(context.search, 3)
    assert "devices-activate-esim" in [s.id for s in found.sources]


async def test_common_words_the_articles_never_use_are_not_corrected_as_typos(
        sample_kb: KnowledgeBase) -> None:
    # Regression: "train" was searched as "drain" and "night" as "right".
    query = HybridSearch(sample_kb).correct(
        SearchQuery.of("my phone was stollen on the train last night"))
    assert {"train", "night", "stolen"} <= set(query.words)
    assert not {"drain", "right", "stollen"} & set(query.words)


async def test_small_talk_and_wordless_queries_retrieve_nothing(
        sample_kb: KnowledgeBase) -> None:
    retriever = KnowledgeBaseRetriever(sample_kb)
    talk = build_context((Utterance("customer", "okay, thanks"),), trigger="utterance",
                         query=None, max_utterances=6, max_chars=2000)
    assert talk.search.small_talk
    assert (await retriever.retrieve(talk.search, 3)).sources == []
    assert (await retriever.retrieve(SearchQuery.of("what is the"), 3)).sources == []


async def test_below_the_threshold_retrieval_is_not_confident(sample_kb: KnowledgeBase) -> None:
    query = SearchQuery.of("do you sell garden furniture")
    low = await KnowledgeBaseRetriever(sample_kb, Tuning(threshold=0.99)).retrieve(query, 3)
    assert low.sources and not low.confident  # the nearest articles are still offered
    high = await KnowledgeBaseRetriever(sample_kb, Tuning(threshold=0.0)).retrieve(query, 3)
    assert high.confident


class _Broken:
    name = "broken/1"

    def embed(self, texts: Sequence[str]) -> Vectors:
        raise EmbeddingError("service down")

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        raise EmbeddingError("service down")


async def test_a_failing_embedder_falls_back_to_bm25(sample_kb: KnowledgeBase) -> None:
    sample_kb.embedder = _Broken()
    found = await KnowledgeBaseRetriever(sample_kb).retrieve(
        SearchQuery.of("reset my password"), 3)
    assert found.sources[0].id == "accounts-passwords-reset-password"
    assert found.sources[0].dense == 0.0
    assert HybridSearch(sample_kb).embed(SearchQuery.of("reset my password")) is None


async def test_a_failed_query_embedding_is_logged_without_the_services_message(
        sample_kb: KnowledgeBase, caplog: pytest.LogCaptureFixture) -> None:
    """The warning quoted the service's error message, which echoes what it was sent:
    the customer's (redacted) words. It says the status and where, no more."""
    def echoing(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)["input"][0]
        return httpx.Response(400, json={"error": {"message": f"cannot embed {sent!r}"}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(echoing)) as client:
        embedder = OpenAIEmbedder(
            base_url="https://user:pass-77@embed.example/v1?api-key=k-31", model="m",
            api_key="sk-embed-55", client=client)
        sample_kb.embedder = embedder
        found = await KnowledgeBaseRetriever(sample_kb).retrieve(
            SearchQuery.of("reset my password"), 3)
        # The kb commands still get the service's message, for their operator.
        with pytest.raises(EmbeddingError, match="cannot embed 'reset"):
            await embedder.aembed(["reset my password"])
    assert found.sources[0].id == "accounts-passwords-reset-password"
    [line] = [r.getMessage() for r in caplog.records if r.name == "assist_panel.retrieval"]
    assert line == ("query embedding failed, searching by words alone: "
                    "embedding service at https://embed.example/v1/embeddings answered 400")


def _hit(rowid: int, article: str, lexical: float, dense: float) -> PassageHit:
    return PassageHit(rowid, article, article.title(), "", 0, "", f"text {rowid}",
                      lexical=lexical, dense=dense)


def test_rank_scores_an_article_by_its_best_passage_and_keeps_its_passages_in_order() -> None:
    hits = [_hit(1, "a", 2.0, 0.1), _hit(2, "a", 12.0, 0.6), _hit(3, "b", 6.0, 0.5),
            _hit(4, "a", 0.0, 0.2)]
    found = rank(hits, 3, Tuning(dense_weight=0.5, lexical_weight=0.5, threshold=0.5),
                 dense_used=True)
    assert [s.id for s in found.sources] == ["a", "b"]
    assert found.sources[0].passages == ("text 2", "text 1", "text 4")
    # Best passage 0.5 * 12 / (12 + 6) + 0.5 * 0.6 = 0.6333, and 0.3 of the second
    # (0.5 * 2 / 8 + 0.5 * 0.1 = 0.175).
    assert found.sources[0].score == pytest.approx(0.6333 + 0.3 * 0.175, abs=1e-4)
    assert found.confident


def test_sources_come_in_the_order_of_their_scores() -> None:
    """Regression: articles were ordered by their best passage plus a little of their
    second, but each showed its best passage's score alone, so a client could see
    0.69, 0.63, 0.65."""
    hits = [_hit(1, "a", 0.0, 0.70), _hit(2, "b", 0.0, 0.60), _hit(3, "b", 0.0, 0.50),
            _hit(4, "c", 0.0, 0.64)]
    found = rank(hits, 3, Tuning(dense_weight=1.0, lexical_weight=0.0, threshold=0.0),
                 dense_used=True)
    assert [s.id for s in found.sources] == ["b", "a", "c"]
    scores = [s.score for s in found.sources]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(0.60 + 0.3 * 0.50)


def test_confidence_is_the_best_passage_s_score_against_the_threshold() -> None:
    # Two middling passages lift the article's score over the threshold; its best
    # passage is still under it, and the threshold is calibrated on that.
    hits = [_hit(1, "a", 0.0, 0.34), _hit(2, "a", 0.0, 0.30)]
    found = rank(hits, 3, Tuning(dense_weight=1.0, lexical_weight=0.0, threshold=0.35),
                 dense_used=True)
    assert found.sources[0].score > 0.35
    assert not found.confident


def test_rank_without_vectors_is_bm25_alone() -> None:
    found = rank([_hit(1, "a", 6.0, 0.9), _hit(2, "b", 7.0, 0.0)], 3, Tuning(),
                 dense_used=False)
    assert [s.id for s in found.sources] == ["b", "a"]


async def test_streams_that_find_the_same_passages_share_one_copy_of_their_text(
        sample_kb: KnowledgeBase) -> None:
    # Each open stream keeps its sources: thousands of copies of the same passages.
    retriever = KnowledgeBaseRetriever(sample_kb)
    query = SearchQuery.of("how much is the restocking fee for a phone")
    first, second = [await retriever.retrieve(query, 3) for _ in range(2)]
    assert first.sources == second.sources
    for a, b in zip(first.sources, second.sources, strict=True):
        assert a.title is b.title and a.snippet is b.snippet
        assert all(x is y for x, y in zip(a.passages + a.rest, b.passages + b.rest,
                                          strict=True))


class _Clock:
    """A clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _spied(kb: KnowledgeBase) -> tuple[KnowledgeBaseRetriever, list[int]]:
    """A retriever whose searches take 0.1 ms by its clock, and the threads they ran on."""
    threads: list[int] = []
    retriever = KnowledgeBaseRetriever(kb, clock=_Clock(0.0001))
    original = retriever.search.search

    def spy(query: SearchQuery, limit: int, vector: object = None) -> object:
        threads.append(threading.get_ident())
        return original(query, limit, vector)  # type: ignore[arg-type]

    retriever.search.search = spy  # type: ignore[assignment,method-assign]
    return retriever, threads


async def test_a_short_search_runs_on_the_loop_and_a_long_one_in_a_thread(
        sample_kb: KnowledgeBase) -> None:
    # Handing a 0.3 ms search of the sample to a thread and back cost as much again.
    sample_kb.warm()  # as the app does at start
    retriever, threads = _spied(sample_kb)
    query = SearchQuery.of("how long does a refund take")
    found = await retriever.retrieve(query, 3)
    assert found.sources and threads == [threading.get_ident()]
    # Searches that take 5 ms (a large store) move to a worker thread...
    retriever._clock = _Clock(0.005)
    while retriever.recent_s < retriever.inline_below_s:
        await retriever.retrieve(query, 3)
    await retriever.retrieve(query, 3)
    assert threads[-1] != threading.get_ident()
    # ...and back when they are short again.
    retriever._clock = _Clock(0.00001)
    while retriever.recent_s >= retriever.inline_below_s:
        await retriever.retrieve(query, 3)
    await retriever.retrieve(query, 3)
    assert threads[-1] == threading.get_ident()


async def test_the_first_search_after_a_write_reloads_in_a_thread(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path / "kb.db")
    kb.upsert([Article("a", "Refunds", "", "Refunds take 5 days.")])
    kb.warm()
    assert kb.loaded()
    retriever, threads = _spied(kb)
    query = SearchQuery.of("refund")
    await retriever.retrieve(query, 3)
    kb.upsert([Article("b", "Outages", "", "An outage map shows where.")])
    assert not kb.loaded()
    found = await retriever.retrieve(SearchQuery.of("outage map"), 3)
    assert [s.id for s in found.sources] == ["b"]
    assert threads[0] == threading.get_ident() != threads[1]
    assert kb.loaded()


async def test_a_search_on_the_loop_reads_the_store_s_generation_once(
        sample_kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each read is a transaction with the WAL's locks: the check that the store is
    # loaded and the search under it share one.
    sample_kb.warm()
    retriever = KnowledgeBaseRetriever(sample_kb)
    reads: list[str] = []
    original = sample_kb._read_generation

    def counted() -> str:
        reads.append(original())
        return reads[-1]

    monkeypatch.setattr(sample_kb, "_read_generation", counted)
    found = await retriever.retrieve(SearchQuery.of("how long does a refund take"), 3)
    assert found.sources and len(reads) == 1


@given(st.text(st.sampled_from("ab \n\t*\u00a0\u2003"), max_size=150), st.integers(1, 40))
def test_a_snippet_is_the_first_words_of_the_passage_without_bold_marks(text: str,
                                                                          words: int) -> None:
    # The snippet splits no further than it needs: the same as splitting the whole text.
    whole = " ".join(text.replace("**", "").split()).split()
    expected = " ".join(whole[:words]) + ("…" if len(whole) > words else "")
    hit = PassageHit(1, "a", "Title", "https://kb.example/a", 0, "", text)
    assert _snippet(hit, words) == expected


async def test_a_store_that_cannot_be_read_is_a_retrieval_error(tmp_path: Path) -> None:
    """Regression: at the open-file limit SQLite cannot open the store, and the stream
    logged a traceback; the environment's failure is now a ``RetrievalError`` that says
    what failed."""
    kb = KnowledgeBase(tmp_path / "kb.db")
    kb.upsert([Article("a", "Refunds", "", "Refunds take 5 days.")])
    (tmp_path / "kb.db").unlink()  # the file gone: a new connection finds no table
    kb.close()
    with pytest.raises(RetrievalError, match=r"could not be read: \w+Error"):
        await KnowledgeBaseRetriever(kb).retrieve(SearchQuery.of("refund"), 3)
