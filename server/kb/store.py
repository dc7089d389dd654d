"""The knowledge-base store: articles cut into passages in SQLite, an FTS5 index of
the passages (BM25) and, with an embedder, each passage's vector in the same file.

One file, stdlib ``sqlite3``. Reads open one connection per thread so the store can be
searched from a worker thread pool while an import writes. BM25 is FTS5's, scored in
memory from the index's own postings (``bm25``). The vectors are float32
BLOBs, searched as one numpy matrix (``vectors``). Both are loaded once per write
generation (reloaded when a write bumps it). Ranking the two kinds of hits together
is ``retrieval``'s job.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar

import numpy as np

from server.errors import EmbeddingError, StoreUnreadable
from server.kb.article import Article as Article  # re-exported: callers import it from here
from server.kb.bm25 import Bm25Index, attach, fts_query
from server.kb.embedders.base import Embedder, Vectors
from server.kb.lexicon import common_words
from server.kb.passages import Passage, passage_document, split_passages
from server.kb.spelling import Vocabulary
from server.kb.vectors import VectorMatrix

log = logging.getLogger("assist_panel.knowledge")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    url TEXT NOT NULL,
    category TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS passages (
    rowid INTEGER PRIMARY KEY,
    article_rowid INTEGER NOT NULL,
    position INTEGER NOT NULL,
    heading TEXT NOT NULL,
    text TEXT NOT NULL,
    vector BLOB
);
CREATE INDEX IF NOT EXISTS passages_by_article ON passages(article_rowid);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5(
    title, heading, text, tokenize='porter unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_vocab USING fts5vocab(passages_fts, 'row');
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Article-level index of earlier versions: passages replace it.
DROP TRIGGER IF EXISTS articles_ai;
DROP TRIGGER IF EXISTS articles_ad;
DROP TRIGGER IF EXISTS articles_au;
DROP TABLE IF EXISTS articles_fts;
"""

# Bumped when passage cutting changes: stores built before are re-cut on open.
PASSAGES_VERSION = "1"

# BM25 column weights: a match in the title or the section heading counts more.
_TITLE_WEIGHT, _HEADING_WEIGHT, _TEXT_WEIGHT = 4.0, 2.0, 1.0
_EMBED_BATCH = 256


class _Generational(Protocol):
    @property
    def generation(self) -> str: ...


_Part = TypeVar("_Part", bound=_Generational)
# Passages kept in memory for ``hits`` (rowid -> its row), per write generation.
_ROWS_KEPT = 4096


class PassageHit(NamedTuple):
    """A passage found by a search, with both of its scores (0 where a search missed it).

    ``lexical`` is FTS5's BM25 (higher is better); ``dense`` the cosine similarity of
    the passage's vector with the query's. A tuple: a search makes dozens of them.
    """

    rowid: int
    article_id: str
    title: str
    url: str
    position: int
    heading: str
    text: str
    lexical: float = 0.0
    dense: float = 0.0


@dataclass(frozen=True)
class UpsertCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0


ProgressFn = Callable[[int], None]


