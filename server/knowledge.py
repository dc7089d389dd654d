"""The knowledge-base store: articles in SQLite with an FTS5 index (BM25 ranking).

One file, stdlib ``sqlite3`` only. Reads open one connection per thread so the
store can be searched from a worker thread pool while an import writes.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
CREATE VIRTUAL TABLE IF NOT EXISTS articles_fts USING fts5(
    title, body, content='articles', content_rowid='rowid',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS articles_ai AFTER INSERT ON articles BEGIN
    INSERT INTO articles_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
CREATE TRIGGER IF NOT EXISTS articles_ad AFTER DELETE ON articles BEGIN
    INSERT INTO articles_fts(articles_fts, rowid, title, body)
    VALUES ('delete', old.rowid, old.title, old.body);
END;
CREATE TRIGGER IF NOT EXISTS articles_au AFTER UPDATE ON articles BEGIN
    INSERT INTO articles_fts(articles_fts, rowid, title, body)
    VALUES ('delete', old.rowid, old.title, old.body);
    INSERT INTO articles_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
"""

# Words that carry no topic: dropped from queries so BM25 ranks on content words.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been
    before being below between both but by can could did do does doing down during
    each few for from further had has have having he her here hers herself him
    himself his how i if in into is it its itself just me more most my myself no nor
    not now of off on once only or other our ours ourselves out over own same she
    should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves hi
    hello hey yes yeah okay ok please thanks thank um uh like just get got im ive
    dont cant wont""".split()
)

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# BM25 column weights: a match in the title counts more than one in the body.
_TITLE_WEIGHT, _BODY_WEIGHT = 8.0, 1.0


@dataclass(frozen=True)
class Article:
    """One knowledge-base article; ``body`` is plain text with blank lines between paragraphs."""

    id: str
    title: str
    url: str
    body: str
    category: str = ""

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for part in (self.title, self.url, self.category, self.body):
            digest.update(part.encode())
            digest.update(b"\0")
        return digest.hexdigest()


@dataclass(frozen=True)
class SearchHit:
    """An article matched by a search, best first; ``score`` is higher for better matches."""

    id: str
    title: str
    url: str
    snippet: str
    score: float
    body: str


@dataclass(frozen=True)
class UpsertCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0


def query_terms(text: str) -> list[str]:
    """The distinct content words of ``text``, lowercased, in order of appearance."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in STOPWORDS and (len(word) > 1 or word.isdigit()):
            seen.setdefault(word, None)
    return list(seen)


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression that ORs the content words of ``text`` (None if there are none).

    Each term is quoted, so user text can never inject FTS5 syntax.
    """
    terms = query_terms(text)
    if not terms:
        return None
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


class KnowledgeBase:
    """A knowledge-base file. Safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        with self._connection() as conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
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

    def upsert(self, articles: Iterable[Article]) -> UpsertCounts:
        """Insert new articles and update changed ones, in one transaction."""
        added = updated = unchanged = 0
        now = time.time()
        with self._write_lock, self._connection() as conn:
            for article in articles:
                digest = article.content_hash
                row = conn.execute(
                    "SELECT content_hash FROM articles WHERE id = ?", (article.id,)
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO articles (id, title, url, category, body, content_hash,"
                        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (article.id, article.title, article.url, article.category,
                         article.body, digest, now),
                    )
                    added += 1
                elif row[0] != digest:
                    conn.execute(
                        "UPDATE articles SET title = ?, url = ?, category = ?, body = ?,"
                        " content_hash = ?, updated_at = ? WHERE id = ?",
                        (article.title, article.url, article.category, article.body,
                         digest, now, article.id),
                    )
                    updated += 1
                else:
                    unchanged += 1
        return UpsertCounts(added, updated, unchanged)

    def delete(self, ids: Iterable[str]) -> int:
        """Remove articles by id; returns how many existed."""
        with self._write_lock, self._connection() as conn:
            return sum(
                conn.execute("DELETE FROM articles WHERE id = ?", (i,)).rowcount for i in ids
            )

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

    def search(self, text: str, limit: int = 3) -> list[SearchHit]:
        """The ``limit`` articles that best match ``text`` by BM25, best first."""
        match = fts_query(text)
        if match is None:
            return []
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT a.id, a.title, a.url,"
                " snippet(articles_fts, 1, '', '', '…', 32),"
                " bm25(articles_fts, ?, ?) AS rank, a.body"
                " FROM articles_fts JOIN articles a ON a.rowid = articles_fts.rowid"
                " WHERE articles_fts MATCH ? ORDER BY rank LIMIT ?",
                (_TITLE_WEIGHT, _BODY_WEIGHT, match, limit),
            ).fetchall()
        # FTS5's bm25() is lower-is-better and negative; flip it so higher is better.
        return [
            SearchHit(id=r[0], title=r[1], url=r[2], snippet=_tidy(r[3]), score=round(-r[4], 4),
                      body=r[5])
            for r in rows
        ]


def _tidy(snippet: str) -> str:
    return " ".join(snippet.split())
