from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from server.kb import bm25
from server.kb.bm25 import Bm25Index, fts_query, stem
from server.kb.importer import find_files, import_files
from server.kb.store import Article, KnowledgeBase
from server.paths import sample_kb_dir
from server.pipeline.terms import query_terms

CASES = Path(__file__).resolve().parents[2] / "bench" / "quality" / "cases.jsonl"
WEIGHTS = (4.0, 2.0, 1.0)


def _fts5(kb: KnowledgeBase, terms: list[str], limit: int) -> dict[int, float]:
    """What FTS5's own bm25() says, with the store's column weights."""
    with sqlite3.connect(kb.path) as conn:
        rows = conn.execute(
            "SELECT rowid, bm25(passages_fts, ?, ?, ?) AS rank FROM passages_fts"
            " WHERE passages_fts MATCH ? ORDER BY rank LIMIT ?",
            (*WEIGHTS, fts_query(terms), limit)).fetchall()
    return {int(r[0]): -float(r[1]) for r in rows}


def _same(ours: dict[int, float], theirs: dict[int, float], why: str = "") -> None:
    assert ours.keys() == theirs.keys(), why
    for rowid, score in theirs.items():
        assert ours[rowid] == pytest.approx(score, rel=1e-9, abs=1e-15), (why, rowid)


def _questions() -> list[str]:
    texts: list[str] = []
    for line in CASES.read_text().splitlines():
        case = json.loads(line)
        texts.extend(turn["text"] for turn in case["utterances"])
        if case["query"]:
            texts.append(case["query"])
    return texts


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    kb = KnowledgeBase(tmp_path_factory.mktemp("bm25") / "kb.db")
    import_files(kb, find_files([sample_kb_dir()]))
    return kb


def test_scores_are_fts5s_own_on_every_benchmark_question(sample: KnowledgeBase) -> None:
    questions = _questions()
    assert len(questions) > 200
    compared = 0
    for text in questions:
        terms = query_terms(text)
        if not terms:
            continue
        # Every match (no ties cut at the limit).
        _same(sample.lexical(terms, 500), _fts5(sample, terms, 500), text)
        compared += 1
    assert compared > 200


@pytest.mark.parametrize("limit", [500, 40, 3])
def test_the_sums_in_python_and_in_numpy_are_the_same_to_the_bit(
        sample: KnowledgeBase, monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    """A few hundred postings are summed in Python, more by numpy: one answer."""
    def both(terms: list[str]) -> tuple[dict[int, float], dict[int, float]]:
        monkeypatch.setattr(bm25, "_SUMMED_IN_PYTHON", 10**9)
        small = sample.lexical(terms, limit)
        monkeypatch.setattr(bm25, "_SUMMED_IN_PYTHON", 0)
        return small, sample.lexical(terms, limit)

    compared = 0
    for text in _questions():
        terms = query_terms(text)
        if not terms:
            continue
        python, numpy = both(terms)
        if limit == 500:  # every match: the same scores exactly
            assert python == numpy, text
        else:  # the same best scores (a tie at the cut may keep either passage)
            assert sorted(python.values()) == sorted(numpy.values()), text
        compared += 1
    assert compared > 200


def test_the_best_passages_are_fts5s_best(sample: KnowledgeBase) -> None:
    terms = query_terms("how long does a refund take to reach my card")
    ours = sample.lexical(terms, 5)
    theirs = _fts5(sample, terms, 5)
    assert sorted(ours, key=ours.__getitem__) == sorted(theirs, key=theirs.__getitem__)


def test_a_word_fts5_must_parse_itself_goes_to_fts5(sample: KnowledgeBase) -> None:
    with sqlite3.connect(sample.path) as conn:
        conn.execute("CREATE VIRTUAL TABLE temp.passages_instances"
                     " USING fts5vocab(main, passages_fts, instance)")
        index = Bm25Index.load(conn, "test", WEIGHTS)
        assert index.search(conn, ["refund"], 3)
        for word in ("rèfund", "e-sim", '"refund'):
            assert index.search(conn, [word], 3) is None
    # ...and the store still answers it, from FTS5 ("rèfund" folds to "refund").
    _same(sample.lexical(["rèfund"], 3), _fts5(sample, ["rèfund"], 3))
    assert sample.lexical(["rèfund"], 3)


def test_a_write_is_searched_at_once(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path / "kb.db")
    kb.upsert([Article("a", "Refunds", "", "Refunds take 5 days.")])
    assert kb.lexical(["refund"], 3)
    assert not kb.lexical(["outage"], 3)
    kb.upsert([Article("b", "Outages", "", "An outage map shows where.")])
    _same(kb.lexical(["outage"], 3), _fts5(kb, ["outage"], 3))
    kb.upsert([Article("a", "Refunds", "", "Bank transfers take 10 days.")])
    _same(kb.lexical(["refund"], 3), _fts5(kb, ["refund"], 3))  # the title still has it
    assert not kb.lexical(["5"], 3)


def test_the_stemmer_is_fts5s_porter(sample: KnowledgeBase) -> None:
    with sqlite3.connect(sample.path) as conn:
        indexed = {row[0] for row in conn.execute("SELECT term FROM passages_vocab")}
    for word in ("refunded", "charges", "activation", "cancelling", "3rd", "eSIM", "us"):
        assert stem(word.lower()) in indexed, word