class KnowledgeBase:
    """A knowledge-base file: articles, their passages, a BM25 index and (with an
    ``embedder``) the passages' vectors. Safe to share between threads.

    ``snapshot``: the file is a published snapshot (``server/kb/snapshots.py``), which
    nobody writes again: opened read-only and immutable (no journal, no locks), and
    never changed here.
    """

    def __init__(self, path: Path | str, embedder: Embedder | None = None, *,
                 snapshot: bool = False) -> None:
        self.path = Path(path)
        self.embedder = embedder
        self.snapshot = snapshot
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._matrix: VectorMatrix | None = None
        self._vocabulary: Vocabulary | None = None
        self._bm25_index: Bm25Index | None = None
        self._rows: tuple[str, dict[int, tuple[int, str, str, str, int, str, str]]] = ("", {})
        self._fixed_generation: str | None = None
        if not snapshot:
            try:
                with self._connection() as conn:
                    conn.executescript(_SCHEMA)
            except sqlite3.DatabaseError as exc:
                self.close()
                raise StoreUnreadable(
                    f"{self.path} is not a knowledge base SQLite can read ({exc}): restore "
                    "it from a copy, or move it away and import again") from None

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.snapshot:
                uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
                conn = sqlite3.connect(uri, uri=True)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            attach(conn)
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        with conn:  # commits on success, rolls back on error
            yield conn

    def close(self) -> None:
        """Close this thread's connection (other threads' close when they end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- writing ---------------------------------------------------------------------

    def upsert(self, articles: Iterable[Article]) -> UpsertCounts:
        """Insert new articles and update changed ones (passages and vectors too), in one
        transaction. An id given twice is stored once, as its last version."""
        added = updated = unchanged = 0
        now = time.time()
        changed: list[tuple[int, Article]] = []
        # One version per id: both would be written under one row, their passages mixed.
        latest = {article.id: article for article in articles}
        with self._write_lock, self._connection() as conn:
            for article in latest.values():
                digest = article.content_hash
                row = conn.execute(
                    "SELECT rowid, content_hash FROM articles WHERE id = ?", (article.id,)
                ).fetchone()
                if row is None:
                    cursor = conn.execute(
                        "INSERT INTO articles (id, title, url, category, body, content_hash,"
                        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (article.id, article.title, article.url, article.category,
                         article.body, digest, now),
                    )
                    changed.append((int(cursor.lastrowid or 0), article))
                    added += 1
                elif row[1] != digest:
                    conn.execute(
                        "UPDATE articles SET title = ?, url = ?, category = ?, body = ?,"
                        " content_hash = ?, updated_at = ? WHERE rowid = ?",
                        (article.title, article.url, article.category, article.body,
                         digest, now, row[0]),
                    )
                    changed.append((int(row[0]), article))
                    updated += 1
                else:
                    unchanged += 1
            if changed:
                self._write_passages(conn, changed)
                self._bump(conn)
        return UpsertCounts(added, updated, unchanged)

    def _write_passages(self, conn: sqlite3.Connection,
                        articles: list[tuple[int, Article]]) -> None:
        rows: list[tuple[int, str, Passage]] = []
        for article_rowid, article in articles:
            self._drop_passages(conn, article_rowid)
            rows.extend((article_rowid, article.title, p) for p in split_passages(article.body))
        vectors = self._embed([passage_document(title, p) for _, title, p in rows])
        for index, (article_rowid, title, passage) in enumerate(rows):
            blob = vectors[index].tobytes() if vectors is not None else None
            cursor = conn.execute(
                "INSERT INTO passages (article_rowid, position, heading, text, vector)"
                " VALUES (?, ?, ?, ?, ?)",
                (article_rowid, passage.position, passage.heading, passage.text, blob),
            )
            conn.execute(
                "INSERT INTO passages_fts (rowid, title, heading, text) VALUES (?, ?, ?, ?)",
                (cursor.lastrowid, title, passage.heading, passage.text),
            )

    def _embed(self, texts: list[str]) -> Vectors | None:
        if self.embedder is None or not texts:
            return None
        parts = [self.embedder.embed(texts[i:i + _EMBED_BATCH])
                 for i in range(0, len(texts), _EMBED_BATCH)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    @staticmethod
    def _drop_passages(conn: sqlite3.Connection, article_rowid: int) -> None:
        conn.execute(
            "DELETE FROM passages_fts WHERE rowid IN"
            " (SELECT rowid FROM passages WHERE article_rowid = ?)", (article_rowid,))
        conn.execute("DELETE FROM passages WHERE article_rowid = ?", (article_rowid,))

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> None:
        # Readers in this and other processes reload their vector matrix when it changes.
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('generation', '1') ON CONFLICT(key)"
            " DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)")

    def delete(self, ids: Iterable[str]) -> int:
        """Remove articles (and their passages) by id; returns how many existed."""
        removed = 0
        with self._write_lock, self._connection() as conn:
            for article_id in ids:
                row = conn.execute("SELECT rowid FROM articles WHERE id = ?",
                                   (article_id,)).fetchone()
                if row is None:
                    continue
                self._drop_passages(conn, row[0])
                conn.execute("DELETE FROM articles WHERE rowid = ?", (row[0],))
                removed += 1
            if removed:
                self._bump(conn)
        return removed

    def index_state(self) -> dict[str, str]:
        """What built the index: ``passages`` (cutting version) and ``embedder`` names."""
        with self._connection() as conn:
            return dict(conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('passages', 'embedder')"))

    def needs_reindex(self) -> bool:
        """True when passages were cut by another version or vectors made by another
        embedder than this store's (see ``reindex``)."""
        state = self.index_state()
        wanted = self.embedder.name if self.embedder is not None else ""
        if not self.count():
            return False
        return state.get("passages") != PASSAGES_VERSION or state.get("embedder", "") != wanted

    def reindex(self, on_progress: ProgressFn | None = None, *, force: bool = False) -> int:
        """Re-cut and re-embed every article when the index is stale; returns how many.

        Run by imports, syncs and server start-up, so a store made by an earlier
        version or another embedding model is brought up to date once.
        """
        if not force and not self.needs_reindex():
            self._mark_index()
            return 0
        with self._connection() as conn:
            rows = conn.execute("SELECT rowid, id, title, url, body, category FROM articles"
                                " ORDER BY rowid").fetchall()
        for start in range(0, len(rows), _EMBED_BATCH):
            batch = rows[start:start + _EMBED_BATCH]
            with self._write_lock, self._connection() as conn:
                self._write_passages(conn, [(r[0], Article(*r[1:])) for r in batch])
                self._bump(conn)
            if on_progress is not None:
                on_progress(len(batch))
        self._mark_index()
        return len(rows)

    def _mark_index(self) -> None:
        wanted = self.embedder.name if self.embedder is not None else ""
        with self._write_lock, self._connection() as conn:
            conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                             [("passages", PASSAGES_VERSION), ("embedder", wanted)])

    # -- reading ---------------------------------------------------------------------

    def get(self, article_id: str) -> Article | None:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT id, title, url, body, category FROM articles WHERE id = ?",
                (article_id,),
            ).fetchone()
        return Article(*row) if row else None

    def ids(self) -> set[str]:
        with self._connection() as conn:
            return {row[0] for row in conn.execute("SELECT id FROM articles")}

    def count(self) -> int:
        with self._connection() as conn:
            return int(conn.execute("SELECT count(*) FROM articles").fetchone()[0])

    def passage_count(self) -> int:
        with self._connection() as conn:
            return int(conn.execute("SELECT count(*) FROM passages").fetchone()[0])

    def passages(self, article_id: str) -> list[PassageHit]:
        """An article's passages in reading order."""
        with self._connection() as conn:
            rows = conn.execute(
                f"{_HIT_SELECT} WHERE a.id = ? ORDER BY p.position", (article_id,)).fetchall()
        return [PassageHit(*row) for row in rows]

    def lexical(self, terms: Iterable[str], limit: int) -> dict[int, float]:
        """The ``limit`` passages that best match ``terms`` by BM25: rowid -> score."""
        terms = list(terms)
        match = fts_query(terms)
        if match is None:
            return {}
        index = self._bm25()
        with self._connection() as conn:
            found = index.search(conn, terms, limit)
            if found is not None:
                return found
            rows = conn.execute(
                "SELECT rowid, bm25(passages_fts, ?, ?, ?) AS rank FROM passages_fts"
                " WHERE passages_fts MATCH ? ORDER BY rank LIMIT ?",
                (_TITLE_WEIGHT, _HEADING_WEIGHT, _TEXT_WEIGHT, match, limit),
            ).fetchall()
        # FTS5's bm25() is lower-is-better and negative; flip it so higher is better.
        return {int(r[0]): -float(r[1]) for r in rows}

    def dense(self, vector: Vectors, limit: int) -> dict[int, float]:
        """The ``limit`` passages nearest ``vector`` by cosine: rowid -> similarity."""
        matrix = self._vectors()
        return {} if matrix is None else matrix.nearest(vector, limit)

    def hits(self, scores: dict[int, tuple[float, float]]) -> list[PassageHit]:
        """The passages of ``scores`` (rowid -> (lexical, dense)) with their articles."""
        if not scores:
            return []
        generation = self._generation()
        if self._rows[0] != generation or len(self._rows[1]) > _ROWS_KEPT:
            self._rows = (generation, {})  # a bound, not a policy
        rows = self._rows[1]
        # Popular passages are read from SQLite once, not on every search.
        missing = [rowid for rowid in scores if rowid not in rows]
        if missing:
            marks = ",".join("?" * len(missing))
            with self._connection() as conn:
                for row in conn.execute(f"{_HIT_SELECT} WHERE p.rowid IN ({marks})", missing):
                    rows[row[0]] = row
        # Made by tuple.__new__: the named tuple's own __new__ is Python, dozens a search.
        new = tuple.__new__
        return [new(PassageHit, rows[rowid] + scores[rowid]) for rowid in sorted(scores)
                if rowid in rows]

    def warm(self) -> None:
        """Load what searches need (the embedding model, the vector matrix, the
        vocabulary) now, at start-up, rather than in the first suggestion."""
        if self.embedder is not None:
            try:
                self.embedder.embed(["warm up"])
            except EmbeddingError as exc:  # a service down now may be up by the first query
                log.warning("embedder %s not reachable at start: %s", self.embedder.name, exc)
        self._vectors()
        self._bm25()
        self.vocabulary().correct("warmup")
        common_words()

    def loaded(self) -> bool:
        """Whether what searches need in memory is of the store's latest write (after a
        write, the first search reloads it: not a job for the event loop)."""
        generation = self._generation()
        return all(part is not None and part.generation == generation for part in (
            self._bm25_index, self._vocabulary,
            *((self._matrix,) if self.embedder is not None else ())))

    def vocabulary(self) -> Vocabulary:
        """The stems the index holds, with how many passages hold each (cached until the
        next write)."""
        generation = self._generation()
        vocabulary = self._vocabulary
        if vocabulary is not None and vocabulary.generation == generation:
            return vocabulary
        with self._connection() as conn:
            counts = dict(conn.execute("SELECT term, doc FROM passages_vocab"))
            passages = int(conn.execute("SELECT count(*) FROM passages").fetchone()[0])
        self._vocabulary = Vocabulary(generation, counts, passages)
        return self._vocabulary

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One search: the store's write generation read once for all of its steps
        (each read is a transaction with the WAL's locks); nested, the outer holds."""
        if getattr(self._local, "generation", None) is not None:
            yield
            return
        self._local.generation = self._read_generation()
        try:
            yield
        finally:
            self._local.generation = None

    def _generation(self) -> str:
        pinned: str | None = getattr(self._local, "generation", None)
        return pinned if pinned is not None else self._read_generation()

    def _read_generation(self) -> str:
        if self._fixed_generation is not None:
            return self._fixed_generation
        with self._connection() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        generation = str(row[0]) if row else "0"
        if self.snapshot:  # nobody writes a snapshot again: one read serves every search
            self._fixed_generation = generation
        return generation

    def _bm25(self) -> Bm25Index:
        return self._current("_bm25_index", lambda conn, generation: Bm25Index.load(
            conn, generation, (_TITLE_WEIGHT, _HEADING_WEIGHT, _TEXT_WEIGHT)))

    def _vectors(self) -> VectorMatrix | None:
        if self.embedder is None:
            return None
        return self._current("_matrix", VectorMatrix.load)

    def _current(self, attribute: str, load: Callable[[sqlite3.Connection, str], _Part]
                 ) -> _Part:
        """The in-memory part kept in ``attribute``, reloaded once (under a lock) when a
        write has bumped the store's generation since it was loaded."""
        generation = self._generation()
        part: _Part | None = getattr(self, attribute)
        if part is not None and part.generation == generation:
            return part
        with self._load_lock:
            part = getattr(self, attribute)
            if part is None or part.generation != generation:
                with self._connection() as conn:
                    part = load(conn, generation)
                setattr(self, attribute, part)
            return part


_HIT_SELECT = (
    "SELECT p.rowid, a.id, a.title, a.url, p.position, p.heading, p.text"
    " FROM passages p JOIN articles a ON a.rowid = p.article_rowid"
)
