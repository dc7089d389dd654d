"""BM25 over the store's FTS5 index, scored in memory: FTS5's own ``bm25()`` scores
without its cost on every query.

FTS5 reads and scores every passage that holds any query word, on every query: 0.3
ms for five words over the sample's 255 passages, most of a suggestion's retrieval.
What BM25 needs only changes when the index is written: which passages hold a word
and how often in each column, and each passage's length. Those are read from the
index itself, an fts5vocab table of its instances and its docsize table, once per
write generation (a word's postings the first time a query uses it), so the scores
are FTS5's to rounding (a test compares them on every benchmark question).

A word FTS5 would have to parse itself (not plain ASCII letters and digits: accents
it folds, a quote that makes a phrase) sends the whole query to FTS5, as before.
"""

from __future__ import annotations

import heapq
import math
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np
import Stemmer
from numpy.typing import NDArray

# FTS5's bm25() constants (fts5_aux.c).
K1, B = 1.2, 0.75
# A word in more than half the passages gets this idf, as in FTS5.
_MIN_IDF = 1e-6
# Postings kept across queries, counted in passages (16 bytes each); past it the
# cache starts again. The sample's whole index is about 12,000.
_POSTINGS_KEPT = 500_000
# Up to this many postings in all, a query's scores are summed in Python (``_summed``).
_SUMMED_IN_PYTHON = 512
_STEMMED = (3, 64)

_INSTANCES = "passages_instances"


@dataclass
class Bm25Index:
    """One generation of the index: passage lengths, and postings loaded as needed."""

    generation: str
    weights: tuple[float, ...]  # per column: title, heading, text
    rowids: NDArray[np.int64]  # sorted
    lengths: NDArray[np.float64]  # tokens in each passage, all columns
    average: float
    _postings: dict[str, tuple[NDArray[np.int64], NDArray[np.float64]]] = field(
        default_factory=dict, repr=False)
    _kept: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, conn: sqlite3.Connection, generation: str,
             weights: Sequence[float]) -> Bm25Index:
        """The lengths of every passage of the index ``conn`` reads."""
        rows = conn.execute("SELECT id, sz FROM passages_fts_docsize ORDER BY id").fetchall()
        rowids = np.array([r[0] for r in rows], dtype=np.int64)
        lengths = np.array([sum(_varints(r[1])) for r in rows], dtype=np.float64)
        average = float(lengths.mean()) if len(lengths) else 0.0
        return cls(generation, tuple(weights), rowids, lengths, average)

    def search(self, conn: sqlite3.Connection, terms: Iterable[str], limit: int
               ) -> dict[int, float] | None:
        """The ``limit`` best passages for ``terms`` ORed: rowid -> BM25 (higher is
        better); None when a term is not a plain word (FTS5 must parse it)."""
        words = [term.lower() for term in terms if term]
        # [a-z0-9]+ once lowered, by str methods rather than a regular expression.
        if not all(word.isascii() and word.isalnum() for word in words):
            return None
        parts = [self._postings_of(conn, stem(word)) for word in words]
        parts = [part for part in parts if len(part[0])]
        if not parts:
            return {}
        if sum(len(part[0]) for part in parts) <= _SUMMED_IN_PYTHON:
            return _summed(parts, limit)
        # Each word is a phrase of its own, summed in query order, as FTS5 does.
        rows = np.concatenate([part[0] for part in parts])
        scores = np.concatenate([part[1] for part in parts])
        unique, inverse = np.unique(rows, return_inverse=True)
        totals = np.bincount(inverse, weights=scores)
        if len(totals) > limit:
            top = np.argpartition(-totals, limit - 1)[:limit]
        else:
            top = np.arange(len(totals))
        return dict(zip(unique[top].tolist(), totals[top].tolist(), strict=True))

    def _postings_of(self, conn: sqlite3.Connection, token: str
                     ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The passages holding ``token`` and what it adds to each one's score."""
        found = self._postings.get(token)
        if found is not None:
            return found
        counts: dict[int, float] = {}
        for doc, column, count in conn.execute(
                f"SELECT doc, col, count(*) FROM temp.{_INSTANCES} WHERE term = ?"
                " GROUP BY doc, col", (token,)):
            counts[doc] = counts.get(doc, 0.0) + self.weights[_COLUMNS[column]] * count
        rows = np.fromiter(counts, dtype=np.int64, count=len(counts))
        frequency = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        total = len(self.rowids)
        idf = math.log((total - len(rows) + 0.5) / (len(rows) + 0.5)) if total else 0.0
        idf = idf if idf > 0 else _MIN_IDF
        length = self.lengths[np.searchsorted(self.rowids, rows)] if len(rows) else frequency
        scores = idf * frequency * (K1 + 1.0) / (
            frequency + K1 * (1.0 - B + B * length / (self.average or 1.0)))
        found = (rows, scores)
        with self._lock:
            if self._kept + len(rows) > _POSTINGS_KEPT:
                self._postings.clear()  # a bound, not a policy
                self._kept = 0
            self._postings[token] = found
            self._kept += len(rows)
        return found


def _summed(parts: list[tuple[NDArray[np.int64], NDArray[np.float64]]], limit: int
            ) -> dict[int, float]:
    """``search``'s sums and top ``limit`` for a few hundred postings, in Python: the
    same additions in the same order, and cheaper than numpy's sort there, most of all
    on a core whose caches went cold while it idled (docs/performance.md)."""
    totals: dict[int, float] = {}
    get = totals.get
    for rows, scores in parts:
        for row, score in zip(rows.tolist(), scores.tolist(), strict=True):
            totals[row] = get(row, 0.0) + score
    if len(totals) > limit:
        return dict(heapq.nlargest(limit, totals.items(), key=itemgetter(1)))
    return totals


_COLUMNS = {"title": 0, "heading": 1, "text": 2}


def fts_query(terms: Iterable[str]) -> str | None:
    """An FTS5 MATCH expression that ORs ``terms`` (None if there are none).

    Each term is quoted, so user text can never inject FTS5 syntax.
    """
    quoted = ['"' + term.replace('"', '""') + '"' for term in terms if term]
    return " OR ".join(quoted) if quoted else None


def attach(conn: sqlite3.Connection) -> None:
    """Give ``conn`` the table of the index's instances the postings are read from."""
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{_INSTANCES}"
                 " USING fts5vocab(main, passages_fts, instance)")


def _varints(blob: bytes) -> list[int]:
    """SQLite varints, as FTS5 writes a passage's column sizes."""
    out: list[int] = []
    value = 0
    for byte in blob:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            out.append(value)
            value = 0
    return out


_local = threading.local()


def stem(word: str) -> str:
    """``word`` as FTS5's ``porter`` tokenizer indexes it (Snowball's Porter is the same
    algorithm; a stemmer object is not for sharing between threads)."""
    if not _STEMMED[0] <= len(word) <= _STEMMED[1]:
        return word  # FTS5 leaves a word shorter than 3 or longer than 64 as it is ("us")
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("porter")
    return str(stemmer.stemWord(word))
